"""/v1/inbox routes (axme-reference.md §2.5): an owner's threads, its change feed, and what it does with them.

Every route acts for one owner: ``owner_agent`` (query) or ``x-owner-agent`` (header), 400 when both are
given and differ, the caller's own address when neither is. A service-account key acts only as its own
address (403 otherwise); the workspace key and logged-in people act for any owner of their workspace (another
workspace's: 404 ``agent_not_found``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from axme_cli.protocol import inbox as wire
from axme_cli.runtime import scope
from axme_cli.runtime.api.common import (
    authenticate,
    idempotency_key,
    int_param,
    parse_object,
    read_body,
    respond,
    runtime,
)
from axme_cli.runtime.api.intents import check_address, resolve_recipient, resolve_target, validation_failed
from axme_cli.runtime.engine import idempotency, media
from axme_cli.runtime.engine import inbox as engine
from axme_cli.runtime.errors import BadRequest, Forbidden, NotFound, Unprocessable
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.store.base import Tx


async def owner_of(request: Request, principal: Principal) -> str:
    """The owner the caller acts for (see the module's docstring)."""
    rt = runtime(request)
    s = scope.settings_for(rt.settings, principal)
    query = request.query_params.get("owner_agent") or None
    header = request.headers.get("x-owner-agent") or None
    from_query = resolve_target(s, query, "owner_agent") if query else None
    from_header = resolve_target(s, header, "x-owner-agent") if header else None
    if from_query and from_header and from_query != from_header:
        raise BadRequest(f"owner_agent {query!r} and x-owner-agent {header!r} name different owners",
                         code="owner_agent_mismatch", details={"owner_agent": query, "x_owner_agent": header})
    owner = from_query or from_header or principal.address
    if not principal.is_member and owner != principal.address:
        raise Forbidden(f"this key acts only as {principal.address}, not as {owner}", code="policy_denied",
                        details={"owner_agent": owner, "allowed": [principal.address]})
    return await check_address(rt, s, owner, "owner_agent")


def _statuses(raw: str | None) -> list[str] | None:
    if not raw:
        return None
    statuses = [x.strip().lower() for x in raw.split(",") if x.strip()]
    unknown = [x for x in statuses if x not in wire.THREAD_STATUSES]
    if unknown:
        raise Unprocessable(f"status: unknown thread status {', '.join(unknown)}; use "
                            f"{', '.join(wire.THREAD_STATUSES)}", code="invalid_parameter", details={"field": "status"})
    return statuses


async def list_threads(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    owner = await owner_of(request, principal)
    statuses = _statuses(request.query_params.get("status"))
    limit = int_param(request, "limit", 100, 1, 500)
    rows = await rt.reads.list_inbox(owner, statuses, limit)
    return respond({"ok": True, "threads": [engine.thread_view(r, r) for r in rows]}, request=request)


async def get_thread(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    owner = await owner_of(request, principal)
    thread_id = request.path_params["thread_id"]
    row = await rt.reads.get_inbox_thread(owner, thread_id)
    if row is None:
        raise NotFound(f"thread {thread_id} is not in the inbox of {owner}", code="thread_not_found",
                       details={"thread_id": thread_id, "owner_agent": owner})
    return respond({"ok": True, "thread": engine.thread_view(row, row)}, request=request)


async def list_changes(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    owner = await owner_of(request, principal)
    cursor = request.query_params.get("cursor") or None
    after = 0
    if cursor is not None:
        parsed = engine.parse_cursor(cursor)
        if parsed is None:
            raise Unprocessable(f"cursor: {cursor!r} is not a cursor of /v1/inbox/changes; pass next_cursor back",
                                code="invalid_parameter", details={"field": "cursor"})
        after = parsed
    limit = int_param(request, "limit", wire.CHANGES_DEFAULT_LIMIT, 1, wire.CHANGES_MAX_LIMIT)
    rows = await rt.reads.inbox_changes(owner, after, limit + 1)
    has_more = len(rows) > limit
    changes = [{"cursor": engine.cursor_of(r), "thread": engine.thread_view(r, r)} for r in rows[:limit]]
    next_cursor = changes[-1]["cursor"] if changes else cursor
    return respond({"ok": True, "changes": changes, "next_cursor": next_cursor, "has_more": has_more},
                   request=request)


# ---------------------------------------------------------------------------------------------
# writes


async def _body(request: Request, model: type[BaseModel], *, optional: bool) -> tuple[bytes, dict[str, Any]]:
    raw = await read_body(request)
    body = parse_object(raw) if raw.strip() or not optional else {}
    try:
        return raw, model.model_validate(body).model_dump(exclude_none=True)
    except ValidationError as exc:
        raise validation_failed(exc) from None


def idempotency_of(request: Request, principal: Principal, fingerprint: bytes) -> tuple[str, str, str] | None:
    """(scope, key, body hash) of an ``Idempotency-Key`` sent to this route by this caller, or None."""
    key = idempotency_key(request)
    if not key:
        return None
    return f"{principal.key_id}:POST {request.url.path}", key, hashlib.sha256(fingerprint).hexdigest()


async def _write(request: Request, principal: Principal, owner: str, raw: bytes,
                 op: Callable[[Tx, float], dict[str, Any]]) -> Response:
    """Run ``op`` in one transaction, once per Idempotency-Key (for this caller, route and owner)."""
    idem = idempotency_of(request, principal, owner.encode() + b"\n" + raw)
    now = runtime(request).clock.time()
    result = await runtime(request).write(lambda tx: idempotency.once(tx, idem, now, lambda: op(tx, now)).result)
    return respond(result, request=request)


async def reply(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    owner = await owner_of(request, principal)
    raw, req = await _body(request, wire.ReplyRequest, optional=False)
    thread_id = request.path_params["thread_id"]
    return await _write(request, principal, owner, raw, lambda tx, now: media.reply_with_attachments(
        tx, principal, req.get("attachments"), thread_id, now,
        lambda attached: engine.op_reply(tx, principal, owner, thread_id, req["message"], now, attached)))


async def delegate(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    s = scope.settings_for(rt.settings, principal)
    owner = await owner_of(request, principal)
    raw, req = await _body(request, wire.DelegateRequest, optional=False)
    if not req.get("delegate_to"):
        raise Unprocessable("delegate_to: field required (the agent address to hand the thread to)",
                            details={"field": "delegate_to"})
    target = await check_address(rt, s, await resolve_recipient(rt, req["delegate_to"], "delegate_to", s),
                                 "delegate_to")
    thread_id = request.path_params["thread_id"]
    return await _write(request, principal, owner, raw, lambda tx, now: engine.op_delegate(
        tx, principal, owner, thread_id, target, req.get("note"), now))


def _decision(approve: bool) -> Callable[[Request], Any]:
    async def decide(request: Request) -> Response:
        principal = await authenticate(request, elsewhere_ok=True)
        owner = await owner_of(request, principal)
        raw, req = await _body(request, wire.DecisionRequest, optional=True)
        thread_id = request.path_params["thread_id"]
        return await _write(request, principal, owner, raw, lambda tx, now: engine.op_decide(
            tx, principal, owner, thread_id, approve, req.get("comment"), now))

    decide.__name__ = "approve" if approve else "reject"
    return decide


async def mark_read(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    owner = await owner_of(request, principal)
    thread_id = request.path_params["thread_id"]
    now = runtime(request).clock.time()
    result = await runtime(request).write(lambda tx: engine.op_read(tx, principal, owner, thread_id, now))
    return respond(result, request=request)


async def delete_messages(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    owner = await owner_of(request, principal)
    raw, req = await _body(request, wire.MessagesDeleteRequest, optional=False)
    thread_id = request.path_params["thread_id"]
    return await _write(request, principal, owner, raw,
                        lambda tx, now: engine.op_delete_messages(tx, principal, owner, thread_id, req, now))


routes = [
    Route("/v1/inbox", list_threads, methods=["GET"]),
    Route("/v1/inbox/changes", list_changes, methods=["GET"]),
    Route("/v1/inbox/{thread_id}", get_thread, methods=["GET"]),
    Route("/v1/inbox/{thread_id}/reply", reply, methods=["POST"]),
    Route("/v1/inbox/{thread_id}/delegate", delegate, methods=["POST"]),
    Route("/v1/inbox/{thread_id}/approve", _decision(True), methods=["POST"]),
    Route("/v1/inbox/{thread_id}/reject", _decision(False), methods=["POST"]),
    Route("/v1/inbox/{thread_id}/read", mark_read, methods=["POST"]),
    Route("/v1/inbox/{thread_id}/messages/delete", delete_messages, methods=["POST"]),
]

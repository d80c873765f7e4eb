"""/v1/service-accounts and /v1/agents routes, including the agent delivery feed."""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from axme_cli.protocol import addresses
from axme_cli.protocol import lifecycle as lc
from axme_cli.protocol.models import KeyCreateRequest, ServiceAccountCreateRequest
from axme_cli.runtime import scope
from axme_cli.runtime.api.common import (
    authenticate,
    int_param,
    parse_object,
    read_body,
    read_object,
    respond,
    runtime,
)
from axme_cli.runtime.api.intents import elsewhere_here, validation_failed
from axme_cli.runtime.api.sse import LINGER_SECONDS, EventStream, Last, reads_incrementally
from axme_cli.runtime.clock import to_iso
from axme_cli.runtime.core import Runtime
from axme_cli.runtime.engine import agents as engine
from axme_cli.runtime.engine import intents as intents_engine
from axme_cli.runtime.errors import Forbidden, NotFound, Unprocessable
from axme_cli.runtime.notify import handed_over
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Row


async def create_service_account(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    body = await read_object(request)
    try:
        model = ServiceAccountCreateRequest.model_validate(body)
    except ValidationError as exc:
        raise validation_failed(exc) from None
    rt = runtime(request)
    req = model.model_dump()
    now = rt.clock.time()
    s = scope.settings_for(rt.settings, principal)
    result = await rt.write(lambda tx: engine.op_create_service_account(tx, s, principal, req, now))
    return respond(result, request=request)


async def _visible_sa(request: Request, principal: Principal, sa_id: str) -> Row:
    rt = runtime(request)
    row = await rt.reads.get_service_account(sa_id)
    if row is None or row["status"] == "deleted" or not scope.owns(scope.settings_for(rt.settings, principal), row) or (
            not principal.is_member and principal.service_account_id != sa_id):
        raise NotFound(f"service account {sa_id} not found", code="service_account_not_found")
    return row


async def _accounts(request: Request, principal: Principal) -> list[Row]:
    """The live service accounts of the caller's workspace that it may see. The SDK names the workspace in the
    query (``org_id``, ``workspace_id``): another one than the caller's is 404, as one that does not exist."""
    rt = runtime(request)
    s = scope.settings_for(rt.settings, principal)
    for field, mine in (("org_id", s.org), ("workspace_id", s.workspace)):
        given = request.query_params.get(field)
        if given not in (None, "", mine):
            raise NotFound(f"{field} {given[:100]!r} not found", code=f"{field.split('_')[0]}_not_found",
                           details={"field": field})
    rows = await rt.reads.list_service_accounts(s.org, s.workspace)
    if not principal.is_member:
        rows = [r for r in rows if r["service_account_id"] == principal.service_account_id]
    return rows


async def list_service_accounts(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rows = await _accounts(request, principal)
    return respond({"ok": True, "service_accounts": [engine.service_account_view(r) for r in rows]}, request=request)


async def get_service_account(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    sa_id = request.path_params["sa_id"]
    row = await _visible_sa(request, principal, sa_id)
    keys = await runtime(request).reads.list_keys(sa_id)
    return respond(
        {"ok": True, "service_account": engine.service_account_view(row), "keys": [engine.key_view(k) for k in keys]},
        request=request,
    )


async def delete_service_account(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    sa_id = request.path_params["sa_id"]
    rt = runtime(request)
    s, now = scope.settings_for(rt.settings, principal), rt.clock.time()
    result = await rt.write(lambda tx: engine.op_delete_service_account(tx, s, principal, sa_id, now))
    return respond(result, request=request)


async def create_key(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    raw = await read_body(request)
    body = parse_object(raw) if raw.strip() else {}
    try:
        model = KeyCreateRequest.model_validate(body)
    except ValidationError as exc:
        raise validation_failed(exc) from None
    expires_at = to_iso(model.expires_at) if model.expires_at else None
    sa_id = request.path_params["sa_id"]
    rt = runtime(request)
    s, now = scope.settings_for(rt.settings, principal), rt.clock.time()
    result = await rt.write(lambda tx: engine.op_create_key(tx, s, principal, sa_id, expires_at, now))
    return respond(result, request=request)


async def revoke_key(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    sa_id, key_id = request.path_params["sa_id"], request.path_params["key_id"]
    rt = runtime(request)
    s, now = scope.settings_for(rt.settings, principal), rt.clock.time()
    result = await rt.write(lambda tx: engine.op_revoke_key(tx, s, principal, sa_id, key_id, now))
    return respond(result, request=request)


async def list_agents(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    limit = int_param(request, "limit", 100, 1, 1000)
    rows = await _accounts(request, principal)
    return respond({"ok": True, "agents": [engine.agent_view(r) for r in rows[:limit]]}, request=request)


def address_from_path(rt: Runtime, raw: str, s: Settings | None = None) -> str:
    """``org/ws/name``, a bare name, or a (URL-encoded) ``agent://`` address."""
    value = unquote(raw).strip().strip("/")
    if value.startswith("agent:/") and not value.startswith(addresses.SCHEME):
        value = addresses.SCHEME + value[len("agent:/") :]  # proxies collapse '//'
    if not value.startswith(addresses.SCHEME):
        parts = value.split("/")
        if not value or not all(parts) or len(parts) > 3 or not addresses.is_valid_name(parts[-1]):
            raise Unprocessable(
                f"{raw!r} is not an agent address", code="invalid_agent_address", details={"field": "address"}
            )
    s = s or rt.settings
    return addresses.qualify(value, s.org, s.workspace)


async def get_agent(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    s = scope.settings_for(rt.settings, principal)
    address = address_from_path(rt, request.path_params["address"], s)
    rows = [r for r in await rt.reads.list_service_accounts(s.org, s.workspace) if r["address"] == address]
    if not rows or (not principal.is_member and principal.address != address):
        raise NotFound(f"agent {address} not found", code="agent_not_found")
    return respond({"ok": True, "agent": engine.agent_view(rows[-1])}, request=request)


def _cursor_of(row: Row) -> int:
    return int(row["cursor"])


def _feed_frame(row: Row) -> tuple[dict[str, str], str, bool]:
    """The SSE frame for one feed row, the status it shows, and whether sending it records a delivery."""
    status = row["status"]
    delivers = row["delivered_attempt"] < row["attempt"] and lc.can_apply(status, "intent.delivered")
    if delivers:
        status = lc.DELIVERED
    data: dict[str, Any] = {
        "intent_id": row["intent_id"],
        "seq": row["cursor"],
        "event_type": "intent." + status.lower(),
        "status": status,
        "at": row["fed_at"],
        "intent_type": row["intent_type"],
        "correlation_id": row["correlation_id"],
        "from_agent": row["from_agent"],
        "to_agent": row["to_agent"],
        "delivery_attempt": row["attempt"],
        "max_delivery_attempts": row["max_delivery_attempts"],
        "created_at": row["created_at"],
    }
    # The payload goes in as stored: it is the JSON text the engine wrote (codec.dumps), so parsing it only to
    # write it again would give the same text, at twice the cost of the rest of the frame.
    text = orjson.dumps(data).decode()[:-1] + ',"payload":' + row["payload"] + "}"
    frame = {"id": str(row["cursor"]), "event": data["event_type"], "data": text}
    return frame, status, delivers


async def stream_agent_intents(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    s = scope.settings_for(rt.settings, principal)
    address = address_from_path(rt, request.path_params["address"], s)
    if not principal.is_admin and principal.address != address:
        raise Forbidden(f"this key may listen only to {principal.address}", code="policy_denied")
    if await elsewhere_here(rt, s, address):  # another workspace's agent: as unknown as a missing one
        raise NotFound(f"agent {address} not found", code="agent_not_found")
    mine = scope.principal_pair(principal)
    since = int_param(request, "since", 0, 0, 2**53)
    wait_seconds = int_param(request, "wait_seconds", 15, 1, 60)
    hold = reads_incrementally(request)
    raw_status = request.query_params.get("status")
    if raw_status:
        wanted = {s.strip().upper() for s in raw_status.split(",") if s.strip()}
        unknown = wanted - set(lc.STATUSES)
        if unknown:
            raise Unprocessable(
                f"status: unknown status {', '.join(sorted(unknown))}",
                code="invalid_parameter",
                details={"field": "status"},
            )
    else:
        wanted = set(lc.STATUSES) - lc.TERMINAL
    actor = principal.address

    async def frames() -> AsyncIterator[dict[str, str] | list[dict[str, str]]]:
        # Read once, then send what this process's commits put on the feed as the hub hands it over; read again
        # after a gap (a redelivery, another replica's commit) or a full page. Unless the client reads incrementally
        # (`hold`), end shortly after sending, for clients that read the whole response first (api/sse.py).
        # A killed agent (engine/mesh.py) is sent nothing: the rows stay on its feed, its cursor where it was, and
        # its resume wakes the stream (Notes.feeds), which then reads them.
        cursor = since
        deadline = time.monotonic() + wait_seconds
        limit = 200
        killed = rt.mesh.is_killed
        with rt.hub.watch_feed(address) as changed:
            rows = [] if killed(address) else await rt.reads.feed_entries(address, cursor, limit)
            while True:
                if rows and killed(address):  # killed meanwhile (here, or heard from another replica)
                    rows = []
                batch: list[dict[str, str]] = []
                deliveries: list[tuple[str, int]] = []
                for row in rows:
                    cursor = row["cursor"]
                    frame, shown, delivers = _feed_frame(row)
                    if shown not in wanted or (row.get("org_id"), row.get("workspace_id")) != mine:
                        continue
                    if delivers:
                        deliveries.append((row["intent_id"], row["attempt"]))
                    batch.append(frame)
                if deliveries:
                    # Queued, not awaited: a GET of these intents here waits for it (Runtime.deliver_behind).
                    record = functools.partial(intents_engine.op_mark_delivered_many, s=rt.settings,
                                               deliveries=deliveries, actor=actor, now=rt.clock.time())
                    rt.deliver_behind([d[0] for d in deliveries], record)
                if batch:
                    yield batch  # one message
                    if not hold:
                        deadline = min(deadline, time.monotonic() + LINGER_SECONDS)
                if len(rows) >= limit:
                    rows = await rt.reads.feed_entries(address, cursor, limit)
                    continue
                if not await changed.until(deadline):
                    yield Last([{"event": "stream.timeout",
                                 "data": orjson.dumps({"ok": True, "next_seq": cursor}).decode()}])
                    return
                changed.clear()
                handed = await handed_over(changed, cursor, _cursor_of)
                if killed(address):
                    rows = []
                    continue
                rows = handed if handed is not None else await rt.reads.feed_entries(address, cursor, limit)

    closed = await rt.quotas.open_stream(s)  # within the workspace's sse_streams_max (engine/quotas.py)
    return EventStream(frames(), on_close=closed)


routes = [
    Route("/v1/service-accounts", create_service_account, methods=["POST"]),
    Route("/v1/service-accounts", list_service_accounts, methods=["GET"]),
    Route("/v1/service-accounts/{sa_id}", get_service_account, methods=["GET"]),
    Route("/v1/service-accounts/{sa_id}", delete_service_account, methods=["DELETE"]),
    Route("/v1/service-accounts/{sa_id}/keys", create_key, methods=["POST"]),
    Route("/v1/service-accounts/{sa_id}/keys/{key_id}/revoke", revoke_key, methods=["POST"]),
    Route("/v1/agents", list_agents, methods=["GET"]),
    Route("/v1/agents/{address:path}/intents/stream", stream_agent_intents, methods=["GET"]),
    Route("/v1/agents/{address:path}", get_agent, methods=["GET"]),
]

"""/v1/users: nicks (check, register, rename, resolve) and profiles, in the gateway's shapes (axp-spec
``api.users.*``). Every route needs a key. Who a user is and who manages which: ``engine/users.py``."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from axme_cli.protocol import nicks
from axme_cli.protocol import users as wire
from axme_cli.runtime.api.common import authenticate, idempotency_key, parse_object, read_body, respond, runtime
from axme_cli.runtime.api.intents import resolve_recipient, validation_failed
from axme_cli.runtime.core import Runtime
from axme_cli.runtime.engine import idempotency
from axme_cli.runtime.engine import users as engine
from axme_cli.runtime.errors import NotFound, Unprocessable
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.store.base import Tx


def checked_nick(raw: Any, field: str = "nick") -> str:
    """The normalized nick of ``raw``, or 422 ``invalid_nick`` naming ``field``."""
    if not isinstance(raw, str) or not raw:
        raise Unprocessable(f"{field}: required, e.g. @ann.lee", details={"field": field})
    why = nicks.problem(raw)
    if why is not None:
        raise Unprocessable(f"{field}: {why}", code="invalid_nick", details={"field": field})
    return nicks.normalize(raw)


def _query_nick(request: Request) -> str:
    raw = request.query_params.get("nick")
    if raw is None or raw == "":
        raise Unprocessable("nick: required (query parameter), e.g. ?nick=@ann.lee", code="invalid_parameter",
                            details={"field": "nick"})
    value = raw.strip()
    if value.lower().endswith("@" + nicks.PUBLIC_DOMAIN) and not value.startswith("@"):
        value = value[: -len(nicks.PUBLIC_DOMAIN) - 1]  # the public address names the nick too
    return checked_nick(value)


async def parsed(request: Request, model: type[BaseModel]) -> tuple[bytes, dict[str, Any]]:
    """The raw body and the fields it gave (nulls dropped), validated by ``model``; 422 naming the field."""
    raw = await read_body(request)
    try:
        req = model.model_validate(parse_object(raw)).model_dump(exclude_none=True)
    except ValidationError as exc:
        failed = validation_failed(exc)
        if isinstance(failed, Unprocessable) and failed.details.get("errors"):
            failed.details["field"] = failed.details["errors"][0]["field"]
        raise failed from None
    if "nick" in req:
        checked_nick(req["nick"])
    return raw, req


async def write_once(request: Request, principal: Principal, route: str, raw: bytes,
                     op: Callable[[Tx, float], dict[str, Any]]) -> dict[str, Any]:
    """``op`` in one transaction, once per Idempotency-Key of this caller on ``route`` (``route`` names the
    route, never a secret of its path)."""
    key = idempotency_key(request)
    idem = (f"{principal.key_id}:{route}", key, hashlib.sha256(raw).hexdigest()) if key else None
    now = runtime(request).clock.time()
    return await runtime(request).write(lambda tx: idempotency.once(tx, idem, now, lambda: op(tx, now)).result)


async def owner_of(rt: Runtime, raw: str) -> str:
    """``owner_agent`` as the store keeps it: an agent address (a bare name is this workspace's) or a nick."""
    return await resolve_recipient(rt, raw, "owner_agent")


async def check_nick(request: Request) -> Response:
    await authenticate(request)
    normalized = _query_nick(request)
    taken = await runtime(request).reads.read_user("nick", normalized)
    available = taken is None and not nicks.is_reserved(normalized)
    return respond(engine.check_view(normalized, available), request=request)


async def resolve_nick(request: Request) -> Response:
    principal = await authenticate(request)
    normalized = _query_nick(request)
    row = await runtime(request).reads.read_user("nick", normalized)
    if row is None:
        raise NotFound(f"nick: no user has the nick @{normalized}", code="nick_not_found",
                       details={"field": "nick"})
    return respond(engine.resolved_view(row, principal), request=request)


async def register_nick(request: Request) -> Response:
    principal = await authenticate(request)
    raw, req = await parsed(request, wire.RegisterNickRequest)
    body = await write_once(request, principal, "POST /v1/users/register-nick", raw,
                            lambda tx, now: engine.op_register(tx, principal, req, now))
    return respond(body, request=request)


async def rename_nick(request: Request) -> Response:
    principal = await authenticate(request)
    raw, req = await parsed(request, wire.RenameNickRequest)
    owner = await owner_of(runtime(request), req["owner_agent"])
    body = await write_once(request, principal, "POST /v1/users/rename-nick", raw,
                            lambda tx, now: engine.op_rename(tx, principal, owner, req, now))
    return respond(body, request=request)


async def get_profile(request: Request) -> Response:
    principal = await authenticate(request)
    raw = request.query_params.get("owner_agent")
    if not raw:
        raise Unprocessable("owner_agent: required (query parameter): the user's address, e.g. the owner_agent "
                            "register-nick answered", code="invalid_parameter", details={"field": "owner_agent"})
    rt = runtime(request)
    owner = await owner_of(rt, raw)
    row = engine.check_managed(principal, owner, await rt.reads.read_user("owner_agent", owner))
    return respond(engine.profile_view(row), request=request)


async def update_profile(request: Request) -> Response:
    principal = await authenticate(request)
    raw, req = await parsed(request, wire.ProfileUpdateRequest)
    owner = await owner_of(runtime(request), req["owner_agent"])
    body = await write_once(request, principal, "POST /v1/users/profile/update", raw,
                            lambda tx, now: engine.op_update_profile(tx, principal, owner, req, now))
    return respond(body, request=request)


routes = [
    Route("/v1/users/check-nick", check_nick, methods=["GET"]),
    Route("/v1/users/resolve-nick", resolve_nick, methods=["GET"]),
    Route("/v1/users/register-nick", register_nick, methods=["POST"]),
    Route("/v1/users/rename-nick", rename_nick, methods=["POST"]),
    Route("/v1/users/profile", get_profile, methods=["GET"]),
    Route("/v1/users/profile/update", update_profile, methods=["POST"]),
]

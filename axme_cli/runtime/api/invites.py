"""/v1/invites: create an invite (its token answered once), look one up by its token, accept it (axp-spec
``api.invites.*``). Every route needs a key; looking up and accepting also need the token, which is the invite's
only handle (whoever holds it may see and accept the invite). What accepting grants: ``engine/invites.py``.

A token travels in the path, so these routes never let a path reach a log: an unexpected error is logged with the
route's template, not the path (``api/app.py`` logs paths)."""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from axme_cli.protocol import users as wire
from axme_cli.runtime.api.common import authenticate, idempotency_key, respond, runtime
from axme_cli.runtime.api.errors import answer
from axme_cli.runtime.api.users import owner_of, parsed
from axme_cli.runtime.engine import invites as engine
from axme_cli.runtime.errors import DomainError, NotFound
from axme_cli.runtime.principals import hash_token

log = logging.getLogger("axme.api")

Endpoint = Callable[[Request], Awaitable[Response]]


def _no_path_in_logs(template: str) -> Callable[[Endpoint], Endpoint]:
    def wrap(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def run(request: Request) -> Response:
            try:
                return await endpoint(request)
            except DomainError:
                raise
            except Exception:
                log.exception("unexpected error on %s %s", request.method, template)
                return answer(500, "internal_error", "internal error; the runtime logged the details",
                              request=request)
        return run
    return wrap


def _token(request: Request) -> tuple[str, str]:
    """(token, its sha256) of the path; 404 for anything that cannot be a token."""
    token = request.path_params["token"]
    if not engine.TOKEN_RE.match(token):
        raise NotFound("no invite has this token (mistyped, or never made here)", code="invite_not_found",
                       details={"field": "token"})
    return token, hash_token(token)


async def create_invite(request: Request) -> Response:
    principal = await authenticate(request)
    raw, req = await parsed(request, wire.InviteCreateRequest)
    rt = runtime(request)
    owner = await owner_of(rt, req["owner_agent"])
    key = idempotency_key(request)
    idem = (f"{principal.key_id}:POST /v1/invites/create", key, hashlib.sha256(raw).hexdigest()) if key else None
    token, token_hash = engine.new_token()
    now = runtime(request).clock.time()
    row = await rt.write(lambda tx: engine.op_create(tx, rt.settings, principal, owner, req, token_hash, now, idem))
    base = rt.public_url or str(request.base_url).rstrip("/")
    return respond(engine.created_view(row, token, f"{base}/v1/invites/{token}", now), request=request)


@_no_path_in_logs("/v1/invites/{token}")
async def get_invite(request: Request) -> Response:
    await authenticate(request)
    token, token_hash = _token(request)
    rt = runtime(request)
    row = engine.found(await rt.reads.read_invite(token_hash), token_hash)
    user = None
    if row["accepted_owner_agent"] is not None:
        user = await rt.reads.read_user("owner_agent", row["accepted_owner_agent"])
    return respond(engine.invite_view(row, token, rt.clock.time(), user), request=request)


@_no_path_in_logs("/v1/invites/{token}/accept")
async def accept_invite(request: Request) -> Response:
    principal = await authenticate(request)
    token, token_hash = _token(request)
    raw, req = await parsed(request, wire.InviteAcceptRequest)
    rt = runtime(request)
    key = idempotency_key(request)
    # The scope names the invite by its token's hash: the idempotency cache keeps no token.
    idem = (f"{principal.key_id}:POST /v1/invites/accept:{token_hash}", key,
            hashlib.sha256(raw).hexdigest()) if key else None
    now = runtime(request).clock.time()
    body = await rt.write(lambda tx: engine.op_accept(tx, rt.settings, principal, token_hash, req, now, idem))
    return respond({"ok": True, "token": token, **body}, request=request)


routes = [
    Route("/v1/invites/create", create_invite, methods=["POST"]),
    Route("/v1/invites/{token}", get_invite, methods=["GET"]),
    Route("/v1/invites/{token}/accept", accept_invite, methods=["POST"]),
]

"""/v1/aliases: bind and revoke (the workspace key and people), list (members all; an agent key the aliases of its
own address), resolve (any key). An alias as a recipient: ``POST /v1/intents`` (api/intents.py) asks
``Runtime.aliases`` (engine/aliases.py)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from axme_cli.protocol.routing import ALIAS_STATUSES, AliasBindRequest
from axme_cli.runtime.api.common import authenticate, int_param, read_object, respond, runtime
from axme_cli.runtime.api.principals_admin import parse
from axme_cli.runtime.engine import aliases as engine
from axme_cli.runtime.engine.principals_admin import check_tenancy, find_read, gone_principal_view, tenancy
from axme_cli.runtime.errors import NotFound, Unprocessable
from axme_cli.runtime.scope import settings_for


async def bind_alias(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    s = settings_for(rt.settings, principal)
    req = parse(AliasBindRequest, await read_object(request))
    now = rt.clock.time()
    row = await rt.write(lambda tx: engine.op_bind(tx, s, principal, req, now))
    rt.aliases.invalidate()
    return respond({"ok": True, "alias": engine.alias_view(row)}, request=request)


async def revoke_alias(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    s = settings_for(rt.settings, principal)
    alias_id = request.path_params["alias_id"]
    now = rt.clock.time()
    row = await rt.write(lambda tx: engine.op_revoke(tx, s, principal, alias_id, now))
    rt.aliases.invalidate()
    return respond({"ok": True, "alias": engine.alias_view(row)}, request=request)


async def list_aliases(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    s = settings_for(rt.settings, principal)
    query = request.query_params
    check_tenancy(s, dict(query))
    status = query.get("status") or None
    if status is not None and status not in ALIAS_STATUSES:
        raise Unprocessable(f"status: use one of {', '.join(ALIAS_STATUSES)}", code="invalid_parameter",
                            details={"field": "status", "allowed": list(ALIAS_STATUSES)})
    limit = int_param(request, "limit", 200, 1, 1000)
    address = None
    if query.get("principal_id"):
        address = (await find_read(rt.reads, s, query["principal_id"])).address
    if not principal.is_member:
        if address not in (None, principal.address):
            raise NotFound("principal_id: no such principal in this workspace", code="principal_not_found",
                           details={"field": "principal_id"})
        address = principal.address
    org, workspace = tenancy(s)
    rows = await rt.reads.list_aliases(org, workspace, address=address, status=status, limit=limit)
    return respond({"ok": True, "aliases": [engine.alias_view(r) for r in rows]}, request=request)


async def resolve_alias(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    s = settings_for(rt.settings, principal)
    query = request.query_params
    check_tenancy(s, dict(query))
    raw = query.get("alias") or ""
    if not 3 <= len(raw) <= 255:
        raise Unprocessable("alias: required, 3 to 255 characters", code="invalid_parameter",
                            details={"field": "alias"})
    org, workspace = tenancy(s)
    row = await rt.reads.active_alias(org, workspace, engine.alias_key(raw))
    if row is None:
        raise NotFound(f"alias: no active alias {raw[:100]!r}", code="alias_not_found", details={"field": "alias"})
    try:
        principal_view = (await find_read(rt.reads, s, row["principal_id"])).view
    except NotFound:  # an agent whose service account was deleted since: the alias still delivers to its address
        principal_view = gone_principal_view(s, row)
    return respond({"ok": True, "resolution": {"alias": engine.alias_view(row), "principal": principal_view}},
                   request=request)


routes = [
    Route("/v1/aliases", bind_alias, methods=["POST"]),
    Route("/v1/aliases", list_aliases, methods=["GET"]),
    Route("/v1/aliases/resolve", resolve_alias, methods=["GET"]),
    Route("/v1/aliases/{alias_id}/revoke", revoke_alias, methods=["POST"]),
]

"""/v1/routing/endpoints, /v1/routing/resolve, /v1/transports/bindings (engine/routing.py): where a principal's
intents are delivered. The workspace key and people route any principal, an agent key only its own address
(another's is 404); every URL is checked against the egress policy when it is given (a literal internal address is
422 naming the field) and again when it is dialled."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from axme_cli.protocol.routing import (
    RoutingEndpointRegisterRequest,
    RoutingEndpointUpdateRequest,
    RoutingResolveRequest,
    TransportBindingUpsertRequest,
)
from axme_cli.runtime.api.common import authenticate, int_param, parse_object, read_body, read_object, respond, runtime
from axme_cli.runtime.api.inbox import idempotency_of
from axme_cli.runtime.api.principals_admin import parse
from axme_cli.runtime.core import Runtime
from axme_cli.runtime.egress_policy import Policy, check_callback_url
from axme_cli.runtime.engine import aliases, idempotency
from axme_cli.runtime.engine import routing as engine
from axme_cli.runtime.engine.principals_admin import Target, check_tenancy, find_read, gone_principal_view, tenancy
from axme_cli.runtime.errors import NotFound, Unprocessable
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.scope import settings_for
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Tx


def _secret(answer: dict[str, Any], secret: str | None) -> dict[str, Any]:
    """A signing secret made by this call is answered once, as ``signing_secret``."""
    return {**answer, "signing_secret": secret} if secret is not None else answer


async def _listed_address(rt: Runtime, s: Settings, principal: Principal, raw: str | None) -> str | None:
    """Whose routes or bindings a list shows: ``principal_id`` if given; an agent key only its own."""
    address = (await find_read(rt.reads, s, raw)).address if raw else None
    if not principal.is_member:
        if address not in (None, principal.address):
            raise NotFound("principal_id: no such principal in this workspace", code="principal_not_found",
                           details={"field": "principal_id"})
        address = principal.address
    return address


# ---------------------------------------------------------------------------------------------
# routing endpoints


async def register_endpoint(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    s = settings_for(rt.settings, principal)
    raw = await read_body(request)
    req = parse(RoutingEndpointRegisterRequest, parse_object(raw))
    engine.check_transport(req["transport_type"])
    engine.check_auth_mode(req["auth_mode"])
    check_callback_url(Policy.of(s), req["endpoint_url"], field="endpoint_url")
    idem = idempotency_of(request, principal, raw)
    now = rt.clock.time()
    made: list[str | None] = [None]

    def register(tx: Tx) -> dict[str, Any]:
        def op() -> dict[str, Any]:
            row, made[0] = engine.op_register_route(tx, s, principal, req, now)
            return {"route": engine.route_view(row)}

        return idempotency.once(tx, idem, now, op).result

    result = await rt.write(register)
    return respond(_secret({"ok": True, **result}, made[0]), request=request)


async def _listed(request: Request) -> tuple[Any, str, str, str | None, int]:
    """What a list of routes or bindings reads: (runtime, org, workspace, the address asked about, limit)."""
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    s = settings_for(rt.settings, principal)
    check_tenancy(s, dict(request.query_params))
    limit = int_param(request, "limit", 200, 1, 1000)
    address = await _listed_address(rt, s, principal, request.query_params.get("principal_id"))
    org, workspace = tenancy(s)
    return rt, org, workspace, address, limit


async def list_endpoints(request: Request) -> Response:
    rt, org, workspace, address, limit = await _listed(request)
    rows = await rt.reads.list_routes(org, workspace, address=address, limit=limit)
    return respond({"ok": True, "routes": [engine.route_view(r) for r in rows]}, request=request)


async def update_endpoint(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    s = settings_for(rt.settings, principal)
    req = parse(RoutingEndpointUpdateRequest, await read_object(request))
    if "endpoint_url" in req:
        check_callback_url(Policy.of(s), req["endpoint_url"], field="endpoint_url")
    route_id = request.path_params["route_id"]
    now = rt.clock.time()
    row, secret = await rt.write(lambda tx: engine.op_update_route(tx, s, principal, route_id, req, now))
    return respond(_secret({"ok": True, "route": engine.route_view(row)}, secret), request=request)


async def remove_endpoint(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    s = settings_for(rt.settings, principal)
    route_id = request.path_params["route_id"]
    now = rt.clock.time()
    gone = await rt.write(lambda tx: engine.op_remove_route(tx, s, principal, route_id, now))
    return respond({"ok": True, "route": gone}, request=request)


async def resolve_route(request: Request) -> Response:
    """Which principal an alias or principal_id names, and where its intents go now (and could go)."""
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    s = settings_for(rt.settings, principal)
    req = parse(RoutingResolveRequest, await read_object(request))
    check_tenancy(s, req)
    if "alias" not in req and "principal_id" not in req:
        raise Unprocessable("alias: give alias or principal_id", details={"field": "alias"})
    org, workspace = tenancy(s)
    alias = None
    if "alias" in req:
        alias = await rt.reads.active_alias(org, workspace, aliases.alias_key(req["alias"]))
        if alias is None:
            raise NotFound(f"alias: no active alias {req['alias'][:100]!r}", code="alias_not_found",
                           details={"field": "alias"})
    if "principal_id" in req:
        target = await find_read(rt.reads, s, req["principal_id"])
        if alias is not None and alias["address"] != target.address:
            raise Unprocessable(f"principal_id: the alias names {alias['principal_id']}, not {req['principal_id']}",
                                details={"field": "principal_id"})
    else:
        assert alias is not None
        try:
            target = await find_read(rt.reads, s, alias["principal_id"])
        except NotFound:
            target = Target(gone_principal_view(s, alias))
    if not principal.is_member and target.address != principal.address:
        raise NotFound("principal_id: no such principal in this workspace", code="principal_not_found",
                       details={"field": "principal_id" if "principal_id" in req else "alias"})
    targets = await rt.reads.delivery_targets(target.address)
    routes = await rt.reads.list_routes(org, workspace, address=target.address, limit=1000)
    bindings = await rt.reads.list_bindings(org, workspace, address=target.address, limit=1000)
    resolution = engine.resolution(target, aliases.alias_view(alias) if alias is not None else None, targets,
                                   routes, bindings, rt.public_url)
    return respond({"ok": True, "resolution": resolution}, request=request)


# ---------------------------------------------------------------------------------------------
# transport bindings


async def upsert_binding(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    s = settings_for(rt.settings, principal)
    req = parse(TransportBindingUpsertRequest, await read_object(request))
    engine.check_transport(req["transport_type"])
    engine.check_handle(req["transport_type"], req["transport_handle"])
    check_callback_url(Policy.of(s), req["transport_handle"], field="transport_handle")
    now = rt.clock.time()
    row, secret = await rt.write(lambda tx: engine.op_upsert_binding(tx, s, principal, req, now))
    return respond(_secret({"ok": True, "binding": engine.binding_view(row)}, secret), request=request)


async def list_bindings(request: Request) -> Response:
    rt, org, workspace, address, limit = await _listed(request)
    rows = await rt.reads.list_bindings(org, workspace, address=address, limit=limit)
    return respond({"ok": True, "bindings": [engine.binding_view(r) for r in rows]}, request=request)


async def remove_binding(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    s = settings_for(rt.settings, principal)
    binding_id = request.path_params["binding_id"]
    now = rt.clock.time()
    gone = await rt.write(lambda tx: engine.op_remove_binding(tx, s, principal, binding_id, now))
    return respond({"ok": True, "binding": gone}, request=request)


routes = [
    Route("/v1/routing/endpoints", register_endpoint, methods=["POST"]),
    Route("/v1/routing/endpoints", list_endpoints, methods=["GET"]),
    Route("/v1/routing/endpoints/{route_id}", update_endpoint, methods=["PATCH"]),
    Route("/v1/routing/endpoints/{route_id}", remove_endpoint, methods=["DELETE"]),
    Route("/v1/routing/resolve", resolve_route, methods=["POST"]),
    Route("/v1/transports/bindings", upsert_binding, methods=["POST"]),
    Route("/v1/transports/bindings", list_bindings, methods=["GET"]),
    Route("/v1/transports/bindings/{binding_id}", remove_binding, methods=["DELETE"]),
]

"""/v1/deliveries: AXME's view of the runtime's outbound deliveries (webhooks, intents POSTed to http agents,
payloads submitted here), replay, and submitting a payload to an http agent. Owner-scoped: an agent key sees and
replays only its own deliveries (404 for the rest); members see all of their workspace's."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from axme_cli.protocol.deliveries import DeliverySubmitRequest
from axme_cli.runtime import scope
from axme_cli.runtime.api.common import authenticate, idempotency_key, int_param, read_object, respond, runtime
from axme_cli.runtime.api.intents import check_address, resolve_target, validation_failed
from axme_cli.runtime.core import Runtime
from axme_cli.runtime.engine import outbound as engine
from axme_cli.runtime.errors import Forbidden, NotFound, Unprocessable
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings


def _check_workspace(s: Settings, values: dict[str, Any]) -> None:
    """``org_id`` / ``workspace_id`` may be left out; given, they must name this runtime's (404 otherwise)."""
    for field, mine in (("org_id", s.org), ("workspace_id", s.workspace)):
        given = values.get(field)
        if given not in (None, "", mine):
            raise NotFound(f"{field} {given!r} does not exist here (this runtime serves {mine!r})",
                           code=f"{field.split('_')[0]}_not_found", details={"field": field})


async def _principal_param(rt: Runtime, s: Settings, principal: Principal, raw: str | None,
                           field: str) -> str | None:
    """The agent a ``principal_id`` names (an address or a bare name); an agent key may name only itself, a member
    an agent of its workspace (another's: 404)."""
    if raw is None or raw == "":
        return None
    agent = resolve_target(s, raw, field)
    if not engine.may_act_for(principal, agent):
        raise Forbidden(f"{field}: this key acts only for {principal.address}, not {agent}", code="policy_denied",
                        details={"field": field})
    return await check_address(rt, s, agent, field)


async def list_deliveries(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    s = scope.settings_for(rt.settings, principal)
    query = request.query_params
    _check_workspace(s, dict(query))
    status = query.get("status") or None
    if status is not None and status not in engine.SPEC_STATUSES:
        raise Unprocessable(f"status: use one of {', '.join(engine.SPEC_STATUSES)}", code="invalid_parameter",
                            details={"field": "status", "allowed": list(engine.SPEC_STATUSES)})
    limit = int_param(request, "limit", 200, 1, 1000)
    owner = await _principal_param(rt, s, principal, query.get("principal_id"), "principal_id")
    if owner is None and not principal.is_member:
        owner = principal.address
    rows = await rt.reads.find_deliveries(owner_agent=owner, status=status, limit=limit,
                                          workspace=scope.principal_pair(principal))
    return respond({"ok": True, "deliveries": [engine.spec_delivery_view(s, r) for r in rows]},
                   request=request)


async def get_delivery(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    delivery_id = request.path_params["delivery_id"]
    rows = await rt.reads.find_deliveries(delivery_id=delivery_id, workspace=scope.principal_pair(principal))
    if not rows or not engine.may_reach(principal, rows[0]):
        raise NotFound(f"delivery {delivery_id} not found", code="delivery_not_found")
    s = scope.settings_for(rt.settings, principal)
    return respond({"ok": True, "delivery": engine.spec_delivery_view(s, rows[0])}, request=request)


async def replay_delivery(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    delivery_id = request.path_params["delivery_id"]
    now = rt.clock.time()
    s = scope.settings_for(rt.settings, principal)
    row = await rt.write(lambda tx: engine.op_replay_delivery(tx, s, principal, delivery_id, now))
    return respond({"ok": True, "delivery": engine.spec_delivery_view(s, row)}, request=request)


async def submit_delivery(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    header_key = idempotency_key(request)
    try:
        req = DeliverySubmitRequest.model_validate(await read_object(request)).model_dump(exclude_none=True)
    except ValidationError as exc:
        raise validation_failed(exc) from None
    s = scope.settings_for(rt.settings, principal)
    _check_workspace(s, req)
    if "principal_id" not in req and "alias" not in req:
        raise Unprocessable("principal_id: required (the agent to deliver to: its address or name), or alias",
                            details={"field": "principal_id"})
    named = {f: await _principal_param(rt, s, principal, req.get(f), f) for f in ("principal_id", "alias")}
    owner = named["principal_id"] or named["alias"]
    assert owner is not None
    if named["alias"] not in (None, owner):
        raise Unprocessable(f"alias: names {named['alias']}, but principal_id names {owner}",
                            details={"field": "alias"})
    if header_key and req.get("idempotency_key", header_key) != header_key:
        raise Unprocessable("idempotency_key: differs from the Idempotency-Key header; send one of them",
                            details={"field": "idempotency_key"})
    if header_key:
        req["idempotency_key"] = header_key
    now = rt.clock.time()
    row, _ = await rt.write(lambda tx: engine.op_submit_delivery(tx, s, principal, owner, req, now))
    return respond({"ok": True, "delivery": engine.spec_delivery_view(s, row)}, request=request)


routes = [
    Route("/v1/deliveries", list_deliveries, methods=["GET"]),
    Route("/v1/deliveries", submit_delivery, methods=["POST"]),
    Route("/v1/deliveries/{delivery_id}", get_delivery, methods=["GET"]),
    Route("/v1/deliveries/{delivery_id}/replay", replay_delivery, methods=["POST"]),
]

"""/v1/webhooks routes (subscriptions, events, replay, deliveries) and an agent's delivery config
(``/v1/service-accounts/{id}/delivery``, the http binding)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from axme_cli.protocol.webhooks import DeliveryConfigRequest, EventRequest, SubscriptionRequest
from axme_cli.runtime import scope
from axme_cli.runtime.api.common import authenticate, int_param, read_object, respond, runtime
from axme_cli.runtime.api.intents import _check_owner_params, check_address, resolve_target, validation_failed
from axme_cli.runtime.core import Runtime
from axme_cli.runtime.egress_policy import Policy, check_callback_url
from axme_cli.runtime.engine import outbound as engine
from axme_cli.runtime.engine.delivery import STATUSES
from axme_cli.runtime.errors import Forbidden, NotFound, Unprocessable
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.store.base import Row


async def owner_scope(request: Request, principal: Principal) -> str | None:
    """The ``owner_agent`` query parameter or ``x-owner-agent`` header (both: they must agree, else 400);
    an agent key may name only itself (else 403), a member any owner of its workspace (another workspace's: 404).
    None when neither was sent."""
    _check_owner_params(request)
    raw = request.query_params.get("owner_agent") or request.headers.get("x-owner-agent")
    if not raw:
        return None
    rt = runtime(request)
    s = scope.settings_for(rt.settings, principal)
    owner = resolve_target(s, raw, "owner_agent")
    if not engine.may_act_for(principal, owner):
        raise Forbidden(f"this key acts only for {principal.address}, not {owner}", code="policy_denied")
    return await check_address(rt, s, owner, "owner_agent")


def _parse(model: type[BaseModel], body: dict[str, Any]) -> dict[str, Any]:
    try:
        return model.model_validate(body).model_dump(exclude_unset=True)
    except ValidationError as exc:
        raise validation_failed(exc) from None


def _check_callback(request: Request, req: dict[str, Any]) -> None:
    """A literal internal address (or localhost) the runtime would refuse to call is refused now (422)."""
    if req.get("callback_url"):
        check_callback_url(Policy.of(runtime(request).settings), req["callback_url"])


async def create_subscription(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    owner = await owner_scope(request, principal) or principal.address
    req = _parse(SubscriptionRequest, await read_object(request))
    _check_callback(request, req)
    now = runtime(request).clock.time()
    result = await runtime(request).write(lambda tx: engine.op_upsert_subscription(tx, principal, owner, req, now))
    return respond(result, request=request)


async def list_subscriptions(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    owner = await owner_scope(request, principal)
    if owner is None and not principal.is_member:
        owner = principal.address
    rows = await runtime(request).reads.list_subscriptions(owner, scope.principal_pair(principal))
    return respond({"ok": True, "subscriptions": [engine.subscription_view(r) for r in rows]}, request=request)


async def delete_subscription(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    subscription_id = request.path_params["subscription_id"]
    now = runtime(request).clock.time()
    result = await runtime(request).write(
        lambda tx: engine.op_revoke_subscription(tx, principal, subscription_id, now))
    return respond(result, request=request)


async def publish_event(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    owner = await owner_scope(request, principal) or principal.address
    req = _parse(EventRequest, await read_object(request))
    rt = runtime(request)
    s = scope.settings_for(rt.settings, principal)
    now = rt.clock.time()
    result = await rt.write(lambda tx: engine.op_publish(tx, s, owner, req, now))
    return respond(result, request=request)


async def get_event(request: Request) -> Response:
    """Our extension: the event and its delivery counters as they are now."""
    principal = await authenticate(request, elsewhere_ok=True)
    event_id = request.path_params["event_id"]
    store = runtime(request).reads
    event = engine.visible_event(principal, await store.get_webhook_event(event_id), event_id)
    counts = await store.delivery_counts(event_id)
    return respond({"ok": True, "event_id": event_id, "owner_agent": event["owner_agent"],
                    "event_type": event["event_type"], "source": event["source"],
                    "accepted_at": event["accepted_at"], "replayed_at": event["replayed_at"],
                    "queued_deliveries": sum(counts.values()), **engine.counters(counts)}, request=request)


async def replay_event(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    event_id = request.path_params["event_id"]
    rt = runtime(request)
    now = rt.clock.time()
    s = scope.settings_for(rt.settings, principal)
    result = await rt.write(lambda tx: engine.op_replay(tx, s, principal, event_id, now))
    return respond(result, request=request)


async def list_deliveries(request: Request) -> Response:
    """Our extension: deliveries newest first (webhooks and http-binding intents), owner-scoped."""
    principal = await authenticate(request, elsewhere_ok=True)
    filters = {k: v for k in ("subscription_id", "event_id", "intent_id", "status", "kind")
               if (v := request.query_params.get(k))}
    if "status" in filters and filters["status"] not in STATUSES:
        raise Unprocessable(f"status: use one of {', '.join(STATUSES)}", code="invalid_parameter",
                            details={"field": "status", "allowed": list(STATUSES)})
    owner = await owner_scope(request, principal)
    if owner is None and not principal.is_member:
        owner = principal.address
    if owner is not None:
        filters["owner_agent"] = owner
    limit = int_param(request, "limit", 100, 1, 1000)
    rows = await runtime(request).reads.list_deliveries(filters, limit, scope.principal_pair(principal))
    return respond({"ok": True, "deliveries": [engine.delivery_view(r) for r in rows]}, request=request)


async def set_delivery(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    sa_id = request.path_params["sa_id"]
    req = _parse(DeliveryConfigRequest, await read_object(request))
    _check_callback(request, req)
    rt = runtime(request)
    await _sa_of_this_workspace(rt, principal, sa_id)
    now = rt.clock.time()
    result = await rt.write(lambda tx: engine.op_set_delivery(tx, principal, sa_id, req, now))
    return respond(result, request=request)


async def _sa_of_this_workspace(rt: Runtime, principal: Principal, sa_id: str) -> Row | None:
    """A service account of the caller's workspace; another workspace's is 404."""
    sa = await rt.reads.get_service_account(sa_id)
    if sa is not None and not scope.owns(scope.settings_for(rt.settings, principal), sa):
        raise NotFound(f"service account {sa_id} not found", code="service_account_not_found")
    return sa


async def get_delivery(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    sa_id = request.path_params["sa_id"]
    sa = await _sa_of_this_workspace(runtime(request), principal, sa_id)
    if sa is None or sa["status"] == "deleted" or not (principal.is_member or principal.service_account_id == sa_id):
        raise NotFound(f"service account {sa_id} not found", code="service_account_not_found")
    return respond({"ok": True, "delivery": engine.delivery_config_view(sa)}, request=request)


routes = [
    Route("/v1/webhooks/subscriptions", create_subscription, methods=["POST"]),
    Route("/v1/webhooks/subscriptions", list_subscriptions, methods=["GET"]),
    Route("/v1/webhooks/subscriptions/{subscription_id}", delete_subscription, methods=["DELETE"]),
    Route("/v1/webhooks/events", publish_event, methods=["POST"]),
    Route("/v1/webhooks/events/{event_id}", get_event, methods=["GET"]),
    Route("/v1/webhooks/events/{event_id}/replay", replay_event, methods=["POST"]),
    Route("/v1/webhooks/deliveries", list_deliveries, methods=["GET"]),
    Route("/v1/service-accounts/{sa_id}/delivery", set_delivery, methods=["PATCH", "PUT"]),
    Route("/v1/service-accounts/{sa_id}/delivery", get_delivery, methods=["GET"]),
]

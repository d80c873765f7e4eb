"""Routing endpoints and transport bindings (AXME's ``routing.*``, ``transports.bindings.*``): where a principal's
intents are delivered.

An address's intents go to the first of (``store/routing_sql.DELIVERY_TARGETS``, the one query both delivery and
``POST /v1/routing/resolve`` read):

1. its routing endpoints that may take traffic (``status`` active, ``health_status`` not unhealthy), the lowest
   ``priority`` number first: so marking one unhealthy, inactive or draining (PATCH) fails over to the next;
2. its transport bindings (``status`` active), by priority;
3. its service account's http binding (``PATCH /v1/service-accounts/{id}/delivery``);
4. else its feed (``GET /v1/agents/{address}/intents/stream``), as for any agent.

1-3 are the existing http delivery (engine/delivery.py, runtime/sender.py): each attempt is POSTed to the URL,
signed with ``X-Axme-Signature`` (the route's or binding's own secret, answered once when it is made; a route with
``auth_mode: none`` is not signed), and recorded DELIVERED on a 2xx; a failed attempt leaves the intent's
redelivery timer to make the next, which goes to whatever is first then. Every URL is dialled through
``runtime/egress.py``, so a caller's URL never reaches an internal address the runtime was not told to allow.
Only ``http`` and ``webhook`` (a POST either way) with ``signed_key`` or ``none`` can be run here; the gateway's
other transports and auth modes are refused (422 naming the field) rather than stored and never used.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from axme_cli.protocol import routing as wire
from axme_cli.protocol.ids import uuid7
from axme_cli.runtime.clock import iso
from axme_cli.runtime.engine import audit
from axme_cli.runtime.engine.codec import dumps, loads
from axme_cli.runtime.engine.outbound import new_secret
from axme_cli.runtime.engine.principals_admin import Target, find, may_manage, tenancy
from axme_cli.runtime.errors import NotFound, Unprocessable
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Row, Tx

ROUTING_ENDPOINT, TRANSPORT_BINDING, SERVICE_ACCOUNT, AGENT_FEED = (
    "routing_endpoint", "transport_binding", "service_account", "agent_feed")
_SOURCE_OF_TIER = {1: ROUTING_ENDPOINT, 2: TRANSPORT_BINDING, 3: SERVICE_ACCOUNT}


def check_transport(value: str, field: str = "transport_type") -> None:
    if value not in wire.DELIVERABLE_TRANSPORTS:
        raise Unprocessable(f"{field}: {value} cannot be delivered over by this runtime; use "
                            f"{' or '.join(wire.DELIVERABLE_TRANSPORTS)} (an HTTP POST to a URL)",
                            code="transport_not_available",
                            details={"field": field, "allowed": list(wire.DELIVERABLE_TRANSPORTS)})


def check_auth_mode(value: str) -> None:
    if value not in wire.DELIVERABLE_AUTH_MODES:
        raise Unprocessable(f"auth_mode: {value} is not available on this runtime; use signed_key (X-Axme-Signature, "
                            "HMAC-SHA256 of the body) or none", code="auth_mode_not_available",
                            details={"field": "auth_mode", "allowed": list(wire.DELIVERABLE_AUTH_MODES)})


def check_handle(transport_type: str, handle: str) -> None:
    """For http and webhook the handle is the URL intents are POSTed to."""
    try:
        wire.http_url(handle)
    except ValueError:
        raise Unprocessable(f"transport_handle: a {transport_type} binding's handle is the URL intents are POSTed "
                            "to: an http:// or https:// URL with a host", code="invalid_transport_handle",
                            details={"field": "transport_handle"}) from None


# ---------------------------------------------------------------------------------------------
# views


def route_view(row: Row) -> dict[str, Any]:
    """``api.routing.endpoints.*``'s route, plus ``address``: whose intents it takes."""
    return {
        "route_id": row["route_id"],
        "principal_id": row["principal_id"],
        "org_id": row["org_id"],
        "workspace_id": row["workspace_id"],
        "transport_type": row["transport_type"],
        "endpoint_url": row["endpoint_url"],
        "auth_mode": row["auth_mode"],
        "region": row["region"],
        "cluster_id": row["cluster_id"],
        "failover_policy": row["failover_policy"],
        "priority": row["priority"],
        "health_status": row["health_status"],
        "status": row["status"],
        "metadata": loads(row["metadata"]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "address": row["address"],
    }


def binding_view(row: Row) -> dict[str, Any]:
    """``api.transports.bindings.*``'s binding, plus ``address``."""
    return {
        "binding_id": row["binding_id"],
        "principal_id": row["principal_id"],
        "org_id": row["org_id"],
        "workspace_id": row["workspace_id"],
        "transport_type": row["transport_type"],
        "transport_handle": row["transport_handle"],
        "priority": row["priority"],
        "status": row["status"],
        "metadata": loads(row["metadata"]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "address": row["address"],
    }


def _route_of(target: Target, **fields: Any) -> dict[str, Any]:
    """A delivery that is not a routing endpoint, in a route's shape (for ``routing/resolve``)."""
    view = target.view
    return {
        "route_id": fields["route_id"], "principal_id": target.principal_id, "org_id": view["org_id"],
        "workspace_id": view["workspace_id"], "transport_type": fields["transport_type"],
        "endpoint_url": fields["endpoint_url"], "auth_mode": fields.get("auth_mode", "signed_key"), "region": None,
        "cluster_id": None, "failover_policy": "none", "priority": fields.get("priority", 1),
        "health_status": "unknown", "status": "active", "metadata": fields.get("metadata", {}),
        "created_at": fields.get("created_at", view["created_at"]),
        "updated_at": fields.get("updated_at", view["updated_at"]), "address": target.address,
    }


def feed_url(public_url: str, address: str) -> str:
    return f"{public_url}/v1/agents/{quote(address, safe='')}/intents/stream"


def resolution(target: Target, alias: dict[str, Any] | None, delivery_targets: list[Row], routes: list[Row],
               bindings: list[Row], public_url: str) -> dict[str, Any]:
    """``api.routing.resolve.response.v1``'s resolution: the principal, where its intents go now
    (``selected_route``) and every place they could (``candidate_routes``, best first; the first is selected).
    Each carries ``source``: routing_endpoint, transport_binding, service_account (its http binding) or
    agent_feed (no URL to POST to: the agent's feed, which its listeners read)."""
    by_route = {r["route_id"]: r for r in routes}
    by_binding = {b["binding_id"]: b for b in bindings}
    candidates: list[dict[str, Any]] = []
    for t in delivery_targets:
        source = _SOURCE_OF_TIER[int(t["tier"])]
        if source == ROUTING_ENDPOINT and t["target_id"] in by_route:
            route = route_view(by_route[t["target_id"]])
        elif source == TRANSPORT_BINDING and t["target_id"] in by_binding:
            b = by_binding[t["target_id"]]
            route = _route_of(target, route_id=b["binding_id"], transport_type=b["transport_type"],
                              endpoint_url=b["transport_handle"], priority=b["priority"],
                              metadata=loads(b["metadata"]), created_at=b["created_at"], updated_at=b["updated_at"])
        elif source == SERVICE_ACCOUNT:
            route = _route_of(target, route_id=t["target_id"], transport_type="http", endpoint_url=t["callback_url"],
                              created_at=t["created_at"], updated_at=t["created_at"])
        else:  # changed between the two reads: left out
            continue
        candidates.append({**route, "source": source})
    if not candidates:
        candidates.append({**_route_of(target, route_id=f"feed:{target.address}", transport_type="queue",
                                       endpoint_url=feed_url(public_url, target.address), auth_mode="none"),
                           "source": AGENT_FEED})
    return {"alias": alias, "principal": target.view, "selected_route": candidates[0],
            "candidate_routes": candidates, "resolver_chain": list(wire.RESOLVER_CHAIN)}


# ---------------------------------------------------------------------------------------------
# operations


def _managed(tx: Tx, s: Settings, principal: Principal, raw: str) -> Target:
    """The principal ``raw`` names, if the caller may route it (another agent's, to an agent key: 404)."""
    target = find(tx, s, raw)
    if not may_manage(principal, target.address):
        raise NotFound(f"principal_id: no principal {raw!r} in this workspace", code="principal_not_found",
                       details={"field": "principal_id"})
    return target


def op_register_route(tx: Tx, s: Settings, principal: Principal, req: dict[str, Any],
                      now: float) -> tuple[Row, str | None]:
    """A routing endpoint for a principal; with ``auth_mode: signed_key`` its signing secret, answered once."""
    check_transport(req["transport_type"])
    check_auth_mode(req["auth_mode"])
    target = _managed(tx, s, principal, req["principal_id"])
    org, workspace = tenancy(s)
    secret = new_secret() if req["auth_mode"] == "signed_key" else None
    at = iso(now)
    row: Row = {
        "route_id": uuid7(), "org_id": org, "workspace_id": workspace, "principal_id": target.principal_id,
        "address": target.address, "transport_type": req["transport_type"], "endpoint_url": req["endpoint_url"],
        "auth_mode": req["auth_mode"], "region": req.get("region"), "cluster_id": req.get("cluster_id"),
        "failover_policy": req.get("failover_policy") or "none", "priority": req.get("priority") or 100,
        "health_status": "unknown", "status": "active", "metadata": dumps(req.get("metadata") or {}),
        "signing_secret": secret, "created_by": principal.address, "created_at": at, "updated_at": at,
    }
    tx.insert_route(row)
    audit.by(tx, "routing.endpoint.registered", now, principal, owner_agent=target.address,
             target=("routing_endpoint", row["route_id"]), endpoint_url=row["endpoint_url"],
             auth_mode=row["auth_mode"], priority=row["priority"])
    return row, secret


def _route(tx: Tx, s: Settings, principal: Principal, route_id: str) -> Row:
    org, workspace = tenancy(s)
    row = tx.get_route(org, workspace, route_id)
    if row is None or not may_manage(principal, row["address"]):
        raise NotFound(f"routing endpoint {route_id} not found", code="route_not_found")
    return row


def op_update_route(tx: Tx, s: Settings, principal: Principal, route_id: str, req: dict[str, Any],
                    now: float) -> tuple[Row, str | None]:
    """Change the fields given. Turning ``auth_mode`` to signed_key makes a signing secret (answered once); to
    none drops it."""
    row = _route(tx, s, principal, route_id)
    fields: Row = {k: v for k, v in req.items() if k != "metadata"}
    if "metadata" in req:
        fields["metadata"] = dumps(req["metadata"])
    secret = None
    if "auth_mode" in req:
        check_auth_mode(req["auth_mode"])
        if req["auth_mode"] == "none":
            fields["signing_secret"] = None
        elif row["signing_secret"] is None:
            secret = fields["signing_secret"] = new_secret()
    changed = sorted(k for k in fields if k != "signing_secret" and row.get(k) != fields[k])
    if changed or secret is not None:
        fields["updated_at"] = iso(now)
        tx.update_route(route_id, fields)
        row.update(fields)
        audit.by(tx, "routing.endpoint.updated", now, principal, owner_agent=row["address"],
                 target=("routing_endpoint", route_id), changed=changed)
    return row, secret


def op_remove_route(tx: Tx, s: Settings, principal: Principal, route_id: str, now: float) -> dict[str, Any]:
    row = _route(tx, s, principal, route_id)
    tx.delete_route(route_id)
    audit.by(tx, "routing.endpoint.removed", now, principal, owner_agent=row["address"],
             target=("routing_endpoint", route_id))
    return {"route_id": route_id, "removed": True}


def op_upsert_binding(tx: Tx, s: Settings, principal: Principal, req: dict[str, Any],
                      now: float) -> tuple[Row, str | None]:
    """Bind a principal to a transport (one binding per principal and transport: a second upsert changes its
    handle, priority, status and metadata). A new binding's signing secret is answered once."""
    check_transport(req["transport_type"])
    check_handle(req["transport_type"], req["transport_handle"])
    target = _managed(tx, s, principal, req["principal_id"])
    org, workspace = tenancy(s)
    at = iso(now)
    fields: Row = {"transport_handle": req["transport_handle"], "priority": req.get("priority") or 100,
                   "status": req.get("status") or "active", "updated_at": at}
    if req.get("metadata") is not None:
        fields["metadata"] = dumps(req["metadata"])
    existing = tx.binding_for(org, workspace, target.address, req["transport_type"])
    secret = None
    if existing is not None:
        tx.update_binding(existing["binding_id"], fields)
        row = {**existing, **fields}
    else:
        secret = new_secret()
        row = {"binding_id": uuid7(), "org_id": org, "workspace_id": workspace, "principal_id": target.principal_id,
               "address": target.address, "transport_type": req["transport_type"], "metadata": dumps({}),
               "signing_secret": secret, "created_by": principal.address, "created_at": at, **fields}
        tx.insert_binding(row)
    audit.by(tx, "transport.binding." + ("updated" if existing is not None else "created"), now, principal,
             owner_agent=target.address, target=("transport_binding", row["binding_id"]),
             transport_type=row["transport_type"], transport_handle=row["transport_handle"], status=row["status"])
    return row, secret


def op_remove_binding(tx: Tx, s: Settings, principal: Principal, binding_id: str, now: float) -> dict[str, Any]:
    org, workspace = tenancy(s)
    row = tx.get_binding(org, workspace, binding_id)
    if row is None or not may_manage(principal, row["address"]):
        raise NotFound(f"transport binding {binding_id} not found", code="binding_not_found")
    tx.delete_binding(binding_id)
    audit.by(tx, "transport.binding.removed", now, principal, owner_agent=row["address"],
             target=("transport_binding", binding_id))
    return {"binding_id": binding_id, "removed": True}

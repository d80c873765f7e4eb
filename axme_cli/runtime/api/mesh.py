"""/v1/mesh routes (AXME's Agent Mesh, the SDKs' ``client.mesh``): heartbeats, agents with their health, the kill
switch, and the mesh's events (engine/mesh.py).

Who may: an agent key heartbeats for itself and sees only itself and its own events (another agent is 404); the
workspace key and people see every agent, may heartbeat for one (``owner_agent`` / ``x-owner-agent``), and alone
may kill and resume (an agent key gets 403 ``kill_switch_forbidden`` before anything is looked up). An agent in a
path (``{address_id}``) is its service account id, its address (``agent://org/ws/name``, URL-encoded or not,
``org/ws/name``) or its bare name; an unknown one (or one that is no address at all) is 404 ``agent_not_found``.

Every workspace's keys act in their own workspace (``runtime/scope.py``): the agents are the workspace's service
accounts, another workspace's agent is 404 as an unknown one, and its events are not listed.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from axme_cli.protocol import mesh as wire
from axme_cli.protocol.models import UUID_PATTERN
from axme_cli.runtime.api.agents import address_from_path
from axme_cli.runtime.api.common import authenticate, int_param, parse_object, read_body, respond, runtime
from axme_cli.runtime.api.intents import _check_owner_params, validation_failed
from axme_cli.runtime.core import Runtime
from axme_cli.runtime.engine import intents as intents_engine
from axme_cli.runtime.engine import mesh as engine
from axme_cli.runtime.errors import NotFound, Unprocessable
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.scope import settings_for
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Row

_UUID = re.compile(UUID_PATTERN)
# Short names of the event types a caller may filter by.
EVENT_ALIASES = {"kill": wire.KILLED, "killed": wire.KILLED, "resume": wire.RESUMED, "resumed": wire.RESUMED,
                 "health": wire.HEALTH_CHANGED, "health_change": wire.HEALTH_CHANGED,
                 "health_changed": wire.HEALTH_CHANGED, **{t: t for t in wire.EVENT_TYPES}}
STATUSES = ("active", "killed")


async def _body(request: Request, model: type[BaseModel]) -> dict[str, Any]:
    """The optional JSON body (the SDK sends none) validated by ``model``: the fields that were sent."""
    raw = await read_body(request)
    body = parse_object(raw) if raw.strip() else {}
    try:
        return dict(model.model_validate(body).model_dump(exclude_none=True))
    except ValidationError as exc:
        raise validation_failed(exc) from None


async def _scoped(request: Request) -> tuple[Runtime, Principal, Settings]:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    return rt, principal, settings_for(rt.settings, principal)


async def _account(rt: Runtime, s: Settings, principal: Principal, raw: str) -> Row:
    """The service account of the caller's workspace a path names (its id, address or name), if the caller may see
    it; else 404."""
    value = unquote(raw).strip()
    accounts = await rt.reads.list_service_accounts(s.org, s.workspace)
    found = None
    if _UUID.match(value):
        found = next((r for r in accounts if r["service_account_id"] == value), None)
    if found is None:
        try:
            address = address_from_path(rt, raw, s)
        except Unprocessable:  # no address at all: no agent by that name either
            address = None
        found = next((r for r in accounts if r["address"] == address), None)
    if found is None or (not principal.is_member and principal.address != found["address"]):
        raise NotFound(f"agent {value[:200]} not found", code="agent_not_found", details={"address_id": value[:200]})
    return found


async def heartbeat(request: Request) -> Response:
    rt, principal, s = await _scoped(request)
    _check_owner_params(request)
    req = await _body(request, wire.HeartbeatRequest)  # the body first: a malformed one is 400 whoever sends it
    metrics = req.get("metrics")
    if metrics is not None:
        problem = wire.metrics_problem(metrics)
        if problem is not None:
            raise Unprocessable(f"{problem[0]}: {problem[1]}", details={"field": problem[0]})
    owner = request.query_params.get("owner_agent") or request.headers.get("x-owner-agent")
    if principal.kind == "service_account":
        if owner:  # it may name only itself
            intents_engine.acting_as(s, principal, owner, "owner_agent")
        address = principal.address
    elif not owner:
        raise Unprocessable("owner_agent: a heartbeat is an agent's; send it with the agent's key, or name the agent "
                            "with owner_agent (or x-owner-agent)", details={"field": "owner_agent"})
    else:
        sa = await _account(rt, s, principal, owner)
        if sa["status"] != "active":
            raise NotFound(f"agent {sa['address']} not found", code="agent_not_found")
        address = sa["address"]
    now = rt.clock.time()
    result = await rt.write(lambda tx: engine.op_heartbeat(tx, s, address, metrics, now))
    return respond(result, request=request)


def _choice(request: Request, name: str, allowed: dict[str, str] | tuple[str, ...]) -> str | None:
    raw = (request.query_params.get(name) or "").strip()
    if not raw:
        return None
    choices = allowed if isinstance(allowed, dict) else {a: a for a in allowed}
    if raw.lower() not in choices:
        shown = ", ".join(sorted(set(choices.values())))
        raise Unprocessable(f"{name}: {raw[:100]!r} is not one of {shown}", code="invalid_parameter",
                            details={"field": name, "allowed": sorted(set(choices.values()))})
    return choices[raw.lower()]


async def list_agents(request: Request) -> Response:
    rt, principal, s = await _scoped(request)
    limit = int_param(request, "limit", 100, 1, 1000)
    health = _choice(request, "health", wire.HEALTH_STATES)
    status = _choice(request, "status", STATUSES)
    accounts = await rt.reads.list_service_accounts(s.org, s.workspace)
    if not principal.is_member:
        accounts = [r for r in accounts if r["address"] == principal.address]
    views = await engine.list_agents(rt.reads, s, accounts, rt.clock.time())
    summary = {state: sum(1 for v in views if v["health"] == state) for state in wire.HEALTH_STATES}
    summary["killed"] = sum(1 for v in views if v["killed"])
    chosen = [v for v in views if (health is None or v["health"] == health) and (status is None or
                                                                                 v["status"] == status)]
    return respond({"ok": True, "agents": chosen[:limit], "total": len(chosen), "summary": summary,
                    "health_rules": engine.RULES}, request=request)


async def get_agent(request: Request) -> Response:
    rt, principal, s = await _scoped(request)
    sa = await _account(rt, s, principal, request.path_params["address_id"])
    scope = engine.scope(s)
    row = await rt.reads.mesh_agent_row(scope, sa["address"])
    events = await rt.reads.mesh_events(scope, address=sa["address"], event_type=None, before=None, limit=20)
    return respond({"ok": True, "agent": engine.agent_view(sa, row, rt.clock.time()),
                    "events": [engine.event_view(e) for e in events], "health_rules": engine.RULES}, request=request)


async def _switch(request: Request, op: Any) -> Response:
    rt, principal, s = await _scoped(request)
    engine.may_switch(principal)  # first: an agent key learns nothing of other agents
    reason = (await _body(request, wire.KillRequest)).get("reason") or None
    sa = await _account(rt, s, principal, request.path_params["address_id"])
    now = rt.clock.time()
    result = await rt.write(lambda tx: op(tx, s, principal, sa["address"], reason, now))
    return respond(result, request=request)


async def kill(request: Request) -> Response:
    return await _switch(request, engine.op_kill)


async def resume(request: Request) -> Response:
    return await _switch(request, engine.op_resume)


async def list_events(request: Request) -> Response:
    rt, principal, s = await _scoped(request)
    limit = int_param(request, "limit", 50, 1, 500)
    event_type = _choice(request, "event_type", EVENT_ALIASES)
    before = request.query_params.get("before") or None
    if before is not None and not _UUID.match(before):
        raise Unprocessable("before: the next_before of the previous page (an event id)", code="invalid_parameter",
                            details={"field": "before"})
    named = request.query_params.get("address_id") or None
    address = (await _account(rt, s, principal, named))["address"] if named else None
    if address is None and not principal.is_member:
        address = principal.address
    rows = await rt.reads.mesh_events(engine.scope(s), address=address, event_type=event_type,
                                      before=before, limit=limit)
    next_before = rows[-1]["event_id"] if len(rows) == limit else None
    return respond({"ok": True, "events": [engine.event_view(r) for r in rows], "next_before": next_before},
                   request=request)


routes = [
    Route("/v1/mesh/heartbeat", heartbeat, methods=["POST"]),
    Route("/v1/mesh/agents", list_agents, methods=["GET"]),
    Route("/v1/mesh/events", list_events, methods=["GET"]),
    Route("/v1/mesh/agents/{address_id:path}/kill", kill, methods=["POST"]),
    Route("/v1/mesh/agents/{address_id:path}/resume", resume, methods=["POST"]),
    Route("/v1/mesh/agents/{address_id:path}", get_agent, methods=["GET"]),
]

"""Workflows: applying a ScenarioBundle (``op_apply``), and how a workflow reads (``workflow_view``).

``op_apply`` compiles the bundle, provisions its agents, creates the parent intent and the ``workflows`` row and
starts the first step (``engine/runs.py`` moves the run on from there), all in one transaction.
"""

from __future__ import annotations

import uuid
from typing import Any

from axme_cli.protocol import addresses
from axme_cli.protocol.ids import uuid7
from axme_cli.protocol.scenario import ScenarioBundle, step_kind
from axme_cli.protocol.tasks import HUMAN_TARGET
from axme_cli.runtime import scope
from axme_cli.runtime.clock import iso
from axme_cli.runtime.engine import agents as agents_engine
from axme_cli.runtime.engine import idempotency, outbound, policies, quotas, reactions, runs, saga
from axme_cli.runtime.engine.changes import insert_new_intent
from axme_cli.runtime.engine.codec import dumps, loads
from axme_cli.runtime.engine.effects import Effect
from axme_cli.runtime.engine.runs import qualify
from axme_cli.runtime.errors import Forbidden, NotFound
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Row, Tx

PARENT_TARGET = HUMAN_TARGET  # parents are never on a feed either


def compile_bundle(s: Settings, bundle: ScenarioBundle) -> dict[str, Any]:
    """The runnable form of a bundle: roles resolved to addresses, a kind on every step."""
    key = (id(bundle.agents), id(bundle.humans), id(bundle.workflow), s.org, s.workspace)
    parts = _PARTS.get(key)
    if parts is None:
        if len(_PARTS) >= _PARTS_MAX:
            _PARTS.clear()
        parts = _PARTS[key] = ((bundle.agents, bundle.humans, bundle.workflow), *_compiled_parts(s, bundle))
    return {
        "scenario_id": bundle.scenario_id,
        "title": bundle.title,
        "roles": parts[1],
        "steps": parts[2],
        "entry": parts[3],
        "intent": bundle.intent.model_dump(exclude_none=True, mode="json"),
    }


# The compiled roles, steps and entry of a bundle, by the bundle's parts they come from, for the workspace that
# resolved the addresses. Most applies send a scenario applied before with another intent: api/scenarios.py then
# swaps the intent into the bundle it validated the first time, whose agents, humans and workflow are the very same
# objects, and those are compiled once, not at every apply (~40-60 us: pydantic's dump of each step, the addresses
# qualified). The entry holds the parts themselves, so while it is kept no other object can have their ids: a key
# found is a bundle of those very parts. Like Compiled in
# engine/runs.py, read-only: a workflow's compiled roles and steps may be those of others.
_PARTS: dict[tuple[Any, ...], tuple[tuple[Any, ...], dict[str, dict[str, Any]], list[dict[str, Any]], str]] = {}
_PARTS_MAX = 256


def _compiled_parts(s: Settings, bundle: ScenarioBundle) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]],
                                                                     str]:
    roles: dict[str, dict[str, Any]] = {}
    for a in bundle.agents:
        roles[a.role] = {"kind": "agent", "address": qualify(s, a.address), "display_name": a.display_name or a.role,
                         "delivery_mode": a.delivery_mode or "stream"}
    for h in bundle.humans:
        roles[h.role] = {"kind": "human", "contact": h.contact, "display_name": h.display_name or h.role}
    agent_roles = {a.role for a in bundle.agents}
    human_roles = {h.role for h in bundle.humans}
    steps: list[dict[str, Any]] = []
    wf = bundle.workflow
    if wf is not None and wf.steps:
        for step in wf.steps:
            compiled = step.model_dump(exclude_none=True, mode="json")
            compiled["kind"] = step_kind(step, agent_roles, human_roles)
            steps.append(compiled)
        entry = wf.entry_step or steps[0]["step_id"]
    else:  # no workflow: the intent goes to the first agent as one step
        steps.append({"step_id": "handle", "kind": "agent", "assigned_to": bundle.agents[0].role})
        entry = "handle"
    return roles, steps, entry


def agent_targets(s: Settings, compiled: dict[str, Any]) -> list[tuple[str, str]]:
    """(step_id, address) of every agent the workflow's steps and compensations send a sub-intent to (as the run
    finds its assignee: a role's address, else the name itself qualified), each address once."""
    roles = compiled["roles"]
    seen: dict[str, str] = {}
    for step in compiled["steps"]:
        for spec in (step if step.get("kind") == "agent" else None, step.get("compensate")):
            who = (spec or {}).get("assigned_to")
            if not who:
                continue
            role = roles.get(who)
            if role is not None and role["kind"] != "agent":
                continue
            seen.setdefault(role["address"] if role is not None else qualify(s, who), step["step_id"])
    return [(step_id, address) for address, step_id in seen.items()]


def _check_in_workspace(tx: Tx, s: Settings, addresses_: list[str]) -> None:
    """404 ``agent_not_found`` for an agent of another workspace of this runtime: a workflow runs wholly in the
    workspace it is applied in (an address naming none of the runtime's workspaces is another deployment's)."""
    for address in addresses_:
        named = scope.segments(address)
        if named is not None and named != (s.org, s.workspace) and tx.get_workspace(*named) is not None:
            raise NotFound(f"no agent {address} in this workspace", code="agent_not_found",
                           details={"address": address})


def op_apply(tx: Tx, s: Settings, principal: Principal, bundle: ScenarioBundle, now: float,
             idem: idempotency.Key | None, trace: dict[str, Any] | None = None,
             schedule: dict[str, Any] | None = None) -> dict[str, Any]:
    """Apply a scenario once per Idempotency-Key; a repeat answers the first apply (``idempotent: true``).
    ``schedule``: the run of a schedule this apply is (kept on the parent intent and in its created event)."""
    outcome = idempotency.once(tx, idem, now, lambda: _apply(tx, s, principal, bundle, now, trace, schedule))
    return applied_view(*outcome)


def _apply(tx: Tx, s: Settings, principal: Principal, bundle: ScenarioBundle, now: float,
           trace: dict[str, Any] | None, schedule: dict[str, Any] | None = None) -> dict[str, Any]:
    compiled = compile_bundle(s, bundle)
    targets = agent_targets(s, compiled)
    _check_in_workspace(tx, s, [r["address"] for r in compiled["roles"].values() if r["kind"] == "agent"]
                        + [address for _, address in targets])
    for step_id, address in targets:  # sent as the applier: judged before anything is made
        policies.check_send(tx, s, principal.address, address, step_id=step_id)
    quotas.admit_intent(tx, s, compiled["intent"].get("payload") or {}, now)  # a workflow counts as one intent
    agents_out = []
    own_prefix = addresses.agent_address(s.org, s.workspace, "")
    for spec in bundle.agents:
        address = compiled["roles"][spec.role]["address"]
        created, sa_id = False, None
        if address.startswith(own_prefix):
            existing = tx.active_service_account_by_address(address)
            if existing is not None:
                sa_id = existing["service_account_id"]
            elif spec.create_if_missing:
                if not principal.is_admin:
                    raise Forbidden(f"agent {address} does not exist and only the workspace API key may create it",
                                    code="policy_denied")
                made = agents_engine.op_create_service_account(
                    tx, s, principal, {"name": address, "display_name": spec.display_name}, now)
                sa_id, created = made["service_account"]["service_account_id"], True
        out = {"role": spec.role, "address": address, "created": created, "service_account_id": sa_id,
               "display_name": spec.display_name or spec.role, "delivery_mode": spec.delivery_mode or "stream"}
        if sa_id is not None and spec.delivery_mode == "http" and spec.callback_url and principal.is_admin:
            # The http binding: intents to this agent are POSTed to callback_url (signed); a new delivery
            # secret is answered once, here, like a key.
            bound = outbound.op_set_delivery(tx, principal, sa_id,
                                             {"delivery_mode": "http", "callback_url": spec.callback_url}, now)
            if "delivery_secret" in bound:
                out["delivery_secret"] = bound["delivery_secret"]
        agents_out.append(out)
    intent = compiled["intent"]
    workflow_id = uuid7()
    req: dict[str, Any] = {
        "intent_type": intent["type"],
        "correlation_id": str(uuid.uuid4()),
        "from_agent": principal.address,
        "to_agent": PARENT_TARGET,
        "payload": intent.get("payload") or {},
        "deadline_at": intent.get("deadline_at"),
        "reply_to": intent.get("reply_to"),
        "max_delivery_attempts": intent.get("max_delivery_attempts"),
        "remind_after_seconds": intent.get("remind_after_seconds"),
        "remind_interval_seconds": intent.get("remind_interval_seconds"),
        "max_reminders": intent.get("max_reminders"),
        "escalate_to": intent.get("escalate_to"),
        "trace": trace,
        "schedule": schedule,
    }
    parent = insert_new_intent(tx, s, req, now, on_feed=False, doc_extra={
        "workflow_id": workflow_id, "workflow_parent": True, "scenario_id": bundle.scenario_id,
        "pending_with": {"type": "internal", "ref": PARENT_TARGET, "name": "agent_core"},
    })
    fx: list[Effect] = []
    run = runs.Run(tx, s, parent, workflow_id, compiled, saga.new_state(), now,
                   runs.Compiled.keep(workflow_id, compiled)[1], fx)
    runs.start(run)  # reads no workflow row: the row is written once, with the state the first step left
    tx.insert_workflow({
        "workflow_id": workflow_id, "parent_intent_id": parent["intent_id"], "scenario_id": bundle.scenario_id,
        "compiled": dumps(compiled), "state": dumps(run.state), "created_at": iso(now), "updated_at": iso(now),
    })
    reactions.settle(tx, s, fx)
    pending = loads(parent["doc"]).get("pending_with") or {}
    return {"intent_id": parent["intent_id"], "scenario_id": bundle.scenario_id, "workflow_id": workflow_id,
            "status": parent["status"], "pending_with": pending.get("ref"), "agents": agents_out,
            "deadline_at": intent.get("deadline_at"), "created_at": parent["created_at"]}


def applied_view(result: dict[str, Any], replayed: bool) -> dict[str, Any]:
    """The answer to an apply, from its result (or an earlier apply's: rows cached before results were kept
    have ``compile_id`` where results have ``workflow_id``)."""
    workflow_id = result["workflow_id"] if "workflow_id" in result else result["compile_id"]
    return {
        "ok": True,
        "intent_id": result["intent_id"],
        "scenario_id": result["scenario_id"],
        "compile_id": workflow_id,
        "workflow_compile_id": workflow_id,
        "status": result["status"],
        "pending_with": result["pending_with"],
        "idempotent": replayed,
        "agents": result["agents"],
        "deadline_at": result["deadline_at"],
        "created_at": result["created_at"],
    }


def workflow_view(row: Row) -> dict[str, Any]:
    """The workflow part of a parent intent for readers (CLI watch, dashboard)."""
    compiled, state = loads(row["compiled"]), loads(row["state"])
    return {
        "workflow_id": row["workflow_id"], "scenario_id": row["scenario_id"], "phase": state["phase"],
        "current_step": state["step"], "attempt": state["attempt"], "steps": [st["step_id"] for st in
                                                                              compiled["steps"]],
        "history": state["history"], "completed": state["completed"], "compensated": state["compensated"],
        "compensation_failed": state["compensation_failed"], "failure": state["failure"],
    }

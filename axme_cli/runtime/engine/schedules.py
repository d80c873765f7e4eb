"""Schedules: operations on them (create, pause, resume, delete, trigger) and firing one (the scheduler).

A run is what ``POST /v1/scenarios/apply`` or ``POST /v1/intents`` does, done by the same operation
(``workflows.op_apply``, ``intents.op_create``) inside the transaction that claims the due schedule and moves its
``next_fire_ts`` on (``op_fire``): the run and the move commit together or not at all, so an occurrence runs once,
whatever crashes, and on PostgreSQL the claim (``SKIP LOCKED``) lets one replica fire it. The run's intent carries
``schedule: {schedule_id, trigger, scheduled_for, catch_up}`` in its doc and its ``intent.created`` event's details,
and ``schedule_id`` in its view. What to do with a missed or overlapping occurrence is ``schedule_times.decide``.

Schedules are workspace configuration: the workspace admin key creates, changes, triggers and deletes them; people
(and the admin key) read them; agent keys may do neither. Runs are sent as the admin key that created the schedule.
A schedule belongs to the workspace of the key that made it (``org_id`` / ``workspace_id``, NULL for the runtime's
default one: ``scope.principal_pair``): another workspace's schedule is 404, and its runs act in its own workspace. An
intent schedule sent to an alias (``spec.to_alias``) resolves it again at each run, so a run follows a rebind.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import ValidationError

from axme_cli.protocol.ids import uuid7
from axme_cli.protocol.scenario import ScenarioBundle
from axme_cli.protocol.schedules import next_after
from axme_cli.runtime.clock import iso
from axme_cli.runtime.engine import aliases, audit, idempotency, intents, workflows
from axme_cli.runtime.engine import schedule_times as times
from axme_cli.runtime.engine.codec import dumps, loads
from axme_cli.runtime.errors import Forbidden, NotFound, Unprocessable
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.scope import belongs, principal_pair, settings_for
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Row, Tx

ACTIVE, PAUSED = "active", "paused"
FAILED = "failed"
MAX_ERROR = 500  # characters of a failed run's reason kept on the schedule


def check_may_read(principal: Principal) -> None:
    if not principal.is_member:
        raise Forbidden("schedules are workspace configuration: an agent key may not see or change them",
                        code="policy_denied")


def check_may_change(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden("only the workspace admin key creates, changes, triggers or deletes schedules",
                        code="policy_denied")


def _at(ts: float | None) -> str | None:
    return iso(ts) if ts is not None else None


def schedule_view(row: Row, *, full: bool = False) -> dict[str, Any]:
    """A schedule as the API shows it; ``full`` adds what runs (the bundle or the intent)."""
    spec = loads(row["spec"])
    view: dict[str, Any] = {
        "schedule_id": row["schedule_id"],
        "description": row["description"],
        "cron": row["cron"],
        "timezone": row["timezone"],
        "kind": row["kind"],
        "scenario_id": spec.get("scenario_id") if row["kind"] == "scenario" else None,
        "intent_type": (spec.get("intent") or {}).get("type") if row["kind"] == "scenario" else spec.get("intent_type"),
        "to_agent": spec.get("to_agent") if row["kind"] == "intent" else None,
        "payload": loads(row["payload"]) if row["payload"] else None,
        "missed_run_policy": row["missed_run_policy"],
        "overlap_policy": row["overlap_policy"],
        "status": row["status"],
        "paused": row["status"] == PAUSED,
        "next_fire_at": _at(row["next_fire_ts"]),
        "last_fire_at": _at(row["last_fire_ts"]),
        "last_intent_id": row["last_intent_id"],
        "last_outcome": row["last_outcome"],
        "last_error": row["last_error"],
        "runs": row["runs"],
        "skipped_overlap": row["skipped_overlap"],
        "skipped_missed": row["skipped_missed"],
        "failures": row["failures"],
        "created_by": row["created_by"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }
    if full:
        view[row["kind"]] = {k: v for k, v in spec.items() if v is not None}
    return view


def _row(tx: Tx, schedule_id: str, principal: Principal) -> Row:
    """The schedule, if it is of the caller's workspace (another's is 404, as a missing one)."""
    row = tx.get_schedule(schedule_id)
    if not belongs(principal, row):
        raise NotFound(f"schedule {schedule_id} not found", code="schedule_not_found")
    assert row is not None
    return row


def _saved(tx: Tx, row: Row, fields: Row) -> Row:
    tx.update_schedule(row["schedule_id"], fields)
    row.update(fields)
    if "next_fire_ts" in fields:
        tx.notes.timer(fields["next_fire_ts"])  # the scheduler sleeps until it (other replicas hear of it too)
    return row


def op_create(tx: Tx, s: Settings, principal: Principal, req: dict[str, Any], now: float,
              idem: idempotency.Key | None = None) -> dict[str, Any]:
    """``req``: what the route checked: cron, timezone, kind, spec (the bundle, or the intent as
    ``api.intents.create_request`` made it), payload, the two policies, paused, description."""
    check_may_change(principal)
    made = idempotency.once(tx, idem, now, lambda: _create(tx, principal, req, now)).result
    row = _row(tx, made["schedule_id"], principal)
    return {"ok": True, "schedule": schedule_view(row, full=True)}


def _create(tx: Tx, principal: Principal, req: dict[str, Any], now: float) -> dict[str, Any]:
    schedule_id = uuid7()
    paused = bool(req.get("paused"))
    row: Row = {
        "schedule_id": schedule_id, "description": req.get("description"), "cron": req["cron"],
        "timezone": req["timezone"], "kind": req["kind"], "spec": dumps(req["spec"]),
        "payload": dumps(req["payload"]) if req.get("payload") is not None else None,
        "missed_run_policy": req["missed_run_policy"], "overlap_policy": req["overlap_policy"],
        "status": PAUSED if paused else ACTIVE,
        "next_fire_ts": None if paused else next_after(req["cron"], req["timezone"], now),
        "created_by": principal.address, "created_by_key_id": principal.key_id,
        "org_id": principal_pair(principal)[0], "workspace_id": principal_pair(principal)[1],
        "created_at": iso(now), "updated_at": iso(now),
    }
    tx.insert_schedule(row)
    tx.notes.timer(row["next_fire_ts"])
    audit.by(tx, "schedule.created", now, principal, target=("schedule", schedule_id), cron=req["cron"],
             timezone=req["timezone"], kind=req["kind"], paused=paused)
    return {"schedule_id": schedule_id}


def op_pause(tx: Tx, principal: Principal, schedule_id: str, now: float) -> dict[str, Any]:
    """No occurrence fires while paused (a paused schedule may still be triggered)."""
    check_may_change(principal)
    row = _row(tx, schedule_id, principal)
    if row["status"] != PAUSED:
        _saved(tx, row, {"status": PAUSED, "next_fire_ts": None, "updated_at": iso(now)})
        audit.by(tx, "schedule.paused", now, principal, target=("schedule", schedule_id))
    return {"ok": True, "schedule": schedule_view(row)}


def op_resume(tx: Tx, principal: Principal, schedule_id: str, now: float) -> dict[str, Any]:
    """From the first occurrence after now: what was due while paused never runs."""
    check_may_change(principal)
    row = _row(tx, schedule_id, principal)
    if row["status"] != ACTIVE:
        _saved(tx, row, {"status": ACTIVE, "next_fire_ts": next_after(row["cron"], row["timezone"], now),
                         "updated_at": iso(now)})
        audit.by(tx, "schedule.resumed", now, principal, target=("schedule", schedule_id))
    return {"ok": True, "schedule": schedule_view(row)}


def op_delete(tx: Tx, principal: Principal, schedule_id: str, now: float) -> dict[str, Any]:
    """The schedule goes; runs it started go on."""
    check_may_change(principal)
    row = _row(tx, schedule_id, principal)
    tx.delete_schedule(schedule_id)
    audit.by(tx, "schedule.deleted", now, principal, target=("schedule", schedule_id), cron=row["cron"])
    return {"ok": True, "schedule_id": schedule_id, "deleted": True}


def _previous_status(tx: Tx, row: Row) -> str | None:
    """The status of the schedule's latest run (None: none yet, or its intent is gone)."""
    if not row["last_intent_id"]:
        return None
    intent = tx.get_intent(row["last_intent_id"])
    return intent["status"] if intent is not None else None


def _start_run(tx: Tx, s: Settings, row: Row, now: float, run: dict[str, Any]) -> str:
    """Start one run: the bundle applied or the intent sent, as the admin key that made the schedule, in the
    schedule's workspace (``s``: any settings of the runtime; the run's are scoped to the row's pair). Returns the
    run's intent id. Raises what the apply or create refuses (the caller records it as a failed run)."""
    principal = Principal("workspace", row["created_by_key_id"] or "", row["created_by"],
                          org_id=row.get("org_id"), workspace_id=row.get("workspace_id"))
    if principal.workspace_id is not None:
        s = settings_for(s, principal)
    spec = loads(row["spec"])
    extra = loads(row["payload"]) if row["payload"] else {}
    if row["kind"] == "scenario":
        if extra:
            intent = spec.get("intent") or {}
            spec = {**spec, "intent": {**intent, "payload": {**(intent.get("payload") or {}), **extra}}}
        try:
            bundle = ScenarioBundle.model_validate(spec)
        except ValidationError as exc:  # it passed when the schedule was made: this runtime reads bundles otherwise
            first = exc.errors(include_url=False, include_input=False)[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise Unprocessable(f"the schedule's scenario is no longer valid: {where}: {first.get('msg')}",
                                code="scenario_invalid", details={"field": f"scenario.{where}"}) from None
        # No idempotency key: the bundle's own would make every later run a repeat of the first, and the claim
        # already runs each occurrence once.
        applied = workflows.op_apply(tx, s, principal, bundle, now, None, schedule=run)
        return str(applied["intent_id"])
    req = {**spec, "correlation_id": spec.get("correlation_id") or str(uuid.uuid4()),
           "payload": {**(spec.get("payload") or {}), **extra}, "schedule": run}
    if spec.get("to_alias"):
        req = aliases.resolve_in(tx, s, req)
    return str(intents.op_create(tx, s, principal, req, now)["intent_id"])


def op_fire(tx: Tx, s: Settings, schedule_id: str, now: float) -> str | None:
    """Fire the schedule's due occurrence: run it or skip it (``schedule_times.decide``) and move on to the next.
    None when it is not due (another replica fired it, or holds it now)."""
    row = tx.claim_due_schedule(schedule_id, now)
    if row is None:
        return None
    if row["status"] != ACTIVE:  # a paused schedule has no next occurrence: never look at it again until resumed
        _saved(tx, row, {"next_fire_ts": None})
        return None
    due = float(row["next_fire_ts"])
    previous = _previous_status(tx, row) if row["overlap_policy"] == "skip" else None
    decision = times.decide(cron=row["cron"], timezone=row["timezone"], due=due, now=now,
                            missed_run_policy=row["missed_run_policy"], overlap_policy=row["overlap_policy"],
                            previous_status=previous)
    fields: Row = {"next_fire_ts": decision.next_fire, "last_outcome": decision.outcome, "updated_at": iso(now)}
    if decision.outcome == times.RUN:
        run: dict[str, Any] = {"schedule_id": schedule_id, "trigger": "cron", "scheduled_for": iso(due)}
        if decision.catch_up:
            run["catch_up"] = True
        intent_id = _start_run(tx, s, row, now, run)
        fields.update({"last_fire_ts": now, "last_intent_id": intent_id, "last_error": None,
                       "runs": row["runs"] + 1})
        tx.notes.see(("schedule", "run", "cron"))
    elif decision.outcome == times.SKIPPED_OVERLAP:
        fields["skipped_overlap"] = row["skipped_overlap"] + 1
        tx.notes.see(("schedule", "skip", "overlap"))
    else:
        fields["skipped_missed"] = row["skipped_missed"] + 1
        tx.notes.see(("schedule", "skip", "missed"))
    _saved(tx, row, fields)
    return decision.outcome


def op_record_failure(tx: Tx, schedule_id: str, due: float, reason: str, now: float) -> bool:
    """A run ``op_fire`` could not start (it rolled back): the occurrence counts as failed and the schedule moves
    on to the first occurrence after now. False when the occurrence is no longer due (fired meanwhile)."""
    row = tx.get_schedule(schedule_id)
    if row is None or row["status"] != ACTIVE or row["next_fire_ts"] != due or due > now:
        return False
    _saved(tx, row, {"next_fire_ts": next_after(row["cron"], row["timezone"], max(due, now)), "last_outcome": FAILED,
                     "last_error": reason[:MAX_ERROR], "failures": row["failures"] + 1, "updated_at": iso(now)})
    tx.notes.see(("schedule", "failed", "cron"))
    return True


def op_trigger(tx: Tx, s: Settings, principal: Principal, schedule_id: str, now: float,
               overlap_policy: str | None = None) -> dict[str, Any]:
    """Run now, paused or not, without moving the next occurrence; the overlap policy (the schedule's, or the one
    given) still applies. A run that cannot start is the caller's error (nothing is recorded)."""
    check_may_change(principal)
    row = _row(tx, schedule_id, principal)
    policy = overlap_policy or row["overlap_policy"]
    previous = _previous_status(tx, row) if policy == "skip" else None
    outcome = times.decide_trigger(policy, previous)
    answer: dict[str, Any]
    if outcome == times.RUN:
        intent_id = _start_run(tx, s, row, now, {"schedule_id": schedule_id, "trigger": "manual"})
        _saved(tx, row, {"last_fire_ts": now, "last_intent_id": intent_id, "last_outcome": outcome,
                         "last_error": None, "runs": row["runs"] + 1, "updated_at": iso(now)})
        answer = {"started": True, "intent_id": intent_id}
        tx.notes.see(("schedule", "run", "manual"))
    else:
        answer = {"started": False, "skipped": "overlap", "previous_intent_id": row["last_intent_id"],
                  "previous_status": previous}
        _saved(tx, row, {"last_outcome": outcome, "skipped_overlap": row["skipped_overlap"] + 1,
                         "updated_at": iso(now)})
        tx.notes.see(("schedule", "skip", "overlap"))
    audit.by(tx, "schedule.triggered", now, principal, target=("schedule", schedule_id),
             intent_id=answer.get("intent_id"), skipped=answer.get("skipped"))
    return {"ok": True, "schedule": schedule_view(row), "run": answer}

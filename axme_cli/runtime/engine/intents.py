"""Intent operations: each ``op_*`` function runs inside one store transaction (``Tx``).

An operation checks who may do what, changes the intent through ``engine/changes.py`` (the lifecycle table
decides what is legal) and settles what followed (``reactions.settle``: a workflow moving on, a ``reply_to``
inbox, a delivery) right after each change, in the same transaction.
"""

from __future__ import annotations

from typing import Any

from axme_cli.protocol import addresses, tasks
from axme_cli.protocol import lifecycle as lc
from axme_cli.runtime import scope
from axme_cli.runtime.clock import iso
from axme_cli.runtime.engine import (
    aliases,
    audit,
    human_tasks,
    idempotency,
    inbox,
    mesh,
    policies,
    quotas,
    reactions,
    reminders,
    runs,
    schemas,
)
from axme_cli.runtime.engine.answers import check_task_result
from axme_cli.runtime.engine.changes import SCHEDULER, apply_event, arm_timer, insert_new_intent, wake_of
from axme_cli.runtime.engine.codec import loads, shared
from axme_cli.runtime.engine.effects import DeliveryDue, Effect, TimerDue
from axme_cli.runtime.engine.views import intent_view
from axme_cli.runtime.errors import Conflict, Forbidden, NotFound, Unprocessable
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Row, Tx


def _insert_human_task(tx: Tx, s: Settings, req: dict[str, Any], now: float) -> Row:
    """A direct intent for people: never on a feed; it waits (WAITING_FOR_HUMAN) until someone answers it.
    Its reminders and escalation run on its ``timer_ts`` (engine/human_tasks.py), its deadline is ``deadline_at``."""
    task = tasks.with_defaults(req["human_task"])
    row = insert_new_intent(tx, s, {**req, "human_task": task}, now, on_feed=False)
    assignees = task.get("assignees") or []
    holder = {"type": "human", "ref": assignees[0] if assignees else "workspace",
              "name": ", ".join(assignees) if assignees else "any member of the workspace"}
    remind = reminders.new_remind(req, now)
    human_tasks.open_task(tx, s, row, task, holder, now, actor=req["from_agent"],
                    doc_updates={"remind": remind} if remind else None)
    if remind:
        arm_timer(tx, row, remind["at"])
    return row


def op_answer_task(tx: Tx, s: Settings, principal: Principal, row: Row, doc: dict[str, Any],
                   body: dict[str, Any], now: float) -> dict[str, Any]:
    """A person answers a direct human task: an approving outcome completes it, a rejecting one cancels it."""
    if not principal.is_member:
        raise Forbidden("a human task is answered by a person or the workspace key, not an agent key",
                        code="policy_denied")
    answer = body.get("task_result")
    if not isinstance(answer, dict) or not isinstance(answer.get("outcome"), str):
        raise Unprocessable('answer the task with {"task_result": {"outcome": ...}}',
                            details={"field": "task_result.outcome",
                                     "allowed": (doc.get("human_task") or {}).get("allowed_outcomes")})
    check_task_result(doc.get("human_task"), body)
    result = {**answer, "answered_by": principal.address}
    fx: list[Effect] = []
    if tasks.is_rejection(answer["outcome"]):
        apply_event(tx, s, row, "intent.canceled", now, actor=principal.address,
                    details={"via": "task_result", "outcome": answer["outcome"]},
                    doc_updates={"result": result, "error": {"reason": f"{answer['outcome']} by {principal.address}"}},
                    fx=fx)
    else:
        apply_event(tx, s, row, "intent.completed", now, actor=principal.address,
                    details={"via": "task_result", "outcome": answer["outcome"]}, doc_updates={"result": result},
                    fx=fx)
    reactions.settle(tx, s, fx)
    return {"ok": True, "applied": True, "intent": intent_view(row)}



def op_create(
    tx: Tx,
    s: Settings,
    principal: Principal,
    req: dict[str, Any],
    now: float,
    idem: idempotency.Key | None = None,
    checked: schemas.Check | None = None,
) -> dict[str, Any]:
    """Create an intent: rows for the intent, ``intent.created`` and ``intent.submitted``, a feed entry.
    ``checked``: its payload judged against the schema of its type (engine/schemas.py), confirmed still current."""
    return created_view(idempotency.once(tx, idem, now, lambda: _create(tx, s, req, now, checked)).result)


def _create(tx: Tx, s: Settings, req: dict[str, Any], now: float,
            checked: schemas.Check | None = None) -> dict[str, Any]:
    schemas.confirm(tx, checked)  # no query unless a schema applied
    req = aliases.confirm(tx, s, req)  # no query unless it was sent to an alias
    quotas.admit_intent(tx, s, req["payload"], now)  # no query unless a quota limits intents
    if checked is not None:
        req = {**req, "schema_validation": checked.details()}  # recorded on intent.created
    if addresses.is_core(req["to_agent"], s.org, s.workspace):
        req = {**req, "to_agent": tasks.HUMAN_TARGET}  # one address however it was written, so lists agree
    policies.check_send(tx, s, req["from_agent"], req["to_agent"])  # no query unless a policy restricts
    if req["to_agent"] == tasks.HUMAN_TARGET and req.get("human_task"):
        row = _insert_human_task(tx, s, req, now)
    else:
        fx: list[Effect] = []
        row = insert_new_intent(tx, s, req, now, fx=fx)
        reactions.settle(tx, s, fx)
    return {"intent_id": row["intent_id"], "status": row["status"], "created_at": row["created_at"]}


def created_view(result: dict[str, Any]) -> dict[str, Any]:
    """The answer to a create, from its result (or an earlier call's)."""
    return {"ok": True, "intent_id": result["intent_id"], "status": result["status"],
            "created_at": result["created_at"]}


def op_mark_delivered(tx: Tx, s: Settings, intent_id: str, attempt: int, actor: str, now: float) -> None:
    """The agent feed handed the intent to a listener: SUBMITTED/DELIVERED -> DELIVERED, once per attempt."""
    row = tx.get_intent(intent_id)
    if row is None or row["delivered_attempt"] >= attempt or row["delivery_attempt"] != attempt:
        return
    if not lc.can_apply(row["status"], "intent.delivered"):
        tx.update_intent(intent_id, {"delivered_attempt": attempt})
        return
    apply_event(tx, s, row, "intent.delivered", now, actor=actor, details={"delivery_attempt": attempt},
                updates={"delivered_attempt": attempt})


def op_mark_delivered_many(tx: Tx, s: Settings, deliveries: list[tuple[str, int]], actor: str, now: float) -> None:
    """A feed's frames, sent (Runtime.deliver_behind): need not wait for the disk either: a crash of the database
    that loses the marks leaves the intents as the feed found them, to be delivered again (at least once), and an
    answer to one of them committed after the marks waits for the disk with them."""
    tx.lazy_commit()
    if len(deliveries) > 1:
        tx.will_read_intents([intent_id for intent_id, _ in deliveries])
    for intent_id, attempt in deliveries:
        op_mark_delivered(tx, s, intent_id, attempt, actor, now)


_RESUME_ACTIONS = {
    "complete": "intent.completed",
    "completed": "intent.completed",
    "success": "intent.completed",
    "fail": "intent.failed",
    "failed": "intent.failed",
    "failure": "intent.failed",
    "in_progress": "intent.in_progress",
    "progress": "intent.in_progress",
    "start": "intent.in_progress",
}


def _resume_event(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Which event a resume body asks for, and the rest of the body."""
    rest = {k: v for k, v in body.items() if k not in ("action", "outcome")}
    action = body.get("action")
    if action is None and isinstance(body.get("outcome"), str):
        action = body["outcome"]
    if isinstance(action, str):
        event_type = _RESUME_ACTIONS.get(action.lower())
        if event_type is None:
            raise Unprocessable(
                f"action: unknown action {action!r}; use complete, fail or in_progress",
                details={"field": "action", "allowed": ["complete", "fail", "in_progress"]},
            )
        return event_type, rest
    if isinstance(body.get("task_result"), dict):
        return "intent.completed", rest
    if body.get("approve_current_step") is True:
        return "intent.completed", rest
    raise Unprocessable(
        'resume needs "action": "complete", "fail" or "in_progress" (or a "task_result")',
        details={"field": "action", "allowed": ["complete", "fail", "in_progress"]},
    )



def acting_as(s: Settings, principal: Principal, named: Any, field: str = "actor") -> tuple[str, dict[str, Any]]:
    """Who an event records as acting, and what its ``details`` add. The credential decides (design.md §9): a
    principal named in the body (``actor``, ``from_agent``, ``owner_agent``) must be the caller itself, else 403
    ``actor_mismatch``; only the workspace admin key may name another (AXME's contract suite sends ``from_agent``
    with it), and then the event records the one named as ``actor`` and the admin key as ``details.acted_by``."""
    if named is None or named == "":
        return principal.address, {}
    if not isinstance(named, str):
        raise Unprocessable(f"{field}: must be a string (an address)", details={"field": field})
    name = named.strip()
    if principal.address in (name, addresses.qualify(name, s.org, s.workspace)) or (
            principal.email is not None and name.lower() == principal.email):
        return principal.address, {}
    if principal.is_admin:
        return name, {"acted_by": principal.address}
    shown = name if len(name) <= 100 else name[:100] + "..."
    raise Forbidden(f"{field}: this credential acts as {principal.address}, not as {shown!r}", code="actor_mismatch",
                    details={"field": field, "allowed": [principal.address]})


def check_may_end(principal: Principal, row: Row, *, cancel: bool) -> None:
    """Who may move an intent on (design.md §9): the agent it is addressed to and the workspace admin key may
    resume, complete, fail or cancel it, and a delegate its policy grants ``resume`` may resume, complete or fail
    it; its sender and people may only cancel it (people answer human tasks through ``op_answer_task``)."""
    if principal.is_admin or row["to_agent"] == principal.address:
        return
    if not cancel and principal.granted(row, "resume"):  # a delegate of its policy (engine/controls.py)
        return
    if cancel and (principal.is_actor or row["from_agent"] == principal.address):
        return
    if cancel:
        raise Forbidden("only the intent's sender, the agent it is addressed to, a person or the workspace admin key "
                        "may cancel it", code="policy_denied")
    hint = "; as its sender you may cancel it" if row["from_agent"] == principal.address else ""
    raise Forbidden(f"only {row['to_agent']} (the agent the intent is addressed to) or the workspace admin key may "
                    f"resume, complete or fail it{hint}", code="policy_denied",
                    details={"allowed": [row["to_agent"]]})


def owned_row(tx: Tx, principal: Principal, intent_id: str) -> Row:
    row = tx.get_intent(intent_id)
    if row is None or not principal.may_see(row):
        raise NotFound(f"intent {intent_id} not found", code="intent_not_found")
    return row


def op_resume(tx: Tx, s: Settings, principal: Principal, intent_id: str, body: dict[str, Any],
              now: float) -> dict[str, Any]:
    row = owned_row(tx, principal, intent_id)
    actor, acted = acting_as(s, principal, body.get("actor"))
    doc = shared(row["doc"])  # read here; the human paths below get a copy of their own
    if "expected_policy_generation" in body:  # the resume's compare-and-set on the intent's policy (controls.py)
        check_generation(doc, body["expected_policy_generation"])
        body = {k: v for k, v in body.items() if k != "expected_policy_generation"}  # not part of the result
    fx: list[Effect] = []
    if doc.get("workflow_parent"):
        answer = runs.resume_parent(tx, s, principal, row, loads(row["doc"]), body, now, fx)
        reactions.settle(tx, s, fx)
        return answer
    if doc.get("human_task") and row["waiting_reason"] == "WAITING_FOR_HUMAN":
        return op_answer_task(tx, s, principal, row, loads(row["doc"]), body, now)
    check_may_end(principal, row, cancel=False)
    event_type, rest = _resume_event(body)
    target = lc.EVENT_TRANSITIONS[event_type][1]
    status = row["status"]
    if status in lc.TERMINAL:
        if target == status:  # a duplicate delivery answered twice: harmless
            return {"ok": True, "applied": False, "intent": intent_view(row)}
        raise Conflict(f"intent {intent_id} is already {status}", code="intent_terminal",
                       details={"status": status})
    if not lc.can_apply(status, event_type):
        raise Conflict(f"cannot {event_type.split('.')[1]} an intent in status {status}",
                       code="invalid_transition", details={"status": status})
    check_task_result(doc.get("human_task"), body)
    doc_updates: dict[str, Any] = {}
    if event_type == "intent.completed":
        doc_updates["result"] = rest
    elif event_type == "intent.failed":
        error = rest.get("error") if isinstance(rest.get("error"), dict) else rest
        doc_updates["error"] = error or {"reason": "failed by agent"}
    apply_event(tx, s, row, event_type, now, actor=actor, details={"via": "resume", **acted, **_summary(rest)},
                doc_updates=doc_updates, fx=fx)
    reactions.settle(tx, s, fx)
    return {"ok": True, "applied": True, "intent": intent_view(row)}


def check_generation(doc: dict[str, Any], expected: Any) -> int:
    """The intent's policy_generation (0, then one more per change of its controls or policy: engine/controls.py),
    if it is ``expected`` (None: nothing expected); else 409 with the current one."""
    current = int(doc.get("policy_generation") or 0)
    if expected is None:
        return current
    if isinstance(expected, bool) or not isinstance(expected, int) or expected < 0:
        raise Unprocessable("expected_policy_generation: must be a whole number from 0",
                            details={"field": "expected_policy_generation"})
    if expected != current:
        raise Conflict(f"expected_policy_generation: the intent's policy_generation is {current}, not {expected} (its "
                       "controls or policy changed meanwhile); read it again and decide again",
                       code="policy_generation_mismatch",
                       details={"field": "expected_policy_generation", "expected": expected,
                                "policy_generation": current})
    return current


def _summary(rest: dict[str, Any]) -> dict[str, Any]:
    reason = rest.get("reason")
    return {"reason": reason} if isinstance(reason, str) else {}


def op_resolve(tx: Tx, s: Settings, principal: Principal, intent_id: str, req: dict[str, Any],
               now: float) -> dict[str, Any]:
    row = owned_row(tx, principal, intent_id)
    status = req["status"]
    actor, acted = acting_as(s, principal, req.get("actor"))
    check_may_end(principal, row, cancel=status == lc.CANCELED)
    if row["status"] in lc.TERMINAL:
        raise Conflict(f"intent {intent_id} is already {row['status']}", code="intent_terminal",
                       details={"status": row["status"]})
    event_type = lc.RESOLVE_EVENT[status]
    if not lc.can_apply(row["status"], event_type):
        raise Conflict(f"cannot resolve an intent in status {row['status']}", code="invalid_transition")
    doc_updates: dict[str, Any] = {}
    details: dict[str, Any] = {"via": "resolve", **acted}
    if status == lc.COMPLETED:
        doc_updates["result"] = req.get("result") or {}
    elif status == lc.FAILED:
        err = req.get("error")
        doc_updates["error"] = err if isinstance(err, dict) else {"message": err or req.get("reason") or "failed"}
    if req.get("reason"):
        details["reason"] = req["reason"]
        if status == lc.CANCELED:
            doc_updates["error"] = {"reason": req["reason"]}
    fx: list[Effect] = []
    event = apply_event(tx, s, row, event_type, now, actor=actor, details=details, doc_updates=doc_updates, fx=fx)
    reactions.settle(tx, s, fx)  # before reading the reply_to thread it writes
    completion = inbox.completion_delivery(tx, s, row)
    audit.by(tx, "intent.resolved", now, principal, owner_agent=row["to_agent"], target=("intent", intent_id),
             status=status, as_actor=actor if actor != principal.address else None, reason=req.get("reason"))
    return {"ok": True, "intent": intent_view(row), "event": event, "completion_delivery": completion}


CLEANUP_STATUSES = [lc.SUBMITTED, lc.DELIVERED, lc.ACKNOWLEDGED, lc.IN_PROGRESS, lc.WAITING]


def op_bulk_cancel(tx: Tx, s: Settings, principal: Principal, req: dict[str, Any], now: float) -> dict[str, Any]:
    if not principal.is_admin:
        raise Forbidden("bulk-cancel needs the workspace API key", code="policy_denied")
    statuses = [st.upper() for st in (req.get("status_filter") or CLEANUP_STATUSES)]
    bad = [st for st in statuses if st not in CLEANUP_STATUSES and st != lc.CREATED]
    if bad:
        raise Unprocessable(f"status_filter: {', '.join(bad)} cannot be canceled",
                            details={"field": "status_filter", "allowed": CLEANUP_STATUSES})
    cutoff = iso(now - float(req["older_than_hours"]) * 3600.0)
    rows = tx.intents_for_cleanup(cutoff, statuses, int(req["limit"]), scope.pair(s))
    ids = [r["intent_id"] for r in rows]
    if req.get("dry_run", True):
        return {"ok": True, "dry_run": True, "would_cancel": len(ids), "intent_ids": ids}
    canceled = []
    fx: list[Effect] = []
    for row in rows:
        fresh = tx.get_intent(row["intent_id"])  # an earlier cancel in this loop may have ended it
        if fresh is None or fresh["status"] in lc.TERMINAL:
            continue
        apply_event(tx, s, fresh, "intent.canceled", now, actor=principal.address,
                    details={"via": "bulk-cancel", "reason": req["reason"]},
                    doc_updates={"error": {"reason": req["reason"]}}, fx=fx)
        reactions.settle(tx, s, fx)  # before the next row: ending a workflow cancels its running step
        canceled.append(fresh["intent_id"])
    if canceled:
        audit.by(tx, "intent.bulk_canceled", now, principal, canceled=len(canceled), intent_ids=canceled[:100],
                 reason=req["reason"])
    return {"ok": True, "dry_run": False, "canceled": len(canceled), "intent_ids": canceled}



def op_fire_due(tx: Tx, s: Settings, now: float, limit: int = 200) -> int:
    """Fire every timer that is due: deadlines, engine timers, redeliveries. Returns how many intents it handled."""
    ids = tx.due_intents(now, limit)
    for intent_id in ids:
        row = tx.get_intent(intent_id)
        if row is None:
            continue
        fx: list[Effect] = []
        mine = scope.settings_of(s, row)  # a timer acts in its intent's workspace
        _fire(tx, mine, row, now, fx)
        reactions.settle(tx, mine, fx)
    return len(ids)


def _fire(tx: Tx, s: Settings, row: Row, now: float, fx: list[Effect]) -> None:
    status = row["status"]
    if status in lc.TERMINAL:
        tx.update_intent(row["intent_id"], {"wake_ts": None, "redeliver_ts": None, "timer_ts": None})
        return
    deadline = row["deadline_ts"]
    if deadline is not None and deadline <= now:
        apply_event(tx, s, row, "intent.timed_out", now, actor=SCHEDULER,
                    details={"reason": "deadline_exceeded", "deadline_at": iso(deadline)},
                    doc_updates={"error": {"code": "intent_timeout", "reason": "deadline_exceeded"}}, fx=fx)
        return
    timer = row.get("timer_ts")
    if timer is not None and timer <= now:
        row["timer_ts"] = None
        tx.update_intent(row["intent_id"], {"timer_ts": None, "wake_ts": wake_of(row)})
        fx.append(TimerDue(row, now))
        return
    redeliver = row["redeliver_ts"]
    if redeliver is not None and redeliver <= now:
        if status not in lc.AWAITING_PICKUP:
            fields: Row = {"redeliver_ts": None}
        elif mesh.held(tx, s, row["to_agent"]):  # a killed agent: the intent waits, no attempt counted
            fields = {"redeliver_ts": now + mesh.HOLD_SECONDS}
        elif row["delivery_attempt"] >= row["max_delivery_attempts"]:
            mesh.note_delivery_failure(tx, s, row["to_agent"], now)
            apply_event(
                tx, s, row, "intent.delivery_failed", now, actor=SCHEDULER,
                details={"delivery_attempt": row["delivery_attempt"],
                         "max_delivery_attempts": row["max_delivery_attempts"]},
                doc_updates={"error": {"code": "delivery_failed",
                                       "reason": "max delivery attempts reached",
                                       "delivery_attempt": row["delivery_attempt"]}},
                fx=fx,
            )
            return
        else:
            mesh.note_delivery_failure(tx, s, row["to_agent"], now)  # the last attempt was not taken in time
            attempt = row["delivery_attempt"] + 1
            fx.append(DeliveryDue(row["to_agent"], row["intent_id"], attempt, now))
            # the intent's own retry_backoff_seconds when its controls set one (engine/controls.py)
            backoff = loads(row["doc"]).get("retry_backoff_seconds") or s.redelivery_seconds
            fields = {"delivery_attempt": attempt, "redeliver_ts": now + backoff}
            tx.notes.see(("redelivered",))
        merged = {**row, **fields}
        fields["wake_ts"] = wake_of(merged)
        tx.update_intent(row["intent_id"], fields)
        tx.notes.timer(fields["wake_ts"])
        return
    # woke early (timers moved): just recompute
    tx.update_intent(row["intent_id"], {"wake_ts": wake_of(row)})
    tx.notes.timer(wake_of(row))

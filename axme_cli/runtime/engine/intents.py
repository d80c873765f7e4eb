"""Intent operations. Each ``op_*`` function runs inside one store transaction (``Tx``).

They hold all lifecycle decisions: the legality of a change comes from
``protocol.lifecycle``; every change appends exactly one event with the next dense ``seq``
and updates the intent row in the same transaction.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

import orjson

from axme_cli.protocol import addresses, tasks
from axme_cli.protocol import lifecycle as lc
from axme_cli.protocol.ids import uuid7
from axme_cli.runtime.clock import iso, parse_iso
from axme_cli.runtime.engine import outbound
from axme_cli.runtime.errors import Conflict, Forbidden, NotFound, Unprocessable
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Row, Tx

_DOC_FIELDS = (
    "reply_to",
    "deadline_at",
    "remind_after_seconds",
    "remind_interval_seconds",
    "max_reminders",
    "escalate_to",
    "human_task",
    "trace",  # the trace context of the request that created it (issue 9; only when tracing is on)
)


def dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError as exc:  # an integer beyond 64 bits (api.common.parse_json refuses those)
        raise Unprocessable(f"a value cannot be stored: {exc}", code="invalid_value") from None


def loads(value: str | bytes) -> Any:
    return orjson.loads(value)


# ---------------------------------------------------------------------------------------------
# views


def pending_with(row: Row, doc: dict[str, Any]) -> dict[str, Any] | None:
    status = row["status"]
    if status in lc.TERMINAL:
        return None
    if doc.get("pending_with"):
        return doc["pending_with"]
    return {"type": "agent", "ref": row["to_agent"], "name": row["to_agent"]}


def intent_view(row: Row) -> dict[str, Any]:
    """The intent as ``GET /v1/intents/{id}`` shows it (axme-reference.md §2.2)."""
    doc = loads(row["doc"])
    status = row["status"]
    human_task = doc.get("human_task")
    view: dict[str, Any] = {
        "intent_id": row["intent_id"],
        "intent_type": row["intent_type"],
        "correlation_id": row["correlation_id"],
        "from_agent": row["from_agent"],
        "to_agent": row["to_agent"],
        "status": status,
        "lifecycle_status": status,
        "legacy_status": lc.LEGACY_STATUS[status],
        "waiting_reason": row["waiting_reason"],
        "lifecycle_waiting_reason": row["waiting_reason"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "payload": loads(row["payload"]),
        "reply_to": doc.get("reply_to"),
        "deadline_at": doc.get("deadline_at"),
        "due_at": doc.get("deadline_at"),
        "remind_after_seconds": doc.get("remind_after_seconds"),
        "remind_interval_seconds": doc.get("remind_interval_seconds"),
        "max_reminders": doc.get("max_reminders"),
        "remind_count": doc.get("remind_count", 0),
        "escalate_to": doc.get("escalate_to"),
        "max_delivery_attempts": row["max_delivery_attempts"],
        "delivery_attempt": row["delivery_attempt"],
        "human_task": human_task,
        "pending_with": pending_with(row, doc),
        "seq": row["last_seq"],
        "result": doc.get("result"),
        "error": doc.get("error"),
    }
    # Unset optional fields are left out rather than null: the spec's schemas allow no nulls there.
    return {k: v for k, v in view.items() if v is not None}


# ---------------------------------------------------------------------------------------------
# the one place that appends an event


def wake_of(fields: Row) -> float | None:
    """When the scheduler must look at this intent next: its earliest timer."""
    times = [t for t in (fields.get("redeliver_ts"), fields.get("deadline_ts"), fields.get("timer_ts"))
             if t is not None]
    return min(times) if times else None


def apply_event(
    tx: Tx,
    s: Settings,
    row: Row,
    event_type: str,
    now: float,
    *,
    actor: str,
    details: dict[str, Any] | None = None,
    waiting_reason: str | None = None,
    updates: Row | None = None,
    doc_updates: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Apply one lifecycle event to ``row`` (mutated in place) and return the event document.

    When the intent belongs to a workflow (a step, a compensation, or the parent) and becomes
    terminal, the workflow engine reacts in the same transaction.
    """
    new_status = lc.next_status(row["status"], event_type)
    seq = row["last_seq"] + 1
    at = iso(now)
    fields: Row = {"status": new_status, "last_seq": seq, "updated_at": at}
    if new_status != lc.WAITING:
        fields["waiting_reason"] = None
    elif waiting_reason is not None:
        fields["waiting_reason"] = waiting_reason
    if new_status in (lc.IN_PROGRESS, lc.WAITING) or new_status in lc.TERMINAL:
        fields["redeliver_ts"] = None
    if new_status in lc.TERMINAL:
        fields["timer_ts"] = None
    if updates:
        fields.update(updates)
    doc = loads(row["doc"])
    if doc_updates:
        doc.update(doc_updates)
        fields["doc"] = dumps(doc)
    merged = {**row, **fields}
    fields["wake_ts"] = None if new_status in lc.TERMINAL else wake_of(merged)
    merged["wake_ts"] = fields["wake_ts"]
    event = {
        "intent_id": row["intent_id"],
        "seq": seq,
        "event_type": event_type,
        "status": new_status,
        "at": at,
        "actor": actor,
        "details": details or {},
    }
    if merged.get("waiting_reason"):
        event["waiting_reason"] = merged["waiting_reason"]
    holder = pending_with(merged, doc)
    if holder is not None:
        event["pending_with"] = holder
    if extra:
        event.update(extra)
    tx.insert_event(row["intent_id"], seq, dumps(event))
    tx.update_intent(row["intent_id"], fields)
    # for metrics and traces, counted after the commit (runtime/metrics.py)
    if new_status in lc.TERMINAL:
        tx.notes.see(("terminal", row["intent_id"], row["intent_type"], new_status, row["created_at"], doc, now))
    elif event_type == "intent.delivered":
        tx.notes.see(("delivered", row["created_at"], doc, not row.get("delivered_attempt"), now))
    if fields["wake_ts"] != row.get("wake_ts"):
        tx.notes.timer(fields["wake_ts"])
    row.update(fields)
    tx.notes.intents.add(row["intent_id"])
    if new_status in lc.TERMINAL and doc.get("reply_to"):
        import axme_cli.runtime.engine.inbox as inbox

        inbox.deliver_completion(tx, s, row, doc, event)
    if new_status in lc.TERMINAL and doc.get("workflow_id"):
        import axme_cli.runtime.engine.workflows as workflows

        workflows.on_terminal(tx, s, row, doc, now)
    return event


# ---------------------------------------------------------------------------------------------
# operations


def insert_new_intent(
    tx: Tx,
    s: Settings,
    req: dict[str, Any],
    now: float,
    *,
    doc_extra: dict[str, Any] | None = None,
    on_feed: bool = True,
) -> Row:
    """Insert an intent with ``intent.created`` and ``intent.submitted``; put it on its agent's feed."""
    intent_id = uuid7()
    at = iso(now)
    to_agent = req["to_agent"]
    doc = {k: req[k] for k in _DOC_FIELDS if req.get(k) is not None}
    if doc_extra:
        doc.update(doc_extra)
    deadline_ts = parse_iso(req["deadline_at"]) if req.get("deadline_at") else None
    row: Row = {
        "intent_id": intent_id,
        "intent_type": req["intent_type"],
        "correlation_id": req["correlation_id"],
        "from_agent": req["from_agent"],
        "to_agent": to_agent,
        # Written once, already SUBMITTED: the two events below record both steps (one row write, not two).
        "status": lc.next_status(lc.CREATED, "intent.submitted"),
        "waiting_reason": None,
        "last_seq": 2,
        "delivery_attempt": 1 if on_feed else 0,
        "delivered_attempt": 0,
        "max_delivery_attempts": req.get("max_delivery_attempts") or s.default_max_delivery_attempts,
        "created_at": at,
        "updated_at": at,
        "deadline_ts": deadline_ts,
        "redeliver_ts": now + s.redelivery_seconds if on_feed else None,
        "timer_ts": None,
        "wake_ts": None,
        "payload": dumps(req["payload"]),
        "doc": dumps(doc),
    }
    row["wake_ts"] = wake_of(row)
    actor = req["from_agent"]
    acted = {"acted_by": req["acted_by"]} if req.get("acted_by") else {}  # the admin key sent it as from_agent
    tx.insert_intent(row)
    tx.insert_event(intent_id, 1, dumps({
        "intent_id": intent_id, "seq": 1, "event_type": "intent.created", "status": lc.CREATED, "at": at,
        "actor": actor, "details": {"intent_type": req["intent_type"], "to_agent": to_agent, **acted},
    }))
    submitted: dict[str, Any] = {
        "intent_id": intent_id, "seq": 2, "event_type": "intent.submitted", "status": row["status"], "at": at,
        "actor": actor, "details": {"delivery_attempt": row["delivery_attempt"], **acted},
    }
    holder = pending_with(row, doc)
    if holder is not None:
        submitted["pending_with"] = holder
    tx.insert_event(intent_id, 2, dumps(submitted))
    tx.notes.intents.add(intent_id)
    tx.notes.see(("created", doc))
    if on_feed:
        outbound.dispatch_intent(tx, to_agent, intent_id, 1, now, row)
    tx.notes.timer(row["wake_ts"])
    return row


def _insert_human_task(tx: Tx, s: Settings, req: dict[str, Any], now: float) -> Row:
    """A direct intent for people: never on a feed; it waits (WAITING_FOR_HUMAN) until someone answers it.
    Its reminders and escalation run on its ``timer_ts`` (engine/human.py), its deadline is ``deadline_at``."""
    import axme_cli.runtime.engine.human as human

    task = tasks.with_defaults(req["human_task"])
    row = insert_new_intent(tx, s, {**req, "human_task": task}, now, on_feed=False)
    assignees = task.get("assignees") or []
    holder = {"type": "human", "ref": assignees[0] if assignees else "workspace",
              "name": ", ".join(assignees) if assignees else "any member of the workspace"}
    remind = human.new_remind(req, now)
    human.open_task(tx, s, row, task, holder, now, actor=req["from_agent"],
                    doc_updates={"remind": remind} if remind else None)
    if remind:
        human.arm_timer(tx, row, remind["at"])
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
    if tasks.is_rejection(answer["outcome"]):
        apply_event(tx, s, row, "intent.canceled", now, actor=principal.address,
                    details={"via": "task_result", "outcome": answer["outcome"]},
                    doc_updates={"result": result, "error": {"reason": f"{answer['outcome']} by {principal.address}"}})
    else:
        apply_event(tx, s, row, "intent.completed", now, actor=principal.address,
                    details={"via": "task_result", "outcome": answer["outcome"]}, doc_updates={"result": result})
    return {"ok": True, "applied": True, "intent": intent_view(row)}


def idempotent_replay(tx: Tx, idem: tuple[str, str, str] | None) -> dict[str, Any] | None:
    """The stored answer for a repeated Idempotency-Key; 409 when the body differs."""
    if idem is None:
        return None
    scope, key, body_hash = idem
    previous = tx.idem_get(scope, key)
    if previous is None:
        return None
    if previous["body_hash"] != body_hash:
        raise Conflict("idempotency key reused with different payload", code="idempotency_conflict")
    answer: dict[str, Any] = loads(previous["response"])
    return answer


def op_create(
    tx: Tx,
    s: Settings,
    principal: Principal,
    req: dict[str, Any],
    now: float,
    idem: tuple[str, str, str] | None = None,
) -> dict[str, Any]:
    """Create an intent: rows for the intent, ``intent.created`` and ``intent.submitted``, a feed entry."""
    replay = idempotent_replay(tx, idem)
    if replay is not None:
        return replay
    if req["to_agent"] == tasks.HUMAN_TARGET and req.get("human_task"):
        row = _insert_human_task(tx, s, req, now)
    else:
        row = insert_new_intent(tx, s, req, now)
    response = {"ok": True, "intent_id": row["intent_id"], "status": row["status"], "created_at": row["created_at"]}
    if idem is not None:
        tx.idem_put(idem[0], idem[1], idem[2], 200, dumps(response), now)
    return response


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


# Verdicts of answers' forms under their tasks' form_schemas, by sha256 of (schema, form): ``judge_form`` fills
# it outside any transaction (on a worker thread, see api.common.write_answer), ``check_task_result`` only looks
# here. Validating a caller's schema costs what the caller makes it cost (up to its size limits, times the
# answer's size), which must not be paid while the writer holds a transaction (on SQLite, on the event loop).
_FORM_VERDICTS: OrderedDict[bytes, tuple[str, str] | None] = OrderedDict()
_FORM_VERDICTS_KEPT = 4096
_FORM_LOCK = threading.Lock()


def _form_key(schema: dict[str, Any], form: dict[str, Any]) -> bytes:
    return hashlib.sha256(dumps([schema, form]).encode()).digest()


def judge_form(schema: dict[str, Any], form: dict[str, Any]) -> None:
    """Validate ``form`` against ``schema`` and keep the verdict for the write that follows."""
    verdict = tasks.form_problem(schema, form)
    key = _form_key(schema, form)
    with _FORM_LOCK:
        _FORM_VERDICTS[key] = verdict
        _FORM_VERDICTS.move_to_end(key)
        while len(_FORM_VERDICTS) > _FORM_VERDICTS_KEPT:
            _FORM_VERDICTS.popitem(last=False)


class FormUnjudged(Conflict):
    """An answer's form has no verdict yet: the caller judges it (``judge_form``) and runs the operation again.
    Reaching a client (409), it means the task changed between the two runs."""

    def __init__(self, schema: dict[str, Any], form: dict[str, Any]) -> None:
        super().__init__("the answer could not be checked against the task's form_schema (the task changed "
                         "meanwhile); send it again", code="answer_not_checked")
        self.schema = schema
        self.form = form


def check_task_result(task: dict[str, Any] | None, body: dict[str, Any]) -> None:
    """Refuse a human answer that does not fit its task (422); the task stays open. The form's verdict comes
    from ``judge_form``; without one, FormUnjudged (raised before the operation changed anything)."""
    result = body.get("task_result")
    if not task or not isinstance(result, dict):
        return
    problem = tasks.answer_problem(task, result)
    pending = tasks.form_to_check(task, result) if problem is None else None
    if pending is not None:
        key = _form_key(*pending)
        with _FORM_LOCK:
            if key not in _FORM_VERDICTS:
                raise FormUnjudged(*pending)
            verdict = _FORM_VERDICTS[key]
        if verdict is not None:
            field, message = verdict
            problem = (field, message, {"form_schema": pending[0]} if field.startswith("task_result") else {})
    if problem is not None:
        field, message, details = problem
        raise Unprocessable(f"{field}: {message}", details={"field": field, **details})


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
    resume, complete, fail or cancel it; its sender and people may only cancel it (people answer human tasks
    through ``op_answer_task``)."""
    if principal.is_admin or row["to_agent"] == principal.address:
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
    doc = loads(row["doc"])
    if doc.get("workflow_parent"):
        import axme_cli.runtime.engine.workflows as workflows

        return workflows.resume_parent(tx, s, principal, row, doc, body, now)
    if doc.get("human_task") and row["waiting_reason"] == "WAITING_FOR_HUMAN":
        return op_answer_task(tx, s, principal, row, doc, body, now)
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
                doc_updates=doc_updates)
    return {"ok": True, "applied": True, "intent": intent_view(row)}


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
    event = apply_event(tx, s, row, event_type, now, actor=actor, details=details, doc_updates=doc_updates)
    import axme_cli.runtime.engine.inbox as inbox

    completion = inbox.completion_delivery(tx, s, row)
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
    rows = tx.intents_for_cleanup(cutoff, statuses, int(req["limit"]))
    ids = [r["intent_id"] for r in rows]
    if req.get("dry_run", True):
        return {"ok": True, "dry_run": True, "would_cancel": len(ids), "intent_ids": ids}
    canceled = []
    for row in rows:
        fresh = tx.get_intent(row["intent_id"])  # an earlier cancel in this loop may have ended it
        if fresh is None or fresh["status"] in lc.TERMINAL:
            continue
        apply_event(tx, s, fresh, "intent.canceled", now, actor=principal.address,
                    details={"via": "bulk-cancel", "reason": req["reason"]},
                    doc_updates={"error": {"reason": req["reason"]}})
        canceled.append(fresh["intent_id"])
    return {"ok": True, "dry_run": False, "canceled": len(canceled), "intent_ids": canceled}


SCHEDULER = "agent://axme.runtime/scheduler"


def op_fire_due(tx: Tx, s: Settings, now: float, limit: int = 200) -> int:
    """Fire every timer that is due: deadlines, engine timers, redeliveries. Returns how many intents it handled."""
    ids = tx.due_intents(now, limit)
    for intent_id in ids:
        row = tx.get_intent(intent_id)
        if row is None:
            continue
        _fire(tx, s, row, now)
    return len(ids)


def _fire(tx: Tx, s: Settings, row: Row, now: float) -> None:
    status = row["status"]
    if status in lc.TERMINAL:
        tx.update_intent(row["intent_id"], {"wake_ts": None, "redeliver_ts": None, "timer_ts": None})
        return
    deadline = row["deadline_ts"]
    if deadline is not None and deadline <= now:
        apply_event(tx, s, row, "intent.timed_out", now, actor=SCHEDULER,
                    details={"reason": "deadline_exceeded", "deadline_at": iso(deadline)},
                    doc_updates={"error": {"code": "intent_timeout", "reason": "deadline_exceeded"}})
        return
    timer = row.get("timer_ts")
    if timer is not None and timer <= now:
        row["timer_ts"] = None
        tx.update_intent(row["intent_id"], {"timer_ts": None, "wake_ts": wake_of(row)})
        if loads(row["doc"]).get("workflow_parent"):
            import axme_cli.runtime.engine.workflows as workflows

            workflows.on_timer(tx, s, row, now)
        else:  # a direct human task's reminders
            import axme_cli.runtime.engine.human as human

            human.on_timer(tx, s, row, now)
        return
    redeliver = row["redeliver_ts"]
    if redeliver is not None and redeliver <= now:
        if status not in lc.AWAITING_PICKUP:
            fields: Row = {"redeliver_ts": None}
        elif row["delivery_attempt"] >= row["max_delivery_attempts"]:
            apply_event(
                tx, s, row, "intent.delivery_failed", now, actor=SCHEDULER,
                details={"delivery_attempt": row["delivery_attempt"],
                         "max_delivery_attempts": row["max_delivery_attempts"]},
                doc_updates={"error": {"code": "delivery_failed",
                                       "reason": "max delivery attempts reached",
                                       "delivery_attempt": row["delivery_attempt"]}},
            )
            return
        else:
            attempt = row["delivery_attempt"] + 1
            outbound.dispatch_intent(tx, row["to_agent"], row["intent_id"], attempt, now)
            fields = {"delivery_attempt": attempt, "redeliver_ts": now + s.redelivery_seconds}
            tx.notes.see(("redelivered",))
        merged = {**row, **fields}
        fields["wake_ts"] = wake_of(merged)
        tx.update_intent(row["intent_id"], fields)
        tx.notes.timer(fields["wake_ts"])
        return
    # woke early (timers moved): just recompute
    tx.update_intent(row["intent_id"], {"wake_ts": wake_of(row)})
    tx.notes.timer(wake_of(row))

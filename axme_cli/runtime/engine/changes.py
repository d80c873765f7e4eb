"""The one place an intent changes: a lifecycle event applied to its row, or a new intent inserted.

Every change appends exactly one event with the next dense ``seq`` and updates the intent row in the same
transaction; which event may follow which status is ``protocol.lifecycle``. What follows from a change (the
intent ended, a delivery is due) is appended to ``fx`` as an effect (``engine/effects.py``) for the caller to
hand to ``reactions.settle``: nothing here knows who reacts.
"""

from __future__ import annotations

from typing import Any

from axme_cli.protocol import lifecycle as lc
from axme_cli.protocol.ids import uuid7
from axme_cli.runtime.clock import iso, parse_iso
from axme_cli.runtime.engine.codec import dumps, kept, shared
from axme_cli.runtime.engine.effects import DeliveryDue, Effect, Ended
from axme_cli.runtime.engine.views import pending_with
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
    "trace",  # the trace context of the request that created it (only when tracing is on)
    "schedule",  # a schedule's run: {schedule_id, trigger, scheduled_for?, catch_up?} (engine/schedules.py)
    "attachments",  # finalized uploads it carries (engine/media.py)
    "to_alias",  # sent to an alias: {alias_id, alias}; to_agent is where it resolved to (engine/aliases.py)
)

SCHEDULER = "agent://axme.runtime/scheduler"  # the actor of what timers do
_TIMERS = ("redeliver_ts", "deadline_ts", "timer_ts")  # the times wake_ts is the earliest of


def _emit(fx: list[Effect] | None, effect: Effect) -> None:
    if fx is None:  # a caller that cannot react passed no list: losing the effect would lose a reaction
        raise RuntimeError(f"{type(effect).__name__} with no list to record it: pass fx")
    fx.append(effect)


def wake_of(fields: Row) -> float | None:
    """When the scheduler must look at this intent next: its earliest timer."""
    times = [t for t in (fields.get("redeliver_ts"), fields.get("deadline_ts"), fields.get("timer_ts"))
             if t is not None]
    return min(times) if times else None


def arm_timer(tx: Tx, row: Row, ts: float | None) -> None:
    """Point the intent's engine timer (``timer_ts``, part of ``wake_ts``) at ``ts``."""
    row["timer_ts"] = ts
    wake = wake_of(row)
    tx.update_intent(row["intent_id"], {"timer_ts": ts, "wake_ts": wake})
    row["wake_ts"] = wake
    tx.notes.timer(wake)


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
    fx: list[Effect] | None = None,
) -> dict[str, Any]:
    """Apply one lifecycle event to ``row`` (mutated in place) and return the event document.

    A terminal status appends ``Ended`` to ``fx`` (the caller settles it in the same transaction: a workflow
    moves on, a ``reply_to`` inbox gets the outcome). An event that cannot end the intent needs no ``fx``.
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
    # Read only: the doc is handed on (notes, Ended) but never changed; an update makes a new one.
    doc = shared(row["doc"])
    if doc_updates:
        doc = {**doc, **doc_updates}
        fields["doc"] = kept(doc)
    terminal = new_status in lc.TERMINAL
    fields["wake_ts"] = None if terminal else wake_of({k: fields[k] if k in fields else row.get(k) for k in _TIMERS})
    event = {
        "intent_id": row["intent_id"],
        "seq": seq,
        "event_type": event_type,
        "status": new_status,
        "at": at,
        "actor": actor,
        "details": details or {},
    }
    waiting = fields["waiting_reason"] if "waiting_reason" in fields else row.get("waiting_reason")
    if waiting:
        event["waiting_reason"] = waiting
    holder = pending_with({"status": new_status,
                           "to_agent": fields["to_agent"] if "to_agent" in fields else row["to_agent"]}, doc)
    if holder is not None:
        event["pending_with"] = holder
    if extra:
        event.update(extra)
    # Kept for the stream that sends it (it reads it from the text), but not a workflow step's: nobody streams those
    # as a rule, and they filled the memo for nothing (12 of the order saga's 18 events); a stream that follows a
    # step parses its events.
    tx.insert_event(row["intent_id"], seq, dumps(event) if "parent_intent_id" in doc else kept(event))
    tx.update_intent(row["intent_id"], fields)
    # for metrics and traces, counted after the commit (runtime/metrics.py)
    if terminal:
        tx.notes.see(("terminal", row["intent_id"], row["intent_type"], new_status, row["created_at"], doc, now))
    elif event_type == "intent.delivered":
        tx.notes.see(("delivered", row["created_at"], doc, not row.get("delivered_attempt"), now))
    if fields["wake_ts"] != row.get("wake_ts"):
        tx.notes.timer(fields["wake_ts"])
    row.update(fields)
    tx.notes.intents.add(row["intent_id"])
    if terminal:
        _emit(fx, Ended(row, doc, event, now))
    return event


def insert_new_intent(
    tx: Tx,
    s: Settings,
    req: dict[str, Any],
    now: float,
    *,
    doc_extra: dict[str, Any] | None = None,
    on_feed: bool = True,
    fx: list[Effect] | None = None,
    parent: Row | None = None,
) -> Row:
    """Insert an intent with ``intent.created`` and ``intent.submitted``; ``on_feed``: its first delivery is due
    (``DeliveryDue`` in ``fx``). It belongs to the workspace of ``s`` (``scope.pair``), or to its ``parent``'s
    (a workflow's step or compensation, which timers may create with the runtime's own settings)."""
    intent_id = uuid7()
    at = iso(now)
    to_agent = req["to_agent"]
    doc = {k: req[k] for k in _DOC_FIELDS if req.get(k) is not None}
    if doc_extra:
        doc.update(doc_extra)
    deadline_ts = req.get("deadline_ts")  # given by a caller that has it as a number, beside its text
    if deadline_ts is None and req.get("deadline_at"):
        deadline_ts = parse_iso(req["deadline_at"])
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
        "payload": kept(req["payload"]),  # neither is changed from here on: both kept for their readers
        "doc": kept(doc),
    }
    if parent is not None:
        row["org_id"], row["workspace_id"] = parent.get("org_id"), parent.get("workspace_id")
    elif s.scoped:
        row["org_id"], row["workspace_id"] = s.org, s.workspace
    else:  # the row is also handed to feeds as it is (Notes.feed_row): it has every column
        row["org_id"] = row["workspace_id"] = None
    row["wake_ts"] = wake_of(row)
    actor = req["from_agent"]
    acted = {"acted_by": req["acted_by"]} if req.get("acted_by") else {}  # the admin key sent it as from_agent
    checked = {"schema_validation": req["schema_validation"]} if req.get("schema_validation") else {}
    tx.insert_intent(row)
    keep = dumps if parent is not None else kept  # a step's events: as in apply_event
    tx.insert_event(intent_id, 1, keep({
        "intent_id": intent_id, "seq": 1, "event_type": "intent.created", "status": lc.CREATED, "at": at,
        "actor": actor, "details": {"intent_type": req["intent_type"], "to_agent": to_agent, **acted, **checked,
                                    **(req.get("schedule") or {}),
                                    **({"to_alias": req["to_alias"]} if req.get("to_alias") else {})},
    }))
    submitted: dict[str, Any] = {
        "intent_id": intent_id, "seq": 2, "event_type": "intent.submitted", "status": row["status"], "at": at,
        "actor": actor, "details": {"delivery_attempt": row["delivery_attempt"], **acted},
    }
    holder = pending_with(row, doc)
    if holder is not None:
        submitted["pending_with"] = holder
    tx.insert_event(intent_id, 2, keep(submitted))
    tx.notes.intents.add(intent_id)
    payload = row["payload"]  # usage counts the bytes it stores (engine/usage.py)
    size = len(payload) if payload.isascii() else len(payload.encode())
    # usage counts it in its workspace (engine/usage.py); the default workspace's fact names none
    tx.notes.see(("created", doc, size) if row["workspace_id"] is None else
                 ("created", doc, size, (row["org_id"], row["workspace_id"])))
    if on_feed:
        _emit(fx, DeliveryDue(to_agent, intent_id, 1, now, row))
    tx.notes.timer(row["wake_ts"])
    return row

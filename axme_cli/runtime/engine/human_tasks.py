"""Human tasks on an intent, shared by direct task intents (engine/intents.py) and workflow human steps
(engine/runs.py): opening one, reminding its holder, escalating it.

- ``open_task``: ``intent.human_task_assigned`` (WAITING_FOR_HUMAN) and a mail to ``notify_email``.
- ``fire_reminder``: ``intent.reminder`` (+ mail); after the last one ``intent.escalated`` when there is
  someone to escalate to: the task is reassigned, earlier links stop working, the new assignee gets a mail.
- ``on_timer``: a direct task's reminders live in its doc (``remind``) on the intent's ``timer_ts``; a
  workflow keeps them in its state next to its engine timer (``runs.Run.arm``).
- Mail is never sent inside an operation: it is a ``task_mail`` row (the outbox) written in the same
  transaction; ``engine/human.py`` has the operations of the sender that drains it and of the links it mints.

None of these events ends an intent, so they append no effects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from axme_cli.protocol.ids import uuid7
from axme_cli.runtime.engine import reminders
from axme_cli.runtime.engine.changes import SCHEDULER, apply_event, arm_timer
from axme_cli.runtime.engine.codec import dumps, loads
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Row, Tx

LINK_TTL_SECONDS = 7 * 24 * 3600.0
WAITING_FOR_HUMAN = "WAITING_FOR_HUMAN"


def _earliest(*times: float | None) -> float | None:
    known = [t for t in times if t is not None]
    return min(known) if known else None


def open_task(tx: Tx, s: Settings, row: Row, task: dict[str, Any], holder: dict[str, Any], now: float, *,
              actor: str, details: dict[str, Any] | None = None, due_ts: float | None = None,
              doc_updates: dict[str, Any] | None = None) -> dict[str, Any]:
    """Assign ``task`` to people on ``row``: the intent waits WAITING_FOR_HUMAN; mail to ``notify_email``.
    ``due_ts``: when the task times out if earlier than the intent's own deadline (a step deadline)."""
    updates = {"pending_with": holder, "human_task": task, "task_seq": row["last_seq"] + 1,
               "task_due_ts": _earliest(due_ts, row.get("deadline_ts")), **(doc_updates or {})}
    event = apply_event(tx, s, row, "intent.human_task_assigned", now, actor=actor, waiting_reason=WAITING_FOR_HUMAN,
                        details=details or {"human_task": task}, doc_updates=updates, extra={"human_task": task})
    if task.get("notify_email"):
        queue_mail(tx, row, "assigned", str(task["notify_email"]), now)
    return event


def email_of(holder: dict[str, Any] | None) -> str | None:
    """The email address a holder stands for (``ops@x.com``, ``actor://org/ws/ops@x.com``), if any."""
    ref = str((holder or {}).get("ref") or "")
    if ref.startswith("actor://"):
        ref = ref.rsplit("/", 1)[-1]
    if ref.startswith("mailto:"):
        ref = ref[7:]
    local, at, domain = ref.partition("@")
    if not at or not local or "." not in domain or "://" in ref or any(c.isspace() for c in ref):
        return None
    return ref


def fire_reminder(tx: Tx, s: Settings, row: Row, rem: dict[str, Any], more: bool, now: float, *, actor: str,
                  details: dict[str, Any], escalation_holder: Callable[[str], dict[str, Any]],
                  keep_in_doc: bool) -> None:
    """Remind the holder of the open task (``intent.reminder``, mail to ``notify_email``); after the last
    reminder (``more`` false) escalate when ``escalate_to`` says to whom. ``rem``: the reminder state counted by
    ``reminders.advance``. ``keep_in_doc``: the reminder state lives in the intent doc (direct tasks)."""
    doc = loads(row["doc"])
    holder = doc.get("pending_with") or {}
    doc_updates: dict[str, Any] = {"remind_count": rem["count"]}
    if keep_in_doc:
        doc_updates["remind"] = rem if more else None
    apply_event(tx, s, row, "intent.reminder", now, actor=actor,
                details={**details, "reminder": rem["count"], "max_reminders": rem["max"],
                         "holder": holder.get("name")}, doc_updates=doc_updates)
    if more or not rem.get("escalate_to"):
        task = doc.get("human_task") or {}
        if task.get("notify_email"):  # (a last reminder that escalates at once mails the new assignee instead)
            queue_mail(tx, row, "reminder", str(task["notify_email"]), now,
                       {"reminder": rem["count"], "max_reminders": rem["max"]})
        return
    target = escalation_holder(str(rem["escalate_to"]))
    apply_event(tx, s, row, "intent.escalated", now, actor=actor,
                details={**details, "escalated_to": rem["escalate_to"], "after_reminders": rem["count"]},
                doc_updates={"pending_with": target, "task_seq": row["last_seq"] + 1})
    email = email_of(target)
    if email:
        queue_mail(tx, row, "escalated", email, now, {"escalated_to": rem["escalate_to"]})


def direct_holder(escalate_to: str) -> dict[str, Any]:
    return {"type": "human", "ref": escalate_to, "name": escalate_to}


def on_timer(tx: Tx, s: Settings, row: Row, now: float) -> None:
    """The timer of a direct human task fired (the scheduler already cleared ``timer_ts``)."""
    doc = loads(row["doc"])
    rem = doc.get("remind")
    if not rem or row["waiting_reason"] != WAITING_FOR_HUMAN:
        return
    if rem["at"] <= now:
        rem, more = reminders.advance(rem, now)
        fire_reminder(tx, s, row, rem, more, now, actor=SCHEDULER, details={}, escalation_holder=direct_holder,
                      keep_in_doc=True)
        if not more:
            return
    arm_timer(tx, row, rem["at"])



def queue_mail(tx: Tx, row: Row, kind: str, email: str, now: float, details: dict[str, Any] | None = None) -> None:
    """Put a mail about the task now open on ``row`` in the outbox (sent after the commit)."""
    doc = loads(row["doc"])
    tx.insert_task_mail({
        "mail_id": uuid7(), "intent_id": row["intent_id"], "task_seq": int(doc["task_seq"]), "kind": kind,
        "email": email, "details": dumps(details or {}),
        "link_expires_ts": _earliest(now + LINK_TTL_SECONDS, doc.get("task_due_ts")),
        "state": "pending", "due_ts": now, "lease_until_ts": None, "attempts": 0, "link_id": None,
        "created_ts": now, "sent_ts": None, "last_error": None,
    })
    tx.notes.mail = True

"""Human tasks, shared by direct task intents (engine/intents.py) and workflow human steps (engine/workflows.py).

- ``open_task``: ``intent.human_task_assigned`` (WAITING_FOR_HUMAN) and a mail to ``notify_email``.
- ``fire_reminder``: ``intent.reminder`` (+ mail); after the last one ``intent.escalated`` when there is
  someone to escalate to: the task is reassigned, earlier links stop working, the new assignee gets a mail.
- ``on_timer``: a direct task's reminders live in its doc (``remind``) on the intent's ``timer_ts``; a
  workflow keeps them in its state next to its engine timer (``Run.arm``). Both use ``arm_timer``.
- Mail is never sent inside an operation: it is a ``task_mail`` row (the outbox) written in the same
  transaction; ``runtime/task_mail.py`` claims it after the commit (``op_claim_mail`` mints the link: only
  the sha256 of its token is stored), sends it, and records the outcome (``op_mail_sent`` / ``op_mail_failed``).
- A link answers the task it was minted for: ``task_seq`` (the seq of the event that assigned the task, kept in
  the intent doc) must still be the task's, the intent must still wait for a person, the link unused and not
  past ``expires_ts`` (7 days or the task deadline, the earlier). So a link dies when its task is answered,
  escalated, timed out or canceled without any write.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

from axme_cli.protocol.ids import uuid7
from axme_cli.runtime.clock import iso
from axme_cli.runtime.engine.auth import actor_address
from axme_cli.runtime.engine.intents import SCHEDULER, apply_event, dumps, intent_view, loads, op_resume, wake_of
from axme_cli.runtime.errors import Gone
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Row, Tx

LINK_TTL_SECONDS = 7 * 24 * 3600.0
MAIL_LEASE_SECONDS = 120.0  # longer than an SMTP conversation may take (SmtpMailer: 30 s timeout)
MAIL_RETRY_SECONDS = (5.0, 30.0, 120.0, 600.0)  # then the mail is given up (state failed)
WAITING_FOR_HUMAN = "WAITING_FOR_HUMAN"


# ---------------------------------------------------------------------------------------------
# timers


def arm_timer(tx: Tx, row: Row, ts: float | None) -> None:
    """Point the intent's engine timer (``timer_ts``, part of ``wake_ts``) at ``ts``."""
    row["timer_ts"] = ts
    wake = wake_of(row)
    tx.update_intent(row["intent_id"], {"timer_ts": ts, "wake_ts": wake})
    row["wake_ts"] = wake
    tx.notes.timer(wake)


def new_remind(spec: dict[str, Any], now: float, **where: Any) -> dict[str, Any] | None:
    """Reminder state from ``remind_after_seconds``, ``remind_interval_seconds``, ``max_reminders``,
    ``escalate_to`` (of a step or a direct intent); None without ``remind_after_seconds``."""
    after = spec.get("remind_after_seconds")
    if not after:
        return None
    return {**where, "at": now + float(after), "count": 0, "max": int(spec.get("max_reminders") or 1),
            "interval": float(spec.get("remind_interval_seconds") or after), "escalate_to": spec.get("escalate_to")}


# ---------------------------------------------------------------------------------------------
# opening, reminding, escalating


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


def fire_reminder(tx: Tx, s: Settings, row: Row, rem: dict[str, Any], now: float, *, actor: str,
                  details: dict[str, Any], escalation_holder: Callable[[str], dict[str, Any]],
                  keep_in_doc: bool) -> bool:
    """Remind the holder of the open task (``intent.reminder``, mail to ``notify_email``); after the last
    reminder escalate when ``escalate_to`` says to whom. Returns whether more reminders follow (``rem["at"]``
    is then the next one). ``keep_in_doc``: the reminder state lives in the intent doc (direct tasks)."""
    rem["count"] += 1
    more = rem["count"] < rem["max"]
    if more:
        rem["at"] = now + rem["interval"]
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
        return more
    target = escalation_holder(str(rem["escalate_to"]))
    apply_event(tx, s, row, "intent.escalated", now, actor=actor,
                details={**details, "escalated_to": rem["escalate_to"], "after_reminders": rem["count"]},
                doc_updates={"pending_with": target, "task_seq": row["last_seq"] + 1})
    email = email_of(target)
    if email:
        queue_mail(tx, row, "escalated", email, now, {"escalated_to": rem["escalate_to"]})
    return False


def direct_holder(escalate_to: str) -> dict[str, Any]:
    return {"type": "human", "ref": escalate_to, "name": escalate_to}


def on_timer(tx: Tx, s: Settings, row: Row, now: float) -> None:
    """The timer of a direct human task fired (the scheduler already cleared ``timer_ts``)."""
    doc = loads(row["doc"])
    rem = doc.get("remind")
    if not rem or row["waiting_reason"] != WAITING_FOR_HUMAN:
        return
    if rem["at"] <= now and not fire_reminder(tx, s, row, rem, now, actor=SCHEDULER, details={},
                                              escalation_holder=direct_holder, keep_in_doc=True):
        return
    arm_timer(tx, row, rem["at"])


# ---------------------------------------------------------------------------------------------
# the outbox and the links


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


def hash_link_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def link_problem(link: Row | None, row: Row | None, now: float) -> str | None:
    """Why a link cannot answer its task (None: it can): unknown, used, revoked, closed, moved, expired."""
    if link is None or row is None:
        return "unknown"
    if link["used_ts"] is not None:
        return "used"
    if link["revoked_ts"] is not None:
        return "revoked"
    if row["status"] != "WAITING" or row["waiting_reason"] != WAITING_FOR_HUMAN:
        return "closed"
    if loads(row["doc"]).get("task_seq") != link["task_seq"]:
        return "moved"
    if now >= link["expires_ts"]:
        return "expired"
    return None


class LinkRefused(Gone):
    code = "task_link_refused"


def op_claim_mail(tx: Tx, mail_id: str, token: str, now: float) -> dict[str, Any] | None:
    """Take one due task mail for sending and mint its link (the caller made ``token``; only its hash is
    stored). None when another sender has it, or the task moved on (the mail is then dropped)."""
    if not tx.claim_task_mail(mail_id, now, now + MAIL_LEASE_SECONDS):
        return None
    mail = tx.get_task_mail(mail_id)
    assert mail is not None
    row = tx.get_intent(mail["intent_id"])
    probe = {"used_ts": None, "revoked_ts": None, "task_seq": mail["task_seq"], "expires_ts": mail["link_expires_ts"]}
    problem = link_problem(probe, row, now)
    if problem is not None or row is None:
        tx.update_task_mail(mail_id, {"state": "dropped", "due_ts": None, "lease_until_ts": None,
                                      "last_error": f"the task is no longer open ({problem})"})
        return None
    link_id = uuid7()
    tx.insert_task_link({"link_id": link_id, "token_hash": hash_link_token(token), "intent_id": row["intent_id"],
                         "task_seq": mail["task_seq"], "email": mail["email"], "created_ts": now,
                         "expires_ts": mail["link_expires_ts"], "used_ts": None, "revoked_ts": None})
    tx.update_task_mail(mail_id, {"link_id": link_id})
    return {"mail_id": mail_id, "kind": mail["kind"], "email": mail["email"], "details": loads(mail["details"]),
            "expires_at": iso(mail["link_expires_ts"]), "intent": intent_view(row)}


def op_mail_sent(tx: Tx, mail_id: str, now: float) -> None:
    mail = tx.get_task_mail(mail_id)
    tx.update_task_mail(mail_id, {"state": "sent", "due_ts": None, "lease_until_ts": None, "sent_ts": now,
                                  "attempts": (mail["attempts"] if mail else 0) + 1, "last_error": None})


def op_mail_failed(tx: Tx, mail_id: str, error: str, now: float) -> bool:
    """Record a failed send; retried later with backoff, given up after the last try. True if it will retry."""
    mail = tx.get_task_mail(mail_id)
    if mail is None:
        return False
    attempts = mail["attempts"] + 1
    fields: Row = {"attempts": attempts, "lease_until_ts": None, "last_error": error[:500]}
    retry = attempts <= len(MAIL_RETRY_SECONDS)
    if retry:
        fields["due_ts"] = now + MAIL_RETRY_SECONDS[attempts - 1]
    else:
        fields.update(state="failed", due_ts=None)
    tx.update_task_mail(mail_id, fields)
    if mail["link_id"]:  # the link of this try may never have left: it must not stay usable
        tx.update_task_link(mail["link_id"], {"revoked_ts": now})
    if retry:
        tx.notes.mail = True
    return retry


def op_answer_by_link(tx: Tx, s: Settings, token_hash: str, result: dict[str, Any], now: float) -> dict[str, Any]:
    """Answer the task of a link (the person the link was mailed to answers it). The same checks as
    ``POST /v1/intents/{id}/resume`` (a 422 leaves the task open and the link unused); then the link is spent."""
    link = tx.task_link_by_hash(token_hash)
    row = tx.get_intent(link["intent_id"]) if link is not None else None
    problem = link_problem(link, row, now)
    if problem is not None or link is None or row is None:
        raise LinkRefused(f"this task link cannot be used ({problem})", details={"reason": problem})
    email = link["email"]
    principal = Principal("actor", link["link_id"], actor_address(s, email), email=email)
    answer = op_resume(tx, s, principal, row["intent_id"], {"task_result": result}, now)
    tx.update_task_link(link["link_id"], {"used_ts": now})
    return answer


def op_form_key(tx: Tx, candidate: str) -> str:
    """The runtime's key for the answer page's form nonces (kept in meta, so every replica agrees)."""
    existing = tx.get_meta("task_form_key")
    if existing:
        return existing
    tx.set_meta("task_form_key", candidate)
    return candidate


def form_nonce(key: str, link_id: str, issued: int) -> str:
    return hmac.new(key.encode(), f"{link_id}|{issued}".encode(), hashlib.sha256).hexdigest()

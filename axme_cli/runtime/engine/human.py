"""Task mail and answer links: the operations of the task-mail sender and of ``/t/{token}``.

- The outbox rows are written by ``human_tasks`` in the transaction that opened, reminded or escalated a task;
  ``runtime/task_mail.py`` claims one after the commit (``op_claim_mail`` mints the link: only the sha256 of its
  token is stored), sends it, and records the outcome (``op_mail_sent`` / ``op_mail_failed``).
- A link answers the task it was minted for: ``task_seq`` (the seq of the event that assigned the task, kept in
  the intent doc) must still be the task's, the intent must still wait for a person, the link unused and not
  past ``expires_ts`` (7 days or the task deadline, the earlier). So a link dies when its task is answered,
  escalated, timed out or canceled without any write.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from axme_cli.protocol.ids import uuid7
from axme_cli.runtime import scope
from axme_cli.runtime.clock import iso
from axme_cli.runtime.engine.auth import actor_address
from axme_cli.runtime.engine.codec import loads
from axme_cli.runtime.engine.human_tasks import WAITING_FOR_HUMAN
from axme_cli.runtime.engine.intents import op_resume
from axme_cli.runtime.engine.views import intent_view
from axme_cli.runtime.errors import Gone
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Row, Tx

MAIL_LEASE_SECONDS = 120.0  # longer than an SMTP conversation may take (SmtpMailer: 30 s timeout)
MAIL_RETRY_SECONDS = (5.0, 30.0, 120.0, 600.0)  # then the mail is given up (state failed)


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
    s = scope.settings_of(s, row)  # the person the link was mailed to answers in the task's workspace
    principal = Principal("actor", link["link_id"], actor_address(s, email), email=email,
                          org_id=row.get("org_id"), workspace_id=row.get("workspace_id"))
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

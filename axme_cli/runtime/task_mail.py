"""Task mails: the sender that drains the outbox the engine writes (engine/human.py), after the commit.

A mail row is written in the same transaction that opened, reminded or escalated a task, so a crash never
loses one. The sender (an asyncio task, started and stopped with the runtime) wakes on a commit that queued
mail (``Notes.mail``) or when the earliest row falls due, claims each due row in a write operation (a lease:
the claim of a sender that died runs out and another sender takes the row), which also mints the link whose
token only this process ever sees, sends the mail outside any transaction, and records the outcome.
A failed send is retried with backoff and its link revoked; the link of a sent mail works until its task ends.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from axme_cli.runtime.background import Background
from axme_cli.runtime.clock import SYSTEM, Clock
from axme_cli.runtime.engine import human
from axme_cli.runtime.mailer import Mailer
from axme_cli.runtime.store.base import Store

log = logging.getLogger("axme.mail")
BATCH = 20


def _one_line(text: Any, limit: int = 150) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def task_message(sender: str, claimed: dict[str, Any], link: str) -> EmailMessage:
    """The mail for a claimed outbox row (``human.op_claim_mail``): what the task is and its answer link."""
    intent = claimed["intent"]
    task = intent.get("human_task") or {}
    details = claimed["details"]
    title = _one_line(task.get("title") or intent["intent_type"])
    kind = claimed["kind"]
    if kind == "reminder":
        subject = f"Reminder {details.get('reminder')}/{details.get('max_reminders')}: {title}"
        intro = "This task is still waiting for your answer."
    elif kind == "escalated":
        subject = f"Escalated to you: {title}"
        intro = "This task was not answered in time and has been escalated to you."
    else:
        subject = f"Task for you: {title}"
        intro = "A task is waiting for your answer."
    outcomes = ", ".join(task.get("allowed_outcomes") or [])
    lines = [intro, "", f"  {title}"]
    if task.get("description"):
        lines.append(f"  {_one_line(task['description'], 2000)}")
    lines += [
        "",
        f"Task type: {task.get('task_type', 'approval')} (answers: {outcomes})",
        f"Intent:    {intent['intent_type']} {intent['intent_id']}",
        f"From:      {intent.get('from_agent', '')}",
    ]
    if intent.get("due_at"):
        lines.append(f"Due at:    {intent['due_at']}")
    lines += [
        "",
        f"Answer it here (the link works once, until the task ends or {claimed['expires_at']}):",
        link,
        "",
        f"Or from a terminal: axme tasks answer {intent['intent_id']}",
        "",
        "Do not forward this mail: whoever has the link can answer the task.",
    ]
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = claimed["email"]
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1].strip(">") or "localhost")
    msg.set_content("\n".join(lines) + "\n")
    return msg


class TaskMailSender(Background):
    name = "task-mail"

    def __init__(self, store: Store, mailer: Mailer, public_url: str, clock: Clock = SYSTEM) -> None:
        super().__init__(clock)
        self._store = store
        self._mailer = mailer
        self._public_url = public_url  # the base of the links in mails

    async def step(self) -> float:
        store = self._store
        ids = await store.due_task_mail(self.clock.time(), BATCH)
        if ids:
            done = await asyncio.gather(*(self._send_one(mail_id) for mail_id in ids))
            return 0.0 if all(done) else 1.0  # something went wrong: do not spin on the same rows
        nxt = await store.next_task_mail_due()
        return 60.0 if nxt is None else min(60.0, nxt - self.clock.time())

    async def _send_one(self, mail_id: str) -> bool:
        store, mailer = self._store, self._mailer
        token = secrets.token_urlsafe(32)  # 256 random bits; only its sha256 is stored
        now = self.clock.time()
        try:
            claimed = await store.write(lambda tx: human.op_claim_mail(tx, mail_id, token, now))
        except Exception:
            log.exception("task mail %s: claim failed", mail_id)
            return False
        if claimed is None:
            return True
        msg = task_message(mailer.sender, claimed, f"{self._public_url}/t/{token}")
        try:
            await mailer.send_message(msg, f"task-{claimed['intent']['intent_id']}-{mail_id}")
        except Exception as exc:
            log.warning("task mail to %s not sent: %s", claimed["email"], exc)
            error = str(exc) or type(exc).__name__
            await store.write(lambda tx: human.op_mail_failed(tx, mail_id, error, self.clock.time()))
            return True
        await store.write(lambda tx: human.op_mail_sent(tx, mail_id, self.clock.time()))
        return True

"""Inbox operations: completion delivery to a ``reply_to`` owner, and what owners do with a thread.

A thread (``thread_id == intent_id``) is written by ``deliver_completion``, the reaction to an intent with
``reply_to`` becoming terminal (``on_ended``, in that change's transaction): the completion and the thread
commit together or not at all. Each owner that has the thread (the ``reply_to`` owner, then delegates)
has an entry with its own read mark, its own hidden messages and its place in its change feed
(``change_seq``, from a dense per-owner counter). Every change of a thread moves it to the end of the
change feed of each owner that has it.
"""

from __future__ import annotations

from typing import Any

from axme_cli.protocol import addresses
from axme_cli.protocol import inbox as wire
from axme_cli.protocol.ids import uuid7
from axme_cli.runtime.clock import iso
from axme_cli.runtime.engine.codec import dumps, loads
from axme_cli.runtime.engine.effects import Effect, Ended
from axme_cli.runtime.errors import Conflict, Forbidden, NotFound, Unprocessable
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Row, Tx


def owner_address(s: Settings, reply_to: str) -> str:
    """A bare name (as a ScenarioBundle may give it) becomes the workspace's full agent address."""
    return addresses.qualify(reply_to, s.org, s.workspace)


def cursor_of(row: Row) -> str:
    """An opaque change cursor ``<change_seq>:<thread_id>`` (AXME's look like ``<number>:<uuid>`` too)."""
    return f"{row['change_seq']}:{row['thread_id']}"


def parse_cursor(cursor: str) -> int | None:
    """The change_seq of a cursor; None for anything else (only ASCII digits, at most 2^53: the column is 64-bit)."""
    head = cursor.split(":", 1)[0]
    if not (head.isascii() and head.isdigit() and len(head) <= 16):
        return None
    value = int(head)
    return value if value <= 2**53 else None


# ---------------------------------------------------------------------------------------------
# views


def thread_view(thread: Row, entry: Row) -> dict[str, Any]:
    """The thread as one owner sees it (api.inbox.thread.response.v1 ``thread``)."""
    doc = loads(thread["doc"])
    hidden = set(loads(entry["hidden"]))
    view: dict[str, Any] = {
        "thread_id": thread["thread_id"],
        "intent_id": thread["intent_id"],
        "status": thread["status"],
        "owner_agent": entry["owner_agent"],
        "from_agent": thread["from_agent"],
        "to_agent": thread["to_agent"],
        "created_at": thread["created_at"],
        "updated_at": thread["updated_at"],
        "subject": doc["subject"],
        "intent_type": doc["intent_type"],
        "reply_to": doc["reply_to"],
        "read": entry["read_at"] is not None,
        "read_at": entry["read_at"],
        "completion": doc["completion"],
        "decision": doc.get("decision"),
        "delegated_to": doc.get("delegated_to") or [],
        "messages": [m for m in doc["messages"] if m["message_id"] not in hidden],
        "timeline": doc["timeline"],
    }
    return {k: v for k, v in view.items() if v is not None}


def completion_delivery(tx: Tx, s: Settings, row: Row) -> dict[str, Any]:
    """``completion_delivery`` of a resolve answer, read in the transaction that made the intent terminal."""
    reply_to = loads(row["doc"]).get("reply_to")
    if not reply_to:
        return {"delivered": False, "reason": wire.REPLY_TO_NOT_SET}
    thread = tx.inbox_thread(row["intent_id"])
    if thread is None:  # not terminal yet (cannot happen on resolve)
        return {"delivered": False, "reason": "not_terminal", "reply_to": owner_address(s, reply_to)}
    doc = loads(thread["doc"])
    completion = doc["completion"]
    return {
        "delivered": True,
        "reply_to": doc["reply_to"],
        "thread_id": thread["thread_id"],
        "message_id": doc["completion_message_id"],
        "completion": {"type": completion["type"], "intent_id": completion["intent_id"],
                       "status": completion["status"]},
    }


# ---------------------------------------------------------------------------------------------
# delivery (the reaction to an intent that ended)


def on_ended(tx: Tx, s: Settings, ended: Ended, fx: list[Effect]) -> None:
    if ended.doc.get("reply_to"):
        deliver_completion(tx, s, ended.row, ended.doc, ended.event)


def deliver_completion(tx: Tx, s: Settings, row: Row, doc: dict[str, Any], event: dict[str, Any]) -> None:
    """Put the terminal intent's outcome in its ``reply_to`` owner's inbox (same transaction)."""
    thread_id = row["intent_id"]
    if tx.inbox_thread(thread_id) is not None:
        return
    owner = owner_address(s, doc["reply_to"])
    at, status, actor = event["at"], row["status"], event["actor"]
    completion: dict[str, Any] = {"type": wire.COMPLETION_TYPE, "intent_id": thread_id, "status": status}
    if doc.get("result") is not None and status == "COMPLETED":
        completion["result"] = doc["result"]
    elif doc.get("error") is not None:
        completion["error"] = doc["error"]
    message_id = uuid7()
    message = {"message_id": message_id, "role": wire.ROLE_AGENT, "author": actor,
               "content": f"{row['intent_type']} {status}", "data": completion, "created_at": at}
    thread_doc = {
        "subject": f"{row['intent_type']} {status}",
        "intent_type": row["intent_type"],
        "reply_to": owner,
        "completion": completion,
        "completion_message_id": message_id,
        "messages": [message],
        "timeline": [],
        "delegated_to": [],
        "decision": None,
    }
    _timeline(thread_doc, wire.COMPLETION_DELIVERED, actor, at,
              {"status": status, "event_seq": event["seq"], "reply_to": owner, "message_id": message_id})
    tx.insert_inbox_thread({
        "thread_id": thread_id, "intent_id": thread_id, "status": wire.PENDING, "from_agent": row["from_agent"],
        "to_agent": row["to_agent"], "created_at": at, "updated_at": at, "doc": dumps(thread_doc),
    })
    _add_entry(tx, owner, thread_id, at)


def _add_entry(tx: Tx, owner: str, thread_id: str, at: str) -> Row:
    entry = {"owner_agent": owner, "thread_id": thread_id, "change_seq": tx.next_inbox_seq(owner), "read_at": None,
             "hidden": "[]", "added_at": at}
    tx.insert_inbox_entry(entry)
    return entry


def _timeline(doc: dict[str, Any], event_type: str, actor: str, at: str, details: dict[str, Any]) -> None:
    doc["timeline"].append({"event_id": uuid7(), "event_type": event_type, "actor": actor, "at": at,
                            "details": details})


# ---------------------------------------------------------------------------------------------
# what owners do


class _Thread:
    """One owner's thread inside an operation: load, change, save (every entry moves in its change feed)."""

    def __init__(self, tx: Tx, principal: Principal, owner: str, thread_id: str, now: float) -> None:
        entry = tx.inbox_entry(owner, thread_id)
        thread = tx.inbox_thread(thread_id) if entry is not None else None
        if entry is None or thread is None:
            raise NotFound(f"thread {thread_id} is not in the inbox of {owner}", code="thread_not_found",
                           details={"thread_id": thread_id, "owner_agent": owner})
        self.tx, self.owner, self.principal = tx, owner, principal
        self.thread, self.entry, self.doc = thread, entry, loads(thread["doc"])
        self.at = iso(now)

    def require_open(self, action: str) -> None:
        if self.thread["status"] == wire.DONE:
            decision = (self.doc.get("decision") or {}).get("decision", "decided")
            raise Conflict(f"thread {self.thread['thread_id']} is done ({decision}); it cannot be {action}",
                           code="thread_closed", details={"status": wire.DONE, "decision": decision})

    def event(self, event_type: str, details: dict[str, Any]) -> None:
        if self.principal.address != self.owner:
            details = {**details, "by": self.principal.address}
        _timeline(self.doc, event_type, self.owner, self.at, details)

    def mark_read(self) -> None:
        if self.entry["read_at"] is None:
            self.entry["read_at"] = self.at

    def save(self, status: str | None = None) -> None:
        """Write the thread and move it in the change feed of every owner that has it."""
        fields: Row = {"doc": dumps(self.doc), "updated_at": self.at}
        if status is not None:
            fields["status"] = status
        elif self.thread["status"] == wire.PENDING:
            fields["status"] = wire.ACTIVE
        self.tx.update_inbox_thread(self.thread["thread_id"], fields)
        self.thread.update(fields)
        for other in self.tx.inbox_entries_of(self.thread["thread_id"]):
            if other["owner_agent"] == self.owner:
                continue
            self.tx.update_inbox_entry(other["owner_agent"], other["thread_id"],
                                       {"change_seq": self.tx.next_inbox_seq(other["owner_agent"])})
        self.save_entry()

    def save_entry(self) -> None:
        """Write this owner's entry only (its read mark, its hidden messages) and move it in its change feed."""
        fields = {"change_seq": self.tx.next_inbox_seq(self.owner), "read_at": self.entry["read_at"],
                  "hidden": self.entry["hidden"]}
        self.tx.update_inbox_entry(self.owner, self.thread["thread_id"], fields)
        self.entry.update(fields)

    def answer(self, **extra: Any) -> dict[str, Any]:
        return {"ok": True, "thread": thread_view(self.thread, self.entry), **extra}


def op_read(tx: Tx, principal: Principal, owner: str, thread_id: str, now: float) -> dict[str, Any]:
    t = _Thread(tx, principal, owner, thread_id, now)
    if t.entry["read_at"] is None:  # reading twice changes nothing
        t.mark_read()
        t.event(wire.THREAD_READ, {})
        t.save()
    return t.answer()


def op_reply(tx: Tx, principal: Principal, owner: str, thread_id: str, message: str, now: float,
             attachments: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    t = _Thread(tx, principal, owner, thread_id, now)
    t.require_open("replied to")
    message_id = uuid7()
    entry: dict[str, Any] = {"message_id": message_id, "role": wire.ROLE_OWNER, "author": owner, "content": message,
                             "created_at": t.at}
    if attachments:
        entry["attachments"] = attachments  # finalized uploads (engine/media.py checked them)
    if principal.address != owner:
        entry["sent_by"] = principal.address
    t.doc["messages"].append(entry)
    t.event(wire.MESSAGE_SENT, {"message_id": message_id})
    t.mark_read()
    t.save()
    return t.answer(message_id=message_id)


def op_delegate(tx: Tx, principal: Principal, owner: str, thread_id: str, delegate_to: str, note: str | None,
                now: float) -> dict[str, Any]:
    t = _Thread(tx, principal, owner, thread_id, now)
    t.require_open("delegated")
    if delegate_to == owner:
        raise Unprocessable("delegate_to: the thread is already in this owner's inbox",
                            details={"field": "delegate_to"})
    details: dict[str, Any] = {"delegate_to": delegate_to}
    if note:
        details["note"] = note
    t.event(wire.THREAD_DELEGATED, details)
    if delegate_to not in t.doc["delegated_to"]:
        t.doc["delegated_to"].append(delegate_to)
    if tx.inbox_entry(delegate_to, thread_id) is None:
        _add_entry(tx, delegate_to, thread_id, t.at)
    t.mark_read()
    t.save()
    return t.answer()


def op_decide(tx: Tx, principal: Principal, owner: str, thread_id: str, approve: bool, comment: str | None,
              now: float) -> dict[str, Any]:
    t = _Thread(tx, principal, owner, thread_id, now)
    t.require_open("approved or rejected again")
    decision = "approved" if approve else "rejected"
    t.doc["decision"] = {"decision": decision, "comment": comment, "decided_by": owner, "decided_at": t.at}
    if principal.address != owner:
        t.doc["decision"]["by"] = principal.address
    t.event(wire.THREAD_APPROVED if approve else wire.THREAD_REJECTED, {"comment": comment} if comment else {})
    t.mark_read()
    t.save(status=wire.DONE)
    return t.answer()


def op_delete_messages(tx: Tx, principal: Principal, owner: str, thread_id: str, req: dict[str, Any],
                       now: float) -> dict[str, Any]:
    """``self``: hide messages for this owner only. ``both``: delete this owner's own messages for everyone."""
    t = _Thread(tx, principal, owner, thread_id, now)
    mode = req["mode"]
    hidden = set(loads(t.entry["hidden"]))
    visible = [m for m in t.doc["messages"] if m["message_id"] not in hidden]

    def own(m: dict[str, Any]) -> bool:
        return bool(m["role"] == wire.ROLE_OWNER and m["author"] == owner)

    if req.get("message_ids"):
        wanted = list(dict.fromkeys(req["message_ids"]))
        known = {m["message_id"] for m in visible}
        unknown = [i for i in wanted if i not in known]
        if unknown:
            raise NotFound(f"message {unknown[0]} is not in thread {thread_id}", code="message_not_found",
                           details={"message_ids": unknown})
        chosen = [m for m in visible if m["message_id"] in wanted]
    elif req.get("limit"):
        pool = visible if mode == "self" else [m for m in visible if own(m)]
        chosen = pool[-int(req["limit"]):]
    else:
        raise Unprocessable("name the messages (message_ids) or how many of the newest to delete (limit)",
                            details={"field": "message_ids"})
    ids = [m["message_id"] for m in chosen]
    if mode == "both":
        foreign = [m["message_id"] for m in chosen if not own(m)]
        if foreign:
            raise Forbidden(f"only messages {owner} sent can be deleted for both sides; hide others with mode self",
                            code="policy_denied", details={"message_ids": foreign})
        if ids:
            t.doc["messages"] = [m for m in t.doc["messages"] if m["message_id"] not in set(ids)]
            t.event(wire.MESSAGE_DELETED, {"mode": "both", "message_ids": ids})
            t.save(status=t.thread["status"])
    elif ids:
        t.entry["hidden"] = dumps(sorted(hidden | set(ids)))
        t.save_entry()
    return t.answer(mode=mode, deleted_count=len(ids), message_ids=ids)

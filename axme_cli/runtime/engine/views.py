"""How an intent row reads to its callers (``GET /v1/intents/{id}``) and who holds it now."""

from __future__ import annotations

from typing import Any

from axme_cli.protocol import lifecycle as lc
from axme_cli.runtime.engine.codec import shared
from axme_cli.runtime.store.base import Row


def pending_with(row: Row, doc: dict[str, Any]) -> dict[str, Any] | None:
    status = row["status"]
    if status in lc.TERMINAL:
        return None
    if doc.get("pending_with"):
        return doc["pending_with"]
    return {"type": "agent", "ref": row["to_agent"], "name": row["to_agent"]}


def intent_view(row: Row) -> dict[str, Any]:
    """The intent as ``GET /v1/intents/{id}`` shows it (axme-reference.md §2.2). Its payload and the parts of its
    doc it holds are the values ``codec.shared`` gives: read only."""
    doc = shared(row["doc"])
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
        "payload": shared(row["payload"]),
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
        "attachments": doc.get("attachments"),
        "pending_with": pending_with(row, doc),
        "seq": row["last_seq"],
        "result": doc.get("result"),
        "error": doc.get("error"),
        "schedule_id": (doc.get("schedule") or {}).get("schedule_id"),  # a schedule's run
        "to_alias": doc.get("to_alias"),  # sent to an alias: {alias_id, alias} (engine/aliases.py)
        # its controls and policy (engine/controls.py): left out while never changed (policy_generation 0)
        "policy_generation": doc.get("policy_generation") or None,
        "grants": doc.get("grants") or None,
        "retry_backoff_seconds": doc.get("retry_backoff_seconds"),
    }
    # Unset optional fields are left out rather than null: the spec's schemas allow no nulls there.
    return {k: v for k, v in view.items() if v is not None}

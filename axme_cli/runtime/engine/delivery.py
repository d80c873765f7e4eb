"""Handing an intent's delivery attempt to its agent: a row on the agent's feed, or, for an agent with the http
binding, an ``outbound_deliveries`` row the sender POSTs (``engine/outbound.py`` has the sender's operations)."""

from __future__ import annotations

from typing import Any

from axme_cli.protocol.ids import uuid7
from axme_cli.runtime import scope
from axme_cli.runtime.clock import iso
from axme_cli.runtime.engine.effects import DeliveryDue, Effect
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Row, Tx

PENDING, DELIVERED, FAILED, DEAD_LETTERED, SKIPPED = "pending", "delivered", "failed", "dead_lettered", "skipped"
STATUSES = (PENDING, DELIVERED, FAILED, DEAD_LETTERED, SKIPPED)


def queue_delivery(tx: Tx, now: float, **fields: Any) -> Row:
    at = iso(now)
    row: Row = {
        "delivery_id": uuid7(),
        "subscription_id": None,
        "event_id": None,
        "event_type": None,
        "intent_id": None,
        "intent_attempt": None,
        "status": PENDING,
        "attempts": 0,
        "next_ts": now,
        "lease_until_ts": None,
        "last_status_code": None,
        "last_error": None,
        "created_at": at,
        "updated_at": at,
        "delivered_at": None,
        **fields,
    }
    tx.insert_outbound(row)
    tx.notes.outbound = True
    return row


def dispatch_intent(tx: Tx, to_agent: str, intent_id: str, attempt: int, now: float, row: Row | None = None,
                    s: Settings | None = None) -> None:
    """Hand delivery attempt ``attempt`` of an intent to its agent: a POST to the callback_url of an http agent,
    else a row on the agent's feed. ``row``: the intent as just inserted, handed to the feed's streams after the
    commit so they need not read it back. ``s``: the settings of the intent's workspace, which the POST belongs to."""
    binding = tx.http_binding(to_agent)
    if binding is None:
        at = iso(now)
        cursor = tx.append_feed(to_agent, intent_id, attempt, at)
        tx.notes.feeds.add(to_agent)
        if row is not None:
            tx.notes.feed_row(to_agent, {**row, "cursor": cursor, "attempt": attempt, "fed_at": at})
        return
    queue_delivery(tx, now, kind="intent", owner_agent=to_agent, callback_url=binding["callback_url"],
                   intent_id=intent_id, intent_attempt=attempt, max_attempts=1,
                   **(scope.stamp_of(row) if row is not None else scope.stamp(s) if s is not None else {}))


def on_delivery_due(tx: Tx, s: Settings, due: DeliveryDue, fx: list[Effect]) -> None:
    dispatch_intent(tx, due.to_agent, due.intent_id, due.attempt, due.now, due.row, s)

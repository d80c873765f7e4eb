"""SQL of outbound HTTP: webhook subscriptions and events, deliveries, the http binding.

Portable SQL only (SQLite and PostgreSQL 15 run the same text): ``?`` placeholders, columns read by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from axme_cli.runtime.store.base import Pair, Row
from axme_cli.runtime.store.routing_sql import DELIVERY_TARGETS, delivery_target_args
from axme_cli.runtime.store.scope_sql import pair_clause

T = TypeVar("T")

_DELIVERY_FILTERS = ("owner_agent", "subscription_id", "event_id", "intent_id", "status", "kind")


# AXME's delivery statuses over ours: "submitted" is queued and not tried yet, "pending" tried and waiting for its
# next try; a delivery skipped because its intent moved on counts as failed.
_SPEC_STATUS = {
    "submitted": "d.status = 'pending' AND d.attempts = 0",
    "pending": "d.status = 'pending' AND d.attempts > 0",
    "delivered": "d.status = 'delivered'",
    "failed": "d.status IN ('failed', 'skipped')",
    "dead_lettered": "d.status = 'dead_lettered'",
}


def _counts(rows: Any) -> dict[str, int]:
    return {r["status"]: int(r["n"]) for r in rows}


_COUNTS = "SELECT status, count(*) AS n FROM outbound_deliveries WHERE event_id = ? GROUP BY status"


class OutboundTxSql:
    """Write-transaction half (mixed into the backend's Tx, whose connection and helpers it uses)."""

    if TYPE_CHECKING:
        _c: Any

        def _one(self, sql: str, args: tuple[Any, ...]) -> Row | None: ...

        def _insert(self, table: str, row: Row) -> None: ...

        def _update(self, table: str, id_column: str, id_value: str, fields: Row) -> None: ...

    # the http binding
    def http_binding(self, address: str) -> Row | None:
        """Where ``address``'s intents are POSTed (callback_url, delivery_secret: None for unsigned), if anywhere:
        its best routing endpoint or transport binding, else its service account's http binding
        (store/routing_sql.py)."""
        return self._one(DELIVERY_TARGETS + " LIMIT 1", delivery_target_args(address))

    # deliveries
    def insert_outbound(self, row: Row) -> None:
        self._insert("outbound_deliveries", row)

    def get_outbound(self, delivery_id: str) -> Row | None:
        return self._one("SELECT * FROM outbound_deliveries WHERE delivery_id = ?", (delivery_id,))

    def update_outbound(self, delivery_id: str, fields: Row) -> None:
        self._update("outbound_deliveries", "delivery_id", delivery_id, fields)

    def claim_outbound(self, now: float, lease_until_ts: float, limit: int) -> list[Row]:
        """Pending deliveries due at ``now``, leased until ``lease_until_ts`` (their next_ts moves there too, so
        a sender that dies holding them lets another take them when the lease runs out)."""
        claim = getattr(self, "CLAIM", "")  # FOR UPDATE SKIP LOCKED where the backend has it
        due = self._c.execute(
            "SELECT delivery_id FROM outbound_deliveries WHERE status = 'pending' AND next_ts <= ? "
            "ORDER BY next_ts LIMIT ?" + claim,
            (now, limit),
        ).fetchall()
        claimed = []
        for r in due:
            row = self._one(
                "UPDATE outbound_deliveries SET lease_until_ts = ?, next_ts = ? "
                "WHERE delivery_id = ? AND status = 'pending' AND next_ts <= ? RETURNING *",
                (lease_until_ts, lease_until_ts, r["delivery_id"], now),
            )
            if row is not None:
                claimed.append(row)
        return claimed

    def delivery_counts(self, event_id: str) -> dict[str, int]:
        return _counts(self._c.execute(_COUNTS, (event_id,)).fetchall())

    def outbound_by_idempotency(self, owner_agent: str, idempotency_key: str) -> Row | None:
        return self._one("SELECT * FROM outbound_deliveries WHERE owner_agent = ? AND idempotency_key = ?",
                         (owner_agent, idempotency_key))

    # subscriptions
    def insert_subscription(self, row: Row) -> None:
        self._insert("webhook_subscriptions", row)

    def get_subscription(self, subscription_id: str) -> Row | None:
        return self._one("SELECT * FROM webhook_subscriptions WHERE subscription_id = ?", (subscription_id,))

    def update_subscription(self, subscription_id: str, fields: Row) -> None:
        self._update("webhook_subscriptions", "subscription_id", subscription_id, fields)

    def live_subscriptions(self, owner_agent: str) -> list[Row]:
        """The owner's subscriptions that are not revoked (active or not), oldest first."""
        rows = self._c.execute(
            "SELECT * FROM webhook_subscriptions WHERE owner_agent = ? AND revoked_at IS NULL "
            "ORDER BY subscription_id",
            (owner_agent,),
        ).fetchall()
        return [dict(r) for r in rows]

    # events
    def insert_webhook_event(self, row: Row) -> None:
        self._insert("webhook_events", row)

    def get_webhook_event(self, event_id: str) -> Row | None:
        return self._one("SELECT * FROM webhook_events WHERE event_id = ?", (event_id,))

    def update_webhook_event(self, event_id: str, fields: Row) -> None:
        self._update("webhook_events", "event_id", event_id, fields)


class OutboundReadSql:
    """Read half (mixed into the backend's Store)."""

    if TYPE_CHECKING:

        async def _read(self, fn: Callable[[Any], T]) -> T: ...

    async def list_subscriptions(self, owner_agent: str | None, workspace: Pair = (None, None)) -> list[Row]:
        mine, args = pair_clause(*workspace)
        where = [mine]
        if owner_agent is not None:
            where.append("owner_agent = ?")
            args.append(owner_agent)
        sql = f"SELECT * FROM webhook_subscriptions WHERE {' AND '.join(where)} ORDER BY subscription_id"
        return await self._read(lambda c: [dict(r) for r in c.execute(sql, args).fetchall()])

    async def get_subscription(self, subscription_id: str) -> Row | None:
        def fn(c: Any) -> Row | None:
            row = c.execute("SELECT * FROM webhook_subscriptions WHERE subscription_id = ?",
                            (subscription_id,)).fetchone()
            return dict(row) if row is not None else None

        return await self._read(fn)

    async def get_webhook_event(self, event_id: str) -> Row | None:
        def fn(c: Any) -> Row | None:
            row = c.execute("SELECT * FROM webhook_events WHERE event_id = ?", (event_id,)).fetchone()
            return dict(row) if row is not None else None

        return await self._read(fn)

    async def delivery_counts(self, event_id: str) -> dict[str, int]:
        return await self._read(lambda c: _counts(c.execute(_COUNTS, (event_id,)).fetchall()))

    async def list_deliveries(self, filters: dict[str, str], limit: int, workspace: Pair = (None, None)) -> list[Row]:
        """Newest first; ``filters`` maps owner_agent / subscription_id / event_id / intent_id / status / kind to
        the value it must have."""
        mine, args = pair_clause(*workspace)
        where = [mine, *(f"{k} = ?" for k in _DELIVERY_FILTERS if k in filters)]
        args += [filters[k] for k in _DELIVERY_FILTERS if k in filters]
        sql = "SELECT * FROM outbound_deliveries WHERE " + " AND ".join(where)
        sql += " ORDER BY delivery_id DESC LIMIT ?"
        args.append(limit)
        return await self._read(lambda c: [dict(r) for r in c.execute(sql, args).fetchall()])

    async def find_deliveries(self, *, delivery_id: str | None = None, owner_agent: str | None = None,
                              status: str | None = None, limit: int = 1, workspace: Pair = (None, None)) -> list[Row]:
        mine, args = pair_clause(*workspace, prefix="d.")
        where = [mine]
        if delivery_id is not None:
            where.append("d.delivery_id = ?")
            args.append(delivery_id)
        if owner_agent is not None:
            where.append("d.owner_agent = ?")
            args.append(owner_agent)
        if status is not None:
            where.append(_SPEC_STATUS[status])
        sql = ("SELECT d.*, e.payload AS event_payload FROM outbound_deliveries d "
               "LEFT JOIN webhook_events e ON e.event_id = d.event_id WHERE " + " AND ".join(where))
        sql += " ORDER BY d.delivery_id DESC LIMIT ?"
        args.append(limit)
        return await self._read(lambda c: [dict(r) for r in c.execute(sql, args).fetchall()])

    async def next_outbound_due(self) -> float | None:
        def fn(c: Any) -> float | None:
            row = c.execute("SELECT min(next_ts) AS due FROM outbound_deliveries WHERE status = 'pending'").fetchone()
            return None if row is None or row["due"] is None else float(row["due"])

        return await self._read(fn)

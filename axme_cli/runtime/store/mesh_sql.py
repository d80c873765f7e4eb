"""SQL of the agent mesh (``mesh_agents``, ``mesh_events``, migration 0018). Portable SQL only, like ``sql.py``.

Every statement names the org and workspace (``scope``: ``(org_id, workspace_id)``) the row belongs to."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from axme_cli.runtime.store.base import Row

T = TypeVar("T")
Scope = tuple[str, str]

_KEY = "org_id = ? AND workspace_id = ? AND address = ?"
_NEW_AGENT = ("INSERT INTO mesh_agents (org_id, workspace_id, address, health, created_at, updated_at) "
              "VALUES (?, ?, ?, 'unknown', ?, ?) ON CONFLICT (org_id, workspace_id, address) DO NOTHING")
# One statement per heartbeat: the row is made on the first one, else its heartbeat columns change (metrics only
# when the heartbeat has some). RETURNING gives the engine the rest (health last recorded, kill switch, failures).
_HEARTBEAT = (
    "INSERT INTO mesh_agents (org_id, workspace_id, address, last_heartbeat_ts, heartbeats, metrics, metrics_ts, "
    "health, created_at, updated_at) VALUES (?, ?, ?, ?, 1, ?, ?, 'unknown', ?, ?) "
    "ON CONFLICT (org_id, workspace_id, address) DO UPDATE SET last_heartbeat_ts = excluded.last_heartbeat_ts, "
    "heartbeats = mesh_agents.heartbeats + 1, metrics = COALESCE(excluded.metrics, mesh_agents.metrics), "
    "metrics_ts = COALESCE(excluded.metrics_ts, mesh_agents.metrics_ts), updated_at = excluded.updated_at "
    "RETURNING *")
# A delivery failure: counted in the current window, or the first of a new one when the last began ``window``
# seconds ago or more.
_FAILURE = (
    "INSERT INTO mesh_agents (org_id, workspace_id, address, failures_since_ts, failures_recent, failures_total, "
    "last_failure_ts, health, created_at, updated_at) VALUES (?, ?, ?, ?, 1, 1, ?, 'unknown', ?, ?) "
    "ON CONFLICT (org_id, workspace_id, address) DO UPDATE SET "
    "failures_recent = CASE WHEN mesh_agents.failures_since_ts IS NULL OR mesh_agents.failures_since_ts <= ? "
    "THEN 1 ELSE mesh_agents.failures_recent + 1 END, "
    "failures_since_ts = CASE WHEN mesh_agents.failures_since_ts IS NULL OR mesh_agents.failures_since_ts <= ? "
    "THEN excluded.failures_since_ts ELSE mesh_agents.failures_since_ts END, "
    "failures_total = mesh_agents.failures_total + 1, last_failure_ts = excluded.last_failure_ts, "
    "updated_at = excluded.updated_at RETURNING *")


def _scoped(sql: str, scope: Scope | None) -> tuple[str, tuple[str, ...]]:
    return (sql, ()) if scope is None else (sql + " AND org_id = ? AND workspace_id = ?", scope)


class MeshTxSql:
    """Write half, mixed into the store's ``Tx``."""

    _c: Any
    LOCK: str  # "" on SQLite, " FOR UPDATE" on PostgreSQL (store/sql.py)

    if TYPE_CHECKING:

        def _one(self, sql: str, args: tuple[Any, ...]) -> Row | None: ...

        def _insert(self, table: str, row: Row) -> None: ...

    def mesh_heartbeat(self, scope: Scope, address: str, now: float, at: str, metrics: str | None) -> Row:
        row = self._one(_HEARTBEAT, (*scope, address, now, metrics, now if metrics is not None else None, at, at))
        assert row is not None
        return row

    def mesh_delivery_failure(self, scope: Scope, address: str, now: float, at: str, window: float) -> Row:
        row = self._one(_FAILURE, (*scope, address, now, now, at, at, now - window, now - window))
        assert row is not None
        return row

    def mesh_agent(self, scope: Scope, address: str) -> Row | None:
        """The agent's row, read to be changed in this transaction (a PostgreSQL store locks it)."""
        return self._one(f"SELECT * FROM mesh_agents WHERE {_KEY}" + self.LOCK, (*scope, address))

    def mesh_update(self, scope: Scope, address: str, fields: Row, at: str) -> Row:
        """Change the agent's row (made first if it has none); returns it as it is now."""
        self._c.execute(_NEW_AGENT, (*scope, address, at, at))
        cols = ", ".join(f"{k} = ?" for k in fields)
        row = self._one(f"UPDATE mesh_agents SET {cols} WHERE {_KEY} RETURNING *", (*fields.values(), *scope, address))
        assert row is not None
        return row

    def mesh_set_health(self, scope: Scope, address: str, was: str, health: str, at: str) -> bool:
        """Record ``health`` if the row still says ``was`` (replicas looking at once record one change)."""
        cur = self._c.execute(f"UPDATE mesh_agents SET health = ?, updated_at = ? WHERE {_KEY} AND health = ?",
                              (health, at, *scope, address, was))
        return int(cur.rowcount) == 1

    def mesh_killed(self, scope: Scope, address: str) -> bool:
        row = self._one(f"SELECT killed FROM mesh_agents WHERE {_KEY}", (*scope, address))
        return row is not None and bool(row["killed"])

    def insert_mesh_event(self, row: Row) -> None:
        self._insert("mesh_events", row)

    def prune_mesh_events(self, before_id: str) -> int:
        """Drop the mesh events older than the event id ``before_id`` (UUIDv7 ids are ordered by time)."""
        return int(self._c.execute("DELETE FROM mesh_events WHERE event_id < ?", (before_id,)).rowcount)

    def release_held_outbound(self, owner_agent: str, now: float) -> int:
        """Pending deliveries of ``owner_agent`` held while it was killed become due now."""
        cur = self._c.execute(
            "UPDATE outbound_deliveries SET next_ts = ? WHERE owner_agent = ? AND status = 'pending' "
            "AND lease_until_ts IS NULL AND next_ts > ?", (now, owner_agent, now))
        return int(cur.rowcount)


class MeshReadSql:
    """Read half, mixed into the store."""

    if TYPE_CHECKING:

        async def _read(self, fn: Callable[[Any], T]) -> T: ...

    async def mesh_killed_addresses(self, scope: Scope | None) -> list[str]:
        """The killed agents of one workspace, or of all (None: the runtime's killed set)."""
        sql, args = _scoped("SELECT address FROM mesh_agents WHERE killed = 1", scope)
        return await self._read(lambda c: [r["address"] for r in c.execute(sql, args).fetchall()])

    async def mesh_agents(self, scope: Scope | None) -> list[Row]:
        """The mesh rows of one workspace, or of all (None: the mesh loop, which acts for every workspace)."""
        sql, args = _scoped("SELECT * FROM mesh_agents WHERE 1 = 1", scope)
        return await self._read(lambda c: [dict(r) for r in c.execute(sql, args).fetchall()])

    async def mesh_agent_row(self, scope: Scope, address: str) -> Row | None:
        def one(c: Any) -> Row | None:
            row = c.execute(f"SELECT * FROM mesh_agents WHERE {_KEY}", (*scope, address)).fetchone()
            return dict(row) if row is not None else None

        return await self._read(one)

    async def mesh_events(self, scope: Scope, *, address: str | None, event_type: str | None, before: str | None,
                          limit: int) -> list[Row]:
        sql, args = "SELECT * FROM mesh_events WHERE org_id = ? AND workspace_id = ?", list[Any](scope)
        for column, value, op in (("address", address, "="), ("event_type", event_type, "="),
                                  ("event_id", before, "<")):
            if value is not None:
                sql += f" AND {column} {op} ?"
                args.append(value)
        sql += " ORDER BY event_id DESC LIMIT ?"
        args.append(limit)
        return await self._read(lambda c: [dict(r) for r in c.execute(sql, args).fetchall()])

"""SQL of schedules (``schedules``, migration 0015). Portable SQL only, like ``sql.py``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from axme_cli.runtime.store.base import Row
from axme_cli.runtime.store.scope_sql import pair_clause

T = TypeVar("T")


class SchedulesTxSql:
    """Write half, mixed into the store's ``Tx``."""

    _c: Any
    LOCK: str  # "" on SQLite, " FOR UPDATE" on PostgreSQL (store/sql.py)
    CLAIM: str  # "" on SQLite, " FOR UPDATE SKIP LOCKED" on PostgreSQL

    if TYPE_CHECKING:

        def _insert(self, table: str, row: Row) -> None: ...

        def _update(self, table: str, id_column: str, id_value: str, fields: Row) -> None: ...

    def insert_schedule(self, row: Row) -> None:
        self._insert("schedules", row)

    def get_schedule(self, schedule_id: str) -> Row | None:
        row = self._c.execute("SELECT * FROM schedules WHERE schedule_id = ?" + self.LOCK, (schedule_id,)).fetchone()
        return dict(row) if row is not None else None

    def claim_due_schedule(self, schedule_id: str, now: float) -> Row | None:
        """The schedule if its next occurrence is due at ``now`` and no other transaction holds it (PostgreSQL: the
        row stays locked until this transaction ends, so one replica fires each occurrence)."""
        row = self._c.execute(
            "SELECT * FROM schedules WHERE schedule_id = ? AND next_fire_ts IS NOT NULL AND next_fire_ts <= ?"
            + self.CLAIM, (schedule_id, now)).fetchone()
        return dict(row) if row is not None else None

    def update_schedule(self, schedule_id: str, fields: Row) -> None:
        self._update("schedules", "schedule_id", schedule_id, fields)

    def delete_schedule(self, schedule_id: str) -> None:
        self._c.execute("DELETE FROM schedules WHERE schedule_id = ?", (schedule_id,))


class SchedulesReadSql:
    """Read half, mixed into the store."""

    if TYPE_CHECKING:

        async def _read(self, fn: Callable[[Any], T]) -> T: ...

    async def list_schedules(self, org_id: str | None = None, workspace_id: str | None = None, *, before: str | None,
                             limit: int) -> list[Row]:
        """The schedules of one workspace (``scope_sql.pair_clause``), newest first; ``before``: only schedules
        created before that one (the previous page's last id)."""
        where, args = pair_clause(org_id, workspace_id)
        sql = "SELECT * FROM schedules WHERE " + where
        if before is not None:
            sql += " AND schedule_id < ?"
            args.append(before)
        sql += " ORDER BY schedule_id DESC LIMIT ?"
        args.append(limit)
        return await self._read(lambda c: [dict(r) for r in c.execute(sql, args).fetchall()])

    async def get_schedule(self, schedule_id: str) -> Row | None:
        def one(c: Any) -> Row | None:
            row = c.execute("SELECT * FROM schedules WHERE schedule_id = ?", (schedule_id,)).fetchone()
            return dict(row) if row is not None else None

        return await self._read(one)

    async def due_schedules(self, now: float, limit: int) -> list[str]:
        sql = ("SELECT schedule_id FROM schedules WHERE next_fire_ts IS NOT NULL AND next_fire_ts <= ? "
               "ORDER BY next_fire_ts LIMIT ?")
        return await self._read(lambda c: [r["schedule_id"] for r in c.execute(sql, (now, limit)).fetchall()])

    async def next_schedule_fire(self) -> float | None:
        def earliest(c: Any) -> float | None:
            row = c.execute("SELECT min(next_fire_ts) AS w FROM schedules WHERE next_fire_ts IS NOT NULL").fetchone()
            return None if row is None or row["w"] is None else float(row["w"])

        return await self._read(earliest)

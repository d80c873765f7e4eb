"""SQL of human task mail: the task-mail outbox and the single-use answer links.

Portable SQL (SQLite and PostgreSQL): ``?`` placeholders, columns read by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from axme_cli.runtime.store.base import Row

T = TypeVar("T")


def _insert(table: str, row: Row) -> tuple[str, tuple[Any, ...]]:
    cols = list(row)
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})", tuple(row.values())


def _update(table: str, key: str, value: str, fields: Row) -> tuple[str, tuple[Any, ...]]:
    cols = ", ".join(f"{k} = ?" for k in fields)
    return f"UPDATE {table} SET {cols} WHERE {key} = ?", (*fields.values(), value)


class TaskLinksTxSql:
    """Write-transaction methods (mixed into the backend's Tx)."""

    _c: Any

    def insert_task_mail(self, row: Row) -> None:
        self._c.execute(*_insert("task_mail", row))

    def get_task_mail(self, mail_id: str) -> Row | None:
        row = self._c.execute("SELECT * FROM task_mail WHERE mail_id = ?", (mail_id,)).fetchone()
        return dict(row) if row is not None else None

    def claim_task_mail(self, mail_id: str, now: float, lease_until: float) -> bool:
        """Lease a pending, due mail to this sender; False when it is not due (another sender has it)."""
        cur = self._c.execute(
            "UPDATE task_mail SET lease_until_ts = ?, due_ts = ? "
            "WHERE mail_id = ? AND state = 'pending' AND due_ts IS NOT NULL AND due_ts <= ?",
            (lease_until, lease_until, mail_id, now),
        )
        return bool(cur.rowcount == 1)

    def update_task_mail(self, mail_id: str, fields: Row) -> None:
        self._c.execute(*_update("task_mail", "mail_id", mail_id, fields))

    def insert_task_link(self, row: Row) -> None:
        self._c.execute(*_insert("task_links", row))

    def task_link_by_hash(self, token_hash: str) -> Row | None:
        row = self._c.execute("SELECT * FROM task_links WHERE token_hash = ?", (token_hash,)).fetchone()
        return dict(row) if row is not None else None

    def update_task_link(self, link_id: str, fields: Row) -> None:
        self._c.execute(*_update("task_links", "link_id", link_id, fields))


class TaskLinksReadSql:
    """Read methods (mixed into the backend's Store, which provides ``_read``)."""

    if TYPE_CHECKING:
        async def _read(self, fn: Callable[[Any], T]) -> T: ...

    async def due_task_mail(self, now: float, limit: int) -> list[str]:
        """Ids of the task mails a sender should take now, oldest due first."""
        return await self._read(lambda c: [r["mail_id"] for r in c.execute(
            "SELECT mail_id FROM task_mail WHERE due_ts IS NOT NULL AND due_ts <= ? ORDER BY due_ts LIMIT ?",
            (now, limit)).fetchall()])

    async def next_task_mail_due(self) -> float | None:
        def read(c: Any) -> float | None:
            row = c.execute("SELECT min(due_ts) AS due FROM task_mail WHERE due_ts IS NOT NULL").fetchone()
            return None if row is None or row["due"] is None else float(row["due"])

        return await self._read(read)

    async def task_link(self, token_hash: str) -> Row | None:
        def read(c: Any) -> Row | None:
            row = c.execute("SELECT * FROM task_links WHERE token_hash = ?", (token_hash,)).fetchone()
            return dict(row) if row is not None else None

        return await self._read(read)

"""Inbox SQL: threads, each owner's entries, and the per-owner change counter.

Portable SQL (SQLite and PostgreSQL 15): ``?`` placeholders, columns read by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from axme_cli.runtime.store.base import Row

T = TypeVar("T")

_JOINED = (
    "SELECT t.thread_id, t.intent_id, t.status, t.from_agent, t.to_agent, t.created_at, t.updated_at, t.doc, "
    "e.owner_agent, e.change_seq, e.read_at, e.hidden, e.added_at "
    "FROM inbox_entries e JOIN inbox_threads t ON t.thread_id = e.thread_id "
)


def _assignments(fields: Row) -> str:
    return ", ".join(f"{k} = ?" for k in fields)


class InboxTxSql:
    """Write-transaction methods; mixed into the store's ``Tx`` (before it, so these implement its abstracts)."""

    _c: Any
    LOCK: str  # "" on SQLite, " FOR UPDATE" on PostgreSQL (store/sql.py)

    def inbox_thread(self, thread_id: str) -> Row | None:
        row = self._c.execute("SELECT * FROM inbox_threads WHERE thread_id = ?" + self.LOCK, (thread_id,)).fetchone()
        return dict(row) if row is not None else None

    def insert_inbox_thread(self, row: Row) -> None:
        cols = list(row)
        self._c.execute(
            f"INSERT INTO inbox_threads ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
            tuple(row.values()),
        )

    def update_inbox_thread(self, thread_id: str, fields: Row) -> None:
        self._c.execute(f"UPDATE inbox_threads SET {_assignments(fields)} WHERE thread_id = ?",
                        (*fields.values(), thread_id))

    def inbox_entry(self, owner_agent: str, thread_id: str) -> Row | None:
        row = self._c.execute("SELECT * FROM inbox_entries WHERE owner_agent = ? AND thread_id = ?",
                              (owner_agent, thread_id)).fetchone()
        return dict(row) if row is not None else None

    def inbox_entries_of(self, thread_id: str) -> list[Row]:
        rows = self._c.execute("SELECT * FROM inbox_entries WHERE thread_id = ? ORDER BY added_at, owner_agent",
                               (thread_id,)).fetchall()
        return [dict(r) for r in rows]

    def insert_inbox_entry(self, row: Row) -> None:
        cols = list(row)
        self._c.execute(
            f"INSERT INTO inbox_entries ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
            tuple(row.values()),
        )

    def update_inbox_entry(self, owner_agent: str, thread_id: str, fields: Row) -> None:
        self._c.execute(f"UPDATE inbox_entries SET {_assignments(fields)} WHERE owner_agent = ? AND thread_id = ?",
                        (*fields.values(), owner_agent, thread_id))

    def next_inbox_seq(self, owner_agent: str) -> int:
        row = self._c.execute(
            "INSERT INTO inbox_heads (owner_agent, last_seq) VALUES (?, 1) "
            "ON CONFLICT (owner_agent) DO UPDATE SET last_seq = inbox_heads.last_seq + 1 RETURNING last_seq",
            (owner_agent,),
        ).fetchone()
        return int(row["last_seq"])


class InboxReadSql:
    """Read methods; mixed into the ``Store`` (before it)."""

    if TYPE_CHECKING:
        async def _read(self, fn: Callable[[Any], T]) -> T: ...

    async def list_inbox(self, owner_agent: str, statuses: list[str] | None, limit: int) -> list[Row]:
        sql = _JOINED + "WHERE e.owner_agent = ?"
        args: list[Any] = [owner_agent]
        if statuses:
            sql += f" AND t.status IN ({', '.join('?' for _ in statuses)})"
            args.extend(statuses)
        sql += " ORDER BY e.change_seq DESC LIMIT ?"
        args.append(limit)
        return await self._read(lambda c: [dict(r) for r in c.execute(sql, args).fetchall()])

    async def get_inbox_thread(self, owner_agent: str, thread_id: str) -> Row | None:
        def one(c: Any) -> Row | None:
            sql = _JOINED + "WHERE e.owner_agent = ? AND e.thread_id = ?"
            row = c.execute(sql, (owner_agent, thread_id)).fetchone()
            return dict(row) if row is not None else None

        return await self._read(one)

    async def inbox_changes(self, owner_agent: str, after_seq: int, limit: int) -> list[Row]:
        sql = _JOINED + "WHERE e.owner_agent = ? AND e.change_seq > ? ORDER BY e.change_seq LIMIT ?"
        args = (owner_agent, after_seq, limit)
        return await self._read(lambda c: [dict(r) for r in c.execute(sql, args).fetchall()])

"""SQL of users (nicks and profiles) and invites (``users``, ``invites``). Portable SQL only, like ``sql.py``.

Reads of a row an operation is about to change take ``LOCK`` (``FOR UPDATE`` on PostgreSQL), so two replicas
accepting one invite take turns and the second sees it accepted. Two that register one nick at once both find it
free; the second insert breaks the unique index and PostgreSQL's store runs the operation again, which then finds
the nick taken."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from axme_cli.runtime.store.base import Row

T = TypeVar("T")


class UsersTxSql:
    """Write half (mixed into the backend's Tx)."""

    if TYPE_CHECKING:
        LOCK: str

        def _one(self, sql: str, args: tuple[Any, ...]) -> Row | None: ...

        def _insert(self, table: str, row: Row) -> None: ...

        def _update(self, table: str, id_column: str, id_value: str, fields: Row) -> None: ...

    def user_by(self, column: str, value: str) -> Row | None:
        """The user whose ``column`` (``user_id``, ``owner_agent``, ``nick`` or ``holder``) is ``value``."""
        assert column in ("user_id", "owner_agent", "nick", "holder"), column
        return self._one(f"SELECT * FROM users WHERE {column} = ?" + self.LOCK, (value,))

    def insert_user(self, row: Row) -> None:
        self._insert("users", row)

    def update_user(self, user_id: str, fields: Row) -> None:
        self._update("users", "user_id", user_id, fields)

    def insert_invite(self, row: Row) -> None:
        self._insert("invites", row)

    def invite_by(self, column: str, value: str) -> Row | None:
        """The invite whose ``column`` (``invite_id`` or ``token_hash``) is ``value``."""
        assert column in ("invite_id", "token_hash"), column
        return self._one(f"SELECT * FROM invites WHERE {column} = ?" + self.LOCK, (value,))

    def update_invite(self, invite_id: str, fields: Row) -> None:
        self._update("invites", "invite_id", invite_id, fields)


class UsersReadSql:
    """Read half (mixed into the backend's Store, which provides ``_read``)."""

    if TYPE_CHECKING:

        async def _read(self, fn: Callable[[Any], T]) -> T: ...

    async def read_user(self, column: str, value: str) -> Row | None:
        """The user whose ``column`` (``owner_agent``, ``nick`` or ``holder``) is ``value``."""
        assert column in ("owner_agent", "nick", "holder"), column

        def read(c: Any) -> Row | None:
            row = c.execute(f"SELECT * FROM users WHERE {column} = ?", (value,)).fetchone()
            return dict(row) if row is not None else None

        return await self._read(read)

    async def read_invite(self, token_hash: str) -> Row | None:
        def read(c: Any) -> Row | None:
            row = c.execute("SELECT * FROM invites WHERE token_hash = ?", (token_hash,)).fetchone()
            return dict(row) if row is not None else None

        return await self._read(read)

"""SQL of media uploads: uploads, their parts, who else may read them, and (PostgreSQL) the parts' bytes.

Portable SQL only, like ``sql.py``. ``media_chunks`` exists on PostgreSQL only: there a part's bytes are rows, so
every replica reads them; on SQLite they are files beside the database (``runtime/media_files.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from axme_cli.runtime.store.base import Row

T = TypeVar("T")

# Whether ``address`` was given an upload by an intent that attached it, or holds an inbox thread with a message
# that attached it (an owner to whom the thread was delegated later included).
_READABLE = (
    "SELECT 1 AS yes FROM media_grants WHERE upload_id = ? AND address = ? "
    "UNION ALL "
    "SELECT 1 AS yes FROM media_thread_links l JOIN inbox_entries e ON e.thread_id = l.thread_id "
    "WHERE l.upload_id = ? AND e.owner_agent = ? "
    "LIMIT 1"
)


def _marks(values: list[Any]) -> str:
    return ", ".join("?" for _ in values)


class MediaTxSql:
    """Write-transaction methods; mixed into the store's ``Tx``."""

    _c: Any
    LOCK: str

    if TYPE_CHECKING:

        def _insert(self, table: str, row: Row) -> None: ...

        def _update(self, table: str, id_column: str, id_value: str, fields: Row) -> None: ...

        def _one(self, sql: str, args: tuple[Any, ...]) -> Row | None: ...

        def _all(self, sql: str, args: tuple[Any, ...] | list[Any]) -> list[Row]: ...

    def get_media_upload(self, upload_id: str) -> Row | None:
        return self._one("SELECT * FROM media_uploads WHERE upload_id = ?" + self.LOCK, (upload_id,))

    def insert_media_upload(self, row: Row) -> None:
        self._insert("media_uploads", row)

    def update_media_upload(self, upload_id: str, fields: Row) -> None:
        self._update("media_uploads", "upload_id", upload_id, fields)

    def expired_media_uploads(self, now: float, limit: int) -> list[str]:
        rows = self._all("SELECT upload_id FROM media_uploads WHERE status = 'pending' AND expires_ts <= ? "
                         "ORDER BY expires_ts LIMIT ?", (now, limit))
        return [r["upload_id"] for r in rows]

    def insert_media_part(self, row: Row) -> None:
        self._insert("media_parts", row)

    def get_media_part(self, part_id: str) -> Row | None:
        return self._one("SELECT * FROM media_parts WHERE part_id = ?" + self.LOCK, (part_id,))

    def media_parts_of(self, upload_id: str) -> list[Row]:
        return self._all("SELECT * FROM media_parts WHERE upload_id = ? ORDER BY part_id", (upload_id,))

    def set_media_part_state(self, part_ids: list[str], state: str) -> None:
        if part_ids:
            self._c.execute(f"UPDATE media_parts SET state = ? WHERE part_id IN ({_marks(part_ids)})",
                            (state, *part_ids))

    def dead_media_parts(self, limit: int) -> list[str]:
        rows = self._all("SELECT part_id FROM media_parts WHERE state = 'dead' ORDER BY part_id LIMIT ?", (limit,))
        return [r["part_id"] for r in rows]

    def delete_media_parts(self, part_ids: list[str]) -> None:
        if part_ids:
            self._c.execute(f"DELETE FROM media_parts WHERE part_id IN ({_marks(part_ids)})", tuple(part_ids))

    def grant_media(self, upload_id: str, address: str, intent_id: str) -> None:
        self._c.execute("INSERT INTO media_grants (upload_id, address, intent_id) VALUES (?, ?, ?) "
                        "ON CONFLICT (upload_id, address) DO NOTHING", (upload_id, address, intent_id))

    def link_media_thread(self, upload_id: str, thread_id: str) -> None:
        self._c.execute("INSERT INTO media_thread_links (upload_id, thread_id) VALUES (?, ?) "
                        "ON CONFLICT (upload_id, thread_id) DO NOTHING", (upload_id, thread_id))

    def media_readable(self, upload_id: str, address: str) -> bool:
        return self._one(_READABLE, (upload_id, address, upload_id, address)) is not None

    # PostgreSQL only (media_chunks)
    def insert_media_chunk(self, part_id: str, n: int, data: bytes) -> None:
        self._c.execute("INSERT INTO media_chunks (part_id, n, data) VALUES (?, ?, ?)", (part_id, n, data))

    def delete_media_chunks(self, part_id: str) -> None:
        self._c.execute("DELETE FROM media_chunks WHERE part_id = ?", (part_id,))


class MediaReadSql:
    """Read methods; mixed into the ``Store``."""

    if TYPE_CHECKING:

        async def _read(self, fn: Callable[[Any], T]) -> T: ...

    async def get_media_upload(self, upload_id: str) -> Row | None:
        def one(c: Any) -> Row | None:
            row = c.execute("SELECT * FROM media_uploads WHERE upload_id = ?", (upload_id,)).fetchone()
            return dict(row) if row is not None else None

        return await self._read(one)

    async def media_readable(self, upload_id: str, address: str) -> bool:
        args = (upload_id, address, upload_id, address)
        return await self._read(lambda c: c.execute(_READABLE, args).fetchone() is not None)

    async def media_chunk(self, part_id: str, n: int) -> bytes | None:
        def one(c: Any) -> bytes | None:
            row = c.execute("SELECT data FROM media_chunks WHERE part_id = ? AND n = ?", (part_id, n)).fetchone()
            return None if row is None else bytes(row["data"])

        return await self._read(one)

"""Storage: the only package that knows SQL. ``open_store`` picks the backend from a URL or path."""

from __future__ import annotations

from typing import Any

from axme_cli.runtime.store.base import Store, Tx
from axme_cli.runtime.store.urls import POSTGRES_SCHEMES, redact


def open_store(location: str, *, replica_id: str | None = None, busy_timeout: float | None = None,
               wal_limits: tuple[int, int] | None = None) -> Store:
    """``sqlite:///path``, a plain file path, or ``postgresql://user@host:port/db``. ``busy_timeout``: seconds a
    SQLite write waits for another process's lock on the file before it is refused (None: the store's 5 s);
    ``wal_limits``: the SQLite WAL's (soft, cap) in bytes (None: the store's 16 and 64 MB)."""
    if location.startswith(POSTGRES_SCHEMES):
        from axme_cli.runtime.store.postgres import PostgresStore

        return PostgresStore(location, replica_id=replica_id)
    path = location[len("sqlite:///") :] if location.startswith("sqlite:///") else location
    from axme_cli.runtime.store.sqlite import SqliteStore

    options: dict[str, Any] = {}
    if busy_timeout is not None:
        options["busy_timeout"] = busy_timeout
    if wal_limits is not None:
        options["wal_soft"], options["wal_cap"] = wal_limits
    return SqliteStore(path, **options)


__all__ = ["POSTGRES_SCHEMES", "Store", "Tx", "open_store", "redact"]

"""Storage: the only package that knows SQL. ``open_store`` picks the backend from a URL or path."""

from __future__ import annotations

from axme_cli.runtime.store.base import Store, Tx
from axme_cli.runtime.store.urls import POSTGRES_SCHEMES, redact


def open_store(location: str, *, replica_id: str | None = None, busy_timeout: float | None = None) -> Store:
    """``sqlite:///path``, a plain file path, or ``postgresql://user@host:port/db``. ``busy_timeout``: seconds a
    SQLite write waits for another process's lock on the file before it is refused (None: the store's 5 s)."""
    if location.startswith(POSTGRES_SCHEMES):
        from axme_cli.runtime.store.postgres import PostgresStore

        return PostgresStore(location, replica_id=replica_id)
    path = location[len("sqlite:///") :] if location.startswith("sqlite:///") else location
    from axme_cli.runtime.store.sqlite import SqliteStore

    return SqliteStore(path) if busy_timeout is None else SqliteStore(path, busy_timeout=busy_timeout)


__all__ = ["POSTGRES_SCHEMES", "Store", "Tx", "open_store", "redact"]

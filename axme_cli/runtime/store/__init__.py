"""Storage: the only package that knows SQL. ``open_store`` picks the backend from a URL or path."""

from __future__ import annotations

from axme_cli.runtime.store.base import Store, Tx


def open_store(location: str) -> Store:
    """``sqlite:///path``, a plain file path, or (later) ``postgresql://...``."""
    if location.startswith(("postgresql://", "postgres://")):
        raise NotImplementedError("PostgreSQL storage is not available yet; use SQLite")
    path = location[len("sqlite:///") :] if location.startswith("sqlite:///") else location
    from axme_cli.runtime.store.sqlite import SqliteStore

    return SqliteStore(path)


__all__ = ["Store", "Tx", "open_store"]

"""Storage: the only package that knows SQL. ``open_store`` picks the backend from a URL or path."""

from __future__ import annotations

from axme_cli.runtime.store.base import Store, Tx

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def redact(url: str) -> str:
    """A database URL without its password, for logs and banners."""
    from urllib.parse import urlsplit, urlunsplit

    if not url.startswith(POSTGRES_SCHEMES):
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, host = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=f"{user.split(':', 1)[0]}:***@{host}"))


def open_store(location: str, *, replica_id: str | None = None) -> Store:
    """``sqlite:///path``, a plain file path, or ``postgresql://user@host:port/db``."""
    if location.startswith(POSTGRES_SCHEMES):
        from axme_cli.runtime.store.postgres import PostgresStore

        return PostgresStore(location, replica_id=replica_id)
    path = location[len("sqlite:///") :] if location.startswith("sqlite:///") else location
    from axme_cli.runtime.store.sqlite import SqliteStore

    return SqliteStore(path)


__all__ = ["POSTGRES_SCHEMES", "Store", "Tx", "open_store", "redact"]

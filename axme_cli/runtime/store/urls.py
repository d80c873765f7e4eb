"""Database locations: which URLs name PostgreSQL, and a URL fit to show (no password)."""

from __future__ import annotations

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

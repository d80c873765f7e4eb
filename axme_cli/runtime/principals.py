"""Who is calling: API keys, hashed at rest and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from axme_cli.protocol.ids import uuid7

_TOKEN_RE = re.compile(r"^axme_(sa|ws)_([0-9a-f-]{36})_([A-Za-z0-9_-]{16,})$")
CUSTOM_LOOKUP = "custom"


@dataclass(frozen=True)
class Principal:
    kind: str  # "workspace" (admin of the workspace) | "service_account"
    key_id: str
    address: str  # agent address of a service account; initiator address of the workspace key
    service_account_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.kind == "workspace"

    def may_see(self, row: dict) -> bool:
        """An agent key sees only intents addressed to it or sent by it."""
        return self.is_admin or row["to_agent"] == self.address or row["from_agent"] == self.address


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def lookup_of(token: str) -> str:
    m = _TOKEN_RE.match(token)
    return m.group(2) if m else CUSTOM_LOOKUP


def new_service_account_token(sa_id: str) -> str:
    return f"axme_sa_{sa_id}_{secrets.token_urlsafe(32)}"


def new_workspace_token() -> tuple[str, str]:
    key_id = uuid7()
    return key_id, f"axme_ws_{key_id}_{secrets.token_urlsafe(32)}"


def hint(token: str) -> str:
    return f"...{token[-4:]}"


def matches(token_hash: str, stored_hash: str) -> bool:
    return hmac.compare_digest(token_hash.encode(), stored_hash.encode())


class KeyCache:
    """Resolved keys for a few seconds, so the hot path does not query for every request.

    Any key change committed by this process clears it at once; other replicas (PostgreSQL)
    see a revocation within ``ttl`` seconds.
    """

    def __init__(self, ttl: float = 5.0) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, token_hash: str) -> Principal | None:
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            self._entries.pop(token_hash, None)
            return None
        return entry[1]

    def put(self, token_hash: str, principal: Principal) -> None:
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[token_hash] = (time.monotonic() + self.ttl, principal)

    def clear(self) -> None:
        self._entries.clear()

"""Who is calling: API keys, hashed at rest and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass

from axme_cli.protocol.ids import uuid7
from axme_cli.runtime.clock import SYSTEM, Clock

_TOKEN_RE = re.compile(r"^axme_(sa|ws)_([0-9a-f-]{36})_([A-Za-z0-9_-]{16,})$")
CUSTOM_LOOKUP = "custom"


@dataclass(frozen=True)
class Principal:
    kind: str  # "workspace" (admin of the workspace) | "service_account" | "actor" (a person logged in by email)
    key_id: str  # the API key's id; an actor's actor_id
    address: str  # agent address of a service account; initiator address of the workspace key; actor://... of a person
    service_account_id: str | None = None
    email: str | None = None  # actors only
    session_id: str | None = None  # actors only
    # the organization and workspace of a workspace key made for one (POST /v1/organizations/{org}/workspaces);
    # None: the runtime's default pair (settings.org / settings.workspace)
    org_id: str | None = None
    workspace_id: str | None = None

    @property
    def elsewhere(self) -> bool:
        """A credential of a workspace other than the runtime's default one."""
        return self.workspace_id is not None

    @property
    def is_admin(self) -> bool:
        """The workspace key: manages service accounts and keys."""
        return self.kind == "workspace"

    @property
    def is_actor(self) -> bool:
        return self.kind == "actor"

    @property
    def is_member(self) -> bool:
        """The workspace key or a logged-in person: may send, list, get, resume and resolve every intent of the
        workspace (but only the workspace key manages service accounts and keys: ``is_admin``)."""
        return self.kind in ("workspace", "actor")

    def may_see(self, row: dict) -> bool:
        """An agent key sees only intents addressed to it, sent by it, replying to it or whose policy grants it
        something (engine/controls.py); members see every intent of their workspace, and nobody another
        workspace's (``org_id`` / ``workspace_id``: NULL for the runtime's default one, as the principal's)."""
        if row.get("workspace_id") != self.workspace_id or row.get("org_id") != self.org_id:
            return False
        if self.is_member or row["to_agent"] == self.address or row["from_agent"] == self.address:
            return True
        doc = row.get("doc")
        if doc is None:
            return False
        parsed = json.loads(doc)
        return parsed.get("reply_to") == self.address or f"delegate:{self.address}" in (parsed.get("grants") or {})

    def granted(self, row: dict, action: str) -> bool:
        """Whether the intent's policy grants this principal ``action`` (resume, update_controls, update_policy):
        a grant names an agent address, or a person's email."""
        grants = json.loads(row["doc"]).get("grants") or {}
        for who in (self.address, self.email):
            if who is not None and action in (grants.get(f"delegate:{who}") or {}).get("allow", ()):
                return True
        return False


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


# --- human sessions: access tokens ``axme_at_<token_id>_<secret>``, refresh tokens ``axme_rt_<token_id>_<secret>``
_SESSION_TOKEN_RE = re.compile(r"^axme_(at|rt)_([0-9a-f-]{36})_([A-Za-z0-9_-]{32,})$")
ACCESS, REFRESH = "access", "refresh"


def new_session_token(kind: str) -> tuple[str, str]:
    """(token_id, token) for an access or a refresh token; only the token's sha256 is ever stored."""
    token_id = uuid7()
    prefix = "at" if kind == ACCESS else "rt"
    return token_id, f"axme_{prefix}_{token_id}_{secrets.token_urlsafe(32)}"


def parse_session_token(token: str) -> tuple[str, str] | None:
    """(kind, token_id) of something shaped like a session token, else None."""
    m = _SESSION_TOKEN_RE.match(token)
    if m is None:
        return None
    return (ACCESS if m.group(1) == "at" else REFRESH), m.group(2)


def new_login_code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def hash_login_code(intent_id: str, code: str) -> str:
    """The code is salted with its login intent, so equal codes of two intents hash differently."""
    return hash_token(f"{intent_id}:{code.strip()}")


class KeyCache:
    """Resolved keys for a few seconds, so the hot path does not query for every request.

    Any key change committed by this process clears it at once; other replicas (PostgreSQL)
    see a revocation within ``ttl`` seconds.
    """

    def __init__(self, ttl: float = 5.0, clock: Clock = SYSTEM) -> None:
        self.ttl = ttl
        self._monotonic = clock.monotonic
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, token_hash: str) -> Principal | None:
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        if entry[0] < self._monotonic():
            self._entries.pop(token_hash, None)
            return None
        return entry[1]

    def put(self, token_hash: str, principal: Principal, *, valid_for: float | None = None) -> None:
        """``valid_for``: seconds the credential itself stays valid (an access token's expiry), if shorter."""
        if len(self._entries) > 10_000:
            self._entries.clear()
        ttl = self.ttl if valid_for is None else max(0.0, min(self.ttl, valid_for))
        self._entries[token_hash] = (self._monotonic() + ttl, principal)

    def clear(self) -> None:
        self._entries.clear()

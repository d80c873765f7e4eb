"""Aliases (AXME's ``aliases.*``): another name an intent may be sent to, bound to a principal's address.

An intent whose ``to_agent`` is an active alias (matched without regard to case) goes to the address its principal
receives at; the intent keeps both (``to_agent`` the address, ``to_alias`` the alias), so a later revoke or rebind
moves nothing already sent, and an intent sent after the revoke no longer resolves it. A full ``agent://`` address
is never an alias; a bare name that is also an alias's is the alias (an alias is a name people chose for a
principal, so it wins over an agent's bare name of the same spelling). Only the workspace key and people bind and
revoke aliases: an agent key that could bind one could take intents meant for an agent's bare name.

Creating an intent must cost nothing when no alias applies: ``AliasBook`` keeps every active alias of the
workspace in memory, read once and dropped after a bind or revoke of this process; with several replicas
(PostgreSQL) it is read again at most once a second, so a change elsewhere applies within a second. The create
then confirms, inside its transaction, that the alias it used is still active (one indexed read, only for intents
sent to an alias).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from axme_cli.protocol import addresses
from axme_cli.protocol.ids import uuid7
from axme_cli.runtime.clock import iso
from axme_cli.runtime.engine import audit
from axme_cli.runtime.engine.codec import dumps, loads
from axme_cli.runtime.engine.principals_admin import find, require_member, tenancy
from axme_cli.runtime.errors import Conflict, NotFound, Unprocessable
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Reads, Row, Tx

ACTIVE, REVOKED = "active", "revoked"


def alias_key(raw: str) -> str:
    """What a recipient is matched on: the alias trimmed and lower-cased."""
    return raw.strip().lower()


def check_alias(s: Settings, raw: str) -> str:
    """The alias as it is kept (trimmed), or 422 naming ``alias``: it must not read as something a recipient
    already means (an ``agent://`` or other URL-like address, a nick, the runtime itself), nor hold control
    characters."""
    value = raw.strip()
    problem = None
    if len(value) < 3:
        problem = "at least 3 characters besides surrounding spaces"
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        problem = "no control characters"
    elif "://" in value:
        problem = "not an address (agent://... names an agent itself)"
    elif value.startswith("@") or value.lower().endswith("@ax"):
        problem = "not a nick (@name and name@ax are users' nicks)"
    elif addresses.is_core(value.lower(), s.org, s.workspace):
        problem = "not the runtime's own address"
    if problem is not None:
        raise Unprocessable(f"alias: {problem}", code="invalid_alias", details={"field": "alias"})
    return value


def alias_view(row: Row) -> dict[str, Any]:
    """``api.aliases.*``'s alias, plus ``address``: where intents sent to it go."""
    return {
        "alias_id": row["alias_id"],
        "principal_id": row["principal_id"],
        "org_id": row["org_id"],
        "workspace_id": row["workspace_id"],
        "alias": row["alias"],
        "alias_type": row["alias_type"],
        "status": row["status"],
        "metadata": loads(row["metadata"]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "revoked_at": row["revoked_at"],
        "address": row["address"],
    }


def op_bind(tx: Tx, s: Settings, principal: Principal, req: dict[str, Any], now: float) -> Row:
    """Bind an alias to a principal. Binding it again to the same principal answers the alias as it is; an alias
    active for another principal is 409 ``alias_taken`` (revoke it first)."""
    require_member(principal, "binding an alias")
    value = check_alias(s, req["alias"])
    target = find(tx, s, req["principal_id"])
    org, workspace = tenancy(s)
    key = alias_key(value)
    existing = tx.active_alias(org, workspace, key)
    if existing is not None:
        if existing["address"] == target.address:
            return existing
        raise Conflict(f"alias: {value!r} is bound to {existing['principal_id']}; revoke it first",
                       code="alias_taken", details={"field": "alias", "alias_id": existing["alias_id"]})
    at = iso(now)
    row: Row = {
        "alias_id": uuid7(), "org_id": org, "workspace_id": workspace, "principal_id": target.principal_id,
        "address": target.address, "alias": value, "alias_key": key, "alias_type": req["alias_type"],
        "status": ACTIVE, "metadata": dumps(req.get("metadata") or {}), "created_by": principal.address,
        "created_at": at, "updated_at": at, "revoked_at": None,
    }
    tx.insert_alias(row)
    audit.by(tx, "alias.bound", now, principal, owner_agent=target.address, target=("alias", row["alias_id"]),
             alias=value, principal_id=target.principal_id)
    return row


def op_revoke(tx: Tx, s: Settings, principal: Principal, alias_id: str, now: float) -> Row:
    """Revoke an alias (a second revoke answers the first): intents sent to it from now on do not resolve it."""
    require_member(principal, "revoking an alias")
    org, workspace = tenancy(s)
    row = tx.get_alias(org, workspace, alias_id)
    if row is None:
        raise NotFound(f"alias {alias_id} not found", code="alias_not_found")
    if row["status"] != REVOKED:
        at = iso(now)
        fields = {"status": REVOKED, "revoked_at": at, "updated_at": at}
        tx.update_alias(alias_id, fields)
        row.update(fields)
        audit.by(tx, "alias.revoked", now, principal, owner_agent=row["address"], target=("alias", alias_id),
                 alias=row["alias"])
    return row


# ---------------------------------------------------------------------------------------------
# aliases as recipients


@dataclass(frozen=True)
class Hit:
    alias_id: str
    alias: str  # as bound
    address: str

    def recorded(self) -> dict[str, str]:
        """What the intent keeps of the alias it was sent to (its doc's ``to_alias``)."""
        return {"alias_id": self.alias_id, "alias": self.alias}


class AliasChanged(Conflict):
    """The alias an intent was sent to was revoked between the lookup and the create: send it again."""

    def __init__(self, alias: str) -> None:
        super().__init__(f"to_agent: the alias {alias!r} was revoked just now; send the intent again",
                         code="alias_changed", details={"field": "to_agent", "retryable": True})


def confirm(tx: Tx, s: Settings, req: dict[str, Any]) -> dict[str, Any]:
    """Inside a create's transaction: the alias it was sent to (``req["to_alias"]``) is still active, and its
    address is where the intent goes (one indexed read, only for an intent sent to an alias)."""
    sent_to = req.get("to_alias")
    if not sent_to:
        return req
    org, workspace = tenancy(s)
    row = tx.get_alias(org, workspace, sent_to["alias_id"])
    if row is None or row["status"] != ACTIVE:
        raise AliasChanged(sent_to["alias"])
    return {**req, "to_agent": row["address"]}


def resolve_in(tx: Tx, s: Settings, req: dict[str, Any]) -> dict[str, Any]:
    """Inside a transaction with no lookup before it (a schedule's run): the alias ``req["to_alias"]`` names, as it
    is bound now in the workspace of ``s`` (one indexed read). Revoked with none bound again: 409
    ``alias_changed``."""
    sent_to = req["to_alias"]
    org, workspace = tenancy(s)
    row = tx.active_alias(org, workspace, alias_key(sent_to["alias"]))
    if row is None:
        raise AliasChanged(sent_to["alias"])
    return {**req, "to_agent": row["address"],
            "to_alias": Hit(row["alias_id"], row["alias"], row["address"]).recorded()}


class AliasBook:
    """Every active alias of each workspace in memory (the workspace's pair -> key -> Hit), so an intent to an
    ordinary address asks the database nothing. A workspace's aliases are read on its first lookup; all are dropped
    (``invalidate``) by a bind or revoke in this process; ``ttl`` (seconds, replicas only) is how long a change
    made by another replica may go unseen."""

    def __init__(self, ttl: float | None = None) -> None:
        self.ttl = ttl
        self._index: dict[tuple[str, str], tuple[float, dict[str, Hit]]] = {}
        self._generation = 0  # one more per invalidate: a load that raced one is not kept
        self._lock: asyncio.Lock | None = None

    def invalidate(self) -> None:
        self._index = {}
        self._generation += 1

    def _fresh(self, pair: tuple[str, str]) -> dict[str, Hit] | None:
        held = self._index.get(pair)
        if held is not None and (self.ttl is None or time.monotonic() - held[0] < self.ttl):
            return held[1]
        return None

    async def lookup(self, reads: Reads, s: Settings, raw: str) -> Hit | None:
        """The alias ``raw`` is in the workspace of ``s``, if any (never for an ``agent://`` address)."""
        if raw.startswith(addresses.SCHEME):
            return None
        pair = tenancy(s)
        index = self._fresh(pair)
        if index is None:
            index = await self._load(reads, pair)
        return index.get(alias_key(raw)) if index else None

    async def _load(self, reads: Reads, pair: tuple[str, str]) -> dict[str, Hit]:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # many creates at once after an invalidate: one of them reads
            index = self._fresh(pair)
            if index is not None:
                return index
            generation = self._generation
            index = {r["alias_key"]: Hit(r["alias_id"], r["alias"], r["address"])
                     for r in await reads.active_alias_index(*pair)}
            if generation == self._generation:
                self._index[pair] = (time.monotonic(), index)
            return index

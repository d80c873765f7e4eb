"""The audit log: who did what to logins, keys, service accounts, deliveries and intents.

An operation records its event with ``record`` inside its own transaction, so an event exists if and only if
the change it tells of committed (a refusal that changes nothing records nothing). Details never hold a
secret: no token, login code, key or signing secret, only ids and hints.
"""

from __future__ import annotations

from typing import Any

from axme_cli.protocol.ids import uuid7
from axme_cli.runtime.clock import iso
from axme_cli.runtime.engine.codec import dumps, loads
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.scope import Pair, principal_pair
from axme_cli.runtime.store.base import Row, Tx


def record(tx: Tx, action: str, now: float, *, actor: str, key_id: str | None = None, owner_agent: str | None = None,
           target: tuple[str, str] | None = None, workspace: Pair = (None, None), **details: Any) -> None:
    """``workspace``: the pair the event belongs to (``scope.principal_pair``; (None, None) the runtime's default one,
    as for logins, which are the runtime's)."""
    tx.insert_audit_event({
        "event_id": uuid7(), "created_at": iso(now), "action": action, "actor": actor, "key_id": key_id,
        "org_id": workspace[0], "workspace_id": workspace[1],
        "owner_agent": owner_agent, "target_type": target[0] if target else None,
        "target_id": target[1] if target else None,
        "details": dumps({k: v for k, v in details.items() if v is not None}),
    })


def by(tx: Tx, action: str, now: float, principal: Principal, **fields: Any) -> None:
    """``record`` with the caller as the actor and its credential's id, in the caller's workspace."""
    record(tx, action, now, actor=principal.address, key_id=principal.key_id, workspace=principal_pair(principal),
           **fields)


def event_view(row: Row) -> dict[str, Any]:
    return {
        "event_id": row["event_id"], "created_at": row["created_at"], "action": row["action"],
        "actor": row["actor"], "key_id": row["key_id"], "owner_agent": row["owner_agent"],
        "target_type": row["target_type"], "target_id": row["target_id"], "details": loads(row["details"]),
    }

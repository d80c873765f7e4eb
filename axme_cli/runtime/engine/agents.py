"""Service accounts (one per agent address) and their API keys."""

from __future__ import annotations

from typing import Any

from axme_cli.protocol import addresses
from axme_cli.protocol.ids import uuid7
from axme_cli.runtime import principals as pr
from axme_cli.runtime import scope
from axme_cli.runtime.clock import iso
from axme_cli.runtime.engine import audit, quotas
from axme_cli.runtime.errors import Conflict, Forbidden, NotFound, Unprocessable
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Row, Tx


def require_admin(principal: Principal, what: str) -> None:
    if not principal.is_admin:
        who = "a person's login" if principal.is_actor else "an agent key"
        raise Forbidden(f"{what} needs the workspace API key, not {who}", code="policy_denied")


def service_account_view(row: Row) -> dict[str, Any]:
    return {
        "service_account_id": row["service_account_id"],
        "id": row["service_account_id"],
        "org_id": row["org_id"],
        "workspace_id": row["workspace_id"],
        "name": row["name"],
        "description": row["description"],
        "display_name": row["display_name"],
        "status": row["status"],
        "created_by_actor_id": row["created_by_actor_id"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "agent_address": row["address"],
        "address": row["address"],
    }


def agent_view(row: Row) -> dict[str, Any]:
    return {
        "address": row["address"],
        "service_account_id": row["service_account_id"],
        "service_account_name": row["name"],
        "display_name": row["display_name"] or row["name"],
        "status": row["status"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def key_view(row: Row, token: str | None = None) -> dict[str, Any]:
    view = {
        "key_id": row["key_id"],
        "service_account_id": row["service_account_id"],
        "key_hint": row["key_hint"],
        "status": row["status"],
        "created_at": row["created_at"],
        "expires_at": row["expires_at"],
        "revoked_at": row["revoked_at"],
    }
    if token is not None:
        view["token"] = token
    return view


def normalize_name(s: Settings, name: str) -> str:
    """Accept ``inventory``, ``agent://org/ws/inventory`` (this workspace) as a service-account name."""
    raw = name.strip()
    if raw.startswith(addresses.SCHEME):
        prefix = addresses.agent_address(s.org, s.workspace, "")
        if not raw.startswith(prefix):
            raise Unprocessable(
                f"name: {raw} is outside this workspace ({prefix}...)",
                code="invalid_agent_address",
                details={"field": "name"},
            )
        raw = raw[len(prefix) :]
    if not addresses.is_valid_name(raw):
        raise Unprocessable(
            f"name: {name!r} is not a valid agent name (lowercase letters, digits, '.', '_', '-'; "
            "2-63 characters, starting and ending with a letter or digit)",
            code="invalid_agent_address",
            details={"field": "name"},
        )
    return raw


def op_create_service_account(
    tx: Tx, s: Settings, principal: Principal, req: dict[str, Any], now: float
) -> dict[str, Any]:
    require_admin(principal, "creating a service account")
    for field, mine in (("org_id", s.org), ("workspace_id", s.workspace)):
        given = req.get(field)
        if given not in (None, "", mine):
            raise NotFound(
                f"{field} {given!r} does not exist here (this runtime serves {mine!r})",
                code=f"{field.split('_')[0]}_not_found",
                details={"field": field},
            )
    name = normalize_name(s, req["name"])
    address = addresses.agent_address(s.org, s.workspace, name)
    if tx.active_service_account_by_address(address) is not None:
        raise Conflict(
            f"a service account named {name!r} already exists",
            code="service_account_exists",
            details={"name": name, "address": address},
        )
    quotas.admit_service_account(tx, now, s)  # within its workspace's service_accounts_per_workspace
    at = iso(now)
    row: Row = {
        "service_account_id": uuid7(),
        "org_id": s.org,
        "workspace_id": s.workspace,
        "name": name,
        "address": address,
        "display_name": req.get("display_name"),
        "description": req.get("description"),
        "status": "active",
        "created_by_actor_id": req.get("created_by_actor_id") or principal.key_id,
        "created_at": at,
        "updated_at": at,
    }
    tx.insert_service_account(row)
    return {"ok": True, "service_account": service_account_view(row)}


def _live_sa(tx: Tx, s: Settings, sa_id: str) -> Row:
    """A live service account of the workspace of ``s``; another workspace's is as unknown as a missing one."""
    row = tx.get_service_account(sa_id)
    if row is None or row["status"] == "deleted" or not scope.owns(s, row):
        raise NotFound(f"service account {sa_id} not found", code="service_account_not_found")
    return row


def op_delete_service_account(tx: Tx, s: Settings, principal: Principal, sa_id: str, now: float) -> dict[str, Any]:
    require_admin(principal, "deleting a service account")
    row = _live_sa(tx, s, sa_id)
    at = iso(now)
    tx.update_service_account(sa_id, {"status": "deleted", "updated_at": at})
    tx.update_keys({"status": "revoked", "revoked_at": at}, sa_id=sa_id)
    row.update(status="deleted", updated_at=at)
    audit.by(tx, "service_account.deleted", now, principal, owner_agent=row["address"],
             target=("service_account", sa_id))
    return {"ok": True, "deleted": True, "service_account": service_account_view(row)}


def op_create_key(
    tx: Tx, s: Settings, principal: Principal, sa_id: str, expires_at: str | None, now: float
) -> dict[str, Any]:
    require_admin(principal, "creating an agent key")
    sa = _live_sa(tx, s, sa_id)
    token = pr.new_service_account_token(sa_id)
    row: Row = {
        "key_id": uuid7(),
        "kind": "service_account",
        "service_account_id": sa_id,
        "lookup": pr.lookup_of(token),
        "hash": pr.hash_token(token),
        "key_hint": pr.hint(token),
        "status": "active",
        "created_at": iso(now),
        "expires_at": expires_at,
        "revoked_at": None,
    }
    if principal.workspace_id is not None:  # the key carries its workspace, NULL for the default one's
        row.update(org_id=sa["org_id"], workspace_id=sa["workspace_id"])
    tx.insert_key(row)
    audit.by(tx, "service_account.key.created", now, principal, owner_agent=sa["address"],
             target=("key", row["key_id"]), key_hint=row["key_hint"], expires_at=expires_at)
    return {"ok": True, "key": key_view(row, token)}


def op_revoke_key(tx: Tx, s: Settings, principal: Principal, sa_id: str, key_id: str, now: float) -> dict[str, Any]:
    require_admin(principal, "revoking an agent key")
    sa = tx.get_service_account(sa_id)
    row = tx.get_key(key_id)
    if row is None or row["service_account_id"] != sa_id or sa is None or not scope.owns(s, sa):
        raise NotFound(f"key {key_id} not found for service account {sa_id}", code="key_not_found")
    if row["status"] != "revoked":
        at = iso(now)
        tx.update_keys({"status": "revoked", "revoked_at": at}, key_id=key_id)
        row.update(status="revoked", revoked_at=at)
        audit.by(tx, "service_account.key.revoked", now, principal, owner_agent=sa["address"],
                 target=("key", key_id))
    return {"ok": True, "key": key_view(row)}


def op_ensure_workspace_key(tx: Tx, token: str, now: float) -> bool:
    """Make ``token`` a valid workspace (admin) key; returns True when it had to be added."""
    tx.exclusive("workspace-key")  # replicas starting together add it once
    token_hash = pr.hash_token(token)
    for row in tx.keys_by_lookup([pr.lookup_of(token)]):
        if row["kind"] == "workspace" and row["status"] == "active" and pr.matches(token_hash, row["hash"]):
            return False
    tx.insert_key(
        {
            "key_id": uuid7(),
            "kind": "workspace",
            "service_account_id": None,
            "lookup": pr.lookup_of(token),
            "hash": token_hash,
            "key_hint": pr.hint(token),
            "status": "active",
            "created_at": iso(now),
            "expires_at": None,
            "revoked_at": None,
        }
    )
    return True

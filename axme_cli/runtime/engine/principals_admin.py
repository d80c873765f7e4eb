"""Principals of the workspace (AXME's ``principals.*``): named identities that receive intents at an address.

Not the callers of ``runtime/principals.py`` (who holds which API key): a principal here is a recipient. Two kinds
answer to a ``principal_id``:

- a principal registered with ``POST /v1/principals`` (``principal_id`` a UUID): it receives at an address of its
  own, ``agent://<org>/<workspace>/principal-<id>``, or at an agent's address it was registered for;
- every agent with a service account, whose ``principal_id`` is its address (as on ``/v1/deliveries``): an alias,
  route or binding may name an agent by its address or bare name without registering it first.

Aliases (engine/aliases.py), routing endpoints and transport bindings (engine/routing.py) name a principal and
act on its address. Every row belongs to one organisation and workspace (``tenancy``), and every read names them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from axme_cli.protocol import addresses
from axme_cli.protocol.ids import uuid7
from axme_cli.runtime.clock import iso
from axme_cli.runtime.engine import audit
from axme_cli.runtime.engine.codec import dumps, loads
from axme_cli.runtime.errors import Conflict, Forbidden, NotFound, Unprocessable
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.scope import owns
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Row, Tx

ACTIVE = "active"
SERVICE_ACCOUNT = "service_account"


def tenancy(s: Settings) -> tuple[str, str]:
    """The organisation and workspace a caller's rows belong to and its reads filter on (``s``: the caller's scoped
    settings, ``scope.settings_for``)."""
    return s.org, s.workspace


def check_tenancy(s: Settings, values: dict[str, Any]) -> None:
    """``org_id`` / ``workspace_id`` may be left out; given, they must name the caller's (404 otherwise, never
    403: whether another exists is not told)."""
    org, workspace = tenancy(s)
    for field, mine in (("org_id", org), ("workspace_id", workspace)):
        given = values.get(field)
        if given not in (None, "", mine):
            raise NotFound(f"{field} {given!r} not found", code=f"{field.split('_')[0]}_not_found",
                           details={"field": field})


def require_member(principal: Principal, what: str) -> None:
    """The workspace key and people manage principals and aliases; an agent key does not."""
    if not principal.is_member:
        raise Forbidden(f"{what} needs the workspace API key or a person's login, not an agent key",
                        code="policy_denied")


def may_manage(principal: Principal, address: str) -> bool:
    """Routes and bindings: the workspace key and people for any principal, an agent key for its own address."""
    return principal.is_member or principal.address == address


def workspace_address(s: Settings, raw: str, field: str) -> str:
    """An agent of this workspace: ``agent://<org>/<workspace>/<name>`` or the bare name (422 naming ``field``)."""
    org, workspace = tenancy(s)
    value = raw.strip()
    prefix = addresses.agent_address(org, workspace, "")
    name = value[len(prefix):] if value.startswith(prefix) else value
    if not addresses.is_valid_name(name) or addresses.is_core(name, org, workspace):
        raise Unprocessable(f"{field}: {raw!r} is not an agent of this workspace; use a bare agent name or "
                            f"{prefix}<name>", code="invalid_agent_address", details={"field": field})
    return prefix + name


def _address_or_none(s: Settings, raw: str) -> str | None:
    try:
        return workspace_address(s, raw, "principal_id")
    except Unprocessable:
        return None


# ---------------------------------------------------------------------------------------------
# views


def principal_view(row: Row) -> dict[str, Any]:
    """``api.principals.*``'s principal, plus ``address``: where it receives."""
    return {
        "principal_id": row["principal_id"],
        "org_id": row["org_id"],
        "workspace_id": row["workspace_id"],
        "principal_type": row["principal_type"],
        "display_name": row["display_name"],
        "status": row["status"],
        "metadata": loads(row["metadata"]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "address": row["address"],
    }


def agent_principal_view(s: Settings, sa: Row) -> dict[str, Any]:
    """An agent with a service account, as a principal: its address is its ``principal_id``."""
    org, workspace = tenancy(s)
    return {
        "principal_id": sa["address"],
        "org_id": org,
        "workspace_id": workspace,
        "principal_type": SERVICE_ACCOUNT,
        "display_name": sa.get("display_name") or sa["name"],
        "status": ACTIVE,
        "metadata": {"service_account_id": sa["service_account_id"]},
        "created_at": sa["created_at"],
        "updated_at": sa["updated_at"],
        "address": sa["address"],
    }


def gone_principal_view(s: Settings, row: Row) -> dict[str, Any]:
    """The principal of an alias, route or binding (``row``) that names an agent no longer registered: it still
    receives at its address (its feed), as an inactive principal."""
    org, workspace = tenancy(s)
    return {"principal_id": row["principal_id"], "org_id": org, "workspace_id": workspace,
            "principal_type": SERVICE_ACCOUNT, "display_name": None, "status": "inactive", "metadata": {},
            "created_at": row["created_at"], "updated_at": row["updated_at"], "address": row["address"]}


@dataclass(frozen=True)
class Target:
    """What a ``principal_id`` names: the principal's view and the address it receives at."""

    view: dict[str, Any]

    @property
    def principal_id(self) -> str:
        return str(self.view["principal_id"])

    @property
    def address(self) -> str:
        return str(self.view["address"])


def not_found(raw: str, field: str = "principal_id") -> NotFound:
    shown = raw if len(raw) <= 100 else raw[:100] + "..."
    return NotFound(f"{field}: no principal {shown!r} in this workspace (a principal's id, or the address or name "
                    "of an agent with a service account)", code="principal_not_found", details={"field": field})


def find(tx: Tx, s: Settings, raw: str, field: str = "principal_id") -> Target:
    """The principal ``raw`` names, inside a write (``find_read`` is the same for reads); 404 naming ``field``."""
    org, workspace = tenancy(s)
    row = tx.get_principal(org, workspace, raw.strip())
    if row is None:
        address = _address_or_none(s, raw)
        if address is None:
            raise not_found(raw, field)
        row = tx.principal_by_address(org, workspace, address)
        if row is None:
            sa = tx.active_service_account_by_address(address)
            if sa is None or not owns(s, sa):  # another workspace's agent: as none
                raise not_found(raw, field)
            return Target(agent_principal_view(s, sa))
    return Target(principal_view(row))


async def find_read(reads: Any, s: Settings, raw: str, field: str = "principal_id") -> Target:
    """``find`` on the store's reads (``store.base.Reads``)."""
    org, workspace = tenancy(s)
    row = await reads.get_principal(org, workspace, raw.strip())
    if row is None:
        address = _address_or_none(s, raw)
        if address is None:
            raise not_found(raw, field)
        row = await reads.principal_by_address(org, workspace, address)
        if row is None:
            sa = await reads.active_service_account_at(address)
            if sa is None or not owns(s, sa):
                raise not_found(raw, field)
            return Target(agent_principal_view(s, sa))
    return Target(principal_view(row))


# ---------------------------------------------------------------------------------------------
# operations


def op_create_principal(tx: Tx, s: Settings, principal: Principal, req: dict[str, Any], now: float) -> Row:
    """Register a principal (the workspace key or a person). ``address``: the agent of this workspace it receives
    as; else an address of its own. One principal per address (409 ``principal_exists``)."""
    require_member(principal, "registering a principal")
    check_tenancy(s, req)
    org, workspace = tenancy(s)
    principal_id = uuid7()
    if req.get("address"):
        address = workspace_address(s, req["address"], "address")
    else:
        address = addresses.agent_address(org, workspace, "principal-" + principal_id.replace("-", ""))
    existing = tx.principal_by_address(org, workspace, address)
    if existing is not None:
        raise Conflict(f"address: {address} is already principal {existing['principal_id']}",
                       code="principal_exists", details={"field": "address",
                                                         "principal_id": existing["principal_id"]})
    at = iso(now)
    row: Row = {
        "principal_id": principal_id, "org_id": org, "workspace_id": workspace,
        "principal_type": req["principal_type"], "display_name": req.get("display_name"), "status": ACTIVE,
        "metadata": dumps(req.get("metadata") or {}), "address": address, "created_by": principal.address,
        "created_at": at, "updated_at": at,
    }
    tx.insert_principal(row)
    audit.by(tx, "principal.created", now, principal, owner_agent=address, target=("principal", principal_id),
             principal_type=row["principal_type"])
    return row

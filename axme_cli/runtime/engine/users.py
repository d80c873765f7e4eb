"""Users: a nick and a profile bound to one address of this runtime (``owner_agent``), so that an intent or an
inbox message to ``@nick`` (or ``nick@ax``) reaches whoever serves that address.

Who a user is, by the credential that registers it (``register-nick``, or accepting an invite):
- an agent key: the agent itself. ``owner_agent`` is the agent's own address, so ``@nick`` reaches its feed, and
  the agent manages its user (``holder`` is its address). One user per agent.
- a person (email login): a user of its own, ``agent://user/<user_id>``, held by the person (``holder`` is
  ``actor://...``; the profile's email defaults to the login email). One user per person. The person, like any
  member of the workspace, reads that address's inbox and intents.
- the workspace key: a new user ``agent://user/<user_id>`` each time, held by nobody else (the gateway's
  onboarding of end users by an integrator's key). Its feed and inbox are served with the workspace key.

The workspace key manages every user; anyone else only the user it holds. Each ``op_*`` runs in one store
transaction and records its audit event there; phone and email never go into the audit log.
"""

from __future__ import annotations

from typing import Any

from axme_cli.protocol import nicks
from axme_cli.protocol.ids import uuid7
from axme_cli.runtime.clock import iso
from axme_cli.runtime.engine import audit
from axme_cli.runtime.errors import Conflict, Forbidden, NotFound
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.store.base import Row, Tx

USER_ADDRESS_PREFIX = "agent://user/"
PROFILE_FIELDS = ("display_name", "phone", "email")


def may_manage(principal: Principal, user: Row) -> bool:
    return principal.is_admin or (user["holder"] is not None and user["holder"] == principal.address)


def may_act_as(principal: Principal, address: str, held: Row | None) -> bool:
    """Whether ``principal`` may act as ``address`` (e.g. own an invite): the workspace key as anyone, others as
    themselves or as the user they hold (``held``: the caller's user, if any)."""
    return principal.is_admin or address == principal.address or (
        held is not None and held["owner_agent"] == address)


# ---------------------------------------------------------------------------------------------
# views: the spec's answers (api.users.*), nothing more (their schemas allow no other field)


def _names(row: Row) -> dict[str, Any]:
    return {"user_id": row["user_id"], "owner_agent": row["owner_agent"], "nick": nicks.shown(row["nick"])}


def _profile(row: Row, show_private: bool = True) -> dict[str, Any]:
    return {"display_name": row["display_name"], "phone": row["phone"] if show_private else None,
            "email": row["email"] if show_private else None}


def registered_view(row: Row) -> dict[str, Any]:
    return {"ok": True, **_names(row), "public_address": nicks.public_address(row["nick"]), **_profile(row),
            "created_at": row["created_at"]}


def renamed_view(row: Row) -> dict[str, Any]:
    return {"ok": True, **_names(row), "public_address": nicks.public_address(row["nick"]), **_profile(row),
            "renamed_at": row["renamed_at"] or row["updated_at"]}


def profile_view(row: Row) -> dict[str, Any]:
    return {"ok": True, **_names(row), "normalized_nick": row["nick"],
            "public_address": nicks.public_address(row["nick"]), **_profile(row), "updated_at": row["updated_at"]}


def resolved_view(row: Row, principal: Principal) -> dict[str, Any]:
    """A nick looked up: where it goes and its display name for anyone with a key; phone and email only for
    whoever manages the user."""
    return {"ok": True, "resolved": True, "nick": nicks.shown(row["nick"]), "normalized_nick": row["nick"],
            "public_address": nicks.public_address(row["nick"]), "owner_agent": row["owner_agent"],
            **_profile(row, show_private=may_manage(principal, row))}


def check_view(normalized: str, available: bool) -> dict[str, Any]:
    return {"ok": True, "nick": nicks.shown(normalized), "normalized_nick": normalized,
            "public_address": nicks.public_address(normalized), "available": available}


# ---------------------------------------------------------------------------------------------
# operations


def _claim(tx: Tx, normalized: str, user_id: str | None) -> None:
    """409 unless ``normalized`` is free (or already ``user_id``'s)."""
    if nicks.is_reserved(normalized):
        raise Conflict(f"nick: @{normalized} is reserved; choose another", code="nick_reserved",
                       details={"field": "nick"})
    taken = tx.user_by("nick", normalized)
    if taken is not None and taken["user_id"] != user_id:
        raise Conflict(f"nick: @{normalized} is taken; choose another (GET /v1/users/check-nick tells)",
                       code="nick_taken", details={"field": "nick"})


def new_user(tx: Tx, principal: Principal, normalized: str, profile: dict[str, Any], now: float) -> Row:
    """The user ``principal`` registers with the nick ``normalized`` (see the module's docstring for whom)."""
    user_id = uuid7()
    if principal.is_admin:
        owner, holder = USER_ADDRESS_PREFIX + user_id, None
    else:
        holder = principal.address
        owner = principal.address if principal.kind == "service_account" else USER_ADDRESS_PREFIX + user_id
        held = tx.user_by("holder", holder)
        if held is not None:
            whose = "" if held["owner_agent"] == holder else f" (user {held['owner_agent']})"
            raise Conflict(f"{holder} already has the nick @{held['nick']}{whose}; rename it with "
                           "POST /v1/users/rename-nick", code="user_exists",
                           details={"owner_agent": held["owner_agent"]})
    _claim(tx, normalized, None)
    at = iso(now)
    row: Row = {"user_id": user_id, "owner_agent": owner, "nick": normalized, "holder": holder,
                "display_name": profile.get("display_name"), "phone": profile.get("phone"),
                "email": profile.get("email") or (principal.email if principal.is_actor else None),
                "created_at": at, "updated_at": at, "renamed_at": None}
    tx.insert_user(row)
    return row


def op_register(tx: Tx, principal: Principal, req: dict[str, Any], now: float) -> dict[str, Any]:
    row = new_user(tx, principal, nicks.normalize(req["nick"]), req, now)
    audit.by(tx, "user.registered", now, principal, owner_agent=row["owner_agent"], target=("user", row["user_id"]),
             nick=nicks.shown(row["nick"]))
    return registered_view(row)


def managed(tx: Tx, principal: Principal, owner_agent: str) -> Row:
    return check_managed(principal, owner_agent, tx.user_by("owner_agent", owner_agent))


def check_managed(principal: Principal, owner_agent: str, row: Row | None) -> Row:
    """``row``, the user of ``owner_agent``, if ``principal`` manages it; 404 when there is none and the caller
    may know, else 403 (whether another's user exists is not told)."""
    if row is not None and may_manage(principal, row):
        return row
    if row is None and (principal.is_admin or owner_agent == principal.address):
        raise NotFound(f"owner_agent: {owner_agent} has no nick; register one with POST /v1/users/register-nick",
                       code="user_not_found", details={"field": "owner_agent"})
    raise Forbidden(f"owner_agent: this key manages only its own user, not {owner_agent}", code="policy_denied",
                    details={"field": "owner_agent"})


def _change(tx: Tx, principal: Principal, owner_agent: str, req: dict[str, Any], now: float) -> tuple[Row, bool]:
    """Apply the nick and profile fields ``req`` holds; returns the row and whether the nick changed."""
    row = managed(tx, principal, owner_agent)
    fields: Row = {k: req[k] for k in PROFILE_FIELDS if req.get(k) is not None}
    renamed = False
    if req.get("nick") is not None:
        normalized = nicks.normalize(req["nick"])
        if normalized != row["nick"]:
            _claim(tx, normalized, row["user_id"])
            fields["nick"], fields["renamed_at"] = normalized, iso(now)
            renamed = True
    fields["updated_at"] = iso(now)
    tx.update_user(row["user_id"], fields)
    return {**row, **fields}, renamed


def op_rename(tx: Tx, principal: Principal, owner_agent: str, req: dict[str, Any], now: float) -> dict[str, Any]:
    before = managed(tx, principal, owner_agent)["nick"]
    row, renamed = _change(tx, principal, owner_agent, req, now)
    if renamed:
        audit.by(tx, "user.renamed", now, principal, owner_agent=owner_agent, target=("user", row["user_id"]),
                 nick=nicks.shown(row["nick"]), previous_nick=nicks.shown(before))
    return renamed_view(row)


def op_update_profile(tx: Tx, principal: Principal, owner_agent: str, req: dict[str, Any],
                      now: float) -> dict[str, Any]:
    before = managed(tx, principal, owner_agent)["nick"]
    row, renamed = _change(tx, principal, owner_agent, req, now)
    changed = sorted(k for k in (*PROFILE_FIELDS, "nick") if req.get(k) is not None)
    audit.by(tx, "user.profile.updated", now, principal, owner_agent=owner_agent, target=("user", row["user_id"]),
             fields=changed, nick=nicks.shown(row["nick"]) if renamed else None,
             previous_nick=nicks.shown(before) if renamed else None)
    return profile_view(row)

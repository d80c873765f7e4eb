"""Organizations, their workspaces and members (AXME's ``organizations.*``, d6).

An organization's and a workspace's id are the segments of the agent addresses they hold
(``agent://<org_id>/<workspace_id>/<name>``). The runtime's default pair (``settings.org`` / ``settings.workspace``,
``local``/``dev`` for ``axme dev``) is inserted at start (``op_ensure_defaults``); organizations and workspaces made
through the API get UUIDv7 ids.

Who may do what (d6's permission matrix):

- the runtime's operator, the admin key of its default workspace: everything, and the only one who creates
  organizations;
- a person (a logged-in actor) through their memberships, matched on their actor id or email: ``org_owner`` and
  ``org_admin`` manage the organization, its workspaces and members; ``billing_viewer`` and ``security_auditor``
  read them; ``workspace_admin`` lists and manages its own workspace and that workspace's ``workspace_admin`` and
  ``member`` members; ``member`` nothing here;
- an agent key nothing (403, whichever organization it names).

A person with no membership of an organization gets 404 for it, as for one that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from axme_cli.protocol import organizations as wire
from axme_cli.protocol.ids import uuid7
from axme_cli.runtime import principals as pr
from axme_cli.runtime.clock import iso
from axme_cli.runtime.engine import audit
from axme_cli.runtime.engine.codec import dumps, loads
from axme_cli.runtime.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized, Unprocessable
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Row, Tx

ACTIVE = "active"
REMOVED = "removed"
MANAGERS = frozenset({"org_owner", "org_admin"})
READERS = MANAGERS | {"billing_viewer", "security_auditor"}
WORKSPACE_ROLES = wire.WORKSPACE_ROLES  # the roles a workspace_admin may hand out in its workspace


def default_pair(s: Settings) -> tuple[str, str]:
    """The organization and workspace ``axme dev`` serves, which cannot be suspended or archived."""
    return s.org, s.workspace


def is_operator(s: Settings, principal: Principal) -> bool:
    """The admin key of the runtime's default workspace."""
    return principal.is_admin and principal.address == s.admin_address


def actor_keys(principal: Principal) -> tuple[str, ...]:
    """What a person's memberships may name them by: their actor id, their email."""
    keys = [principal.key_id.lower()]
    if principal.email:
        keys.append(principal.email.lower())
    return tuple(keys)


def org_not_found(org_id: str) -> NotFound:
    return NotFound(f"organization {org_id!r} not found", code="org_not_found", details={"field": "org_id"})


def workspace_not_found(workspace_id: str) -> NotFound:
    return NotFound(f"workspace {workspace_id!r} not found in this organization", code="workspace_not_found",
                    details={"field": "workspace_id"})


def member_not_found(member_id: str) -> NotFound:
    return NotFound(f"member {member_id!r} not found in this organization", code="member_not_found",
                    details={"field": "member_id"})


def refused(what: str) -> Forbidden:
    return Forbidden(f"your role in this organization does not allow {what}", code="role_denied")


def require_person_or_admin(principal: Principal) -> None:
    if principal.kind == "service_account":
        raise Forbidden("organizations are managed with the admin API key or a person's login, not an agent key",
                        code="policy_denied")


@dataclass(frozen=True)
class Access:
    """What the caller may do in one organization."""

    operator: bool = False
    org_roles: frozenset[str] = frozenset()
    workspace_roles: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def manages_org(self) -> bool:
        return self.operator or bool(self.org_roles & MANAGERS)

    @property
    def reads_org(self) -> bool:
        return self.operator or bool(self.org_roles & READERS)

    def admin_of(self, workspace_id: str | None) -> bool:
        return workspace_id is not None and "workspace_admin" in self.workspace_roles.get(workspace_id, ())

    def administered(self) -> set[str]:
        return {ws for ws, roles in self.workspace_roles.items() if "workspace_admin" in roles}

    def may_manage_workspace(self, workspace_id: str) -> bool:
        return self.manages_org or self.admin_of(workspace_id)

    def may_manage_member(self, workspace_id: str | None, role: str) -> bool:
        return self.manages_org or (self.admin_of(workspace_id) and role in WORKSPACE_ROLES)


def access_of(s: Settings, principal: Principal, memberships: list[Row], org_id: str) -> Access:
    """The caller's ``Access`` to ``org_id`` (which exists) from their active ``memberships`` of it; 404 for a
    person who has none."""
    require_person_or_admin(principal)
    if is_operator(s, principal):
        return Access(operator=True)
    if principal.is_admin and principal.workspace_id is not None and principal.org_id == org_id:
        return Access(workspace_roles={principal.workspace_id: frozenset({"workspace_admin"})})
    if not principal.is_actor or not memberships:
        raise org_not_found(org_id)
    org_roles = frozenset(m["role"] for m in memberships if m["workspace_id"] is None)
    workspace_roles: dict[str, set[str]] = {}
    for m in memberships:
        if m["workspace_id"] is not None:
            workspace_roles.setdefault(m["workspace_id"], set()).add(m["role"])
    return Access(org_roles=org_roles, workspace_roles={k: frozenset(v) for k, v in workspace_roles.items()})


def _tx_access(tx: Tx, s: Settings, principal: Principal, org_id: str) -> tuple[Row, Access]:
    require_person_or_admin(principal)
    org = tx.get_organization(org_id)
    if org is None:
        raise org_not_found(org_id)
    memberships = tx.actor_memberships(actor_keys(principal), org_id) if principal.is_actor else []
    return org, access_of(s, principal, memberships, org_id)


async def read_access(reads: Any, s: Settings, principal: Principal, org_id: str) -> tuple[Row, Access]:
    """The organization and the caller's ``Access`` to it, on the store's reads (404 / 403 as ``access_of``)."""
    require_person_or_admin(principal)
    org = await reads.get_organization(org_id)
    if org is None:
        raise org_not_found(org_id)
    memberships = await reads.actor_memberships(actor_keys(principal), org_id) if principal.is_actor else []
    return org, access_of(s, principal, memberships, org_id)


# ---------------------------------------------------------------------------------------------
# views


def org_view(row: Row) -> dict[str, Any]:
    return {"org_id": row["org_id"], "name": row["name"], "legal_name": row["legal_name"],
            "primary_domain": row["primary_domain"], "status": row["status"], "metadata": loads(row["metadata"]),
            "created_at": row["created_at"], "updated_at": row["updated_at"]}


def workspace_view(row: Row) -> dict[str, Any]:
    return {"workspace_id": row["workspace_id"], "org_id": row["org_id"], "name": row["name"],
            "environment": row["environment"], "status": row["status"], "region": row["region"],
            "created_at": row["created_at"], "updated_at": row["updated_at"]}


def member_view(row: Row) -> dict[str, Any]:
    return {"member_id": row["member_id"], "org_id": row["org_id"], "workspace_id": row["workspace_id"],
            "actor_id": row["actor_id"], "role": row["role"], "status": row["status"],
            "created_at": row["created_at"], "updated_at": row["updated_at"]}


# ---------------------------------------------------------------------------------------------
# operations


def op_ensure_defaults(tx: Tx, s: Settings, now: float) -> None:
    """The default organization and workspace exist (at start, beside the admin key)."""
    org_id, workspace_id = default_pair(s)
    tx.exclusive("organizations")
    at = iso(now)
    if tx.get_organization(org_id) is None:
        tx.insert_organization({"org_id": org_id, "name": org_id, "legal_name": None, "primary_domain": None,
                                "status": ACTIVE, "metadata": dumps({}), "created_by": s.admin_address,
                                "created_at": at, "updated_at": at})
    if tx.get_workspace(org_id, workspace_id) is None:
        tx.insert_workspace({"workspace_id": workspace_id, "org_id": org_id, "name": workspace_id,
                             "environment": "sandbox", "region": None, "status": ACTIVE,
                             "created_by": s.admin_address, "created_at": at, "updated_at": at})


def _member_row(org_id: str, workspace_id: str | None, actor_id: str, role: str, by: str, at: str) -> Row:
    return {"member_id": uuid7(), "org_id": org_id, "workspace_id": workspace_id, "actor_id": actor_id,
            "actor_key": actor_id.lower(), "role": role, "status": ACTIVE, "created_by": by, "created_at": at,
            "updated_at": at, "removed_at": None}


def op_create_organization(tx: Tx, s: Settings, principal: Principal, req: dict[str, Any], now: float) -> Row:
    """A new organization (the operator only); ``requested_by_actor_id`` becomes its ``org_owner``."""
    require_person_or_admin(principal)
    if not is_operator(s, principal):
        raise Forbidden("only the runtime's admin API key creates organizations; ask for one with an access "
                        "request (request_type create_organization)", code="role_denied")
    at = iso(now)
    row: Row = {"org_id": uuid7(), "name": req["name"], "legal_name": req.get("legal_name"),
                "primary_domain": req.get("primary_domain"), "status": ACTIVE,
                "metadata": dumps(req.get("metadata") or {}), "created_by": principal.address,
                "created_at": at, "updated_at": at}
    tx.insert_organization(row)
    tx.insert_member(_member_row(row["org_id"], None, req["requested_by_actor_id"], "org_owner",
                                 principal.address, at))
    audit.by(tx, "organization.created", now, principal, target=("organization", row["org_id"]), name=row["name"])
    return row


def _keep_default(s: Settings, org_id: str, workspace_id: str | None, status: str | None) -> None:
    default_org, default_workspace = default_pair(s)
    if status not in (None, ACTIVE) and org_id == default_org and workspace_id in (None, default_workspace):
        raise Conflict("status: the runtime's default organization and workspace stay active",
                       code="default_workspace", details={"field": "status"})


def op_update_organization(tx: Tx, s: Settings, principal: Principal, org_id: str, req: dict[str, Any],
                           now: float) -> Row:
    org, access = _tx_access(tx, s, principal, org_id)
    if not access.manages_org:
        raise refused("changing the organization")
    _keep_default(s, org_id, None, req.get("status"))
    fields = {k: v for k, v in req.items() if k in ("name", "legal_name", "primary_domain", "status")}
    if "metadata" in req:
        fields["metadata"] = dumps(req["metadata"])
    if fields:
        fields["updated_at"] = iso(now)
        tx.update_organization(org_id, fields)
        org.update(fields)
        audit.by(tx, "organization.updated", now, principal, target=("organization", org_id),
                 fields=sorted(k for k in fields if k != "updated_at"))
    return org


def op_create_workspace(tx: Tx, s: Settings, principal: Principal, org_id: str, req: dict[str, Any],
                        now: float) -> Row:
    if req.get("org_id") not in (None, org_id):
        raise BadRequest(f"org_id: the body names {req['org_id']!r}, the path {org_id!r}", code="scope_mismatch",
                         details={"field": "org_id"})
    org, access = _tx_access(tx, s, principal, org_id)
    if not access.manages_org:
        raise refused("creating workspaces")
    if org["status"] != ACTIVE:
        raise Conflict(f"the organization is {org['status']}; workspaces are created in an active one",
                       code="org_not_active", details={"field": "org_id"})
    tx.exclusive(f"workspaces:{org_id}")
    _unique_name(tx, org_id, req["name"], None)
    at = iso(now)
    row: Row = {"workspace_id": uuid7(), "org_id": org_id, "name": req["name"], "environment": req["environment"],
                "region": req.get("region"), "status": ACTIVE, "created_by": principal.address,
                "created_at": at, "updated_at": at}
    tx.insert_workspace(row)
    audit.by(tx, "workspace.created", now, principal, target=("workspace", row["workspace_id"]), org_id=org_id,
             name=row["name"])
    return row


def op_workspace_key(tx: Tx, s: Settings, principal: Principal, org_id: str, workspace_id: str,
                     now: float) -> dict[str, Any]:
    """A new admin key of the workspace (who may change the workspace may make one): its token is in the answer
    only, its sha256 in the store. A key of the default workspace is the same as the runtime's admin key."""
    _, access = _tx_access(tx, s, principal, org_id)
    workspace = tx.get_workspace(org_id, workspace_id)
    if workspace is None or not (access.reads_org or access.may_manage_workspace(workspace_id)):
        raise workspace_not_found(workspace_id)
    if not access.may_manage_workspace(workspace_id):
        raise refused("making keys of this workspace")
    key_id, token = pr.new_workspace_token()
    default = (org_id, workspace_id) == default_pair(s)
    at = iso(now)
    tx.insert_key({"key_id": key_id, "kind": "workspace", "service_account_id": None, "lookup": pr.lookup_of(token),
                   "hash": pr.hash_token(token), "key_hint": pr.hint(token), "status": ACTIVE, "created_at": at,
                   "expires_at": None, "revoked_at": None, "org_id": None if default else org_id,
                   "workspace_id": None if default else workspace_id})
    audit.by(tx, "workspace.key_created", now, principal, target=("api_key", key_id), org_id=org_id,
             workspace_id=workspace_id)
    return {"key_id": key_id, "token": token, "key_hint": pr.hint(token), "org_id": org_id,
            "workspace_id": workspace_id, "created_at": at}


def _unique_name(tx: Tx, org_id: str, name: str, workspace_id: str | None) -> None:
    same = tx.workspace_named(org_id, name)
    if same is not None and same["workspace_id"] != workspace_id:
        raise Conflict(f"name: the organization already has a workspace {name!r}", code="workspace_exists",
                       details={"field": "name", "workspace_id": same["workspace_id"]})


def op_update_workspace(tx: Tx, s: Settings, principal: Principal, org_id: str, workspace_id: str,
                        req: dict[str, Any], now: float) -> Row:
    _, access = _tx_access(tx, s, principal, org_id)
    workspace = tx.get_workspace(org_id, workspace_id)
    if workspace is None or not (access.reads_org or access.may_manage_workspace(workspace_id)):
        raise workspace_not_found(workspace_id)
    if not access.may_manage_workspace(workspace_id):
        raise refused("changing this workspace")
    _keep_default(s, org_id, workspace_id, req.get("status"))
    fields = {k: v for k, v in req.items() if k in ("name", "environment", "region", "status")}
    if "name" in fields:
        tx.exclusive(f"workspaces:{org_id}")
        _unique_name(tx, org_id, fields["name"], workspace_id)
    if fields:
        fields["updated_at"] = iso(now)
        tx.update_workspace(workspace_id, fields)
        workspace.update(fields)
        audit.by(tx, "workspace.updated", now, principal, target=("workspace", workspace_id), org_id=org_id,
                 fields=sorted(k for k in fields if k != "updated_at"))
    return workspace


def _check_role_scope(role: str, workspace_id: str | None) -> None:
    if workspace_id is not None and role in wire.ORG_ROLES:
        raise Unprocessable(f"role: {role} is a role of the whole organization; leave workspace_id out",
                            code="invalid_role_scope", details={"field": "role"})
    if workspace_id is None and role == "workspace_admin":
        raise Unprocessable("workspace_id: a workspace_admin needs the workspace it administers",
                            code="invalid_role_scope", details={"field": "workspace_id"})


def op_add_member(tx: Tx, s: Settings, principal: Principal, org_id: str, req: dict[str, Any], now: float) -> Row:
    _, access = _tx_access(tx, s, principal, org_id)
    workspace_id = req.get("workspace_id")
    role = req["role"]
    if workspace_id is not None and (tx.get_workspace(org_id, workspace_id) is None or not (
            access.reads_org or access.admin_of(workspace_id))):
        raise workspace_not_found(workspace_id)
    _check_role_scope(role, workspace_id)
    if not access.may_manage_member(workspace_id, role):
        raise refused(f"adding a {role}" + (" here" if workspace_id else " to the organization"))
    tx.exclusive(f"org-members:{org_id}")
    key = req["actor_id"].lower()
    for m in tx.live_members(org_id):
        if m["actor_key"] == key and m["workspace_id"] == workspace_id:
            raise Conflict(f"actor_id: {req['actor_id']!r} is already member {m['member_id']} here",
                           code="member_exists", details={"field": "actor_id", "member_id": m["member_id"]})
    row = _member_row(org_id, workspace_id, req["actor_id"], role, principal.address, iso(now))
    tx.insert_member(row)
    audit.by(tx, "member.added", now, principal, target=("member", row["member_id"]), org_id=org_id,
             workspace_id=workspace_id, role=role)
    return row


def op_join(tx: Tx, s: Settings, principal: Principal, email: str, now: float) -> Row | None:
    """What an approved join_organization grants besides the login (engine/access_requests.py): a ``member``
    membership of the workspace of ``s`` that approved it, so the person may select it. None in the runtime's default
    workspace, of which every person is a member already, and when the person already has a live membership there
    or of the whole organization."""
    if not s.scoped:
        return None
    tx.exclusive(f"org-members:{s.org}")
    key = email.lower()
    if any(m["actor_key"] == key and m["workspace_id"] in (None, s.workspace) for m in tx.live_members(s.org)):
        return None
    row = _member_row(s.org, s.workspace, email, "member", principal.address, iso(now))
    tx.insert_member(row)
    audit.by(tx, "member.added", now, principal, target=("member", row["member_id"]), org_id=s.org,
             workspace_id=s.workspace, role="member")
    return row


def _visible_member(tx: Tx, access: Access, org_id: str, member_id: str) -> Row:
    member = tx.get_member(org_id, member_id)
    if member is None or not (access.reads_org or access.admin_of(member["workspace_id"])):
        raise member_not_found(member_id)
    return member


def _keep_an_owner(tx: Tx, org_id: str, member: Row, role: str, status: str) -> None:
    """The last active org_owner stays one (409 ``last_owner``)."""
    if member["role"] != "org_owner" or member["status"] != ACTIVE or (role == "org_owner" and status == ACTIVE):
        return
    others = [m for m in tx.live_members(org_id) if m["role"] == "org_owner" and m["status"] == ACTIVE
              and m["member_id"] != member["member_id"]]
    if not others:
        raise Conflict("the organization's last active org_owner stays one; make another member org_owner first",
                       code="last_owner", details={"field": "member_id"})


def op_update_member(tx: Tx, s: Settings, principal: Principal, org_id: str, member_id: str, req: dict[str, Any],
                     now: float) -> Row:
    _, access = _tx_access(tx, s, principal, org_id)
    tx.exclusive(f"org-members:{org_id}")
    member = _visible_member(tx, access, org_id, member_id)
    if req.get("status") == REMOVED:
        return op_remove_member(tx, s, principal, org_id, member_id, now)
    if member["status"] == REMOVED:
        raise Conflict(f"member {member_id} was removed; add the person again", code="member_removed",
                       details={"field": "member_id"})
    role = str(req.get("role") or member["role"])
    status = str(req.get("status") or member["status"])
    _check_role_scope(role, member["workspace_id"])
    if not (access.may_manage_member(member["workspace_id"], member["role"])
            and access.may_manage_member(member["workspace_id"], role)):
        raise refused("changing this member")
    _keep_an_owner(tx, org_id, member, role, status)
    fields = {"role": role, "status": status, "updated_at": iso(now)}
    tx.update_member(member_id, fields)
    member.update(fields)
    audit.by(tx, "member.updated", now, principal, target=("member", member_id), org_id=org_id, role=role,
             status=status)
    return member


def op_remove_member(tx: Tx, s: Settings, principal: Principal, org_id: str, member_id: str, now: float) -> Row:
    """``status: removed`` (again: the same answer)."""
    _, access = _tx_access(tx, s, principal, org_id)
    tx.exclusive(f"org-members:{org_id}")
    member = _visible_member(tx, access, org_id, member_id)
    if member["status"] == REMOVED:
        return member
    if not access.may_manage_member(member["workspace_id"], member["role"]):
        raise refused("removing this member")
    _keep_an_owner(tx, org_id, member, member["role"], REMOVED)
    at = iso(now)
    fields = {"status": REMOVED, "updated_at": at, "removed_at": at}
    tx.update_member(member_id, fields)
    member.update(fields)
    audit.by(tx, "member.removed", now, principal, target=("member", member_id), org_id=org_id)
    return member


def removal_view(row: Row) -> dict[str, Any]:
    return {"ok": True, "removed": True, "org_id": row["org_id"], "member_id": row["member_id"],
            "removed_at": row["removed_at"]}


def include_view(row: Row) -> dict[str, Any]:
    return {"ok": True, "member": member_view(row)}


def exclude_view(row: Row) -> dict[str, Any]:
    return {"ok": True, "result": {"member_id": row["member_id"], "org_id": row["org_id"],
                                   "workspace_id": row["workspace_id"], "status": row["status"],
                                   "excluded": True, "removed_at": row["removed_at"]}}


def _workspace_of_path(tx: Tx, s: Settings, principal: Principal, workspace_id: str,
                       org_id: str | None) -> tuple[Row, Access]:
    """The workspace a ``/v1/workspaces/{workspace_id}/...`` route names and the caller's ``Access`` to its
    organization: 404 ``workspace_not_found`` alike for a missing one, one of another organization than the body's
    ``org_id``, and one whose organization the caller cannot see."""
    require_person_or_admin(principal)
    workspace = tx.find_workspace(workspace_id)
    if workspace is None or org_id not in (None, workspace["org_id"]):
        raise workspace_not_found(workspace_id)
    try:
        _, access = _tx_access(tx, s, principal, workspace["org_id"])
    except NotFound:
        raise workspace_not_found(workspace_id) from None
    if not (access.reads_org or access.admin_of(workspace_id)):
        raise workspace_not_found(workspace_id)
    return workspace, access


def op_include_member(tx: Tx, s: Settings, principal: Principal, workspace_id: str, req: dict[str, Any],
                      now: float) -> Row:
    """AXME's ``POST /v1/workspaces/{workspace_id}/members/include``: a member of this workspace (the body's
    ``workspace_id``, if given, is the path's; ``org_id`` the workspace's)."""
    if req.get("workspace_id") not in (None, workspace_id):
        raise BadRequest(f"workspace_id: the body names {req['workspace_id']!r}, the path {workspace_id!r}",
                         code="scope_mismatch", details={"field": "workspace_id"})
    workspace, _ = _workspace_of_path(tx, s, principal, workspace_id, req.get("org_id"))
    return op_add_member(tx, s, principal, workspace["org_id"], {
        "actor_id": req["actor_id"], "role": req.get("role") or "member", "workspace_id": workspace_id}, now)


def op_exclude_member(tx: Tx, s: Settings, principal: Principal, workspace_id: str, member_id: str,
                      now: float) -> Row:
    """AXME's ``DELETE /v1/workspaces/{workspace_id}/members/{member_id}/exclude``: a member of this workspace
    removed (again: the same answer); a member of the organization or of another workspace is 404 here."""
    workspace, _ = _workspace_of_path(tx, s, principal, workspace_id, None)
    member = tx.get_member(workspace["org_id"], member_id)
    if member is None or member["workspace_id"] != workspace_id:
        raise member_not_found(member_id)
    return op_remove_member(tx, s, principal, workspace["org_id"], member_id, now)


# ---------------------------------------------------------------------------------------------
# the workspace a person acts in


def may_act_in(memberships: list[Row], workspace_id: str) -> bool:
    """Whether a person's active memberships of an organization let them act in one of its workspaces: a
    membership of the whole organization (any role: they see all its workspaces, as the personal context lists
    them) or of that workspace."""
    return any(m["workspace_id"] in (None, workspace_id) for m in memberships)


def _selectable(tx: Tx, s: Settings, principal: Principal, org_id: str, workspace_id: str) -> bool:
    """Whether ``org_id`` / ``workspace_id`` is the runtime's default pair (True) or a workspace the person may
    act in (False); 404 for one they have no membership of, as for one that does not exist, 409 for one that is
    not active."""
    if not principal.is_actor or principal.session_id is None:
        raise Unauthorized("the workspace selection is a person's: log in with `axme login` (an API key acts in its "
                           "own workspace)", code="missing_actor_token")
    if (org_id, workspace_id) == default_pair(s):
        return True
    org = tx.get_organization(org_id)
    memberships = tx.actor_memberships(actor_keys(principal), org_id) if org is not None else []
    if not memberships:
        raise org_not_found(org_id)
    workspace = tx.get_workspace(org_id, workspace_id)
    if workspace is None or not may_act_in(memberships, workspace_id):
        raise workspace_not_found(workspace_id)
    assert org is not None
    for what, row in (("organization", org), ("workspace", workspace)):
        if row["status"] != ACTIVE:
            raise Conflict(f"the {what} is {row['status']}; select an active workspace", code="workspace_not_active",
                           details={"field": "workspace_id" if what == "workspace" else "org_id"})
    return False


def op_select_workspace(tx: Tx, s: Settings, principal: Principal, req: dict[str, Any], now: float) -> None:
    """AXME's ``POST /v1/portal/personal/workspace-selection``: the person's login session acts in this workspace
    from now on (its every access token; ``runtime/auth.py``); the default pair goes back to the default one."""
    org_id, workspace_id = req["org_id"], req["workspace_id"]
    default = _selectable(tx, s, principal, org_id, workspace_id)
    assert principal.session_id is not None
    tx.update_session(principal.session_id, {"org_id": None if default else org_id,
                                             "workspace_id": None if default else workspace_id})
    audit.by(tx, "workspace.selected", now, principal, target=("workspace", workspace_id), org_id=org_id)


def op_select_ui_workspace(tx: Tx, s: Settings, principal: Principal, ui_session_id: str, org_id: str,
                           workspace_id: str) -> None:
    """The dashboard's switcher: the same rule as ``op_select_workspace``, kept on the dashboard session."""
    default = _selectable(tx, s, principal, org_id, workspace_id)
    tx.select_ui_workspace(ui_session_id, None if default else org_id, None if default else workspace_id)



async def personal_context(reads: Any, s: Settings, principal: Principal) -> dict[str, Any]:
    """AXME's personal context: the organizations and workspaces the caller may see with its roles there (the
    runtime's admin key: every one, as ``operator``; a person: those of their memberships, and the runtime's default
    workspace, where every person is a ``member``), and the pair its credential acts in (``context``)."""
    require_person_or_admin(principal)
    roles_by_org: dict[str, dict[str | None, set[str]]] = {}
    if principal.is_admin and principal.workspace_id is not None:
        roles_by_org[str(principal.org_id)] = {principal.workspace_id: {"workspace_admin"}}
    elif is_operator(s, principal):
        roles_by_org = {o["org_id"]: {None: {"operator"}} for o in await reads.list_organizations()}
    else:
        default_org, default_workspace = default_pair(s)
        roles_by_org[default_org] = {default_workspace: {"member"}}
        for m in await reads.actor_organizations(actor_keys(principal)):
            roles_by_org.setdefault(m["org_id"], {}).setdefault(m["workspace_id"], set()).add(m["role"])
    organizations, workspaces = [], []
    for org_id, scoped in roles_by_org.items():
        org = await reads.get_organization(org_id)
        if org is None:
            continue
        org_roles = sorted(scoped.get(None) or ())
        shown = []
        for ws in await reads.list_workspaces(org_id):
            roles = sorted(set(org_roles) | scoped.get(ws["workspace_id"], set()))
            if org_roles or ws["workspace_id"] in scoped:
                shown.append(ws["workspace_id"])
                workspaces.append({**workspace_view(ws), "org_name": org["name"], "roles": roles})
        organizations.append({"org_id": org_id, "name": org["name"], "status": org["status"],
                              "roles": sorted({r for rs in scoped.values() for r in rs}), "workspaces": shown})
    org_id, workspace_id = default_pair(s)
    if principal.workspace_id is not None:
        org_id, workspace_id = str(principal.org_id), principal.workspace_id
    selected_ws = next((w for w in workspaces if (w["org_id"], w["workspace_id"]) == (org_id, workspace_id)), None)
    selected_org = next((o for o in organizations if o["org_id"] == org_id), None)
    return {"context": {"org_id": org_id, "workspace_id": workspace_id}, "account": {"email": principal.email},
            "organizations": organizations, "workspaces": workspaces, "selected_organization": selected_org,
            "selected_workspace": selected_ws, "guidance": {"workspace_count": len(workspaces)}}

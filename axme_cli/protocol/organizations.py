"""Organizations, workspaces and members on the wire (axp-spec ``api.organizations.*``, the gateway's request
models ``OrganizationCreateRequest`` ... ``MemberUpdateRequest``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints

ORG_STATUSES = ("pending", "active", "suspended", "archived")
WORKSPACE_STATUSES = ("active", "suspended", "archived")
ENVIRONMENTS = ("sandbox", "staging", "production")
ROLES = ("org_owner", "org_admin", "workspace_admin", "member", "billing_viewer", "security_auditor")
ORG_ROLES = ("org_owner", "org_admin", "billing_viewer", "security_auditor")  # of the whole organization
WORKSPACE_ROLES = ("workspace_admin", "member")  # of one workspace
MEMBER_STATUSES = ("active", "invited", "suspended", "removed")


def _text(low: int, high: int) -> Any:
    return Annotated[str, StringConstraints(min_length=low, max_length=high, strip_whitespace=True)]


class OrganizationCreateRequest(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    name: _text(2, 120)  # type: ignore[valid-type]
    requested_by_actor_id: _text(1, 255)  # type: ignore[valid-type]
    legal_name: _text(2, 255) | None = None  # type: ignore[valid-type]
    primary_domain: _text(3, 255) | None = None  # type: ignore[valid-type]
    metadata: dict[str, Any] | None = None


class OrganizationUpdateRequest(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    name: _text(2, 120) | None = None  # type: ignore[valid-type]
    legal_name: _text(2, 255) | None = None  # type: ignore[valid-type]
    primary_domain: _text(3, 255) | None = None  # type: ignore[valid-type]
    status: Literal[ORG_STATUSES] | None = None  # type: ignore[valid-type]
    metadata: dict[str, Any] | None = None


class WorkspaceCreateRequest(BaseModel):
    """``org_id`` must be the path's (the gateway requires it in the body too; this runtime lets it be left out)."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    org_id: _text(1, 255) | None = None  # type: ignore[valid-type]
    name: _text(2, 120)  # type: ignore[valid-type]
    environment: Literal[ENVIRONMENTS]  # type: ignore[valid-type]
    region: _text(2, 64) | None = None  # type: ignore[valid-type]


class WorkspaceUpdateRequest(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    name: _text(2, 120) | None = None  # type: ignore[valid-type]
    environment: Literal[ENVIRONMENTS] | None = None  # type: ignore[valid-type]
    region: _text(2, 64) | None = None  # type: ignore[valid-type]
    status: Literal[WORKSPACE_STATUSES] | None = None  # type: ignore[valid-type]


class MemberAddRequest(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    actor_id: _text(1, 255)  # type: ignore[valid-type]
    role: Literal[ROLES]  # type: ignore[valid-type]
    workspace_id: _text(1, 255) | None = None  # type: ignore[valid-type]


class MemberUpdateRequest(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    role: Literal[ROLES] | None = None  # type: ignore[valid-type]
    status: Literal[MEMBER_STATUSES] | None = None  # type: ignore[valid-type]


class MemberIncludeRequest(BaseModel):
    """AXME's ``POST /v1/workspaces/{workspace_id}/members/include``: ``org_id`` and ``workspace_id`` may be left
    out (the path's workspace decides them); given, they must be its."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    actor_id: _text(1, 255)  # type: ignore[valid-type]
    role: Literal[WORKSPACE_ROLES] = "member"  # type: ignore[valid-type]
    org_id: _text(1, 255) | None = None  # type: ignore[valid-type]
    workspace_id: _text(1, 255) | None = None  # type: ignore[valid-type]


class WorkspaceSelectionRequest(BaseModel):
    """AXME's ``POST /v1/portal/personal/workspace-selection``."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    org_id: _text(1, 255)  # type: ignore[valid-type]
    workspace_id: _text(1, 255)  # type: ignore[valid-type]

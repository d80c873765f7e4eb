"""Access requests on the wire (axp-spec ``api.access_requests.*``, the gateway's request models, and AXME CLI's
``quota upgrade-request``), and what each request type grants once approved on this runtime.

This runtime serves one organisation and one workspace, and knows no roles beyond the workspace key, people and
agents. So it honours the requests it can grant here and refuses the others at create (422 naming
``request_type`` and the types it takes):

- ``join_organization``: ``requester_actor_id`` is an email; approved, that person may log in by email (beside
  ``--allow-email``) and is a member of the workspace like anyone who logs in.
- ``quota_upgrade`` (AXME CLI): ``requested_tier``; approved, the workspace's quota tier is recorded.
- ``send_permission``: ``requester_actor_id`` is an agent (an agent key: itself) asking to send to ``recipient``;
  approved, a grant of that sender -> recipient pair is recorded, which the send policy honours.
- ``create_organization`` and ``elevated_role`` cannot be granted here (one organisation; no roles to elevate to).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints

from axme_cli.protocol.models import DateTime

GATEWAY_REQUEST_TYPES = ("create_organization", "join_organization", "elevated_role")
REQUEST_TYPES = ("join_organization", "quota_upgrade", "send_permission")  # what this runtime grants
ALL_REQUEST_TYPES = (*GATEWAY_REQUEST_TYPES, "quota_upgrade", "send_permission")
ROLES = ("org_owner", "org_admin", "workspace_admin", "member", "billing_viewer", "security_auditor")
TIERS = ("starter", "business", "email_verified", "corporate")  # AXME CLI's --tier
STATES = ("pending", "under_review", "approved", "rejected", "waitlisted", "expired")
DECISIONS = ("approve", "reject", "waitlist")
# What a review's decision makes of a request; reviewing an approved, rejected or expired one is a conflict.
DECIDED = {"approve": "approved", "reject": "rejected", "waitlist": "waitlisted"}
OPEN_STATES = ("pending", "under_review", "waitlisted")


def _text(low: int, high: int) -> Any:
    return Annotated[str, StringConstraints(min_length=low, max_length=high)]


class AccessRequestCreateRequest(BaseModel):
    """``api.access_requests.create.request.v1`` plus AXME CLI's ``requested_tier`` and this runtime's
    ``recipient`` (a ``send_permission``'s agent) and ``expires_at`` (the gateway's: a request not reviewed by
    then is ``expired``)."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    request_type: Literal[ALL_REQUEST_TYPES]  # type: ignore[valid-type]
    requester_actor_id: _text(1, 255)  # type: ignore[valid-type]
    org_id: _text(1, 255) | None = None  # type: ignore[valid-type]
    workspace_id: _text(1, 255) | None = None  # type: ignore[valid-type]
    requested_role: Literal[ROLES] | None = None  # type: ignore[valid-type]
    requested_tier: Literal[TIERS] | None = None  # type: ignore[valid-type]
    recipient: _text(2, 255) | None = None  # type: ignore[valid-type]
    company_name: _text(2, 255) | None = None  # type: ignore[valid-type]
    justification: _text(0, 4000) | None = None  # type: ignore[valid-type]
    expires_at: DateTime | None = None


class AccessRequestReviewRequest(BaseModel):
    """``api.access_requests.review.request.v1``."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    decision: Literal[DECISIONS]  # type: ignore[valid-type]
    reviewer_actor_id: _text(1, 255)  # type: ignore[valid-type]
    review_comment: _text(0, 4000) | None = None  # type: ignore[valid-type]


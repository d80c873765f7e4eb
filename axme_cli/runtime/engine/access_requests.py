"""Access requests (AXME's ``access_requests.*``) and the grants approved ones make.

Anyone with a key may ask (an agent key only for itself); the workspace key or a person reviews: ``approve``,
``reject`` or ``waitlist`` (a waitlisted request may be reviewed again; an approved, rejected or expired one may
not: 409). Approving writes the grant in the same transaction, as a row of ``access_grants`` that the part which
honours it reads (protocol/access_requests.py lists the types):

- ``member`` (``join_organization``): the email may log in by email as if ``--allow-email`` named it
  (``may_log_in``, read by the login route, whichever workspace approved it); approved in another workspace than
  the runtime's default one, the person also becomes a ``member`` of that workspace (``orgs.op_join``), so they may
  select it;
- ``quota_tier`` (``quota_upgrade``): the workspace's tier (``quota_tier``; the latest approved one);
- ``send`` (``send_permission``): that sender may send to that recipient (``send_granted``), an exception the
  send policy honours.

A request not reviewed by its ``expires_at`` shows ``expired``.
"""

from __future__ import annotations

from typing import Any

from axme_cli.protocol import access_requests as wire
from axme_cli.protocol.ids import uuid7
from axme_cli.runtime.clock import iso, parse_iso
from axme_cli.runtime.engine import audit, orgs
from axme_cli.runtime.engine.auth import normalize_email
from axme_cli.runtime.engine.principals_admin import check_tenancy, tenancy, workspace_address
from axme_cli.runtime.errors import Conflict, Forbidden, NotFound, Unprocessable
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Reads, Row, Tx

MEMBER, QUOTA_TIER, SEND = "member", "quota_tier", "send"


def state_of(row: Row, now: float) -> str:
    """The state shown: an open request past its ``expires_at`` is expired."""
    if row["state"] in wire.OPEN_STATES and row["expires_at"] and parse_iso(row["expires_at"]) <= now:
        return "expired"
    return str(row["state"])


def request_view(row: Row, now: float) -> dict[str, Any]:
    """``api.access_requests.*``'s access request, plus ``requested_tier``, ``recipient`` and ``expires_at``."""
    return {
        "access_request_id": row["access_request_id"],
        "request_type": row["request_type"],
        "state": state_of(row, now),
        "requester_actor_id": row["requester_actor_id"],
        "org_id": row["org_id"],
        "workspace_id": row["workspace_id"],
        "requested_role": row["requested_role"],
        "requested_tier": row["requested_tier"],
        "recipient": row["recipient"],
        "company_name": row["company_name"],
        "justification": row["justification"],
        "expires_at": row["expires_at"],
        "reviewer_actor_id": row["reviewer_actor_id"],
        "review_comment": row["review_comment"],
        "reviewed_at": row["reviewed_at"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def may_see(principal: Principal, row: Row) -> bool:
    """People and the workspace key see every request; an agent key those it filed."""
    return principal.is_member or row["created_by"] == principal.address


def _refuse_type(request_type: str) -> Unprocessable:
    why = {"create_organization": "this runtime serves one organisation (--org)",
           "elevated_role": "this runtime has no roles to elevate to (the workspace key, people and agents)"}
    return Unprocessable(f"request_type: {request_type} cannot be granted here: {why[request_type]}; this runtime "
                         f"takes {', '.join(wire.REQUEST_TYPES)}", code="request_type_not_supported",
                         details={"field": "request_type", "allowed": list(wire.REQUEST_TYPES)})


def _requester(s: Settings, principal: Principal, req: dict[str, Any]) -> str:
    """Who asks, as kept. An agent key asks only for itself (403 ``actor_mismatch``); people and the workspace
    key may file a request for anyone (a person who cannot log in yet asks through them)."""
    raw = req["requester_actor_id"].strip()
    kind = req["request_type"]
    if kind == "join_organization":
        try:
            requester = normalize_email(raw)
        except Unprocessable:
            raise Unprocessable("requester_actor_id: a join_organization request names the email of the person "
                                "who is to join", code="invalid_email",
                                details={"field": "requester_actor_id"}) from None
    elif kind == "send_permission":
        requester = workspace_address(s, raw, "requester_actor_id")
    else:
        requester = raw
    if not principal.is_member and requester != principal.address:
        raise Forbidden(f"requester_actor_id: this key asks only for {principal.address}", code="actor_mismatch",
                        details={"field": "requester_actor_id", "allowed": [principal.address]})
    return requester


def op_create(tx: Tx, s: Settings, principal: Principal, req: dict[str, Any], now: float) -> Row:
    check_tenancy(s, req)
    kind = req["request_type"]
    if kind not in wire.REQUEST_TYPES:
        raise _refuse_type(kind)
    requester = _requester(s, principal, req)
    recipient = None
    if kind == "quota_upgrade" and not req.get("requested_tier"):
        raise Unprocessable(f"requested_tier: required for a quota_upgrade ({', '.join(wire.TIERS)})",
                            details={"field": "requested_tier", "allowed": list(wire.TIERS)})
    if kind == "send_permission":
        if not req.get("recipient"):
            raise Unprocessable("recipient: required for a send_permission (the agent to send to)",
                                details={"field": "recipient"})
        recipient = workspace_address(s, req["recipient"], "recipient")
    expires_at = iso(req["expires_at"].timestamp()) if req.get("expires_at") else None
    if expires_at is not None and parse_iso(expires_at) <= now:
        raise Unprocessable("expires_at: must be in the future", details={"field": "expires_at"})
    org, workspace = tenancy(s)
    at = iso(now)
    row: Row = {
        "access_request_id": uuid7(), "org_id": org, "workspace_id": workspace, "request_type": kind,
        "state": "pending", "requester_actor_id": requester, "requested_role": req.get("requested_role"),
        "requested_tier": req.get("requested_tier"), "recipient": recipient,
        "company_name": req.get("company_name"), "justification": req.get("justification"),
        "expires_at": expires_at, "created_by": principal.address, "reviewer_actor_id": None,
        "review_comment": None, "reviewed_at": None, "created_at": at, "updated_at": at,
    }
    tx.insert_access_request(row)
    audit.by(tx, "access_request.created", now, principal, target=("access_request", row["access_request_id"]),
             request_type=kind, requester_actor_id=requester, requested_tier=row["requested_tier"],
             recipient=recipient)
    return row


def _reviewer(principal: Principal, raw: str) -> str:
    """The workspace key or a person reviews. A person names themselves (their actor id, email or address); the
    workspace key may name who it reviews for (recorded, with the key as ``acted_by`` in the audit log)."""
    if not principal.is_member:
        raise Forbidden("reviewing an access request needs the workspace API key or a person's login, not an "
                        "agent key", code="policy_denied")
    name = raw.strip()
    if principal.is_admin or name in (principal.key_id, principal.address) or (
            principal.email is not None and name.lower() == principal.email):
        return name
    raise Forbidden(f"reviewer_actor_id: this login reviews as {principal.email or principal.key_id}",
                    code="actor_mismatch", details={"field": "reviewer_actor_id"})


def grant_of(s: Settings, row: Row) -> Row:
    """What an approved request grants (an ``access_grants`` row without its id and times)."""
    org, workspace = tenancy(s)
    kind = row["request_type"]
    if kind == "join_organization":
        return {"grant_type": MEMBER, "subject": row["requester_actor_id"], "target": None, "value": None}
    if kind == "quota_upgrade":
        return {"grant_type": QUOTA_TIER, "subject": f"{org}/{workspace}", "target": None,
                "value": row["requested_tier"]}
    return {"grant_type": SEND, "subject": row["requester_actor_id"], "target": row["recipient"], "value": None}


def op_review(tx: Tx, s: Settings, principal: Principal, access_request_id: str, req: dict[str, Any],
              now: float) -> Row:
    reviewer = _reviewer(principal, req["reviewer_actor_id"])
    org, workspace = tenancy(s)
    row = tx.get_access_request(org, workspace, access_request_id)
    if row is None:
        raise NotFound(f"access request {access_request_id} not found", code="access_request_not_found")
    state = state_of(row, now)
    if state not in wire.OPEN_STATES:
        raise Conflict(f"access request {access_request_id} is {state}; only a pending or waitlisted request is "
                       "reviewed", code="access_request_" + ("expired" if state == "expired" else "decided"),
                       details={"state": state})
    at = iso(now)
    fields: Row = {"state": wire.DECIDED[req["decision"]], "reviewer_actor_id": reviewer,
                   "review_comment": req.get("review_comment"), "reviewed_at": at, "updated_at": at}
    tx.update_access_request(access_request_id, fields)
    row.update(fields)
    acted = {"acted_by": principal.address} if reviewer not in (principal.address, principal.key_id) else {}
    audit.by(tx, "access_request.reviewed", now, principal, target=("access_request", access_request_id),
             decision=req["decision"], reviewer_actor_id=reviewer, **acted)
    if fields["state"] == "approved":
        grant: Row = {"grant_id": uuid7(), "org_id": org, "workspace_id": workspace, **grant_of(s, row),
                      "access_request_id": access_request_id, "granted_by": reviewer, "created_at": at,
                      "revoked_at": None}
        tx.insert_access_grant(grant)
        audit.by(tx, "access_grant.created", now, principal, target=("access_grant", grant["grant_id"]),
                 grant_type=grant["grant_type"], subject=grant["subject"], grant_target=grant["target"],
                 value=grant["value"], access_request_id=access_request_id)
        if grant["grant_type"] == MEMBER:
            orgs.op_join(tx, s, principal, grant["subject"], now)
    return row


# ---------------------------------------------------------------------------------------------
# what the grants mean to the rest of the runtime


async def may_log_in(reads: Reads, email: str) -> bool:
    """Whether an approved join_organization lets ``email`` log in (beside ``--allow-email``). Logging in is the
    runtime's, not a workspace's: a join approved in any workspace lets the person in."""
    return bool(await reads.access_grants_anywhere(MEMBER, email))


async def quota_tier(reads: Reads, s: Settings) -> str | None:
    """The tier the latest approved quota_upgrade granted the workspace, if any."""
    org, workspace = tenancy(s)
    grants = await reads.access_grants(org, workspace, QUOTA_TIER, f"{org}/{workspace}")
    return str(grants[-1]["value"]) if grants else None


async def send_granted(reads: Reads, s: Settings, sender: str, recipient: str) -> bool:
    """Whether an approved send_permission lets ``sender`` send to ``recipient``."""
    org, workspace = tenancy(s)
    return any(g["target"] == recipient for g in await reads.access_grants(org, workspace, SEND, sender))

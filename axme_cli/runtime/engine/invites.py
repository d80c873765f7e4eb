"""Invites: an owner asks someone to join with a nick. A 256-bit token (``axme_inv_...``) is answered once, to the
creator; only its sha256 is kept, and a token is found by that hash (an equality lookup of a 256-bit value:
nothing of the token leaks through timing) and compared again in constant time.

Accepting (single use, before ``expires_at``: a used invite is 409, an expired one 410) grants, in one
transaction:
- the accepter a user with the chosen nick (``engine/users.new_user``: an agent key's nick names the agent itself,
  a person gets ``agent://user/<id>`` held by them, the workspace key makes a new ``agent://user/<id>``), so
  ``@nick`` reaches it from then on;
- the invite's owner the news: ``invite.accepted`` to the owner's webhook subscriptions (``outbound.publish``),
  and GET ``/v1/invites/{token}`` shows who accepted with which nick;
- an audit event each for the creation and the acceptance (never the token).

``registry_bind_status`` is ``propagated``: the nick is in this runtime's nick registry (it resolves as a
recipient) when the accept commits; there is no other registry to bind it in.
"""

from __future__ import annotations

import hmac
import re
import secrets
from typing import Any

from axme_cli.protocol import nicks
from axme_cli.protocol.ids import uuid7
from axme_cli.protocol.users import INVITE_TTL_DEFAULT
from axme_cli.runtime.clock import iso
from axme_cli.runtime.engine import audit, idempotency, outbound, users
from axme_cli.runtime.errors import Conflict, Forbidden, Gone, NotFound
from axme_cli.runtime.principals import Principal, hash_token
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Row, Tx

TOKEN_PREFIX = "axme_inv_"
# What a token may look like (the spec: 12-64 characters); anything else cannot be one of ours.
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{12,64}$")
PENDING, ACCEPTED, EXPIRED = "pending", "accepted", "expired"
SOURCE = "axme.invites"


def new_token() -> tuple[str, str]:
    """(token, its sha256)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, hash_token(token)


def status_of(row: Row, now: float) -> str:
    if row["accepted_at"] is not None:
        return ACCEPTED
    return EXPIRED if now >= row["expires_ts"] else PENDING


def found(row: Row | None, token_hash: str) -> Row:
    """The invite of ``token_hash``, compared again in constant time; 404 when there is none."""
    if row is None or not hmac.compare_digest(row["token_hash"].encode(), token_hash.encode()):
        raise NotFound("no invite has this token (mistyped, or never made here)", code="invite_not_found",
                       details={"field": "token"})
    return row


def invite_view(row: Row, token: str, now: float, user: Row | None) -> dict[str, Any]:
    """``api.invites.get.response.v1``; ``user``: the user the invite made, with its nick of now."""
    return {"ok": True, "token": token, "owner_agent": row["owner_agent"], "recipient_hint": row["recipient_hint"],
            "status": status_of(row, now), "created_at": row["created_at"], "expires_at": iso(row["expires_ts"]),
            "accepted_at": row["accepted_at"], "accepted_owner_agent": row["accepted_owner_agent"],
            "nick": nicks.shown(user["nick"]) if user else None,
            "public_address": nicks.public_address(user["nick"]) if user else None}


def created_view(row: Row, token: str, invite_url: str, now: float) -> dict[str, Any]:
    """``api.invites.create.response.v1``."""
    return {"ok": True, "token": token, "invite_url": invite_url, "owner_agent": row["owner_agent"],
            "recipient_hint": row["recipient_hint"], "status": status_of(row, now), "created_at": row["created_at"],
            "expires_at": iso(row["expires_ts"])}


def op_create(tx: Tx, s: Settings, principal: Principal, owner_agent: str, req: dict[str, Any], token_hash: str,
              now: float, idem: idempotency.Key | None) -> Row:
    """A new invite owned by ``owner_agent`` whose token hashes to ``token_hash``. A repeat of an Idempotency-Key
    hands the same invite a new token instead (the token of the first call is not kept, so it cannot be answered
    again, and the caller that repeats never saw it): 409 once that invite is no longer pending."""
    held = None if principal.is_admin else tx.user_by("holder", principal.address)
    if not users.may_act_as(principal, owner_agent, held):
        raise Forbidden(f"owner_agent: this key invites only as {principal.address}, not as {owner_agent}",
                        code="policy_denied", details={"field": "owner_agent"})

    def create() -> dict[str, Any]:
        invite_id = uuid7()
        tx.insert_invite({
            "invite_id": invite_id, "token_hash": token_hash, "owner_agent": owner_agent,
            "recipient_hint": req.get("recipient_hint"), "created_by": principal.address, "created_at": iso(now),
            "expires_ts": now + req.get("ttl_seconds", INVITE_TTL_DEFAULT), "accepted_at": None,
            "accepted_by": None, "accepted_user_id": None, "accepted_owner_agent": None,
        })
        audit.by(tx, "invite.created", now, principal, owner_agent=owner_agent, target=("invite", invite_id),
                 expires_at=iso(now + req.get("ttl_seconds", INVITE_TTL_DEFAULT)))
        return {"invite_id": invite_id}

    outcome = idempotency.once(tx, idem, now, create)
    row = tx.invite_by("invite_id", outcome.result["invite_id"])
    assert row is not None
    if outcome.replayed:
        if status_of(row, now) != PENDING:
            raise Conflict(f"the invite this Idempotency-Key created is {status_of(row, now)}; create another with "
                           "a new key", code="invite_not_pending")
        tx.update_invite(row["invite_id"], {"token_hash": token_hash})
        audit.by(tx, "invite.token_renewed", now, principal, owner_agent=row["owner_agent"],
                 target=("invite", row["invite_id"]))
        row = {**row, "token_hash": token_hash}
    return row


def op_accept(tx: Tx, s: Settings, principal: Principal, token_hash: str, req: dict[str, Any], now: float,
              idem: idempotency.Key | None) -> dict[str, Any]:
    """Accept the invite of ``token_hash`` with the nick ``req["nick"]``: the answer without its ``token`` (the
    caller's, added by the route; an Idempotency-Key's cache keeps no token)."""
    return idempotency.once(tx, idem, now, lambda: _accept(tx, s, principal, token_hash, req, now)).result


def _accept(tx: Tx, s: Settings, principal: Principal, token_hash: str, req: dict[str, Any],
            now: float) -> dict[str, Any]:
    row = found(tx.invite_by("token_hash", token_hash), token_hash)
    status = status_of(row, now)
    if status == ACCEPTED:
        raise Conflict(f"this invite was already accepted (at {row['accepted_at']}); an invite is used once",
                       code="invite_already_accepted")
    if status == EXPIRED:
        raise Gone(f"this invite expired at {iso(row['expires_ts'])}; ask its owner for a new one",
                   code="invite_expired", details={"expires_at": iso(row["expires_ts"])})
    if not principal.is_admin and principal.address == row["owner_agent"]:
        raise Conflict("an invite is accepted by someone else than its owner", code="invite_own",
                       details={"owner_agent": row["owner_agent"]})
    user = users.new_user(tx, principal, nicks.normalize(req["nick"]), req, now)
    at = iso(now)
    tx.update_invite(row["invite_id"], {"accepted_at": at, "accepted_by": principal.address,
                                        "accepted_user_id": user["user_id"],
                                        "accepted_owner_agent": user["owner_agent"]})
    news = {"invite_id": row["invite_id"], "invite_owner_agent": row["owner_agent"],
            "recipient_hint": row["recipient_hint"], "user_id": user["user_id"], "owner_agent": user["owner_agent"],
            "nick": nicks.shown(user["nick"]), "public_address": nicks.public_address(user["nick"]),
            "accepted_at": at}
    outbound.publish(tx, s, row["owner_agent"], "invite.accepted", SOURCE, news, now)
    audit.by(tx, "invite.accepted", now, principal, owner_agent=row["owner_agent"], target=("invite", row["invite_id"]),
             user_id=user["user_id"], accepted_owner_agent=user["owner_agent"], nick=nicks.shown(user["nick"]))
    audit.by(tx, "user.registered", now, principal, owner_agent=user["owner_agent"], target=("user", user["user_id"]),
             nick=nicks.shown(user["nick"]), invite_id=row["invite_id"])
    return {"ok": True, "status": ACCEPTED, "invite_owner_agent": row["owner_agent"], "user_id": user["user_id"],
            "owner_agent": user["owner_agent"], "nick": nicks.shown(user["nick"]),
            "public_address": nicks.public_address(user["nick"]), "display_name": user["display_name"],
            "accepted_at": at, "registry_bind_status": "propagated"}

"""Human login: email + one-time code, sessions, rotating refresh tokens.

Each ``op_*`` runs inside one store transaction. An operation that must *record* a refusal (a wrong
code counts a try; a reused refresh token revokes the session) returns the refusal instead of raising
it, because raising would roll the recording back; the route raises it after the commit.
"""

from __future__ import annotations

import re
from typing import Any

from axme_cli.protocol.ids import uuid7
from axme_cli.runtime import principals as pr
from axme_cli.runtime.clock import iso
from axme_cli.runtime.engine import audit, quotas
from axme_cli.runtime.errors import Conflict, Forbidden, Gone, NotFound, TooManyRequests, Unauthorized, Unprocessable
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Row, Tx

_EMAIL_RE = re.compile(r"^[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+$")
PRUNE_AFTER_SECONDS = 24 * 3600.0


def normalize_email(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise Unprocessable("email: required (e.g. {\"email\": \"you@example.com\"})", details={"field": "email"})
    email = raw.strip().lower()
    if len(email) > 254 or not _EMAIL_RE.match(email):
        raise Unprocessable(f"email: {raw.strip()!r} is not an email address", code="invalid_email",
                            details={"field": "email"})
    return email


def check_email_allowed(s: Settings, email: str) -> None:
    """403 unless ``--allow-email`` lets ``email`` in: the address itself, its ``@domain``, or ``*``. The same
    answer whether or not the email ever logged in, and when email login is off altogether."""
    domain = "@" + email.rsplit("@", 1)[-1]
    if not any(entry in ("*", email, domain) for entry in s.allowed_emails):
        raise Forbidden(f"{email} may not log in to this runtime", code="email_not_allowed",
                        details={"field": "email"})


def actor_address(s: Settings, email: str) -> str:
    return f"actor://{s.org}/{s.workspace}/{email}"


def client_type(client: str | None) -> str:
    c = (client or "").lower()
    if c.startswith("axme-cli"):
        return "cli"
    if c.startswith(("axme-sdk", "axme-python", "axme-py")):
        return "sdk"
    return "api" if c else "unknown"


def session_view(row: Row, current: str | None) -> dict[str, Any]:
    return {
        "session_id": row["session_id"],
        "is_current": row["session_id"] == current,
        "actor_id": row["actor_id"],
        "email": row.get("email"),
        "client_type": client_type(row.get("client")),
        "client": row.get("client"),
        "device_label": None,
        "created_at": row["created_at"],
        "expires_at": row["expires_at"],
        "revoked_at": row["revoked_at"],
        "revoked": row["revoked_at"] is not None,
    }


# ---------------------------------------------------------------------------------------------
# login intents


def op_open_login_intent(
    tx: Tx, s: Settings, email: str, code: str, client: str | None, now: float
) -> dict[str, Any]:
    """Record a login intent for ``email`` (allowed: ``check_email_allowed``) with the (hashed) code; at most
    ``max_open_login_codes`` open."""
    open_ = tx.open_login_intents(email, now, s.max_login_code_tries)
    if len(open_) >= s.max_open_login_codes:
        retry = max(1, int(open_[0]["expires_ts"] - now) + 1)
        raise TooManyRequests(
            f"{email} already has {len(open_)} open login codes; use one of them or retry in {retry} s",
            details={"dimension": "open_login_codes", "used": len(open_), "limit": s.max_open_login_codes},
            retry_after=retry,
        )
    intent_id = uuid7()
    tx.insert_login_intent(
        {
            "intent_id": intent_id,
            "grant_id": uuid7(),
            "email": email,
            "code_hash": pr.hash_login_code(intent_id, code),
            "client": client,
            "created_ts": now,
            "expires_ts": now + s.login_code_ttl_seconds,
            "tries": 0,
            "used_ts": None,
        }
    )
    row = tx.get_login_intent(intent_id)
    assert row is not None
    who = actor_address(s, email)
    audit.record(tx, "auth.login.requested", now, actor=who, owner_agent=who, target=("login_intent", intent_id),
                 client=client)
    return row


def op_kill_login_intent(tx: Tx, intent_id: str, now: float) -> None:
    tx.update_login_intent(intent_id, {"used_ts": now})


def _issue_tokens(tx: Tx, s: Settings, session_id: str, now: float) -> dict[str, Any]:
    access_id, access = pr.new_session_token(pr.ACCESS)
    refresh_id, refresh = pr.new_session_token(pr.REFRESH)
    access_exp = now + s.access_token_ttl_seconds
    refresh_exp = now + s.refresh_token_ttl_seconds
    for token_id, token, kind, exp in ((access_id, access, pr.ACCESS, access_exp),
                                       (refresh_id, refresh, pr.REFRESH, refresh_exp)):
        tx.insert_session_token(
            {
                "token_id": token_id,
                "session_id": session_id,
                "kind": kind,
                "hash": pr.hash_token(token),
                "created_ts": now,
                "expires_ts": exp,
                "used_ts": None,
            }
        )
    return {
        "access_token": access,
        "refresh_token": refresh,
        "expires_at": iso(access_exp),
        "expires_in": int(round(s.access_token_ttl_seconds)),
        "refresh_expires_at": iso(refresh_exp),
        "_refresh_expires_ts": refresh_exp,
    }


def op_verify_login(tx: Tx, s: Settings, intent_id: str, code: str, client: str | None, now: float) -> Any:
    """A session for the right code; the refusal (returned, not raised) for a wrong one, after counting it."""
    row = tx.get_login_intent(intent_id)
    if row is None:
        raise NotFound(f"login intent {intent_id} not found", code="login_intent_not_found")
    if row["used_ts"] is not None:
        raise Conflict("this login code was already used; run `axme login` again for a new one",
                       code="login_code_used")
    if row["expires_ts"] <= now:
        raise Gone("this login code has expired; run `axme login` again for a new one", code="login_code_expired")
    if row["tries"] >= s.max_login_code_tries:
        raise Gone(f"{row['tries']} wrong codes: this login intent is closed; run `axme login` again",
                   code="login_code_exhausted")
    if not pr.matches(pr.hash_login_code(intent_id, code), row["code_hash"]):
        tries = row["tries"] + 1
        tx.update_login_intent(intent_id, {"tries": tries})
        left = s.max_login_code_tries - tries
        who = actor_address(s, row["email"])
        audit.record(tx, "auth.login.refused", now, actor=who, owner_agent=who, target=("login_intent", intent_id),
                     reason="wrong_code", tries_left=left)
        return Unprocessable(
            f"wrong code; {left} tries left" if left else "wrong code; no tries left, run `axme login` again",
            code="invalid_login_code",
            details={"field": "code", "tries_left": left},
        )
    tx.update_login_intent(intent_id, {"used_ts": now})
    tx.prune_auth(now - PRUNE_AFTER_SECONDS)
    email = row["email"]
    actor = tx.actor_by_email(email)
    if actor is None:
        quotas.admit_actor(tx, now)  # within actors_total (no query without that limit)
        actor = {"actor_id": uuid7(), "email": email, "created_at": iso(now)}
        tx.insert_actor(actor)
    session_id = uuid7()
    tx.insert_session(
        {
            "session_id": session_id,
            "actor_id": actor["actor_id"],
            "client": client or row["client"],
            "created_at": iso(now),
            "expires_at": iso(now + s.refresh_token_ttl_seconds),
            "expires_ts": now + s.refresh_token_ttl_seconds,
            "revoked_at": None,
            "revoke_reason": None,
        }
    )
    tokens = _issue_tokens(tx, s, session_id, now)
    tokens.pop("_refresh_expires_ts")
    who = actor_address(s, email)
    audit.record(tx, "auth.login.verified", now, actor=who, key_id=actor["actor_id"], owner_agent=who,
                 target=("session", session_id), client=client or row["client"])
    return {
        "ok": True,
        "access_token": tokens["access_token"],
        "account_session_token": tokens["access_token"],
        "refresh_token": tokens["refresh_token"],
        "expires_at": tokens["expires_at"],
        "expires_in": tokens["expires_in"],
        "refresh_expires_at": tokens["refresh_expires_at"],
        "token_type": "Bearer",
        "org_id": s.org,
        "workspace_id": s.workspace,
        "actor_id": actor["actor_id"],
        "email": email,
        "session_id": session_id,
        "address": actor_address(s, email),
    }


# ---------------------------------------------------------------------------------------------
# refresh and revocation


def op_refresh(tx: Tx, s: Settings, refresh_token: str, now: float) -> Any:
    """Spend a refresh token for a new pair; a spent one presented again revokes the whole session."""
    parsed = pr.parse_session_token(refresh_token)
    unknown = Unauthorized("unknown refresh token; run `axme login`", code="invalid_refresh_token")
    if parsed is None or parsed[0] != pr.REFRESH:
        return unknown
    row = tx.get_session_token(parsed[1])
    if row is None or row["kind"] != pr.REFRESH or not pr.matches(pr.hash_token(refresh_token), row["hash"]):
        return unknown
    session = tx.get_session(row["session_id"])
    if session is None:
        return unknown
    if session["revoked_at"] is not None:
        return Unauthorized("this session was revoked; run `axme login`", code="session_revoked")
    if row["used_ts"] is not None:
        tx.update_session(session["session_id"], {"revoked_at": iso(now), "revoke_reason": "refresh_token_reused"})
        _audit_revoked(tx, session, "refresh_token_reused", now, None)
        return Unauthorized(
            "this refresh token was already used; the session is revoked for safety; run `axme login`",
            code="refresh_token_reused",
        )
    if row["expires_ts"] <= now or session["expires_ts"] <= now:
        return Unauthorized("the session has expired; run `axme login`", code="session_expired")
    tx.update_session_token(row["token_id"], {"used_ts": now})
    tokens = _issue_tokens(tx, s, session["session_id"], now)
    exp_ts = tokens.pop("_refresh_expires_ts")
    tx.update_session(session["session_id"], {"expires_at": iso(exp_ts), "expires_ts": exp_ts})
    return {"ok": True, "session_id": session["session_id"], "token_type": "Bearer", **tokens}


def _audit_revoked(tx: Tx, session: Row, reason: str, now: float, by: Principal | None) -> None:
    """A revoked session; ``by`` None: the runtime revoked it (a refresh token presented twice)."""
    target = ("session", session["session_id"])
    if by is None:
        audit.record(tx, "auth.session.revoked", now, actor="runtime", target=target, reason=reason,
                     actor_id=session["actor_id"])
    else:
        audit.by(tx, "auth.session.revoked", now, by, owner_agent=by.address if by.is_actor else None,
                 target=target, reason=reason, actor_id=session["actor_id"])


def op_revoke_session(tx: Tx, principal: Principal, session_id: str, reason: str, now: float) -> dict[str, Any]:
    """A person revokes one of their sessions; the workspace key may revoke anyone's."""
    if not (principal.is_actor or principal.is_admin):
        raise Forbidden("revoking sessions needs a person's login or the workspace key", code="policy_denied")
    session = tx.get_session(session_id)
    if session is None or (principal.is_actor and session["actor_id"] != principal.key_id):
        raise NotFound(f"session {session_id} not found", code="session_not_found")
    revoked = session["revoked_at"] is None
    if revoked:
        at = iso(now)
        tx.update_session(session_id, {"revoked_at": at, "revoke_reason": reason})
        session.update(revoked_at=at)
        _audit_revoked(tx, session, reason, now, principal)
    return {"ok": True, "session_id": session_id, "revoked": True, "already_revoked": not revoked,
            "revoked_at": session["revoked_at"]}

"""The dashboard's login state: a session cookie, its server-side row, and CSRF checks.

- The cookie ``axme_ui`` holds ``<session_id>.<secret>`` (256 random bits); the ``ui_sessions`` row keeps only
  the secret's sha256 and what the session stands for: an API key's id (never the key) or a person's login
  session. Both are checked again on every request (``current``), with the same rules as the API
  (``Authenticator.key_principal``; a revoked or expired login session ends it), so the dashboard never sees more
  than the API would show that credential. Cookie flags: ``HttpOnly``, ``SameSite=Strict``, ``Path=/ui``, and
  ``Secure`` when the request came over https (or the runtime's public URL is https).
- CSRF: every form carries a per-session token in a hidden field, HMAC(secret, "csrf"), so it is known only to
  pages rendered for this cookie; a POST must carry it, and a browser's ``Origin`` / ``Sec-Fetch-Site`` must say
  it came from this site. Before login, the login forms use a double-submit token (the ``axme_ui_login`` cookie
  and the same value in the form) with the same Origin check, so another site cannot log a browser in either.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response

from axme_cli.protocol.ids import uuid7
from axme_cli.runtime import principals as pr
from axme_cli.runtime import scope
from axme_cli.runtime.api.common import read_body, runtime
from axme_cli.runtime.api.errors import status_of
from axme_cli.runtime.api.task_pages import _cross_site
from axme_cli.runtime.core import Runtime
from axme_cli.runtime.engine import auth as auth_engine
from axme_cli.runtime.engine import ui as engine
from axme_cli.runtime.errors import DomainError, Unauthorized
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings

COOKIE = "axme_ui"
LOGIN_COOKIE = "axme_ui_login"
PATH = "/ui"
SESSION_TTL_SECONDS = 12 * 3600.0
LOGIN_TTL_SECONDS = 1800


@dataclass
class UiSession:
    session_id: str
    kind: str  # "key" | "actor"
    csrf: str
    principal: Principal
    # the settings of the workspace the session acts in (runtime/scope.py): every page reads and writes through them
    settings: Settings
    # a person's: the workspaces the header's switcher offers, (org_id, workspace_id, label), set by ``gated``
    workspaces: list[tuple[str, str, str]] = field(default_factory=list)


class Refused(Exception):
    """A POST the dashboard refuses (CSRF, another site, a bad body): shown as a page with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def csrf_of(secret: str) -> str:
    return hmac.new(secret.encode(), b"axme-ui-csrf", hashlib.sha256).hexdigest()


def _parse(value: str | None) -> tuple[str, str] | None:
    if not value or "." not in value:
        return None
    session_id, secret = value.split(".", 1)
    if len(session_id) != 36 or len(secret) < 32:
        return None
    return session_id, secret


async def current(request: Request) -> UiSession | None:
    """The logged-in session of this request, or None (no cookie, unknown, ended, or its credential no longer
    works)."""
    parsed = _parse(request.cookies.get(COOKIE))
    if parsed is None:
        return None
    session_id, secret = parsed
    rt = runtime(request)
    row = await rt.reads.ui_session(session_id)
    now = rt.clock.time()
    if row is None or not pr.matches(_hash(secret), row["token_hash"]):
        return None
    if row["revoked_ts"] is not None or row["expires_ts"] <= now:
        return None
    principal = await _principal(rt, row, now)
    if principal is None:
        return None
    return UiSession(session_id, row["kind"], csrf_of(secret), principal, scope.settings_for(rt.settings, principal))


async def _principal(rt: Runtime, row: dict, now: float) -> Principal | None:
    if row["kind"] == "key":
        if row["key_kind"] is None:
            return None
        found = {"key_id": row["key_id"], "kind": row["key_kind"], "status": row["key_status"],
                 "expires_at": row["key_expires_at"], "service_account_id": row["key_service_account_id"],
                 "org_id": row["key_org_id"], "workspace_id": row["key_workspace_id"]}
        try:
            return await rt.auth.key_principal(found)
        except Unauthorized:
            return None
    if row["actor_id"] is None or row["actor_revoked_at"] is not None or row["actor_expires_ts"] <= now:
        return None
    person = Principal("actor", row["actor_id"], "", email=row["actor_email"], session_id=row["actor_session_id"])
    return await rt.auth.selected(person, row["org_id"], row["workspace_id"])


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or runtime(request).public_url.startswith("https://")


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path=PATH, httponly=True, samesite="strict",
                        secure=_secure(request))


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(name, path=PATH, httponly=True, samesite="strict", secure=_secure(request))


async def open_session(request: Request, principal: Principal) -> str:
    """A new session for a credential that just worked; returns the cookie value."""
    rt = runtime(request)
    session_id, secret = uuid7(), secrets.token_urlsafe(32)
    now = rt.clock.time()
    agent = request.headers.get("user-agent")
    row = {
        "session_id": session_id,
        "token_hash": _hash(secret),
        "kind": "actor" if principal.is_actor else "key",
        "key_id": None if principal.is_actor else principal.key_id,
        "actor_session_id": principal.session_id if principal.is_actor else None,
        "client": agent[:200] if agent else None,
        "created_ts": now,
        "expires_ts": now + SESSION_TTL_SECONDS,
        "revoked_ts": None,
        "org_id": None,
        "workspace_id": None,
    }
    await rt.write(lambda tx: engine.op_open_ui_session(tx, row, now))
    return f"{session_id}.{secret}"


async def close_session(request: Request, sess: UiSession) -> None:
    """Logout: the dashboard session ends, and so does the person's login session it was opened with."""
    rt = runtime(request)
    now = rt.clock.time()
    await rt.write(lambda tx: engine.op_close_ui_session(tx, sess.session_id, now))
    p = sess.principal
    if sess.kind == "actor" and p.session_id is not None:
        actor_session = p.session_id
        await rt.write(lambda tx: auth_engine.op_revoke_session(tx, p, actor_session, "logout", now))


async def read_form(request: Request) -> dict[str, str]:
    """The posted form of a browser on this site (Origin / Sec-Fetch-Site checked), as name -> last value."""
    if _cross_site(request):
        raise Refused(403, "This form was sent from another site.")
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise Refused(415, "Send this with the form on the page.")
    try:
        raw = await read_body(request)
    except DomainError as exc:
        raise Refused(status_of(exc), exc.message) from None
    return {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True).items()}


async def checked_form(request: Request, sess: UiSession) -> dict[str, str]:
    """``read_form`` plus this session's CSRF token."""
    form = await read_form(request)
    if not hmac.compare_digest(form.get("csrf", ""), sess.csrf):
        raise Refused(403, "This form is not from your session (CSRF check failed). Reload the page and try again.")
    return form


def login_token(request: Request) -> tuple[str, bool]:
    """The pre-login double-submit token: (value, whether the cookie must be set)."""
    value = request.cookies.get(LOGIN_COOKIE)
    if value and len(value) >= 32:
        return value, False
    return secrets.token_urlsafe(32), True


async def checked_login_form(request: Request) -> dict[str, str]:
    form = await read_form(request)
    cookie = request.cookies.get(LOGIN_COOKIE) or ""
    if len(cookie) < 32 or not hmac.compare_digest(form.get("csrf", ""), cookie):
        raise Refused(403, "This login form is too old or not from this page. Reload it and try again.")
    return form

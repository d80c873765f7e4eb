"""/v1/auth: email + code login, token refresh, sessions, logout, whoami.

Login needs no API key: the code reaches only whoever reads the mailbox (--smtp-url) or the runtime's mail
folder (and, on ``axme dev`` only, its console). Only the emails ``--allow-email`` names may ask for one
(``axme dev`` on loopback: anyone); the calls without a credential are rate-limited (``runtime/ratelimit.py``).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from axme_cli.runtime import principals as pr
from axme_cli.runtime import scope
from axme_cli.runtime.api.common import authenticate, bool_param, read_object, respond, runtime
from axme_cli.runtime.core import Runtime
from axme_cli.runtime.engine import access_requests
from axme_cli.runtime.engine import auth as engine
from axme_cli.runtime.errors import DomainError, Forbidden, Unauthorized, Unavailable, Unprocessable
from axme_cli.runtime.mailer import MailError
from axme_cli.runtime.principals import Principal

log = logging.getLogger("axme.auth")


def _client(request: Request) -> str | None:
    value = request.headers.get("x-axme-client") or request.headers.get("user-agent")
    return value[:200] if value else None


def client_address(request: Request) -> str | None:
    """The caller's network address, which the limits on calls without a credential count by."""
    return request.client.host if request.client else None


def _string(body: dict[str, Any], field: str, example: str) -> str:
    value = body.get(field)
    if isinstance(value, int) and not isinstance(value, bool) and field == "code":
        value = f"{value:06d}"
    if not isinstance(value, str) or not value.strip():
        raise Unprocessable(f"{field}: required (e.g. {{\"{field}\": \"{example}\"}})", details={"field": field})
    return value.strip()


def _raise_if_refused(result: Any) -> Any:
    if isinstance(result, DomainError):
        raise result
    return result


def principal_view(p: Principal) -> dict[str, Any]:
    view: dict[str, Any] = {"kind": p.kind, "address": p.address, "is_admin": p.is_admin}
    if p.is_actor:
        view.update(actor_id=p.key_id, session_id=p.session_id, email=p.email)
    else:
        view["key_id"] = p.key_id
    if p.service_account_id:
        view["service_account_id"] = p.service_account_id
    return view


async def send_login_code(rt: Runtime, raw_email: Any, client: str | None) -> tuple[str, dict[str, Any]]:
    """Open a login intent for the email and mail its code: (normalized email, the login intent row). Also the
    dashboard's login (runtime/ui). The caller counted the call against its address (``Throttle.call``)."""
    s = rt.settings
    email = engine.normalize_email(raw_email)
    try:
        engine.check_email_allowed(s, email)
    except Forbidden:  # an approved join_organization request lets the email in too
        if not await access_requests.may_log_in(rt.reads, email):
            raise
    rt.throttle.code_request(email)
    code = pr.new_login_code()
    now = rt.clock.time()
    row = await rt.write(lambda tx: engine.op_open_login_intent(tx, s, email, code, client, now))
    try:
        await rt.mailer.send_login_code(email, code, s.login_code_ttl_seconds, row["intent_id"])
    except MailError as exc:
        log.warning("login code for %s not sent: %s", email, exc)
        intent_id = row["intent_id"]
        await rt.write(lambda tx: engine.op_kill_login_intent(tx, intent_id, rt.clock.time()))
        raise Unavailable(f"the login code could not be sent: {exc}", code="mail_delivery_failed",
                          details={"retryable": True}, retry_after=5) from None
    return email, row


async def open_login_intent(request: Request) -> Response:
    rt = runtime(request)
    rt.throttle.call(client_address(request))
    s = rt.settings
    body = await read_object(request)
    email, row = await send_login_code(rt, body.get("email"), _client(request))
    return respond(
        {
            "ok": True,
            "intent_id": row["intent_id"],
            "grant_id": row["grant_id"],
            "email": email,
            "expires_in": int(round(s.login_code_ttl_seconds)),
        },
        request=request,
    )


async def verify_login_intent(request: Request) -> Response:
    rt = runtime(request)
    address = client_address(request)
    rt.throttle.call(address)
    rt.throttle.guess(address)
    s = rt.settings
    body = await read_object(request)
    code = _string(body, "code", "123456")
    intent_id = request.path_params["intent_id"]
    client = _client(request)
    now = rt.clock.time()
    result = await rt.write(lambda tx: engine.op_verify_login(tx, s, intent_id, code, client, now))
    return respond(_raise_if_refused(result), request=request)


async def refresh(request: Request) -> Response:
    rt = runtime(request)
    rt.throttle.call(client_address(request))
    s = rt.settings
    body = await read_object(request)
    token = _string(body, "refresh_token", "axme_rt_...")
    now = rt.clock.time()
    result = await rt.write(lambda tx: engine.op_refresh(tx, s, token, now))
    return respond(_raise_if_refused(result), request=request)


def _session_holder(principal: Principal) -> str | None:
    """The actor whose sessions this principal sees (None: every actor's, for the workspace key)."""
    if principal.is_actor:
        return principal.key_id
    if principal.is_admin:
        return None
    raise Forbidden("sessions belong to people; an agent key cannot see them", code="policy_denied")


async def list_sessions(request: Request) -> Response:
    principal = await authenticate(request, person_anywhere=True)
    holder = _session_holder(principal)
    include_revoked = bool_param(request, "include_revoked")
    rows = await runtime(request).reads.list_sessions(holder, include_revoked=include_revoked)
    sessions = [engine.session_view(r, principal.session_id) for r in rows]
    return respond({"ok": True, "sessions": sessions, "current_session_id": principal.session_id}, request=request)


async def revoke_session(request: Request) -> Response:
    principal = await authenticate(request, person_anywhere=True)
    body = await read_object(request)
    session_id = _string(body, "session_id", "0190...")
    now = runtime(request).clock.time()
    result = await runtime(request).write(
        lambda tx: engine.op_revoke_session(tx, principal, session_id, "revoked", now)
    )
    return respond(result, request=request)


def _actor(principal: Principal) -> Principal:
    if not principal.is_actor or principal.session_id is None:
        raise Unauthorized("logout ends a person's session: send the access token as Authorization: Bearer",
                           code="missing_actor_token")
    return principal


async def logout(request: Request) -> Response:
    principal = _actor(await authenticate(request, person_anywhere=True))
    session_id = principal.session_id
    assert session_id is not None
    now = runtime(request).clock.time()
    result = await runtime(request).write(
        lambda tx: engine.op_revoke_session(tx, principal, session_id, "logout", now)
    )
    return respond(result, request=request)


async def logout_all(request: Request) -> Response:
    principal = _actor(await authenticate(request, person_anywhere=True))
    rt = runtime(request)
    rows = await rt.reads.list_sessions(principal.key_id, include_revoked=False)
    ids = [r["session_id"] for r in rows]
    now = rt.clock.time()

    def op(tx: Any) -> list[str]:
        return [sid for sid in ids if not engine.op_revoke_session(tx, principal, sid, "logout_all", now)
                ["already_revoked"]]

    revoked = await rt.write(op)
    return respond({"ok": True, "revoked": len(revoked), "session_ids": revoked}, request=request)


async def whoami(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    s = scope.settings_for(runtime(request).settings, principal)  # the pair the caller acts in
    return respond(
        {"ok": True, "principal": principal_view(principal), "org_id": s.org, "workspace_id": s.workspace},
        request=request,
    )


routes = [
    Route("/v1/auth/login-intent", open_login_intent, methods=["POST"]),
    Route("/v1/auth/login-intent/{intent_id}/verify", verify_login_intent, methods=["POST"]),
    Route("/v1/auth/refresh", refresh, methods=["POST"]),
    Route("/v1/auth/sessions", list_sessions, methods=["GET"]),
    Route("/v1/auth/sessions/revoke", revoke_session, methods=["POST"]),
    Route("/v1/auth/logout", logout, methods=["POST"]),
    Route("/v1/auth/logout-all", logout_all, methods=["POST"]),
    Route("/v1/auth/whoami", whoami, methods=["GET"]),
]

"""The dashboard's login (an API key, or an email and its one-time code) and logout."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from axme_cli.runtime.api.auth import client_address, send_login_code
from axme_cli.runtime.api.common import runtime
from axme_cli.runtime.api.errors import headers_of, status_of
from axme_cli.runtime.engine import auth as auth_engine
from axme_cli.runtime.errors import DomainError
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.ui import session
from axme_cli.runtime.ui.common import gated, safe_next
from axme_cli.runtime.ui.render import csrf_field, e, page
from axme_cli.runtime.ui.session import UiSession


def _login_page(request: Request, *, error: str | None = None, status: int = 200, email: str = "",
                login_intent: str | None = None, next_url: str = "/ui/intents") -> Response:
    token, fresh = session.login_token(request)
    csrf = csrf_field(token)
    nxt = f'<input type="hidden" name="next" value="{e(next_url)}">'
    parts = ['<section class="login"><h1>Log in to the axme dashboard</h1>']
    if error:
        parts.append(f'<p class="error" role="alert">{e(error)}</p>')
    if login_intent:
        parts.append(
            f'<form method="post" action="/ui/login/code" class="card">{csrf}{nxt}'
            f'<input type="hidden" name="login_intent" value="{e(login_intent)}">'
            f'<input type="hidden" name="email" value="{e(email)}">'
            f"<h2>Enter the code</h2><p class=\"note\">A 6-digit code was sent to {e(email)} (on `axme dev` it is "
            "printed on the runtime's console).</p>"
            '<label for="code">Code</label><input id="code" name="code" inputmode="numeric" '
            'autocomplete="one-time-code" required autofocus><button type="submit">Log in</button></form>'
            '<p><a href="/ui/login">Start again</a></p>')
    else:
        parts.append(
            f'<form method="post" action="/ui/login" class="card">{csrf}{nxt}<h2>With an API key</h2>'
            '<label for="api_key">API key</label><input id="api_key" name="api_key" type="password" '
            'autocomplete="off" required><p class="note">The workspace key (the "Admin key" line of the `axme dev` '
            "banner says where it is kept) or an agent key: you see what that key may see through the API.</p>"
            '<button type="submit">Log in</button></form>'
            f'<form method="post" action="/ui/login/email" class="card">{csrf}{nxt}<h2>With your email</h2>'
            f'<label for="email">Email</label><input id="email" name="email" type="email" value="{e(email)}" '
            'autocomplete="email" required><button type="submit">Send me a code</button></form>')
    parts.append("</section>")
    response = page("Log in", "\n".join(parts), status=status)
    if fresh:
        session.set_cookie(response, request, session.LOGIN_COOKIE, token, session.LOGIN_TTL_SECONDS)
    return response


def _refused(request: Request, exc: DomainError, **page: Any) -> Response:
    """The login page with what was refused, and the refusal's status and headers (a 429's Retry-After)."""
    response = _login_page(request, error=exc.message, status=status_of(exc), **page)
    response.headers.update(headers_of(exc))
    return response


async def login(request: Request) -> Response:
    next_url = safe_next(request.query_params.get("next"))
    if request.method == "GET":
        if await session.current(request) is not None:
            return RedirectResponse(next_url, status_code=303)
        return _login_page(request, next_url=next_url)
    try:
        form = await session.checked_login_form(request)
    except session.Refused as exc:
        return _login_page(request, error=exc.message, status=exc.status)
    next_url = safe_next(form.get("next"))
    key = form.get("api_key", "").strip()
    if not key:
        return _login_page(request, error="Enter an API key.", status=422, next_url=next_url)
    rt = runtime(request)
    try:
        rt.throttle.call(client_address(request))
        principal = await rt.auth.authenticate(key, elsewhere_ok=True)  # its pages say what it may see
    except DomainError as exc:
        return _refused(request, exc, next_url=next_url)
    return await _logged_in(request, principal, next_url)


async def _logged_in(request: Request, principal: Principal, next_url: str) -> Response:
    value = await session.open_session(request, principal)
    response = RedirectResponse(next_url, status_code=303)
    session.set_cookie(response, request, session.COOKIE, value, int(session.SESSION_TTL_SECONDS))
    session.clear_cookie(response, request, session.LOGIN_COOKIE)
    return response


async def login_email(request: Request) -> Response:
    try:
        form = await session.checked_login_form(request)
    except session.Refused as exc:
        return _login_page(request, error=exc.message, status=exc.status)
    next_url = safe_next(form.get("next"))
    raw = form.get("email", "")
    agent = request.headers.get("user-agent")
    rt = runtime(request)
    try:
        rt.throttle.call(client_address(request))
        email, row = await send_login_code(rt, raw, ("axme-ui " + agent)[:200] if agent else "axme-ui")
    except DomainError as exc:
        return _refused(request, exc, email=raw, next_url=next_url)
    return _login_page(request, email=email, login_intent=row["intent_id"], next_url=next_url)


async def login_code(request: Request) -> Response:
    try:
        form = await session.checked_login_form(request)
    except session.Refused as exc:
        return _login_page(request, error=exc.message, status=exc.status)
    next_url = safe_next(form.get("next"))
    rt = runtime(request)
    intent_id, email = form.get("login_intent", ""), form.get("email", "")
    code = form.get("code", "").strip()
    s = rt.settings
    now = rt.clock.time()
    address = client_address(request)
    try:
        rt.throttle.call(address)
        rt.throttle.guess(address)
    except DomainError as exc:  # the code was not checked: the same login intent may try again later
        return _refused(request, exc, email=email, login_intent=intent_id, next_url=next_url)
    try:
        result = await rt.write(lambda tx: auth_engine.op_verify_login(tx, s, intent_id, code, "axme-ui", now))
    except DomainError as exc:
        return _refused(request, exc, email=email, next_url=next_url)
    if isinstance(result, DomainError):  # a wrong code, counted: try again with the same login intent
        return _login_page(request, error=result.message, status=status_of(result), email=email,
                           login_intent=intent_id, next_url=next_url)
    principal = await rt.auth.authenticate(result["access_token"])
    return await _logged_in(request, principal, next_url)


async def _logout(request: Request, sess: UiSession) -> Response:
    await session.checked_form(request, sess)
    await session.close_session(request, sess)
    response = RedirectResponse("/ui/login", status_code=303)
    session.clear_cookie(response, request, session.COOKIE)
    return response


logout = gated(_logout)

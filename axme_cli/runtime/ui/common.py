"""What every dashboard page shares: the login gate and turning refusals into pages."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from axme_cli.runtime.api.errors import status_of
from axme_cli.runtime.errors import DomainError
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.ui import session
from axme_cli.runtime.ui.render import message
from axme_cli.runtime.ui.session import UiSession

Page = Callable[[Request, UiSession], Awaitable[Response]]
TITLES = {400: "Not done", 403: "Not allowed", 404: "Not found", 409: "Not possible now", 410: "Gone",
          415: "Refused", 422: "Not accepted", 429: "Too many tries", 503: "Try again"}


def who(p: Principal) -> str:
    """Who is logged in, and the workspace they act in (``org/workspace``, from their address)."""
    if p.is_actor:
        label = str(p.email)
    elif p.is_admin:
        label = "workspace key"
    else:
        return p.address
    parts = p.address.split("://", 1)[-1].split("/")
    return f"{label} · {parts[0]}/{parts[1]}" if len(parts) >= 3 else label


def login_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/ui/login?next=" + quote(target, safe="")


def gated(fn: Page) -> Callable[[Request], Awaitable[Response]]:
    """A page for logged-in people only (else to the login page); refusals of the engine become pages."""

    @functools.wraps(fn)
    async def endpoint(request: Request) -> Response:
        sess = await session.current(request)
        if sess is None:
            return RedirectResponse(login_url(request), status_code=303)
        try:
            return await fn(request, sess)
        except session.Refused as exc:
            return message("Refused", exc.message, exc.status, who=who(sess.principal), csrf=sess.csrf,
                           back=request.url.path)
        except DomainError as exc:
            status = status_of(exc)
            return message(TITLES.get(status, "Not done"), exc.message, status,
                           who=who(sess.principal), csrf=sess.csrf, back="/ui/intents")

    return endpoint


def safe_next(raw: str | None) -> str:
    """Where to go after login: only a path inside the dashboard."""
    if raw and raw.startswith("/ui/") and not raw.startswith("//") and "\\" not in raw:
        return raw
    return "/ui/intents"

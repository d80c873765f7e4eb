"""What every dashboard page shares: the login gate and turning refusals into pages."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from axme_cli.runtime.api.common import runtime
from axme_cli.runtime.api.errors import status_of
from axme_cli.runtime.engine import orgs
from axme_cli.runtime.errors import DomainError
from axme_cli.runtime.ui import session
from axme_cli.runtime.ui.render import Header, message
from axme_cli.runtime.ui.session import UiSession

Page = Callable[[Request, UiSession], Awaitable[Response]]
TITLES = {400: "Not done", 403: "Not allowed", 404: "Not found", 409: "Not possible now", 410: "Gone",
          415: "Refused", 422: "Not accepted", 429: "Too many tries", 503: "Try again"}


def who(sess: UiSession) -> Header:
    """Who is logged in and the workspace they act in (``org/workspace``), and a person's workspaces to switch to."""
    p, st = sess.principal, sess.settings
    workspace = f"{st.org}/{st.workspace}"
    if p.is_actor:
        label = str(p.email)
    elif p.is_admin:
        label = "workspace key"
    else:
        return Header(p.address, workspace)
    names = {value: name for value, name in ((f"{o}/{w}", n) for o, w, n in sess.workspaces)}
    return Header(f"{label} · {names.get(workspace, workspace)}", workspace, tuple(names.items()))


async def _switchable(request: Request, sess: UiSession) -> list[tuple[str, str, str]]:
    """A person's workspaces (those of the personal context: the runtime's default one and their memberships')."""
    if not sess.principal.is_actor:
        return []
    rt = runtime(request)
    context = await orgs.personal_context(rt.reads, rt.settings, sess.principal)
    return [(w["org_id"], w["workspace_id"], f"{w['org_name']} / {w['name']}") for w in context["workspaces"]]


def login_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/ui/login?next=" + quote(target, safe="")


def gated(fn: Page) -> Callable[[Request], Awaitable[Response]]:
    """A page for logged-in people only (else to the login page); refusals of the engine become pages. Every page
    reads and acts in the session's workspace only (``UiSession.settings``, ``scope.pair``), whichever it is."""

    @functools.wraps(fn)
    async def endpoint(request: Request) -> Response:
        sess = await session.current(request)
        if sess is None:
            return RedirectResponse(login_url(request), status_code=303)
        sess.workspaces = await _switchable(request, sess)
        try:
            return await fn(request, sess)
        except session.Refused as exc:
            return message("Refused", exc.message, exc.status, who=who(sess), csrf=sess.csrf,
                           back=request.url.path)
        except DomainError as exc:
            status = status_of(exc)
            return message(TITLES.get(status, "Not done"), exc.message, status,
                           who=who(sess), csrf=sess.csrf, back="/ui/")

    return endpoint


def safe_next(raw: str | None) -> str:
    """Where to go after login: only a path inside the dashboard."""
    if raw and raw.startswith("/ui/") and not raw.startswith("//") and "\\" not in raw:
        return raw
    return "/ui/"

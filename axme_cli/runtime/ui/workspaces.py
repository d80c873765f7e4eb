"""The header's workspace switcher: a person's dashboard session acts in the workspace they pick among those they
are a member of (``engine.orgs.op_select_ui_workspace``: the rule of POST /v1/portal/personal/workspace-selection,
kept on the dashboard session). A key's session stays in the key's workspace."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from axme_cli.runtime.api.common import runtime
from axme_cli.runtime.engine import orgs
from axme_cli.runtime.ui import session
from axme_cli.runtime.ui.common import gated, safe_next
from axme_cli.runtime.ui.session import UiSession


async def _switch(request: Request, sess: UiSession) -> Response:
    form = await session.checked_form(request, sess)
    if not sess.principal.is_actor:
        raise session.Refused(403, "A key's session acts in the key's own workspace; log in with your email to "
                                   "switch among your workspaces.")
    org_id, _, workspace_id = form.get("workspace", "").partition("/")
    if not org_id or not workspace_id:
        raise session.Refused(422, "Pick a workspace in the selector.")
    rt = runtime(request)
    s, p, ui_session = rt.settings, sess.principal, sess.session_id
    await rt.write(lambda tx: orgs.op_select_ui_workspace(tx, s, p, ui_session, org_id, workspace_id))
    return RedirectResponse(safe_next(form.get("next")), status_code=303)


switch = gated(_switch)

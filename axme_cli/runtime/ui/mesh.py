"""The mesh page: every agent with its health (heartbeats, delivery failures), last heartbeat, metrics and kill
switch, and the latest mesh events; kill and resume each behind a confirmation page. The same reads, scoping and
operations as /v1/mesh (engine/mesh.py): an agent key sees only itself and may not kill (the buttons are not shown,
and a form posted anyway is refused by the engine)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from axme_cli.runtime import scope
from axme_cli.runtime.api.common import runtime
from axme_cli.runtime.engine import mesh as engine
from axme_cli.runtime.errors import NotFound
from axme_cli.runtime.store.base import Row
from axme_cli.runtime.ui import session
from axme_cli.runtime.ui.common import gated, who
from axme_cli.runtime.ui.render import compact, csrf_field, duration, e, page
from axme_cli.runtime.ui.session import UiSession

ACTIONS = {
    "kill": ("Kill this agent?", "Yes, kill it",
             "From now on it gets no deliveries (its feed holds them, its POSTs wait) and may not send (403 "
             "agent_killed), on every replica within a second. What is sent to it waits and goes out when it is "
             "resumed."),
    "resume": ("Resume this agent?", "Yes, resume it",
               "What waited for it is delivered now, and it may send again."),
}


def _badge(health: str) -> str:
    return f'<span class="hl hl-{e(health)}" data-health="{e(health)}">{e(health)}</span>'


def _status(view: dict[str, Any]) -> str:
    if view["killed"]:
        return f'<span class="hl hl-killed" data-status="killed" title="{e(view["killed_at"])}">killed</span>'
    return '<span class="note" data-status="active">active</span>'


def _events(rows: list[Row]) -> str:
    trs = []
    for row in rows:
        ev = engine.event_view(row)
        d = ev["details"]
        what = (f"{e(d.get('previous'))} → {_badge(str(d.get('health')))} {e(d.get('reason'))}"
                if ev["event_type"] == "agent.health_changed" else
                f"by {e(ev['actor'])}" + (f": {e(d['reason'])}" if d.get("reason") else ""))
        trs.append(f'<tr data-event="{e(ev["event_type"])}"><td>{e(ev["created_at"])}</td>'
                   f'<td>{e(ev["event_type"].removeprefix("agent."))}</td><td>{e(ev["address"])}</td>'
                   f"<td>{what}</td></tr>")
    if not trs:
        return '<p class="note">No mesh event yet.</p>'
    return ('<table class="grid events"><thead><tr><th>When (UTC)</th><th>Event</th><th>Agent</th><th>What</th>'
            f'</tr></thead><tbody>{"".join(trs)}</tbody></table>')


async def _mesh(request: Request, sess: UiSession) -> Response:
    p = sess.principal
    rt = runtime(request)
    now = rt.clock.time()
    accounts = await rt.reads.list_service_accounts(sess.settings.org, sess.settings.workspace)
    if not p.is_member:
        accounts = [r for r in accounts if r["address"] == p.address]
    views = await engine.list_agents(rt.reads, sess.settings, accounts, now)
    trs = []
    for v in views:
        action = ""
        if p.is_member:
            act = "resume" if v["killed"] else "kill"
            action = (f'<a class="button{" danger" if act == "kill" else ""}" '
                      f'href="/ui/mesh/{e(v["address_id"])}/{act}">{act.capitalize()}</a>')
        beat = "never" if v["heartbeat_age_seconds"] is None else duration(v["heartbeat_age_seconds"]) + " ago"
        failures = v["delivery_failures"]
        trs.append(
            f'<tr data-address="{e(v["address"])}"><td><b>{e(v["display_name"])}</b><br>'
            f'<span class="note">{e(v["address"])}</span></td>'
            f'<td>{_badge(v["health"])}<br><span class="note">{e(v["health_reason"])}</span></td>'
            f"<td>{_status(v)}</td><td>{e(beat)}</td>"
            f'<td class="num{" fail" if failures["recent"] else ""}">{failures["recent"]}</td>'
            f'<td><code>{e(compact(v["metrics"]) if v["metrics"] else "—")}</code></td><td>{action}</td></tr>')
    counts = {state: sum(1 for v in views if v["health"] == state) for state in
              ("healthy", "degraded", "unhealthy", "unknown")}
    killed = sum(1 for v in views if v["killed"])
    body = ["<h1>Mesh</h1>",
            '<p class="note" id="summary">' + " · ".join(f'{_badge(s)} <span data-count="{s}">{n}</span>'
                                                         for s, n in counts.items())
            + f' · <span class="hl hl-killed">killed</span> <span data-count="killed">{killed}</span></p>',
            '<p class="note">Health: healthy (a heartbeat in the last 90 s, no delivery failure in the last 5 min), '
            "degraded (an older heartbeat, or a few failures), unhealthy (none for 5 min, or 5 failures), unknown (no "
            "heartbeat yet). Agents heartbeat with the SDK's <code>client.mesh.start_heartbeat()</code>.</p>"]
    if trs:
        body.append('<table class="grid mesh"><thead><tr><th>Agent</th><th>Health</th><th>Status</th>'
                    "<th>Last heartbeat</th><th>Failures</th><th>Metrics</th><th></th></tr></thead>"
                    f'<tbody>{"".join(trs)}</tbody></table>')
    else:
        body.append('<p class="note">No agent yet.</p>')
    address = None if p.is_member else p.address
    rows = await rt.reads.mesh_events(engine.scope(sess.settings), address=address, event_type=None, before=None,
                                      limit=20)
    body += ["<h2>Latest events</h2>", _events(rows)]
    return page("Mesh", "\n".join(body), who=who(sess), csrf=sess.csrf, active="mesh")


async def _account(request: Request, sess: UiSession) -> Row:
    sa_id = request.path_params["address_id"]
    rt = runtime(request)
    row = await rt.reads.get_service_account(sa_id)
    if row is None or row["status"] == "deleted" or not scope.owns(sess.settings, row) or (
            not sess.principal.is_member and
                                                     row["address"] != sess.principal.address):
        raise NotFound(f"agent {sa_id} not found", code="agent_not_found")
    return row


def _confirm_page(sess: UiSession, view: dict[str, Any], action: str, *, error: str | None = None,
                  reason: str = "", status: int = 200) -> Response:
    question, button, what = ACTIONS[action]
    err = f'<p class="error" role="alert">{e(error)}</p>' if error else ""
    target = f'/ui/mesh/{e(view["address_id"])}/{action}'
    body = (f'<p class="crumbs"><a href="/ui/mesh">Mesh</a> › {e(view["address"])}</p>'
            f"<h1>{e(question)}</h1><p>{e(view['address'])} {_badge(view['health'])} {_status(view)}</p>"
            f'<p class="note">{e(what)}</p>{err}<form method="post" action="{target}" class="card confirm">'
            f'{csrf_field(sess.csrf)}<label for="reason">Reason (optional)</label>'
            f'<input id="reason" name="reason" maxlength="500" value="{e(reason)}"><div>'
            f'<button type="submit" name="confirm" value="yes" class="{"danger" if action == "kill" else ""}">'
            f'{e(button)}</button> <a href="/ui/mesh">No, go back</a></div></form>')
    return page(question, body, who=who(sess), csrf=sess.csrf, active="mesh", status=status)


async def _action(request: Request, sess: UiSession) -> Response:
    action = request.path_params["action"]
    if action not in ACTIONS:
        raise NotFound(f"no action {action!r}; use kill or resume")
    engine.may_switch(sess.principal)  # an agent key: refused before anything is shown
    rt = runtime(request)
    sa = await _account(request, sess)
    row = await rt.reads.mesh_agent_row(engine.scope(sess.settings), sa["address"])
    view = engine.agent_view(sa, row, rt.clock.time())
    if request.method == "GET":
        return _confirm_page(sess, view, action)
    form = await session.checked_form(request, sess)
    reason = form.get("reason", "").strip()[:500]
    if form.get("confirm") != "yes":
        return _confirm_page(sess, view, action, reason=reason, status=400,
                             error="Not done: confirm with the button below.")
    op = engine.op_kill if action == "kill" else engine.op_resume
    s, p, now, address = sess.settings, sess.principal, rt.clock.time(), sa["address"]
    await rt.write(lambda tx: op(tx, s, p, address, reason or None, now))
    return RedirectResponse("/ui/mesh", status_code=303)


mesh_page = gated(_mesh)
action_page = gated(_action)

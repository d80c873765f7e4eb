"""The scenarios page (workflow runs and each one's step graph) and the agents page."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from axme_cli.protocol import lifecycle as lc
from axme_cli.protocol.addresses import SCHEME
from axme_cli.protocol.tasks import HUMAN_TARGET
from axme_cli.runtime import scope
from axme_cli.runtime.api.common import runtime
from axme_cli.runtime.errors import NotFound
from axme_cli.runtime.store.ui_sql import IN_FLIGHT
from axme_cli.runtime.ui import graphs
from axme_cli.runtime.ui.common import gated, who
from axme_cli.runtime.ui.render import ago, e, page, short_address, status_badge
from axme_cli.runtime.ui.session import UiSession

# An agent that reconnects its feed stream (every wait_seconds) counts as connected in between.
RECONNECT_GRACE_SECONDS = 5.0


async def _scenarios(request: Request, sess: UiSession) -> Response:
    p, rt = sess.principal, runtime(request)
    rows = await rt.reads.ui_workflows(None if p.is_member else p.address, 200, scope.pair(sess.settings))
    now = rt.clock.time()
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[r["scenario_id"]].append(r)
    body = ["<h1>Scenarios</h1>"]
    if not rows:
        body.append('<p class="note">No scenario has run yet: `axme examples run order-saga` starts one.</p>')
    for scenario_id, runs in groups.items():
        compiled = orjson.loads(runs[0]["compiled"])
        by_status: dict[str, int] = defaultdict(int)
        for r in runs:
            by_status[r["status"]] += 1
        summary = ", ".join(f"{n} {s.lower()}" for s, n in sorted(by_status.items()))
        chain = " → ".join(st["step_id"] for st in compiled["steps"])
        trs = "".join(
            f'<tr><td><a href="/ui/scenarios/{e(r["workflow_id"])}">graph</a></td>'
            f'<td><a class="id" href="/ui/intents/{e(r["parent_intent_id"])}">{e(r["parent_intent_id"])}</a></td>'
            f'<td>{status_badge(r["status"])}</td><td>{e(orjson.loads(r["state"]).get("phase"))}</td>'
            f'<td title="{e(r["created_at"])}">{e(ago(r["created_at"], now))}</td></tr>' for r in runs[:20])
        body.append(
            f'<section class="card scenario"><h2><a href="/ui/scenarios/{e(runs[0]["workflow_id"])}">'
            f'{e(scenario_id)}</a></h2><p>{e(compiled.get("title") or "")}</p>'
            f'<p class="note">{len(runs)} runs: {e(summary)} · steps: {e(chain)}</p>'
            '<table class="grid"><thead><tr><th></th><th>Run (parent intent)</th><th>Status</th><th>Phase</th>'
            f"<th>Started</th></tr></thead><tbody>{trs}</tbody></table></section>")
    return page("Scenarios", "\n".join(body), who=who(sess), csrf=sess.csrf, active="scenarios")


async def _scenario(request: Request, sess: UiSession) -> Response:
    rt = runtime(request)
    workflow_id = request.path_params["workflow_id"]
    wf = await rt.reads.get_workflow(workflow_id)
    parent = await rt.reads.get_intent(wf["parent_intent_id"]) if wf is not None else None
    if wf is None or parent is None or not sess.principal.may_see(parent):
        raise NotFound(f"workflow {workflow_id} not found", code="workflow_not_found")
    compiled, state = orjson.loads(wf["compiled"]), orjson.loads(wf["state"])
    roles = "".join(f'<li><b>{e(role)}</b>: {e(r.get("address") or r.get("contact") or "")} '
                    f'<span class="note">{e(r.get("kind"))}</span></li>'
                    for role, r in (compiled.get("roles") or {}).items())
    body = (f'<p class="crumbs"><a href="/ui/scenarios">Scenarios</a> ›</p><h1>{e(compiled.get("scenario_id"))}</h1>'
            f'<p>{e(compiled.get("title") or "")}</p><p>This run: <a class="id" href="/ui/intents/'
            f'{e(wf["parent_intent_id"])}">{e(wf["parent_intent_id"])}</a> {status_badge(parent["status"])} · phase '
            f'{e(state.get("phase"))}</p><div class="legend"><span class="k ok">on_success</span>'
            '<span class="k fail">on_failure</span><span class="k undo">compensation</span></div>'
            f'{graphs.step_graph_svg(compiled, state)}<h2>Steps</h2>{graphs.step_list(compiled)}'
            f"<h2>Roles</h2><ul>{roles}</ul>")
    return page(f"Scenario {compiled.get('scenario_id')}", body, who=who(sess), csrf=sess.csrf,
                active="scenarios")


async def _agents(request: Request, sess: UiSession) -> Response:
    rt = runtime(request)
    p = sess.principal
    ws = sess.settings
    accounts = {sa["address"]: sa for sa in await rt.reads.list_service_accounts(ws.org, ws.workspace)}
    mine = f"{SCHEME}{ws.org}/{ws.workspace}/"
    stats: dict[str, dict[str, Any]] = defaultdict(lambda: {"in_flight": 0, "waiting": 0, "completed": 0,
                                                            "failed": 0, "redelivered": 0, "last_at": ""})
    for r in await rt.reads.agent_intent_stats(scope.pair(ws)):
        if not str(r["address"]).startswith(mine):  # another workspace's agent
            continue
        st = stats[r["address"]]
        n = int(r["n"])
        if r["status"] in IN_FLIGHT:
            st["in_flight"] += n
        elif r["status"] == lc.WAITING:
            st["waiting"] += n
        elif r["status"] == lc.COMPLETED:
            st["completed"] += n
        elif r["status"] in (lc.FAILED, lc.TIMED_OUT):
            st["failed"] += n
        st["redelivered"] += int(r["redelivered"] or 0)
        st["last_at"] = max(st["last_at"], r["last_at"] or "")
    addresses = list(accounts) + sorted(a for a in stats if a not in accounts and a != HUMAN_TARGET)
    if not p.is_member:
        addresses = [a for a in addresses if a == p.address]
    hub, now = rt.hub, rt.clock.time()
    trs = []
    for address in addresses:
        sa = accounts.get(address) or {}
        st = stats[address]
        mode = sa.get("delivery_mode") or ("stream" if sa else "")
        seen = hub.feed_seen.get(address)
        if mode == "http":
            conn = '<span class="conn na">http push</span>'
        elif hub.feed_listeners.get(address, 0) > 0 or (seen is not None and now - seen < RECONNECT_GRACE_SECONDS):
            conn = '<span class="conn on">connected</span>'
        else:
            conn = '<span class="conn off">not connected</span>'
        last_seen = "now" if hub.feed_listeners.get(address, 0) > 0 else (
            f"{now - seen:.0f} s ago" if seen is not None else "—")
        name = sa.get("display_name") or sa.get("name") or short_address(address)
        if not sa:
            mode = ""
            name += " (no service account)"
        trs.append(
            f'<tr data-address="{e(address)}"><td><b>{e(name)}</b><br><span class="note">{e(address)}</span></td>'
            f"<td>{conn}</td><td>{e(last_seen)}</td><td>{e(mode or '—')}</td>"
            f'<td class="num">{st["in_flight"]}</td><td class="num">{st["waiting"]}</td>'
            f'<td class="num">{st["completed"]}</td>'
            f'<td class="num{" fail" if st["failed"] else ""}">{st["failed"]}</td>'
            f'<td class="num">{st["redelivered"]}</td>'
            f'<td title="{e(st["last_at"])}">{e(ago(st["last_at"] or None, now))}</td>'
            f'<td><a href="/ui/intents?agent={e(address)}">intents</a></td></tr>')
    body = ["<h1>Agents</h1>",
            '<p class="note">Connected: an open delivery stream to this runtime process now (or a few seconds ago, '
            "between reconnects); last seen: when it last had one (— : not since this runtime started). Counts are "
            "intents addressed to the agent.</p>"]
    if trs:
        body.append('<table class="grid agents"><thead><tr><th>Agent</th><th>Connection</th><th>Last seen</th>'
                    '<th>Delivery</th><th>In flight</th><th>Waiting</th><th>Completed</th><th>Failed</th>'
                    f'<th>Redelivered</th><th>Last activity</th><th></th></tr></thead><tbody>{"".join(trs)}</tbody>'
                    "</table>")
    else:
        body.append('<p class="note">No agent yet.</p>')
    return page("Agents", "\n".join(body), who=who(sess), csrf=sess.csrf, active="agents")


scenarios_page = gated(_scenarios)
scenario_page = gated(_scenario)
agents_page = gated(_agents)

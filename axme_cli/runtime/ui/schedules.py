"""The schedules page: each schedule, what it runs and when, its next and last run and its counters (the same
rows and scoping as GET /v1/schedules: people and the workspace key; agent keys are refused)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from axme_cli.runtime import scope
from axme_cli.runtime.api.common import runtime
from axme_cli.runtime.engine import schedules as engine
from axme_cli.runtime.ui.common import gated, who
from axme_cli.runtime.ui.render import ago, e, message, page
from axme_cli.runtime.ui.session import UiSession

LIMIT = 200


async def _schedules(request: Request, sess: UiSession) -> Response:
    p = sess.principal
    if not p.is_member:
        return message("Schedules are workspace configuration", "An agent key may not see them (as GET "
                       "/v1/schedules says).", 403, who=who(sess), csrf=sess.csrf)
    rt = runtime(request)
    rows = await rt.reads.list_schedules(*scope.pair(sess.settings), before=None, limit=LIMIT)
    now = rt.clock.time()
    body = ["<h1>Schedules</h1>"]
    if not rows:
        body.append('<p class="note">No schedule yet: `axme schedules create --cron "0 2 * * *" --scenario '
                    "FILE` makes one.</p>")
    trs = []
    for r in rows:
        s = engine.schedule_view(r)
        what = f"scenario {s['scenario_id']}" if s["kind"] == "scenario" else f"{s['intent_type']} → {s['to_agent']}"
        last = "—"
        if s["last_intent_id"]:
            last = (f'<a class="id" href="/ui/intents/{e(s["last_intent_id"])}">{e(s["last_intent_id"])}</a> '
                    f'<span class="note" title="{e(s["last_fire_at"])}">{e(ago(s["last_fire_at"], now))}</span>')
        outcome = e(s["last_outcome"] or "—")
        if s["last_error"]:
            outcome += f'<br><span class="error">{e(s["last_error"])}</span>'
        trs.append(
            f'<tr data-schedule="{e(s["schedule_id"])}"><td><span class="id">{e(s["schedule_id"])}</span>'
            f'<br><span class="note">{e(s["description"] or "")}</span></td>'
            f"<td><code>{e(s['cron'])}</code><br><span class=\"note\">{e(s['timezone'])}</span></td>"
            f"<td>{e(what)}</td><td>{e(s['status'])}</td><td>{e(s['next_fire_at'] or '—')}</td>"
            f"<td>{last}</td><td>{outcome}</td>"
            f'<td class="num">{s["runs"]}</td><td class="num">{s["skipped_overlap"] + s["skipped_missed"]}</td>'
            f'<td class="num{" fail" if s["failures"] else ""}">{s["failures"]}</td>'
            f"<td>missed: {e(s['missed_run_policy'])}<br>overlap: {e(s['overlap_policy'])}</td></tr>")
    if trs:
        body.append('<table class="grid schedules"><thead><tr><th>Schedule</th><th>When</th><th>Runs</th>'
                    "<th>State</th><th>Next run (UTC)</th><th>Last run</th><th>Last outcome</th><th>Runs</th>"
                    f'<th>Skipped</th><th>Failed</th><th>Policies</th></tr></thead><tbody>{"".join(trs)}</tbody>'
                    "</table>")
        if len(rows) == LIMIT:
            body.append(f'<p class="note">The {LIMIT} newest; `axme schedules list` pages through all.</p>')
    return page("Schedules", "\n".join(body), who=who(sess), csrf=sess.csrf, active="schedules")


schedules_page = gated(_schedules)

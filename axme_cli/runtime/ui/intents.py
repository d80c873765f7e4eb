"""The intents list, one intent's page (live timeline, step waterfall, who holds it), and its actions."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from axme_cli.protocol import lifecycle as lc
from axme_cli.protocol.models import HumanTaskSpec, create_request_adapter, describe_validation_error
from axme_cli.runtime import scope
from axme_cli.runtime.api import intents as intents_api
from axme_cli.runtime.api.common import runtime, write_answer
from axme_cli.runtime.clock import iso
from axme_cli.runtime.engine import intents as engine
from axme_cli.runtime.engine.views import pending_with
from axme_cli.runtime.engine.workflows import workflow_view
from axme_cli.runtime.errors import Conflict, Unprocessable
from axme_cli.runtime.store.base import Row
from axme_cli.runtime.ui import graphs, session
from axme_cli.runtime.ui.common import gated, who
from axme_cli.runtime.ui.render import (
    ago,
    compact,
    csrf_field,
    e,
    is_terminal,
    page,
    pretty,
    short_address,
    status_badge,
)
from axme_cli.runtime.ui.session import UiSession

PAGE_SIZE = 50
AGES = {"5m": ("created in the last 5 minutes", 300, True), "1h": ("in the last hour", 3600, True),
        "24h": ("in the last day", 86400, True), "7d": ("in the last week", 7 * 86400, True),
        "gt1h": ("older than an hour", 3600, False), "gt24h": ("older than a day", 86400, False)}
COUNTED = ("SUBMITTED", "DELIVERED", "IN_PROGRESS", "WAITING", "COMPLETED", "FAILED", "CANCELED", "TIMED_OUT")
RETRYABLE = (lc.FAILED, lc.CANCELED, lc.TIMED_OUT)


# ---------------------------------------------------------------------------------------------
# the list


def counts_bar(counts: dict[str, int]) -> str:
    items = [f'<a class="count" href="/ui/intents"><span class="n" data-count="total">{sum(counts.values())}</span>'
             " all</a>"]
    for status in COUNTED:
        items.append(f'<a class="count st-{status}" href="/ui/intents?status={status}">'
                     f'<span class="n" data-count="{status}">{counts.get(status, 0)}</span> {status.lower()}</a>')
    return f'<div id="counts" class="counts" aria-live="polite">{"".join(items)}</div>'


def _filters(q: dict[str, str]) -> str:
    opts = [("", "any status"), ("open", "not finished")] + [(s, s) for s in lc.STATUSES]
    status = "".join(f'<option value="{e(v)}"{" selected" if q.get("status") == v else ""}>{e(label)}</option>'
                     for v, label in opts)
    ages = [("", "any age")] + [(k, v[0]) for k, v in AGES.items()]
    age = "".join(f'<option value="{e(v)}"{" selected" if q.get("age") == v else ""}>{e(label)}</option>'
                  for v, label in ages)
    return (
        '<form method="get" action="/ui/intents" class="filters">'
        f'<label>Status <select name="status">{status}</select></label>'
        f'<label>Type <input name="type" value="{e(q.get("type", ""))}" placeholder="order.place.v1"></label>'
        f'<label>Agent <input name="agent" value="{e(q.get("agent", ""))}" placeholder="inventory"></label>'
        f'<label>Age <select name="age">{age}</select></label>'
        f'<label>Id <input name="q" value="{e(q.get("q", ""))}" placeholder="intent id or its start"></label>'
        '<button type="submit">Filter</button> <a href="/ui/intents">clear</a></form>'
    )


async def _intents(request: Request, sess: UiSession) -> Response:
    rt = runtime(request)
    p = sess.principal
    own = None if p.is_member else p.address
    workspace = scope.pair(sess.settings)
    q = {k: v.strip() for k, v in request.query_params.items()}
    problems: list[str] = []
    statuses: list[str] | None = None
    raw_status = q.get("status", "").upper()
    if raw_status == "OPEN":
        statuses = sorted(lc.ACTIVE)
    elif raw_status in lc.STATUSES:
        statuses = [raw_status]
    elif raw_status:
        problems.append(f"unknown status {raw_status!r}")
    agent = None
    if q.get("agent"):
        try:
            agent = intents_api.resolve_target(sess.settings, q["agent"], "agent")
        except Unprocessable as exc:
            problems.append(exc.message)
    created_after = created_before = None
    if q.get("age") in AGES:
        _, seconds, newer = AGES[q["age"]]
        if newer:
            created_after = iso(rt.clock.time() - seconds)
        else:
            created_before = iso(rt.clock.time() - seconds)
    search = q.get("q", "").lower()
    if len(search) == 36:
        row = await rt.reads.get_intent(search)
        if row is not None and p.may_see(row):
            return RedirectResponse(f"/ui/intents/{search}", status_code=303)
    if search and not all(c in "0123456789abcdef-" for c in search):
        problems.append("an intent id has only 0-9, a-f and dashes")
        search = ""
    rows: list[Row] = []
    if not problems:
        rows = await rt.reads.list_intents(statuses=statuses, intent_type=q.get("type") or None, agent=agent,
                                           scope=own, created_after=created_after, created_before=created_before,
                                           id_prefix=search or None, before=q.get("before") or None,
                                           limit=PAGE_SIZE, workspace=workspace)
    counts = await rt.reads.intent_counts(own, workspace)
    now = rt.clock.time()
    body = [f"<h1>Intents</h1>{counts_bar(counts)}{_filters(q)}"]
    for problem in problems:
        body.append(f'<p class="error" role="alert">{e(problem)}</p>')
    if not p.is_member:
        body.append(f'<p class="note">Showing the intents to or from {e(p.address)} (this key\'s own).</p>')
    trs = []
    for r in rows:
        doc = orjson.loads(r["doc"])
        holder = pending_with(r, doc)
        trs.append(
            f'<tr><td><a class="id" href="/ui/intents/{e(r["intent_id"])}">{e(r["intent_id"])}</a></td>'
            f'<td>{e(r["intent_type"])}</td><td>{status_badge(r["status"], r["waiting_reason"])}</td>'
            f'<td title="{e(r["from_agent"])}">{e(short_address(r["from_agent"]))}</td>'
            f'<td title="{e(r["to_agent"])}">{e(short_address(r["to_agent"]))}</td>'
            f'<td>{e((holder or {}).get("name") and short_address(str((holder or {}).get("name"))))}</td>'
            f'<td title="{e(r["created_at"])}">{e(ago(r["created_at"], now))}</td>'
            f'<td title="{e(r["updated_at"])}">{e(ago(r["updated_at"], now))}</td></tr>')
    if trs:
        body.append('<table class="grid intents"><thead><tr><th>Intent</th><th>Type</th><th>Status</th><th>From</th>'
                    '<th>To</th><th>Held by</th><th>Created</th><th>Changed</th></tr></thead>'
                    f'<tbody>{"".join(trs)}</tbody></table>')
    elif not problems:
        body.append('<p class="note">No intent matches.</p>')
    if len(rows) == PAGE_SIZE:
        more = {k: v for k, v in q.items() if v and k != "before"}
        more["before"] = rows[-1]["intent_id"]
        body.append(f'<p><a href="/ui/intents?{e(urlencode(more))}">Older →</a></p>')
    return page("Intents", "\n".join(body), who=who(sess), csrf=sess.csrf, active="intents", data={"page": "intents"})


intents_page = gated(_intents)


# ---------------------------------------------------------------------------------------------
# one intent


WHY = {
    "WAITING_FOR_HUMAN": "a person must answer its task",
    "WAITING_FOR_AGENT": "an agent is working on a step",
    "WAITING_FOR_TIME": "a timer: a delay step or a retry waits for its time",
    "WAITING_FOR_TOOL": "a tool is working on it",
}
STATUS_WHY = {
    "CREATED": "not submitted yet",
    "SUBMITTED": "queued on the agent's feed, not picked up yet (is the agent connected?)",
    "DELIVERED": "handed to the agent, which has not started it yet",
    "ACKNOWLEDGED": "the agent acknowledged it",
    "IN_PROGRESS": "the agent is working on it",
}


async def _context(request: Request, sess: UiSession, intent_id: str) -> dict[str, Any]:
    rt = runtime(request)
    row = await intents_api._visible(request, sess.principal, intent_id)
    doc = orjson.loads(row["doc"])
    events = [orjson.loads(x) for x in await rt.reads.list_events(intent_id, 0, 10_000)]
    wf = None
    if doc.get("workflow_parent"):
        wrow = await rt.reads.get_workflow(doc["workflow_id"])
        wf = workflow_view(wrow) if wrow is not None else None
    return {"row": row, "doc": doc, "view": engine.intent_view(row), "events": events, "workflow": wf,
            "now": rt.clock.time()}


def _header(ctx: dict[str, Any]) -> str:
    v = ctx["view"]
    facts = [("Type", v["intent_type"]), ("From", v["from_agent"]), ("To", v["to_agent"]),
             ("Created", f'{v["created_at"]} ({ago(v["created_at"], ctx["now"])})'), ("Changed", v["updated_at"]),
             ("Correlation", v["correlation_id"]), ("Deadline", v.get("deadline_at")),
             ("Delivery attempt", f'{v["delivery_attempt"]} of {v.get("max_delivery_attempts")}'
              if v.get("delivery_attempt") else None),
             ("Events", v.get("seq"))]
    doc = ctx["doc"]
    if doc.get("workflow_id") and not doc.get("workflow_parent"):
        facts.append(("Workflow step", f'{doc.get("step_id")} (attempt {doc.get("step_attempt")})'
                                       + (" · compensation" if doc.get("compensation") else "")))
    dl = "".join(f"<dt>{e(k)}</dt><dd>{e(val)}</dd>" for k, val in facts if val not in (None, ""))
    parent = ""
    if doc.get("parent_intent_id"):
        parent = f'<p>Part of workflow <a href="/ui/intents/{e(doc["parent_intent_id"])}">' \
                 f'{e(doc["parent_intent_id"])}</a></p>'
    return (f'<h1><span class="id">{e(v["intent_id"])}</span> {status_badge(v["status"], v.get("waiting_reason"))}'
            f'</h1><dl class="facts">{dl}</dl>{parent}')


def _holder(ctx: dict[str, Any]) -> str:
    v = ctx["view"]
    status = v["status"]
    if is_terminal(status):
        return f'<p class="note">Finished: {e(status)}. Nobody holds it.</p>'
    holder = v.get("pending_with") or {}
    reason = v.get("waiting_reason")
    why = WHY.get(str(reason), str(reason)) if status == "WAITING" else STATUS_WHY.get(status, "")
    step = ""
    last = ctx["events"][-1] if ctx["events"] else {}
    if (last.get("details") or {}).get("step_id"):
        step = f' (step {e(last["details"]["step_id"])})'
    return (f'<dl class="facts"><dt>Held by</dt><dd><b>{e(holder.get("name") or holder.get("ref"))}</b> '
            f'<span class="note">{e(holder.get("type"))}</span></dd>'
            f"<dt>Why it waits</dt><dd>{e(why)}{step}</dd></dl>")


def _actions(ctx: dict[str, Any]) -> str:
    v, doc = ctx["view"], ctx["doc"]
    status = v["status"]
    base = f'/ui/intents/{e(v["intent_id"])}'
    links = []
    if not is_terminal(status):
        links.append(f'<a class="button danger" href="{base}/cancel">Cancel…</a>')
        if not doc.get("workflow_parent") and v.get("waiting_reason") != "WAITING_FOR_HUMAN":
            links.append(f'<a class="button" href="{base}/resume">Resume…</a>')
    elif status in RETRYABLE and not doc.get("workflow_parent"):
        links.append(f'<a class="button" href="{base}/retry">Retry…</a>')
    if v.get("waiting_reason") == "WAITING_FOR_HUMAN" and not is_terminal(status):
        links.append('<a class="button" href="/ui/tasks">Answer on the tasks page</a>')
    if not links:
        return ""
    return f'<div class="actions">{"".join(links)}</div>'


def _workflow(ctx: dict[str, Any]) -> str:
    wf = ctx["workflow"]
    if not wf:
        return ""
    bars = graphs.waterfall_bars(wf, ctx["events"], ctx["view"]["status"])
    failure = wf.get("failure") or {}
    summary = [f'Scenario <a href="/ui/scenarios/{e(wf["workflow_id"])}">{e(wf["scenario_id"])}</a>',
               f"phase {e(wf['phase'])}"]
    if failure:
        summary.append(f'failed at {e(failure.get("failed_step"))} ({e(failure.get("reason"))})')
    if wf.get("compensated"):
        summary.append("compensated: " + e(", ".join(wf["compensated"])))
    if wf.get("compensation_failed"):
        summary.append("compensation failed: " + e(", ".join(wf["compensation_failed"])))
    return (f'<h2>Steps</h2><p>{" · ".join(summary)}</p>{graphs.waterfall_svg(bars, ctx["now"])}'
            f"{graphs.waterfall_table(bars, ctx['now'])}")


def _data(ctx: dict[str, Any]) -> str:
    v = ctx["view"]
    parts = ["<h2>Payload</h2>", pretty(v.get("payload"))]
    if v.get("human_task"):
        parts += ["<h2>Task</h2>", pretty(v["human_task"])]
    if "result" in v:
        parts += ["<h2>Result</h2>", pretty(v["result"])]
    if "error" in v:
        parts += ["<h2>Error</h2>", pretty(v["error"])]
    return "".join(parts)


def _parts(ctx: dict[str, Any]) -> dict[str, str]:
    return {"header": _header(ctx), "holder": _holder(ctx), "actions": _actions(ctx), "workflow": _workflow(ctx),
            "data": _data(ctx)}


def event_row(ev: dict[str, Any]) -> str:
    holder = (ev.get("pending_with") or {}).get("name")
    return (f'<tr data-seq="{e(ev.get("seq"))}" data-event="{e(ev.get("event_type"))}"><td>{e(ev.get("seq"))}</td>'
            f'<td title="{e(ev.get("at"))}">{e(str(ev.get("at") or "")[11:23])}</td>'
            f'<td class="ev">{e(ev.get("event_type"))}</td><td>{status_badge(ev.get("status"))}</td>'
            f'<td>{e(ev.get("waiting_reason") or "")}</td><td title="{e(ev.get("actor"))}">'
            f'{e(short_address(ev.get("actor")))}</td><td>{e(short_address(holder))}</td>'
            f'<td class="details">{e(compact(ev.get("details") or {}))}</td></tr>')


async def _intent(request: Request, sess: UiSession) -> Response:
    intent_id = request.path_params["intent_id"]
    ctx = await _context(request, sess, intent_id)
    parts = _parts(ctx)
    v = ctx["view"]
    sections = "".join(f'<section id="part-{name}">{html}</section>' for name, html in parts.items())
    rows = "".join(event_row(ev) for ev in ctx["events"])
    body = (f'<p class="crumbs"><a href="/ui/intents">Intents</a> ›</p>{sections}'
            '<h2>Timeline <span class="live" id="live-state">live</span></h2>'
            '<table class="grid timeline" id="timeline"><thead><tr><th>#</th><th>At (UTC)</th><th>Event</th>'
            '<th>Status</th><th>Waiting</th><th>Actor</th><th>Held by</th><th>Details</th></tr></thead>'
            f"<tbody>{rows}</tbody></table>")
    data = {"page": "intent", "intent": v["intent_id"], "since": str(v.get("seq", 0)),
            "terminal": "1" if is_terminal(v["status"]) else "0"}
    return page(f"Intent {intent_id}", body, who=who(sess), csrf=sess.csrf, active="intents", data=data)


intent_page = gated(_intent)


async def _intent_parts(request: Request, sess: UiSession) -> Response:
    """The parts of the intent page that change, re-rendered (the page's script swaps them in after events)."""
    ctx = await _context(request, sess, request.path_params["intent_id"])
    return JSONResponse({"status": ctx["view"]["status"], "parts": _parts(ctx)},
                        headers={"Cache-Control": "no-store"})


intent_parts = gated(_intent_parts)


# ---------------------------------------------------------------------------------------------
# cancel / retry / resume, each behind a confirmation page


ACTIONS = {
    "cancel": ("Cancel this intent?", "Yes, cancel it"),
    "retry": ("Send this intent again?", "Yes, send it again"),
    "resume": ("Resume this intent?", "Yes, resume it"),
}


def _confirm_page(sess: UiSession, ctx: dict[str, Any], action: str, *, error: str | None = None,
                  form: dict[str, str] | None = None, status: int = 200) -> Response:
    v = ctx["view"]
    form = form or {}
    question, button = ACTIONS[action]
    fields = ""
    if action == "cancel":
        fields = ('<label for="reason">Reason</label><input id="reason" name="reason" '
                  f'value="{e(form.get("reason", "canceled from the dashboard"))}">')
    elif action == "resume":
        chosen = form.get("action", "complete")
        opts = "".join(f'<option value="{a}"{" selected" if a == chosen else ""}>{a}</option>'
                       for a in ("complete", "fail", "in_progress"))
        fields = (f'<label for="action">Action</label><select id="action" name="action">{opts}</select>'
                  '<label for="data">Result fields (a JSON object, optional)</label>'
                  f'<textarea id="data" name="data" rows="4">{e(form.get("data", ""))}</textarea>')
    elif action == "retry":
        fields = ('<p class="note">A new intent with the same type, target and payload is sent; this one stays '
                  f'{e(v["status"])}.</p>')
    err = f'<p class="error" role="alert">{e(error)}</p>' if error else ""
    back = f'/ui/intents/{e(v["intent_id"])}'
    body = (f'<p class="crumbs"><a href="/ui/intents">Intents</a> › <a href="{back}">{e(v["intent_id"])}</a></p>'
            f'<h1>{e(question)}</h1><p>{e(v["intent_type"])} {status_badge(v["status"], v.get("waiting_reason"))}'
            f' to {e(v["to_agent"])}</p>{err}<form method="post" action="{back}/{action}" class="card confirm">'
            f'{csrf_field(sess.csrf)}{fields}<div><button type="submit" name="confirm" value="yes" '
            f'class="{"danger" if action == "cancel" else ""}">{e(button)}</button> <a href="{back}">No, go back</a>'
            "</div></form>")
    return page(question, body, who=who(sess), csrf=sess.csrf, active="intents", status=status)


async def _action(request: Request, sess: UiSession) -> Response:
    intent_id, action = request.path_params["intent_id"], request.path_params["action"]
    if action not in ACTIONS:
        from axme_cli.runtime.errors import NotFound

        raise NotFound(f"no action {action!r}; use cancel, retry or resume")
    ctx = await _context(request, sess, intent_id)
    if request.method == "GET":
        return _confirm_page(sess, ctx, action)
    form = await session.checked_form(request, sess)
    if form.get("confirm") != "yes":
        return _confirm_page(sess, ctx, action, form=form, status=400,
                             error="Not done: confirm with the button below.")
    rt = runtime(request)
    s, p, now = sess.settings, sess.principal, rt.clock.time()
    target = intent_id
    if action == "cancel":
        req = {"status": lc.CANCELED, "reason": form.get("reason", "").strip() or "canceled from the dashboard"}
        await rt.write(lambda tx: engine.op_resolve(tx, s, p, intent_id, req, now))
    elif action == "resume":
        try:
            extra = orjson.loads(form.get("data") or "{}")
        except orjson.JSONDecodeError as exc:
            return _confirm_page(sess, ctx, action, form=form, status=422, error=f"Result fields: not JSON ({exc})")
        if not isinstance(extra, dict):
            return _confirm_page(sess, ctx, action, form=form, status=422, error="Result fields: use a JSON object")
        body = {**extra, "action": form.get("action") or "complete"}
        try:
            await write_answer(rt, lambda tx: engine.op_resume(tx, s, p, intent_id, body, now))
        except Unprocessable as exc:
            return _confirm_page(sess, ctx, action, form=form, status=422, error=exc.message)
    else:
        target = await _retry(rt, sess, ctx, now)
    return RedirectResponse(f"/ui/intents/{target}", status_code=303)


async def _retry(rt: Any, sess: UiSession, ctx: dict[str, Any], now: float) -> str:
    """The same as `axme intents retry`: a new intent with the old one's type, target and payload."""
    v = ctx["view"]
    if v["status"] not in RETRYABLE or ctx["doc"].get("workflow_parent"):
        raise Conflict(f"intent {v['intent_id']} is {v['status']}; only FAILED, CANCELED or TIMED_OUT intents (not "
                       "workflow runs) can be sent again", code="invalid_transition")
    body: dict[str, Any] = {"intent_type": v["intent_type"], "to_agent": v["to_agent"], "payload": v["payload"],
                            "correlation_id": str(uuid.uuid4())}
    for key in ("reply_to", "max_delivery_attempts"):
        if v.get(key) is not None:
            body[key] = v[key]
    if v.get("human_task"):
        body["human_task"] = {k: val for k, val in v["human_task"].items() if k in HumanTaskSpec.model_fields}
    try:
        model = create_request_adapter.validate_python(body)
    except ValidationError as exc:
        message, _ = describe_validation_error(exc)
        raise Unprocessable(message) from None
    s, p = sess.settings, sess.principal
    req = intents_api.create_request(s, p, model)
    created = await rt.write(lambda tx: engine.op_create(tx, s, p, req, now))
    return str(created["intent_id"])


action_page = gated(_action)

"""Open human tasks (the same list as GET /v1/me/tasks), answered in place through the same engine operation as
POST /v1/intents/{id}/resume, so the same rules (``protocol.tasks.answer_problem``) accept or refuse an answer."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from axme_cli.protocol.task_forms import form_fields
from axme_cli.protocol.tasks import is_rejection, with_defaults
from axme_cli.runtime import scope
from axme_cli.runtime.api.common import runtime, write_answer
from axme_cli.runtime.api.task_pages import _input, answer_from_form
from axme_cli.runtime.api.tasks import task_entry
from axme_cli.runtime.engine import intents as engine
from axme_cli.runtime.errors import Unprocessable
from axme_cli.runtime.ui import session
from axme_cli.runtime.ui.common import gated, who
from axme_cli.runtime.ui.render import ago, csrf_field, e, message, page, pretty
from axme_cli.runtime.ui.session import UiSession


def task_form(task_row: dict[str, Any], csrf: str, now: float, *, values: dict[str, str] | None = None,
              error: str | None = None) -> str:
    task = with_defaults(task_row["human_task"] or {})
    values = values or {}
    intent_id = task_row["intent_id"]
    title = str(task.get("title") or task_row["intent_type"])
    facts = [("Task type", task.get("task_type")), ("Intent", intent_id), ("From", task_row["from_agent"]),
             ("Waiting since", f'{task_row["assigned_at"]} ({ago(task_row["assigned_at"], now)})'),
             ("Due", task_row.get("due_at")), ("Assignees", ", ".join(task.get("assignees") or []))]
    parts = [f'<article class="card task" id="task-{e(intent_id)}" data-intent="{e(intent_id)}">',
             f'<h2><a href="/ui/intents/{e(intent_id)}">{e(title)}</a></h2>']
    if task.get("description"):
        parts.append(f"<p>{e(task['description'])}</p>")
    parts.append('<dl class="facts">' + "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in facts if v) + "</dl>")
    if task_row.get("payload") is not None:
        parts.append(f"<details><summary>Details</summary>{pretty(task_row['payload'])}</details>")
    if error:
        parts.append(f'<p class="error" role="alert">{e(error)}</p>')
    form = [f'<form method="post" action="/ui/tasks/{e(intent_id)}">{csrf_field(csrf)}']
    for field in form_fields(task):
        hint = f' <span class="hint">{e(field.hint)}</span>' if field.hint else ""
        mark = " (required)" if field.required else ""
        ident = f"{intent_id}-field-{field.name}"  # ids unique on a page with many tasks
        form.append(f'<label for="{e(ident)}">{e(field.label)}{mark}{hint}</label>')
        form.append(_input(field, values.get("f." + field.name, "")).replace(
            f'id="{e("field-" + field.name)}"', f'id="{e(ident)}"', 1))
    mark = " (required)" if task.get("required_comment") else ""
    no = ' class="no"'
    form.append(f'<label for="comment-{e(intent_id)}">Comment{mark}</label>')
    form.append(f'<textarea id="comment-{e(intent_id)}" name="comment" rows="2">{e(values.get("comment", ""))}'
                "</textarea>")
    buttons = "".join(f'<button type="submit" name="outcome" value="{e(o)}"{no if is_rejection(str(o)) else ""}>'
                      f'{e(str(o).replace("_", " "))}</button>' for o in task.get("allowed_outcomes") or [])
    form.append(f'<div class="outcomes">{buttons}</div></form>')
    parts.append("".join(form))
    parts.append("</article>")
    return "".join(parts)


async def _open_tasks(request: Request, sess: UiSession) -> list[dict[str, Any]]:
    rows = await runtime(request).reads.list_intents(statuses=["WAITING"], agent=None, limit=500,
                                                     workspace=scope.pair(sess.settings))
    out = []
    for r in rows:
        entry = task_entry(r, sess.principal)
        if entry is not None:
            entry["payload"] = engine.loads(r["payload"])
            out.append(entry)
    return out


def _not_for_agents(sess: UiSession) -> Response:
    return message("Tasks are for people", "Tasks are answered by people and the workspace key, not agent keys "
                   "(as GET /v1/me/tasks says).", 403, who=who(sess), csrf=sess.csrf)


async def _render(request: Request, sess: UiSession, *, failed: str | None = None, values: dict[str, str] | None = None,
                  error: str | None = None, status: int = 200) -> Response:
    tasks = await _open_tasks(request, sess)
    now = runtime(request).clock.time()
    q = request.query_params
    body = ["<h1>Tasks</h1>"]
    if q.get("answered"):
        body.append(f'<p class="done" role="status">Answered {e(q.get("answered"))}: {e(q.get("outcome"))}; now '
                    f'{e(q.get("now"))}.</p>')
    if not tasks:
        body.append('<p class="note">No task waits for a person.</p>')
    for t in tasks:
        mine = t["intent_id"] == failed
        body.append(task_form(t, sess.csrf, now, values=values if mine else None, error=error if mine else None))
    return page("Tasks", "\n".join(body), who=who(sess), csrf=sess.csrf, active="tasks", status=status,
                data={"page": "tasks"})


async def _tasks(request: Request, sess: UiSession) -> Response:
    if not sess.principal.is_member:
        return _not_for_agents(sess)
    return await _render(request, sess)


async def _answer(request: Request, sess: UiSession) -> Response:
    if not sess.principal.is_member:
        return _not_for_agents(sess)
    form = await session.checked_form(request, sess)
    rt = runtime(request)
    intent_id = request.path_params["intent_id"]
    row = await rt.reads.get_intent(intent_id)
    # another workspace's task: as not open as a missing one
    entry = task_entry(row, sess.principal) if row is not None and sess.principal.may_see(row) else None
    if entry is None:
        return message("This task is not open", "It was answered already, or it does not wait for a person now.", 409,
                       who=who(sess), csrf=sess.csrf, back="/ui/tasks")
    task = with_defaults(entry["human_task"] or {})
    result, problem = answer_from_form(task, form)
    if problem is not None:
        return await _render(request, sess, failed=intent_id, values=form, error=problem, status=422)
    s, p, now = sess.settings, sess.principal, rt.clock.time()
    try:
        answer = await write_answer(rt, lambda tx: engine.op_resume(tx, s, p, intent_id, {"task_result": result}, now))
    except Unprocessable as exc:
        return await _render(request, sess, failed=intent_id, values=form, error=exc.message, status=422)
    query = urlencode({"answered": intent_id, "outcome": result["outcome"],
                       "now": answer["intent"]["status"]})
    return RedirectResponse(f"/ui/tasks?{query}", status_code=303)


tasks_page = gated(_tasks)
answer_task = gated(_answer)

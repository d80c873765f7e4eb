"""``GET|POST /t/{token}``: the small HTML page behind a task mail's link, to answer a task without the CLI.

The token in the path (256 random bits; the runtime keeps only its sha256) is the only credential: there is
no cookie or session, so a cross-site page cannot borrow anybody's authority (classic CSRF needs ambient
credentials). On top of that, defence in depth without a write on GET (mail scanners prefetch links, so
GET must change nothing):

- a per-render form nonce: HMAC-SHA256(runtime key, link id | render time) in hidden fields, valid for an
  hour, so an answer must come from a page this runtime rendered for this very link (stateless: no row per
  render; the key is kept in ``meta`` so every replica accepts it);
- an Origin check: a browser's POST whose ``Origin`` (or ``Sec-Fetch-Site``) says another site is refused.
  ``Referrer-Policy: same-origin`` keeps the token out of Referer headers to other sites while letting
  browsers send a real ``Origin`` on our own form post (with ``no-referrer`` they send ``Origin: null``);
- ``frame-ancestors 'none'`` / ``X-Frame-Options: DENY`` (no clickjacking), a CSP that allows no script,
  ``Cache-Control: no-store``.

Everything from the task and the payload is escaped with ``html.escape``. An answer is checked exactly as
``POST /v1/intents/{id}/resume`` checks it (``protocol.tasks.answer_problem`` via the engine): a wrong one
re-renders the form with the error and status 422, and the task stays open. After one accepted answer the
link is spent; it also dies when its task ends, is escalated, or reaches its deadline (engine/human.py).
"""

from __future__ import annotations

import hmac
import html
import json
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from axme_cli.protocol import lifecycle as lc
from axme_cli.protocol.task_forms import FormField, form_fields, parse_value, place
from axme_cli.protocol.tasks import with_defaults
from axme_cli.runtime.api.auth import client_address
from axme_cli.runtime.api.common import read_body, runtime, write_answer
from axme_cli.runtime.api.errors import headers_of, status_of
from axme_cli.runtime.engine import human
from axme_cli.runtime.engine.codec import loads
from axme_cli.runtime.errors import DomainError, TooManyRequests, Unprocessable
from axme_cli.runtime.store.base import Row

NONCE_TTL_SECONDS = 3600
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem;color:#222}"
    ".error{background:#fde8e8;border:1px solid #e0a0a0;padding:.6rem;border-radius:4px}"
    "pre{background:#f4f4f4;padding:.6rem;overflow:auto;max-height:20rem}"
    "label{display:block;margin:.8rem 0 .2rem;font-weight:600}"
    "input,select,textarea{width:100%;box-sizing:border-box;padding:.4rem;font:inherit}"
    "button{margin:.8rem .4rem 0 0;padding:.5rem 1rem;font:inherit}"
    "dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dt{color:#666}dd{margin:0}"
    ".hint{color:#666;font-weight:normal}"
)
REFUSALS = {
    "unknown": (404, "This link is not valid",
                "Check that you opened the whole link from the mail."),
    "used": (410, "This task was answered", "An answer was already given through this link."),
    "revoked": (410, "This link was withdrawn", "A newer mail about this task has a link that works."),
    "moved": (410, "This link no longer works",
              "The task was answered, or it was passed on to someone else (escalated)."),
    "expired": (410, "This link has expired", "Ask whoever sent the task for a new one, or use the axme CLI."),
}
def answer_from_form(task: dict[str, Any], form: dict[str, str]) -> tuple[dict[str, Any], str | None]:
    """``task_result`` from the posted form, typed by the schema. A JSON field that does not parse is an error
    here; any other value that does not fit is passed on as typed, so the schema check (the API's) names it."""
    result: dict[str, Any] = {"outcome": form.get("outcome", "")}
    comment = form.get("comment", "").strip()
    if comment:
        result["comment"] = comment
    for field in form_fields(task):
        raw = form.get("f." + field.name, "").strip()
        if raw == "":
            continue
        try:
            place(result, field, parse_value(field, raw))
        except ValueError as exc:
            if field.kind == "json":
                return result, str(exc)
            result[field.name] = raw
    return result, None


# ---------------------------------------------------------------------------------------------
# rendering


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _page(title: str, body: str, status: int) -> HTMLResponse:
    doc = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex, nofollow">'
        f"<title>{_e(title)} · axme</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )
    return HTMLResponse(doc, status_code=status, headers=HEADERS)


def _message(title: str, text: str, status: int) -> HTMLResponse:
    return _page(title, f"<h1>{_e(title)}</h1>\n<p>{_e(text)}</p>", status)


def _refused(problem: str, row: Row | None) -> HTMLResponse:
    if problem == "closed" and row is not None:
        if row["status"] in lc.TERMINAL:
            return _message("This task has ended", f"The intent is {row['status']}: there is nothing to answer.", 410)
        return _message("This task is no longer open", "It was answered, or it does not wait for a person now.", 410)
    status, title, text = REFUSALS.get(problem, REFUSALS["unknown"])
    return _message(title, text, status)


def _input(field: FormField, value: str) -> str:
    name = _e("f." + field.name)
    ident = _e("field-" + field.name)
    if field.kind in ("boolean", "choice"):
        options = [("", "—")]
        options += [("true", "yes"), ("false", "no")] if field.kind == "boolean" else \
            [(str(c), str(c)) for c in field.choices]
        opts = "".join(f'<option value="{_e(v)}"{" selected" if v == value else ""}>{_e(label)}</option>'
                       for v, label in options)
        return f'<select id="{ident}" name="{name}">{opts}</select>'
    if field.kind in ("integer", "number"):
        step = "1" if field.kind == "integer" else "any"
        return f'<input id="{ident}" name="{name}" type="number" step="{step}" value="{_e(value)}">'
    if field.kind == "json":
        return f'<textarea id="{ident}" name="{name}" rows="4">{_e(value)}</textarea>'
    return f'<input id="{ident}" name="{name}" type="text" value="{_e(value)}">'


def _form_page(row: Row, link: Row, key: str, now: float, *, values: dict[str, str] | None = None,
               error: str | None = None, status: int = 200) -> HTMLResponse:
    doc = loads(row["doc"])
    task = with_defaults(doc.get("human_task") or {"title": row["intent_type"]})
    values = values or {}
    title = str(task.get("title") or row["intent_type"])
    parts = [f"<h1>{_e(title)}</h1>"]
    if task.get("description"):
        parts.append(f"<p>{_e(task['description'])}</p>")
    facts = [("Task type", task.get("task_type")), ("Intent", f"{row['intent_type']} {row['intent_id']}"),
             ("From", row["from_agent"]), ("Due at", doc.get("deadline_at")), ("For", link["email"])]
    parts.append("<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts if v) + "</dl>")
    payload = json.dumps(loads(row["payload"]), indent=2, ensure_ascii=False, sort_keys=True)
    if len(payload) > 20000:
        payload = payload[:20000] + "\n…"
    parts.append(f"<h2>Details</h2>\n<pre>{_e(payload)}</pre>")
    if error:
        parts.append(f'<p class="error" role="alert">{_e(error)}</p>')
    issued = int(now)
    form = ['<form method="post">',
            f'<input type="hidden" name="ts" value="{issued}">',
            f'<input type="hidden" name="nonce" value="{_e(human.form_nonce(key, link["link_id"], issued))}">']
    for field in form_fields(task):
        hint = f' <span class="hint">{_e(field.hint)}</span>' if field.hint else ""
        mark = " (required)" if field.required else ""
        form.append(f'<label for="{_e("field-" + field.name)}">{_e(field.label)}{mark}{hint}</label>')
        form.append(_input(field, values.get("f." + field.name, "")))
    mark = " (required)" if task.get("required_comment") else ""
    form.append(f'<label for="comment">Comment{mark}</label>')
    form.append(f'<textarea id="comment" name="comment" rows="3">{_e(values.get("comment", ""))}</textarea>')
    buttons = "".join(f'<button type="submit" name="outcome" value="{_e(o)}">{_e(str(o).replace("_", " "))}'
                      "</button>" for o in task.get("allowed_outcomes") or [])
    form.append(f"<div>{buttons}</div></form>")
    parts.append("\n".join(form))
    return _page(title, "\n".join(parts), status)


# ---------------------------------------------------------------------------------------------
# the route


async def _form_key(request: Request) -> str:
    state = request.app.state
    key = getattr(state, "task_form_key", None)
    if key is None:
        candidate = secrets.token_hex(32)
        key = await runtime(request).write(lambda tx: human.op_form_key(tx, candidate))
        state.task_form_key = key
    return str(key)


def _cross_site(request: Request) -> bool:
    """A browser says this POST comes from another site (requests without these headers are not browsers')."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return True
    origin = request.headers.get("origin")
    if origin is None:
        return False
    return origin == "null" or urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()


def _nonce_ok(key: str, link_id: str, form: dict[str, str], now: float) -> bool:
    try:
        issued = int(form.get("ts", ""))
    except ValueError:
        return False
    if not (now - NONCE_TTL_SECONDS <= issued <= now + 60):
        return False
    return hmac.compare_digest(human.form_nonce(key, link_id, issued), form.get("nonce", ""))


async def task_page(request: Request) -> Response:
    rt = runtime(request)
    address = client_address(request)
    token_hash = human.hash_link_token(request.path_params["token"])
    try:
        if request.method == "POST":
            rt.throttle.call(address)
        link = await rt.reads.task_link(token_hash)
        if link is None:  # a wrong token: how fast tokens may be guessed
            rt.throttle.guess(address)
    except TooManyRequests as exc:
        response = _message("Too many tries", exc.message, status_of(exc))
        response.headers.update(headers_of(exc))
        return response
    row = await rt.reads.get_intent(link["intent_id"]) if link is not None else None
    now = rt.clock.time()
    problem = human.link_problem(link, row, now)
    if problem is not None or link is None or row is None:
        return _refused(problem or "unknown", row)
    key = await _form_key(request)
    if request.method != "POST":
        return _form_page(row, link, key, now)
    if _cross_site(request):
        return _message("Refused", "This answer was sent from another site; open the link from the mail.", 403)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        return _message("Refused", "Answer the task with the form on this page.", 415)
    try:
        raw = await read_body(request)
    except DomainError as exc:
        return _message("Refused", exc.message, status_of(exc))
    form = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True).items()}
    if not _nonce_ok(key, link["link_id"], form, now):
        return _form_page(row, link, key, now, values=form, status=400,
                          error="This form is too old or did not come from this page; check your answer and "
                                "send it again.")
    task = with_defaults(loads(row["doc"]).get("human_task") or {})
    result, error = answer_from_form(task, form)
    if error is not None:
        return _form_page(row, link, key, now, values=form, error=error, status=422)
    s = rt.settings
    try:
        answer = await write_answer(rt, lambda tx: human.op_answer_by_link(tx, s, token_hash, result, now))
    except human.LinkRefused as exc:
        fresh = await rt.reads.get_intent(row["intent_id"])
        return _refused(str(exc.details.get("reason")), fresh)
    except Unprocessable as exc:
        return _form_page(row, link, key, now, values=form, error=exc.message, status=422)
    except DomainError as exc:
        return _message("Not answered", exc.message, status_of(exc))
    status = answer["intent"]["status"]
    return _message("Thank you", f"Your answer ({result['outcome']}) was recorded; the intent is now {status}.", 200)


routes = [Route("/t/{token}", task_page, methods=["GET", "POST"])]

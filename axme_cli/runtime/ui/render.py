"""HTML building blocks of the dashboard. Everything that comes from data goes through ``e`` (html.escape)."""

from __future__ import annotations

import hashlib
import html
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from starlette.responses import HTMLResponse

from axme_cli.protocol import lifecycle as lc
from axme_cli.runtime.clock import parse_iso

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
MASK = "•••"
_SECRET_KEY = re.compile(r"pass(word|wd|phrase)?|secret|token|api[_-]?key|apikey|authorization|credential|"
                         r"private[_-]?key|cookie|session[_-]?key", re.IGNORECASE)
NAV = (("intents", "Intents"), ("tasks", "Tasks"), ("scenarios", "Scenarios"), ("schedules", "Schedules"),
       ("agents", "Agents"), ("mesh", "Mesh"))


def e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def mask(value: Any) -> Any:
    """The value with the values of secret-looking keys (password, secret, token, api_key, authorization, ...)
    replaced by •••, at any depth."""
    if isinstance(value, dict):
        return {k: (MASK if isinstance(k, str) and _SECRET_KEY.search(k) and v not in (None, "") else mask(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


def pretty(value: Any, limit: int = 20000) -> str:
    """Masked, indented JSON, escaped, in a <pre>."""
    text = json.dumps(mask(value), indent=2, ensure_ascii=False, sort_keys=True, default=str)
    if len(text) > limit:
        text = text[:limit] + "\n…"
    return f'<pre class="json">{e(text)}</pre>'


def compact(value: Any, limit: int = 300) -> str:
    """One-line JSON, as the page's script writes the rows it adds (JSON.stringify)."""
    text = json.dumps(mask(value), ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[:limit] + "…"


def status_badge(status: str | None, waiting: str | None = None) -> str:
    if not status:
        return ""
    label = e(status)
    if waiting:
        label += f' <span class="why">{e(waiting.replace("WAITING_FOR_", "for ").lower())}</span>'
    return f'<span class="st st-{e(status)}" data-status="{e(status)}">{label}</span>'


def short_address(address: str | None) -> str:
    if not address:
        return ""
    return address.rstrip("/").rsplit("/", 1)[-1]


def ago(at: str | None, now: float) -> str:
    """How long before ``now`` (the runtime's clock) ``at`` was."""
    if not at:
        return ""
    try:
        seconds = max(0.0, now - parse_iso(at))
    except ValueError:
        return str(at)
    return duration(seconds) + " ago"


def duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} m {seconds % 60:.0f} s"
    if seconds < 86400:
        return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:.0f} m"
    return f"{seconds // 86400:.0f} d {seconds % 86400 // 3600:.0f} h"


def is_terminal(status: str | None) -> bool:
    return status in lc.TERMINAL


@cache
def static_file(name: str) -> bytes | None:
    if name not in ("ui.js", "ui.css"):
        return None
    return (resources.files("axme_cli.runtime.ui") / "static" / name).read_bytes()


@cache
def static_url(name: str) -> str:
    data = static_file(name) or b""
    return f"/ui/static/{name}?v={hashlib.sha256(data).hexdigest()[:10]}"


def csrf_field(token: str) -> str:
    return f'<input type="hidden" name="csrf" value="{e(token)}">'


@dataclass(frozen=True)
class Header:
    """The header's right side: who is logged in and the workspace they act in, and a person's switcher."""

    label: str
    workspace: str  # "org/workspace" (ids), the one the session acts in
    choices: tuple[tuple[str, str], ...] = ()  # ("org_id/workspace_id", what the selector shows)


def _switcher(who: Header, csrf: str, active: str) -> str:
    """A plain form (no script needed): the selector of the person's workspaces and a button; the POST carries the
    session's CSRF token, like every form of the dashboard."""
    if len(who.choices) < 2:
        return ""
    options = "".join(f'<option value="{e(value)}"{" selected" if value == who.workspace else ""}>{e(label)}</option>'
                      for value, label in who.choices)
    return (f'<form method="post" action="/ui/workspace" class="switch">{csrf_field(csrf)}'
            f'<input type="hidden" name="next" value="/ui/{e(active)}">'
            f'<select name="workspace" aria-label="Workspace">{options}</select>'
            '<button type="submit">Switch</button></form>')


def page(title: str, body: str, *, who: Header | None = None, csrf: str | None = None, active: str = "",
         status: int = 200, data: dict[str, str] | None = None) -> HTMLResponse:
    """A whole page: the nav bar (when logged in), ``body``, the stylesheet and the one script."""
    attrs = "".join(f' data-{e(k)}="{e(v)}"' for k, v in (data or {}).items())
    nav = ""
    if who is not None:
        on = ' class="on"'
        links = "".join(f'<a href="/ui/{k}"{on if k == active else ""}>{label}</a>' for k, label in NAV)
        logout = (f'<form method="post" action="/ui/logout" class="logout">{csrf_field(csrf or "")}'
                  '<button type="submit">Log out</button></form>')
        nav = (f'<header class="top"><a class="brand" href="/ui/">axme</a><nav>{links}</nav>'
               f'<span class="who" title="{e(who.label)}" data-workspace="{e(who.workspace)}">{e(who.label)}</span>'
               f'{_switcher(who, csrf or "", active)}{logout}</header>')
    doc = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex, nofollow">'
        f'<title>{e(title)} · axme</title><link rel="stylesheet" href="{static_url("ui.css")}">'
        f'<script src="{static_url("ui.js")}" defer></script></head>\n'
        f"<body{attrs}>\n{nav}<main>\n{body}\n</main>\n</body></html>\n"
    )
    return HTMLResponse(doc, status_code=status, headers=HEADERS)


def message(title: str, text: str, status: int, *, who: Header | None = None, csrf: str | None = None,
            back: str | None = None, active: str = "") -> HTMLResponse:
    link = f'<p><a href="{e(back)}">Back</a></p>' if back else ""
    return page(title, f'<h1>{e(title)}</h1>\n<p class="note">{e(text)}</p>{link}', who=who, csrf=csrf,
                status=status, active=active)

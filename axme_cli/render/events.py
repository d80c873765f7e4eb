"""Intent events for people: one line per event (watch, log) and the live view of `axme observe`."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from axme_cli.render.console import out
from axme_cli.render.style import STATUS_STYLE, fancy, forced


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def age(value: str | None, now: float | None = None) -> str:
    ts = parse_time(value)
    if ts is None:
        return "?"
    return duration(max(0.0, (now or time.time()) - ts))


def duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def holder(event: dict[str, Any]) -> str:
    pending = event.get("pending_with")
    if isinstance(pending, dict):
        ref = pending.get("name") or pending.get("ref") or ""
        return str(ref).rstrip("/").rsplit("/", 1)[-1]
    return ""


def clock(value: str | None) -> str:
    ts = parse_time(value)
    if ts is None:
        return "?"
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S.%f")[:-3]


class EventLines:
    """Prints events one per line: time, +delta, seq, status, type, holder, waiting reason."""

    def __init__(self) -> None:
        self.previous: float | None = None
        self.fancy = fancy()
        self._console: Any = None
        if self.fancy:
            from rich.console import Console

            self._console = Console(highlight=False, force_terminal=forced())

    def line(self, event: dict[str, Any]) -> str:
        at = parse_time(event.get("at"))
        delta = "" if self.previous is None or at is None else "+" + duration(max(0.0, at - self.previous))
        if at is not None:
            self.previous = at
        status = str(event.get("status", "?"))
        parts = [clock(event.get("at")), delta.rjust(8), f"#{event.get('seq', '?')}".rjust(4), status.ljust(11),
                 str(event.get("event_type", "?"))]
        who = holder(event)
        if who:
            parts.append(f"holder={who}")
        if event.get("waiting_reason"):
            parts.append(f"waiting={event['waiting_reason']}")
        details = event.get("details") or {}
        if isinstance(details, dict):
            if details.get("delivery_attempt") and event.get("event_type") != "intent.submitted":
                parts.append(f"attempt={details['delivery_attempt']}")
            if details.get("reason"):
                parts.append(f"reason={details['reason']}")
        return "  ".join(parts)

    def show(self, event: dict[str, Any]) -> None:
        text = self.line(event)
        if self.fancy:
            status = str(event.get("status", ""))
            style = STATUS_STYLE.get(status)
            if style:
                from rich.markup import escape

                text = escape(text).replace(status, f"[{style}]{status}[/]", 1)
            self._console.print(text)
        else:
            out(text)


def header(intent: dict[str, Any]) -> str:
    return (f"intent {intent.get('intent_id')}  type={intent.get('intent_type')}  to={intent.get('to_agent')}  "
            f"age={age(intent.get('created_at'))}")


def final_line(status: str, started: str | None, ended: str | None) -> str:
    a, b = parse_time(started), parse_time(ended)
    total = duration(b - a) if a is not None and b is not None else "?"
    mark = "✓" if status == "COMPLETED" else "✗"
    return f"{mark} {status} after {total}"

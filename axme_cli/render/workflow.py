"""The live view of a workflow (`axme scenarios apply --watch`, `axme examples run`).

One row per step (holder, status, attempt, duration) and one per compensation, built from the
parent intent's events; the bundle's steps are rows from the start (PENDING), so a step that never ran shows as
NOT RUN instead of missing. On a TTY it is a rich.live table, redrawn four times a second from the rows (so a
running step's time goes on between events); piped, one plain line per change. The title is the caller's
heading line, printed once, not part of the table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from axme_cli.render.console import out
from axme_cli.render.events import duration, parse_time
from axme_cli.render.style import fancy, forced

STYLE = {"PENDING": "dim", "NOT RUN": "dim",
         "RUNNING": "cyan", "WAITING": "magenta", "COMPLETED": "green", "FAILED": "red", "RETRYING": "yellow",
         "UNDOING": "yellow", "UNDONE": "green", "UNDO FAILED": "red"}


@dataclass
class Row:
    label: str
    holder: str = ""
    status: str = "RUNNING"
    attempt: int = 1
    started: float | None = None
    ended: float | None = None
    note: str = ""

    def shown_attempt(self) -> str:
        return "" if self.status in ("PENDING", "NOT RUN") else str(self.attempt)

    def took(self, now: float) -> str:
        if self.started is None:
            return ""
        return duration(max(0.0, (self.ended or now) - self.started))


@dataclass
class WorkflowView:
    intent_id: str
    title: str = ""
    rows: dict[str, Row] = field(default_factory=dict)
    final: str | None = None
    final_error: dict[str, Any] | None = None
    started: float | None = None
    ended: float | None = None
    log_hint: str | None = None  # the command that shows the audit log, if one can

    def expect(self, steps: list[str]) -> None:
        """The workflow's steps, in order, as PENDING rows before any event."""
        for step in steps:
            self.rows.setdefault(step, Row(step, status="PENDING"))

    def _row(self, key: str, label: str) -> Row:
        if key not in self.rows:
            self.rows[key] = Row(label)
        return self.rows[key]

    def apply(self, event: dict[str, Any]) -> list[str]:
        """Update from one parent event; returns plain lines describing what changed."""
        etype = event.get("event_type", "")
        details = event.get("details") or {}
        at = parse_time(event.get("at")) or time.time()
        if self.started is None:
            self.started = at
        holder = _short((event.get("pending_with") or {}).get("name") or "")
        lines: list[str] = []
        done = details.get("completed_step")
        if isinstance(done, dict) and done.get("step_id") in self.rows:
            row = self.rows[done["step_id"]]
            row.status, row.ended = "COMPLETED", at
            took = duration(done.get("duration_ms", 0) / 1000)
            lines.append(f"[step:done]     {done['step_id']} completed in {took}")
        step = details.get("step_id")
        if etype in ("intent.waiting", "intent.human_task_assigned") and step:
            row = self._row(step, step)
            row.holder, row.attempt, row.started, row.ended = holder, details.get("attempt", 1), at, None
            if etype == "intent.human_task_assigned":
                row.status = "WAITING"
                title = (event.get("human_task") or details.get("human_task") or {}).get("title", "")
                row.note = f"human task: {title}"
                lines.append(f"[human:task]    {step} waits for {holder}: {title}")
            elif event.get("waiting_reason") == "WAITING_FOR_TIME":
                row.status, row.note = "WAITING", f"delay {details.get('delay_seconds', '?')}s"
                lines.append(f"[step:wait]     {step} waits {details.get('delay_seconds', '?')}s")
            else:
                row.status, row.note = "RUNNING", ""
                lines.append(f"[step:start]    {step} -> {holder} (attempt {row.attempt})")
        elif etype == "intent.step_failed" and step:
            row = self._row(step, step)
            row.ended = at
            reason = details.get("reason", "failed")
            if details.get("retry_in_seconds") is not None:
                row.status, row.note = "RETRYING", f"{reason}; retry in {details['retry_in_seconds']}s"
            else:
                row.status, row.note = "FAILED", str(reason)
            lines.append(f"[step:failed]   {step} attempt {details.get('attempt')}: {row.note}")
        elif etype == "intent.compensating" and step:
            row = self._row(f"undo:{step}", f"undo {step}")
            row.holder, row.attempt, row.started, row.ended = holder, details.get("attempt", 1), at, None
            row.status, row.note = "UNDOING", ""
            lines.append(f"[compensate]    undo {step} -> {holder} (attempt {row.attempt})")
        elif etype == "intent.compensated" and step:
            row = self._row(f"undo:{step}", f"undo {step}")
            row.status, row.ended = "UNDONE", at
            lines.append(f"[compensated]   {step} undone")
        elif etype == "intent.compensation_failed" and step:
            row = self._row(f"undo:{step}", f"undo {step}")
            row.ended = at
            if details.get("retry_in_seconds") is not None:
                row.status, row.note = "RETRYING", f"{details.get('reason')}; retry in {details['retry_in_seconds']}s"
            else:
                row.status, row.note = "UNDO FAILED", str(details.get("reason", ""))
            lines.append(f"[compensate]    undo {step} failed: {row.note}")
        elif etype in ("intent.reminder", "intent.escalated", "intent.delivery_failed", "intent.timed_out"):
            lines.append(f"[{etype.split('.', 1)[1]}] {details}")
        status = event.get("status")
        if status in ("COMPLETED", "FAILED", "CANCELED", "TIMED_OUT"):
            self.final, self.ended = status, at
            for row in self.rows.values():
                if row.status == "PENDING":
                    row.status = "NOT RUN"
                elif row.ended is None:
                    row.ended = at
                    if row.status in ("RUNNING", "WAITING"):
                        row.status = "COMPLETED" if status == "COMPLETED" else status
            lines.append(f"[final]         {status}")
        return lines

    def renderable(self) -> Any:
        from rich.table import Table

        now = time.time()
        table = Table(box=None, header_style="bold", pad_edge=False)
        for col in ("STEP", "HOLDER", "STATUS", "ATTEMPT", "TIME", "NOTE"):
            table.add_column(col)
        for row in self.rows.values():
            style = STYLE.get(row.status, "")
            status = f"[{style}]{row.status}[/]" if style else row.status
            table.add_row(row.label, row.holder, status, row.shown_attempt(), row.took(now), row.note)
        return table

    def summary(self) -> list[str]:
        total = duration((self.ended or time.time()) - (self.started or time.time()))
        lines = [f"Final status: {self.final or '?'} after {total}", f"Intent ID: {self.intent_id}"]
        if self.final_error:
            err = self.final_error
            lines.append(f"Failed step: {err.get('failed_step')} ({err.get('reason')}); compensated: "
                         f"{', '.join(err.get('compensated') or []) or 'nothing'}"
                         + (f"; compensation failed: {', '.join(err['compensation_failed'])}"
                            if err.get("compensation_failed") else ""))
        lines.append(f"Audit log: {self.log_hint}" if self.log_hint else
                     "Audit log: gone with the temporary runtime (run `axme dev` first to keep it)")
        return lines


def _short(name: str) -> str:
    return name.rstrip("/").rsplit("/", 1)[-1]


def follow(events: Any, view: WorkflowView, *, live: bool | None = None) -> None:
    """Consume an iterator of parent events, rendering as they come."""
    live = fancy() if live is None else live
    if not live:
        for event in events:
            for line in view.apply(event):
                out("  " + line)
        return
    from rich.console import Console
    from rich.live import Live

    # get_renderable: every refresh draws the rows anew, so a RUNNING step's time moves between events too.
    with Live(console=Console(force_terminal=forced()), get_renderable=view.renderable, auto_refresh=True,
              refresh_per_second=4, transient=False) as screen:
        for event in events:
            view.apply(event)
            screen.refresh()

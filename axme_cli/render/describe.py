"""`axme intents describe`: one intent as a waterfall of what happened to it.

Built from the intent's events only (the same record every reader gets): each step attempt, compensation, timer
wait, human task and delivery attempt is a span with its start, end, holder and outcome, drawn against the
intent's whole life, so retries, compensations (newest first) and the time each took are visible at once.
``spans`` is pure (events in, spans out); ``show`` prints them."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from axme_cli.render.console import key_values, out
from axme_cli.render.events import duration, parse_time

TERMINAL = ("COMPLETED", "FAILED", "CANCELED", "TIMED_OUT")
BAR = 32  # characters of the widest bar


@dataclass
class Span:
    label: str
    kind: str  # step | compensation | wait | human_task | delivery
    attempt: int
    holder: str
    status: str  # RUNNING / WAITING while open; then COMPLETED, FAILED, RETRIED, UNDONE, UNDO FAILED ...
    started_at: float
    ended_at: float | None = None
    note: str = ""
    intent_id: str | None = None

    def view(self, origin: float) -> dict[str, Any]:
        body = asdict(self)
        body["offset_ms"] = round((self.started_at - origin) * 1000, 1)
        body["duration_ms"] = None if self.ended_at is None else round((self.ended_at - self.started_at) * 1000, 1)
        body["started_at"] = _iso(self.started_at)
        body["ended_at"] = None if self.ended_at is None else _iso(self.ended_at)
        return body


def spans(events: list[dict[str, Any]]) -> list[Span]:
    """The spans of an intent's events, in the order they started."""
    found: list[Span] = []
    open_: dict[str, Span] = {}

    def start(key: str, span: Span) -> None:
        old = open_.pop(key, None)
        if old is not None and old.ended_at is None:
            old.ended_at, old.status = span.started_at, "REDELIVERED" if old.kind == "delivery" else "ENDED"
        open_[key] = span
        found.append(span)

    def end(key: str, at: float, status: str, note: str = "") -> None:
        span = open_.pop(key, None)
        if span is not None:
            span.ended_at, span.status = at, status
            span.note = note or span.note

    for event in events:
        etype = str(event.get("event_type", ""))
        details = event.get("details") or {}
        at = parse_time(event.get("at")) or 0.0
        holder = _short((event.get("pending_with") or {}).get("name") or "")
        done = details.get("completed_step")
        if isinstance(done, dict) and done.get("step_id"):
            end(f"step:{done['step_id']}", parse_time(done.get("ended_at")) or at, "COMPLETED")
        step = details.get("step_id")
        attempt = int(details.get("attempt") or 1)
        if etype == "intent.waiting" and step:
            timer = event.get("waiting_reason") == "WAITING_FOR_TIME"
            start(f"step:{step}", Span(step, "wait" if timer else "step", attempt, holder,
                                       "WAITING" if timer else "RUNNING", at,
                                       note=f"delay {details.get('delay_seconds')}s" if timer else "",
                                       intent_id=details.get("step_intent_id")))
        elif etype == "intent.human_task_assigned":
            task = details.get("human_task") or event.get("human_task") or {}
            start(f"step:{step}" if step else "task", Span(step or "human task", "human_task", attempt, holder,
                                                            "WAITING", at, note=str(task.get("title") or "")))
        elif etype == "intent.step_failed" and step:
            retry = details.get("retry_in_seconds")
            end(f"step:{step}", at, "RETRIED" if retry is not None else "FAILED",
                f"{details.get('reason', 'failed')}" + (f"; retry in {retry}s" if retry is not None else ""))
        elif etype == "intent.compensating" and step:
            start(f"undo:{step}", Span(f"undo {step}", "compensation", attempt, holder, "RUNNING", at,
                                       intent_id=details.get("compensation_intent_id")))
        elif etype == "intent.compensated" and step:
            end(f"undo:{step}", at, "UNDONE")
        elif etype == "intent.compensation_failed" and step:
            retry = details.get("retry_in_seconds")
            end(f"undo:{step}", at, "RETRIED" if retry is not None else "UNDO FAILED",
                str(details.get("reason", "")) + (f"; retry in {retry}s" if retry is not None else ""))
        elif etype == "intent.delivered" and not step:
            start("delivery", Span("delivery", "delivery", int(details.get("delivery_attempt") or attempt),
                                   holder or _short(str(details.get("to_agent") or "")), "RUNNING", at))
        elif etype == "intent.delivery_failed":
            end("delivery", at, "FAILED", str(details.get("reason") or details.get("error") or ""))
        status = event.get("status")
        if status in TERMINAL:
            for key in list(open_):
                end(key, at, "COMPLETED" if status == "COMPLETED" else str(status))
    return found


def view(body: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    """The --json document: the intent, its spans (offsets from its creation) and who holds it now."""
    intent = body.get("intent") or body
    found = spans(events)
    origin = parse_time(intent.get("created_at")) or (found[0].started_at if found else time.time())
    terminal = intent.get("status") in TERMINAL
    return {"ok": True, "intent": intent, "spans": [s.view(origin) for s in found],
            "held_by": None if terminal else {"pending_with": intent.get("pending_with"),
                                              "waiting_reason": intent.get("waiting_reason")}}


def show(body: dict[str, Any], events: list[dict[str, Any]], *, now: float | None = None) -> None:
    intent = body.get("intent") or body
    found = spans(events)
    now = now or time.time()
    origin = parse_time(intent.get("created_at")) or (found[0].started_at if found else now)
    last = parse_time(events[-1].get("at")) if events else None
    terminal = intent.get("status") in TERMINAL
    end = (last or now) if terminal else now
    total = max(end - origin, 1e-6)
    rows = [("Intent:", intent.get("intent_id")), ("Type:", intent.get("intent_type")),
            ("Status:", intent.get("status")),
            ("From:", intent.get("from_agent")), ("To:", intent.get("to_agent")),
            ("Created:", intent.get("created_at")), ("Took:" if terminal else "Running for:", duration(total))]
    workflow = intent.get("workflow") or {}
    if workflow:
        rows.append(("Scenario:", f"{workflow.get('scenario_id')} (steps: {', '.join(workflow.get('steps') or [])})"))
    if not terminal:
        pending = intent.get("pending_with") or {}
        holder = f"{pending.get('type')}:{pending.get('name')}" if pending else "nobody yet"
        rows.append(("Held by:", f"{holder} ({intent.get('waiting_reason') or intent.get('status')})"))
    key_values([(k, "" if v is None else v) for k, v in rows])
    out("")
    if not found:
        out("No steps or deliveries recorded yet.")
    else:
        width = max(len(_label(s)) for s in found)
        for span in found:
            stop = span.ended_at if span.ended_at is not None else end
            took = duration(max(0.0, stop - span.started_at)) + ("" if span.ended_at is not None else "…")
            line = (f"{_label(span).ljust(width)}  {_bar(span.started_at - origin, stop - span.started_at, total)}  "
                    f"+{duration(max(0.0, span.started_at - origin)):>6} {took:>7}  {span.status:<11} {span.holder}")
            out(line.rstrip())
            if span.note:
                out(f"{' ' * width}  {'':{BAR}}  {span.note}")
    error = intent.get("error")
    if isinstance(error, dict) and error:
        out("")
        compensated = ", ".join(error.get("compensated") or []) or "nothing"
        out(f"Failed step: {error.get('failed_step')} ({error.get('reason')}); compensated: {compensated}")


def _label(span: Span) -> str:
    return span.label if span.attempt <= 1 else f"{span.label} #{span.attempt}"


def _bar(offset: float, length: float, total: float) -> str:
    begin = min(BAR - 1, int(offset / total * BAR))
    size = max(1, round(length / total * BAR))
    size = min(size, BAR - begin)
    return (" " * begin + "█" * size).ljust(BAR)


def _short(name: str) -> str:
    return name.rstrip("/").rsplit("/", 1)[-1]


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e6):06d}Z"

"""What a case's run did, read from its workflow intent, and how it compares with what the case expects. Pure."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from axme_cli.protocol.scenario_tests import EventMatch, Expect, contains


@dataclass(frozen=True)
class Actual:
    """A finished run: the workflow intent as it ended and its events, in order."""

    status: str
    events: list[dict[str, Any]]
    result: dict[str, Any] | None
    error: dict[str, Any] | None

    def history(self) -> list[dict[str, Any]]:
        """Each step attempt that ended, in order: the saga's history in the result (a workflow that ended from
        outside, e.g. canceled, may have none: then the attempts its events show)."""
        steps = (self.result or {}).get("steps")
        if isinstance(steps, list):
            return [s for s in steps if isinstance(s, dict)]
        seen: list[dict[str, Any]] = []
        for event in self.events:
            details = event.get("details") or {}
            if event.get("event_type") in ("intent.waiting", "intent.human_task_assigned") and \
                    details.get("step_id") and details.get("step_id") != "manual_undo":
                seen.append({"step_id": details["step_id"], "attempt": details.get("attempt", 1)})
        return seen

    def steps(self) -> list[str]:
        """The steps that ran, in order; the attempts of a retried step count once."""
        out: list[str] = []
        for entry in self.history():
            if not out or out[-1] != entry["step_id"] or int(entry.get("attempt") or 1) == 1:
                out.append(str(entry["step_id"]))
        return out

    def attempts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for entry in self.history():
            counts[str(entry["step_id"])] = counts.get(str(entry["step_id"]), 0) + 1
        return counts

    def compensated(self) -> list[str]:
        return [str(s) for s in (self.error or {}).get("compensated") or []]

    def compensation_failed(self) -> list[str]:
        return [str(s) for s in (self.error or {}).get("compensation_failed") or []]

    def seconds(self) -> float | None:
        """From the first event to the last, on the runtime's clock."""
        times = [_time(e.get("at")) for e in self.events]
        known = [t for t in times if t is not None]
        return round(max(known) - min(known), 3) if len(known) >= 2 else None


@dataclass(frozen=True)
class Mismatch:
    field: str  # e.g. expect.compensated
    expected: Any
    actual: Any
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "expected": self.expected, "actual": self.actual, "message": self.message}


def compare(expect: Expect, actual: Actual) -> list[Mismatch]:
    """Every expectation that the run did not meet."""
    out: list[Mismatch] = []

    def differ(name: str, wanted: Any, got: Any) -> None:
        if wanted != got:
            out.append(Mismatch(f"expect.{name}", wanted, got, f"expected {show(wanted)}, got {show(got)}"))

    if expect.status is not None:
        differ("status", expect.status, actual.status)
    if expect.steps is not None:
        differ("steps", list(expect.steps), actual.steps())
    if expect.attempts is not None:
        counts = actual.attempts()
        for step_id, n in expect.attempts.items():
            differ(f"attempts.{step_id}", n, counts.get(step_id, 0))
    if expect.compensated is not None:
        differ("compensated", list(expect.compensated), actual.compensated())
    if expect.compensation_failed is not None:
        differ("compensation_failed", list(expect.compensation_failed), actual.compensation_failed())
    out.extend(_in_order(expect.events, actual.events))
    for j, match in enumerate(expect.absent_events):
        found = next((e for e in actual.events if match.matches(e)), None)
        if found is not None:
            out.append(Mismatch(f"expect.absent_events[{j}]", f"no {match.describe()}", event_line(found),
                                f"{match.describe()} appeared (seq {found.get('seq')})"))
    for name, wanted, got in (("result", expect.result, actual.result), ("error", expect.error, actual.error)):
        if wanted is not None and not contains(got, wanted):
            article = "an" if name == "error" else "a"
            out.append(Mismatch(f"expect.{name}", wanted, got, f"expected {article} {name} containing {show(wanted)}, "
                                f"got {show(got)}"))
    if expect.max_seconds is not None:
        took = actual.seconds()
        if took is None or took > expect.max_seconds:
            out.append(Mismatch("expect.max_seconds", expect.max_seconds, took,
                                f"expected at most {expect.max_seconds:g} s, took {took} s"))
    return out


def _in_order(wanted: tuple[EventMatch, ...], events: list[dict[str, Any]]) -> list[Mismatch]:
    """The expected events must appear in this order (other events may come between them)."""
    at = 0
    for j, match in enumerate(wanted):
        found = next((k for k in range(at, len(events)) if match.matches(events[k])), None)
        if found is None:
            earlier = any(match.matches(e) for e in events[:at])
            why = (f"{match.describe()} appeared only before {wanted[j - 1].describe()}" if earlier and j
                   else f"{match.describe()} did not appear")
            return [Mismatch(f"expect.events[{j}]", match.describe(), [event_line(e) for e in events], why)]
        at = found + 1
    return []


def event_line(event: dict[str, Any]) -> str:
    """One event, short: its type and the details that say what it was about."""
    details = event.get("details") or {}
    parts = [str(event.get("event_type"))]
    for key in ("step_id", "attempt", "reason", "retry_in_seconds", "final"):
        if key in details and details[key] is not None:
            parts.append(f"{key}={details[key]}")
    return " ".join(parts)


def show(value: Any, limit: int = 400) -> str:
    text = json.dumps(value, separators=(", ", ": "), ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _time(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None

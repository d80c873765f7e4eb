"""How `axme scenarios test` shows a run to people: on a terminal a live table of the cases (where each one is, how
long it has run), redrawn four times a second; piped, one line per case as it ends. Then each failure with what
was expected and what happened, the intent to inspect, and a summary line.

Cases come as `axme scenarios test --json` shows them (``CaseRun.as_dict``) plus ``at`` (what a running case
does now)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from axme_cli.render.console import out
from axme_cli.render.events import duration
from axme_cli.render.style import fancy, forced

WORD = {"pending": "PENDING", "running": "RUNNING", "passed": "PASS", "failed": "FAIL", "error": "ERROR"}
STYLE = {"pending": "dim", "running": "cyan", "passed": "green", "failed": "red", "error": "red"}


def label(case: dict[str, Any]) -> str:
    return f"{case['file']} › {case['case']}"


def line(case: dict[str, Any]) -> str:
    """A case that ended, on one line."""
    took = duration(case["seconds"] or 0)
    return f"{WORD[case['state']]:5} {label(case)} ({took})"


class LiveView:
    """The cases of a run as they go: ``rows()`` gives them (as dicts) whenever the view is drawn."""

    def __init__(self, rows: Callable[[], list[dict[str, Any]]]) -> None:
        self.rows = rows

    def renderable(self) -> Any:
        from rich.table import Table

        table = Table(box=None, header_style="bold", pad_edge=False)
        for col in ("CASE", "RESULT", "AT", "TIME"):
            table.add_column(col)
        for case in self.rows():
            state = case["state"]
            word = f"[{STYLE[state]}]{WORD[state]}[/]"
            at = (case.get("at") or "") if state == "running" else (case.get("status") or "")
            took = duration(case["seconds"]) if case["seconds"] is not None else ""
            table.add_row(label(case), word, at, took)
        return table

    @contextmanager
    def shown(self) -> Iterator[Callable[[], None]]:
        """On a terminal, the live table until the block ends; yields what redraws it now."""
        if not fancy():
            yield lambda: None
            return
        from rich.console import Console
        from rich.live import Live

        with Live(console=Console(force_terminal=forced()), get_renderable=self.renderable, auto_refresh=True,
                  refresh_per_second=4, transient=False) as screen:
            yield screen.refresh


def ended(case: dict[str, Any]) -> None:
    """Piped: the line of a case as it ends (on a terminal the live table shows it)."""
    if not fancy():
        out(line(case))


def failures(cases: list[dict[str, Any]], hint: Callable[[str], str | None]) -> None:
    """Each case that did not pass: what was expected and what happened, and the intent to inspect."""
    for case in cases:
        if case["state"] == "passed":
            continue
        out("")
        out(f"{WORD[case['state']]} {label(case)}")
        if case["state"] == "error":
            out(f"  {case['error']}")
            for entry in (case.get("agent_log") or [])[-5:]:  # what its agents said last
                out(f"  agent: {entry}")
        for failure in case["failures"]:
            out(f"  {failure['field']}: {failure['message']}")
        if case.get("events"):
            out("  events: " + "; ".join(case["events"]))
        if case.get("intent_id"):
            inspect = hint(case["intent_id"])
            out(f"  intent {case['intent_id']}" + (f": {inspect}" if inspect else ""))


def summary(cases: list[dict[str, Any]], seconds: float) -> str:
    counts = {state: sum(c["state"] == state for c in cases) for state in ("passed", "failed", "error")}
    parts = [f"{counts['passed']} passed"]
    if counts["failed"]:
        parts.append(f"{counts['failed']} failed")
    if counts["error"]:
        parts.append(f"{counts['error']} could not run to the end")
    noun = "case" if len(cases) == 1 else "cases"
    return f"{len(cases)} {noun}: {', '.join(parts)} in {duration(seconds)}"

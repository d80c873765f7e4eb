"""The one output object of a command: every result as text, as one JSON document (--json), or, for streams, as
one JSON object per line. Commands hand it the value and its text form; they never test for --json.

One JSON envelope for every command: a single result is an object with ``"ok"`` (true unless the command says
otherwise, e.g. an invalid bundle), a list is ``{"ok": true, "items": [...], "next_cursor": ...}``; errors are
``{"ok": false, "error": {...}}`` (render/console.report_error). A script reads ``.ok`` and ``.items`` the same
way everywhere.

``-o jsonl`` prints a list as one item per line (no envelope) and a single result as its one line; ``--jq EXPR``
runs each JSON document (or line) through a jq program and prints what it yields, strings raw (as ``jq -r`` and
gh's ``--jq`` do); ``--quiet`` keeps the results and drops progress, headings and hints."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from axme_cli.render.console import err, out, print_json

Text = str | Iterable[str] | Callable[[], None] | None


class Output:
    def __init__(self, *, json: bool, lines: bool = False, jq: str | None = None, quiet: bool = False) -> None:
        self.json = json or lines or jq is not None
        self.lines = lines
        self.quiet = quiet
        self._jq = _compile(jq) if jq is not None else None

    def _emit(self, value: Any) -> None:
        if self._jq is None:
            print_json(value)
            return
        for found in _run(self._jq, value):
            if isinstance(found, str):
                out(found)
            else:
                print_json(found)

    def result(self, value: dict[str, Any], text: Text = None) -> None:
        """The command's answer: ``value`` as JSON with --json (``"ok": true`` first unless it says ``ok``);
        else ``text`` (a line, lines, or a function that prints them, e.g. a table)."""
        if self.json:
            self._emit(value if "ok" in value else {"ok": True, **value})
            return
        _show(text)

    def items(self, values: list[Any], text: Text = None, *, next_cursor: str | None = None,
              ok: bool = True) -> None:
        """A list answer: ``{"ok": true, "items": [...], "next_cursor": ...}`` with --json (the cursor of the
        next page, null when this is the last; ``ok`` false when the list itself reports a failure, as
        `doctor`'s failed checks), else ``text``."""
        if self.lines:
            for value in values:
                self._emit(value)
            return
        if self.json:
            self._emit({"ok": ok, "items": values, "next_cursor": next_cursor})
            return
        _show(text)

    def item(self, value: Any, text: Text = None) -> None:
        """One item of a stream: a JSON line with --json (the object as it is), else its text."""
        if self.json:
            self._emit(value)
            return
        _show(text)

    def say(self, text: str) -> None:
        """Progress for people: on stdout, or on stderr with --json so stdout stays one document."""
        if not self.quiet:
            (err if self.json else out)(text)

    def text(self, text: Text) -> None:
        """Text only people need (a heading, a summary): nothing with --json."""
        if not self.json and not self.quiet:
            _show(text)


def _show(text: Text) -> None:
    if text is None:
        return
    if isinstance(text, str):
        out(text)
        return
    from axme_cli.render import pager

    if callable(text):
        pager.show(text)
    else:
        lines = list(text)

        def draw() -> None:
            for line in lines:
                out(line)

        pager.show(draw)


def _compile(program: str) -> Any:
    """The --jq program, compiled once; a program jq cannot read is a usage error naming the flag."""
    import jq

    from axme_cli.errors import UsageError

    try:
        return jq.compile(program)
    except ValueError as exc:
        raise UsageError(f"--jq: {str(exc).strip()}",
                         fix="give a jq program, e.g. --jq '.items[].intent_id' (see https://jqlang.org/manual)"
                         ) from None


def _run(program: Any, value: Any) -> list[Any]:
    from axme_cli.errors import UsageError

    try:
        return list(program.input_value(value).all())
    except ValueError as exc:  # e.g. indexing a string: jq's runtime error, said as a usage error
        raise UsageError(f"--jq: {str(exc).strip()}", fix="check the program against the command's JSON output "
                         "(run it with --json first)") from None

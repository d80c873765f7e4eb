"""The one output object of a command: every result as text, as one JSON document (--json), or, for streams, as
one JSON object per line. Commands hand it the value and its text form; they never test for --json.

One JSON envelope for every command: a single result is an object with ``"ok"`` (true unless the command says
otherwise, e.g. an invalid bundle), a list is ``{"ok": true, "items": [...], "next_cursor": ...}``; errors are
``{"ok": false, "error": {...}}`` (render/console.report_error). A script reads ``.ok`` and ``.items`` the same
way everywhere."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from axme_cli.render.console import err, out, print_json

Text = str | Iterable[str] | Callable[[], None] | None


class Output:
    def __init__(self, *, json: bool) -> None:
        self.json = json

    def result(self, value: dict[str, Any], text: Text = None) -> None:
        """The command's answer: ``value`` as JSON with --json (``"ok": true`` first unless it says ``ok``);
        else ``text`` (a line, lines, or a function that prints them, e.g. a table)."""
        if self.json:
            print_json(value if "ok" in value else {"ok": True, **value})
            return
        _show(text)

    def items(self, values: list[Any], text: Text = None, *, next_cursor: str | None = None,
              ok: bool = True) -> None:
        """A list answer: ``{"ok": true, "items": [...], "next_cursor": ...}`` with --json (the cursor of the
        next page, null when this is the last; ``ok`` false when the list itself reports a failure, as
        `doctor`'s failed checks), else ``text``."""
        if self.json:
            print_json({"ok": ok, "items": values, "next_cursor": next_cursor})
            return
        _show(text)

    def item(self, value: Any, text: Text = None) -> None:
        """One item of a stream: a JSON line with --json (the object as it is), else its text."""
        if self.json:
            print_json(value)
            return
        _show(text)

    def say(self, text: str) -> None:
        """Progress for people: on stdout, or on stderr with --json so stdout stays one document."""
        (err if self.json else out)(text)

    def text(self, text: Text) -> None:
        """Text only people need (a heading, a summary): nothing with --json."""
        if not self.json:
            _show(text)


def _show(text: Text) -> None:
    if text is None:
        return
    if isinstance(text, str):
        out(text)
    elif callable(text):
        text()
    else:
        for line in text:
            out(line)

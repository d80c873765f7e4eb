"""The one output object of a command: every result as text, as one JSON document (--json), or, for streams, as
one JSON object per line. Commands hand it the value and its text form; they never test for --json."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from axme_cli.render.console import err, out, print_json

Text = str | Iterable[str] | Callable[[], None] | None


class Output:
    def __init__(self, *, json: bool) -> None:
        self.json = json

    def result(self, value: Any, text: Text = None) -> None:
        """The command's answer: ``value`` as JSON with --json; else ``text`` (a line, lines, or a function that
        prints them, e.g. a table)."""
        if self.json:
            print_json(value)
            return
        _show(text)

    def item(self, value: Any, text: Text = None) -> None:
        """One item of a stream: a JSON line with --json, else its text."""
        self.result(value, text)

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

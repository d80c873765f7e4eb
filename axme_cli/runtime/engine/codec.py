"""The JSON of rows: what the engine stores in ``doc``, ``payload``, ``state`` and event columns."""

from __future__ import annotations

import os
from typing import Any

import orjson

from axme_cli.runtime.errors import Unprocessable


def dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError as exc:  # an integer beyond 64 bits (api.common.parse_json refuses those)
        raise Unprocessable(f"a value cannot be stored: {exc}", code="invalid_value") from None


def loads(value: str | bytes) -> Any:
    return orjson.loads(value)


# Texts the engine wrote or read lately, parsed: within one workflow step the same few texts were parsed again and
# again (the step's doc by the resume, its event and its answer's view; the parent's doc by the child's dispatch and
# by its event; the run state by the next step), and each intent event's text by the stream that sends it. A text
# maps to its value (equal texts, equal values), so a value kept here is shared by everyone who asks for that text:
# ``shared`` is for readers only, and ``kept`` for values nobody changes after they were written. Cleared when
# full: a miss parses, as before. Full is a count or a size: a step's texts are well under a kilobyte, but a payload
# may be a request body's 128 KiB, and 4,096 of those parsed would be gigabytes; a text over ``_TEXT_MAX`` is not
# kept at all (parsed each time, as before).
_parsed: dict[str, Any] = {}
_PARSED_MAX = 4096
_CHARS_MAX = 4 * 1024 * 1024  # the texts' length in all (their values take a few times that)
_TEXT_MAX = 16 * 1024
_chars = 0


# The test suite sets AXME_CHECK_SHARED: every value ``shared`` gives from the memo is compared with its text parsed
# again, so that a caller that changed a shared value fails the test that made it do so.
_CHECK = os.environ.get("AXME_CHECK_SHARED") == "1"


def shared(text: str) -> Any:
    """``loads(text)`` for a caller that only reads the value (and whatever it holds): possibly the very object
    another caller got for the same text."""
    value = _parsed.get(text)
    if value is not None and _CHECK and value != orjson.loads(text):
        raise RuntimeError(f"a value shared for its text was changed: {text[:200]}")
    if value is None:
        value = orjson.loads(text)
        _keep(text, value)
    return value


def kept(value: Any) -> str:
    """``dumps(value)``, and ``value`` kept as what ``shared`` gives for the text: the caller, and whoever it hands
    ``value`` to, must not change it from now on."""
    text = dumps(value)
    _keep(text, value)
    return text


def _keep(text: str, value: Any) -> None:
    # from the event loop and a PostgreSQL writer thread: a count off by a text is harmless, the bounds hold
    global _chars
    if len(text) > _TEXT_MAX:
        return
    if len(_parsed) >= _PARSED_MAX or _chars >= _CHARS_MAX:
        _parsed.clear()
        _chars = 0
    _parsed[text] = value
    _chars += len(text)

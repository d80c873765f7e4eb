"""The one owner of console output.

Every write to stdout goes through `write`: a stdout that is closed (`>&-`), full (`> /dev/full`) or a pipe
whose reader went away becomes an `OutputError`, which the root turns into one line on stderr (or, for a broken
pipe, silence) instead of a traceback."""

from __future__ import annotations

import contextlib
import errno
import json
import sys
from typing import Any

from axme_cli.errors import CliError, OutputError


def write(text: str) -> None:
    """``text`` to stdout, flushed; a failure of stdout itself is an OutputError."""
    stream = sys.stdout
    try:
        if stream is None:  # started with fd 1 closed
            raise OSError(errno.EBADF, "stdout is closed")
        stream.write(text)
        stream.flush()
    except (OSError, ValueError) as exc:  # ValueError: the stream object was closed
        raise OutputError.of(exc) from None


def out(text: str = "") -> None:
    write(text + "\n")


def err(text: str) -> None:
    """A line on stderr. When stderr itself is gone there is nowhere left to say anything: it is dropped."""
    stream = sys.stderr
    if stream is None:
        return
    with contextlib.suppress(OSError, ValueError):
        stream.write(text + "\n")
        stream.flush()


def print_json(value: Any) -> None:
    write(json.dumps(value, indent=None, separators=(",", ":"), ensure_ascii=False) + "\n")


def key_values(rows: list[tuple[str, Any]]) -> None:
    width = max((len(k) for k, _ in rows), default=0)
    for key, value in rows:
        out(f"{key.ljust(width)}  {value}")


def report_error(exc: CliError, *, as_json: bool = False) -> None:
    if as_json and not isinstance(exc, OutputError):  # stdout is the very thing that failed
        # If it cannot be written, the sentence on stderr below still says what went wrong.
        with contextlib.suppress(OutputError):
            print_json({"ok": False, "error": {"code": exc.code, "message": exc.message}})
    message = f"axme: {exc.message}"
    if exc.fix:
        message += f"\n  fix: {exc.fix}"
    err(message)


def silence_stdout() -> None:
    """After stdout failed: point fd 1 at /dev/null, so the interpreter's last flush of what is still buffered
    cannot fail again ("Exception ignored ... BrokenPipeError") at exit."""
    import os

    try:
        fd = sys.stdout.fileno() if sys.stdout is not None else -1
    except (OSError, ValueError, AttributeError):
        fd = -1
    if fd < 0:
        sys.stdout = None
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    except OSError:
        sys.stdout = None

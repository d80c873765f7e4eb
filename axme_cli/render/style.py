"""Whether to decorate output: rich on a TTY, plain text when piped or with NO_COLOR."""

from __future__ import annotations

import os
import sys


def fancy() -> bool:
    if sys.stdout is None:  # started with stdout closed
        return False
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


STATUS_STYLE = {
    "COMPLETED": "green", "FAILED": "red", "CANCELED": "yellow", "TIMED_OUT": "red",
    "WAITING": "magenta", "IN_PROGRESS": "cyan", "DELIVERED": "blue", "SUBMITTED": "blue", "CREATED": "dim",
}

"""Whether to decorate output: rich on a TTY, plain text when piped or with NO_COLOR; --color always|never
overrides both."""

from __future__ import annotations

import os
import sys

_color = "auto"


def set_color(mode: str) -> None:
    """auto, always or never (the root's --color)."""
    global _color
    _color = mode


def forced() -> bool | None:
    """rich's ``force_terminal``: True with --color always, False with never, None to let rich look."""
    return {"always": True, "never": False}.get(_color)


def fancy() -> bool:
    if sys.stdout is None:  # started with stdout closed
        return False
    if _color != "auto":
        return _color == "always"
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


STATUS_STYLE = {
    "COMPLETED": "green", "FAILED": "red", "CANCELED": "yellow", "TIMED_OUT": "red",
    "WAITING": "magenta", "IN_PROGRESS": "cyan", "DELIVERED": "blue", "SUBMITTED": "blue", "CREATED": "dim",
}

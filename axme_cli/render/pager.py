"""Long text for people goes through a pager, as git and gh do: only when stdout is a terminal, only when the text
is taller than it, and never for JSON, live views or progress lines.

The pager is ``AXME_PAGER``, else ``PAGER``, else ``less -FRX`` (quit at once when it fits, keep colours, leave
the text on screen); ``AXME_PAGER=`` (empty) or ``cat`` turns it off."""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from typing import Any

DEFAULT = "less -FRX"


class _Terminalish(io.StringIO):
    """Collects what a command prints while keeping its look: rich sees a terminal of the real width."""

    def __init__(self, real: Any) -> None:
        super().__init__()
        self._real = real

    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        return int(self._real.fileno())


def command() -> list[str] | None:
    """The pager to run, or None when paging is off or not possible here."""
    chosen = os.environ.get("AXME_PAGER")
    if chosen is None:
        chosen = os.environ.get("PAGER") or DEFAULT
    words = shlex.split(chosen) if chosen.strip() else []
    if not words or words[0] == "cat" or shutil.which(words[0]) is None:
        return None
    return words


def show(draw: Callable[[], None]) -> None:
    """Run ``draw`` (which prints through render/console or rich); page what it printed if it is taller than the
    terminal."""
    real = sys.stdout
    pager = command()
    if real is None or pager is None or not real.isatty():
        draw()
        return
    buffer = _Terminalish(real)
    sys.stdout = buffer
    try:
        draw()
    finally:
        sys.stdout = real
    text = buffer.getvalue()
    if text.count("\n") < shutil.get_terminal_size().lines - 1:
        real.write(text)
        real.flush()
        return
    env = dict(os.environ)
    env.setdefault("LESS", "FRX")
    with contextlib.suppress(OSError, KeyboardInterrupt):
        subprocess.run(pager, input=text, text=True, env=env, check=False)

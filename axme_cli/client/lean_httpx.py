"""httpx without its command-line tool: the one place that touches httpx's private module layout.

On import, httpx loads its own command-line tool (`httpx._main`: rich, click, pygments) whenever those are
installed: ~40 ms of CPU that every `axme` command talking to a runtime would pay for nothing (measured with
bench/cli_startup.py's `intents get` and `import httpx` with and without this module). A stand-in for that one
module, planted before httpx is first imported, avoids it; httpx's own `main` is then a no-op, which the CLI
never calls. pyproject.toml bounds httpx's version and tests/cli/test_typer_internals.py checks that httpx still
imports `._main` the way this relies on.
"""

from __future__ import annotations

import sys
import types

if "httpx" not in sys.modules:
    _stub = types.ModuleType("httpx._main")
    _stub.main = lambda: None  # type: ignore[attr-defined]
    sys.modules.setdefault("httpx._main", _stub)

import httpx  # noqa: E402

__all__ = ["httpx"]

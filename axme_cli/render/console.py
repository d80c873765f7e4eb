"""The one owner of console output."""

from __future__ import annotations

import json
import sys
from typing import Any

from axme_cli.errors import CliError


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=None, separators=(",", ":"), ensure_ascii=False) + "\n")
    sys.stdout.flush()


def key_values(rows: list[tuple[str, Any]]) -> None:
    width = max((len(k) for k, _ in rows), default=0)
    for key, value in rows:
        out(f"{key.ljust(width)}  {value}")


def report_error(exc: CliError, *, as_json: bool = False) -> None:
    if as_json:
        print_json({"ok": False, "error": {"code": exc.code, "message": exc.message}})
    message = f"axme: {exc.message}"
    if exc.fix:
        message += f"\n  fix: {exc.fix}"
    err(message)

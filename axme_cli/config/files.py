"""Atomic file writes: a reader never sees a half-written file, and secrets are 0600 from the start."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


class ConfigFileError(Exception):
    """A config file exists but cannot be read or parsed; the message names the file and the fix."""


def write_atomic(path: Path, data: bytes, mode: int = 0o600, dir_mode: int = 0o700) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=dir_mode)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def write_json(path: Path, value: Any, mode: int = 0o600) -> None:
    write_atomic(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode(), mode)


def read_json(path: Path, default: Any) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return default
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot be read ({exc.strerror}); check its permissions") from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigFileError(
            f"{path}: is not valid JSON (line {exc.lineno if hasattr(exc, 'lineno') else '?'}); "
            "fix it or move it away to start fresh"
        ) from None
    if not isinstance(value, type(default)):
        raise ConfigFileError(f"{path}: expected a JSON {type(default).__name__}; fix it or move it away")
    return value

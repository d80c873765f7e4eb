"""Atomic file writes: a reader never sees a half-written file, and secrets are 0600 from the start."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from axme_cli.errors import ConfigFileError

__all__ = ["ConfigFileError", "make_private", "private_folder", "read_json", "write_atomic", "write_json"]


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


def make_private(path: Path | str, mode: int) -> bool:
    """Take from ``path`` (if it exists) any access beyond ``mode`` (0600 for a file, 0700 for a folder), saying so
    in one warning line: files an older version or another tool made readable by others. True if it changed."""
    try:
        current = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return False
    if not current & ~mode:
        return False
    log = logging.getLogger("axme.files")
    try:
        os.chmod(path, current & mode)
    except OSError as exc:  # not ours (another user's folder): say so, and go on
        log.warning("%s is mode %04o (others can read it) and could not be made %04o: %s", path, current,
                    current & mode, exc.strerror)
        return False
    log.warning("%s was mode %04o (others could read it); it is %04o now", path, current, current & mode)
    return True


def private_folder(path: Path) -> Path:
    """``path`` as a folder only its owner can enter: made 0700, or made so if it was looser."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    make_private(path, 0o700)
    return path


def write_json(path: Path, value: Any, mode: int = 0o600) -> None:
    try:
        write_atomic(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode(), mode)
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot be written ({exc.strerror}); check the folder's permissions, or "
                              "point AXME_CONFIG_DIR at a folder of yours") from None


def read_json(path: Path, default: Any) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return default
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot be read ({exc.strerror}); check its permissions") from None
    except UnicodeDecodeError:
        raise ConfigFileError(f"{path}: is not UTF-8 text; fix it or move it away to start fresh") from None
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

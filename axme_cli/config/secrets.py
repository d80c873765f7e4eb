"""Secrets per context (api_key, actor_token, refresh_token, token_expires_at).

Kept in the OS keyring (service ``axme-cli``, user ``context:<name>:<field>``) when a usable one
exists, else in ``secrets.json`` (0600, written atomically). ``AXME_CLI_SECRET_STORAGE=file|keyring``
forces one. The keyring library is imported only when a secret is actually needed.
"""

from __future__ import annotations

import contextlib
import os
from functools import lru_cache
from typing import Any

from axme_cli.config import paths
from axme_cli.config.files import read_json, write_json
from axme_cli.errors import ConfigFileError

FIELDS = ("api_key", "actor_token", "refresh_token", "token_expires_at")
SERVICE = "axme-cli"


class SecretStoreError(ConfigFileError):
    pass


def storage() -> tuple[str, str]:
    """(mode, detail): ``("keyring", backend name)`` or ``("file", path)``."""
    forced = (os.environ.get("AXME_CLI_SECRET_STORAGE") or "").strip().lower()
    if forced not in ("", "file", "keyring"):
        raise SecretStoreError(
            f"AXME_CLI_SECRET_STORAGE={forced!r} is not understood; use 'file' or 'keyring'"
        )
    if forced != "file":
        backend = _usable_keyring()
        if backend is not None:
            return "keyring", backend
        if forced == "keyring":
            raise SecretStoreError(
                "AXME_CLI_SECRET_STORAGE=keyring but no usable OS keyring was found; "
                "unset it (or set it to 'file') to keep secrets in secrets.json"
            )
    return "file", str(paths.secrets_file())


@lru_cache(maxsize=1)  # the probe imports keyring and asks the OS; the answer does not change within a process
def _usable_keyring() -> str | None:
    try:
        import keyring
        from keyring.backends import chainer, fail
    except Exception:
        return None
    try:
        kr = keyring.get_keyring()
    except Exception:
        return None
    if isinstance(kr, fail.Keyring):
        return None
    if isinstance(kr, chainer.ChainerBackend) and not kr.backends:
        return None
    if getattr(kr, "priority", 1) <= 0:
        return None
    return f"{type(kr).__module__}.{type(kr).__name__}"


def _load_file() -> dict[str, Any]:
    data: dict[str, Any] = read_json(paths.secrets_file(), {})
    for name, entry in data.items():
        if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
            raise SecretStoreError(f'{paths.secrets_file()}: the entry "{name}" must be an object of strings; '
                                   "fix it or move the file away (then log in again)")
    return data


def get(context: str) -> dict[str, str]:
    mode, _ = storage()
    if mode == "keyring":
        import keyring

        found = {}
        for field in FIELDS:
            try:
                value = keyring.get_password(SERVICE, f"context:{context}:{field}")
            except Exception as exc:
                raise SecretStoreError(f"the OS keyring failed: {exc}; set AXME_CLI_SECRET_STORAGE=file") from None
            if value:
                found[field] = value
        return found
    entry = _load_file().get(context) or {}
    return {k: v for k, v in entry.items() if k in FIELDS and isinstance(v, str) and v}


def update(context: str, values: dict[str, str | None]) -> None:
    """Set (or, with None/"", delete) several secrets of one context at once."""
    mode, _ = storage()
    if mode == "keyring":
        import keyring
        from keyring.errors import PasswordDeleteError

        for field, value in values.items():
            user = f"context:{context}:{field}"
            try:
                if value:
                    keyring.set_password(SERVICE, user, value)
                else:
                    with contextlib.suppress(PasswordDeleteError):
                        keyring.delete_password(SERVICE, user)
            except Exception as exc:
                raise SecretStoreError(f"the OS keyring failed: {exc}; set AXME_CLI_SECRET_STORAGE=file") from None
        return
    data = _load_file()
    entry = data.setdefault(context, {})
    for field, value in values.items():
        if value:
            entry[field] = value
        else:
            entry.pop(field, None)
    if not any(entry.get(k) for k in FIELDS):
        data.pop(context, None)
    write_json(paths.secrets_file(), data, mode=0o600)


def set_secret(context: str, field: str, value: str | None) -> None:
    update(context, {field: value})


def clear(context: str) -> None:
    update(context, dict.fromkeys(FIELDS))

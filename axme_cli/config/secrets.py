"""Secrets per context (api_key, actor_token, refresh_token) in ``secrets.json`` with mode 0600."""

from __future__ import annotations

from typing import Any

from axme_cli.config import paths
from axme_cli.config.files import read_json, write_json

FIELDS = ("api_key", "actor_token", "refresh_token")


def _load() -> dict[str, Any]:
    return read_json(paths.secrets_file(), {})


def get(context: str) -> dict[str, str]:
    entry = _load().get(context) or {}
    return {k: v for k, v in entry.items() if k in FIELDS and isinstance(v, str) and v}


def set_secret(context: str, field: str, value: str | None) -> None:
    data = _load()
    entry = data.setdefault(context, {})
    if value:
        entry[field] = value
    else:
        entry.pop(field, None)
    if not any(entry.get(k) for k in FIELDS):
        data.pop(context, None)
    write_json(paths.secrets_file(), data, mode=0o600)

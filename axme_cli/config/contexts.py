"""Contexts in config.json: named targets (base URL, org, workspace ...) and the active one."""

from __future__ import annotations

from typing import Any

from axme_cli.config import paths
from axme_cli.config.files import read_json, write_json
from axme_cli.errors import ConfigFileError

DEFAULT_BASE_URL = "http://127.0.0.1:8100"
CONTEXT_FIELDS = ("base_url", "org_id", "workspace_id", "owner_agent", "environment")


def load() -> dict[str, Any]:
    data = read_json(paths.config_file(), {})
    data.setdefault("contexts", {})
    where = paths.config_file()
    if not isinstance(data["contexts"], dict):
        raise ConfigFileError(f'{where}: "contexts" must be an object; fix it or move it away')
    for name, ctx in data["contexts"].items():
        if not isinstance(ctx, dict):
            raise ConfigFileError(f'{where}: context "{name}" must be an object; fix it or move it away')
        for key, value in ctx.items():
            if value is not None and not isinstance(value, str):
                raise ConfigFileError(f'{where}: contexts.{name}.{key} must be a string; fix it or move it away')
    active = data.get("active_context")
    if active is not None and not isinstance(active, str):
        raise ConfigFileError(f'{where}: "active_context" must be a string; fix it or move it away')
    return data


def save(data: dict[str, Any]) -> None:
    # Secrets never live in config.json.
    for ctx in data.get("contexts", {}).values():
        for secret in ("api_key", "actor_token", "bearer_token", "refresh_token"):
            ctx.pop(secret, None)
    write_json(paths.config_file(), data, mode=0o600)


def active(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    name = data.get("active_context") or "default"
    ctx = data["contexts"].get(name)
    if ctx is None:
        return name, {"base_url": DEFAULT_BASE_URL}
    return name, ctx


def upsert(name: str, fields: dict[str, Any], *, activate_if_none: bool = False) -> bool:
    """Create or update context ``name``; returns True when it became the active context."""
    data = load()
    ctx = data["contexts"].setdefault(name, {})
    ctx.update({k: v for k, v in fields.items() if k in CONTEXT_FIELDS and v is not None})
    became_active = False
    current = data.get("active_context")
    if activate_if_none and (not current or current not in data["contexts"] or current == name):
        became_active = current != name
        data["active_context"] = name
    save(data)
    return became_active


def for_runtime(base_url: str, port: int) -> str | None:
    """The context `axme dev` keeps for the runtime at ``base_url``: ``local``, unless that one already names
    another runtime (which may still be running); then ``local-<port>``; None when that too names another one.
    A runtime never takes over a context of another: each keeps reaching the runtime it was made for."""
    known = load()["contexts"]
    for name in ("local", f"local-{port}"):
        ctx = known.get(name)
        if ctx is None or str(ctx.get("base_url") or "").rstrip("/") == base_url.rstrip("/"):
            return name
    return None

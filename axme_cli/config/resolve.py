"""The effective target of a command: flags > ``AXME_*`` environment > the active context."""

from __future__ import annotations

import os
from dataclasses import dataclass

from axme_cli.config import contexts, secrets


@dataclass(frozen=True)
class Target:
    context: str
    base_url: str
    api_key: str | None
    org_id: str | None
    workspace_id: str | None


def effective(*, base_url: str | None = None, api_key: str | None = None, context: str | None = None) -> Target:
    data = contexts.load()
    name = context or os.environ.get("AXME_CONTEXT") or data.get("active_context") or "default"
    if context and context not in data["contexts"]:
        from axme_cli.errors import UsageError

        raise UsageError(f"no context named {context!r}", fix="list them with `axme context list`")
    ctx = data["contexts"].get(name, {})
    stored = secrets.get(name) if name in data["contexts"] else {}
    env = os.environ
    return Target(
        context=name,
        base_url=(base_url or env.get("AXME_BASE_URL") or ctx.get("base_url") or contexts.DEFAULT_BASE_URL),
        api_key=api_key or env.get("AXME_API_KEY") or stored.get("api_key"),
        org_id=env.get("AXME_ORG_ID") or ctx.get("org_id"),
        workspace_id=env.get("AXME_WORKSPACE_ID") or ctx.get("workspace_id"),
    )

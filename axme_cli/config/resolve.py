"""The effective target of a command: flags > ``AXME_*`` environment > the active context."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from axme_cli.config import contexts, secrets


@dataclass
class Target:
    context: str
    base_url: str
    api_key: str | None = None
    actor_token: str | None = None
    refresh_token: str | None = None
    token_expires_at: str | None = None
    org_id: str | None = None
    workspace_id: str | None = None
    owner_agent: str | None = None
    environment: str | None = None
    context_exists: bool = False
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def tokens_from_context(self) -> bool:
        """Refreshed tokens are saved back only when they came from the stored context."""
        return self.sources.get("actor_token") == "context" or self.sources.get("refresh_token") == "context"


def _pick(name: str, flag: str | None, env_names: tuple[str, ...], stored: str | None,
          sources: dict[str, str]) -> str | None:
    if flag:
        sources[name] = "flag"
        return flag
    for env_name in env_names:
        value = os.environ.get(env_name)
        if value:
            sources[name] = f"env {env_name}"
            return value
    if stored:
        sources[name] = "context"
        return stored
    return None


def effective(*, base_url: str | None = None, api_key: str | None = None, context: str | None = None,
              actor_token: str | None = None, need_context: bool = False) -> Target:
    data = contexts.load()
    explicit = context or os.environ.get("AXME_CONTEXT")
    name = explicit or data.get("active_context") or "default"
    exists = name in data["contexts"]
    if (explicit or need_context) and not exists:
        from axme_cli.errors import UsageError

        known = ", ".join(sorted(data["contexts"])) or "none yet"
        raise UsageError(f"no context named {name!r} (known: {known})",
                         fix="list them with `axme context list` or create one with `axme context create`")
    ctx = data["contexts"].get(name, {})
    stored = secrets.get(name) if exists else {}
    sources: dict[str, str] = {}
    target = Target(
        context=name,
        base_url=(_pick("base_url", base_url, ("AXME_BASE_URL", "AXME_GATEWAY_BASE_URL"), ctx.get("base_url"),
                        sources) or contexts.DEFAULT_BASE_URL).rstrip("/"),
        api_key=_pick("api_key", api_key, ("AXME_API_KEY", "AXME_GATEWAY_API_KEY"), stored.get("api_key"),
                      sources),
        actor_token=_pick("actor_token", actor_token, ("AXME_ACTOR_TOKEN",), stored.get("actor_token"), sources),
        refresh_token=stored.get("refresh_token") if not actor_token else None,
        token_expires_at=stored.get("token_expires_at") if not actor_token else None,
        org_id=_pick("org_id", None, ("AXME_ORG_ID",), ctx.get("org_id"), sources),
        workspace_id=_pick("workspace_id", None, ("AXME_WORKSPACE_ID",), ctx.get("workspace_id"), sources),
        owner_agent=_pick("owner_agent", None, ("AXME_OWNER_AGENT",), ctx.get("owner_agent"), sources),
        environment=_pick("environment", None, ("AXME_ENVIRONMENT",), ctx.get("environment"), sources),
        context_exists=exists,
        sources=sources,
    )
    if target.refresh_token:
        sources["refresh_token"] = "context"
    sources.setdefault("base_url", "default")
    _check_url(target.base_url, sources["base_url"], name)
    return target


def _check_url(url: str, source: str, context: str) -> None:
    """A base URL the client can use, else a usage error naming where it came from."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number raises ValueError
        url.encode("ascii")
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except (ValueError, UnicodeEncodeError):
        ok = False
    if not ok:
        from axme_cli.errors import UsageError

        where = {"flag": "--base-url", "context": f"context {context!r}"}.get(source, source.removeprefix("env "))
        raise UsageError(f"{where}: {url!r} is not an http(s) URL",
                         fix="e.g. http://127.0.0.1:8100 (the scheme, the host and, if not 80/443, the port)")

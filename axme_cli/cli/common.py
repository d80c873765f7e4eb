"""What every command shares: the global flags, the effective target, output mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from axme_cli.client.http import Client
    from axme_cli.config.resolve import Target


@dataclass
class State:
    """Global options given before the command (``axme --context prod intents list``).

    ``--json`` is taken out of argv wherever it stands (cli/__init__.py), so it works after any
    command too.
    """

    json: bool = False
    base_url: str | None = None
    api_key: str | None = None
    context: str | None = None


STATE = State()

BaseUrlOpt = Annotated[str | None, typer.Option("--base-url", help="Runtime URL (overrides env and context).",
                                                show_default=False)]
ApiKeyOpt = Annotated[str | None, typer.Option("--api-key", help="API key (overrides env and context).",
                                               show_default=False)]
ContextOpt = Annotated[str | None, typer.Option("--context", help="Use this context instead of the active one.",
                                                show_default=False)]


def target(base_url: str | None = None, api_key: str | None = None, context: str | None = None) -> Target:
    from axme_cli.config.resolve import effective

    return effective(base_url=base_url or STATE.base_url, api_key=api_key or STATE.api_key,
                     context=context or STATE.context)


def client(base_url: str | None = None, api_key: str | None = None, context: str | None = None,
           *, timeout: float = 60.0, need_auth: bool = True) -> Client:
    from axme_cli.client.http import Client
    from axme_cli.errors import UsageError

    t = target(base_url, api_key, context)
    if need_auth and not (t.api_key or t.actor_token or t.refresh_token):
        raise UsageError(f"no credentials for context {t.context!r} ({t.base_url})",
                         fix="run `axme login`, pass --api-key, or set AXME_API_KEY")
    return Client.for_target(t, timeout=timeout)


def json_mode() -> bool:
    return STATE.json


def emit(value: Any) -> None:
    """Print the JSON document in --json mode (callers print their human form otherwise)."""
    from axme_cli.render.console import print_json

    print_json(value)

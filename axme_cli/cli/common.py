"""What every command shares: the global options (the root callback's ``ctx.obj``), the effective target, the
client and the output."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer

from axme_cli.cli import completers

if TYPE_CHECKING:
    from axme_cli.client.http import Client
    from axme_cli.config.resolve import Target
    from axme_cli.render.output import Output


@dataclass
class Options:
    """Global options (``axme --context prod intents list``; ``--json`` also after any command, up to ``--``)."""

    json: bool = False
    base_url: str | None = None
    api_key: str | None = None
    context: str | None = None
    output: str = "text"  # text | json | jsonl (-o/--output, AXME_OUTPUT; --json is -o json)
    jq: str | None = None  # a jq program the JSON output goes through (--jq)
    quiet: bool = False  # results only: no progress, headings or hints (--quiet)


BaseUrlOpt = Annotated[str | None, typer.Option("--base-url", help="Runtime URL (overrides env and context).",
                                                show_default=False)]
ApiKeyOpt = Annotated[str | None, typer.Option("--api-key", help="API key (overrides env and context).",
                                               show_default=False)]
ContextOpt = Annotated[str | None, typer.Option("--context", help="Use this context instead of the active one.",
                                                autocompletion=completers.context_names,
                                                show_default=False)]


FieldOpt = Annotated[list[str] | None, typer.Option(
    "--field", "-f", help="A text field key=value, sent exactly as typed (repeatable).", show_default=False)]
TypedFieldOpt = Annotated[list[str] | None, typer.Option(
    "--typed-field", "-F", help="A JSON field key=value: 2, true, null, [..], {..} or \"text\"; key=@file sends the "
    "file's text (repeatable).", show_default=False)]


def options() -> Options:
    """The global options of the command being run."""
    from axme_cli.cli.typer_internals import current_context

    try:
        obj = current_context().find_root().obj
    except RuntimeError:  # no command is running: a shell asking for completions
        return Options()
    return obj if isinstance(obj, Options) else Options()


def output() -> Output:
    """How the command being run prints its results: text, or JSON with --json."""
    from axme_cli.render.output import Output

    given = options()
    return Output(json=given.json, lines=given.output == "jsonl", jq=given.jq, quiet=given.quiet)


def target(base_url: str | None = None, api_key: str | None = None, context: str | None = None) -> Target:
    from axme_cli.config.resolve import effective

    given = options()
    return effective(base_url=base_url or given.base_url, api_key=api_key or given.api_key,
                     context=context or given.context)


def client(base_url: str | None = None, api_key: str | None = None, context: str | None = None,
           *, timeout: float = 60.0, need_auth: bool = True) -> Client:
    from axme_cli.client.http import Client
    from axme_cli.errors import UsageError

    t = target(base_url, api_key, context)
    if need_auth and not (t.api_key or t.actor_token or t.refresh_token):
        raise UsageError(f"no credentials for context {t.context!r} ({t.base_url})",
                         fix="run `axme login`, pass --api-key, or set AXME_API_KEY")
    return Client.for_target(t, timeout=timeout)

"""`axme agents run ADDRESS -- COMMAND ...`: any program (or Python function) becomes an agent (registered in
agents.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from axme_cli.cli import completers
from axme_cli.cli.common import ApiKeyOpt, BaseUrlOpt, ContextOpt

# Everything after the address and the options is the command to run.
SETTINGS = {"allow_extra_args": True, "ignore_unknown_options": True}


def run(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="The agent: a bare name or agent://org/ws/name.",
                                           show_default=False, autocompletion=completers.agent_addresses)],
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=1024,
                                             help="Intents handled at once.")] = 4,
    retry_exit_code: Annotated[int | None, typer.Option(
        "--retry-exit-code", help="This exit code means: not now, redeliver later.", show_default=False)] = None,
    handler: Annotated[str | None, typer.Option(
        "--handler", help="module:function to call instead of a command (in-process, faster).",
        show_default=False)] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Kill a command after this many seconds.",
                                                  show_default=False)] = None,
    ack_after: Annotated[float, typer.Option(
        "--ack-after", help="Mark an intent IN_PROGRESS when its handler takes longer than this (stops "
                            "redelivery); 0 never.")] = 2.0,
    max_intents: Annotated[int | None, typer.Option("--max-intents", help="Stop after handling this many.",
                                                    show_default=False)] = None,
    ready_file: Annotated[str | None, typer.Option(
        "--ready-file", hidden=True, show_default=False,
        help="Create this file once the feed is open (`axme examples run` waits for it).")] = None,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Handle every intent delivered to ADDRESS: the step payload goes to COMMAND's stdin as JSON, JSON on
    its stdout completes the intent, a non-zero exit fails it (stderr's tail is the reason).

    The key comes from --api-key, else from scenario-agents.json (written by `axme scenarios apply`).
    Example: axme agents run inventory -- python reserve.py
    """
    from axme_cli.agents.runner import Runner, batched, command_handler, python_handler, run_forever
    from axme_cli.cli.common import target
    from axme_cli.config import agents_file
    from axme_cli.errors import UsageError
    from axme_cli.render.console import err

    argv = list(ctx.args)  # click took the first `--`; any later one belongs to the command
    if bool(argv) == bool(handler):
        raise UsageError("give either a command after `--` or --handler module:function",
                         fix="e.g. axme agents run inventory -- python reserve.py")
    t = target(base_url, None, context)
    key = api_key
    if not key:
        entry = agents_file.lookup(address, t.base_url)
        if entry is None:
            raise UsageError(f"no key for agent {address!r} at {t.base_url} in {agents_file.path()}",
                             fix="run `axme scenarios apply FILE` (it provisions agents) or pass --api-key")
        key = str(entry["api_key"])
        if "://" not in address:
            address = str(entry["address"])
    try:
        handle = python_handler(handler) if handler else command_handler(argv, retry_exit_code, timeout)
    except (ValueError, ImportError, AttributeError) as exc:
        raise UsageError(f"--handler {handler}: {exc}") from None
    err(f"axme agents run: {address} at {t.base_url} (concurrency {concurrency}); Ctrl+C to stop")
    runner = Runner(t.base_url, key, address, handle, concurrency=concurrency, ack_after=ack_after,
                    max_intents=max_intents, log=batched(err),
                    on_connected=(lambda: open(ready_file, "a").close()) if ready_file else None)
    code = run_forever(runner)
    if code:
        raise typer.Exit(code)

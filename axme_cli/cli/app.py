"""The root of the `axme` command: global options, `--json` anywhere before `--`, and the one place where an
error becomes output and an exit code. Each command group is a module-level typer app added here; their
bodies import what they need lazily."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import typer

from axme_cli.cli import (
    agents,
    auth,
    contexts,
    dev,
    doctor,
    examples,
    inbox,
    intents,
    scenarios,
    schedules,
    status,
    tasks,
    ui,
    webhooks,
)
from axme_cli.cli.common import ApiKeyOpt, BaseUrlOpt, ContextOpt, Options
from axme_cli.cli.typer_internals import ClickException, LazyGroup, LazyTyper, merge_commands

HELP = """axme: the CLI and local runtime for the AXP intent protocol.

Start a runtime with `axme dev`, then check it with `axme status`.
--json (anywhere on the line) prints one JSON document: {"ok": true, ...}; lists
{"ok": true, "items": [...], "next_cursor": ...}; errors {"ok": false, "error": {...}}.
Streams print one JSON object per line.
Exit codes: 0 ok, 1 the request failed or the awaited intent ended badly, 2 usage, configuration
or credentials problem, 141 the reader of the output went away (broken pipe).
Precedence: flags > AXME_* environment > the active context."""

JSON_FLAG = "--json"
_JSON_SEEN = "axme.json"  # ctx.meta key: --json was given somewhere after the command name


def json_requested(args: Sequence[str]) -> bool:
    """Whether --json stands on the line before `--` (after it, the words belong to another program)."""
    words = list(args)
    return JSON_FLAG in (words[:words.index("--")] if "--" in words else words)


class Root(LazyGroup):
    """The `axme` group: takes --json from anywhere before `--`, and maps every error to output + exit code."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        # Click parses a group's options before the command name only; --json may follow any command,
        # so it is taken out here (up to `--`) and handed to the root callback.
        cut = args.index("--") if "--" in args else len(args)
        head = [a for a in args[:cut] if a != JSON_FLAG]
        if len(head) != cut:
            ctx.meta[_JSON_SEEN] = True
        return super().parse_args(ctx, head + args[cut:])

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, windows_expand_args: bool = True, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        as_json = json_requested(argv)
        try:
            # Not standalone: usage errors come back here, so --json reports them as JSON too.
            code = super().main(argv, prog_name or "axme", complete_var, False, windows_expand_args, **extra)
        except Exception as exc:
            code = exit_code_for(exc, as_json=as_json)
        sys.exit(code if isinstance(code, int) else 0)


def exit_code_for(exc: Exception, *, as_json: bool) -> int:
    """Report an error (one sentence and the fix on stderr; with --json also the JSON error document) and
    return the exit code: the one place where errors become output."""
    from axme_cli.errors import CliError, OutputError
    from axme_cli.render.console import err, print_json, report_error, silence_stdout

    if isinstance(exc, BrokenPipeError):  # a write that did not go through render/console (rich's)
        exc = OutputError.of(exc)
    if isinstance(exc, OutputError):
        silence_stdout()
        if not exc.broken_pipe:  # a reader that went away knows; anything else is said on stderr
            report_error(exc)
        return exc.exit_code
    try:
        if isinstance(exc, CliError):
            report_error(exc, as_json=as_json)
            return exc.exit_code
        if isinstance(exc, typer.Abort):
            return 130
        if isinstance(exc, ClickException):  # click's usage errors: its own text (usage line and hint) on stderr
            if as_json:
                print_json({"ok": False, "error": {"code": "usage_error", "message": exc.format_message()}})
            exc.show()
            return exc.exit_code
        if os.environ.get("AXME_DEBUG"):
            raise exc
        report_error(CliError(f"unexpected error: {exc.__class__.__name__}: {exc}",
                              fix="rerun with AXME_DEBUG=1 for the traceback and report it"), as_json=as_json)
        return 1
    except OutputError:  # the error's JSON document could not be written either: the sentence is on stderr
        silence_stdout()
        err(f"axme: {getattr(exc, 'message', exc)}")
        return getattr(exc, "exit_code", 1) if isinstance(exc, CliError | ClickException) else 1


app = LazyTyper(
    name="axme",
    help=HELP,
    cls=Root,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(ctx: typer.Context, given: bool) -> None:
    """``axme --version``: the same answer as `axme version` (with --json too), before any command is looked up."""
    if not given or ctx.resilient_parsing:
        return
    ctx.obj = Options(json=bool(ctx.meta.get(_JSON_SEEN)))
    status.version()
    raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, JSON_FLAG, help="Print one JSON document (also after any command)."),
    _show_version: bool = typer.Option(False, "--version", is_eager=True, expose_value=True, callback=_version,
                                       help="Print the version of axme (as `axme version`) and exit."),
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    context: ContextOpt = None,
) -> None:
    ctx.obj = Options(json=json_out or bool(ctx.meta.get(_JSON_SEEN)), base_url=base_url, api_key=api_key,
                      context=context)


# The order is the order of `axme --help`: commands, then groups.
for commands in (dev.app, status.app, intents.top, auth.app, doctor.app, ui.app):
    merge_commands(app, commands)
app.add_typer(intents.app, name="intents")
app.add_typer(contexts.app, name="context")
app.add_typer(scenarios.app, name="scenarios")
app.add_typer(schedules.app, name="schedules")
app.add_typer(examples.app, name="examples")
app.add_typer(agents.app, name="agents")
app.add_typer(tasks.app, name="tasks")
app.add_typer(webhooks.app, name="webhooks")
app.add_typer(inbox.app, name="inbox")

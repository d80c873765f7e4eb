"""The root of the `axme` command: global options, `--json` anywhere before `--`, and the one place where an
error becomes output and an exit code. Each command group is a module-level typer app added here; their
bodies import what they need lazily."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence
from typing import Any

import typer

from axme_cli.cli import (
    agents,
    auth,
    complete,
    contexts,
    dev,
    doctor,
    examples,
    inbox,
    intents,
    mcp,
    media,
    member,
    mesh,
    org,
    quota,
    scenarios,
    schedules,
    schemas,
    status,
    tasks,
    ui,
    usage,
    users,
    webhooks,
    workspace,
)
from axme_cli.cli.common import ApiKeyOpt, BaseUrlOpt, ContextOpt, Options
from axme_cli.cli.typer_internals import ClickException, LazyGroup, LazyTyper, merge_commands

HELP = """axme: the CLI and local runtime for the AXP intent protocol.

Start a runtime with `axme dev`, then check it with `axme status`.
Output (flags anywhere on the line before `--`): -o json / --json prints one JSON document:
{"ok": true, ...}; lists {"ok": true, "items": [...], "next_cursor": ...}; errors {"ok": false,
"error": {...}}. -o jsonl prints a list or stream one object a line; --jq EXPR filters the JSON;
AXME_OUTPUT sets the default format; -q keeps results only; --color auto|always|never (or NO_COLOR).
Exit codes: 0 ok, 1 the request failed or the awaited intent ended badly, 2 usage, configuration
or credentials problem, 141 the reader of the output went away (broken pipe).
Precedence: flags > AXME_* environment > the active context."""

JSON_FLAG = "--json"
OUTPUT_MODES = ("text", "json", "jsonl")
_ROOT_VALUE_OPTIONS = ("--base-url", "--api-key", "--context", "--output", "--jq", "--color")
COLOR_MODES = ("auto", "always", "never")
_GLOBALS = "axme.globals"  # ctx.meta key: the output flags taken from anywhere on the line


def take_globals(args: Sequence[str], own_o: bool = False) -> tuple[dict[str, Any], list[str]]:
    """The output flags (--json, -o/--output, --jq, -q/--quiet, --color) from anywhere before `--` (after it, the
    words belong to another program), and the words left. Click reads a group's options before the command name
    only; these may follow any command. ``own_o``: the command has a ``-o`` of its own (`tasks submit -o
    approved`), which then keeps every ``-o`` but one followed by text, json or jsonl."""
    words = list(args)
    cut = words.index("--") if "--" in words else len(words)
    found: dict[str, Any] = {}
    rest: list[str] = []
    i = 0
    while i < cut:
        word = words[i]
        name, _, inline = word.partition("=")
        if word == JSON_FLAG:
            found["output"] = "json"
        elif word in ("--quiet", "-q"):
            found["quiet"] = True
        elif name in ("--output", "--jq", "--color") and (inline or "=" in word or i + 1 < cut):
            value = inline if "=" in word else words[i + 1]
            i += 0 if "=" in word else 1
            found[name[2:]] = value
        elif word == "-o" and i + 1 < cut and (words[i + 1] in OUTPUT_MODES or not own_o):
            found["output"] = words[i + 1]
            i += 1
        elif word.startswith("-o") and len(word) > 2 and (word[2:] in OUTPUT_MODES or not own_o):
            found["output"] = word[2:]
        else:
            rest.append(word)
        i += 1
    return found, rest + words[cut:]


def output_mode(found: dict[str, Any]) -> str:
    """text, json or jsonl: the flags, else AXME_OUTPUT, else text (a bad value is a usage error naming it)."""
    from axme_cli.errors import UsageError

    mode = found.get("output")
    source = "--output"
    if mode is None:
        mode, source = os.environ.get("AXME_OUTPUT") or "text", "AXME_OUTPUT"
    if mode not in OUTPUT_MODES:
        raise UsageError(f"{source}: {mode!r} is not an output format", fix="choose text, json or jsonl")
    return mode


def json_requested(args: Sequence[str]) -> bool:
    """Whether errors are reported as a JSON document: JSON output asked for before `--` (or by AXME_OUTPUT)."""
    found, _ = take_globals(args)
    try:
        return output_mode(found) != "text" or "jq" in found
    except Exception:
        return found.get("output") in ("json", "jsonl")


class Root(LazyGroup):
    """The `axme` group: takes the output flags from anywhere before `--`, and maps every error to output + exit
    code."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        found, rest = take_globals(args, own_o=self._command_has_short_o(ctx, args))
        ctx.meta[_GLOBALS] = found
        return super().parse_args(ctx, rest)

    def _command_has_short_o(self, ctx: Any, args: list[str]) -> bool:
        """Whether the command the line names (`tasks submit`) declares a ``-o`` of its own."""
        command: Any = self
        skip = False
        for word in args:
            if word == "--":
                break
            if skip or word.startswith("-"):
                skip = word in _ROOT_VALUE_OPTIONS
                continue
            if not hasattr(command, "get_command"):
                break
            found = command.get_command(ctx, word)
            if found is None:
                return False
            command = found
        if command is self or hasattr(command, "get_command"):
            return False
        return any("-o" in param.opts for param in command.params)

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
    ctx.obj = global_options(ctx)
    status.version()
    raise typer.Exit()


def global_options(ctx: typer.Context, **target: str | None) -> Options:
    from axme_cli.render.style import set_color

    found = ctx.meta.get(_GLOBALS, {})
    mode = output_mode(found)
    color = found.get("color", "auto")
    if color not in COLOR_MODES:
        from axme_cli.errors import UsageError

        raise UsageError(f"--color: {color!r} is not a colour mode", fix="choose auto, always or never")
    set_color(color)
    return Options(json=mode != "text" or "jq" in found, output=mode, jq=found.get("jq"),
                   quiet=bool(found.get("quiet")), **target)


@app.callback()
def root(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, JSON_FLAG, help="Print one JSON document; the same as -o json."),
    _output: str = typer.Option("text", "--output", "-o", show_default=False,
                                help="text, json (one document) or jsonl (a list or stream: one object a line); "
                                     "default AXME_OUTPUT, else text."),
    _jq: str = typer.Option(None, "--jq", show_default=False,
                            help="Filter the JSON output through a jq program (strings print raw)."),
    _quiet: bool = typer.Option(False, "--quiet", "-q", help="Print results only: no progress, headings or hints."),
    _color: str = typer.Option("auto", "--color", help="auto (on a terminal, unless NO_COLOR), always or never."),
    _show_version: bool = typer.Option(False, "--version", is_eager=True, expose_value=True, callback=_version,
                                       help="Print the version of axme (as `axme version`) and exit."),
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    context: ContextOpt = None,
) -> None:
    gc.enable()  # main() (cli/__init__.py) turned it off for the start-up
    # The output flags were taken from the line before click parsed it (take_globals); these parameters only
    # document them in `axme --help`.
    ctx.obj = global_options(ctx, base_url=base_url, api_key=api_key, context=context)


# The order is the order of `axme --help`: commands, then groups.
for commands in (dev.app, status.app, intents.top, auth.app, doctor.app, ui.app, complete.app, mcp.app):
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
app.add_typer(users.app, name="users")
app.add_typer(users.invites, name="invites")
app.add_typer(media.app, name="media")
app.add_typer(schemas.app, name="schemas")
app.add_typer(org.app, name="org")
app.add_typer(workspace.app, name="workspace")
app.add_typer(member.app, name="member")
app.add_typer(mesh.app, name="mesh")
app.add_typer(quota.app, name="quota")
app.add_typer(usage.app, name="usage")

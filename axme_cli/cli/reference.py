"""docs/cli.md, generated from the command tree itself: every command and group, its help, arguments and options
(hidden ones left out). tests/cli/test_reference.py fails when the file in the repo is not what this prints, so
the reference cannot drift from the code.

Regenerate: ``python -m axme_cli.cli.reference > docs/cli.md``"""

from __future__ import annotations

import inspect
from typing import Any

HEADER = """# `axme` command reference

Generated from the command tree by `python -m axme_cli.cli.reference > docs/cli.md`; a test fails when it is stale.
Global options (`-o/--output`, `--json`, `--jq`, `-q/--quiet`, `--color`) may stand anywhere on the line before `--`.
"""


def render() -> str:
    import typer

    from axme_cli.cli.app import app

    root = typer.main.get_command(app)
    lines = [HEADER]
    _command(root, "axme", lines, None)
    return "\n".join(lines).rstrip("\n") + "\n"


def _command(command: Any, path: str, lines: list[str], ctx: Any) -> None:
    import click

    ctx = click.Context(command, info_name=path.rsplit(" ", 1)[-1], parent=ctx)
    depth = min(path.count(" ") + 2, 4)
    lines.append(f"{'#' * depth} `{path}`\n")
    text = inspect.cleandoc(command.help or "").strip()
    if text:
        lines.append(text + "\n")
    usage = " ".join(command.collect_usage_pieces(ctx))
    lines.append(f"```\n{path} {usage}\n```\n")
    params = [p for p in command.params if not getattr(p, "hidden", False) and p.name != "help"]
    if params:
        lines.append("| argument / option | meaning | default |")
        lines.append("|---|---|---|")
        for param in params:
            lines.append(f"| {_names(param)} | {_cell(getattr(param, 'help', None) or '')} | {_default(param)} |")
        lines.append("")
    for name in getattr(command, "commands", {}) or {}:
        sub = command.get_command(ctx, name)
        if sub is not None and not getattr(sub, "hidden", False):
            _command(sub, f"{path} {name}", lines, ctx)


def _names(param: Any) -> str:
    if param.param_type_name == "argument":
        return f"`{param.human_readable_name}`"
    names = [*param.opts, *param.secondary_opts]
    return ", ".join(f"`{n}`" for n in names)


def _default(param: Any) -> str:
    if param.param_type_name == "argument" or param.default in (None, False, (), []) or callable(param.default):
        return ""
    if not getattr(param, "show_default", True):
        return ""
    return f"`{param.default}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


if __name__ == "__main__":
    import sys

    sys.stdout.write(render())

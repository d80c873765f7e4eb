"""`axme completion bash|zsh|fish [--install]` (the values it completes: cli/completers.py)."""

from __future__ import annotations

from typing import Annotated

import typer

SHELLS = ("bash", "zsh", "fish")

app = typer.Typer(rich_markup_mode=None)


@app.command("completion")
def completion(
    shell: Annotated[str, typer.Argument(help="bash, zsh or fish.", show_default=False)],
    install: Annotated[bool, typer.Option("--install", help="Add it to the shell's start-up file instead of "
                                          "printing it.")] = False,
) -> None:
    """Print the shell completion script (`eval "$(axme completion bash)"`), or install it with --install.
    Completes commands, flags, context names, agent addresses and recent intent ids."""
    from axme_cli.cli.common import output
    from axme_cli.cli.typer_internals import completion_script, install_completion
    from axme_cli.errors import UsageError

    if shell not in SHELLS:
        raise UsageError(f"completion: {shell!r} is not a shell axme completes", fix="choose bash, zsh or fish")
    if install:
        path = install_completion(shell)
        output().result({"ok": True, "shell": shell, "installed_in": path},
                        f"Installed {shell} completion in {path}; open a new shell to use it.")
        return
    script = completion_script(shell)
    output().result({"ok": True, "shell": shell, "script": script}, script.rstrip("\n"))

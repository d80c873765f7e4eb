"""`axme completion bash|zsh|fish [--install]`, and the completers of values people type often: context names,
agent addresses and recent intent ids.

A completer runs on every Tab press, so it reads local files first, asks the runtime only for intent ids (one
request, a one-second timeout) and never fails: any problem completes nothing."""

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


def context_names(incomplete: str) -> list[str]:
    try:
        from axme_cli.config import contexts

        return sorted(n for n in contexts.load()["contexts"] if n.startswith(incomplete))
    except Exception:
        return []


def agent_addresses(incomplete: str) -> list[str]:
    """Agents this machine holds keys for (scenario-agents.json), by bare name and by address."""
    try:
        from axme_cli.config import agents_file

        names: set[str] = set()
        for entry in agents_file.load():
            address = str(entry.get("address") or "")
            names.update({address, address.rsplit("/", 1)[-1]})
        return sorted(n for n in names if n and n.startswith(incomplete))
    except Exception:
        return []


def intent_ids(incomplete: str) -> list[str]:
    """The newest intents of the active context whose id starts with what is typed."""
    try:
        from axme_cli.cli.common import target
        from axme_cli.client.http import Client

        t = target()
        if not (t.api_key or t.actor_token):
            return []
        prefix = incomplete.lower() if all(c in "0123456789abcdef-" for c in incomplete.lower()) else None
        if incomplete and prefix is None:
            return []
        with Client.for_target(t, timeout=1.0) as c:
            rows, _ = c.list_intents(limit=20, id_prefix=prefix or None)
        return [str(r["intent_id"]) for r in rows]
    except Exception:
        return []

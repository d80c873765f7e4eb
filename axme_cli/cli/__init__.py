"""The `axme` command. Only typer is imported up front; each command imports what it needs."""

from __future__ import annotations


def main() -> None:
    import gc

    # Imports and click's command tree allocate tens of thousands of objects that all stay and make almost no
    # garbage: the collections they would trigger find next to nothing and cost ms of every command's start. The
    # root callback (cli/app.py) turns collection on again before any command runs.
    gc.disable()
    try:
        from axme_cli.cli.app import app

        app()  # exits: the root group maps every outcome to an exit code (cli/app.py)
    finally:
        gc.enable()  # for a caller that goes on (tests call main in their own process)

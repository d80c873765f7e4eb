"""The `axme` command. Only typer is imported up front; each command imports what it needs."""

from __future__ import annotations


def main() -> None:
    from axme_cli.cli.app import app

    app()  # exits: the root group maps every outcome to an exit code (cli/app.py)

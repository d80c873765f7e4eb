"""The typer application. Command modules register themselves; their bodies import lazily."""

from __future__ import annotations

import typer

HELP = """axme: the CLI and local runtime for the AXP intent protocol.

Start a runtime with `axme dev`, then check it with `axme status`.
Exit codes: 0 ok, 1 the request failed, 2 usage or configuration problem."""


def build() -> typer.Typer:
    app = typer.Typer(
        name="axme",
        help=HELP,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        no_args_is_help=True,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    from axme_cli.cli import dev, status

    dev.register(app)
    status.register(app)
    return app

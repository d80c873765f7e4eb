"""The typer application. Command modules register themselves; their bodies import lazily."""

from __future__ import annotations

import typer

from axme_cli.cli.common import STATE, ApiKeyOpt, BaseUrlOpt, ContextOpt

HELP = """axme: the CLI and local runtime for the AXP intent protocol.

Start a runtime with `axme dev`, then check it with `axme status`.
--json (anywhere on the line) prints one JSON document; streams print one JSON object per line.
Exit codes: 0 ok, 1 the request failed or the awaited intent ended badly, 2 usage, configuration
or credentials problem. Precedence: flags > AXME_* environment > the active context."""


def build() -> typer.Typer:
    app = typer.Typer(
        name="axme",
        help=HELP,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        no_args_is_help=True,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @app.callback()
    def root(
        json_out: bool = typer.Option(False, "--json", help="Print one JSON document (also after any command)."),
        base_url: BaseUrlOpt = None,
        api_key: ApiKeyOpt = None,
        context: ContextOpt = None,
    ) -> None:
        STATE.json = STATE.json or json_out
        STATE.base_url = base_url
        STATE.api_key = api_key
        STATE.context = context

    from axme_cli.cli import auth, contexts, dev, doctor, intents, scenarios, status

    dev.register(app)
    status.register(app)
    intents.register(app)
    contexts.register(app)
    auth.register(app)
    doctor.register(app)
    scenarios.register(app)
    return app

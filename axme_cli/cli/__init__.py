"""The `axme` command. Only typer is imported up front; each command imports what it needs."""

from __future__ import annotations

import os
import sys


def main() -> None:
    from axme_cli.config.files import ConfigFileError
    from axme_cli.errors import EXIT_USAGE, CliError

    as_json = "--json" in sys.argv[1:]
    if as_json:
        from axme_cli.cli.common import STATE

        STATE.json = True
        sys.argv[1:] = [a for a in sys.argv[1:] if a != "--json"]
    try:
        from axme_cli.cli.app import build

        build()(prog_name="axme")
    except CliError as exc:
        from axme_cli.render.console import report_error

        report_error(exc, as_json=as_json)
        sys.exit(exc.exit_code)
    except ConfigFileError as exc:
        from axme_cli.render.console import report_error

        report_error(CliError(str(exc), exit_code=EXIT_USAGE, code="config_error"), as_json=as_json)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # the last line of defence: a sentence, not a traceback
        if os.environ.get("AXME_DEBUG"):
            raise
        from axme_cli.render.console import report_error

        report_error(
            CliError(
                f"unexpected error: {exc.__class__.__name__}: {exc}",
                fix="rerun with AXME_DEBUG=1 for the traceback and report it",
            ),
            as_json=as_json,
        )
        sys.exit(1)

"""The `axme` command. Only typer is imported up front; each command imports what it needs."""

from __future__ import annotations

import os
import sys


def main() -> None:
    from axme_cli.errors import EXIT_USAGE, CliError

    as_json = "--json" in sys.argv[1:]
    if as_json:
        from axme_cli.cli.common import STATE

        STATE.json = True
        sys.argv[1:] = [a for a in sys.argv[1:] if a != "--json"]
    try:
        from axme_cli.cli.app import build

        # Not standalone: usage errors come back here, so --json can report them as JSON too.
        code = build()(prog_name="axme", standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except CliError as exc:
        from axme_cli.render.console import report_error

        report_error(exc, as_json=as_json)
        sys.exit(exc.exit_code)
    except _config_file_error() as exc:
        from axme_cli.render.console import report_error

        report_error(CliError(str(exc), exit_code=EXIT_USAGE, code="config_error"), as_json=as_json)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # the last line of defence: a sentence, not a traceback
        if _is_click_error(exc, "Abort"):
            sys.exit(130)
        if _is_click_error(exc, "ClickException"):
            if as_json:
                from axme_cli.render.console import print_json

                print_json({"ok": False, "error": {"code": "usage_error", "message": exc.format_message()}})  # type: ignore[attr-defined]
            exc.show()  # type: ignore[attr-defined]
            sys.exit(getattr(exc, "exit_code", EXIT_USAGE))
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


def _is_click_error(exc: BaseException, name: str) -> bool:
    """typer vendors click in some versions: recognise its exceptions by class name, not by import path."""
    return any(cls.__name__ == name for cls in type(exc).__mro__)


def _config_file_error() -> tuple[type[Exception], ...]:
    """ConfigFileError, without importing config.files (~5 ms) for commands that never load it: if the
    module is not loaded, nothing can have raised its error (and `except ()` matches nothing)."""
    files = sys.modules.get("axme_cli.config.files")
    return (files.ConfigFileError,) if files is not None else ()

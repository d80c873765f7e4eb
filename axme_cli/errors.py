"""Errors the CLI reports to people: one sentence, the fix, and an exit code. Never a traceback.

One tree: a `UsageError` (exit 2: usage, configuration or credentials) or a failure (exit 1). `cli/__init__.py`
is the one place that turns any of them (and click's own) into output and an exit code. `code` is the
machine-readable reason `--json` reports; the subclasses let a caller catch a kind of failure without
comparing codes.
"""

from __future__ import annotations

EXIT_FAILURE = 1  # the request failed, or the awaited intent ended badly
EXIT_USAGE = 2  # usage, configuration or credentials problem


class CliError(Exception):
    exit_code = EXIT_FAILURE
    default_code = "error"

    def __init__(self, message: str, *, fix: str | None = None, exit_code: int | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        if exit_code is not None:
            self.exit_code = exit_code
        self.code = code or self.default_code


class UsageError(CliError):
    """Exit 2: the command line, a config file or the credentials need fixing."""

    exit_code = EXIT_USAGE
    default_code = "usage_error"


class ConfigFileError(UsageError):
    """A config file exists but cannot be read or parsed; the message names the file and the fix."""

    default_code = "config_error"


class AuthError(UsageError):
    """The runtime refused the credentials (401): sign in again or pass another key."""


class NotFoundError(CliError):
    """The runtime has no such thing (404)."""


class ConflictError(CliError):
    """The runtime refused the change because of the thing's state (409)."""


class UnreachableError(CliError):
    """No answer from the runtime: nothing listens, or it did not answer in time."""

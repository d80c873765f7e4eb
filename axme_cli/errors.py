"""Errors the CLI reports to people: one sentence, the fix, and an exit code. Never a traceback."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1  # the request failed, or the awaited intent ended badly
EXIT_USAGE = 2  # usage, configuration or credentials problem


class CliError(Exception):
    def __init__(
        self, message: str, *, fix: str | None = None, exit_code: int = EXIT_FAILURE, code: str = "error"
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.exit_code = exit_code
        self.code = code


class UsageError(CliError):
    def __init__(self, message: str, *, fix: str | None = None, code: str = "usage_error") -> None:
        super().__init__(message, fix=fix, exit_code=EXIT_USAGE, code=code)

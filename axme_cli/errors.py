"""Errors the CLI reports to people: one sentence, the fix, and an exit code. Never a traceback.

One tree: a `UsageError` (exit 2: usage, configuration or credentials) or a failure (exit 1). `cli/app.py`
(`exit_code_for`) is the one place that turns any of them (and click's own) into output and an exit code. `code` is the
machine-readable reason `--json` reports; the subclasses let a caller catch a kind of failure without
comparing codes.
"""

from __future__ import annotations

EXIT_FAILURE = 1  # the request failed, or the awaited intent ended badly
EXIT_USAGE = 2  # usage, configuration or credentials problem
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what any Unix tool ends with when the reader of its output went away


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


class WaitTimeout(CliError):
    """`--timeout` ran out before the awaited intent ended (exit 1; the intent itself goes on)."""

    default_code = "wait_timeout"


class OutputError(CliError):
    """stdout itself failed: closed, full, or a pipe whose reader went away (then quiet, exit 141)."""

    default_code = "output_failed"

    def __init__(self, message: str, *, broken_pipe: bool = False) -> None:
        super().__init__(message, fix=None if broken_pipe else "give the command a stdout it can write to "
                         "(a terminal, a file on a disk with room, or a pipe)",
                         exit_code=EXIT_BROKEN_PIPE if broken_pipe else EXIT_FAILURE)
        self.broken_pipe = broken_pipe

    @classmethod
    def of(cls, exc: BaseException) -> OutputError:
        import errno

        if isinstance(exc, OSError) and exc.errno == errno.EPIPE:
            return cls("the reader of the output went away (broken pipe)", broken_pipe=True)
        if isinstance(exc, OSError) and exc.errno == errno.EBADF or isinstance(exc, ValueError):
            return cls("cannot write the output: stdout is closed")
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return cls(f"cannot write the output: {reason}")

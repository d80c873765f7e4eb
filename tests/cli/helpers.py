"""Running `axme` as a user would: its own config folder, no colour, no inherited target.

``run`` drives the CLI in this process (typer's CliRunner isolation: stdin, stdout, stderr and the environment
swapped for the call), the same command tree `axme` builds, and answers as ``axme`` does (a CompletedProcess:
returncode, stdout, stderr), at a few milliseconds a call instead of a process start. ``axme`` runs the installed
module as a process: for what only a process shows (a terminal, signals, start-up, what the interpreter does at
exit with a closed or full stdout).
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, AXME_CONFIG_DIR=str(home / "cfg"), AXME_DATA_DIR=str(home / "data"),
               AXME_CLI_SECRET_STORAGE="file", NO_COLOR="1", AXME_PAGER="")  # a pager on a test's pty would wait
    for name in ("AXME_BASE_URL", "AXME_API_KEY", "AXME_CONTEXT", "AXME_DEBUG", "AXME_OUTPUT"):
        env.pop(name, None)
    env.update(extra)
    return env


def axme(env: dict[str, str], *args: str, timeout: float = 120, **popen: Any) -> subprocess.CompletedProcess[str]:
    popen.setdefault("capture_output", "stdout" not in popen)
    if "stdout" in popen:
        popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.run([sys.executable, "-m", "axme_cli", *args], env=env, text=True, timeout=timeout, **popen)


_ROOT: list[Any] = []


def _root() -> Any:
    """The click command `axme` runs (cli/app.py's lazily built tree), built once for the test process."""
    if not _ROOT:
        from axme_cli.cli.app import app
        from axme_cli.cli.typer_internals import lazy_command

        _ROOT.append(lazy_command(app))
    return _ROOT[0]


class _ThisThread:
    """sys.stdout or sys.stderr while ``run`` runs a command: what the calling thread writes is the command's
    output; what other threads write goes where it went before. A runtime served by a thread of this process
    prints login codes and task mails on its stdout, which a process of its own would never hand the CLI."""

    def __init__(self, mine: Any, theirs: Any) -> None:
        self._mine, self._theirs, self._owner = mine, theirs, threading.get_ident()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._mine if threading.get_ident() == self._owner else self._theirs, name)


def run(env: Mapping[str, str], *args: str, input: str | None = None,
        stdout: Any = ...) -> subprocess.CompletedProcess[str]:
    """`axme *args` in this process, with exactly ``env`` as its environment (variables not in it are unset for
    the call) and ``input`` on a stdin that is not a terminal (empty if None, as /dev/null). ``stdout``, when
    given, is the command's stdout instead of a capture (a file object, or None: started with stdout closed).
    Not thread-safe: it swaps sys.stdout and os.environ, so calls run one after another."""
    from typer.testing import CliRunner

    overrides: dict[str, str | None] = {name: None for name in os.environ if name not in env}
    overrides.update(env)
    theirs = sys.stdout, sys.stderr
    # What `agents run` sets for a whole process: SIGINT and SIGTERM handed to its event loop (whose closing,
    # uvloop's, leaves them there) and the garbage collector tuned for a server (runtime/server.tune_gc)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    try:
        with CliRunner().isolation(input=input, env=overrides) as (out, err, _):
            streams = (sys.stdout, sys.stderr)  # held: a command that drops sys.stdout must not close the capture
            sys.stdout = _ThisThread(streams[0], theirs[0]) if stdout is ... else stdout  # type: ignore[assignment]
            sys.stderr = _ThisThread(streams[1], theirs[1])  # type: ignore[assignment]
            try:
                _root().main(list(args), prog_name="axme")
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except Exception:  # escaped the root (AXME_DEBUG): what the interpreter would print, and exit 1
                if sys.stderr is not None:
                    traceback.print_exc()
                code = 1
            for stream in streams:
                with contextlib.suppress(ValueError):  # the command closed it
                    stream.flush()
            printed, said = (part.getvalue().decode("utf-8", "replace") for part in (out, err))
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        gc.set_threshold(*thresholds)
        if gc.get_freeze_count() and not frozen:
            gc.unfreeze()
    return subprocess.CompletedProcess(["axme", *args], code, printed, said)


@dataclass(frozen=True)
class Invoked:
    """What ``cli_invoke`` answers: the fields of typer's ``Result`` the tests read."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def cli_invoke(args: Sequence[str], input: str | None = None, env: Mapping[str, str | None] | None = None) -> Invoked:
    """``CliRunner().invoke(app, args, input=, env=)`` as typer has it (``env`` changes this process's environment
    for the call; None unsets a variable), on the command tree `axme` builds, built once: typer's CliRunner builds
    every command of the tree on each call (~30 ms of CPU), which `axme` itself never does."""
    merged = {**os.environ, **(env or {})}
    done = run({name: value for name, value in merged.items() if value is not None}, *args, input=input)
    return Invoked(done.returncode, done.stdout, done.stderr)


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    text = (result.stdout or "") + (result.stderr or "")
    assert "Traceback" not in text and "unexpected error" not in text and "Exception ignored" not in text, text

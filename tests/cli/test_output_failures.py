"""stdout closed, full, or a pipe whose reader went away: one sentence on stderr (or, for a broken pipe, silence
and 141), never a traceback, in every mode (text, --json, a stream of JSON lines).

Every command meets each failing stdout in this process (``run`` with the stdout given: the same writes, the same
errors); one command per kind also as a process of its own, where what the interpreter does at exit (its last
flush of stdout) is part of the answer."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from tests.cli.helpers import axme, env_for, no_traceback, run
from tests.runtime_proc import TLS, RuntimeProcess

# Commands that write a result to stdout: a single result, a list, a stream of events, text and JSON.
COMMANDS = [
    ("status", "--json"),
    ("status",),
    ("intents", "list", "--json"),
    ("intents", "list"),
    ("version",),
]


def _close_stdout() -> None:
    os.close(1)


CLOSED = "axme: cannot write the output: stdout is closed\n  fix: "
FULL = "axme: cannot write the output: No space left on device\n"


@pytest.fixture
def broken_pipe() -> Iterator[IO[str]]:
    """The writing end of a pipe whose reader went away before anything was written (`axme ... | head -0`)."""
    read, write = os.pipe()
    os.close(read)
    with os.fdopen(write, "w") as stream:
        yield stream


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_stdout_closed(runtime: RuntimeProcess, tmp_path: Path, args: tuple[str, ...]) -> None:
    env = env_for(tmp_path, AXME_BASE_URL=runtime.url, AXME_API_KEY=runtime.api_key or "")
    result = run(env, *args, stdout=None)  # as Python starts with fd 1 closed: sys.stdout is None
    assert result.returncode == 1
    assert result.stderr.startswith(CLOSED), result.stderr
    no_traceback(result)


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_stdout_full(runtime: RuntimeProcess, tmp_path: Path, args: tuple[str, ...]) -> None:
    env = env_for(tmp_path, AXME_BASE_URL=runtime.url, AXME_API_KEY=runtime.api_key or "")
    with open("/dev/full", "w") as full:
        result = run(env, *args, stdout=full)
    assert result.returncode == 1
    assert result.stderr.startswith(FULL), result.stderr
    no_traceback(result)


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_broken_pipe_is_quiet(runtime: RuntimeProcess, tmp_path: Path, args: tuple[str, ...],
                              broken_pipe: IO[str]) -> None:
    env = env_for(tmp_path, AXME_BASE_URL=runtime.url, AXME_API_KEY=runtime.api_key or "")
    result = run(env, *args, stdout=broken_pipe)
    assert result.returncode == 141 and result.stderr == ""


@pytest.mark.backends("sqlite")
def test_each_kind_as_a_process(runtime: RuntimeProcess, tmp_path: Path) -> None:
    """The same three as processes: nothing left for the interpreter's last flush to fail on at exit."""
    env = env_for(tmp_path, AXME_BASE_URL=runtime.url, AXME_API_KEY=runtime.api_key or "")
    args = [sys.executable, "-m", "axme_cli", "intents", "list"]
    closed = subprocess.run(args, env=env, stderr=subprocess.PIPE, text=True, preexec_fn=_close_stdout, timeout=60)
    assert closed.returncode == 1 and closed.stderr.startswith(CLOSED), closed.stderr
    no_traceback(closed)
    with open("/dev/full", "w") as full:
        filled = axme(env, *args[3:], stdout=full)
    assert filled.returncode == 1 and filled.stderr.startswith(FULL), filled.stderr
    no_traceback(filled)
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader goes away before anything is written (`axme ... | head -0`)
    code = proc.wait(60)
    assert code == 141 and proc.stderr.read() == ""


@pytest.mark.backends("sqlite")
def test_error_report_with_stdout_closed(tmp_path: Path) -> None:
    """The command fails (nothing listens) and its --json error document cannot be written either."""
    env = env_for(tmp_path, AXME_BASE_URL="http://127.0.0.1:9")
    result = run(env, "status", "--json", stdout=None)
    assert result.returncode == 1 and result.stderr.startswith("axme: cannot reach http://127.0.0.1:9\n")
    no_traceback(result)


@pytest.mark.backends("sqlite")
def test_stream_of_events_into_a_full_disk(runtime: RuntimeProcess, tmp_path: Path) -> None:
    import httpx

    from tests.conftest import new_intent

    with httpx.Client(verify=TLS, base_url=runtime.url, headers={"x-api-key": runtime.api_key or ""}) as c:
        intent_id = c.post("/v1/intents", json=new_intent()).json()["intent_id"]
        c.post(f"/v1/intents/{intent_id}/resolve", json={"status": "CANCELED"}).raise_for_status()
    env = env_for(tmp_path, AXME_BASE_URL=runtime.url, AXME_API_KEY=runtime.api_key or "")
    with open("/dev/full", "w") as full:
        result = run(env, "intents", "watch", intent_id, "--json", stdout=full)
    assert result.returncode == 1 and "No space left on device" in result.stderr
    no_traceback(result)


def test_usage_error_report_with_stdout_closed(tmp_path: Path) -> None:
    """A usage error under --json: its JSON document cannot be written, so the sentence alone says it (exit 2)."""
    result = run(env_for(tmp_path), "nosuch", "--json", stdout=None)
    assert (result.returncode, result.stderr) == (2, "axme: No such command 'nosuch'.\n")

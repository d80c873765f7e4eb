"""Waiting for an intent: `send --wait` says the intent id before it waits (so stopping never loses it), and
`--timeout` on `send --wait`, `observe` and `intents watch` ends the wait with exit 1 naming the intent."""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.cli.helpers import env_for, no_traceback, run
from tests.runtime_proc import RuntimeProcess

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _env(rt: RuntimeProcess, home: Path) -> dict[str, str]:
    return env_for(home, AXME_BASE_URL=rt.url, AXME_API_KEY=rt.api_key or "")


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("as_json", [False, True])
def test_send_wait_says_the_id_before_waiting(quiet: RuntimeProcess, tmp_path: Path, as_json: bool) -> None:
    """Nobody serves the address and nothing is redelivered for minutes: the command waits, and its first line
    (stdout; stderr with --json, so stdout stays one document) already holds the id. Ctrl+C then leaves an
    intent that `intents get` finds by that id."""
    env = _env(quiet, tmp_path)
    args = ["intents", "send", "--to", "nobody-waits-here", "--wait", *(["--json"] if as_json else [])]
    # SIGINT as a terminal gives it: a session started in the background of a shell without job control ignores
    # SIGINT, and a child inherits that (Python then never raises KeyboardInterrupt).
    proc = subprocess.Popen([sys.executable, "-m", "axme_cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        stream = proc.stderr if as_json else proc.stdout
        assert stream is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in iter(stream.readline, "")], daemon=True).start()
        line = ""
        while "Sent intent" not in line:  # (a warning about the unserved address may come first on stderr)
            # A guard against hanging on a command that says nothing while it waits, not a measurement.
            line = lines.get(timeout=60)
        assert proc.poll() is None, "the id must come while the command still waits"
        found = UUID.search(line)
        assert found, line
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        rest = "".join(lines.queue)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130
    assert "Traceback" not in rest
    got = run(env, "intents", "get", found.group(0), "--json")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["intent"]["status"] not in ("COMPLETED", "FAILED")


@pytest.mark.backends("sqlite")
def test_timeouts_end_the_wait_naming_the_intent(quiet: RuntimeProcess, tmp_path: Path) -> None:
    env = _env(quiet, tmp_path)
    # Short timeouts: nothing serves the address and nothing is redelivered, so every wait runs out.
    sent = run(env, "intents", "send", "--to", "nobody-waits-here", "--wait", "--timeout", "0.2")
    no_traceback(sent)
    assert sent.returncode == 1, sent.stderr
    intent_id = UUID.search(sent.stdout).group(0)  # type: ignore[union-attr]
    assert f"intent {intent_id} did not end within 0.2 s" in sent.stderr
    assert f"axme observe {intent_id}" in sent.stderr  # the fix

    for args in (["observe", intent_id], ["intents", "watch", intent_id]):
        waited = run(env, *args, "--timeout", "0.25")
        no_traceback(waited)
        assert waited.returncode == 1, (args, waited.stderr)
        assert f"intent {intent_id} did not end within 0.25 s" in waited.stderr

    as_json = run(env, "observe", intent_id, "--timeout", "0.2", "--json")
    assert as_json.returncode == 1
    lines = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert lines[-1] == {"ok": False, "error": {"code": "wait_timeout", "message": lines[-1]["error"]["message"]}}
    assert intent_id in lines[-1]["error"]["message"]


@pytest.mark.backends("sqlite")
def test_timeout_is_not_needed_when_the_intent_ends(quiet: RuntimeProcess, tmp_path: Path) -> None:
    env = _env(quiet, tmp_path)
    intent_id = json.loads(run(env, "intents", "send", "--to", "ends-soon", "--json").stdout)["intent_id"]
    assert run(env, "intents", "cancel", intent_id).returncode == 0
    waited = run(env, "observe", intent_id, "--timeout", "30")
    assert waited.returncode == 1 and "did not end" not in waited.stderr, waited.stderr  # CANCELED: exit 1
    assert "CANCELED" in waited.stdout


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "-inf", "soon"])
def test_bad_timeouts_are_usage_errors(tmp_path: Path, value: str) -> None:
    env = env_for(tmp_path, AXME_BASE_URL="http://127.0.0.1:9", AXME_API_KEY="k")
    for args in (["intents", "send", "--to", "x", "--wait"], ["observe", "0" * 8 + "-0000-0000-0000-" + "0" * 12]):
        result = run(env, *args, f"--timeout={value}")
        no_traceback(result)
        assert result.returncode == 2, (args, value, result.stderr)
        assert "--timeout" in result.stderr


def test_timeout_without_wait_is_a_usage_error(tmp_path: Path) -> None:
    env = env_for(tmp_path, AXME_BASE_URL="http://127.0.0.1:9", AXME_API_KEY="k")
    result = run(env, "intents", "send", "--to", "x", "--timeout", "5")
    assert result.returncode == 2
    assert "--timeout applies to --wait only" in result.stderr

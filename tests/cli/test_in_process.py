"""The CLI driven in-process by typer's CliRunner: global options live in the click context (no process-wide
state), errors become exit codes and output at the root, and --json counts only before `--`."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from axme_cli.cli.app import app, json_requested
from tests.cli.helpers import env_for, run
from tests.conftest import make_agent
from tests.runtime_proc import RuntimeProcess


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_version_json_in_process(home: Path) -> None:
    from axme_cli import __version__

    code, out, _ = invoke("version", "--json")
    assert code == 0 and json.loads(out)["version"] == __version__
    code, out, _ = invoke("version")  # the same runner again: nothing of the first run's --json is left over
    assert code == 0 and out.startswith(f"axme {__version__} (python ")


def test_context_commands_in_process(home: Path) -> None:
    code, out, _ = invoke("--json", "context", "list")
    assert code == 0 and json.loads(out) == {"ok": True, "items": [], "next_cursor": None}
    code, out, _ = invoke("context", "create", "ci", "--base-url", "http://127.0.0.1:9", "--json")
    assert code == 0 and json.loads(out) == {"ok": True, "context": "ci", "active": False}
    code, out, _ = invoke("context", "list", "--json")
    assert [c["name"] for c in json.loads(out)["items"]] == ["ci"]
    code, out, err = invoke("context", "use", "nope", "--json")
    assert code == 2 and json.loads(out)["error"]["code"] == "usage_error" and "no context named 'nope'" in err


@pytest.mark.backends("sqlite")  # what the CLI makes of the answers; no storage decides them
def test_status_json_against_a_runtime_in_process(runtime: RuntimeProcess, home: Path) -> None:
    code, out, _ = invoke("--base-url", runtime.url, "status", "--json")
    assert code == 0, out
    body = json.loads(out)
    assert body["ok"] is True and body["service"] == "axme-dev"
    code, out, _ = invoke("intents", "get", str(uuid.uuid4()), "--json", "--base-url", runtime.url,
                          "--api-key", runtime.api_key or "")
    assert code == 1 and json.loads(out)["ok"] is False  # a 404: a failure, reported as JSON


def test_usage_errors_exit_2_and_unreachable_exits_1(home: Path) -> None:
    code, out, err = invoke("no-such-command", "--json")
    assert code == 2 and json.loads(out)["error"]["code"] == "usage_error" and "No such command" in err
    code, out, err = invoke("status", "--base-url", "http://127.0.0.1:9", "--json")
    assert code == 1 and json.loads(out)["error"]["code"] == "unreachable"
    assert "cannot reach http://127.0.0.1:9" in err and "Traceback" not in err


@pytest.mark.parametrize(("argv", "expected"), [
    (["version", "--json"], True),
    (["--json", "version"], True),
    (["agents", "run", "x", "--json", "--", "prog"], True),
    (["agents", "run", "x", "--", "prog", "--json"], False),
    (["agents", "run", "x", "--", "prog", "--", "--json"], False),
    (["version"], False),
])
def test_json_counts_only_before_the_double_dash(argv: list[str], expected: bool) -> None:
    assert json_requested(argv) is expected


ECHO_ARGV = "import json, sys; sys.stdin.read(); print(json.dumps({'argv': sys.argv[1:]}))"


@pytest.mark.backends("sqlite")  # what reaches the program; no storage decides it
def test_agents_run_passes_json_after_double_dash_to_the_program(quiet: RuntimeProcess, tmp_path: Path) -> None:
    # `quiet` redelivers nothing for minutes: the program (a Python start) may take its time without the intent
    # running out of delivery attempts meanwhile
    name = f"argv-{uuid.uuid4().hex[:8]}"
    with quiet.client() as admin:
        _, token = make_agent(admin, name)
        body = {"intent_type": "test.argv.v1", "correlation_id": str(uuid.uuid4()), "to_agent": name, "payload": {}}
        intent_id = admin.post("/v1/intents", json=body).json()["intent_id"]
    result = run(env_for(tmp_path), "agents", "run", name, "--api-key", token, "--base-url", quiet.url,
                 "--max-intents", "1", "--", sys.executable, "-c", ECHO_ARGV, "--json", "--", "x")
    assert result.returncode == 0, result.stderr
    with quiet.client() as admin:
        intent = admin.get(f"/v1/intents/{intent_id}").json()["intent"]
    assert intent["status"] == "COMPLETED", (intent, result.stderr)  # resumed before the runner stopped
    assert intent["result"] == {"argv": ["--json", "--", "x"]}

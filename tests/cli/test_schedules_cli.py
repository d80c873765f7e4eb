"""`axme schedules` against the real runtime, driven in-process (typer's CliRunner through the root's error handling):
create from a scenario file, list, get, trigger (the run is an intent that names the schedule), the overlap policy,
pause, resume, delete; and bad input: exit 2 naming the flag (or the file and field) and the fix, before any request
(the base URL these use answers nothing, so a request would be exit 1)."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from axme_cli.cli.app import app
from axme_cli.cli.typer_internals import lazy_command
from tests.cli.helpers import env_for, no_traceback
from tests.conftest import unique
from tests.receiver import closed_port_url
from tests.runtime_proc import RuntimeProcess

# What the CLI does with the answers does not depend on the storage (tests/runtime/api/test_schedules.py runs the
# routes on both backends).
pytestmark = pytest.mark.backends("sqlite")


@functools.cache
def _root() -> Any:
    """The `axme` group as the installed command builds it (each command on first lookup), once: typer's CliRunner
    builds every command of the CLI on each call (a quarter of a second)."""
    return lazy_command(app)


def invoke(*args: str) -> tuple[int, str, str]:
    """``axme ARGS`` in-process through the root's main() (the one place errors become exit codes)."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            _root().main(list(args), prog_name="axme")
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    return code, out.getvalue(), err.getvalue()


def bundle_file(folder: Path, **intent: Any) -> Path:
    path = folder / "nightly.json"
    path.write_text(json.dumps({
        "scenario_id": "nightly.report", "agents": [{"role": "reporter", "address": unique("reporter")}],
        "intent": {"type": "report.nightly.v1", "payload": {"report": "sales"}, **intent}}))
    return path


def test_create_list_trigger_pause_resume_delete(runtime: RuntimeProcess, home: Path) -> None:
    target = ["--base-url", runtime.url, "--api-key", runtime.api_key or ""]
    code, out, err = invoke("schedules", "create", "--cron", "0 2 * * *", "--timezone", "Europe/Berlin",
                            "--scenario", str(bundle_file(home)), "--payload", '{"format": "pdf"}', "--data",
                            "day=mon", "--description", "nightly", "--json", *target)
    assert code == 0, err
    created = json.loads(out)
    assert created["ok"] is True
    s = created["schedule"]
    schedule_id = s["schedule_id"]
    assert (s["cron"], s["timezone"], s["kind"], s["scenario_id"]) == ("0 2 * * *", "Europe/Berlin", "scenario",
                                                                       "nightly.report")
    assert s["payload"] == {"format": "pdf", "day": "mon"} and s["next_fire_at"]

    code, out, _ = invoke("schedules", "list", "--json", *target)
    listed = json.loads(out)
    assert code == 0 and set(listed) == {"ok", "items", "next_cursor"}
    assert schedule_id in [x["schedule_id"] for x in listed["items"]]
    code, out, _ = invoke("schedules", "list", *target)
    assert code == 0 and schedule_id in out and "0 2 * * * (Europe/Berlin)" in out and "scenario nightly.report" in out
    code, out, _ = invoke("schedules", "get", schedule_id, *target)
    assert code == 0 and "Next run:" in out and "missed runs skip, overlap skip" in out

    code, out, _ = invoke("schedules", "trigger", schedule_id, "--json", *target)
    assert code == 0, out
    run = json.loads(out)["run"]
    assert run["started"] is True
    code, out, _ = invoke("intents", "get", run["intent_id"], "--json", *target)
    assert code == 0 and json.loads(out)["intent"]["schedule_id"] == schedule_id
    assert json.loads(out)["intent"]["payload"] == {"report": "sales", "format": "pdf", "day": "mon"}
    code, out, _ = invoke("schedules", "trigger", schedule_id, *target)  # the first run has not ended
    assert code == 0 and out.startswith(f"Skipped: the previous run {run['intent_id']} is still ")
    code, out, _ = invoke("schedules", "trigger", schedule_id, "--allow-overlap", *target)
    assert code == 0 and "started intent" in out and "axme observe " in out

    code, out, _ = invoke("schedules", "pause", schedule_id, *target)
    assert code == 0 and out.strip() == f"✓ Schedule {schedule_id} paused."
    code, out, _ = invoke("schedules", "get", schedule_id, "--json", *target)
    assert json.loads(out)["schedule"]["next_fire_at"] is None and json.loads(out)["schedule"]["runs"] == 2
    code, out, _ = invoke("schedules", "resume", schedule_id, *target)
    assert code == 0 and "resumed; next run 20" in out
    code, out, _ = invoke("schedules", "delete", schedule_id, "--json", *target)
    assert code == 0 and json.loads(out) == {"ok": True, "schedule_id": schedule_id, "deleted": True}
    code, out, err = invoke("schedules", "get", schedule_id, "--json", *target)
    assert code == 1 and json.loads(out)["error"]["code"] == "schedule_not_found" and "not found" in err


def test_an_intent_file_runs_an_intent(runtime: RuntimeProcess, home: Path) -> None:
    target = ["--base-url", runtime.url, "--api-key", runtime.api_key or ""]
    path = home / "intent.json"
    path.write_text(json.dumps({"intent_type": "report.nightly.v1", "to_agent": unique("reporter"),
                                "payload": {"report": "sales"}}))
    code, out, err = invoke("schedules", "create", "--cron", "@hourly", "--intent", str(path), "--overlap", "allow",
                            "--missed", "catch-up-one", "--paused", *target)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("✓ Schedule ") and lines[0].endswith(" at @hourly (UTC).")
    assert "report.nightly.v1 to agent://" in lines[0]
    assert [line.split() for line in lines[1:]] == [["Next", "run:", "paused"], ["Missed", "runs:", "catch_up_one"],
                                                    ["Overlap:", "allow"]]


def _write(folder: Path, name: str, body: Any) -> str:
    path = folder / name
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    return str(path)


BAD = [
    # (arguments after `schedules`, what stderr must name); files made in the test's folder
    (lambda d: ["create", "--cron", "61 * * * *", "--scenario", "x.json"], "--cron '61 * * * *': its minute"),
    (lambda d: ["create", "--cron", "* * *", "--scenario", "x.json"], "--cron '* * *': has 3 fields, not 5"),
    (lambda d: ["create", "--cron", "0 0 30 2 *", "--scenario", "x.json"], "--cron '0 0 30 2 *': its day-of-month"),
    (lambda d: ["create", "--cron", "@sometimes", "--scenario", "x.json"], "is not a shorthand"),
    (lambda d: ["create", "--cron", "0 2 * * *", "--timezone", "Mars/Olympus", "--scenario", "x.json"],
     "--timezone 'Mars/Olympus': is not an IANA time zone"),
    (lambda d: ["create", "--cron", "0 2 * * *", "--missed", "all", "--scenario", "x.json"], "--missed 'all'"),
    (lambda d: ["create", "--cron", "0 2 * * *", "--overlap", "queue", "--scenario", "x.json"], "--overlap 'queue'"),
    (lambda d: ["create", "--cron", "0 2 * * *"], "give --scenario FILE or --intent FILE"),
    (lambda d: ["create", "--cron", "0 2 * * *", "--scenario", "a.json", "--intent", "b.json"], "one of them"),
    (lambda d: ["create", "--cron", "0 2 * * *", "--scenario", str(d / "missing.json")], "missing.json: no such file"),
    (lambda d: ["create", "--cron", "0 2 * * *", "--scenario", _write(d, "bad.json", "{")], "not valid JSON"),
    (lambda d: ["create", "--cron", "0 2 * * *", "--scenario", _write(d, "short.json", {
        "scenario_id": "x", "agents": [{"role": "r", "address": "rep"}], "intent": {"type": "a.b.v1"}})],
     "short.json: scenario_id"),
    (lambda d: ["create", "--cron", "0 2 * * *", "--scenario", _write(d, "dl.json", {
        "scenario_id": "nightly", "agents": [{"role": "r", "address": "rep"}],
        "intent": {"type": "a.b.v1", "deadline_at": "2030-01-01T00:00:00Z"}})], "dl.json: intent.deadline_at"),
    (lambda d: ["create", "--cron", "0 2 * * *", "--intent", _write(d, "i.json", {
        "intent_type": "a.b.v1", "to_agent": 5, "payload": {}})], "i.json: to_agent"),
    (lambda d: ["create", "--cron", "0 2 * * *", "--intent", _write(d, "list.json", [1])], "--intent: must be a JSON"),
    (lambda d: ["create", "--cron", "0 2 * * *", "--scenario", str(bundle_file(d)), "--payload", "[1]"],
     "--payload: must be a JSON object"),
    (lambda d: ["create", "--cron", "0 2 * * *", "--scenario", str(bundle_file(d)), "--data", "novalue"],
     "--data 'novalue': expected key=value"),
    (lambda d: ["get", "not-an-id"], "schedule id 'not-an-id' is not a UUID"),
    (lambda d: ["trigger", "123"], "schedule id '123' is not a UUID"),
    (lambda d: ["list", "--cursor", "x"], "schedule id 'x' is not a UUID"),
]


@pytest.mark.parametrize("case", range(len(BAD)))
def test_bad_input_exits_2_naming_it_before_any_request(home: Path, case: int) -> None:
    argv, named = BAD[case]
    nowhere = closed_port_url().rsplit("/", 1)[0]
    code, out, err = invoke("schedules", *argv(home), "--base-url", nowhere, "--api-key", "k", "--json")
    assert code == 2, (out, err)
    assert named in err, err
    assert "fix:" in err and "Traceback" not in err
    assert json.loads(out)["ok"] is False


def test_the_installed_command_says_the_same(home: Path) -> None:
    env = env_for(home)
    result = subprocess.run([sys.executable, "-m", "axme_cli", "schedules", "create", "--cron", "0 25 * * *",
                             "--scenario", "x.json"], env=env, capture_output=True, text=True, timeout=60)
    no_traceback(result)
    assert result.returncode == 2
    assert result.stderr.startswith("axme: --cron '0 25 * * *': its hour (0-23) field is not valid")
    assert 'fix: write five fields: minute (0-59) hour (0-23)' in result.stderr and '"0 2 * * *"' in result.stderr

"""`axme scenarios test`, driven in-process (cli_invoke): the shipped scenario tests pass on a throwaway
runtime (this is how the project's CI runs them), a wrong expectation fails with expected vs actual and the intent,
bad files stop everything with exit 2 naming the field, the JUnit report parses, and a run against a context's
runtime (both backends) leaves nothing behind but its intents."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import httpx
import pytest

from tests.cli.helpers import cli_invoke
from tests.runtime_proc import RuntimeProcess
from tests.runtime_thread import RuntimeThread

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "scenarios").glob("*.test.json"))
ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AXME_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("AXME_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NO_COLOR", "1")
    for name in ("AXME_BASE_URL", "AXME_API_KEY", "AXME_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # a failed run keeps its runtime's folder: here
    shutil.copy(ROOT / "scenarios" / "order-saga.json", tmp_path / "order-saga.json")
    return tmp_path


def invoke(*args: str) -> tuple[int, str, str]:
    result = cli_invoke(list(args))
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result.exit_code, result.stdout, result.stderr


def write(path: Path, value: Any) -> str:
    path.write_text(json.dumps(value))
    return str(path)


def test_the_shipped_scenario_tests_pass(home: Path) -> None:
    """What the project's CI runs: `axme scenarios test scenarios/*.test.json` (here with --json and a report)."""
    report = home / "reports" / "junit.xml"  # its folder is made
    code, out, err = invoke("scenarios", "test", *map(str, SHIPPED), "--json", "--junit-xml", str(report))
    assert code == 0, out + err
    doc = json.loads(out)
    assert doc["ok"] is True and doc["next_cursor"] is None
    cases = [c["name"] for p in SHIPPED for c in json.loads(p.read_text())["cases"]]
    assert [item["case"] for item in doc["items"]] == cases and len(cases) >= 10
    for item in doc["items"]:
        assert item["passed"] is True and item["state"] == "passed" and item["failures"] == [] and not item["error"]
        assert re.fullmatch(ID, item["intent_id"]) and item["status"] in ("COMPLETED", "FAILED")
        assert item["file"] in map(str, SHIPPED) and item["steps"] and item["seconds"] > 0
    by_name = {i["case"]: i for i in doc["items"]}
    saga = by_name["shipping fails for good: the payment is refunded, then the stock released"]
    assert saga["compensated"] == ["charge", "reserve"] and saga["steps"] == ["reserve", "charge", "ship"]
    suites = ET.parse(report).getroot()
    assert suites.tag == "testsuites" and suites.get("tests") == str(len(cases))
    assert suites.get("failures") == "0" and suites.get("errors") == "0"
    assert [s.get("name") for s in suites] == [str(p) for p in SHIPPED]
    assert [c.get("name") for s in suites for c in s] == cases


def test_a_wrong_expectation_fails_showing_expected_actual_and_the_intent(home: Path) -> None:
    test = write(home / "wrong.test.json", {"bundle": "order-saga.json", "cases": [
        {"name": "right", "expect": {"status": "COMPLETED", "steps": ["reserve", "charge", "ship"]}},
        {"name": "expects a failure", "expect": {"status": "FAILED", "compensated": [], "error": {"reason": "x"}}},
        {"name": "events out of order", "expect": {"events": ["intent.completed", "intent.waiting"]}},
    ]})
    report = home / "junit.xml"
    code, out, err = invoke("scenarios", "test", test, "--junit-xml", str(report))
    assert code == 1, out + err
    assert f"PASS  {test} › right (" in out and f"FAIL  {test} › expects a failure (" in out
    block = out[out.index(f"FAIL {test} › expects a failure"):]
    assert '  expect.status: expected "FAILED", got "COMPLETED"' in block
    assert '  expect.error: expected an error containing {"reason": "x"}, got null' in block
    assert re.search(rf"  intent {ID}\n", block)
    assert "  expect.events[1]: intent.waiting appeared only before intent.completed" in out
    assert "3 cases: 1 passed, 2 failed in" in out
    assert "axme_test_" not in out + err  # the throwaway runtime's admin key is never shown
    kept = re.search(r"The test runtime's database is kept in (\S+): serve it with `axme dev --db \S+/test.db", out)
    assert kept and Path(kept[1]).parent == home and (Path(kept[1]) / "test.db").is_file()
    suite = ET.parse(report).getroot()[0]
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "2", "0")
    failure = suite[1].find("failure")
    assert failure is not None and failure.get("message") == 'expect.status: expected "FAILED", got "COMPLETED"'
    assert re.search(rf"intent {ID}", failure.text or "") and suite[0].find("failure") is None

    code, out, err = invoke("scenarios", "test", test, "-o", "jsonl")  # a line per case as it ends
    assert code == 1, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert sorted((x["case"], x["passed"]) for x in lines) == [
        ("events out of order", False), ("expects a failure", False), ("right", True)]
    failed = next(x for x in lines if x["case"] == "expects a failure")
    assert failed["failures"][0] == {"field": "expect.status", "expected": "FAILED", "actual": "COMPLETED",
                                     "message": 'expected "FAILED", got "COMPLETED"'}
    assert failed["events"][-1] == "intent.completed" and re.fullmatch(ID, failed["intent_id"])


@pytest.mark.parametrize(("test", "expected"), [
    ({"cases": [{"name": "a", "steps": {"shipp": "fail"}, "expect": {"status": "FAILED"}}]},
     'cases[0].steps.shipp: the bundle has no step "shipp" (did you mean "ship"?)'),
    ({"cases": [{"name": "a", "expect": {"status": "FAILED", "compensated": ["ship"]}}]},
     'cases[0].expect.compensated[0]: step "ship" has no "compensate" block, so it is never undone: this cannot '
     "happen; add a compensate block to the step, or drop it here"),
    ({"bundle": "nowhere.json", "cases": []}, "bundle: {home}/nowhere.json: no such file"),
    ("{not json", "not valid JSON at line 1 column 2"),
])
def test_a_bad_file_exits_2_naming_the_field_before_anything_runs(home: Path, test: Any, expected: str) -> None:
    path = home / "order-saga.test.json"  # names its bundle by its own name when "bundle" is left out
    path.write_text(test if isinstance(test, str) else json.dumps(test))
    code, out, err = invoke("scenarios", "test", str(path))
    assert code == 2, out + err
    assert f"{path}: {expected.format(home=home)}" in err, err
    assert "nothing ran" in err and out == ""
    code, out, _ = invoke("scenarios", "test", str(path), "--json")
    error = json.loads(out)["error"]
    assert code == 2 and error["code"] == "scenario_test_invalid" and expected.format(home=home) in error["message"]


def test_bad_bundles_flags_and_paths_exit_2(home: Path) -> None:
    bundle = json.loads((home / "order-saga.json").read_text())
    bundle["workflow"]["steps"][0]["on_failure"] = "nowhere"
    write(home / "broken.json", bundle)
    test = write(home / "t.test.json", {"bundle": "broken.json", "cases": [{"name": "a", "expect": {"status":
                                                                                                     "FAILED"}}]})
    code, _, err = invoke("scenarios", "test", test)
    assert code == 2 and f'{home}/broken.json (the bundle of {test}): steps[0].on_failure: no step "nowhere"' in err
    good = write(home / "order-saga.test.json", {"cases": [{"name": "a", "expect": {"status": "COMPLETED"}}]})
    code, _, err = invoke("scenarios", "test", good, "-o", "xml")
    assert code == 2 and "--output: 'xml' is not an output format" in err
    (home / "file").write_text("")
    code, _, err = invoke("scenarios", "test", good, "--junit-xml", str(home / "file" / "junit.xml"))
    assert code == 2 and f"--junit-xml {home}/file/junit.xml: cannot be written" in err
    code, _, err = invoke("scenarios", "test", good, "--base-url", "http://127.0.0.1:9")
    assert code == 2 and "--base-url, --api-key and --context choose the runtime of --against-context" in err
    code, _, err = invoke("scenarios", "test", str(home / "none.test.json"))
    assert code == 2 and f"{home}/none.test.json: no such file" in err


REFUND = {
    "scenario_id": "refund.approval.v1",
    "agents": [{"role": "payments", "address": "payments", "create_if_missing": True}],
    "humans": [{"role": "manager", "contact": "manager@example.com"}],
    "workflow": {"steps": [
        {"step_id": "approve", "assigned_to": "manager", "step_deadline_seconds": 3600,
         "human_task": {"title": "Approve the refund", "notify_email": "manager@example.com",
                        "form_schema": {"type": "object", "required": ["amount_cents"],
                                        "properties": {"amount_cents": {"type": "integer"}}}}},
        {"step_id": "cool_off", "runtime_type": "delay", "runtime_config": {"seconds": 0.1}},
        {"step_id": "refund", "assigned_to": "payments"},
        {"step_id": "notify", "tool_id": "tool.internal.notification"},
    ]},
    "intent": {"type": "refund.request.v1", "payload": {"order_id": "ord_1"}},
}
PAYMENTS = """
import json, os, sys
step = json.load(sys.stdin)
amount = step["results"]["approve"]["amount_cents"]
if amount > 1000:
    sys.exit("refusing a refund above 1000")
print(json.dumps({"refund_id": "rf_" + step["parent_payload"]["order_id"], "step": os.environ["AXME_STEP_ID"]}))
"""


def test_human_steps_delays_and_a_real_agent(home: Path) -> None:
    write(home / "refund.json", REFUND)
    (home / "agents").mkdir()
    (home / "agents" / "payments.py").write_text(PAYMENTS)
    approve = {"approve": {"answer": {"outcome": "approved", "amount_cents": 500, "comment": "fine"}}}
    test = write(home / "refund.test.json", {"cases": [
        {"name": "approved", "steps": {**approve, "refund": {"complete": {"refund_id": "rf_9"}}},
         "payload": {"order_id": "ord_9"},
         "expect": {"status": "COMPLETED", "steps": ["approve", "cool_off", "refund", "notify"],
                    "result": {"results": {"approve": {"outcome": "approved", "amount_cents": 500},
                                           "refund": {"refund_id": "rf_9"}}},
                    "events": ["intent.human_task_assigned",
                               {"type": "intent.waiting", "details": {"step_id": "cool_off", "delay_seconds": 0.1}},
                               {"type": "intent.waiting", "details": {"step_id": "refund"}}]}},
        {"name": "nobody answers for an hour", "steps": {"approve": "timeout"},
         "expect": {"status": "FAILED", "steps": ["approve"], "error": {"failed_step": "approve",
                                                                         "reason": "step_timeout"}}},
        {"name": "rejected", "steps": {"approve": "reject"},
         "expect": {"status": "FAILED", "steps": ["approve"], "error": {"failed_step": "approve"},
                    "absent_events": [{"type": "intent.waiting", "details": {"step_id": "refund"}}]}},
        # the team's own payments service (the program, run in this file's folder) instead of a stand-in
        {"name": "the real service refunds", "steps": approve, "payload": {"order_id": "ord_7"},
         "agents": {"payments": {"command": [sys.executable, "agents/payments.py"]}},
         "expect": {"status": "COMPLETED", "result": {"results": {"refund": {"refund_id": "rf_ord_7",
                                                                             "step": "refund"}}}}},
        {"name": "the real service refuses", "agents": {"payments": {"command": [sys.executable,
                                                                                 "agents/payments.py"]}},
         "steps": {"approve": {"answer": {"outcome": "approved", "amount_cents": 5000}}},
         "expect": {"status": "FAILED", "error": {"failed_step": "refund", "reason": "refusing a refund above 1000"}}},
    ]})
    code, out, err = invoke("scenarios", "test", test, "--json")
    assert code == 0, out + err
    items = json.loads(out)["items"]
    assert [(i["case"], i["passed"]) for i in items] == [
        ("approved", True), ("nobody answers for an hour", True), ("rejected", True),
        ("the real service refunds", True), ("the real service refuses", True)]
    assert 3600 <= items[1]["runtime_seconds"] < 3601 and items[1]["seconds"] < 30  # an hour on the test clock
    assert not (home / "mail").exists() and not list(home.glob("axme-scenario-test-*"))  # nothing kept when all pass


def test_against_the_context_runtime(runtime: RuntimeProcess, admin: httpx.Client, home: Path) -> None:
    """On a runtime that runs already (each backend): the stand-ins listen with its admin key at addresses of
    their own, nothing is provisioned, and a failure names the command that shows the intent's log there."""
    accounts = {a["service_account_id"] for a in admin.get("/v1/service-accounts").json()["service_accounts"]}
    shutil.copy(ROOT / "scenarios" / "cross-service-coordination.json", home / "coordination.json")
    test = write(home / "coordination.test.json", {"cases": [
        {"name": "completes", "expect": {"status": "COMPLETED", "compensated": []}},
        {"name": "declined", "steps": {"coordinate_order": {"fail": "card declined"}},
         "payload": {"order_id": "ord_ctx"}, "expect": {"status": "COMPLETED"}},
    ]})
    code, out, err = invoke("scenarios", "test", test, "--against-context", "--base-url", runtime.url, "--api-key",
                            runtime.api_key or "", "--case-timeout", "30")
    assert code == 1, out + err
    failed = re.search(rf"FAIL {re.escape(test)} › declined\n(?:  .*\n)*  intent ({ID}): "
                       rf"axme intents describe \1 --base-url {re.escape(runtime.url)} --api-key <key>\n", out)
    assert failed, out
    intent = admin.get(f"/v1/intents/{failed[1]}").json()["intent"]
    assert intent["status"] == "FAILED" and intent["payload"] == {"order_id": "ord_ctx"}
    assert intent["error"]["reason"] == "card declined"
    code, shown, err = invoke("intents", "describe", failed[1], "--base-url", runtime.url, "--api-key",
                              runtime.api_key or "")  # the command the failure names
    assert code == 0 and "coordinate_order" in shown and "card declined" in shown, shown + err
    after = {a["service_account_id"] for a in admin.get("/v1/service-accounts").json()["service_accounts"]}
    assert after == accounts
    assert not list(home.glob("axme-scenario-test-*"))  # no throwaway runtime was started
    # this runtime runs on the real clock: a step that must time out after 120 s is refused before anything runs
    late = write(home / "late.test.json", {"bundle": "coordination.json", "cases": [
        {"name": "never answered", "steps": {"coordinate_order": "timeout"}, "expect": {"status": "FAILED"}}]})
    code, out, err = invoke("scenarios", "test", late, "--against-context", "--base-url", runtime.url, "--api-key",
                            runtime.api_key or "")
    assert code == 2 and out == "", out + err
    assert (f"{late}: cases[0].steps.coordinate_order: times out after step_deadline_seconds 120 of real time: this "
            "runtime has no test clock to move") in err


@pytest.fixture(scope="module")
def clocked(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeThread]:
    """`axme dev --test-clock` (in-process): its clock stands still until POST /dev/clock/advance moves it."""
    rt = RuntimeThread(tmp_path_factory.mktemp("clocked"), extra_args=["--test-clock"], backend=backend)
    rt.start()
    yield rt
    rt.retire()


def test_against_a_context_runtime_with_a_test_clock(clocked: RuntimeThread, home: Path) -> None:
    """Deadlines of minutes, waited out in no time: the run moves the runtime's test clock over HTTP."""
    shutil.copy(ROOT / "scenarios" / "cross-service-coordination.json", home / "coordination.json")
    test = write(home / "coordination.test.json", {"cases": [
        {"name": "never answered", "steps": {"coordinate_order": "timeout"},
         "expect": {"status": "FAILED", "error": {"reason": "step_timeout"}, "max_seconds": 121}},
        {"name": "answered", "expect": {"status": "COMPLETED"}},
    ]})
    started = clocked.clock.time()
    code, out, err = invoke("scenarios", "test", test, "--against-context", "--base-url", clocked.url, "--api-key",
                            clocked.api_key or "", "--json")
    assert code == 0, out + err
    items = {i["case"]: i for i in json.loads(out)["items"]}
    assert 120 <= items["never answered"]["runtime_seconds"] <= 121 and items["answered"]["runtime_seconds"] < 1
    assert clocked.clock.time() - started >= 120


HANGS = """
import os, sys, time
open(sys.argv[1], "w").write(str(os.getpid()))
time.sleep(60)
"""


@pytest.mark.slow  # waits out --case-timeout 1 (real time: the real agent works, so the test clock stands still)
def test_a_case_that_does_not_end_is_an_error_and_its_agent_is_stopped(home: Path) -> None:
    shutil.copy(ROOT / "scenarios" / "cross-service-coordination.json", home / "coordination.json")
    (home / "hangs.py").write_text(HANGS)
    test = write(home / "hang.test.json", {"bundle": "coordination.json", "cases": [
        {"name": "hangs", "agents": {"coordinator": {"command": [sys.executable, "hangs.py", str(home / "pid")]}},
         "expect": {"status": "COMPLETED"}}]})
    report = home / "junit.xml"
    code, out, err = invoke("scenarios", "test", test, "--case-timeout", "1", "--junit-xml", str(report))
    assert code == 1, out + err
    assert f"ERROR {test} › hangs\n  the workflow did not end within 1 s (it was at: coordinate_order (attempt 1))" \
        in out
    assert "1 case: 0 passed, 1 could not run to the end in" in out
    error = ET.parse(report).getroot()[0][0].find("error")
    assert error is not None and (error.get("message") or "").startswith("the workflow did not end within 1 s")
    pid = int((home / "pid").read_text())
    with pytest.raises(ProcessLookupError):  # the program a real agent ran does not outlive the case
        os.kill(pid, 0)

"""Human tasks: direct task intents and human workflow steps, answered through the API and `axme tasks`."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from axme_cli.runtime.clock import ManualClock
from tests.cli.helpers import run
from tests.conftest import SHARED, make_agent, unique
from tests.receiver import poll
from tests.runtime_proc import RuntimeProcess
from tests.runtime_thread import RuntimeThread, tick


def task_intent(**task: Any) -> dict[str, Any]:
    return {"intent_type": "ops.approve.v1", "correlation_id": str(uuid.uuid4()), "to_agent": "agent://agent_core",
            "payload": {"change": "CHG-1"}, "human_task": {"title": "Approve CHG-1", **task}}


def axme(rt: RuntimeProcess, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`axme *args` (in this process) against ``rt`` with its admin key."""
    env = dict(os.environ, AXME_CONFIG_DIR=str(tmp_path / "cfg"), NO_COLOR="1", AXME_CLI_SECRET_STORAGE="file",
               AXME_BASE_URL=rt.url, AXME_API_KEY=rt.api_key or "")
    return run(env, *args)


def test_a_direct_task_waits_for_a_person_and_is_listed(api: httpx.Client) -> None:
    intent_id = api.post("/v1/intents", json=task_intent()).json()["intent_id"]
    intent = api.get(f"/v1/intents/{intent_id}").json()["intent"]
    assert (intent["status"], intent["waiting_reason"]) == ("WAITING", "WAITING_FOR_HUMAN")
    assert intent["human_task"]["allowed_outcomes"] == ["approved", "rejected"]  # the approval defaults
    events = api.get(f"/v1/intents/{intent_id}/events").json()["events"]
    assert events[-1]["event_type"] == "intent.human_task_assigned" and events[-1]["human_task"]["title"]
    listed = api.get("/v1/me/tasks").json()["tasks"]
    assert intent_id in [t["intent_id"] for t in listed]


def test_wrong_answers_get_422_and_the_task_stays_open(api: httpx.Client) -> None:
    intent_id = api.post("/v1/intents", json=task_intent(task_type="override", required_comment=True)).json()[
        "intent_id"]
    for body, field in (({"task_result": {"outcome": "approved"}}, "task_result.outcome"),
                        ({"task_result": {"outcome": "override_approved"}}, "task_result.comment"),
                        ({"action": "complete"}, "task_result.outcome")):
        r = api.post(f"/v1/intents/{intent_id}/resume", json=body)
        assert r.status_code == 422 and r.json()["error"]["details"]["field"] == field, r.text
    assert api.get(f"/v1/intents/{intent_id}").json()["intent"]["status"] == "WAITING"
    ok = api.post(f"/v1/intents/{intent_id}/resume",
                  json={"task_result": {"outcome": "override_approved", "comment": "hotfix"}})
    assert ok.status_code == 200 and ok.json()["intent"]["status"] == "COMPLETED"
    assert ok.json()["intent"]["result"]["comment"] == "hotfix"


def test_rejecting_cancels_and_agents_may_not_answer(quiet: RuntimeProcess, api: httpx.Client) -> None:
    intent_id = api.post("/v1/intents", json=task_intent()).json()["intent_id"]
    _, token = make_agent(api, unique("bot"))
    with quiet.client(token) as bot:
        assert bot.get("/v1/me/tasks").status_code == 403
    r = api.post(f"/v1/intents/{intent_id}/resume", json={"task_result": {"outcome": "rejected", "comment": "no"}})
    assert r.status_code == 200 and r.json()["intent"]["status"] == "CANCELED"


def test_cli_tasks_answer_a_workflow_human_step(quiet: RuntimeProcess, api: httpx.Client, tmp_path: Path) -> None:
    bundle = json.loads((SHARED / "axme-examples" / "internal" / "human_approval.json").read_text())
    intent_id = api.post("/v1/scenarios/apply", json=bundle).json()["intent_id"]
    listed = axme(quiet, tmp_path, "tasks", "list", "--json")
    assert listed.returncode == 0 and intent_id in [t["intent_id"] for t in json.loads(listed.stdout)["items"]]
    shown = axme(quiet, tmp_path, "tasks", "get", intent_id)
    assert "Outcomes:" in shown.stdout and "approved, rejected, deferred" in shown.stdout
    assert f"axme tasks approve {intent_id}" in shown.stdout
    bad = axme(quiet, tmp_path, "tasks", "submit", intent_id, "--outcome", "maybe")
    assert bad.returncode == 1 and "is not one of approved, rejected, deferred" in bad.stderr
    done = axme(quiet, tmp_path, "tasks", "approve", intent_id, "--comment", "looks fine")
    assert done.returncode == 0, done.stderr
    assert f"Task submitted: {intent_id} (outcome=approved)" in done.stdout
    intent = api.get(f"/v1/intents/{intent_id}").json()["intent"]
    assert intent["status"] == "COMPLETED"
    assert intent["result"]["results"]["direct_approval"]["comment"] == "looks fine"
    empty = axme(quiet, tmp_path, "tasks", "list")
    assert intent_id not in empty.stdout


def test_form_schema_and_evidence_are_enforced(api: httpx.Client) -> None:
    form = {"type": "object", "required": ["approved"], "properties": {"approved": {"type": "boolean"},
                                                                        "eta_minutes": {"type": "integer"}}}
    body = task_intent(task_type="form", form_schema=form, allowed_outcomes=["submitted", "rejected"])
    intent_id = api.post("/v1/intents", json=body).json()["intent_id"]
    path = f"/v1/intents/{intent_id}/resume"
    missing = api.post(path, json={"task_result": {"outcome": "submitted"}})
    assert missing.status_code == 422 and "'approved' is a required property" in missing.json()["error"]["message"]
    wrong = api.post(path, json={"task_result": {"outcome": "submitted", "approved": True, "eta_minutes": "soon"}})
    assert wrong.status_code == 422 and wrong.json()["error"]["details"]["field"] == "task_result.eta_minutes"
    assert api.get(f"/v1/intents/{intent_id}").json()["intent"]["status"] == "WAITING"
    ok = api.post(path, json={"task_result": {"outcome": "submitted", "approved": True, "eta_minutes": 15}})
    assert ok.status_code == 200 and ok.json()["intent"]["status"] == "COMPLETED"

    manual = api.post("/v1/intents", json=task_intent(task_type="manual_action", evidence_required=True)).json()
    path = f"/v1/intents/{manual['intent_id']}/resume"
    no_proof = api.post(path, json={"task_result": {"outcome": "completed"}})
    assert no_proof.status_code == 422 and no_proof.json()["error"]["details"]["field"] == "task_result.evidence"
    done = api.post(path, json={"task_result": {"outcome": "completed", "evidence": "https://ci/run/42"}})
    assert done.status_code == 200 and done.json()["intent"]["status"] == "COMPLETED"


@pytest.fixture(scope="module")
def clocked(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeThread]:
    """A runtime on a test clock: reminders and escalations come when the test moves it."""
    proc = RuntimeThread(tmp_path_factory.mktemp("tasks-clock"), extra_args=["--redelivery-seconds", "600"],
                         backend=backend, clock=ManualClock())
    proc.start()
    yield proc
    proc.retire()


def test_reminders_then_escalation_of_a_human_step(clocked: RuntimeThread) -> None:
    with clocked.client() as api:
        bundle = json.loads((SHARED / "axme-examples" / "internal" / "human_approval.json").read_text())
        bundle["humans"].append({"role": "boss", "contact": "boss@example.com", "display_name": "The boss"})
        step = bundle["workflow"]["steps"][0]
        step.update(remind_after_seconds=1, remind_interval_seconds=1, max_reminders=2, escalate_to="boss",
                    step_deadline_seconds=3600)
        intent_id = api.post("/v1/scenarios/apply", json=bundle).json()["intent_id"]

        def kinds() -> list[str]:
            return [e["event_type"] for e in api.get(f"/v1/intents/{intent_id}/events").json()["events"]]

        poll(kinds, lambda seen: "intent.human_task_assigned" in seen)
        # two reminders a second apart, then the escalation: each when the clock has moved on (a move that changes
        # nothing fails the test)
        for _ in range(6):
            if "intent.escalated" in kinds():
                break
            tick(clocked, 1, kinds)
        events = api.get(f"/v1/intents/{intent_id}/events").json()["events"]
        reminders = [e for e in events if e["event_type"] == "intent.reminder"]
        assert [e["details"]["reminder"] for e in reminders] == [1, 2]
        escalated = next(e for e in events if e["event_type"] == "intent.escalated")
        assert escalated["details"]["escalated_to"] == "boss"
        assert escalated["pending_with"]["name"] == "The boss" and escalated["pending_with"]["type"] == "human"
        intent = api.get(f"/v1/intents/{intent_id}").json()["intent"]
        assert intent["status"] == "WAITING" and intent["remind_count"] == 2
        # the task is still open and can be answered after escalation; no reminder comes after the answer
        done = api.post(f"/v1/intents/{intent_id}/resume", json={"task_result": {"outcome": "approved"}})
        assert done.status_code == 200 and done.json()["intent"]["status"] == "COMPLETED"

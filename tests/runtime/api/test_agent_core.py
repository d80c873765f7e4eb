"""`agent_core` in every form the SDK docs write it opens a human task, answered like any other."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.conftest import make_agent, unique


def _workspace(api: httpx.Client) -> str:
    """``<org>/<workspace>`` of the runtime, read from an agent address it hands out."""
    address, _ = make_agent(api, unique("probe"))
    return address.removeprefix("agent://").rsplit("/", 1)[0]


def _task(to_agent: str) -> dict[str, object]:
    return {"intent_type": "ops.approve.v1", "correlation_id": str(uuid.uuid4()), "to_agent": to_agent,
            "payload": {"change": "CHG-7"}, "human_task": {"title": "Approve CHG-7"}}


@pytest.mark.parametrize("form", ["agent://agent_core", "agent://{ws}/agent_core", "agent_core", "{ws}/agent_core"])
def test_every_form_of_agent_core_opens_a_task_a_person_answers(api: httpx.Client, form: str) -> None:
    to_agent = form.format(ws=_workspace(api))
    created = api.post("/v1/intents", json=_task(to_agent))
    assert created.status_code == 200, created.text
    intent_id = created.json()["intent_id"]
    intent = api.get(f"/v1/intents/{intent_id}").json()["intent"]
    assert (intent["status"], intent["waiting_reason"]) == ("WAITING", "WAITING_FOR_HUMAN")
    assert intent["to_agent"] == "agent://agent_core"  # one address, so every list and filter agrees
    assert intent_id in [t["intent_id"] for t in api.get("/v1/me/tasks").json()["tasks"]]
    answered = api.post(f"/v1/intents/{intent_id}/resume", json={"task_result": {"outcome": "approved"}})
    assert answered.status_code == 200, answered.text
    assert answered.json()["intent"]["status"] == "COMPLETED"


def test_another_workspaces_agent_core_is_not_this_runtime(api: httpx.Client) -> None:
    """Only this runtime's own org/workspace names it: another one's ``agent_core`` is an ordinary address."""
    intent_id = api.post("/v1/intents", json=_task("agent://elsewhere/other/agent_core")).json()["intent_id"]
    intent = api.get(f"/v1/intents/{intent_id}").json()["intent"]
    assert intent["to_agent"] == "agent://elsewhere/other/agent_core"
    assert intent["status"] == "SUBMITTED" and intent.get("waiting_reason") != "WAITING_FOR_HUMAN"
    assert intent_id not in [t["intent_id"] for t in api.get("/v1/me/tasks").json()["tasks"]]

"""Actors are who their credentials say (design.md §9), on both storage backends.

The attack: agent alpha sent an intent to beta, then resolved it COMPLETED with ``"actor": "agent://…/beta"``:
200, and the event log said beta did it.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.auth_helpers import bearer, login
from tests.conftest import make_agent, new_intent
from tests.runtime_proc import TLS, RuntimeProcess

ADMIN = "initiator://local/dev/admin"


class Agent:
    def __init__(self, runtime: RuntimeProcess, admin: httpx.Client, prefix: str) -> None:
        self.address, token = make_agent(admin, f"{prefix}-{uuid.uuid4().hex[:8]}")
        self.name = self.address.rsplit("/", 1)[1]
        self.client = runtime.client(token)


@pytest.fixture
def pair(runtime: RuntimeProcess, admin: httpx.Client) -> tuple[Agent, Agent]:
    return Agent(runtime, admin, "alpha"), Agent(runtime, admin, "beta")


def send(client: httpx.Client, to: str, **extra: Any) -> str:
    r = client.post("/v1/intents", json=new_intent(to, **extra))
    assert r.status_code == 200, r.text
    return str(r.json()["intent_id"])


def refused(r: httpx.Response, code: str) -> str:
    """403 in the AXP error shape with ``code``; returns the message."""
    assert r.status_code == 403, r.text
    body = r.json()
    assert set(body) == {"error", "detail"} and body["error"]["code"] == code, body
    return str(body["error"]["message"])


def events(admin: httpx.Client, intent_id: str) -> list[dict[str, Any]]:
    r = admin.get(f"/v1/intents/{intent_id}/events")
    assert r.status_code == 200, r.text
    return list(r.json()["events"])


def status(admin: httpx.Client, intent_id: str) -> str:
    return str(admin.get(f"/v1/intents/{intent_id}").json()["intent"]["status"])


def test_a_forged_actor_is_refused(pair: tuple[Agent, Agent], admin: httpx.Client) -> None:
    alpha, beta = pair
    intent_id = send(alpha.client, beta.address)
    path = f"/v1/intents/{intent_id}"
    # the attack itself, and its variants: another agent named as actor, from_agent or owner_agent
    message = refused(alpha.client.post(f"{path}/resolve", json={"status": "COMPLETED", "result": {},
                                                                 "actor": beta.address}), "actor_mismatch")
    assert alpha.address in message and "actor" in message
    refused(alpha.client.post(f"{path}/resolve", json={"status": "CANCELED", "actor": beta.name}), "actor_mismatch")
    refused(beta.client.post(f"{path}/resume", json={"action": "complete", "actor": alpha.address}),
            "actor_mismatch")
    refused(beta.client.post(f"{path}/resume", params={"owner_agent": alpha.name}, json={"action": "complete"}),
            "actor_mismatch")
    refused(beta.client.post(f"{path}/resolve", headers={"x-owner-agent": alpha.address},
                             json={"status": "COMPLETED", "result": {}}), "actor_mismatch")
    r = alpha.client.post("/v1/intents", json=new_intent(beta.address, from_agent=beta.address))
    assert refused(r, "actor_mismatch").startswith("from_agent:")
    assert [e["event_type"] for e in events(admin, intent_id)] == ["intent.created", "intent.submitted"]
    assert status(admin, intent_id) == "SUBMITTED"


def test_the_sender_cannot_complete_but_can_cancel(pair: tuple[Agent, Agent], admin: httpx.Client) -> None:
    alpha, beta = pair
    intent_id = send(alpha.client, beta.address)
    path = f"/v1/intents/{intent_id}"
    message = refused(alpha.client.post(f"{path}/resolve", json={"status": "COMPLETED", "result": {}}),
                      "policy_denied")
    assert beta.address in message and "you may cancel it" in message
    refused(alpha.client.post(f"{path}/resolve", json={"status": "FAILED", "error": {"m": "x"}}), "policy_denied")
    for action in ("complete", "fail", "in_progress"):
        refused(alpha.client.post(f"{path}/resume", json={"action": action}), "policy_denied")
    assert status(admin, intent_id) == "SUBMITTED"

    r = alpha.client.post(f"{path}/resolve", json={"status": "CANCELED", "reason": "not needed"})
    assert r.status_code == 200, r.text
    last = events(admin, intent_id)[-1]
    assert (last["event_type"], last["actor"]) == ("intent.canceled", alpha.address)
    assert "acted_by" not in last["details"]


def test_a_third_agent_cannot_cancel_what_it_can_see(runtime: RuntimeProcess, pair: tuple[Agent, Agent],
                                                     admin: httpx.Client) -> None:
    alpha, beta = pair
    gamma = Agent(runtime, admin, "gamma")
    intent_id = send(alpha.client, beta.address, reply_to=gamma.address)
    assert gamma.client.get(f"/v1/intents/{intent_id}").status_code == 200  # the reply_to owner reads it
    refused(gamma.client.post(f"/v1/intents/{intent_id}/resolve", json={"status": "CANCELED"}), "policy_denied")
    refused(gamma.client.post(f"/v1/intents/{intent_id}/resume", json={"action": "complete"}), "policy_denied")
    assert status(admin, intent_id) == "SUBMITTED"


def test_the_addressed_agent_completes_as_itself(pair: tuple[Agent, Agent], admin: httpx.Client) -> None:
    alpha, beta = pair
    intent_id = send(alpha.client, beta.address)
    r = beta.client.post(f"/v1/intents/{intent_id}/resume", params={"owner_agent": beta.name},
                         json={"action": "complete", "actor": beta.name, "ok": 1})
    assert r.status_code == 200, r.text
    last = events(admin, intent_id)[-1]
    assert (last["event_type"], last["actor"]) == ("intent.completed", beta.address)
    assert "acted_by" not in last["details"]

    other = send(alpha.client, beta.address)
    r = beta.client.post(f"/v1/intents/{other}/resolve", json={"status": "FAILED", "error": {"m": "no stock"}})
    assert r.status_code == 200 and r.json()["event"]["actor"] == beta.address


def test_the_admin_key_may_act_as_anyone_and_the_events_say_so(pair: tuple[Agent, Agent],
                                                               admin: httpx.Client) -> None:
    alpha, beta = pair
    intent_id = send(admin, beta.address, from_agent=alpha.address)
    created, submitted = events(admin, intent_id)
    assert created["actor"] == submitted["actor"] == alpha.address
    assert created["details"]["acted_by"] == submitted["details"]["acted_by"] == ADMIN
    assert admin.get(f"/v1/intents/{intent_id}").json()["intent"]["from_agent"] == alpha.address

    r = admin.post(f"/v1/intents/{intent_id}/resolve", json={"status": "COMPLETED", "result": {},
                                                             "actor": beta.address})
    assert r.status_code == 200, r.text
    event = r.json()["event"]
    assert (event["actor"], event["details"]["acted_by"]) == (beta.address, ADMIN)
    assert events(admin, intent_id)[-1] == event

    own = send(admin, beta.address)  # without a name, the admin key is the actor, and nothing more is said
    r = admin.post(f"/v1/intents/{own}/resume", json={"action": "complete"})
    assert r.status_code == 200, r.text
    last = events(admin, own)[-1]
    assert last["actor"] == ADMIN and "acted_by" not in last["details"]


def test_a_person_acts_as_the_person(runtime: RuntimeProcess, pair: tuple[Agent, Agent],
                                     admin: httpx.Client) -> None:
    alpha, beta = pair
    who = f"person-{uuid.uuid4().hex[:8]}@example.com"
    with httpx.Client(verify=TLS, base_url=runtime.url, timeout=30.0) as anon:
        person = bearer(str(login(anon, runtime.mail_dir, who)["access_token"]))
        me = f"actor://local/dev/{who}"
        intent_id = send(alpha.client, beta.address)
        path = f"/v1/intents/{intent_id}"
        refused(anon.post(f"{path}/resolve", headers=person, json={"status": "CANCELED", "actor": beta.address}),
                "actor_mismatch")
        refused(anon.post(f"{path}/resolve", headers=person, json={"status": "COMPLETED", "result": {}}),
                "policy_denied")
        refused(anon.post(f"{path}/resume", headers=person, json={"action": "complete"}), "policy_denied")
        r = anon.post("/v1/intents", headers=person, json=new_intent(beta.address, from_agent=alpha.address))
        refused(r, "actor_mismatch")
        r = anon.post(f"{path}/resolve", headers=person, json={"status": "CANCELED", "actor": who})
        assert r.status_code == 200, r.text
    assert events(admin, intent_id)[-1]["actor"] == me

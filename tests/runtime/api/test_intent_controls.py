"""POST /v1/intents/{id}/controls and /policy on the real runtime: controls move the scheduler's timers (a deadline
brought forward times the intent out, fewer retries fail its delivery, a shorter redelivery wait delivers again);
grants let a delegate see, resume and change what they were granted, and nothing else; every change is
compare-and-set on policy_generation, one event in the intent's stream and one audit event; who may call them;
bad input named; and the official SDK's methods."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from axme_sdk import AxmeClient, AxmeClientConfig, AxmeHttpError

from tests.conftest import ADMIN_KEY, intent, make_agent, new_intent, unique
from tests.receiver import poll
from tests.runtime_proc import RuntimeProcess


def at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def create(client: httpx.Client, to: str, **extra: Any) -> str:
    r = client.post("/v1/intents", json=new_intent(to, **extra))
    assert r.status_code == 200, r.text
    return str(r.json()["intent_id"])



def events(client: httpx.Client, intent_id: str) -> list[dict[str, Any]]:
    return list(client.get(f"/v1/intents/{intent_id}/events").json()["events"])


def controls(client: httpx.Client, intent_id: str, patch: dict[str, Any], status: int = 200,
             **extra: Any) -> dict[str, Any]:
    r = client.post(f"/v1/intents/{intent_id}/controls", json={"controls_patch": patch, **extra})
    assert r.status_code == status, r.text
    return dict(r.json())


def policy(client: httpx.Client, intent_id: str, grants: dict[str, Any] | None = None, status: int = 200,
           **extra: Any) -> dict[str, Any]:
    body = {**({"grants_patch": grants} if grants is not None else {}), **extra}
    r = client.post(f"/v1/intents/{intent_id}/policy", json=body)
    assert r.status_code == status, r.text
    return dict(r.json())


# ---------------------------------------------------------------------------------------------
# controls move the timers


def test_a_deadline_brought_forward_times_the_intent_out(admin: httpx.Client) -> None:
    intent_id = create(admin, unique("slow"), deadline_at=at(3600))
    answer = controls(admin, intent_id, {"deadline_at": at(0.2)}, reason="customer gave up")
    assert answer["applied"] is True and answer["policy_generation"] == 1
    ended = poll(lambda: intent(admin, intent_id), lambda i: i["status"] == "TIMED_OUT", timeout=10)
    assert ended["error"]["reason"] == "deadline_exceeded"
    kinds = [e["event_type"] for e in events(admin, intent_id)]
    assert kinds[-2:] == ["intent.controls_updated", "intent.timed_out"]


def test_fewer_retries_fail_the_delivery_at_the_next_redelivery(admin: httpx.Client) -> None:
    """The shared runtime redelivers after 0.5 s: with no retries left, that timer fails the intent."""
    intent_id = create(admin, unique("absent"), max_delivery_attempts=1000)
    answer = controls(admin, intent_id, {"max_retries": 0})
    assert answer["intent"]["max_delivery_attempts"] == 1
    ended = poll(lambda: intent(admin, intent_id), lambda i: i["status"] == "FAILED", timeout=10)
    assert ended["error"]["code"] == "delivery_failed" and ended["delivery_attempt"] == 1


def test_a_shorter_redelivery_wait_moves_the_next_delivery(api: httpx.Client) -> None:
    """This module's runtime waits 600 s before redelivering; the intent's own wait of 0.2 s delivers again now."""
    intent_id = create(api, unique("sleepy"))
    answer = controls(api, intent_id, {"retry_backoff_seconds": 0.2})
    assert answer["intent"]["retry_backoff_seconds"] == 0.2
    poll(lambda: intent(api, intent_id)["delivery_attempt"], lambda attempt: attempt >= 3, timeout=10)


def test_a_deadline_taken_away_and_the_change_recorded_in_order(api: httpx.Client) -> None:
    intent_id = create(api, unique("calm"), deadline_at=at(3600))
    before = intent(api, intent_id)
    answer = controls(api, intent_id, {"deadline_at": None, "max_delivery_attempts": 7},
                      expected_policy_generation=0, reason="no rush")
    view = answer["intent"]
    assert "deadline_at" not in view and view["max_delivery_attempts"] == 7 and view["policy_generation"] == 1
    assert intent(api, intent_id)["policy_generation"] == 1 and "deadline_at" not in intent(api, intent_id)
    event = answer["event"]
    assert event["event_type"] == "intent.controls_updated" and event["status"] == before["status"]
    assert event["details"]["changed"] == {
        "deadline_at": {"from": before["deadline_at"], "to": None},
        "max_delivery_attempts": {"from": before["max_delivery_attempts"], "to": 7}}
    assert event["details"]["reason"] == "no rush" and event["details"]["policy_generation"] == 1
    assert events(api, intent_id)[-1] == event and event["seq"] == before["seq"] + 1
    audit = api.get("/v1/audit/events", params={"action_prefix": "intent.controls_updated", "limit": 1000})
    mine = [e for e in audit.json()["events"] if e["target_id"] == intent_id]
    assert len(mine) == 1 and mine[0]["details"]["changed"] == ["deadline_at", "max_delivery_attempts"]


def test_compare_and_set_and_a_patch_that_changes_nothing(api: httpx.Client) -> None:
    intent_id = create(api, unique("cas"))
    assert controls(api, intent_id, {"max_retries": 4}, expected_policy_generation=0)["policy_generation"] == 1
    stale = api.post(f"/v1/intents/{intent_id}/controls",
                     json={"controls_patch": {"max_retries": 9}, "expected_policy_generation": 0})
    assert stale.status_code == 409, stale.text
    err = stale.json()["error"]
    assert err["code"] == "policy_generation_mismatch" and err["details"]["policy_generation"] == 1
    assert err["details"]["field"] == "expected_policy_generation"
    assert intent(api, intent_id)["max_delivery_attempts"] == 5  # nothing changed
    same = controls(api, intent_id, {"max_delivery_attempts": 5}, expected_policy_generation=1)
    assert same["applied"] is False and same["policy_generation"] == 1 and same["event"] is None
    assert policy(api, intent_id, envelope_patch={"max_retry_count": 1})["policy_generation"] == 2
    assert intent(api, intent_id)["max_delivery_attempts"] == 2  # the envelope's words for the same control
    resumed = api.post(f"/v1/intents/{intent_id}/resume", json={"action": "complete", "expected_policy_generation": 1})
    assert resumed.status_code == 409 and resumed.json()["error"]["details"]["policy_generation"] == 2
    done = api.post(f"/v1/intents/{intent_id}/resume", json={"action": "complete", "expected_policy_generation": 2})
    assert done.status_code == 200 and done.json()["intent"]["result"] == {}, done.text
    ended = api.post(f"/v1/intents/{intent_id}/controls", json={"controls_patch": {"max_retries": 1}})
    assert ended.status_code == 409 and ended.json()["error"]["code"] == "intent_terminal"


# ---------------------------------------------------------------------------------------------
# who may change them, and what grants change


def test_the_sender_may_the_addressed_agent_and_strangers_may_not(quiet: RuntimeProcess, api: httpx.Client) -> None:
    sender, sender_key = make_agent(api, unique("sender"))
    worker, worker_key = make_agent(api, unique("worker"))
    _, stranger_key = make_agent(api, unique("stranger"))
    with quiet.client(sender_key) as s, quiet.client(worker_key) as w, quiet.client(stranger_key) as x:
        intent_id = create(s, worker)
        assert controls(s, intent_id, {"max_retries": 6})["applied"] is True
        refused = controls(w, intent_id, {"max_retries": 3}, status=403)
        assert refused["error"]["code"] == "policy_denied" and refused["error"]["details"]["allowed"] == [sender]
        policy(w, intent_id, {f"delegate:{worker}": {"allow": ["update_policy"]}}, status=403)
        assert controls(x, intent_id, {"max_retries": 3}, status=404)["error"]["code"] == "intent_not_found"
        forged = controls(s, intent_id, {"max_retries": 3}, status=403, actor=worker)
        assert forged["error"]["code"] == "actor_mismatch"
        r = s.post(f"/v1/intents/{intent_id}/controls", params={"owner_agent": worker},
                   json={"controls_patch": {"max_retries": 3}})
        assert r.status_code == 403, r.text
    named = controls(api, intent_id, {"max_retries": 5}, actor=sender)  # the admin key may name the sender
    assert named["event"]["actor"] == sender and named["event"]["details"]["acted_by"].startswith("initiator://")


def test_grants_let_a_delegate_see_resume_and_change_what_it_was_granted(quiet: RuntimeProcess,
                                                                         api: httpx.Client) -> None:
    sender, sender_key = make_agent(api, unique("sender"))
    worker, _ = make_agent(api, unique("worker"))
    ops, ops_key = make_agent(api, unique("ops"))
    with quiet.client(sender_key) as s, quiet.client(ops_key) as o:
        intent_id = create(s, worker)
        assert o.get(f"/v1/intents/{intent_id}").status_code == 404
        short = ops.rsplit("/", 1)[1]
        granted = policy(s, intent_id, {f"delegate:{short}": {"allow": ["resume"]}}, reason="ops takes over")
        assert granted["event"]["details"]["grants"] == {f"delegate:{ops}": ["resume"]}
        assert granted["intent"]["grants"] == {f"delegate:{ops}": {"allow": ["resume"]}}
        assert intent(o, intent_id)["intent_id"] == intent_id  # now it may see it
        assert controls(o, intent_id, {"max_retries": 1}, status=403)["error"]["code"] == "policy_denied"
        policy(o, intent_id, {f"delegate:{ops}": {"allow": ["resume", "update_policy"]}}, status=403)
        policy(s, intent_id, {f"delegate:{ops}": {"allow": ["resume", "update_controls"]}})
        assert controls(o, intent_id, {"max_retries": 1})["applied"] is True
        taken = policy(s, intent_id, {f"delegate:{ops}": None})
        assert taken["event"]["details"]["grants"] == {f"delegate:{ops}": None} and "grants" not in taken["intent"]
        assert o.get(f"/v1/intents/{intent_id}").status_code == 404
        policy(s, intent_id, {f"delegate:{ops}": {"allow": ["resume"]}})
        done = o.post(f"/v1/intents/{intent_id}/resume", json={"action": "complete", "ok": 1})
        assert done.status_code == 200 and done.json()["intent"]["status"] == "COMPLETED", done.text
    kinds = [e["event_type"] for e in events(api, intent_id)]
    assert kinds.count("intent.policy_updated") == 4 and kinds[-1] == "intent.completed"
    audit = api.get("/v1/audit/events", params={"action_prefix": "intent.policy_updated", "limit": 1000})
    assert len([e for e in audit.json()["events"] if e["target_id"] == intent_id]) == 4


# ---------------------------------------------------------------------------------------------
# bad input


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize(("route", "body", "field"), [
    ("controls", {"controls_patch": {"timeout": 5}}, "controls_patch.timeout"),
    ("controls", {"controls_patch": {"timeout_seconds": 0}}, "controls_patch.timeout_seconds"),
    ("controls", {"controls_patch": {"timeout_seconds": "5"}}, "controls_patch.timeout_seconds"),
    ("controls", {"controls_patch": {"timeout_seconds": 5, "deadline_at": None}}, "controls_patch"),
    ("controls", {"controls_patch": {"max_retries": 1, "max_delivery_attempts": 2}}, "controls_patch"),
    ("controls", {"controls_patch": {"deadline_at": "tomorrow"}}, "controls_patch.deadline_at"),
    ("controls", {"controls_patch": {"retry_backoff_seconds": 0.01}}, "controls_patch.retry_backoff_seconds"),
    ("controls", {"controls_patch": {}}, "controls_patch"),
    ("controls", {}, "controls_patch"),
    ("controls", {"controls_patch": {"max_retries": 1}, "expected_policy_generation": -1},
     "expected_policy_generation"),
    ("controls", {"controls_patch": {"max_retries": 1}, "control_patch": {}}, "control_patch"),
    ("policy", {}, "grants_patch"),
    ("policy", {"grants_patch": {"ops": {"allow": ["resume"]}}}, "grants_patch.ops"),
    ("policy", {"grants_patch": {"delegate:ops": {"allow": ["delete"]}}}, "grants_patch.delegate:ops.allow.0"),
    ("policy", {"grants_patch": {"delegate:ops": {"deny": []}}}, "grants_patch.delegate:ops.allow"),
    ("policy", {"grants_patch": {"delegate:a b": {"allow": ["resume"]}}}, "grants_patch.delegate:a b"),
    ("policy", {"grants_patch": {"delegate:initiator://x/y/z": {"allow": ["resume"]}}},
     "grants_patch.delegate:initiator://x/y/z"),
    ("policy", {"envelope_patch": {"ttl_seconds": 5, "expires_at": None}}, "envelope_patch"),
    ("policy", {"envelope_patch": {"max_retry_count": -1}}, "envelope_patch.max_retry_count"),
])
def test_bad_input_is_422_naming_the_field(api: httpx.Client, route: str, body: dict[str, Any], field: str) -> None:
    intent_id = create(api, unique("target"))
    r = api.post(f"/v1/intents/{intent_id}/{route}", json=body)
    assert r.status_code == 422, r.text
    message = r.json()["error"]["message"]
    assert message.startswith(field), message
    assert "policy_generation" not in intent(api, intent_id)  # nothing changed


@pytest.mark.backends("sqlite")
def test_an_unknown_or_malformed_intent_id_is_404(api: httpx.Client) -> None:
    for intent_id in (str(uuid.uuid4()), "not-an-id"):
        r = api.post(f"/v1/intents/{intent_id}/controls", json={"controls_patch": {"max_retries": 1}})
        assert r.status_code == 404 and r.json()["error"]["code"] == "intent_not_found", r.text


# ---------------------------------------------------------------------------------------------
# the official SDK and Idempotency-Key


def test_the_official_sdk_changes_controls_and_policy(quiet: RuntimeProcess, api: httpx.Client) -> None:
    client = AxmeClient(AxmeClientConfig(base_url=quiet.url, api_key=ADMIN_KEY))
    worker, _ = make_agent(api, unique("worker"))
    intent_id = client.send_intent({"intent_type": "order.reserve.v1", "to_agent": worker, "payload": {"n": 1}})
    key = uuid.uuid4().hex
    first = client.update_intent_controls(intent_id, {"controls_patch": {"timeout_seconds": 600},
                                                      "expected_policy_generation": 0}, idempotency_key=key)
    again = client.update_intent_controls(intent_id, {"controls_patch": {"timeout_seconds": 600},
                                                      "expected_policy_generation": 0}, idempotency_key=key)
    assert first == again and first["policy_generation"] == 1  # the repeat answers the first result
    deadline = datetime.fromisoformat(first["intent"]["deadline_at"].replace("Z", "+00:00"))
    assert timedelta(seconds=590) < deadline - datetime.now(UTC) <= timedelta(seconds=600)
    granted = client.update_intent_policy(intent_id, {"grants_patch": {f"delegate:{worker}": {"allow": ["resume"]}},
                                                      "expected_policy_generation": 1})
    assert granted["applied"] is True and granted["policy_generation"] == 2
    with pytest.raises(AxmeHttpError) as stale:
        client.update_intent_policy(intent_id, {"grants_patch": {}, "envelope_patch": {"ttl_seconds": 5},
                                                "expected_policy_generation": 1})
    assert stale.value.status_code == 409
    assert client.get_intent(intent_id)["intent"]["policy_generation"] == 2

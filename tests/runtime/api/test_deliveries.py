"""/v1/deliveries over a real runtime: webhook and http-binding deliveries listed in AXME's shape, owner-scoped,
replayed (a new delivery that really reaches the receiver again), payloads submitted to an http agent (signed,
idempotent), every hostile input refused with the field named, and the official Python SDK's four methods."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from axme_sdk import AxmeClient, AxmeClientConfig
from jsonschema import Draft202012Validator

from tests.conftest import ADMIN_KEY, SHARED, make_agent, new_intent, unique
from tests.receiver import Receiver, poll
from tests.runtime_proc import TLS, RuntimeProcess
from tests.runtime_thread import RuntimeThread

SPEC = SHARED / "axp-spec" / "schemas" / "public_api"


@pytest.fixture(scope="module")
def rt(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    proc = RuntimeThread(tmp_path_factory.mktemp("deliveries"),
                         extra_args=["--redelivery-seconds", "600", "--outbound-timeout-seconds", "2",
                                     "--webhook-retry-base-seconds", "600"], backend=backend)
    proc.start()
    yield proc
    proc.retire()


@pytest.fixture
def api(rt: RuntimeProcess) -> Iterator[httpx.Client]:
    with rt.client() as client:
        yield client


def spec_errors(name: str, body: dict[str, Any]) -> list[str]:
    """The body against AXME's schema; formats unchecked: org_id / workspace_id are this runtime's names
    ("local", "dev"), not UUIDs."""
    schema = json.loads((SPEC / f"{name}.json").read_text())
    return [e.message for e in Draft202012Validator(schema).iter_errors(body)]


def http_agent(api: httpx.Client, url: str) -> tuple[str, str, str, str]:
    """(address, api key, delivery secret, service account id) of an agent bound to ``url``."""
    address, token = make_agent(api, unique("dl-agent"))
    sa_id = api.get(f"/v1/agents/{address.removeprefix('agent://')}").json()["agent"]["service_account_id"]
    r = api.patch(f"/v1/service-accounts/{sa_id}/delivery", json={"delivery_mode": "http", "callback_url": url})
    assert r.status_code == 200, r.text
    return address, token, r.json()["delivery_secret"], sa_id


def client_for(rt: RuntimeProcess, key: str) -> httpx.Client:
    return httpx.Client(verify=TLS, base_url=rt.url, headers={"x-api-key": key}, timeout=10)


def settled(api: httpx.Client, delivery_id: str, status: str) -> dict[str, Any]:
    return dict(poll(lambda: api.get(f"/v1/deliveries/{delivery_id}").json()["delivery"],
                     lambda d: d["status"] == status))


def test_an_intent_to_an_http_agent_is_listed_fetched_and_replayed(rt: RuntimeProcess, api: httpx.Client) -> None:
    with Receiver() as receiver:
        address, token, receiver.secret, sa_id = http_agent(api, receiver.url)
        intent_id = api.post("/v1/intents", json=new_intent(address)).json()["intent_id"]
        receiver.wait_posts(1)
        mine = client_for(rt, token).get("/v1/deliveries").json()
        assert not spec_errors("api.deliveries.list.response.v1", mine)
        [d] = mine["deliveries"]
        assert d["principal_id"] == address and d["transport_type"] == "http" and d["route_id"] == address
        assert d["payload"] == {"event_type": "intent.delivered", "intent_id": intent_id, "delivery_attempt": 1}
        assert (d["org_id"], d["workspace_id"], d["replay_of_delivery_id"]) == ("local", "dev", None)
        done = settled(api, d["delivery_id"], "delivered")
        assert not spec_errors("api.deliveries.get.response.v1", {"ok": True, "delivery": done})
        # the intent still waits for its agent: a replay POSTs it again, as a new delivery pointing at the old
        r = client_for(rt, token).post(f"/v1/deliveries/{d['delivery_id']}/replay")
        assert r.status_code == 200, r.text
        assert not spec_errors("api.deliveries.replay.response.v1", r.json())
        again = r.json()["delivery"]
        assert again["replay_of_delivery_id"] == d["delivery_id"] and again["delivery_id"] != d["delivery_id"]
        posts = receiver.wait_posts(2)
        assert posts[1]["json"]["intent_id"] == intent_id and posts[1]["signed"]
        assert posts[1]["json"]["delivery_id"] == again["delivery_id"]
        settled(api, again["delivery_id"], "delivered")
        # once the intent is done, there is nothing to deliver again
        assert client_for(rt, token).post(f"/v1/intents/{intent_id}/resume",
                                          json={"action": "complete"}).status_code == 200
        r = api.post(f"/v1/deliveries/{d['delivery_id']}/replay")
        assert r.status_code == 409 and r.json()["error"]["code"] == "intent_not_awaiting_delivery", r.text


def test_a_webhook_delivery_is_replayed_to_its_subscription(rt: RuntimeProcess, api: httpx.Client) -> None:
    owner, token = make_agent(api, unique("dl-owner"))
    agent = client_for(rt, token)
    with Receiver() as receiver:
        sub = agent.post("/v1/webhooks/subscriptions", json={"callback_url": receiver.url,
                                                             "event_types": ["inbox.thread_created"]}).json()
        receiver.secret = sub["secret"]
        agent.post("/v1/webhooks/events", json={"event_type": "inbox.thread_created", "source": "tests",
                                                "payload": {"n": 7}})
        receiver.wait_posts(1)
        [d] = agent.get("/v1/deliveries").json()["deliveries"]
        assert (d["transport_type"], d["route_id"], d["payload"]) == (
            "webhook", sub["subscription"]["subscription_id"], {"n": 7})
        settled(agent, d["delivery_id"], "delivered")
        again = agent.post(f"/v1/deliveries/{d['delivery_id']}/replay").json()["delivery"]
        assert again["payload"] == {"n": 7} and again["replay_of_delivery_id"] == d["delivery_id"]
        assert receiver.wait_posts(2)[1]["json"]["payload"] == {"n": 7} and receiver.posts[1]["signed"]
        settled(agent, again["delivery_id"], "delivered")  # recorded once the receiver's answer is back
        # a revoked subscription gets nothing again
        agent.delete(f"/v1/webhooks/subscriptions/{sub['subscription']['subscription_id']}")
        r = agent.post(f"/v1/deliveries/{d['delivery_id']}/replay")
        assert r.status_code == 409 and r.json()["error"]["code"] == "subscription_inactive", r.text
        assert [x["status"] for x in agent.get("/v1/deliveries", params={"status": "delivered"}).json()[
            "deliveries"]] == ["delivered", "delivered"]


def test_deliveries_are_owner_scoped(rt: RuntimeProcess, api: httpx.Client) -> None:
    with Receiver() as receiver:
        address, _, receiver.secret, _ = http_agent(api, receiver.url)
        api.post("/v1/intents", json=new_intent(address))
        receiver.wait_posts(1)
        [theirs] = api.get("/v1/deliveries", params={"principal_id": address}).json()["deliveries"]
    stranger_address, stranger_key = make_agent(api, unique("dl-stranger"))
    stranger = client_for(rt, stranger_key)
    assert stranger.get("/v1/deliveries").json()["deliveries"] == []
    for call in (stranger.get(f"/v1/deliveries/{theirs['delivery_id']}"),
                 stranger.post(f"/v1/deliveries/{theirs['delivery_id']}/replay")):
        assert call.status_code == 404 and call.json()["error"]["code"] == "delivery_not_found", call.text
    r = stranger.get("/v1/deliveries", params={"principal_id": address})
    assert r.status_code == 403 and r.json()["error"]["details"]["field"] == "principal_id", r.text
    r = stranger.post("/v1/deliveries", json={"principal_id": address, "payload": {}})
    assert r.status_code == 403, r.text
    # the admin key sees every agent's
    everyone = {d["principal_id"] for d in api.get("/v1/deliveries").json()["deliveries"]}
    assert address in everyone and stranger_address not in everyone


def test_a_submitted_payload_is_posted_signed_once_per_idempotency_key(rt: RuntimeProcess,
                                                                       api: httpx.Client) -> None:
    with Receiver() as receiver:
        address, token, receiver.secret, _ = http_agent(api, receiver.url)
        agent = client_for(rt, token)
        body = {"org_id": "local", "workspace_id": "dev", "principal_id": address, "payload": {"hello": "world"},
                "correlation_id": "corr-1", "idempotency_key": "key-0001"}
        first = agent.post("/v1/deliveries", json=body)
        assert first.status_code == 200, first.text
        assert not spec_errors("api.deliveries.submit.response.v1", first.json())
        d = first.json()["delivery"]
        assert (d["payload"], d["correlation_id"], d["idempotency_key"], d["transport_type"]) == (
            {"hello": "world"}, "corr-1", "key-0001", "http")
        assert agent.post("/v1/deliveries", json=body).json()["delivery"]["delivery_id"] == d["delivery_id"]
        r = agent.post("/v1/deliveries", json={**body, "payload": {"hello": "mars"}})
        assert r.status_code == 409 and r.json()["error"]["code"] == "idempotency_conflict", r.text
        [post] = receiver.wait_posts(1)
        assert post["signed"] and post["json"]["payload"] == {"hello": "world"}
        assert (post["json"]["delivery_id"], post["headers"]["X-Axme-Event"]) == (d["delivery_id"],
                                                                                   "delivery.submitted")
        settled(api, d["delivery_id"], "delivered")
    # a stream agent has no http binding to deliver to
    plain, _ = make_agent(api, unique("dl-plain"))
    r = api.post("/v1/deliveries", json={"principal_id": plain, "payload": {}})
    assert r.status_code == 409 and r.json()["error"]["code"] == "delivery_binding_missing", r.text


@pytest.mark.parametrize(("body", "field"), [
    ({"payload": {}}, "principal_id"),
    ({"principal_id": "agent://x/y/z"}, "payload"),
    ({"principal_id": "agent://x/y/z", "payload": []}, "payload"),
    ({"principal_id": "has space", "payload": {}}, "principal_id"),
    ({"principal_id": "ab", "payload": {}}, "principal_id"),
    ({"principal_id": "agent://x/y/z", "payload": {}, "correlation_id": "x" * 256}, "correlation_id"),
    ({"principal_id": "agent://x/y/z", "payload": {}, "idempotency_key": "abc"}, "idempotency_key"),
    ({"principal_id": "agent://x/y/z", "payload": {}, "surprise": 1}, "surprise"),
    ({"principal_id": "agent://x/y/z", "payload": {}, "alias": "agent://x/y/other"}, "alias"),
    ({"principal_id": "agent://x/y/z", "payload": {}, "org_id": "someone-else"}, "org_id"),
    ({"principal_id": "agent://x/y/z", "payload": {}, "idempotency_key": "key-0001"}, "idempotency_key"),
])
def test_a_hostile_submit_is_refused_naming_the_field(api: httpx.Client, body: dict[str, Any], field: str) -> None:
    headers = {"Idempotency-Key": "another-key"} if body.get("idempotency_key") == "key-0001" else {}
    r = api.post("/v1/deliveries", json=body, headers=headers)
    assert r.status_code in (404, 422), r.text
    err = r.json()["error"]
    named = [e["field"] for e in err["details"].get("errors", [])] or [err["details"].get("field")]
    assert field in named, r.text


@pytest.mark.parametrize(("params", "field"), [
    ({"status": "lost"}, "status"), ({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"),
    ({"limit": "ten"}, "limit"), ({"principal_id": "a b"}, "principal_id"), ({"workspace_id": "prod"}, "workspace_id"),
])
def test_hostile_list_parameters_are_refused_naming_the_field(api: httpx.Client, params: dict[str, str],
                                                              field: str) -> None:
    r = api.get("/v1/deliveries", params=params)
    assert r.status_code in (404, 422) and r.json()["error"]["details"]["field"] == field, r.text


def test_unknown_and_odd_delivery_ids_are_404(api: httpx.Client) -> None:
    for delivery_id in ("nope", "x" * 5000, "'; DROP TABLE outbound_deliveries; --", "%2e%2e"):
        for r in (api.get(f"/v1/deliveries/{delivery_id}"), api.post(f"/v1/deliveries/{delivery_id}/replay")):
            assert r.status_code == 404 and r.json()["error"]["code"] == "delivery_not_found", r.text


def test_the_official_sdk_methods(rt: RuntimeProcess, api: httpx.Client) -> None:
    with Receiver() as receiver:
        address, _, receiver.secret, _ = http_agent(api, receiver.url)
        sdk = AxmeClient(AxmeClientConfig(base_url=rt.url, api_key=ADMIN_KEY))
        sent = sdk.submit_delivery({"org_id": "local", "workspace_id": "dev", "principal_id": address,
                                    "payload": {"via": "sdk"}}, idempotency_key="sdk-key-1")
        delivery_id = sent["delivery"]["delivery_id"]
        assert sent["delivery"]["idempotency_key"] == "sdk-key-1"
        receiver.wait_posts(1)
        settled(api, delivery_id, "delivered")
        listed = sdk.list_deliveries(org_id="local", workspace_id="dev", principal_id=address, status="delivered")
        assert [d["delivery_id"] for d in listed["deliveries"]] == [delivery_id]
        assert sdk.get_delivery(delivery_id)["delivery"]["payload"] == {"via": "sdk"}
        replayed = sdk.replay_delivery(delivery_id)["delivery"]
        assert replayed["replay_of_delivery_id"] == delivery_id
        assert receiver.wait_posts(2)[1]["json"]["payload"] == {"via": "sdk"}

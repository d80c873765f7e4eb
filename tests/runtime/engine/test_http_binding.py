"""The http binding: an agent with delivery_mode "http" gets each intent POSTed (signed) to its callback_url
instead of on its feed, resumes it over the normal API, and an agent that is down ends in delivery_failed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from axme_sdk import AxmeClient, AxmeClientConfig

from axme_cli.runtime.clock import ManualClock
from tests.conftest import make_agent, new_intent, unique
from tests.receiver import Receiver, closed_port_url, poll
from tests.runtime_proc import RuntimeProcess
from tests.runtime_thread import RuntimeThread, tick


@pytest.fixture(scope="module")
def rt(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    proc = RuntimeThread(tmp_path_factory.mktemp("http-binding"),
                         extra_args=["--redelivery-seconds", "1", "--outbound-timeout-seconds", "2"], backend=backend)
    proc.start()
    yield proc
    proc.retire()


@pytest.fixture(scope="module")
def clocked(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeThread]:
    """The same runtime on a test clock: a redelivery comes when a test moves the clock, not a second later."""
    proc = RuntimeThread(tmp_path_factory.mktemp("http-binding-clock"),
                         extra_args=["--redelivery-seconds", "1", "--outbound-timeout-seconds", "2"], backend=backend,
                         clock=ManualClock())
    proc.start()
    yield proc
    proc.retire()


@pytest.fixture
def api(rt: RuntimeProcess) -> Iterator[httpx.Client]:
    with rt.client() as client:
        yield client


def http_agent(api: httpx.Client, url: str) -> tuple[str, str, str]:
    """A service account bound to ``url``: (address, api key, delivery secret)."""
    address, token = make_agent(api, unique("hook-agent"))
    sa_id = api.get(f"/v1/agents/{address.removeprefix('agent://')}").json()["agent"]["service_account_id"]
    r = api.patch(f"/v1/service-accounts/{sa_id}/delivery", json={"delivery_mode": "http", "callback_url": url})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["delivery"] == {"service_account_id": sa_id, "agent_address": address, "delivery_mode": "http",
                                "callback_url": url, "secret_hint": "..." + body["delivery_secret"][-4:]}
    return address, token, body["delivery_secret"]


def events_of(api: httpx.Client, intent_id: str) -> list[dict[str, Any]]:
    return list(api.get(f"/v1/intents/{intent_id}/events").json()["events"])


def test_an_http_agent_gets_a_signed_post_and_completes_the_intent_with_the_sdk(
    rt: RuntimeProcess, api: httpx.Client
) -> None:
    handled: list[str] = []

    def agent(post: dict[str, Any]) -> None:
        """What a serverless agent does after answering 200: get_intent, then resume_intent."""
        sdk = AxmeClient(AxmeClientConfig(base_url=rt.url, api_key=token))
        intent_id = post["json"]["intent_id"]
        if intent_id in handled:  # at-least-once: a redelivery may come
            return
        handled.append(intent_id)
        intent = sdk.get_intent(intent_id)["intent"]
        sdk.resume_intent(intent_id, {"action": "complete", "reserved": intent["payload"]["items"]},
                          owner_agent=address)

    with Receiver(after=agent) as receiver:
        address, token, secret = http_agent(api, receiver.url)
        receiver.secret = secret
        intent_id = api.post("/v1/intents", json=new_intent(address)).json()["intent_id"]
        done = poll(lambda: api.get(f"/v1/intents/{intent_id}").json()["intent"],
                    lambda i: i["status"] == "COMPLETED")
        assert done["result"]["reserved"] == [{"sku": "LAPTOP-001", "quantity": 1}]
        assert not receiver.errors, receiver.errors
        post = receiver.posts[0]
        assert post["signed"] and post["headers"]["X-Axme-Event"] == "intent.delivered"
        assert (post["json"]["intent_id"], post["json"]["to_agent"]) == (intent_id, address)
        assert post["json"]["payload"]["order_id"] == "ord_1" and post["json"]["delivery_attempt"] == 1
        types = [e["event_type"] for e in events_of(api, intent_id)]
        assert types[:3] == ["intent.created", "intent.submitted", "intent.delivered"]
        assert types[-1] == "intent.completed"
        sent = api.get("/v1/webhooks/deliveries", params={"intent_id": intent_id}).json()["deliveries"]
        assert [(d["kind"], d["status"], d["last_status_code"]) for d in sent][-1] == ("intent", "delivered", 200)
    # Not on the agent's feed: an http agent is never streamed to.
    with rt.client(token) as agent_http:
        frames = agent_http.get(f"/v1/agents/{address.removeprefix('agent://')}/intents/stream",
                                params={"since": 0, "wait_seconds": 1}).text
    assert intent_id not in frames and "stream.timeout" in frames


def test_an_http_agent_that_is_down_ends_in_delivery_failed(clocked: RuntimeThread) -> None:
    with clocked.client() as api:
        address, _, _ = http_agent(api, closed_port_url())
        intent_id = api.post("/v1/intents", json=new_intent(address, max_delivery_attempts=2)).json()["intent_id"]

        def sent() -> list[dict[str, Any]]:
            return list(api.get("/v1/webhooks/deliveries", params={"intent_id": intent_id}).json()["deliveries"])

        def intent() -> dict[str, Any]:
            return dict(api.get(f"/v1/intents/{intent_id}").json()["intent"])

        # The first attempt fails at once (nothing listens there). The next comes --redelivery-seconds (1 s)
        # later, and 1 s after the last one the intent fails: each when the clock has moved so far.
        poll(sent, lambda ds: [d["status"] for d in ds] == ["failed"])
        assert tick(clocked, 1, lambda: intent()["delivery_attempt"]) == 2
        poll(sent, lambda ds: [d["status"] for d in ds] == ["failed", "failed"])
        assert tick(clocked, 1, lambda: intent()["status"]) == "FAILED"
        failed = intent()
        assert failed["error"]["code"] == "delivery_failed" and failed["delivery_attempt"] == 2
        events = events_of(api, intent_id)
        assert "intent.delivered" not in [e["event_type"] for e in events]
        assert events[-1]["event_type"] == "intent.delivery_failed"
        assert events[-1]["details"]["delivery_attempt"] == 2
        assert sorted((d["delivery_attempt"], d["status"]) for d in sent()) == [(1, "failed"), (2, "failed")]
        assert all("ClientConnectorError" in d["last_error"] for d in sent())


def test_a_non_2xx_answer_is_a_failed_attempt_and_the_redelivery_gets_through(clocked: RuntimeThread) -> None:
    with Receiver(statuses=[500]) as receiver, clocked.client() as api:
        address, _, receiver.secret = http_agent(api, receiver.url)
        intent_id = api.post("/v1/intents", json=new_intent(address)).json()["intent_id"]
        receiver.wait_posts(1)

        def delivered() -> list[dict[str, Any]]:
            return [e for e in events_of(api, intent_id) if e["event_type"] == "intent.delivered"]

        poll(lambda: api.get("/v1/webhooks/deliveries", params={"intent_id": intent_id}).json()["deliveries"],
             lambda ds: [d["status"] for d in ds] == ["failed"])
        assert delivered() == []  # the 500 was no delivery; the redelivery comes when the clock has moved 1 s
        found = tick(clocked, 1, delivered)
        assert (found[0]["status"], found[0]["details"]["delivery_attempt"]) == ("DELIVERED", 2)
        assert [(p["status"], p["json"]["delivery_attempt"], p["signed"]) for p in receiver.posts[:2]] == [
            (500, 1, True), (200, 2, True)]


def test_delivery_config_rules(rt: RuntimeProcess, api: httpx.Client) -> None:
    address, token = make_agent(api, unique("cfg"))
    sa_id = api.get(f"/v1/agents/{address.removeprefix('agent://')}").json()["agent"]["service_account_id"]
    r = api.patch(f"/v1/service-accounts/{sa_id}/delivery", json={"delivery_mode": "http"})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "callback_url"
    with rt.client(token) as own:  # an agent may bind itself, with its own secret
        r = own.patch(f"/v1/service-accounts/{sa_id}/delivery",
                      json={"delivery_mode": "http", "callback_url": "http://127.0.0.1:9/x",
                            "delivery_secret": "my-own-secret-0123456789"})
        assert r.status_code == 200 and "delivery_secret" not in r.json(), r.text
        assert own.get(f"/v1/service-accounts/{sa_id}/delivery").json()["delivery"]["secret_hint"] == "...6789"
    _, other = make_agent(api, unique("other"))
    with rt.client(other) as stranger:
        assert stranger.patch(f"/v1/service-accounts/{sa_id}/delivery",
                              json={"delivery_mode": "stream"}).status_code == 404
    # Back to the feed: the next intent is streamed again.
    assert api.patch(f"/v1/service-accounts/{sa_id}/delivery", json={"delivery_mode": "stream"}).json()[
        "delivery"]["delivery_mode"] == "stream"
    intent_id = api.post("/v1/intents", json=new_intent(address)).json()["intent_id"]
    with rt.client(token) as own:
        frames = own.get(f"/v1/agents/{address.removeprefix('agent://')}/intents/stream",
                         params={"since": 0, "wait_seconds": 1}).text
    assert intent_id in frames


def test_a_scenario_binds_its_http_agents(api: httpx.Client) -> None:
    """`agents[]` with delivery_mode http and callback_url: apply sets the binding (secret answered once) and
    the saga runs with every step POSTed to the agents' URL."""
    from tests.runtime.engine.test_workflows import saga, wait_terminal

    done: list[str] = []

    def agent(post: dict[str, Any]) -> None:
        step = post["json"]["payload"]["step_id"]
        intent_id = post["json"]["intent_id"]
        if intent_id not in done:
            done.append(intent_id)
            api.post(f"/v1/intents/{intent_id}/resume", json={"action": "complete", "step": step})

    with Receiver(after=agent) as receiver:
        bundle = saga(unique("http"))
        for spec in bundle["agents"]:
            spec.update(delivery_mode="http", callback_url=receiver.url)
        r = api.post("/v1/scenarios/apply", json=bundle)
        assert r.status_code == 200, r.text
        applied = r.json()
        secrets = {a["delivery_secret"] for a in applied["agents"]}
        assert len(secrets) == 3 and all(len(s) >= 32 for s in secrets)
        receiver.secret = None  # three agents, three secrets: check each post against its agent's below
        intent = wait_terminal(api, applied["intent_id"])
        assert intent["status"] == "COMPLETED", intent.get("error")
        by_agent = {a["address"]: a["delivery_secret"] for a in applied["agents"]}
        from tests.receiver import signature_ok

        assert len(receiver.posts) >= 3
        for post in receiver.posts:
            assert signature_ok(by_agent[post["json"]["to_agent"]], post["raw"],
                                post["headers"].get("X-Axme-Signature"))
        again = api.post("/v1/scenarios/apply", json=bundle).json()  # bound already: no new secret
        assert all("delivery_secret" not in a for a in again["agents"])


def test_the_cli_keeps_a_new_delivery_secret_out_of_its_output(rt: RuntimeProcess, tmp_path: Path) -> None:
    import json

    from tests.runtime.api.test_tasks import axme
    from tests.runtime.engine.test_workflows import saga

    bundle = saga(unique("clihttp"))
    bundle["agents"][2].update(delivery_mode="http", callback_url=closed_port_url())
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    out = axme(rt, tmp_path, "scenarios", "apply", str(path), "--json")
    assert out.returncode == 0, out.stderr
    saved = json.loads((tmp_path / "cfg" / "scenario-agents.json").read_text())["agents"]
    secret = next(a["delivery_secret"] for a in saved if a.get("delivery_secret"))
    assert len(secret) >= 32 and secret not in out.stdout and secret not in out.stderr
    shipping = next(a for a in json.loads(out.stdout)["agents"] if a["role"] == bundle["agents"][2]["role"])
    assert shipping["delivery_secret"].startswith("saved to ")

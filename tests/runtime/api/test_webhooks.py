"""Webhooks: subscriptions, signed deliveries to a real receiver, retries with backoff, dead letters, replay,
`axme webhooks`, and pending deliveries that outlive a restart."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from axme_cli.runtime.clock import ManualClock
from tests.conftest import make_agent, unique
from tests.protocol.test_conformance import assert_valid
from tests.receiver import Receiver, poll
from tests.runtime.api.test_tasks import axme
from tests.runtime_proc import RuntimeProcess
from tests.runtime_thread import RuntimeThread, tick

SECRET = "s3cret-for-tests-0123456789"
EVENT = "inbox.thread_created"
# Short backoff: 0.2 s, 0.8 s; three tries, then the dead letter. (The module's runtime is on a test clock, which
# ``settled`` moves to each retry; test_pending_deliveries_survive_a_restart waits real time.)
FAST = ["--redelivery-seconds", "600", "--webhook-retry-base-seconds", "0.2", "--webhook-max-attempts", "3",
        "--outbound-timeout-seconds", "2"]


@pytest.fixture(scope="module")
def hooks(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeThread]:
    rt = RuntimeThread(tmp_path_factory.mktemp("hooks"), extra_args=FAST, backend=backend, clock=ManualClock())
    rt.start()
    yield rt
    rt.retire()


@pytest.fixture
def api(hooks: RuntimeProcess) -> Iterator[httpx.Client]:
    with hooks.client() as client:
        yield client


def subscribe(api: httpx.Client, url: str, owner: str, **extra: Any) -> dict[str, Any]:
    r = api.post("/v1/webhooks/subscriptions", params={"owner_agent": owner},
                 json={"callback_url": url, "event_types": [EVENT], "secret": SECRET, **extra})
    assert r.status_code == 200, r.text
    return dict(r.json())


def publish(api: httpx.Client, owner: str, **payload: Any) -> dict[str, Any]:
    r = api.post("/v1/webhooks/events", headers={"x-owner-agent": owner},
                 json={"event_type": EVENT, "source": "tests", "payload": payload})
    assert r.status_code == 200, r.text
    return dict(r.json())


def deliveries(api: httpx.Client, **filters: str) -> list[dict[str, Any]]:
    r = api.get("/v1/webhooks/deliveries", params=filters)
    assert r.status_code == 200, r.text
    return list(r.json()["deliveries"])


def settled(api: httpx.Client, event_id: str, rt: RuntimeThread | None = None) -> dict[str, Any]:
    """The only delivery of ``event_id`` once it is no longer pending. On ``rt``'s test clock, each retry comes
    when the clock has moved past its backoff: while the delivery is pending the clock moves 1 s at a time (a
    move after which nothing happens fails the test)."""
    if rt is not None:
        def state() -> list[tuple[str, int]]:
            return [(d["status"], d["attempts"]) for d in deliveries(api, event_id=event_id)]

        for _ in range(10):
            tried = poll(state, lambda ds: len(ds) == 1 and ds[0][1] >= 1)  # the first attempt needs no move
            if tried[0][0] != "pending":
                break
            tick(rt, 1, state)
    found = poll(lambda: deliveries(api, event_id=event_id),
                 lambda ds: len(ds) == 1 and ds[0]["status"] != "pending")
    return dict(found[0])


def test_subscriptions_follow_the_spec_shapes(api: httpx.Client) -> None:
    owner = f"agent://local/dev/{unique('owner')}"
    created = subscribe(api, "http://127.0.0.1:9/hooks", owner, description="ops")
    assert_valid("public_api/api.webhooks.subscriptions.response.v1.json", created)
    sub = created["subscription"]
    assert (sub["owner_agent"], sub["active"], sub["revoked_at"]) == (owner, True, None)
    assert sub["secret_hint"] == "..." + SECRET[-4:] and SECRET not in json.dumps(created)
    # The same URL again updates that subscription (upsert), keeping its id and description.
    again = subscribe(api, "http://127.0.0.1:9/hooks", owner, event_types=[EVENT, "invite.accepted"])
    assert again["subscription"]["subscription_id"] == sub["subscription_id"]
    assert again["subscription"]["event_types"] == [EVENT, "invite.accepted"]
    assert again["subscription"]["description"] == "ops"
    # Without a secret one is made and answered once, never listed.
    other = api.post("/v1/webhooks/subscriptions", params={"owner_agent": owner},
                     json={"callback_url": "https://example.invalid/x", "event_types": [EVENT]}).json()
    assert other["secret"].startswith("whsec_") and len(other["secret"]) >= 16
    listed = api.get("/v1/webhooks/subscriptions", params={"owner_agent": owner}).json()
    assert_valid("public_api/api.webhooks.subscriptions.list.response.v1.json", listed)
    assert [s["subscription_id"] for s in listed["subscriptions"]] == [
        sub["subscription_id"], other["subscription"]["subscription_id"]]
    assert other["secret"] not in json.dumps(listed)
    gone = api.delete(f"/v1/webhooks/subscriptions/{sub['subscription_id']}")
    assert gone.status_code == 200
    assert_valid("public_api/api.webhooks.subscriptions.delete.response.v1.json", gone.json())
    twice = api.delete(f"/v1/webhooks/subscriptions/{sub['subscription_id']}").json()
    assert twice["revoked_at"] == gone.json()["revoked_at"]
    assert api.delete("/v1/webhooks/subscriptions/nope").status_code == 404


def test_bad_requests_and_owner_scope(hooks: RuntimeProcess, api: httpx.Client) -> None:
    for body, field in (({"callback_url": "ftp://example.com/x", "event_types": [EVENT]}, "callback_url"),
                        ({"callback_url": "http://example.com/x", "event_types": ["intent.completed"]},
                         "event_types.0"),
                        ({"callback_url": "http://example.com/x", "event_types": [EVENT], "secret": "short"},
                         "secret")):
        r = api.post("/v1/webhooks/subscriptions", json=body)
        assert r.status_code == 422 and r.json()["error"]["details"]["errors"][0]["field"] == field, r.text
    r = api.post("/v1/webhooks/events", json={"event_type": "order.placed", "source": "tests", "payload": {}})
    assert r.status_code == 422
    r = api.get("/v1/webhooks/subscriptions", params={"owner_agent": "a"}, headers={"x-owner-agent": "b"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "owner_agent_mismatch"
    address, token = make_agent(api, unique("hooked"))
    mine = subscribe(api, "http://127.0.0.1:9/mine", address)["subscription"]
    theirs = subscribe(api, "http://127.0.0.1:9/theirs", f"agent://local/dev/{unique('other')}")["subscription"]
    with hooks.client(token) as agent:
        # An agent key acts for itself: its own subscriptions only, no one else's.
        assert [s["subscription_id"] for s in agent.get("/v1/webhooks/subscriptions").json()["subscriptions"]] == [
            mine["subscription_id"]]
        r = agent.get("/v1/webhooks/subscriptions", params={"owner_agent": theirs["owner_agent"]})
        assert r.status_code == 403
        assert agent.delete(f"/v1/webhooks/subscriptions/{theirs['subscription_id']}").status_code == 404
        event = agent.post("/v1/webhooks/events", json={"event_type": EVENT, "source": "bot", "payload": {}}).json()
        assert (event["owner_agent"], event["queued_deliveries"]) == (address, 1)


def test_a_signed_delivery_reaches_the_receiver(api: httpx.Client) -> None:
    owner = f"agent://local/dev/{unique('owner')}"
    with Receiver(SECRET) as receiver:
        sub = subscribe(api, receiver.url, owner)["subscription"]
        subscribe(api, receiver.url + "/other", owner, event_types=["invite.accepted"])  # another type: not sent
        published = publish(api, owner, thread_id="t-1", subject="hello")
        assert_valid("public_api/api.webhooks.events.response.v1.json", published)
        assert (published["queued_deliveries"], published["pending"], published["owner_agent"]) == (1, 1, owner)
        post = receiver.wait_posts(1)[0]
        assert post["signed"] and post["headers"]["X-Axme-Signature"].startswith("sha256=")
        assert post["json"]["event_id"] == published["event_id"]
        assert post["json"]["payload"] == {"thread_id": "t-1", "subject": "hello"}
        assert post["json"]["subscription_id"] == sub["subscription_id"]
        assert post["headers"]["X-Axme-Event"] == EVENT
        done = settled(api, published["event_id"])
        assert (done["status"], done["attempts"], done["last_status_code"]) == ("delivered", 1, 200)
        counts = api.get(f"/v1/webhooks/events/{published['event_id']}").json()
        assert (counts["queued_deliveries"], counts["processed_deliveries"], counts["delivered"]) == (1, 1, 1)
        assert len(receiver.posts) == 1


def test_a_receiver_that_fails_twice_gets_it_on_the_third_try(hooks: RuntimeThread, api: httpx.Client) -> None:
    owner = f"agent://local/dev/{unique('owner')}"
    with Receiver(SECRET, statuses=[500, 503]) as receiver:
        subscribe(api, receiver.url, owner)
        event_id = publish(api, owner, n=1)["event_id"]
        done = settled(api, event_id, hooks)
        assert (done["status"], done["attempts"], done["last_status_code"]) == ("delivered", 3, 200)
        assert [p["status"] for p in receiver.posts] == [500, 503, 200]
        assert all(p["signed"] for p in receiver.posts)
        assert [p["json"]["attempt"] for p in receiver.posts] == [1, 2, 3]
        counts = api.get(f"/v1/webhooks/events/{event_id}").json()
        assert {k: counts[k] for k in ("queued_deliveries", "processed_deliveries", "delivered", "pending",
                                       "dead_lettered")} == {"queued_deliveries": 1, "processed_deliveries": 1,
                                                             "delivered": 1, "pending": 0, "dead_lettered": 0}


def test_an_always_failing_receiver_is_dead_lettered_and_replay_sends_again(
    hooks: RuntimeThread, api: httpx.Client, tmp_path: Path
) -> None:
    owner = f"agent://local/dev/{unique('owner')}"
    with Receiver(SECRET, default=500) as receiver:
        subscribe(api, receiver.url, owner)
        event_id = publish(api, owner, n=2)["event_id"]
        dead = settled(api, event_id, hooks)
        assert (dead["status"], dead["attempts"], dead["max_attempts"]) == ("dead_lettered", 3, 3)
        assert dead["last_status_code"] == 500 and dead["last_error"] == "HTTP 500"
        assert len(receiver.posts) == 3
        counts = api.get(f"/v1/webhooks/events/{event_id}").json()
        assert (counts["dead_lettered"], counts["delivered"], counts["pending"]) == (1, 0, 0)
        # Visible from the CLI too.
        listed = axme(hooks, tmp_path, "webhooks", "deliveries", "--event", event_id, "--json")
        assert listed.returncode == 0, listed.stderr
        assert [(d["status"], d["attempts"]) for d in json.loads(listed.stdout)["items"]] == [("dead_lettered", 3)]
        table = axme(hooks, tmp_path, "webhooks", "deliveries", "--event", event_id, "--status", "dead_lettered")
        assert dead["delivery_id"] in table.stdout and "dead_lettered" in table.stdout and "HTTP 500" in table.stdout
        # The receiver is fixed; a replay (CLI) sends the event again as a new delivery.
        receiver.default = 200
        replayed = axme(hooks, tmp_path, "webhooks", "replay", event_id, "--json")
        assert replayed.returncode == 0, replayed.stderr
        body = json.loads(replayed.stdout)
        assert_valid("public_api/api.webhooks.events.replay.response.v1.json", body)
        assert (body["queued_deliveries"], body["pending"], body["dead_lettered"]) == (1, 1, 1)
        final = poll(lambda: api.get(f"/v1/webhooks/events/{event_id}").json(), lambda c: c["pending"] == 0)
        assert (final["delivered"], final["dead_lettered"], final["processed_deliveries"]) == (1, 1, 2)
        assert final["replayed_at"] == body["replayed_at"]
        assert receiver.posts[-1]["status"] == 200 and receiver.posts[-1]["signed"]
    assert api.post("/v1/webhooks/events/nope/replay").status_code == 404


def test_cli_create_list_publish_delete(hooks: RuntimeProcess, api: httpx.Client, tmp_path: Path) -> None:
    owner = f"agent://local/dev/{unique('owner')}"
    with Receiver() as receiver:
        made = axme(hooks, tmp_path, "webhooks", "create", "--url", receiver.url, "--event", EVENT,
                    "--owner-agent", owner, "--description", "from the CLI")
        assert made.returncode == 0, made.stderr
        assert "Secret:" in made.stdout and "shown once" in made.stdout
        receiver.secret = next(w for w in made.stdout.split() if w.startswith("whsec_"))
        listed = axme(hooks, tmp_path, "webhooks", "list", "--owner-agent", owner, "--json")
        subs = json.loads(listed.stdout)["items"]
        assert [(s["callback_url"], s["description"]) for s in subs] == [(receiver.url, "from the CLI")]
        sent = axme(hooks, tmp_path, "webhooks", "publish", "--type", EVENT, "--data", "thread_id=t-9",
                    "--owner-agent", owner)
        assert sent.returncode == 0 and "queued 1;" in sent.stdout, sent.stderr
        post = receiver.wait_posts(1)[0]
        assert post["signed"] and post["json"]["payload"] == {"thread_id": "t-9"}
        gone = axme(hooks, tmp_path, "webhooks", "delete", subs[0]["subscription_id"])
        assert gone.returncode == 0 and "revoked at" in gone.stdout
        table = axme(hooks, tmp_path, "webhooks", "list", "--owner-agent", owner)
        assert subs[0]["subscription_id"] in table.stdout and "revoked" in table.stdout
        missing = axme(hooks, tmp_path, "webhooks", "delete", "nope")
        assert missing.returncode == 1 and "not found" in missing.stderr.lower()


def test_pending_deliveries_survive_a_restart(backend: str, tmp_path: Path) -> None:
    rt = RuntimeThread(tmp_path, extra_args=["--webhook-retry-base-seconds", "0.5", "--webhook-max-attempts", "50",
                                             "--outbound-timeout-seconds", "1"], backend=backend).start()
    owner = f"agent://local/dev/{unique('owner')}"
    try:
        with Receiver(SECRET, default=503) as receiver, rt.client() as api:
            subscribe(api, receiver.url, owner)
            event_id = publish(api, owner, n=3)["event_id"]
            failing = poll(lambda: deliveries(api, event_id=event_id), lambda ds: ds and ds[0]["attempts"] >= 1)[0]
            assert failing["status"] == "pending" and failing["last_status_code"] == 503
            assert rt.stop() == 0
            tried = len(receiver.posts)
            receiver.default = 200
            rt.start()
            with rt.client() as again:
                done = settled(again, event_id)
            assert done["delivery_id"] == failing["delivery_id"]
            assert done["status"] == "delivered" and done["attempts"] == len(receiver.posts) > tried
            assert receiver.posts[-1]["signed"]
    finally:
        rt.stop()

"""The agent mesh (/v1/mesh/*) against the real runtime, on both backends, driven by the official SDK's mesh client
(``client.mesh``) where it has a method: heartbeats with metrics, health from heartbeat age and delivery failures
(on a test clock the tests move), the kill switch (nothing on the agent's feed or to its http endpoint, its sends
refused, what waited goes out on resume), the events, who may, bad input; a killed agent stays killed across a
restart; and on PostgreSQL a kill and a resume on one replica take effect on another."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from axme_sdk import AxmeClient, AxmeClientConfig

from axme_cli.protocol import mesh as wire
from axme_cli.runtime.clock import ManualClock, iso
from tests.agents_helper import sse_frames
from tests.auth_helpers import bearer, login
from tests.conftest import NO_LOGIN_LIMITS, make_agent, new_intent, unique
from tests.receiver import Receiver, poll
from tests.runtime.api.test_intents import assert_error
from tests.runtime_proc import TLS
from tests.runtime_thread import RuntimeThread

STORAGE_FREE = pytest.mark.backends("sqlite")  # refused before anything is read or written
START = datetime.fromisoformat("2026-05-04T09:00:00+00:00").timestamp()


@pytest.fixture(scope="module")
def meshed(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeThread]:
    """A runtime of this module on a test clock that moves only when a test moves it (forward only)."""
    rt = RuntimeThread(tmp_path_factory.mktemp("mesh"), backend=backend, clock=ManualClock(START),
                       extra_args=["--redelivery-seconds", "30", *NO_LOGIN_LIMITS])
    rt.start()
    yield rt
    rt.stop()


@pytest.fixture
def api(meshed: RuntimeThread) -> Iterator[httpx.Client]:
    with meshed.client() as client:
        yield client


def clock_of(rt: RuntimeThread) -> ManualClock:
    assert isinstance(rt.clock, ManualClock)
    return rt.clock


def sdk(rt: RuntimeThread, key: str) -> AxmeClient:
    return AxmeClient(AxmeClientConfig(base_url=rt.url, api_key=key, max_retries=0))


def name_of(address: str) -> str:
    return address.rsplit("/", 1)[-1]


def events(client: httpx.Client, address: str, event_type: str | None = None) -> list[dict[str, Any]]:
    """The agent's mesh events, oldest first."""
    params = {"address_id": address, "limit": 500, **({"event_type": event_type} if event_type else {})}
    r = client.get("/v1/mesh/events", params=params)
    assert r.status_code == 200, r.text
    return list(reversed(r.json()["events"]))


def health_changes(client: httpx.Client, address: str) -> list[tuple[str, str]]:
    return [(e["details"]["previous"], e["details"]["health"]) for e in events(client, address, "health")]


def attempt_of(client: httpx.Client, intent_id: str) -> int:
    return int(client.get(f"/v1/intents/{intent_id}").json()["intent"]["delivery_attempt"])


def feed(client: httpx.Client, address: str, since: int = 0) -> tuple[list[dict[str, Any]], int]:
    """What one read of the agent's feed hands out (a whole response): the intents, and the cursor it ends at."""
    r = client.get(f"/v1/agents/{name_of(address)}/intents/stream", params={"since": since, "wait_seconds": 1})
    assert r.status_code == 200, r.text
    frames = list(sse_frames(iter(r.text.splitlines())))
    assert frames[-1][0] == "stream.timeout", frames
    return [data for kind, data in frames if kind.startswith("intent.")], int(frames[-1][1]["next_seq"])


# ---------------------------------------------------------------------------------------------
# heartbeats and health


def test_heartbeats_keep_the_last_metrics_and_health_follows_their_age(meshed: RuntimeThread,
                                                                       api: httpx.Client) -> None:
    address, key = make_agent(api, unique("beater"))
    agent, admin = sdk(meshed, key), sdk(meshed, meshed.api_key)
    metrics = {"intents_total": 3, "intents_failed": 1, "avg_latency_ms": 12.5, "model": "small", "warm": True}
    beat = agent.mesh.heartbeat(metrics=metrics)
    assert beat["ok"] is True and beat["address"] == address and beat["health"] == "healthy"
    assert beat["status"] == "active" and beat["killed"] is False and beat["heartbeats"] == 1
    assert beat["received_at"] == iso(clock_of(meshed).time())
    for _ in range(20):  # the common case: one row changed, no event, the metrics kept
        assert agent.mesh.heartbeat()["heartbeats"] > 1
    view = admin.mesh.get_agent(address)["agent"]
    assert view["heartbeats"] == 21 and view["metrics"] == metrics and view["health"] == "healthy"
    assert view["last_heartbeat_at"] == beat["received_at"] and view["heartbeat_age_seconds"] == 0
    assert health_changes(api, address) == [("unknown", "healthy")]

    clock = clock_of(meshed)
    clock.advance(wire.HEARTBEAT_FRESH_SECONDS)  # no heartbeat for three intervals: degraded, recorded at once
    assert poll(lambda: health_changes(api, address), lambda c: len(c) == 2)[1] == ("healthy", "degraded")
    degraded = admin.mesh.list_agents(health="degraded")
    assert address in [a["address"] for a in degraded["agents"]] and degraded["summary"]["degraded"] >= 1
    assert address not in [a["address"] for a in admin.mesh.list_agents(health="healthy")["agents"]]
    clock.advance(wire.HEARTBEAT_STALE_SECONDS - wire.HEARTBEAT_FRESH_SECONDS)
    assert poll(lambda: health_changes(api, address), lambda c: len(c) == 3)[2] == ("degraded", "unhealthy")
    view = admin.mesh.get_agent(address)["agent"]
    assert view["health"] == "unhealthy" and view["health_reason"] == "no heartbeat for 300 s"
    assert agent.mesh.heartbeat(metrics={"intents_total": 1})["health"] == "healthy"  # back: the change with it
    assert health_changes(api, address)[3] == ("unhealthy", "healthy")
    assert admin.mesh.get_agent(address)["agent"]["metrics"] == {"intents_total": 1}
    changed = events(api, address, "agent.health_changed")
    assert [e["actor"] for e in changed] == [address, "agent://axme.runtime/mesh", "agent://axme.runtime/mesh",
                                             address]


def test_delivery_failures_degrade_an_agent_until_their_window_runs_out(meshed: RuntimeThread,
                                                                        api: httpx.Client) -> None:
    address, _ = make_agent(api, unique("deaf"))  # nobody listens for it: each attempt runs out unanswered
    intent_id = api.post("/v1/intents", json=new_intent(address, max_delivery_attempts=100)).json()["intent_id"]
    clock = clock_of(meshed)
    for attempt in range(2, 2 + wire.FAILURES_UNHEALTHY):
        clock.advance(30)  # the redelivery timer: a new attempt, the last one counted as failed
        poll(lambda: attempt_of(api, intent_id), lambda n, attempt=attempt: n == attempt)
    view = api.get(f"/v1/mesh/agents/{name_of(address)}").json()["agent"]
    assert view["delivery_failures"]["recent"] == view["delivery_failures"]["total"] == wire.FAILURES_UNHEALTHY
    assert view["health"] == "unhealthy" and "5 delivery failures" in view["health_reason"]
    assert health_changes(api, address) == [("unknown", "degraded"), ("degraded", "unhealthy")]
    assert api.post(f"/v1/intents/{intent_id}/resolve", json={"status": "CANCELED", "reason": "x"}).status_code == 200
    clock.advance(wire.FAILURE_WINDOW_SECONDS)  # no failure for a window: nothing known against it any more
    assert poll(lambda: health_changes(api, address), lambda c: len(c) == 3)[2] == ("unhealthy", "unknown")
    view = api.get(f"/v1/mesh/agents/{address}").json()["agent"]
    assert view["delivery_failures"]["recent"] == 0 and view["delivery_failures"]["total"] == 5


# ---------------------------------------------------------------------------------------------
# the kill switch


def test_a_killed_agent_gets_nothing_sends_nothing_and_gets_what_waited_on_resume(meshed: RuntimeThread,
                                                                                   api: httpx.Client) -> None:
    worker, worker_key = make_agent(api, unique("worker"))
    control, _ = make_agent(api, unique("control"))
    admin = sdk(meshed, meshed.api_key)
    killed = admin.mesh.kill(name_of(worker))  # by name; the address and the service account id work too
    assert killed["ok"] is True and killed["changed"] is True
    view = killed["agent"]
    assert view["status"] == "killed" and view["killed"] is True and view["address"] == worker
    assert view["killed_by"] == "initiator://local/dev/admin" and view["killed_at"] == iso(clock_of(meshed).time())
    assert admin.mesh.kill(worker)["changed"] is False  # again: nothing changes, no second event
    listed = api.get("/v1/mesh/agents", params={"status": "killed"}).json()
    assert worker in [a["address"] for a in listed["agents"]] and listed["summary"]["killed"] >= 1
    assert all(a["killed"] for a in listed["agents"])

    with meshed.client(worker_key) as w:
        refused = assert_error(w.post("/v1/intents", json=new_intent(control)), 403, "agent_killed")
        assert refused["error"]["details"] == {"address": worker, "status": "killed"}
        bundle = {"scenario_id": "mesh.k", "agents": [{"role": "c", "address": control}],
                  "intent": {"type": "order.reserve.v1", "payload": {}}}
        assert_error(w.post("/v1/scenarios/apply", json=bundle), 403, "agent_killed")
        assert w.post("/v1/mesh/heartbeat").json()["killed"] is True  # it may still say it is alive
        assert_error(api.post("/v1/intents", json=new_intent(control, from_agent=worker)), 403, "agent_killed")

        # what is addressed to it waits: nothing on its feed, no delivery attempt counted however long it waits
        waiting = api.post("/v1/intents", json=new_intent(worker, max_delivery_attempts=2)).json()["intent_id"]
        other = api.post("/v1/intents", json=new_intent(control, max_delivery_attempts=2)).json()["intent_id"]
        clock_of(meshed).advance(600)  # both redelivery timers fire in one pass (the waiting one's is earlier)
        poll(lambda: attempt_of(api, other), lambda n: n == 2)
        intent = api.get(f"/v1/intents/{waiting}").json()["intent"]
        assert intent["status"] == "SUBMITTED" and intent["delivery_attempt"] == 1
        clock_of(meshed).advance(600)  # the control intent gives up; the waiting one does not
        poll(lambda: api.get(f"/v1/intents/{other}").json()["intent"]["status"], lambda s: s == "FAILED")
        assert api.get(f"/v1/intents/{waiting}").json()["intent"]["status"] == "SUBMITTED"
        assert feed(w, worker) == ([], 0)  # read from the start: held, the cursor where it was

        resumed = admin.mesh.resume(worker)
        assert resumed["changed"] is True and resumed["agent"]["status"] == "active"
        assert resumed["agent"]["resumed_by"] == "initiator://local/dev/admin"
        assert admin.mesh.resume(worker)["changed"] is False
        got, cursor = feed(w, worker)
        assert [g["intent_id"] for g in got] == [waiting] and got[0]["delivery_attempt"] == 1 and cursor == 1
        assert w.get(f"/v1/intents/{waiting}").json()["intent"]["status"] == "DELIVERED"
        assert w.post("/v1/intents", json=new_intent(control)).status_code == 200  # it may send again

    capabilities = api.get("/v1/capabilities").json()["capabilities"]
    assert {"mesh.heartbeat", "mesh.kill_switch", "mesh.events"} <= set(capabilities)
    kinds = [(e["event_type"], e["actor"]) for e in events(api, worker) if e["event_type"] != "agent.health_changed"]
    assert kinds == [("agent.killed", "initiator://local/dev/admin"), ("agent.resumed", "initiator://local/dev/admin")]
    audit = api.get("/v1/audit/events", params={"owner_agent": worker, "action_prefix": "agent."}).json()["events"]
    assert [a["action"] for a in audit] == ["agent.resumed", "agent.killed"]


def test_a_killed_http_agents_posts_wait_for_its_resume(meshed: RuntimeThread, api: httpx.Client) -> None:
    address, _ = make_agent(api, unique("hooked"))
    sa_id = api.get(f"/v1/agents/{name_of(address)}").json()["agent"]["service_account_id"]
    with Receiver() as receiver:
        r = api.patch(f"/v1/service-accounts/{sa_id}/delivery",
                      json={"delivery_mode": "http", "callback_url": receiver.url})
        assert r.status_code == 200, r.text
        reason = {"reason": "sends garbage"}
        killed = api.post(f"/v1/mesh/agents/{sa_id}/kill", json=reason).json()  # by service account id
        assert killed["agent"]["kill_reason"] == "sends garbage"
        intent_id = api.post("/v1/intents", json=new_intent(address)).json()["intent_id"]
        held_until = iso(clock_of(meshed).time() + 300)

        def delivery() -> dict[str, Any]:
            found = api.get("/v1/webhooks/deliveries", params={"intent_id": intent_id}).json()["deliveries"]
            assert len(found) == 1, found
            return dict(found[0])

        held = poll(delivery, lambda d: d.get("next_attempt_at") == held_until)  # the sender took it and held it
        assert held["status"] == "pending" and held["attempts"] == 0 and receiver.posts == []
        assert api.get(f"/v1/intents/{intent_id}").json()["intent"]["status"] == "SUBMITTED"
        assert api.post(f"/v1/mesh/agents/{address}/resume", json={"reason": "fixed"}).json()["changed"] is True
        posts = receiver.wait_posts(1)
        assert len(posts) == 1 and posts[0]["json"]["intent_id"] == intent_id
        poll(delivery, lambda d: d["status"] == "delivered")
    resumed = events(api, address, "resume")
    assert len(resumed) == 1 and resumed[0]["details"]["reason"] == "fixed"


# ---------------------------------------------------------------------------------------------
# who may


def test_agents_see_only_themselves_and_only_people_and_the_workspace_key_kill(meshed: RuntimeThread,
                                                                               api: httpx.Client) -> None:
    me, my_key = make_agent(api, unique("me"))
    other, _ = make_agent(api, unique("other"))
    mine = sdk(meshed, my_key)
    assert [a["address"] for a in mine.mesh.list_agents()["agents"]] == [me]
    mine.mesh.heartbeat()
    with meshed.client(my_key) as m:
        assert_error(m.get(f"/v1/mesh/agents/{name_of(other)}"), 404, "agent_not_found")
        assert m.get(f"/v1/mesh/agents/{me}").json()["agent"]["address"] == me
        for target in (me, other, "nobody-here"):
            for action in ("kill", "resume"):
                assert_error(m.post(f"/v1/mesh/agents/{name_of(target)}/{action}"), 403, "kill_switch_forbidden")
        assert {e["address"] for e in m.get("/v1/mesh/events").json()["events"]} == {me}
        assert_error(m.get("/v1/mesh/events", params={"address_id": other}), 404, "agent_not_found")
        assert_error(m.post("/v1/mesh/heartbeat", headers={"x-owner-agent": other}), 403, "actor_mismatch")
        assert m.post("/v1/mesh/heartbeat", params={"owner_agent": me}).status_code == 200
    # the workspace key heartbeats for an agent it names; an unknown agent is 404 everywhere
    assert_error(api.post("/v1/mesh/heartbeat"), 422, names="owner_agent")
    assert api.post("/v1/mesh/heartbeat", headers={"x-owner-agent": name_of(other)}).json()["address"] == other
    for path in ("/v1/mesh/agents/nobody-here", "/v1/mesh/agents/not%20an%20address",
                 "/v1/mesh/agents/agent://local/dev/nobody-here/kill",
                 "/v1/mesh/agents/00000000-0000-4000-8000-000000000000/resume"):
        r = api.post(path) if path.endswith(("kill", "resume")) else api.get(path)
        assert_error(r, 404, "agent_not_found")
    assert_error(api.post("/v1/mesh/heartbeat", params={"owner_agent": "nobody-here"}), 404, "agent_not_found")
    # a person (email login) kills and resumes
    person = login(api, meshed.mail_dir, f"{unique('oncall')}@example.com")
    with meshed.client() as as_person:
        as_person.headers.pop("x-api-key", None)
        as_person.headers.update(bearer(person["access_token"]))
        killed = as_person.post(f"/v1/mesh/agents/{name_of(other)}/kill").json()
        assert killed["agent"]["killed_by"] == person["email"]
        assert as_person.post(f"/v1/mesh/agents/{name_of(other)}/resume").json()["agent"]["status"] == "active"
    # a deleted agent is gone for the mesh too
    sa_id = api.get(f"/v1/agents/{name_of(other)}").json()["agent"]["service_account_id"]
    assert api.delete(f"/v1/service-accounts/{sa_id}").status_code == 200
    assert_error(api.post(f"/v1/mesh/agents/{sa_id}/kill"), 404, "agent_not_found")
    assert other not in [a["address"] for a in sdk(meshed, meshed.api_key).mesh.list_agents(limit=1000)["agents"]]


@STORAGE_FREE
@pytest.mark.parametrize(("method", "path", "kwargs", "field"), [
    ("POST", "/v1/mesh/heartbeat", {"json": {"metrics": [1]}}, "metrics"),
    ("POST", "/v1/mesh/heartbeat", {"json": {"metrics": {"cpu": {"user": 1}}}}, "metrics.cpu"),
    ("POST", "/v1/mesh/heartbeat", {"json": {"metrics": {"tags": ["a"]}}}, "metrics.tags"),
    ("POST", "/v1/mesh/heartbeat", {"json": {"metrics": {"bad name": 1}}}, "metrics"),
    ("POST", "/v1/mesh/heartbeat", {"json": {"metrics": {f"m{i}": i for i in range(65)}}}, "metrics"),
    ("POST", "/v1/mesh/heartbeat", {"json": {"metrics": {"text": "x" * 257}}}, "metrics.text"),
    ("POST", "/v1/mesh/heartbeat", {"json": {"status": "ok"}}, "status"),
    ("POST", "/v1/mesh/heartbeat", {"json": [1]}, "(body)"),
    ("GET", "/v1/mesh/agents", {"params": {"health": "sick"}}, "health"),
    ("GET", "/v1/mesh/agents", {"params": {"status": "dead"}}, "status"),
    ("GET", "/v1/mesh/agents", {"params": {"limit": "0"}}, "limit"),
    ("GET", "/v1/mesh/events", {"params": {"event_type": "agent.exploded"}}, "event_type"),
    ("GET", "/v1/mesh/events", {"params": {"limit": "501"}}, "limit"),
    ("GET", "/v1/mesh/events", {"params": {"before": "yesterday"}}, "before"),
    ("POST", "/v1/mesh/agents/anyone/kill", {"json": {"reason": "x" * 501}}, "reason"),
    ("POST", "/v1/mesh/agents/anyone/resume", {"json": {"reason": 5}}, "reason"),
])
def test_bad_input_is_422_naming_the_field(meshed: RuntimeThread, api: httpx.Client, method: str, path: str,
                                           kwargs: dict[str, Any], field: str) -> None:
    key = make_agent(api, unique("bad"))[1] if path.endswith("heartbeat") else meshed.api_key
    with meshed.client(key) as c:
        body = assert_error(c.request(method, path, **kwargs), 422)
    details = body["error"]["details"]
    assert field in (details.get("field"), *[e["field"] for e in details.get("errors", [])]), body


# ---------------------------------------------------------------------------------------------
# across a restart, and across replicas


def test_a_killed_agent_stays_killed_across_a_restart(backend: str, tmp_path: Path) -> None:
    first = RuntimeThread(tmp_path, backend=backend).start()
    try:
        with first.client() as c:
            address, key = make_agent(c, unique("sticky"))
            assert c.post(f"/v1/mesh/agents/{name_of(address)}/kill").status_code == 200
    finally:
        first.stop()
    again = RuntimeThread(tmp_path, backend=backend, database_url=first.database_url).start()
    try:
        with again.client(key) as c:
            assert_error(c.post("/v1/intents", json=new_intent("someone")), 403, "agent_killed")
    finally:
        again.stop()


@pytest.mark.backends("postgres")
def test_a_kill_and_a_resume_on_one_replica_hold_on_another(meshed: RuntimeThread, tmp_path: Path) -> None:
    """Two replicas on one database: an agent killed before the second starts is killed there at once (read at
    start); one killed on the first is refused on the second as soon as the notification arrives; its feed stream
    open on the second sends nothing until a resume on the first wakes it, then the intent that waited."""
    with meshed.client() as a:
        early, early_key = make_agent(a, unique("early"))
        a.post(f"/v1/mesh/agents/{name_of(early)}/kill").raise_for_status()
        other = RuntimeThread(tmp_path, backend="postgres", database_url=meshed.database_url,
                              clock=meshed.clock, extra_args=["--redelivery-seconds", "30"]).start()
        try:
            with other.client(early_key) as e:
                assert_error(e.post("/v1/intents", json=new_intent("someone")), 403, "agent_killed")
            worker, worker_key = make_agent(a, unique("replicated"))
            with other.client(worker_key) as w, other.client() as b:
                assert w.post("/v1/intents", json=new_intent("someone")).status_code == 200
                a.post(f"/v1/mesh/agents/{name_of(worker)}/kill").raise_for_status()
                poll(lambda: w.post("/v1/intents", json=new_intent("someone")).status_code, lambda s: s == 403)
                waiting = b.post("/v1/intents", json=new_intent(worker)).json()["intent_id"]
                got: list[dict[str, Any]] = []
                opened = threading.Event()

                def listen() -> None:  # an agent's stream on the second replica, open across the resume
                    params = {"since": 0, "wait_seconds": 30, "incremental": "true"}
                    with httpx.Client(verify=TLS, base_url=other.url, headers={"x-api-key": worker_key},
                                      timeout=60) as s, \
                            s.stream("GET", f"/v1/agents/{name_of(worker)}/intents/stream", params=params) as r:
                        opened.set()
                        for kind, data in sse_frames(r.iter_lines()):
                            if kind.startswith("intent."):
                                got.append(data)
                                return

                reader = threading.Thread(target=listen, daemon=True)
                reader.start()
                assert opened.wait(30)
                assert got == [] and b.get(f"/v1/intents/{waiting}").json()["intent"]["status"] == "SUBMITTED"
                a.post(f"/v1/mesh/agents/{name_of(worker)}/resume").raise_for_status()
                reader.join(30)
                assert [g["intent_id"] for g in got] == [waiting]
                poll(lambda: w.post("/v1/intents", json=new_intent("someone")).status_code, lambda s: s == 200)
                state = json.loads(b.get(f"/v1/mesh/agents/{worker}").text)["agent"]
                assert state["status"] == "active" and state["resumed_by"] == "initiator://local/dev/admin"
        finally:
            other.stop()

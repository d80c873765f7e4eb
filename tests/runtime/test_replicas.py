"""Three `axme server` replicas on one PostgreSQL database: sagas go through all of them, agents are
connected to different replicas, one replica is killed with SIGKILL in the middle, and every saga still
ends as it should, with nothing lost and nothing done twice."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agents_helper import FeedAgent, agent_key
from tests.conftest import make_agent, new_intent
from tests.receiver import poll
from tests.runtime.engine.test_workflows import saga, wait_terminal
from tests.runtime_proc import RuntimeProcess, new_database


class Agents:
    """The three services of one saga bundle, each connected to a different replica first."""

    def __init__(self, urls: list[str], admin: httpx.Client, agents: list[dict[str, Any]],
                 fail_ship: bool) -> None:
        self.calls: list[tuple[str, str, str, bool]] = []  # (parent order id, role, step_id, compensation)
        self.threads: list[FeedAgent] = []
        for i, agent in enumerate(agents):
            name = agent["address"].rsplit("/", 1)[1]
            token = agent_key(admin, agent["address"])
            order = urls[i % len(urls):] + urls[: i % len(urls)]  # inventory -> r0, payment -> r1, shipping -> r2
            self.threads.append(FeedAgent(order, token, name, self._handler(agent["role"], fail_ship)))
        for t in self.threads:
            t.start()

    def _handler(self, role: str, fail_ship: bool):  # type: ignore[no-untyped-def]
        def handle(frame: dict[str, Any]) -> dict[str, Any]:
            payload = frame["payload"]
            step, comp = payload["step_id"], bool(payload.get("compensation"))
            self.calls.append((payload["parent_payload"]["order_id"], role, step, comp))
            if step == "ship" and fail_ship and not comp:
                return {"action": "fail", "reason": "no courier"}
            return {"action": "complete", "step": step}
        return handle

    def stop(self) -> None:
        for t in self.threads:
            t.stop_event.set()
        for t in self.threads:
            t.stop()


def start_together(replicas: list[RuntimeProcess]) -> None:
    """Start the replicas at once (each checks the schema under PostgreSQL's advisory lock and ensures the admin
    key). The database is migrated already: replicas migrating an empty one together are
    tests/runtime/store/test_postgres.py's."""
    import threading

    failures: list[BaseException] = []

    def start(rt: RuntimeProcess) -> None:
        try:
            rt.start()
        except BaseException as exc:  # reported by the test below, not lost in the thread
            failures.append(exc)

    for rt in replicas:
        rt.workdir.mkdir()
    threads = [threading.Thread(target=start, args=(rt,)) for rt in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures, failures


def streams_open(client: httpx.Client) -> float:
    """The replica's axme_sse_streams_open gauge (its open streams)."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("axme_sse_streams_open "):
            return float(line.split()[1])
    raise AssertionError("no axme_sse_streams_open in /metrics")


def wait_for_streams(client: httpx.Client, count: int) -> None:
    """Until the replica has exactly ``count`` streams open."""
    deadline = time.monotonic() + 20
    while (now := streams_open(client)) != count:
        assert time.monotonic() < deadline, f"{now} streams open, not {count}"
        time.sleep(0.02)


@pytest.mark.slow
def test_three_replicas_one_killed(tmp_path: Path) -> None:
    url = new_database("postgres", tmp_path, migrated=True)
    replicas = [
        RuntimeProcess(tmp_path / f"r{i}", backend="postgres", database_url=url, command="server",
                       extra_args=["--redelivery-seconds", "1", "--replica-id", f"r{i}"])
        for i in range(3)
    ]
    start_together(replicas)
    urls = [rt.url for rt in replicas]
    groups: list[Agents] = []
    runs: list[tuple[str, bool]] = []  # (parent intent id, ship fails)
    try:
        bundles = {fail: saga("fail" if fail else "ok") for fail in (False, True)}
        for bundle in bundles.values():
            for step in bundle["workflow"]["steps"]:
                step["retry"]["max_retries"] = 1
        with replicas[0].client() as admin:
            for fail, bundle in bundles.items():
                applied = admin.post("/v1/scenarios/apply", json=bundle)
                assert applied.status_code == 200, applied.text
                groups.append(Agents(urls, admin, applied.json()["agents"], fail_ship=fail))
                runs.append((applied.json()["intent_id"], fail))
        # More sagas, started through every replica in turn, while one of them dies.
        for n in range(18):
            fail = n % 3 == 0
            with replicas[n % 3].client() as client:
                if n == 9:
                    replicas[1].kill()
                if n >= 9 and n % 3 == 1:
                    continue  # the dead replica accepts nothing more
                r = client.post("/v1/scenarios/apply", json=bundles[fail])
                assert r.status_code == 200, r.text
                runs.append((r.json()["intent_id"], fail))
            time.sleep(0.05)
        with replicas[2].client() as admin:
            for intent_id, fail in runs:
                intent = wait_terminal(admin, intent_id, timeout=90)
                events = admin.get(f"/v1/intents/{intent_id}/events").json()["events"]
                assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), intent_id
                history = intent["workflow"]["history"]
                completed = [h["step_id"] for h in history if h["status"] == "COMPLETED"]
                assert len(completed) == len(set(completed)), (intent_id, history)  # no step completed twice
                undone = [e["details"]["step_id"] for e in events if e["event_type"] == "intent.compensated"]
                if fail:
                    assert intent["status"] == "FAILED", (intent_id, intent.get("error"))
                    assert undone == ["charge", "reserve"], (intent_id, events)
                else:
                    assert intent["status"] == "COMPLETED", (intent_id, intent.get("error"))
                    assert undone == [], intent_id
                    assert completed == ["reserve", "charge", "ship"]
            # the surviving replicas also agree on what is listed
            listed = {i["intent_id"] for i in admin.get("/v1/intents", params={"limit": 500}).json()["intents"]}
        assert {intent_id for intent_id, _ in runs} <= listed
        assert len(runs) == 2 + 18 - 3
        import psycopg

        with psycopg.connect(url) as conn:  # three replicas started together with one admin key: one row
            row = conn.execute("SELECT count(*) FROM api_keys WHERE kind = 'workspace'").fetchone()
        assert row is not None and row[0] == 1
        for g in groups:  # the payment agents were connected to the killed replica and moved on
            assert g.threads[1].url != urls[1] and any(isinstance(e, httpx.HTTPError) for e in g.threads[1].errors)
    finally:
        for g in groups:  # all told first: each ends within its feed's 1 s wait, together
            for t in g.threads:
                t.stop_event.set()
        for g in groups:
            g.stop()
        for rt in replicas:
            rt.retire()  # stopped at the end of the session: nothing restarts on this database


def test_streams_on_one_replica_see_writes_on_another(tmp_path: Path) -> None:
    """An intent's event stream and an agent's feed held on replica A get what replica B commits (through
    LISTEN/NOTIFY), without polling and without reconnecting."""
    import threading

    url = new_database("postgres", tmp_path, migrated=True)
    a, b = (RuntimeProcess(tmp_path / name, backend="postgres", database_url=url, command="server",
                           extra_args=["--redelivery-seconds", "600"]) for name in ("a", "b"))
    start_together([a, b])
    try:
        with a.client() as on_a, b.client() as on_b:
            address, token = make_agent(on_b, "xrep")
            name = address.rsplit("/", 1)[1]
            seen: dict[str, list[str]] = {"feed": [], "events": []}

            def follow_feed() -> None:
                with a.client(token) as agent, agent.stream(
                        "GET", f"/v1/agents/{name}/intents/stream", params={"since": 0, "wait_seconds": 20}) as r:
                    for line in r.iter_lines():
                        if line.startswith("data:") and "intent_id" in line:
                            seen["feed"].append(line)
                            return

            feed = threading.Thread(target=follow_feed)
            feed.start()
            wait_for_streams(on_a, 1)  # A's stream is open: what it gets next can only come from B's notify
            created = on_b.post("/v1/intents", json=new_intent(address))  # written by B ...
            assert created.status_code == 200, created.text
            intent_id = created.json()["intent_id"]
            feed.join(30)
            assert seen["feed"] and intent_id in seen["feed"][0]  # ... delivered by A

            def follow_events() -> None:
                with on_a.stream("GET", f"/v1/intents/{intent_id}/events/stream",
                                 params={"since": 3, "wait_seconds": 20}) as r:
                    for line in r.iter_lines():
                        if line.startswith("data:"):
                            seen["events"].append(line)
                            if "COMPLETED" in line:
                                return

            watcher = threading.Thread(target=follow_events)
            wait_for_streams(on_a, 0)  # the feed's stream is closed
            watcher.start()
            wait_for_streams(on_a, 1)  # and the watcher's open: the completion reaches it by B's notify
            with b.client(token) as agent_on_b:
                done = agent_on_b.post(f"/v1/intents/{intent_id}/resume", json={"action": "complete"})
            assert done.status_code == 200, done.text
            watcher.join(30)
            assert any("intent.completed" in e for e in seen["events"]), seen["events"]
    finally:
        for rt in (a, b):
            rt.retire()


class HeldWriter:
    """Replica ``rt``'s one writer held inside a batch: a row lock taken here on an intent that a resume sent to
    ``rt`` then waits for. What ``rt`` queues next waits behind that batch until ``release``."""

    def __init__(self, url: str, rt: RuntimeProcess, admin: httpx.Client, address: str) -> None:
        import threading

        import psycopg

        created = admin.post("/v1/intents", json=new_intent(address))
        assert created.status_code == 200, created.text
        intent_id = created.json()["intent_id"]
        self.conn = psycopg.connect(url)
        self.conn.execute("SELECT 1 FROM intents WHERE intent_id = %s FOR UPDATE", (intent_id,))
        self.answer: list[int] = []

        def resume() -> None:
            # the replica may be killed meanwhile
            with rt.client() as client, contextlib.suppress(httpx.HTTPError):
                self.answer.append(
                    client.post(f"/v1/intents/{intent_id}/resume", json={"action": "complete"}).status_code)

        self.thread = threading.Thread(target=resume, daemon=True)
        self.thread.start()
        with psycopg.connect(url, autocommit=True) as watch:  # until the writer's batch waits for the lock
            poll(lambda: watch.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                       "AND wait_event_type = 'Lock'").fetchone()[0],  # type: ignore[index]
                 bool, timeout=20)

    def release(self) -> None:
        self.conn.rollback()
        self.conn.close()
        self.thread.join(30)


def first_frame(rt: RuntimeProcess, token: str, name: str, since: int = 0) -> dict[str, Any]:
    """The first intent frame of agent ``name``'s feed on replica ``rt``, after cursor ``since``."""
    with rt.client(token) as agent, agent.stream("GET", f"/v1/agents/{name}/intents/stream",
                                                 params={"since": since, "wait_seconds": 30}) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data:") and "intent_id" in line:
                return json.loads(line[5:])  # type: ignore[no-any-return]
    raise AssertionError("the feed ended without a frame")


@dataclasses.dataclass
class SentUnmarked:
    a: RuntimeProcess
    b: RuntimeProcess
    on_a: httpx.Client
    on_b: httpx.Client
    held: HeldWriter
    token: str
    name: str
    intent_id: str
    frame: dict[str, Any]  # what A's feed sent

    def answer_on_b(self) -> None:
        with self.b.client(self.token) as agent_on_b:
            done = agent_on_b.post(f"/v1/intents/{self.intent_id}/resume", json={"action": "complete"})
        assert done.status_code == 200, done.text


@contextlib.contextmanager
def sent_unmarked(tmp_path: Path, redelivery_seconds: str) -> Iterator[SentUnmarked]:
    """Replicas A and B; an intent created through B and sent by A's feed while A's writer is held, so that its
    delivery cannot have been recorded yet."""
    url = new_database("postgres", tmp_path, migrated=True)
    a, b = (RuntimeProcess(tmp_path / name, backend="postgres", database_url=url, command="server",
                           extra_args=["--redelivery-seconds", redelivery_seconds]) for name in ("a", "b"))
    start_together([a, b])
    try:
        with a.client() as on_a, b.client() as on_b:
            held_address, _ = make_agent(on_b, "held")
            address, token = make_agent(on_b, "quick")
            name = address.rsplit("/", 1)[1]
            held = HeldWriter(url, a, on_a, held_address)
            created = on_b.post("/v1/intents", json=new_intent(address))
            assert created.status_code == 200, created.text
            intent_id = created.json()["intent_id"]
            frame = first_frame(a, token, name)
            assert frame["intent_id"] == intent_id and frame["delivery_attempt"] == 1
            yield SentUnmarked(a, b, on_a, on_b, held, token, name, intent_id, frame)
    finally:
        for rt in (a, b):
            rt.retire()


def test_frame_leaves_before_its_mark_and_an_answer_elsewhere_wins(tmp_path: Path) -> None:
    """A feed sends an intent without waiting for the write that records its delivery; the agent answers through
    another replica before that write commits: the answer stands, and the late mark changes nothing."""
    with sent_unmarked(tmp_path, "600") as sent:
        assert sent.frame["status"] == "DELIVERED"
        assert sent.on_b.get(f"/v1/intents/{sent.intent_id}").json()["intent"]["status"] == "SUBMITTED"
        sent.answer_on_b()
        sent.held.release()
        assert sent.held.answer == [200]
        shown = sent.on_a.get(f"/v1/intents/{sent.intent_id}").json()["intent"]  # waits for A's mark
        assert shown["status"] == "COMPLETED"
        events = sent.on_a.get(f"/v1/intents/{sent.intent_id}/events").json()["events"]
        assert [e["event_type"] for e in events] == ["intent.created", "intent.submitted", "intent.completed"]
        assert [e["seq"] for e in events] == [1, 2, 3]


def test_kill_between_frame_and_mark_redelivers(tmp_path: Path) -> None:
    """kill -9 of the replica that sent an intent before its delivery was recorded: the intent is still SUBMITTED
    and another replica delivers it again (at-least-once)."""
    with sent_unmarked(tmp_path, "1") as sent:
        sent.a.kill()
        sent.held.release()
        again = first_frame(sent.b, sent.token, sent.name, since=sent.frame["seq"])
        assert again["intent_id"] == sent.intent_id and again["delivery_attempt"] == 2
        sent.answer_on_b()
        events = sent.on_b.get(f"/v1/intents/{sent.intent_id}/events").json()["events"]
        delivered = [e["details"]["delivery_attempt"] for e in events if e["event_type"] == "intent.delivered"]
        assert delivered == [2]  # the first attempt's mark died with its replica
        assert events[-1]["event_type"] == "intent.completed"

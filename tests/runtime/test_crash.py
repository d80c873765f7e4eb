"""kill -9 of the runtime loses no accepted intent and no event; undelivered intents are delivered after restart."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_agent
from tests.runtime_proc import TLS, RuntimeProcess

pytestmark = pytest.mark.slow


class Sender(threading.Thread):
    """Creates intents until the runtime stops answering; remembers every intent that got a 200 (id -> agent) and
    counts every status it got."""

    def __init__(self, url: str, key: str, to_agent: str, accepted: dict[str, str], statuses: Counter[int],
                 lock: threading.Lock) -> None:
        super().__init__(daemon=True)
        self.url, self.key, self.to_agent = url, key, to_agent
        self.accepted, self.statuses, self.lock = accepted, statuses, lock
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(verify=TLS, base_url=self.url, headers={"x-api-key": self.key}, timeout=5.0) as client:
            while not self.stop.is_set():
                correlation = str(uuid.uuid4())
                body = {"intent_type": "order.place.v1", "correlation_id": correlation,
                        "to_agent": self.to_agent, "payload": {"n": correlation}}
                try:
                    r = client.post("/v1/intents", json=body)
                except httpx.HTTPError:
                    return  # the runtime died under us: this request may or may not have been accepted
                with self.lock:
                    self.statuses[r.status_code] += 1
                assert r.status_code == 200, r.text
                with self.lock:
                    self.accepted[r.json()["intent_id"]] = self.to_agent


class Completer(threading.Thread):
    """An agent that completes what its feed delivers and remembers each 200 from /resume."""

    def __init__(self, url: str, token: str, name: str, completed: set[str], lock: threading.Lock) -> None:
        super().__init__(daemon=True)
        self.url, self.token, self.name = url, token, name
        self.completed, self.lock = completed, lock
        self.stop = threading.Event()

    def run(self) -> None:
        cursor = 0
        with httpx.Client(verify=TLS, base_url=self.url, headers={"x-api-key": self.token}, timeout=10.0) as client:
            while not self.stop.is_set():
                try:
                    for frame in feed(client, self.name, cursor, wait=1):
                        cursor = frame["seq"]
                        r = client.post(f"/v1/intents/{frame['intent_id']}/resume",
                                        json={"action": "complete", "ok": True})
                        if r.status_code == 200:
                            with self.lock:
                                self.completed.add(frame["intent_id"])
                except httpx.HTTPError:
                    return


def feed(client: httpx.Client, name: str, since: int, wait: int) -> list[dict]:
    return list(frames_of(client, name, since, wait))


def frames_of(client: httpx.Client, name: str, since: int, wait: int) -> Iterator[dict]:
    """The intent frames of one feed request as they come (the request ends when the reader stops)."""
    with client.stream("GET", f"/v1/agents/{name}/intents/stream",
                       params={"since": since, "wait_seconds": wait}) as response:
        assert response.status_code == 200
        event = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event and event.startswith("intent."):
                yield json.loads(line[6:])


def check_log(client: httpx.Client, intent_id: str) -> list[dict]:
    r = client.get(f"/v1/intents/{intent_id}/events")
    assert r.status_code == 200, f"accepted intent {intent_id} is missing after the crash: {r.text}"
    events = r.json()["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), events
    assert [e["event_type"] for e in events[:2]] == ["intent.created", "intent.submitted"]
    intent = client.get(f"/v1/intents/{intent_id}").json()["intent"]
    assert intent["seq"] == len(events)
    assert intent["status"] == events[-1]["status"]
    return events


# SQLite only: on PostgreSQL the crash matrix (tests/reliability/test_crash_matrix.py) kills the runtime under a
# heavier load and checks the same (every 200 kept, events dense, every intent ends after the restart).
@pytest.mark.backends("sqlite")
def test_kill_9_loses_nothing(backend: str, tmp_path: Path) -> None:
    rt = RuntimeProcess(tmp_path, extra_args=["--redelivery-seconds", "120"], backend=backend).start()
    lock = threading.Lock()
    accepted: dict[str, str] = {}
    statuses: Counter[int] = Counter()
    completed: set[str] = set()
    try:
        with rt.client() as admin:
            _, token_a = make_agent(admin, "crash-a")  # has a running agent
            make_agent(admin, "crash-b")  # nobody listens until after the crash
        for cycle in range(2):
            senders = [Sender(rt.url, rt.api_key or "", f"crash-{'ab'[i % 2]}", accepted, statuses, lock)
                       for i in range(6)]
            agent = Completer(rt.url, token_a, "crash-a", completed, lock)
            for t in [*senders, agent]:
                t.start()
            target = len(accepted) + 80
            deadline = time.monotonic() + 30
            while len(accepted) < target and time.monotonic() < deadline:
                time.sleep(0.01)
            rt.kill()  # mid-stream: senders and the agent are all in flight
            for t in [*senders, agent]:
                t.stop.set()
                t.join(15)
            rt.start()
            assert len(accepted) >= target, f"cycle {cycle}: only {len(accepted)} accepted"
            # every answer before the kill was a 200 (never a 500); the rest were cut connections
            assert set(statuses) == {200} and statuses[200] == len(accepted), statuses

        with rt.client() as admin:
            for intent_id in accepted:
                events = check_log(admin, intent_id)
                if intent_id in completed:
                    assert events[-1]["status"] == "COMPLETED", (intent_id, events)
            # Everything accepted for crash-b is still waiting and is delivered now, after the restarts.
            pending_b = {i for i, to_agent in accepted.items() if to_agent == "crash-b"}
            assert pending_b
            seen: set[str] = set()
            cursor = 0
            deadline = time.monotonic() + 30
            while not pending_b <= seen and time.monotonic() < deadline:
                with contextlib.closing(frames_of(admin, "crash-b", cursor, wait=1)) as frames:
                    for frame in frames:
                        cursor = frame["seq"]
                        seen.add(frame["intent_id"])
                        if pending_b <= seen:
                            break  # all of them: no need to wait out the feed's second
            assert pending_b <= seen, f"{len(pending_b - seen)} accepted intents were never delivered"
            for intent_id in list(pending_b)[:20]:
                assert admin.get(f"/v1/intents/{intent_id}").json()["intent"]["status"] == "DELIVERED"
    finally:
        rt.retire()

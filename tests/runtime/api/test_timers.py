"""Redelivery, delivery failure and deadlines, on a runtime with a test clock: each test moves the clock past
the timer it is about and looks for what followed (polling, with a deadline); none waits for a timer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from axme_cli.runtime.clock import ManualClock, iso
from tests.conftest import make_agent, new_intent, unique
from tests.runtime.api.test_intents import events_of, get
from tests.runtime.api.test_streams import eventually, feed_path, iter_frames
from tests.runtime_thread import RuntimeThread, tick

REDELIVERY = 30.0


@pytest.fixture(scope="module")
def fast(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeThread]:
    rt = RuntimeThread(tmp_path_factory.mktemp("timers"), extra_args=["--redelivery-seconds", str(REDELIVERY)],
                       clock=ManualClock(), backend=backend)
    rt.start()
    yield rt
    rt.retire()


@pytest.fixture
def api(fast: RuntimeThread) -> Iterator[httpx.Client]:
    with fast.client() as client:
        yield client


def create(client: httpx.Client, to_agent: str, **extra: Any) -> str:
    r = client.post("/v1/intents", json=new_intent(to_agent, **extra))
    assert r.status_code == 200, r.text
    return r.json()["intent_id"]


def status_is(client: httpx.Client, intent_id: str, status: str) -> dict[str, Any] | None:
    intent = get(client, intent_id)
    return intent if intent["status"] == status else None


def in_seconds(rt: RuntimeThread, seconds: float) -> str:
    """``seconds`` after the runtime's now, as RFC 3339."""
    return iso(rt.clock.time() + seconds)


def test_unanswered_intent_is_redelivered_then_fails(fast: RuntimeThread, api: httpx.Client) -> None:
    name = unique("deaf")
    address, token = make_agent(api, name)
    intent_id = create(api, name, max_delivery_attempts=3)

    # the agent listens but never answers: every attempt shows up on its feed as a new entry once the redelivery
    # interval has passed, and GET shows the same attempt number
    on_feed: list[int] = []
    on_get: list[int] = []
    with fast.client(token) as bot, bot.stream("GET", feed_path(name),
                                                  params={"since": 0, "wait_seconds": 20, "incremental": "true"}) as r:
        assert r.status_code == 200
        for frame in iter_frames(r):
            assert frame.event != "stream.timeout", f"feed ended before attempt 3; saw {on_feed}"
            data = frame.json
            assert data["intent_id"] == intent_id
            assert data["seq"] == int(frame.id or 0)
            assert data["max_delivery_attempts"] == 3
            on_feed.append(data["delivery_attempt"])
            on_get.append(get(api, intent_id)["delivery_attempt"])
            if data["delivery_attempt"] == 3:
                break
            fast.advance_clock(REDELIVERY)
    assert on_feed == [1, 2, 3], on_feed  # one entry per attempt, in order
    assert on_get == [1, 2, 3], on_get

    fast.advance_clock(REDELIVERY)  # the last attempt runs out too
    failed = eventually(lambda: status_is(api, intent_id, "FAILED"), what="delivery_failed after 3 attempts")
    assert failed["delivery_attempt"] == 3
    assert failed["error"]["code"] == "delivery_failed"
    events = events_of(api, intent_id)
    last = events[-1]
    assert (last["event_type"], last["status"]) == ("intent.delivery_failed", "FAILED")
    assert last["details"]["delivery_attempt"] == 3
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    delivered = [e for e in events if e["event_type"] == "intent.delivered"]
    recorded = [e["details"]["delivery_attempt"] for e in delivered]
    assert recorded and recorded == sorted(set(recorded)), recorded  # at most one delivery record per attempt
    assert all(e["actor"] == address for e in delivered)


def test_delivery_fails_after_max_attempts(fast: RuntimeThread, api: httpx.Client) -> None:
    intent_id = create(api, unique("nobody"), max_delivery_attempts=2)

    def attempt() -> tuple[int, str]:
        intent = get(api, intent_id)
        return intent["delivery_attempt"], intent["status"]

    assert [tick(fast, REDELIVERY, attempt) for _ in range(2)] == [(2, "SUBMITTED"), (2, "FAILED")]
    failed = get(api, intent_id)
    assert failed["delivery_attempt"] == 2
    assert failed["lifecycle_status"] == "FAILED"
    assert failed.get("pending_with") is None
    events = events_of(api, intent_id)
    assert [(e["event_type"], e["status"]) for e in events] == [
        ("intent.created", "CREATED"),
        ("intent.submitted", "SUBMITTED"),
        ("intent.delivery_failed", "FAILED"),
    ]
    assert events[-1]["details"]["delivery_attempt"] == 2
    # a failed intent stays failed
    r = api.post(f"/v1/intents/{intent_id}/resolve", json={"status": "COMPLETED", "result": {}})
    assert r.status_code == 409, r.text


def test_intent_in_progress_is_not_redelivered(fast: RuntimeThread, api: httpx.Client) -> None:
    name = unique("busy")
    _, token = make_agent(api, name)
    intent_id = create(api, name, max_delivery_attempts=2)
    with fast.client(token) as bot:
        r = bot.post(f"/v1/intents/{intent_id}/resume", json={"action": "in_progress"})
        assert r.status_code == 200, r.text

        # an intent created afterwards with the same budget runs out of attempts as the clock moves; by then any
        # redelivery of the first one would have happened too
        sentinel = create(api, unique("sentinel"), max_delivery_attempts=2)
        for _ in range(2):
            tick(fast, REDELIVERY, lambda: get(api, sentinel)["delivery_attempt"] + (
                get(api, sentinel)["status"] == "FAILED"))
        assert get(api, sentinel)["status"] == "FAILED"

        intent = get(api, intent_id)
        assert intent["status"] == "IN_PROGRESS"
        assert intent["delivery_attempt"] == 1
        assert [e["event_type"] for e in events_of(api, intent_id)] == [
            "intent.created",
            "intent.submitted",
            "intent.in_progress",
        ]
        # the agent's feed still lists it (not terminal), but only its first delivery
        with bot.stream("GET", feed_path(name), params={"since": 0, "wait_seconds": 1}) as r:
            frames = list(iter_frames(r))
    assert [f.event for f in frames] == ["intent.in_progress", "stream.timeout"]
    assert frames[0].json["intent_id"] == intent_id
    assert frames[0].json["delivery_attempt"] == 1
    assert frames[0].json["status"] == "IN_PROGRESS"


def test_deadline_times_out(fast: RuntimeThread, api: httpx.Client) -> None:
    intent_id = create(api, unique("slow"), deadline_at=in_seconds(fast, REDELIVERY / 2), max_delivery_attempts=100)
    assert get(api, intent_id)["deadline_at"] is not None
    fast.advance_clock(REDELIVERY / 2)
    intent = eventually(lambda: status_is(api, intent_id, "TIMED_OUT"), what="deadline fires")
    assert intent["lifecycle_status"] == "TIMED_OUT"
    last = events_of(api, intent_id)[-1]
    assert (last["event_type"], last["status"]) == ("intent.timed_out", "TIMED_OUT")
    r = api.post(f"/v1/intents/{intent_id}/resolve", json={"status": "COMPLETED", "result": {}})
    assert r.status_code == 409, r.text


def test_timers_survive_a_restart(backend: str, tmp_path) -> None:
    rt = RuntimeThread(tmp_path, extra_args=["--redelivery-seconds", "600"], clock=ManualClock(),
                       backend=backend).start()
    try:
        with rt.client() as api:
            intent_id = create(api, unique("durable"), deadline_at=in_seconds(rt, 60))
    finally:
        assert rt.stop() == 0
    rt.advance_clock(61)  # while it is down
    rt.start()  # same database, same key, same clock
    try:
        with rt.client() as api:
            intent = eventually(
                lambda: status_is(api, intent_id, "TIMED_OUT"), timeout=15, what="deadline after restart"
            )
            assert intent["lifecycle_status"] == "TIMED_OUT"
            events = events_of(api, intent_id)
            assert [e["event_type"] for e in events] == ["intent.created", "intent.submitted", "intent.timed_out"]
    finally:
        rt.stop()

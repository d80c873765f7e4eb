"""SSE over the real runtime: the intent event stream and the agent delivery feed, parsed by hand.

The helpers at the top (``Frame``, ``iter_frames``, ``read_frames``, ``eventually``) are shared with the
other ``test_api_*`` modules.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest

from tests.conftest import make_agent, new_intent
from tests.runtime_proc import RuntimeProcess

T = TypeVar("T")

TERMINAL = {"COMPLETED", "FAILED", "CANCELED", "TIMED_OUT"}
PREFIXES = ("id: ", "event: ", "data: ")


# ---------------------------------------------------------------------------------------------
# helpers


def eventually(fn: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.02, what: str = "") -> T:
    """Call ``fn`` until it returns something truthy (returned) or ``timeout`` passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {what or fn} (last value {last!r})")
        time.sleep(interval)


@dataclass
class Frame:
    lines: list[str] = field(default_factory=list)
    id: str | None = None
    event: str | None = None
    data_lines: list[str] = field(default_factory=list)

    @property
    def data(self) -> str:
        return "\n".join(self.data_lines)

    @property
    def json(self) -> Any:
        return json.loads(self.data)


def iter_frames(response: httpx.Response) -> Iterator[Frame]:
    """Parse ``text/event-stream`` by hand. Every field line must use the literal ``name: `` prefix."""
    frame = Frame()
    for line in response.iter_lines():
        if line == "":
            if frame.lines:
                yield frame
            frame = Frame()
            continue
        if line.startswith(":"):  # comment / keep-alive
            continue
        assert line.startswith(PREFIXES), f"SSE line without a literal 'id: '/'event: '/'data: ' prefix: {line!r}"
        frame.lines.append(line)
        name, _, value = line.partition(": ")
        if name == "id":
            frame.id = value
        elif name == "event":
            frame.event = value
        else:
            frame.data_lines.append(value)
    if frame.lines:
        yield frame


def read_frames(client: httpx.Client, path: str, **params: Any) -> list[Frame]:
    """Open a stream and read it until the server closes it."""
    with client.stream("GET", path, params=params) as r:
        assert r.status_code == 200, r.read().decode()
        assert r.headers["content-type"].startswith("text/event-stream")
        return list(iter_frames(r))


def take_frames(client: httpx.Client, path: str, count: int, **params: Any) -> list[Frame]:
    """Open a stream, read ``count`` frames, and hang up."""
    with client.stream("GET", path, params=params) as r:
        assert r.status_code == 200, r.read().decode()
        frames = iter_frames(r)
        return [next(frames) for _ in range(count)]


def assert_timeout(frame: Frame, next_seq: int | None = None) -> None:
    """``event: stream.timeout`` with data ``{"ok": true, "next_seq": N}`` (extra keys are tolerated)."""
    assert frame.event == "stream.timeout", frame.lines
    assert frame.id is None, frame.lines
    data = frame.json
    assert data["ok"] is True
    assert isinstance(data["next_seq"], int)
    if next_seq is not None:
        assert data["next_seq"] == next_seq, data


def feed_path(name: str) -> str:
    return f"/v1/agents/{name}/intents/stream"


# ---------------------------------------------------------------------------------------------
# fixtures: a runtime whose redelivery timer never fires during these tests, so feeds are stable


@pytest.fixture
def admin(quiet: RuntimeProcess) -> Iterator[httpx.Client]:
    with quiet.client() as client:
        yield client


def agent(quiet: RuntimeProcess, admin: httpx.Client, prefix: str) -> tuple[str, str, httpx.Client]:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    address, token = make_agent(admin, name)
    return name, address, quiet.client(token)


def create(client: httpx.Client, to_agent: str, **extra: Any) -> str:
    r = client.post("/v1/intents", json=new_intent(to_agent, **extra))
    assert r.status_code == 200, r.text
    return r.json()["intent_id"]


def events_of(client: httpx.Client, intent_id: str) -> list[dict[str, Any]]:
    r = client.get(f"/v1/intents/{intent_id}/events")
    assert r.status_code == 200, r.text
    return r.json()["events"]


# ---------------------------------------------------------------------------------------------
# intent event stream


def test_frames_use_literal_prefixes_and_since_is_exclusive(quiet: RuntimeProcess, admin: httpx.Client) -> None:
    _, address, bot = agent(quiet, admin, "prefix")
    intent_id = create(admin, address)
    assert bot.post(f"/v1/intents/{intent_id}/resume", json={"action": "complete", "ok": 1}).status_code == 200

    with admin.stream("GET", f"/v1/intents/{intent_id}/events/stream", params={"since": 1, "wait_seconds": 5}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    # byte-level: the Go CLI needs a space after each field name
    field_lines = [ln for ln in raw.splitlines() if ln and not ln.startswith(":")]
    assert field_lines, raw
    assert all(ln.startswith(PREFIXES) for ln in field_lines), raw
    assert "id: 2\nevent: intent.submitted\ndata: {" in raw.replace("\r\n", "\n")

    frames = read_frames(admin, f"/v1/intents/{intent_id}/events/stream", since=1, wait_seconds=5)
    assert [f.id for f in frames] == ["2", "3"]  # seq 1 is not repeated: since is exclusive
    assert [f.event for f in frames] == ["intent.submitted", "intent.completed"]
    for f in frames:
        data = f.json
        assert len(f.data_lines) == 1  # single-line JSON
        assert data["seq"] == int(f.id or 0)
        assert data["event_type"] == f.event
        assert data["intent_id"] == intent_id
        assert isinstance(data["at"], str)
    assert frames[-1].json["status"] == "COMPLETED"
    # the stream carries exactly what the events list returns
    assert [f.json for f in frames] == events_of(admin, intent_id)[1:]

    later = read_frames(admin, f"/v1/intents/{intent_id}/events/stream", since=2, wait_seconds=5)
    assert [f.id for f in later] == ["3"]


def test_stream_is_live_and_closes_after_the_terminal_event(quiet: RuntimeProcess, admin: httpx.Client) -> None:
    _, address, bot = agent(quiet, admin, "live")
    intent_id = create(admin, address)
    path = f"/v1/intents/{intent_id}/events/stream"
    with admin.stream("GET", path, params={"since": 0, "wait_seconds": 20, "incremental": "true"}) as r:
        assert r.status_code == 200
        frames = iter_frames(r)
        first = [next(frames), next(frames)]
        assert [f.event for f in first] == ["intent.created", "intent.submitted"]
        # the stream is now waiting; the agent acts
        r1 = bot.post(f"/v1/intents/{intent_id}/resume", json={"action": "in_progress"})
        assert r1.status_code == 200, r1.text
        live = next(frames)
        assert (live.id, live.event, live.json["status"]) == ("3", "intent.in_progress", "IN_PROGRESS")
        r2 = bot.post(f"/v1/intents/{intent_id}/resume", json={"action": "complete", "reserved": True})
        assert r2.status_code == 200, r2.text
        rest = list(frames)  # ends when the server closes the stream
    assert [f.event for f in rest] == ["intent.completed"]
    assert rest[0].id == "4"
    assert rest[0].json["status"] == "COMPLETED"


def test_stream_timeout_reports_next_seq(quiet: RuntimeProcess, admin: httpx.Client) -> None:
    intent_id = create(admin, f"nobody-{uuid.uuid4().hex[:8]}")
    path = f"/v1/intents/{intent_id}/events/stream"

    frames = read_frames(admin, path, since=0, wait_seconds=1)
    assert [f.event for f in frames] == ["intent.created", "intent.submitted", "stream.timeout"]
    assert_timeout(frames[-1], 2)  # the highest seq sent

    frames = read_frames(admin, path, since=2, wait_seconds=1)
    assert [f.event for f in frames] == ["stream.timeout"]
    assert_timeout(frames[0], 2)  # nothing sent: since


def test_stream_of_finished_intent(quiet: RuntimeProcess, admin: httpx.Client) -> None:
    intent_id = create(admin, f"nobody-{uuid.uuid4().hex[:8]}")
    r = admin.post(f"/v1/intents/{intent_id}/resolve", json={"status": "CANCELED", "reason": "test"})
    assert r.status_code == 200, r.text
    path = f"/v1/intents/{intent_id}/events/stream"

    frames = read_frames(admin, path, since=0, wait_seconds=30)
    assert [f.event for f in frames] == ["intent.created", "intent.submitted", "intent.canceled"]
    assert frames[-1].json["status"] == "CANCELED"

    # already past the end of a finished intent: nothing more will come
    frames = read_frames(admin, path, since=3, wait_seconds=30)
    assert [f.event for f in frames] == ["stream.timeout"]
    assert_timeout(frames[0], 3)


def streams_open(client: httpx.Client) -> int:
    """The runtime's ``axme_sse_streams_open`` gauge: hub watches held by open streams (intent streams, feeds)."""
    r = client.get("/metrics")
    assert r.status_code == 200, r.text
    return next(int(float(line.split()[1])) for line in r.text.splitlines()
                if line.startswith("axme_sse_streams_open "))


def test_a_stream_the_client_hangs_up_releases_its_watch_at_once(quiet: RuntimeProcess, admin: httpx.Client) -> None:
    """Hanging up stops the stream's frames (the hub watch of the intent or feed is released) long before
    ``wait_seconds``, which nothing else would cut short here: no event comes and the intent stays open."""
    name, _, bot = agent(quiet, admin, "hangup")
    intent_id = create(admin, name)
    eventually(lambda: streams_open(admin) == 0, what="no stream open before")
    for client, path in ((admin, f"/v1/intents/{intent_id}/events/stream"), (bot, feed_path(name))):
        with client.stream("GET", path, params={"since": 0, "wait_seconds": 60, "incremental": "true"}) as r:
            assert r.status_code == 200
            frames = iter_frames(r)  # held: a dropped generator would close the connection already
            assert next(frames).json["intent_id"] == intent_id  # the stream runs and now waits
            eventually(lambda: streams_open(admin) == 1, what=f"{path} holds one watch")
        # leaving the block closes the connection
        eventually(lambda: streams_open(admin) == 0, what=f"{path} released its watch after the hang-up")
    assert admin.get(f"/v1/intents/{intent_id}").json()["intent"]["status"] == "DELIVERED"


# ---------------------------------------------------------------------------------------------
# agent feed


def test_feed_delivers_new_intent_once(quiet: RuntimeProcess, admin: httpx.Client) -> None:
    name, address, bot = agent(quiet, admin, "feed")
    _, other_address, _ = agent(quiet, admin, "other")
    payload = {"order_id": "ord_feed", "items": [{"sku": "A-1", "quantity": 2}]}
    first = create(admin, name, payload=payload)
    create(admin, other_address)  # another agent's feed does not move this agent's cursor
    second = create(admin, address)

    frames = take_frames(bot, feed_path(name), 2, since=0, wait_seconds=5)
    assert [f.json["intent_id"] for f in frames] == [first, second]
    assert [f.id for f in frames] == ["1", "2"]  # dense per-agent cursor
    data = frames[0].json
    assert data["seq"] == 1
    assert frames[0].event == "intent.delivered"
    assert data["event_type"] == "intent.delivered"
    assert data["status"] == "DELIVERED"
    assert data["payload"] == payload
    assert data["to_agent"] == address
    assert data["intent_type"] == "order.reserve.v1"

    # read the feed a second time: the intent is replayed, but delivered only once
    again = take_frames(bot, feed_path(name), 1, since=0, wait_seconds=5)
    assert again[0].json["intent_id"] == first
    assert again[0].json["status"] == "DELIVERED"

    eventually(
        lambda: admin.get(f"/v1/intents/{first}").json()["intent"]["status"] == "DELIVERED",
        what="intent becomes DELIVERED",
    )
    # one more write goes through the same writer queue after any pending delivery record
    create(admin, f"nobody-{uuid.uuid4().hex[:8]}")
    events = events_of(admin, first)
    delivered = [e for e in events if e["event_type"] == "intent.delivered"]
    assert len(delivered) == 1, events
    assert delivered[0]["status"] == "DELIVERED"
    assert delivered[0]["seq"] == 3
    assert delivered[0]["actor"] == address


def test_feed_leaves_out_terminal_intents_unless_asked(quiet: RuntimeProcess, admin: httpx.Client) -> None:
    name, _, bot = agent(quiet, admin, "term")
    intent_id = create(admin, name)
    r = admin.post(f"/v1/intents/{intent_id}/resolve", json={"status": "COMPLETED", "result": {"done": True}})
    assert r.status_code == 200, r.text

    frames = read_frames(bot, feed_path(name), since=0, wait_seconds=1)
    assert [f.event for f in frames] == ["stream.timeout"]
    assert_timeout(frames[0])

    frames = take_frames(bot, feed_path(name), 1, since=0, wait_seconds=5, status="COMPLETED")
    assert frames[0].json["intent_id"] == intent_id
    assert frames[0].json["status"] == "COMPLETED"
    assert frames[0].event == "intent.completed"
    assert [e["event_type"] for e in events_of(admin, intent_id)] == [
        "intent.created",
        "intent.submitted",
        "intent.completed",
    ]


def test_feed_since_skips_earlier_cursors(quiet: RuntimeProcess, admin: httpx.Client) -> None:
    name, _, bot = agent(quiet, admin, "since")
    ids = [create(admin, name) for _ in range(3)]
    frames = take_frames(bot, feed_path(name), 3, since=0, wait_seconds=5)
    cursors = [int(f.id or 0) for f in frames]
    assert [f.json["intent_id"] for f in frames] == ids
    assert cursors == sorted(cursors)

    frames = take_frames(bot, feed_path(name), 2, since=cursors[0], wait_seconds=5)
    assert [f.json["intent_id"] for f in frames] == ids[1:]
    assert [f.json["seq"] for f in frames] == cursors[1:]

    frames = read_frames(bot, feed_path(name), since=cursors[-1], wait_seconds=1)
    assert [f.event for f in frames] == ["stream.timeout"]
    assert_timeout(frames[0], cursors[-1])


def test_feed_is_live(quiet: RuntimeProcess, admin: httpx.Client) -> None:
    name, address, bot = agent(quiet, admin, "livefeed")
    first = create(admin, address)
    with bot.stream("GET", feed_path(name), params={"since": 0, "wait_seconds": 20, "incremental": "true"}) as r:
        assert r.status_code == 200
        frames = iter_frames(r)
        assert next(frames).json["intent_id"] == first
        second = create(admin, name, payload={"n": 2})  # sent while the agent listens
        frame = next(frames)
    assert frame.json["intent_id"] == second
    assert frame.json["payload"] == {"n": 2}
    assert frame.json["seq"] == 2
    assert frame.json["status"] == "DELIVERED"


def test_feed_accepts_every_address_form(quiet: RuntimeProcess, admin: httpx.Client) -> None:
    name, address, bot = agent(quiet, admin, "forms")
    intent_id = create(admin, name)
    for path in (
        feed_path(name),
        feed_path(f"local/dev/{name}"),
        feed_path(f"agent%3A%2F%2Flocal%2Fdev%2F{name}"),
    ):
        frames = take_frames(bot, path, 1, since=0, wait_seconds=5)
        assert frames[0].json["intent_id"] == intent_id, path
        assert frames[0].json["to_agent"] == address


def test_an_agent_reading_an_intent_it_just_received_sees_it_delivered(quiet: RuntimeProcess,
                                                                       admin: httpx.Client) -> None:
    """What the seed's agent relies on: GET /v1/intents/{id} (and its events) right after the frame arrives
    shows DELIVERED, on the same connection pool, with no pause."""
    name, _, bot = agent(quiet, admin, "readback")
    ids = [create(admin, name) for _ in range(20)]
    seen: list[str] = []
    with bot.stream("GET", feed_path(name), params={"since": 0, "wait_seconds": 20}) as r:
        for frame in iter_frames(r):
            got = bot.get(f"/v1/intents/{frame.json['intent_id']}").json()["intent"]
            assert got["status"] == "DELIVERED", got
            events = bot.get(f"/v1/intents/{frame.json['intent_id']}/events").json()["events"]
            assert events[-1]["event_type"] == "intent.delivered", events
            seen.append(frame.json["intent_id"])
            if len(seen) == len(ids):
                break
    assert seen == ids


def test_a_stream_sends_handed_over_events_only_when_they_follow_on() -> None:
    """What the hub hands a stream after a commit (an intent's events, a feed's rows) is sent as is only if it
    continues from the last one sent; a gap (or nothing handed over) makes the stream read instead."""
    from axme_cli.runtime.notify import Hub, following, handed_over
    from axme_cli.runtime.store.base import Notes

    def _following(handed: list[tuple[int, str]], cursor: int) -> list[str] | None:
        out = following(handed, cursor, lambda event: event[0])
        return None if out is None else [data for _, data in out]

    assert _following([(3, "c"), (4, "d")], 2) == ["c", "d"]
    assert _following([(1, "a"), (2, "b"), (3, "c")], 2) == ["c"]  # already sent before the hand-over
    assert _following([(4, "d")], 2) is None  # a gap: event 3 came from elsewhere
    assert _following([(3, "c"), (5, "e")], 2) is None
    assert _following([(4, "d"), (3, "c")], 2) == ["c", "d"]  # another replica's earlier commit heard after ours
    assert _following([(3, "c"), (3, "c")], 2) == ["c"]
    assert _following([], 2) == [] and _following([(2, "b")], 2) == []  # nothing new: no read

    async def main() -> None:
        hub = Hub()
        with hub.watch_intent("i1") as watch, hub.watch_intent("i2") as other:
            first, second = Notes(intents={"i1", "i2"}), Notes()
            first.event("i1", 3, "c")
            second.event("i1", 4, "d")
            first.merge(second)
            hub.publish(first)
            assert watch.is_set() and other.is_set()
            assert watch.take() == [(3, "c"), (4, "d")] and watch.pending == []
            assert other.take() is None  # woken, nothing handed over: it reads
            # Two commits wake the stream before it runs again: one hands event 5 over, the other (another
            # replica's notes without events, or a commit that handed nothing) does not. Event 5 alone is not all
            # there is: the stream reads.
            handed = Notes(intents={"i1"})
            handed.event("i1", 5, "e")
            hub.publish(handed)
            hub.publish(Notes(intents={"i1"}))
            assert watch.take() is None and watch.pending == []
            assert watch.take() == []  # read once; nothing came since
            hub.publish(Notes(everything=True))  # a replica's notification connection came back: everyone reads
            assert watch.take() is None
            # A gap (event 7 handed over, 6 not yet): what fills it is waited for, then both are sent, unread.
            later, earlier = Notes(intents={"i1"}), Notes(intents={"i1"})
            later.event("i1", 7, "g")
            earlier.event("i1", 6, "f")
            hub.publish(later)
            asyncio.get_running_loop().call_soon(hub.publish, earlier)
            handed = await handed_over(watch, 5, lambda event: event[0])
            assert handed == [(6, "f"), (7, "g")]
            hub.publish(later)  # a gap nothing fills: the stream reads once the grace is over
            assert await handed_over(watch, 5, lambda event: event[0], grace=0.01) is None
        with hub.watch_feed("agent://local/dev/a") as feed:
            notes = Notes(feeds={"agent://local/dev/a"})
            notes.feed_row("agent://local/dev/a", {"cursor": 7, "intent_id": "i7"})
            hub.publish(notes)
            assert feed.is_set() and [r["cursor"] for r in (feed.take() or [])] == [7]
            redelivered = Notes(feeds={"agent://local/dev/a"})  # a redelivery's feed row is not handed over
            hub.publish(notes)
            hub.publish(redelivered)
            assert feed.take() is None
        assert hub.open_streams == 0

    asyncio.run(main())


def test_a_watch_waits_until_it_is_set_or_its_deadline_passes() -> None:
    """``Watch.until``, the wait of a stream between frames: True when a commit set the watch, False once the
    deadline passed, with one timer for all the waits of a stream that moves when the deadline comes closer (a
    client that reads whole responses: the stream ends soon after its first frames) and goes with the watch."""
    from axme_cli.runtime.notify import Hub
    from axme_cli.runtime.store.base import Notes

    async def main() -> None:
        hub = Hub()
        loop = asyncio.get_running_loop()
        with hub.watch_intent("i1") as watch:
            far = time.monotonic() + 600
            loop.call_soon(hub.publish, Notes(intents={"i1"}))
            assert await asyncio.wait_for(watch.until(far), 60) is True
            watch.clear()
            assert await watch.until(time.monotonic() - 1) is False  # already past: no wait
            # The deadline comes closer than the timer the first wait made: the wait ends then, not at ``far``.
            assert await asyncio.wait_for(watch.until(time.monotonic() + 0.05), 60) is False
        with hub.watch_intent("i2") as other:
            loop.call_soon(hub.publish, Notes(intents={"i2"}))
            assert await asyncio.wait_for(other.until(time.monotonic() + 600), 60) is True
        assert other._timer is None  # the watch is over: its timer is cancelled, nothing fires later
        assert hub.open_streams == 0

    asyncio.run(main())

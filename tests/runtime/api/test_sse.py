"""The runtime's SSE writer (axme_cli/runtime/api/sse.py) driven through its ASGI interface: the wire format
(sse-starlette's with ``sep="\\n"``), one message per list of frames, the keep-alive comment, disconnects, errors,
HEAD and shutdown. The real-server side (a hang-up releases the hub watch) is in tests/runtime/api/test_streams.py."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from axme_cli.runtime import http1
from axme_cli.runtime.api import sse

Message = dict[str, Any]
STREAM_HEADERS = [(b"cache-control", b"no-store"), (b"connection", b"keep-alive"), (b"x-accel-buffering", b"no"),
                  (b"content-type", b"text/event-stream; charset=utf-8")]


class Client:
    """The server side of one request: what the response sent, and a queue of what ``receive()`` returns."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.incoming: asyncio.Queue[Message] = asyncio.Queue()
        self.incoming.put_nowait({"type": "http.request", "body": b"", "more_body": False})
        self.got_body = asyncio.Event()

    async def receive(self) -> Message:
        return await self.incoming.get()

    async def send(self, message: Message) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body":
            self.got_body.set()

    @property
    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.sent if m["type"] == "http.response.body"]

    @property
    def completed(self) -> bool:
        return any(m["type"] == "http.response.body" and not m.get("more_body", False) for m in self.sent)

    def start(self, response: sse.EventStream, method: str = "GET") -> asyncio.Task[None]:
        scope = {"type": "http", "method": method, "path": "/v1/x/stream"}
        return asyncio.ensure_future(response(scope, self.receive, self.send))  # type: ignore[arg-type]


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 30))


async def until(condition: Callable[[], bool], client: Client) -> None:
    while not condition():
        client.got_body.clear()
        await client.got_body.wait()


@pytest.mark.parametrize(("frame", "wire"), [
    ({"id": "7", "event": "intent.created", "data": '{"a":1}'}, 'id: 7\nevent: intent.created\ndata: {"a":1}\n\n'),
    ({"event": "stream.timeout", "data": "{}"}, "event: stream.timeout\ndata: {}\n\n"),
    ({"data": "one\ntwo\r\nthree\rfour"}, "data: one\ndata: two\ndata: three\ndata: four\n\n"),
    ({"id": "1\n2", "event": "a\r\nb", "data": ""}, "id: 12\nevent: ab\ndata: \n\n"),
    ({"id": 3, "data": 4}, "id: 3\ndata: 4\n\n"),
    ({"id": "9"}, "id: 9\n\n"),
])
def test_a_frame_is_written_as_sse_starlette_wrote_it(frame: dict[str, Any], wire: str) -> None:
    assert sse.encode(frame) == wire


def test_frames_then_a_clean_end_and_a_list_is_one_message() -> None:
    async def frames() -> AsyncIterator[sse.Frame | list[sse.Frame]]:
        yield {"id": "1", "data": "a"}
        yield [{"id": "2", "data": "b"}, {"id": "3", "data": "c"}]
        yield []  # nothing to send: no message
        yield {"event": "stream.timeout", "data": "{}"}

    async def test() -> None:
        client = Client()
        await client.start(sse.EventStream(frames()))
        assert client.sent[0] == {"type": "http.response.start", "status": 200, "headers": STREAM_HEADERS}
        assert client.bodies == [b"id: 1\ndata: a\n\n", b"id: 2\ndata: b\n\nid: 3\ndata: c\n\n",
                                 b"event: stream.timeout\ndata: {}\n\n", b""]
        assert client.sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
        assert all(m["more_body"] for m in client.sent[1:-1])

    run(test)


def test_extra_headers_replace_the_defaults() -> None:
    response = sse.EventStream(_never(), headers={"Cache-Control": "no-cache", "X-Extra": "1"})
    assert response.raw_headers == [(b"cache-control", b"no-cache"), *STREAM_HEADERS[1:], (b"x-extra", b"1")]


def test_a_disconnect_stops_the_iterator_and_its_finally_runs() -> None:
    released = asyncio.Event()

    async def frames() -> AsyncIterator[sse.Frame]:
        try:
            yield {"data": "first"}
            await asyncio.Event().wait()  # as a stream waiting for its next event
            yield {"data": "never"}
        finally:
            released.set()

    async def test() -> None:
        client = Client()
        task = client.start(sse.EventStream(frames()))
        await until(lambda: len(client.bodies) == 1, client)
        await client.incoming.put({"type": "http.disconnect"})
        await task
        assert released.is_set()
        assert client.bodies == [b"data: first\n\n"]  # nothing after the disconnect, not even the end
        assert not task.cancelled()

    run(test)


def test_a_lost_connection_stops_the_stream_without_a_task_waiting_on_receive() -> None:
    """Under the runtime's protocol the connection says when it is lost (``http1.Connection.on_lost``): the
    stream never calls ``receive()``, stops when told, and lets go of the callback and of its loop's pinger."""
    released = asyncio.Event()

    class Connection:
        lost: Any = None

        def on_lost(self, callback: Any) -> None:
            self.lost = callback

    class Deaf(Client):
        async def receive(self) -> Message:
            raise AssertionError("receive() was called")

    async def frames() -> AsyncIterator[sse.Frame]:
        try:
            yield {"data": "first"}
            await asyncio.Event().wait()
            yield {"data": "never"}
        finally:
            released.set()

    async def test() -> None:
        client, connection = Deaf(), Connection()
        scope = {"type": "http", "method": "GET", "path": "/v1/x/stream",
                 "extensions": {http1.CONNECTION: connection}}
        task = asyncio.ensure_future(sse.EventStream(frames())(scope, client.receive, client.send))
        await until(lambda: len(client.bodies) == 1, client)
        assert connection.lost is not None and sse._pingers
        connection.lost()
        await task
        assert released.is_set() and client.bodies == [b"data: first\n\n"]
        assert connection.lost is None and not sse._pingers

    run(test)


def test_an_idle_stream_gets_the_keep_alive_comment() -> None:
    async def frames() -> AsyncIterator[sse.Frame]:
        yield {"data": "first"}
        await pinged.wait()
        yield {"data": "after the ping"}

    async def test() -> None:
        client = Client()
        task = client.start(sse.EventStream(frames(), ping_seconds=0.05))
        await until(lambda: len(client.bodies) >= 2, client)
        pinged.set()
        await task
        first, ping, *rest = client.bodies
        assert first == b"data: first\n\n"
        assert re.fullmatch(rb": ping - \d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?\+00:00\n\n", ping), ping
        assert rest[-2:] == [b"data: after the ping\n\n", b""]
        assert all(b.startswith(b": ping - ") for b in rest[:-2])

    pinged = asyncio.Event()
    run(test)


def test_a_ping_never_overlaps_a_frame_being_sent() -> None:
    """The pinger pings only while the request's task is not inside send(), and a frame waits for a ping in
    flight: with sends that take longer than the ping interval, never two at once."""

    class SlowClient(Client):
        active = most = 0

        async def send(self, message: Message) -> None:
            self.active += 1
            self.most = max(self.most, self.active)
            await asyncio.sleep(0.03)
            self.active -= 1
            await super().send(message)

    async def frames() -> AsyncIterator[sse.Frame]:
        for n in range(20):
            yield {"data": str(n)}
            await asyncio.sleep(0.035 * (n % 3))  # idle longer than the interval: pings, some still in flight

    async def test() -> None:
        client = SlowClient()
        await client.start(sse.EventStream(frames(), ping_seconds=0.02))
        assert client.most == 1
        assert any(b.startswith(b": ping - ") for b in client.bodies)
        assert [b for b in client.bodies if not b.startswith(b": ping")] == [
            f"data: {n}\n\n".encode() for n in range(20)] + [b""]

    run(test)


def test_an_error_from_the_iterator_is_logged_and_the_stream_is_not_completed(
        caplog: pytest.LogCaptureFixture) -> None:
    async def frames() -> AsyncIterator[sse.Frame]:
        yield {"data": "first"}
        raise ValueError("the store broke")

    async def test() -> None:
        client = Client()
        await client.start(sse.EventStream(frames()))  # returns: the error does not reach the server
        assert client.bodies == [b"data: first\n\n"]
        assert not client.completed  # the server drops the connection: a broken stream, not a clean end

    with caplog.at_level(logging.ERROR, logger="axme.api"):
        run(test)
    [record] = [r for r in caplog.records if r.name == "axme.api"]
    assert record.getMessage() == "unexpected error on GET /v1/x/stream"
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)


def test_head_sends_the_headers_and_never_starts_the_iterator() -> None:
    started = False

    async def frames() -> AsyncIterator[sse.Frame]:
        nonlocal started
        started = True
        yield {"data": "x"}

    async def test() -> None:
        client = Client()
        await client.start(sse.EventStream(frames()), method="HEAD")
        assert client.sent == [{"type": "http.response.start", "status": 200, "headers": STREAM_HEADERS},
                               {"type": "http.response.body", "body": b"", "more_body": False}]

    run(test)
    assert not started


def test_close_all_ends_the_open_streams_cleanly() -> None:
    released = 0

    async def frames() -> AsyncIterator[sse.Frame]:
        nonlocal released
        try:
            yield {"data": "first"}
            await asyncio.Event().wait()
        finally:
            released += 1

    async def test() -> None:
        clients = [Client(), Client()]
        tasks = [c.start(sse.EventStream(frames())) for c in clients]
        for c in clients:
            await until(lambda c=c: len(c.bodies) == 1, c)  # type: ignore[misc]
        sse.close_all()
        await asyncio.gather(*tasks)
        for c in clients:
            assert c.bodies == [b"data: first\n\n", b""]
            assert c.completed

    run(test)
    assert released == 2


async def _never() -> AsyncIterator[sse.Frame]:
    await asyncio.Event().wait()
    yield {}


def test_last_frames_leave_with_the_end_of_the_response() -> None:
    """A ``Last`` list ends the stream in the same message (one write fewer); the iterator is closed there."""
    closed: list[bool] = []

    async def frames() -> AsyncIterator[sse.Frame | list[sse.Frame]]:
        try:
            yield [{"id": "1", "data": "a"}]
            yield sse.Last([{"id": "2", "data": "b"}, {"event": "stream.timeout", "data": "{}"}])
            yield [{"id": "3", "data": "never"}]
        finally:
            closed.append(True)

    async def main() -> None:
        client = Client()
        await client.start(sse.EventStream(frames()))
        bodies = [m for m in client.sent if m["type"] == "http.response.body"]
        assert [b["body"] for b in bodies] == [b"id: 1\ndata: a\n\n",
                                               b"id: 2\ndata: b\n\nevent: stream.timeout\ndata: {}\n\n"]
        assert [b["more_body"] for b in bodies] == [True, False]
        assert closed == [True]

    run(main)

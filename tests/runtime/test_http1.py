"""The runtime's HTTP/1.1 protocol (runtime/http1.py): a plain response leaves in one socket write, a stream's
head leaves at once. Driven through uvicorn's real protocol code with a transport that records its writes."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from axme_cli.runtime.api.sse import EventStream, Last
from axme_cli.runtime.http1 import OneWriteProtocol


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.closed_by_response = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8100), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/plain":
        body = b'{"ok":true}'
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
    elif scope["path"].startswith("/prompt"):  # an SSE stream whose first item comes at once (EventStream prompt)
        async def frames() -> Any:
            if scope["path"] == "/prompt-empty":
                yield []  # nothing yet
                await asyncio.sleep(0.01)
            else:
                yield [{"id": "1", "data": "a"}]
            yield Last([{"id": "2", "data": "b"}])

        await EventStream(frames(), prompt=True)(scope, receive, send)
    else:  # a stream: no content-length
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"data: 2\n\n", "more_body": False})


def exchange(request: bytes) -> RecordingTransport:
    async def main() -> RecordingTransport:
        config = uvicorn.Config(app, http=OneWriteProtocol, lifespan="off", log_level="warning")
        protocol = OneWriteProtocol(config=config, server_state=ServerState(), app_state={})
        transport = RecordingTransport()
        protocol.connection_made(transport)
        protocol.data_received(request)
        while protocol.cycle is None or not protocol.cycle.response_complete:
            await asyncio.sleep(0.005)
        transport.closed_by_response = transport.closed
        protocol.connection_lost(None)
        return transport

    return asyncio.run(main())


def test_a_plain_response_leaves_in_one_write() -> None:
    transport = exchange(b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n")
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[0].endswith(b'\r\n\r\n{"ok":true}')
    assert not transport.closed_by_response  # keep-alive


def test_a_plain_response_to_a_closing_client_closes_after_its_one_write() -> None:
    transport = exchange(b"GET /plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert len(transport.writes) == 1 and transport.writes[0].endswith(b'{"ok":true}')
    assert transport.closed_by_response


def test_a_streams_head_leaves_before_its_first_event() -> None:
    transport = exchange(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and transport.writes[0].endswith(b"\r\n\r\n")
    assert b"".join(transport.writes[1:]) == b"9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\n0\r\n\r\n"


def test_a_prompt_streams_head_leaves_with_its_first_frames() -> None:
    transport = exchange(b"GET /prompt HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, first = transport.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"transfer-encoding: chunked" in head
    assert first == b"f\r\nid: 1\ndata: a\n\n\r\n"
    assert transport.writes[1:] == [b"f\r\nid: 2\ndata: b\n\n\r\n0\r\n\r\n"]


def test_a_prompt_stream_with_nothing_yet_sends_its_head_before_it_waits() -> None:
    transport = exchange(b"GET /prompt-empty HTTP/1.1\r\nHost: x\r\n\r\n")
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and transport.writes[0].endswith(b"\r\n\r\n")
    assert b"".join(transport.writes[1:]) == b"f\r\nid: 2\ndata: b\n\n\r\n0\r\n\r\n"


def test_an_answered_requests_cycle_is_freed_without_the_garbage_collector() -> None:
    """Nothing of a request outlives its answer in a reference loop: with the collector off, the first request's
    cycle is gone once the connection's next request has started (a loop through the scope's Connection kept
    every request's cycle, scope and body until a collection)."""

    async def main() -> bool:
        config = uvicorn.Config(app, http=OneWriteProtocol, lifespan="off", log_level="warning")
        protocol = OneWriteProtocol(config=config, server_state=ServerState(), app_state={})
        transport = RecordingTransport()
        protocol.connection_made(transport)
        protocol.data_received(b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n")
        first = weakref.ref(protocol.cycle)
        while not protocol.cycle.response_complete:
            await asyncio.sleep(0.005)
        protocol.data_received(b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n")
        while not protocol.cycle.response_complete:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0)  # the first request's task is released
        freed = first() is None
        protocol.connection_lost(None)
        return freed

    gc.collect()
    gc.disable()
    try:
        assert asyncio.run(main())
    finally:
        gc.enable()

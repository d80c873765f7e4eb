"""The runtime's HTTP/1.1 protocol (runtime/http1.py): a plain response leaves in one socket write, a stream's
head leaves at once. Driven through uvicorn's real protocol code with a transport that records its writes."""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from axme_cli.runtime.api.sse import EventStream, Last
from axme_cli.runtime.http1 import VOUCHED, OneWriteCycle, OneWriteProtocol


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


def _cycle(method: str, keep_alive: bool, defaults: list[tuple[bytes, bytes]]) -> Any:
    from uvicorn.protocols.http.flow_control import FlowControl
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

    transport = RecordingTransport()
    scope = {"type": "http", "method": method, "path": "/", "http_version": "1.1", "headers": []}
    return RequestResponseCycle(scope=scope, transport=transport, flow=FlowControl(transport),  # type: ignore[arg-type]
                                logger=logging.getLogger("t"), access_logger=logging.getLogger("t.access"),
                                access_log=False, default_headers=defaults, message_event=asyncio.Event(),
                                expect_100_continue=True, keep_alive=keep_alive, on_response=lambda: None)


STATE = ("response_started", "waiting_for_100_continue", "keep_alive", "chunked_encoding", "expected_content_length")
DEFAULTS = [(b"date", b"Mon, 07 Dec 2026 15:00:00 GMT"), (b"server", b"uvicorn")]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("keep_alive", [True, False])
@pytest.mark.parametrize(("status", "headers"), [
    (200, [(b"x-request-id", b"r1"), (b"content-length", b"11"), (b"content-type", b"application/json")]),
    (201, [(b"content-length", b"0"), (b"content-type", b"application/json")]),
    (404, [(b"x-request-id", b"r1"), (b"x-trace-id", b"t.1"), (b"content-length", b"2")]),
    (204, [(b"x-request-id", b"r1")]),
    (304, []),
    (200, [(b"cache-control", b"no-store"), (b"connection", b"keep-alive"), (b"content-type", b"text/event-stream")]),
    (200, [(b"connection", b"Keep-Alive, close"), (b"content-length", b"3")]),
    (200, [(b"transfer-encoding", b"chunked")]),
])
def test_a_vouched_head_is_the_head_and_state_uvicorns_send_makes(
        method: str, keep_alive: bool, status: int, headers: list[tuple[bytes, bytes]]) -> None:
    async def main() -> None:
        message = {"type": "http.response.start", "status": status, "headers": headers}
        theirs = _cycle(method, keep_alive, [*DEFAULTS, (b"X-Configured", b"yes")])
        await theirs.send(message)
        ours = _cycle(method, keep_alive, [*DEFAULTS, (b"X-Configured", b"yes")])
        ours.__class__ = OneWriteCycle
        head = ours._vouched_head(message)
        assert head == b"".join(theirs.transport.writes)
        assert [getattr(ours, n) for n in STATE] == [getattr(theirs, n) for n in STATE]

    asyncio.run(main())


def test_default_headers_that_uvicorn_must_judge_take_its_path() -> None:
    """A framing header or one uvicorn refuses among its defaults (configured with --header): the vouched head
    declines (uvicorn's send then does what it does), and the cycle is left as it was."""
    message = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]}
    for defaults in ([*DEFAULTS, (b"Connection", b"close")], [*DEFAULTS, (b"x-bad", b"a\nb")],
                     [*DEFAULTS, (b"bad name", b"x")]):
        cycle = _cycle("GET", True, defaults)
        cycle.__class__ = OneWriteCycle
        assert cycle._vouched_head(message) is None
        assert (cycle.response_started, cycle.chunked_encoding) == (False, None)


@pytest.mark.parametrize("access_log", [True, False])
def test_the_config_decides_the_access_log_and_a_head_to_log_is_left_to_uvicorn(
        access_log: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn's logger holds a handler (pytest puts its own there while a test runs): the connection logs access
    only when the config asks for it. When it does, a VOUCHED head goes through uvicorn's ``send``, which writes the
    log line; when it does not (as `axme dev` runs), http1.py formats it, to the same bytes."""
    lines: list[str] = []
    formatted: list[bytes | None] = []
    original = OneWriteCycle._vouched_head

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    def counted(cycle: OneWriteCycle, message: Any) -> bytes | None:
        formatted.append(original(cycle, message))
        return formatted[-1]

    async def vouched(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, VOUCHED: True,
                        "headers": [(b"content-length", b"2"), (b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": b"{}"})

    async def main() -> bytes:
        config = uvicorn.Config(vouched, http=OneWriteProtocol, lifespan="off", log_level="warning",
                                access_log=access_log)  # its logging set-up runs here: the handler goes in after
        access = logging.getLogger("uvicorn.access")
        monkeypatch.setattr(access, "handlers", [Collect()])
        monkeypatch.setattr(access, "level", logging.INFO)
        protocol = OneWriteProtocol(config=config, server_state=ServerState(), app_state={})
        assert protocol.access_log is access_log
        transport = RecordingTransport()
        protocol.connection_made(transport)
        protocol.data_received(b"GET /vouched HTTP/1.1\r\nHost: x\r\n\r\n")
        while not protocol.cycle.response_complete:
            await asyncio.sleep(0.005)
        protocol.connection_lost(None)
        return b"".join(transport.writes)

    monkeypatch.setattr(OneWriteCycle, "_vouched_head", counted)
    answer = asyncio.run(main())
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\n{}")
    assert b"\r\ncontent-length: 2\r\ncontent-type: application/json\r\n" in answer
    if access_log:
        assert formatted == [] and any('"GET /vouched HTTP/1.1" 200' in line for line in lines), lines
    else:
        assert len(formatted) == 1 and formatted[0] is not None and lines == []

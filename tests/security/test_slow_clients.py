"""Slow clients cannot hold the runtime: a request's head must arrive within 10 s and its body within 30 s of
the head, an idle keep-alive connection is closed after 5 s, and none of that cuts a long response (SSE).
First the protocol itself (uvicorn's real code, a recording transport, short deadlines), with a check of the
uvicorn names it relies on; then the real runtime over sockets, in-process with deadlines of a second or two
(the server takes them from its Settings as it takes the defaults, which the last test checks)."""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from axme_cli.runtime.http1 import CYCLE_NAMES, MODULE_NAMES, PROTOCOL_NAMES, protocol
from axme_cli.runtime.settings import Settings
from tests.conftest import make_agent
from tests.runtime.test_http1 import RecordingTransport as Transport
from tests.runtime_proc import RuntimeProcess
from tests.runtime_thread import RuntimeThread

HALF_OPEN = b"GET / HTTP/1.1\r\nHost: x\r\nX-a: "


async def slow_app(scope: Any, receive: Any, send: Any) -> None:
    """Reads the whole body, then streams its answer slowly: longer than every deadline of the tests below."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/early":  # answers without reading the body (as a 401 or a 413 does)
        await send({"type": "http.response.start", "status": 401, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
        return
    while True:
        message = await receive()
        if message["type"] == "http.disconnect" or not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    for n in range(4):
        await asyncio.sleep(0.25)
        await send({"type": "http.response.body", "body": b"data: %d\n\n" % n, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def connection(settings: Settings) -> tuple[Any, Transport]:
    cls = protocol(settings)
    config = uvicorn.Config(slow_app, http=cls, lifespan="off", log_level="warning")
    proto = cls(config=config, server_state=ServerState(), app_state={})
    transport = Transport()
    proto.connection_made(transport)
    return proto, transport


SHORT = Settings(header_timeout_seconds=0.3, body_timeout_seconds=0.3)


async def closed_within(transport: Transport, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not transport.closed and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return transport.closed


def test_the_uvicorn_names_http1_relies_on_are_still_there() -> None:
    """If this fails, uvicorn changed what runtime/http1.py subclasses: adapt it before raising the pin."""

    async def main() -> None:
        config = uvicorn.Config(slow_app, lifespan="off", log_level="warning")
        plain = HttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
        missing = [n for n in PROTOCOL_NAMES if not hasattr(plain, n)]
        assert missing == [], f"uvicorn's HttpToolsProtocol lacks {missing}"
        plain.connection_made(Transport())
        plain.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        cycle = plain.cycle
        missing = [n for n in CYCLE_NAMES if not hasattr(cycle, n)]
        assert missing == [], f"uvicorn's RequestResponseCycle lacks {missing}"
        missing = [n for n in MODULE_NAMES if not hasattr(httptools_impl, n)]
        assert missing == [], f"uvicorn's httptools_impl lacks {missing}"
        # the deadlines re-arm through the protocol's on_response_complete, which uvicorn hands each cycle
        assert cycle.on_response == plain.on_response_complete
        while not cycle.response_complete:
            await asyncio.sleep(0.01)
        plain.connection_lost(None)

    asyncio.run(main())


def test_a_head_that_never_ends_and_a_silent_connection_are_closed() -> None:
    async def main() -> None:
        proto, transport = connection(SHORT)
        proto.data_received(HALF_OPEN)
        assert await closed_within(transport, 10)
        assert transport.writes == []  # no answer: the request was never complete
        proto.connection_lost(None)
        proto, transport = connection(SHORT)  # connects, sends nothing
        assert await closed_within(transport, 10)
        proto.connection_lost(None)

    asyncio.run(main())


def test_a_slow_answer_is_not_cut_and_the_connection_is_closed_once_idle() -> None:
    """The answer streams for 1 s, more than three times each deadline: nothing may close it meanwhile."""

    async def main() -> None:
        proto, transport = connection(SHORT)
        proto.data_received(b"POST / HTTP/1.1\r\nHost: x\r\ncontent-length: 5\r\n\r\nhello")
        while proto.cycle is None or not proto.cycle.response_complete:
            assert not transport.closed, "the connection was closed while the answer streamed"
            await asyncio.sleep(0.01)
        assert b"".join(transport.writes).count(b"data: ") == 4
        assert not transport.closed  # keep-alive: a next request may come ...
        assert await closed_within(transport, 10)  # ... within the head deadline
        proto.connection_lost(None)

    asyncio.run(main())


def test_a_body_that_trickles_is_cut_and_one_sent_in_pieces_in_time_is_not() -> None:
    async def main() -> None:
        proto, transport = connection(SHORT)
        proto.data_received(b"POST / HTTP/1.1\r\nHost: x\r\ncontent-length: 100\r\n\r\n")
        for _ in range(5):
            if transport.closed:
                break
            proto.data_received(b"x")
            await asyncio.sleep(0.1)
        assert await closed_within(transport, 10)
        proto.connection_lost(None)

        proto, transport = connection(SHORT)
        proto.data_received(b"POST / HTTP/1.1\r\nHost: x\r\n")
        await asyncio.sleep(0.1)
        proto.data_received(b"content-length: 4\r\n\r\nab")
        await asyncio.sleep(0.1)
        proto.data_received(b"cd")
        while proto.cycle is None or not proto.cycle.response_complete:
            assert not transport.closed
            await asyncio.sleep(0.01)
        proto.connection_lost(None)

    asyncio.run(main())


def test_an_answer_before_the_body_then_the_rest_of_the_body_leaves_an_idle_connection_that_is_closed() -> None:
    async def main() -> None:
        proto, transport = connection(SHORT)
        proto.data_received(b"POST /early HTTP/1.1\r\nHost: x\r\ncontent-length: 4\r\n\r\nab")
        while proto.cycle is None or not proto.cycle.response_complete:
            await asyncio.sleep(0.01)
        assert b"".join(transport.writes).startswith(b"HTTP/1.1 401 ")
        proto.data_received(b"cd")  # the body ends after the answer: the connection is idle from here
        assert await closed_within(transport, 10)
        proto.connection_lost(None)

    asyncio.run(main())


def test_the_keep_alive_closes_an_idle_connection_and_a_first_byte_stops_it() -> None:
    """uvicorn's keep-alive runs on the deadlines' timer: a connection that sends nothing after a response is closed
    after ``timeout_keep_alive`` (the head deadline is a minute here); one whose next request has begun is left to
    the head deadline."""

    async def answered(header_timeout: float) -> tuple[Any, Transport]:
        cls = protocol(Settings(header_timeout_seconds=header_timeout))
        config = uvicorn.Config(slow_app, http=cls, lifespan="off", log_level="warning", timeout_keep_alive=0.1)
        proto = cls(config=config, server_state=ServerState(), app_state={})
        transport = Transport()
        proto.connection_made(transport)
        proto.data_received(b"GET /early HTTP/1.1\r\nHost: x\r\n\r\n")
        while proto.cycle is None or not proto.cycle.response_complete:
            await asyncio.sleep(0.01)
        return proto, transport

    async def main() -> None:
        proto, transport = await answered(60)
        assert await closed_within(transport, 10)  # the keep-alive: the head deadline is a minute away
        proto.connection_lost(None)
        proto, transport = await answered(1.0)
        proto.data_received(HALF_OPEN)
        await asyncio.sleep(0.5)  # five keep-alives
        assert not transport.closed
        assert await closed_within(transport, 10)  # the head deadline
        proto.connection_lost(None)

    asyncio.run(main())


def test_pipelined_requests_are_answered_in_turn_and_not_cut() -> None:
    async def main() -> None:
        proto, transport = connection(SHORT)
        proto.data_received(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                            b"POST /b HTTP/1.1\r\nHost: x\r\ncontent-length: 2\r\n\r\nok")
        # two slow streams, one after the other: 2 s, more than six times each deadline
        while b"".join(transport.writes).count(b"HTTP/1.1 200 ") < 2 or not proto.cycle.response_complete:
            assert not transport.closed, "a pipelined request was cut while the one before it was answered"
            await asyncio.sleep(0.01)
        assert b"".join(transport.writes).count(b"data: ") == 8
        assert await closed_within(transport, 10)
        proto.connection_lost(None)

    asyncio.run(main())


# ---------------------------------------------------------------------------------------------
# the real runtime, with short deadlines

HEAD_S, BODY_S, KEEP_ALIVE_S = 1.0, 2.0, 1.0


class Records(logging.Handler):
    """Every record the runtime logs (uvicorn's loggers do not propagate to the root), formatted with its
    traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(logging.Formatter().format(record))


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    runtime = RuntimeThread(tmp_path_factory.mktemp("slow"), extra_args=["--redelivery-seconds", "600"],
                            settings={"header_timeout_seconds": HEAD_S, "body_timeout_seconds": BODY_S,
                                      "keep_alive_seconds": KEEP_ALIVE_S}).start()
    yield runtime
    runtime.retire()


@pytest.fixture
def logged() -> Iterator[Records]:
    records = Records()
    names = ("", "uvicorn", "uvicorn.error", "axme")
    for name in names:
        logging.getLogger(name).addHandler(records)
    yield records
    for name in names:
        logging.getLogger(name).removeHandler(records)


def server_closed(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` (it reads as end of file, or reset); the socket must be readable."""
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True


def test_400_half_open_requests_are_all_closed_while_health_answers(rt: RuntimeProcess) -> None:
    with rt.client() as admin:
        address, _ = make_agent(admin, "slow-feed")
    # A feed stream that lasts 3 s (more than the head deadline and the keep-alive) runs beside the attack.
    stream_events: list[str] = []

    def listen() -> None:
        with rt.client() as client, client.stream(
                "GET", f"/v1/agents/{address.removeprefix('agent://')}/intents/stream?wait_seconds=3") as r:
            stream_events.append(str(r.status_code))
            stream_events.extend(line for line in r.iter_lines() if line.startswith("event: "))

    listener = threading.Thread(target=listen)
    listener.start()
    socks = []
    started = time.monotonic()
    try:
        for _ in range(400):
            sock = socket.create_connection(("127.0.0.1", rt.port))
            sock.sendall(HALF_OPEN)
            socks.append(sock)
        open_socks = set(socks)
        latencies: list[float] = []
        closed_after = 0.0
        with rt.client() as client:
            while open_socks and time.monotonic() - started < 30:
                t = time.perf_counter()
                assert client.get("/health").status_code == 200
                latencies.append(time.perf_counter() - t)
                readable, _, _ = select.select(list(open_socks), [], [], 0.2)
                for sock in readable:
                    if server_closed(sock):
                        open_socks.discard(sock)
                closed_after = time.monotonic() - started
        assert not open_socks, f"{len(open_socks)} of 400 half-open requests still held after 30 s"
    finally:
        for sock in socks:
            sock.close()
    listener.join(60)
    assert stream_events[:1] == ["200"]
    assert stream_events[-1:] == ["event: stream.timeout"], stream_events  # ran its 3 s, never cut
    print(f"\n400 half-open requests closed after {closed_after:.1f} s; /health meanwhile: n={len(latencies)} "
          f"median {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms")
    assert statistics.median(latencies) < 1.0


def test_an_idle_keep_alive_connection_is_closed(rt: RuntimeProcess) -> None:
    with socket.create_connection(("127.0.0.1", rt.port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(30)
        head = sock.recv(65536)
        assert head.startswith(b"HTTP/1.1 200 ")
        answered = time.monotonic()
        assert select.select([sock], [], [], 30)[0], "an idle keep-alive connection still open after 30 s"
        assert server_closed(sock)
        print(f"\nidle keep-alive connection closed {time.monotonic() - answered:.1f} s after its answer")


def test_a_body_sent_a_byte_at_a_time_is_cut(rt: RuntimeProcess, logged: Records) -> None:
    head = (b"POST /v1/intents HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            b"x-api-key: " + str(rt.api_key).encode() + b"\r\ncontent-length: 100000\r\n\r\n{")
    with socket.create_connection(("127.0.0.1", rt.port)) as sock:
        sock.sendall(head)
        sent_head = time.monotonic()
        closed = False
        while not closed and time.monotonic() - sent_head < 30:
            if select.select([sock], [], [], BODY_S / 4)[0]:
                closed = server_closed(sock)
                continue
            try:
                sock.sendall(b" ")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
        cut_after = time.monotonic() - sent_head
        assert closed, f"a body trickling a byte every {BODY_S / 4} s was still being read after 30 s"
        print(f"\nslow body cut {cut_after:.1f} s after its head (deadline {BODY_S} s)")
        # The bytes kept coming: only the body deadline can have cut it, not the head's (HEAD_S). The server's
        # timer started when it parsed the head, a moment before this side took sent_head: allow for that.
        assert cut_after >= BODY_S - 0.25 > HEAD_S, cut_after
    with rt.client() as client:  # answered after the cut request's handler ran, on the same event loop
        assert client.get("/health").status_code == 200
    # a client cut off is no error to log with a traceback
    assert not [line for line in logged.lines if "ClientDisconnect" in line or "Traceback" in line], logged.lines


def test_the_runtime_applies_the_slow_client_settings() -> None:
    """Settings reach the protocol (defaults: 10 s head, 30 s body, 5 s keep-alive)."""
    s = Settings()
    assert (s.header_timeout_seconds, s.body_timeout_seconds, s.keep_alive_seconds) == (10.0, 30.0, 5.0)
    cls = protocol(s)
    assert (cls.header_timeout, cls.body_timeout) == (10.0, 30.0)
    assert issubclass(cls, HttpToolsProtocol)

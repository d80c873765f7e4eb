"""The hot routes' answers have their heads formatted by runtime/http1.py (``VOUCHED``), not by uvicorn's ``send``:
the bytes on the wire are the same either way. Each request is sent twice over a raw socket to an in-process
runtime, once with the head formatted by http1.py and once by uvicorn (``_vouched_head`` made to decline, which
is what a head does when uvicorn's default headers need its own path), and the two answers compared byte for
byte, the ``date`` header aside (it moves every second)."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from axme_cli.runtime.http1 import OneWriteCycle
from tests.conftest import new_intent
from tests.runtime_proc import RuntimeProcess

DATE = re.compile(rb"\r\ndate: [^\r]*\r\n")


class Heads:
    """Counts the heads http1.py formatted; ``uvicorn = True`` makes it decline them, so uvicorn formats them."""

    def __init__(self) -> None:
        self.formatted = 0
        self.uvicorn = False
        self.original = OneWriteCycle._vouched_head

    def __call__(self, cycle: OneWriteCycle, message: Any) -> bytes | None:
        if self.uvicorn:
            return None
        head = self.original(cycle, message)
        self.formatted += head is not None
        return head


@pytest.fixture
def heads(monkeypatch: pytest.MonkeyPatch) -> Iterator[Heads]:
    counter = Heads()
    monkeypatch.setattr(OneWriteCycle, "_vouched_head", lambda cycle, message: counter(cycle, message))
    yield counter


def read_answer(sock: socket.socket, method: str) -> bytes:
    """One whole answer off the socket: the head, then the body its framing says (none for HEAD)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed before the head was complete: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    if method == "HEAD":
        assert rest == b""
        return head + b"\r\n\r\n"
    length = next((int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length:")), None)
    while (len(rest) < length) if length is not None else not rest.endswith(b"0\r\n\r\n"):
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed before the body was complete: {data + rest!r}"
        rest += chunk
    return head + b"\r\n\r\n" + rest


def exchange(rt: RuntimeProcess, method: str, path: str, body: bytes = b"", *, close: bool = False,
             extra: str = "", ids: str = "x-request-id: req-1\r\nx-trace-id: trace.1\r\n") -> tuple[bytes, bool]:
    """The answer to one request over a fresh connection, and whether the server closed the connection after it."""
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: {rt.api_key}\r\n"
            f"{ids}{extra}")
    if body:
        head += f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
    if close:
        head += "connection: close\r\n"
    with socket.create_connection(("127.0.0.1", rt.port), timeout=20) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        answer = read_answer(sock, method)
        sock.settimeout(0.5 if close else 0.05)
        try:
            closed = sock.recv(1) == b""
        except TimeoutError:
            closed = False
    return answer, closed


def both_ways(rt: RuntimeProcess, heads: Heads, method: str, path: str, body: bytes = b"", **kw: Any) -> bytes:
    """The answer as http1.py formats its head, checked equal (date aside) to uvicorn's, closing alike."""
    before = heads.formatted
    heads.uvicorn = False
    ours, ours_closed = exchange(rt, method, path, body, **kw)
    assert heads.formatted == before + 1, "the head was not formatted by http1.py"
    heads.uvicorn = True
    theirs, theirs_closed = exchange(rt, method, path, body, **kw)
    heads.uvicorn = False
    assert DATE.sub(b"\r\ndate: -\r\n", ours) == DATE.sub(b"\r\ndate: -\r\n", theirs)
    assert ours_closed == theirs_closed
    assert DATE.search(ours), ours
    return ours


def test_hot_answers_are_the_bytes_uvicorn_writes(quiet: RuntimeProcess, heads: Heads) -> None:
    with quiet.client() as client:
        r = client.post("/v1/intents", json=new_intent(), headers={"Idempotency-Key": "hot-heads-1"})
        assert r.status_code == 200, r.text
        intent_id = r.json()["intent_id"]
    # the replay of an idempotent create: the same answer each time
    created = both_ways(quiet, heads, "POST", "/v1/intents", r.request.content,
                        extra="idempotency-key: hot-heads-1\r\n")
    assert created.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\ncontent-length: " in created
    # the ids echoed (they match _ECHOABLE), then the length and the type, after uvicorn's server header
    assert b"\r\nserver: uvicorn\r\nx-request-id: req-1\r\nx-trace-id: trace.1\r\ncontent-length: " in created

    got = both_ways(quiet, heads, "GET", f"/v1/intents/{intent_id}")
    assert got.startswith(b"HTTP/1.1 200 OK\r\n") and intent_id.encode() in got
    assert b"connection: close" not in got

    closing = both_ways(quiet, heads, "GET", f"/v1/intents/{intent_id}", close=True)
    assert b"\r\nconnection: close\r\n" in closing

    head = both_ways(quiet, heads, "HEAD", f"/v1/intents/{intent_id}")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\ncontent-length: " in head and head.endswith(b"\r\n\r\n")

    # a whole-response read of the intent's events: a chunked stream that ends once it sent its frames
    stream = both_ways(quiet, heads, "GET", f"/v1/intents/{intent_id}/events/stream?since=0&wait_seconds=1")
    assert b"\r\ntransfer-encoding: chunked\r\n" in stream and b"event: intent.created" in stream
    assert stream.endswith(b"0\r\n\r\n")
    stream_closing = both_ways(quiet, heads, "GET", f"/v1/intents/{intent_id}/events/stream?since=0&wait_seconds=1",
                               close=True)
    assert b"\r\nconnection: close\r\n" in stream_closing

    stream_head = both_ways(quiet, heads, "HEAD", f"/v1/intents/{intent_id}/events/stream")
    assert b"transfer-encoding" not in stream_head and b"\r\ncontent-type: text/event-stream" in stream_head


def test_refusals_and_answers_off_the_hot_routes_keep_uvicorns_path(quiet: RuntimeProcess, heads: Heads) -> None:
    """Errors (Starlette's Response, with headers a refusal may add) and the routes behind Starlette's middleware
    are never marked: uvicorn checks their headers as ever."""
    missing, _ = exchange(quiet, "GET", "/v1/intents/00000000-0000-4000-8000-000000000000")
    assert missing.startswith(b"HTTP/1.1 404 ") and b"\r\nx-request-id: req-1\r\n" in missing
    bad, _ = exchange(quiet, "POST", "/v1/intents", b"{}")
    assert bad.startswith(b"HTTP/1.1 4")
    listed, _ = exchange(quiet, "GET", "/v1/intents?limit=1")
    assert listed.startswith(b"HTTP/1.1 200 ")
    assert heads.formatted == 0


def test_an_id_that_is_not_echoable_is_not_echoed_on_a_hot_route(quiet: RuntimeProcess, heads: Heads) -> None:
    """What keeps a request's bytes out of a head no one checks: only ids that match _ECHOABLE are sent back."""
    with quiet.client() as client:
        intent_id = client.post("/v1/intents", json=new_intent()).json()["intent_id"]
    before = heads.formatted
    answer, _ = exchange(quiet, "GET", f"/v1/intents/{intent_id}", ids="x-request-id: <b>\r\nx-trace-id: a\tb\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ") and heads.formatted == before + 1
    assert b"x-trace-id" not in answer and b"<b>" not in answer and b"a\tb" not in answer
    assert re.search(rb"\r\nx-request-id: [0-9a-f]{16}\r\n", answer), answer

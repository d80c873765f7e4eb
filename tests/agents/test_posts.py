"""The agent runner's lean HTTP/1.1 client for /resume (axme_cli/agents/posts.py) and the resumes it sends, against a
small server on loopback that answers as the test says and records what it got and on which connection."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from axme_cli.agents.posts import Posts

Answer = Callable[[int], bytes]


async def serve(answer: Answer, hang_up_after: set[int] | None = None
                ) -> tuple[asyncio.Server, list[tuple[int, bytes, bytes]]]:
    """A server answering the n-th request with ``answer(n)`` (and closing the connection after it when n is in
    ``hang_up_after``); records (connection number, head, body)."""
    seen: list[tuple[int, bytes, bytes]] = []
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        me = connections
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                seen.append((me, head, await reader.readexactly(length)))
                out = answer(len(seen))
                writer.write(out)
                await writer.drain()
                if b"connection: close" in out.lower() or len(seen) in (hang_up_after or set()):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, seen


def plain(status: int = 200, body: bytes = b'{"ok":true}', extra: str = "") -> bytes:
    return f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\n{extra}\r\n".encode() + body


def run(main: Callable[[], Any]) -> Any:
    return asyncio.run(main())


def posts_for(server: asyncio.Server) -> Posts:
    port = server.sockets[0].getsockname()[1]
    return Posts(f"http://127.0.0.1:{port}", {"x-api-key": "k1"}, timeout=5)


def test_posts_reuse_one_keep_alive_connection_and_send_the_body_as_json() -> None:
    async def main() -> None:
        server, seen = await serve(lambda n: plain(409 if n == 2 else 200))
        posts = posts_for(server)
        assert await posts.post("/v1/intents/a/resume", b'{"action":"complete"}') == 200
        assert await posts.post("/v1/intents/b/resume", b'{"n":1}') == 409
        assert [conn for conn, _, _ in seen] == [1, 1]
        head = seen[0][1].decode()
        assert head.startswith("POST /v1/intents/a/resume HTTP/1.1\r\n")
        assert "x-api-key: k1\r\n" in head and "Content-Type: application/json\r\n" in head
        assert f"Host: 127.0.0.1:{server.sockets[0].getsockname()[1]}\r\n" in head
        assert [body for _, _, body in seen] == [b'{"action":"complete"}', b'{"n":1}']
        posts.close()
        server.close()

    run(main)


def test_chunked_close_and_unsized_answers_are_read_whole() -> None:
    answers = {
        1: b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n",  # then kept
        2: plain(200, extra="connection: close\r\n"),  # then a new connection
        3: b"HTTP/1.1 422 X\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{}",  # to the end
        4: plain(200),
    }

    async def main() -> None:
        server, seen = await serve(answers.__getitem__)
        posts = posts_for(server)
        statuses = [await posts.post(f"/p{n}", b"{}") for n in range(1, 5)]
        assert statuses == [200, 200, 422, 200]
        assert [conn for conn, _, _ in seen] == [1, 1, 2, 3]
        posts.close()
        server.close()

    run(main)


def test_a_connection_the_server_closed_while_idle_is_not_used_again() -> None:
    async def main() -> None:
        server, seen = await serve(lambda n: plain(200), hang_up_after={1})
        posts = posts_for(server)
        assert await posts.post("/one", b"{}") == 200
        await asyncio.sleep(0.1)  # the server's keep-alive timeout: it closes the idle connection
        assert await posts.post("/two", b"{}") == 200  # on a new connection, no error
        assert [conn for conn, _, _ in seen] == [1, 2]
        posts.close()
        server.close()

    run(main)


def test_a_header_with_a_line_break_is_refused() -> None:
    with pytest.raises(ValueError, match="line break"):
        Posts("http://127.0.0.1:1", {"x-api-key": "k\r\nx-evil: 1"}, timeout=5)
    with pytest.raises(ValueError, match="http://"):
        Posts("https://127.0.0.1:1", {}, timeout=5)


def test_a_handler_slower_than_ack_after_is_marked_in_progress_before_its_outcome() -> None:
    """Runner._handle: a handler that outlasts ``ack_after`` gets one ``in_progress`` resume, sent and answered
    before the outcome's; a quick one gets the outcome alone."""
    from axme_cli.agents.runner import Outcome, Runner

    async def handler(delivery: dict[str, Any]) -> Outcome:
        await asyncio.sleep(delivery["payload"]["seconds"])
        return Outcome("complete", {"done": delivery["intent_id"]})

    async def main() -> None:
        server, seen = await serve(lambda n: plain(200))
        port = server.sockets[0].getsockname()[1]
        runner = Runner(f"http://127.0.0.1:{port}", "k1", "agent://a", handler, ack_after=0.05, log=lambda line: None)
        runner._posts = posts_for(server)
        sem = asyncio.Semaphore(2)
        await asyncio.gather(runner._handle(None, sem, {"intent_id": "slow", "payload": {"seconds": 0.3}}),
                             runner._handle(None, sem, {"intent_id": "quick", "payload": {"seconds": 0}}))
        sent = [(head.split(b" ")[1].decode(), body) for _, head, body in seen]
        assert sent == [("/v1/intents/quick/resume", b'{"done":"quick","action":"complete"}'),
                        ("/v1/intents/slow/resume", b'{"action":"in_progress"}'),
                        ("/v1/intents/slow/resume", b'{"done":"slow","action":"complete"}')]
        assert runner.handled == 2
        runner._posts.close()
        server.close()

    run(main)


def test_the_feed_is_read_in_frames_whatever_the_chunks() -> None:
    """Runner._listen reads the feed in chunks as they arrive (aiohttp's ``iter_any``, here a stand-in that cuts it
    into chunks of any size, a character's bytes and a line end's CR and LF apart among them) and splits them into
    lines itself: CRLF line ends, a comment (ping) and a frame of another kind change nothing; ``stream.timeout``
    ends the listen."""
    from axme_cli.agents.runner import Runner

    feed = (b": ping\n\nid: 1\nevent: intent.submitted\ndata: {\"intent_id\": \"a\", \"seq\": 1}\n\n"
            b"id: 2\r\nevent: intent.submitted\r\n"
            b"data: {\"intent_id\": \"b\", \"seq\": 2, \"payload\": \"\xc3\xa9\"}\r\n\r\n"
            b"event: other\ndata: {}\n\n"
            b"event: stream.timeout\ndata: {\"ok\": true, \"next_seq\": 2}\n\n"
            b"id: 3\nevent: intent.submitted\ndata: {\"intent_id\": \"after\", \"seq\": 3}\n\n")

    class Content:
        def __init__(self, cut: int) -> None:
            self.cut = cut

        async def iter_any(self) -> Any:  # the bytes as they came, whatever a chunk holds
            for start in range(0, len(feed), self.cut):
                yield feed[start:start + self.cut]

    class Response:
        status = 200

        def __init__(self, cut: int) -> None:
            self.content = Content(cut)

        async def __aenter__(self) -> Response:
            return self

        async def __aexit__(self, *exc: Any) -> None:
            return None

    class Session:
        def __init__(self, cut: int) -> None:
            self.cut = cut

        def get(self, url: str, params: dict[str, str]) -> Response:
            return Response(self.cut)

    def listened(cut: int) -> list[dict[str, Any]]:
        runner = Runner("http://127.0.0.1:1", "k1", "agent://a", None, log=lambda line: None)  # type: ignore[arg-type]
        got: list[dict[str, Any]] = []
        runner._dispatch = lambda session, sem, tasks, delivery: got.append(delivery)  # type: ignore[method-assign]
        run(lambda: runner._listen(Session(cut), asyncio.Semaphore(1), set()))
        return got

    for cut in (1, 2, 7, 1000):
        assert listened(cut) == [{"intent_id": "a", "seq": 1}, {"intent_id": "b", "seq": 2, "payload": "\u00e9"}], cut


def test_a_result_json_cannot_carry_is_refused_not_changed() -> None:
    """The runner writes a resume's body with orjson, which would write NaN as null: the runner refuses it instead
    (a null stays a null), and what orjson cannot write (an integer beyond 64 bits) goes through the json module."""
    import json

    from axme_cli.agents.runner import _json

    for bad in (float("nan"), float("inf"), [1.0, float("-inf")]):
        with pytest.raises(ValueError, match="NaN or Infinity"):
            _json({"action": "complete", "result": {"x": bad}})
    assert json.loads(_json({"action": "complete", "result": {"x": None, "y": 1.5}})) == {
        "action": "complete", "result": {"x": None, "y": 1.5}}
    assert json.loads(_json({"result": {"big": 2**70}})) == {"result": {"big": 2**70}}

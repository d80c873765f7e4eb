"""The runtime's one SSE writer: ``EventStream``, an ASGI response over an async iterator of frames.

A frame is a dict ``{"id"?, "event"?, "data"}``; the iterator may also yield a list of frames (one read's
worth), which leaves in one ``http.response.body`` message. The wire format is the one sse-starlette wrote with
``sep="\\n"``: ``id: ``, ``event: ``, then one ``data: `` line per line of data, then a blank line.

Cost per stream: the request's own task pulls the frames and sends them (no lock, no timeout scope per send). The
runtime's protocol tells the stream when its connection is lost (``http1.Connection.on_lost``); under another
server a watcher task waits on ``receive()`` for ``http.disconnect``. A disconnect (or the server shutting down,
``close_all``) cancels the request's task, so the iterator's ``finally`` blocks (the hub watches) run at once. The
keep-alive comment goes to a stream when no frame went out for ``PING_SECONDS``: one timer per event loop looks
after all its streams (``_Pinger``), instead of a timeout per stream.

Which clients a stream waits for (``reads_incrementally``): many read a response whole before parsing it (the
TypeScript SDK's ``response.text()``, Go's ``io.ReadAll``, curl without ``-N``, ``httpx.get``), so a stream that
stays open for ``wait_seconds`` after a frame holds that frame back from them. A stream ends ``LINGER_SECONDS``
after it first sent frames, with its ``stream.timeout`` frame (the cursor to reconnect from), unless the client
says it reads frames as they come; then it stays open up to ``wait_seconds``, as a long poll.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from axme_cli.runtime.api.common import DIRECT, bool_param
from axme_cli.runtime.http1 import CONNECTION, VOUCHED, WITH_FIRST_BODY

Frame = dict[str, Any]

# How long a stream that sent frames stays open for more before it ends (whole-response readers wait this long):
# what one commit and the next few write reaches the client in one response, not one reconnect each.
LINGER_SECONDS = 0.005
INCREMENTAL = "incremental"  # the query parameter by which a client says it reads frames as they come

PING_SECONDS = 15.0
# The order and values sse-starlette sent (its defaults plus our Cache-Control); extra headers replace these.
HEADERS = (
    ("cache-control", "no-store"),
    ("connection", "keep-alive"),
    ("x-accel-buffering", "no"),
    ("content-type", "text/event-stream; charset=utf-8"),
)
_END: Message = {"type": "http.response.body", "body": b"", "more_body": False}
_NOTHING: Message = {"type": "http.response.body", "body": b"", "more_body": True}
_RAW_HEADERS = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in HEADERS]
_BREAK = re.compile(r"\r\n|\r|\n")
log = logging.getLogger("axme.api")  # the logger of the app's other unexpected errors (api/app.py)


def _one_line(value: Any) -> str:
    text = str(value)
    return _BREAK.sub("", text) if "\n" in text or "\r" in text else text


def encode(frame: Mapping[str, Any]) -> str:
    """One frame as text (sse-starlette's ``ServerSentEvent.encode`` with ``sep="\\n"``)."""
    text = ""
    value = frame.get("id")
    if value is not None:
        text = f"id: {_one_line(value)}\n"
    value = frame.get("event")
    if value is not None:
        text += f"event: {_one_line(value)}\n"
    value = frame.get("data")
    if value is not None:
        data = str(value)
        if "\n" in data or "\r" in data:
            text += "".join(f"data: {line}\n" for line in _BREAK.split(data))
        else:
            text += f"data: {data}\n"
    return text + "\n"


def ping() -> bytes:
    """The keep-alive comment, as sse-starlette wrote it."""
    return f": ping - {datetime.now(UTC)}\n\n".encode()


def reads_incrementally(request: Request) -> bool:
    """Whether the client of a stream request reads its frames as they come (then the stream is a long poll).

    Said with ``?incremental=true`` (``axme agents run``, ``axme observe``, the benches). The official Python SDK
    (0.2.0) reads incrementally but cannot say so, and after every stream that ends without a terminal event its
    ``observe()`` polls the event list and sleeps a second when nothing is new: it is known by what its client
    sends on every request, httpx's user agent with ``Content-Type: application/json`` on a bodiless GET (a plain
    ``httpx.get`` sends no content type)."""
    if bool_param(request, INCREMENTAL):
        return True
    headers = request.headers
    return (headers.get("user-agent", "").startswith("python-httpx/")
            and headers.get("content-type", "").startswith("application/json"))


def close_all() -> None:
    """End every stream open now (the server is shutting down): each iterator is stopped (its ``finally``
    runs) and the response ends cleanly; clients reconnect with their cursor. Call it on the event loop; only
    that loop's streams end (the tests run several runtimes in one process, each on a loop of its own)."""
    pinger = _pingers.get(asyncio.get_running_loop())
    for stream in list(pinger.streams) if pinger is not None else ():
        stream.stop(disconnected=False)


class Last(list[Frame]):
    """The last frames of a stream: they leave with the end of the response, in one message (one socket write
    fewer for every stream that knows where it ends, like an intent's after its terminal event)."""


class EventStream(Response):
    """``200 text/event-stream`` with the frames of ``frames`` (dicts, or lists of dicts sent as one message).

    The response ends (``more_body: False``) when the iterator ends. The iterator is stopped when the client
    disconnects; an exception from it is logged and the connection is dropped without completing the chunked
    body, so clients see a broken stream (not a clean end they would reconnect from at once).

    ``prompt``: the iterator yields its first item without waiting (an empty list when it has nothing yet), so
    the head waits for it and both leave in one socket write (http1.WITH_FIRST_BODY): one write fewer for
    every stream that starts with frames, like an intent's whose events are already there."""

    media_type = "text/event-stream"

    def __init__(self, frames: AsyncIterator[Frame | list[Frame]], headers: Mapping[str, str] | None = None, *,
                 ping_seconds: float = PING_SECONDS, on_close: Callable[[], None] | None = None,
                 prompt: bool = False) -> None:
        self.frames = frames
        self.prompt = prompt
        self.ping_seconds = ping_seconds
        self.on_close = on_close  # called once when the stream is over, however it ended (a quota's count)
        self.status_code = 200
        self.background = None
        self.vouched = not headers  # only the constant headers (HEADERS) go out unchecked (http1.VOUCHED)
        if headers:
            merged = dict(HEADERS)
            merged.update((k.lower(), v) for k, v in headers.items())
            self.raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in merged.items()]
        else:
            self.raw_headers = _RAW_HEADERS.copy()  # a list of its own: Response.headers changes it in place

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            held = self.prompt and scope.get("method") != "HEAD"
            start: Message = {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
            if held:
                start[WITH_FIRST_BODY] = True
            if self.vouched and DIRECT in scope:
                start[VOUCHED] = True
            await send(start)
            if scope.get("method") == "HEAD":  # headers only; the iterator never starts (as sse-starlette did)
                await send(_END)
                await _close(self.frames)
                return
            await _Stream(scope, receive, send, self.ping_seconds).run(self.frames, held)
        finally:
            if self.on_close is not None:
                self.on_close()


async def _close(frames: AsyncIterator[Any]) -> None:
    aclose = getattr(frames, "aclose", None)
    if aclose is not None:
        await aclose()


class _Pinger:
    """The keep-alive comments of one event loop's open streams, on one timer: it fires when the stream that went
    longest without sending is due one (``last_sent + ping_seconds``), pings what is due, and is set again for
    the next. Streams move their own due time just by sending; the timer is only moved earlier, by a stream whose
    ping is due before it fires. (A timeout per stream, made and cancelled around every wait, cost a timer or two
    per stream and its task.)"""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.streams: set[_Stream] = set()
        self.timer: asyncio.TimerHandle | None = None
        self.at = 0.0  # when the timer fires (loop time)

    def add(self, stream: _Stream) -> None:
        self.streams.add(stream)
        due = stream.last_sent + stream.ping_seconds
        if self.timer is None or due < self.at:
            self._arm(due)

    def discard(self, stream: _Stream) -> None:
        self.streams.discard(stream)
        if not self.streams:
            if self.timer is not None:
                self.timer.cancel()
            del _pingers[self.loop]

    def _arm(self, at: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.at = at
        self.timer = self.loop.call_at(at, self._fired)

    def _fired(self) -> None:
        self.timer = None
        now = self.loop.time()
        soonest = None
        for stream in self.streams:
            due = stream.last_sent + stream.ping_seconds
            if due <= now:
                # A stream inside a send now sent something: it is looked at again a whole interval later.
                if not stream.sending and stream.pinging is None:
                    stream.ping()
                due = now + stream.ping_seconds
            if soonest is None or due < soonest:
                soonest = due
        if soonest is not None:
            self._arm(soonest)


_pingers: dict[asyncio.AbstractEventLoop, _Pinger] = {}  # one per loop with open streams (several in the tests)


class _Stream:
    __slots__ = ("scope", "receive", "send", "ping_seconds", "loop", "task", "last_sent", "sending", "pinging",
                 "stopping", "disconnected", "done")

    def __init__(self, scope: Scope, receive: Receive, send: Send, ping_seconds: float) -> None:
        self.scope, self.receive, self.send, self.ping_seconds = scope, receive, send, ping_seconds
        self.loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self.last_sent = self.loop.time()  # when the last frame (or ping) went out
        self.sending = False  # the request's task is inside send(): no ping then
        self.pinging: asyncio.Task[None] | None = None  # a ping being sent
        self.stopping = False  # stop() cancelled the request's task
        self.disconnected = False
        self.done = False  # the iterator ended: nothing may cancel the task any more

    def stop(self, *, disconnected: bool) -> None:
        if self.stopping or self.done:
            return
        self.stopping = True
        self.disconnected = disconnected
        self.task.cancel()

    def lost(self) -> None:
        self.stop(disconnected=True)

    async def run(self, frames: AsyncIterator[Frame | list[Frame]], held: bool = False) -> None:
        """Send the frames; ``held``: the head is not written yet (it leaves with the first body message)."""
        send, loop = self.send, self.loop
        connection = self.scope.get("extensions", {}).get(CONNECTION)
        watcher = None
        if connection is not None:
            connection.on_lost(self.lost)
        else:
            watcher = loop.create_task(self._watch())
        pinger = _pingers.get(loop)
        if pinger is None:
            pinger = _pingers[loop] = _Pinger(loop)
        pinger.add(self)
        failed = ended = False
        try:
            async for item in frames:
                if isinstance(item, list):
                    if not item:
                        if held:  # nothing to send yet: the head leaves alone, before the iterator waits
                            held = False
                            await send(_NOTHING)
                        continue
                    body = "".join(map(encode, item)).encode()
                else:
                    body = encode(item).encode()
                ended = isinstance(item, Last)
                self.sending = True
                if self.pinging is not None:
                    await self.pinging
                await send({"type": "http.response.body", "body": body, "more_body": not ended})
                held = self.sending = False
                self.last_sent = loop.time()
                if ended:
                    self.done = True  # nothing may cancel the task from here on
                    break
        except asyncio.CancelledError:
            if not self.stopping or self.task.uncancel() > 0:
                raise  # cancelled from outside (e.g. uvicorn's graceful-shutdown timeout)
        except Exception:
            failed = True
            log.exception("unexpected error on %s %s", self.scope.get("method"), self.scope.get("path"))
            if held:  # the client sees the stream open, then broken, as when the head went out first
                await send(_NOTHING)
        finally:
            self.done = True
            pinger.discard(self)
            if connection is not None:
                connection.on_lost(None)
            if self.pinging is not None:  # a ping in flight finishes first: two sends never overlap
                await self.pinging
            if watcher is not None:
                watcher.cancel()
            await _close(frames)  # a no-op when the iterator ended; runs its finally when stopped mid-send
        if not failed and not self.disconnected and not ended:
            await send(_END)

    async def _watch(self) -> None:
        """Under a server whose connection cannot tell the stream it is lost: wait for ``http.disconnect``."""
        try:
            while (await self.receive())["type"] != "http.disconnect":
                pass
        except asyncio.CancelledError:
            raise
        except Exception:  # the server gave up on the request: so does the stream
            log.debug("SSE watcher stopped", exc_info=True)
        self.stop(disconnected=True)

    def ping(self) -> None:
        """Send the keep-alive comment (from the pinger's timer: on a task of its own, which a frame waits for)."""
        self.last_sent = self.loop.time()
        self.pinging = self.loop.create_task(self._ping())

    async def _ping(self) -> None:
        try:
            await self.send({"type": "http.response.body", "body": ping(), "more_body": True})
            self.last_sent = self.loop.time()
        except Exception:  # a send that failed: the client is gone
            log.debug("SSE ping failed", exc_info=True)
            self.stop(disconnected=True)
        finally:
            self.pinging = None

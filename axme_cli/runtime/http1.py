"""uvicorn's httptools protocol, with one socket write per plain response instead of two.

uvicorn writes a response's status line and headers as soon as the app sends ``http.response.start``, and the
body with the next message: two ``send()`` calls on the socket, each made with the GIL held. Under
``bench/saga.py`` those writes were a quarter of the time the runtime's process held the GIL (py-spy ``--gil``),
and every answer to ``/resume`` paid two of them. Here the head of a response that has a ``content-length`` is
kept until its first body message and both leave in one write. Streams (SSE: chunked, no ``content-length``)
still get their head at once, so a client sees the stream open before its first event, unless the app marks the
head ``WITH_FIRST_BODY``: it promises a body message at once (an intent's stream sends the events it has, or
nothing, before it waits for more).

Everything else is uvicorn's own code: the protocol and its request cycle are subclassed, and the cycle only
redirects uvicorn's writes of those two messages into a buffer for the moment it formats them; except the head
of a response marked ``VOUCHED``. uvicorn checks every header of every head with two regular expressions, lowers
each name and compares it with the framing headers (``RequestResponseCycle.send``, ~5% of the runtime's profile
under ``bench/pg_profile.py --sqlite``). A hot route's answer (api/common.py ``_Json``, api/sse.py
``EventStream``, served by api/app.py ``_HotPaths`` with no middleware between them and the server) has headers
the runtime's own code built, with lower-case names and values that are constants, numbers, or ids a request sent
only once they matched ``_ECHOABLE``; its head is formatted here (``_vouched_head``) to the same bytes, with the
cycle's state set as uvicorn's ``send`` sets it. uvicorn's default headers (date, server) are checked the way it
checks them, once per list (it makes a new one every second); a head with an access log to write, or default
headers that would need more than lowering, takes uvicorn's path.

Slow clients: uvicorn closes a keep-alive connection that stays idle (``timeout_keep_alive``) but has no bound on
the time a request's head or body takes, and stops its keep-alive timer at the first byte of a request: a client
that sends ``GET / HTTP/1.1\r\nX-a: `` and nothing more holds a socket (and a descriptor) for ever. ``Deadlines``
adds two timers: the head must be complete within ``header_timeout`` of the connection or of the previous
response, and the body within ``body_timeout`` of the head, else the connection is closed. Nothing runs while a
request is being answered, so a long response (an SSE stream) is never cut. A route that takes large bodies (a
media upload's PUT) may say so once it has checked the request (``Connection.long_body``): from then on the body's
deadline moves ``body_timeout`` further each time another ``body_step`` bytes have arrived, so a large body that
keeps coming at the pace the plain deadline asks of the largest plain body (128 KiB in 30 s) is not cut, and one
that trickles slower still is. Only the httptools protocol is served: uvicorn[standard], which the package
requires, requires httptools on every platform, so uvicorn's h11 protocol is never the one in use.

A request's scope carries its ``Connection`` (``scope["extensions"][CONNECTION]``): the large-body call above, and
``on_lost``, by which an SSE stream learns that its client hung up without a task of its own blocked on
``receive()`` (api/sse.py).

These subclasses use uvicorn names that are not its public API (the parser callbacks, ``pipeline``,
``_start_asgi_task``): pyproject.toml bounds uvicorn's version, and tests/security/test_slow_clients.py checks
that each name is still there.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from axme_cli.runtime.settings import Settings

# The uvicorn names the classes below rely on that are not its public API: methods they override or call and
# attributes they read, on a protocol and on a request cycle (tests/security/test_slow_clients.py checks them).
PROTOCOL_NAMES = ("connection_made", "connection_lost", "on_headers_complete", "on_body", "on_message_complete",
                  "on_response_complete", "_start_asgi_task", "_unset_keepalive_if_required", "pipeline", "cycle",
                  "loop", "transport", "flow", "server_state", "timeout_keep_alive", "access_log")
# ``scope["extensions"][CONNECTION]``: the ``Connection`` of the request (what the app may ask of the protocol).
CONNECTION = "axme.connection"
CYCLE_NAMES = ("send", "scope", "transport", "response_started", "response_complete", "disconnected", "more_body",
               "flow", "access_log", "default_headers", "waiting_for_100_continue", "keep_alive", "chunked_encoding",
               "expected_content_length")
# uvicorn's module names ``_vouched_head`` uses: the status lines it writes, and the checks it makes of a header.
MODULE_NAMES = ("STATUS_LINE", "HEADER_RE", "HEADER_VALUE_RE")
# A key of an ``http.response.start`` message whose headers the runtime's own code built (see the module's text):
# names in lower case (uvicorn lowers them), values with no byte uvicorn's HEADER_VALUE_RE refuses (it would raise).
# The framing headers are still read as uvicorn reads them. Only a response that reaches the server with no
# middleware in between may carry it: a middleware could add a header from the request to the message, which would
# then go out unchecked.
VOUCHED = "axme.vouched"
# A key of an ``http.response.start`` message without ``content-length`` (a stream): keep its head for the first
# body message, which the app sends at once (api/sse.py), so both leave in one write.
WITH_FIRST_BODY = "axme.with_first_body"


class _Collect:
    """Stands in for the transport while uvicorn formats one message."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def close(self) -> None:
        self.closed = True


_STATUS_LINE: dict[int, bytes] = httptools_impl.STATUS_LINE
_HEADER_RE, _HEADER_VALUE_RE = httptools_impl.HEADER_RE, httptools_impl.HEADER_VALUE_RE
_FRAMING = (b"content-length", b"transfer-encoding", b"connection")
_defaults: tuple[object, bytes | None] = (None, None)  # uvicorn's last default headers, and them formatted


def _formatted_defaults(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """uvicorn's default headers (date, server, any configured) as its ``send`` writes them, or None if one of them
    is a framing header or fails its checks (uvicorn's path then does what it does with them). Kept for the list
    object uvicorn hands every cycle until its next tick makes another (once a second)."""
    global _defaults
    known, kept = _defaults
    if known is headers:
        return kept
    parts: list[bytes] = []
    formatted: bytes | None = None
    for name, value in headers:
        name = name.lower()
        if _HEADER_RE.search(name) or _HEADER_VALUE_RE.search(value) or name in _FRAMING:
            break
        parts += (name, b": ", value, b"\r\n")
    else:
        formatted = b"".join(parts)
    _defaults = (headers, formatted)
    return formatted


class OneWriteCycle(RequestResponseCycle):
    head: bytes | None = None  # the formatted head of a plain response, not written yet

    async def send(self, message: Any) -> None:
        kind = message["type"]
        if (kind == "http.response.start" and VOUCHED in message and not self.response_started
                and not self.access_log):
            if self.flow.write_paused and not self.disconnected:
                await self.flow.drain()
            if self.disconnected:
                return
            head = self._vouched_head(message)
            if head is not None:
                if self.chunked_encoding is False or WITH_FIRST_BODY in message:
                    self.head = head
                else:  # a stream's head (or one with no body: HEAD, 204, 304) leaves at once, as uvicorn's would
                    self.transport.write(head)
                return
        if kind == "http.response.start" and not self.response_started and not self.disconnected and (
                message.get(WITH_FIRST_BODY) or any(
                    name.lower() == b"content-length" for name, _ in message.get("headers", ()))):
            collected = await self._formatted(message)
            self.head = b"".join(collected.parts)
            return
        head = self.head
        if head is None or kind != "http.response.body":
            await super().send(message)
            return
        self.head = None
        collected = await self._formatted(message)
        if self.disconnected:
            return
        transport = self.transport
        transport.write(head + b"".join(collected.parts))
        if collected.closed:
            transport.close()

    def _vouched_head(self, message: Any) -> bytes | None:
        """The head uvicorn's ``send`` would write for this ``http.response.start`` (VOUCHED: its headers are not
        checked again), with the cycle's state set as ``send`` sets it; None (nothing set) when uvicorn's default
        headers need its own path."""
        defaults = _formatted_defaults(self.default_headers)
        if defaults is None:
            return None
        status = message["status"]
        parts = [_STATUS_LINE[status], defaults]
        close = False
        for name, value in message.get("headers", ()):
            if name in _FRAMING:
                if name == b"content-length":
                    if self.chunked_encoding is None:
                        self.expected_content_length = int(value.decode())
                        self.chunked_encoding = False
                elif name == b"transfer-encoding":
                    if value.lower() == b"chunked":
                        self.expected_content_length = 0
                        self.chunked_encoding = True
                elif b"close" in [token.lower().strip() for token in value.split(b",")]:
                    self.keep_alive = False
                    close = True
            parts += (name, b": ", value, b"\r\n")
        if not self.keep_alive and not close:
            parts.append(b"connection: close\r\n")
        if self.chunked_encoding is None and self.scope["method"] != "HEAD" and status not in (204, 304):
            self.chunked_encoding = True
            parts.append(b"transfer-encoding: chunked\r\n")
        parts.append(b"\r\n")
        self.response_started = True
        self.waiting_for_100_continue = False
        return b"".join(parts)

    async def _formatted(self, message: Any) -> _Collect:
        transport, collected = self.transport, _Collect()
        self.transport = collected  # type: ignore[assignment]
        try:
            await super().send(message)
        finally:
            self.transport = transport
        return collected


class Connection:
    """What a request's app may ask of the connection it came on (``scope["extensions"][CONNECTION]``).

    ``long_body()``: the route takes a large body (see the module's text). ``on_lost(callback)``: call
    ``callback`` if the connection is lost while this request is answered (None: no more); a stream learns of a
    hang-up so, without a task of its own waiting on ``receive()`` for ``http.disconnect``. The request's cycle is
    held by a weak reference: the request's scope holds this object, and a strong one made every answered request
    a reference loop (~20 objects) that only the garbage collector freed (under ``bench/saga.py`` a collection of
    ~40,000 of them every few seconds, ~60 ms each)."""

    __slots__ = ("_protocol", "_cycle")

    def __init__(self, protocol: OneWriteProtocol, cycle: RequestResponseCycle) -> None:
        self._protocol = protocol
        self._cycle = weakref.ref(cycle)

    def long_body(self) -> None:
        cycle = self._cycle()
        if cycle is not None:
            self._protocol.allow_long_body(cycle)

    def on_lost(self, callback: Callable[[], None] | None) -> None:
        self._protocol.lost = callback


class Deadlines:
    """One timer per connection: the head's deadline while a request head is awaited, the body's while its body
    arrives, none while a request is answered; and uvicorn's keep-alive, which closes a connection that sent no
    byte within ``timeout_keep_alive`` of a response (uvicorn makes a timer for it after every response and
    cancels it at the next request's first bytes). When it fires the connection is closed (no answer: the client
    has not finished asking).

    The timer is lazy: a phase sets its due time (``_due``) and the timer is only created, or moved earlier, when
    none is pending at or before that time; when it fires early (the due time moved on, or no phase is armed) it
    sets itself again for the due time, or goes. A request arms and disarms deadlines three times: a timer made
    and cancelled each time (``call_later``, ``TimerHandle.cancel`` on uvloop) was ~1% of the event loop's time
    under ``bench/saga.py``; the deadlines are seconds long, so the timer fires about once per
    ``header_timeout`` on a busy connection (or of ``timeout_keep_alive``, when that is shorter)."""

    header_timeout = 10.0
    body_timeout = 30.0
    body_step = 131_072  # bytes of a long body that buy it another body_timeout
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any
    _deadline: asyncio.TimerHandle | None = None  # the timer pending, if any
    _timer_at = 0.0  # when it fires (loop time)
    _due = 0.0  # when the armed phase's deadline passes (loop time)
    _phase = ""  # "head", "body" or "" (none)
    _idle = 0.0  # when the keep-alive closes the connection unless a byte came since the last response (0: no)
    timeout_keep_alive: int  # uvicorn's (typed int: the runtime gives it a float, which works)
    _long = False  # the route took a long body (Connection.long_body): the body's deadline moves while it arrives
    _since = 0  # bytes of the long body since its deadline last moved

    def _arm(self, phase: str) -> None:
        self._phase = phase
        self._long = False
        self._due = self.loop.time() + (self.header_timeout if phase == "head" else self.body_timeout)
        self._timer_by(self._due)

    def _keep_alive(self) -> None:
        self._idle = self.loop.time() + self.timeout_keep_alive
        self._timer_by(self._idle)

    def _timer_by(self, due: float) -> None:
        timer = self._deadline
        if timer is None or self._timer_at > due:
            if timer is not None:
                timer.cancel()
            self._timer_at = due
            self._deadline = self.loop.call_at(due, self._fired)

    def _disarm(self) -> None:
        self._phase = ""  # the pending timer, if any, finds no phase when it fires and goes
        self._long = False

    def allow_long_body(self, cycle: Any) -> None:
        """The app's ``Connection.long_body`` call for ``cycle``: its body's deadline starts again now and moves on
        with every ``body_step`` bytes that arrive (only while that body is the one arriving)."""
        if cycle is self.cycle and self._phase == "body" and not cycle.response_complete:
            self._arm("body")
            self._long, self._since = True, 0

    def _counted(self, received: int) -> None:
        if self._long and self._phase == "body":
            self._since += received
            if self._since >= self.body_step:
                self._arm("body")
                self._long, self._since = True, 0

    def _fired(self) -> None:
        self._deadline = None
        due = self._due if self._phase else 0.0
        if self._idle and (not due or self._idle < due):
            due = self._idle
        if not due:
            return
        if self.loop.time() < due:  # the deadline moved on since the timer was set
            self._timer_at = due
            self._deadline = self.loop.call_at(due, self._fired)
            return
        self._phase, self._idle = "", 0.0
        if not self.transport.is_closing():
            self.transport.close()

    def _stop_timer(self) -> None:
        self._disarm()
        self._idle = 0.0
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


class OneWriteProtocol(Deadlines, HttpToolsProtocol):
    """``uvicorn.Config(http=OneWriteProtocol)``: each request's cycle becomes a ``OneWriteCycle``."""

    lost: Callable[[], None] | None = None  # called once if the connection is lost (Connection.on_lost)

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        # uvicorn turns a connection's access log on when its logger has a handler, and relies on its logging set-up
        # to take them away when the config says no access log. A runtime that shares its process (the tests run it
        # in a thread) may find one there that someone else put: the config decides, so that it serves as
        # `axme dev` does (with no access log, the hot routes' heads are formatted here: VOUCHED).
        if not config.access_log:
            self.access_log = False

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        cycle.__class__ = OneWriteCycle
        extensions: dict[str, Any] = cycle.scope.setdefault("extensions", {})
        extensions[CONNECTION] = Connection(self, cycle)
        super()._start_asgi_task(cycle, app)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("head")

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.pipeline:  # queued behind a request being answered, its reading paused: its turn comes later
            self._disarm()
        else:
            self._arm("body")

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._counted(len(body))

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # The app may have answered before the body was in (a 401, a 413): then the connection is idle now.
        if self.cycle.response_complete:
            self._arm("head")
        else:
            self._disarm()

    def _unset_keepalive_if_required(self) -> None:  # uvicorn's call when bytes arrive (and when the connection goes)
        self._idle = 0.0

    def on_response_complete(self) -> None:
        # uvicorn's own (it is handed to each cycle as on_response), with its keep-alive timer made by _keep_alive
        self._long = False  # answered: a body still arriving is one nobody reads, with the plain deadline
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:  # the next pipelined request starts
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            if self.pipeline:
                return
        else:
            self._keep_alive()
        cycle = self.cycle  # the last request whose head came: answered now, or the pipelined one just started
        if cycle.more_body:  # its body is still arriving (reading was paused while it was queued)
            if self._phase != "body":
                self._arm("body")
        elif cycle.response_complete:
            self._arm("head")
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)  # the request answered is marked disconnected: its sends do nothing now
        lost, self.lost = self.lost, None
        if lost is not None:
            lost()


def protocol(settings: Settings) -> type[OneWriteProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)``, with the settings' deadlines."""
    return type("OneWriteProtocol", (OneWriteProtocol,), {"header_timeout": settings.header_timeout_seconds,
                                                           "body_timeout": settings.body_timeout_seconds,
                                                           "body_step": settings.max_body_bytes})

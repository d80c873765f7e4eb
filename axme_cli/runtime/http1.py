"""uvicorn's httptools protocol, with one socket write per plain response instead of two.

uvicorn writes a response's status line and headers as soon as the app sends ``http.response.start``, and the
body with the next message: two ``send()`` calls on the socket, each made with the GIL held. Under
``bench/saga.py`` those writes were a quarter of the time the runtime's process held the GIL (py-spy ``--gil``),
and every answer to ``/resume`` paid two of them. Here the head of a response that has a ``content-length`` is
kept until its first body message and both leave in one write. Streams (SSE: chunked, no ``content-length``)
still get their head at once, so a client sees the stream open before its first event.

Everything else is uvicorn's own code: the protocol and its request cycle are subclassed, and the cycle only
redirects uvicorn's writes of those two messages into a buffer for the moment it formats them.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


class _Collect:
    """Stands in for the transport while uvicorn formats one message."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def close(self) -> None:
        self.closed = True


class OneWriteCycle(RequestResponseCycle):
    head: bytes | None = None  # the formatted head of a plain response, not written yet

    async def send(self, message: Any) -> None:
        kind = message["type"]
        if kind == "http.response.start" and not self.response_started and not self.disconnected and any(
                name.lower() == b"content-length" for name, _ in message.get("headers", ())):
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

    async def _formatted(self, message: Any) -> _Collect:
        transport, collected = self.transport, _Collect()
        self.transport = collected  # type: ignore[assignment]
        try:
            await super().send(message)
        finally:
            self.transport = transport
        return collected


class OneWriteProtocol(HttpToolsProtocol):
    """``uvicorn.Config(http=OneWriteProtocol)``: each request's cycle becomes a ``OneWriteCycle``."""

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        cycle.__class__ = OneWriteCycle
        super()._start_asgi_task(cycle, app)

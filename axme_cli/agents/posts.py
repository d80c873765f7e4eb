"""The agent runner's POSTs (one ``/resume`` per step) to an ``http://`` runtime: HTTP/1.1 over keep-alive
connections of its own, on asyncio streams.

design.md §8 measured aiohttp's client at ~0.11 ms of CPU per request and raw asyncio streams at ~0.03 ms; an agent
makes one such request per step, so under ``bench/saga.py`` the client was a good part of each agent process's CPU.
The feed stays on aiohttp (one long request), and so does everything over ``https://`` (TLS and its certificates
are aiohttp's). A connection the runtime closed while idle (its keep-alive timeout) is seen at EOF and not reused;
any other failure closes the connection and is raised to the caller, which retries (``Runner._resume``).
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit


class Posts:
    def __init__(self, base_url: str, headers: dict[str, str], timeout: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"not an http:// URL: {base_url!r}")
        self.host, self.port = parts.hostname, parts.port or 80  # paths are absolute, as aiohttp's are
        fields = {"Host": parts.netloc, **headers, "Content-Type": "application/json"}
        for name, value in fields.items():  # nothing may end the head early or add a header of its own
            if any(c in f"{name}{value}" for c in "\r\n\0"):
                raise ValueError(f"header {name!r}: a line break or NUL in it")
        self.head = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
        self.timeout = timeout
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, path: str, body: bytes) -> int:
        """POST ``body`` (JSON) to ``path``; the status (the answer's body is read and dropped)."""
        conn = None
        while self._idle and conn is None:
            reader, writer = self._idle.pop()
            if reader.at_eof() or writer.is_closing():  # closed by the runtime while it waited here
                writer.close()
            else:
                conn = reader, writer
        async with asyncio.timeout(self.timeout):
            if conn is None:
                conn = await asyncio.open_connection(self.host, self.port)
            reader, writer = conn
            try:
                writer.write(f"POST {path} HTTP/1.1\r\n{self.head}Content-Length: {len(body)}\r\n\r\n"
                             .encode("latin-1") + body)
                status, keep = await _answer(reader)
            except BaseException:
                writer.close()
                raise
        if keep:
            self._idle.append(conn)
        else:
            writer.close()
        return status

    def close(self) -> None:
        for _, writer in self._idle:
            with contextlib.suppress(Exception):
                writer.close()
        self._idle.clear()


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one HTTP/1.1 answer: its status, and whether the connection may carry another request."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status_line, _, rest = head.partition("\r\n")
    version, _, tail = status_line.partition(" ")
    status = int(tail[:3])
    length = None
    chunked = close = False
    for line in rest.split("\r\n"):
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding":
            chunked = "chunked" in value
        elif name == "connection":
            close = "close" in value
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            await reader.readexactly(size + 2)  # the chunk and its CRLF; the last (0) one's CRLF ends it
            if size == 0:
                break
    elif length is not None:
        await reader.readexactly(length)
    elif status >= 200 and status not in (204, 304):  # no length: the body runs to the end of the connection
        await reader.read()
        close = True
    return status, version == "HTTP/1.1" and not close

"""The one SSE reader: frames from a streaming response, and an intent's events followed across reconnects."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from axme_cli.client.lean_httpx import httpx
from axme_cli.protocol.lifecycle import TERMINAL


@dataclass
class Frame:
    event: str
    data: Any
    id: str | None = None


def frames(lines: Iterator[str]) -> Iterator[Frame]:
    """Parse ``event:``/``data:``/``id:`` lines into frames (comments and unknown fields ignored)."""
    event: str | None = None
    data: list[str] = []
    frame_id: str | None = None
    for line in lines:
        if line == "":
            if data:
                raw = "\n".join(data)
                try:
                    value: Any = json.loads(raw)
                except ValueError:
                    value = raw
                yield Frame(event or "message", value, frame_id)
            event, data, frame_id = None, [], None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            frame_id = value


def is_terminal(event: dict[str, Any]) -> bool:
    return event.get("status") in TERMINAL


class TimedOut(Exception):
    """The intent had not ended by the caller's deadline."""


class StreamRefused(Exception):
    """The server answered the stream request with an HTTP error (the client maps it)."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def follow_intent(http: httpx.Client, intent_id: str, *, since: int = 0, wait_seconds: int = 15,
                  follow: bool = False, until: float | None = None) -> Iterator[dict[str, Any]]:
    """Every event of one intent with ``seq > since``, live, reconnecting with exclusive cursors.

    Stops after the terminal event (or when the server says the intent is terminal) unless
    ``follow``. ``until`` (a time.monotonic() deadline) raises TimedOut when it passes first: each stream is
    asked to end by then (whole seconds, at least one), so the deadline is kept within about a second.
    HTTP errors raise StreamRefused; transport errors propagate as httpx errors.
    """
    cursor = since
    while True:
        wait = wait_seconds
        read = wait + 15.0
        if until is not None:
            left = until - time.monotonic()
            if left <= 0:
                raise TimedOut(intent_id)
            wait = max(1, min(wait_seconds, math.ceil(left)))
            # The server waits whole seconds: a deadline within one is kept by waiting for the next bytes (the
            # answer's head, an event, a ping) no longer than is left.
            read = min(read, max(left, 0.001))
        try:
            with http.stream("GET", f"/v1/intents/{intent_id}/events/stream",
                             params={"since": cursor, "wait_seconds": wait, "incremental": "true"},
                             headers={"accept": "text/event-stream"},
                             timeout=httpx.Timeout(10.0, read=read)) as response:
                if response.status_code >= 400:
                    response.read()
                    raise StreamRefused(response)
                for frame in frames(response.iter_lines()):
                    if frame.event == "stream.timeout":
                        info = frame.data if isinstance(frame.data, dict) else {}
                        if isinstance(info.get("next_seq"), int):
                            cursor = max(cursor, info["next_seq"])
                        if info.get("status") in TERMINAL and not follow:
                            return
                        break
                    if not frame.event.startswith("intent.") or not isinstance(frame.data, dict):
                        continue
                    seq = frame.data.get("seq")
                    if isinstance(seq, int):
                        if seq <= cursor:
                            continue  # never show an event twice
                        cursor = seq
                    yield frame.data
                    if is_terminal(frame.data) and not follow:
                        return
        except httpx.ReadTimeout:
            if until is not None and time.monotonic() >= until - 0.01:  # (a socket's timer may end a hair early)
                raise TimedOut(intent_id) from None
            raise

"""Test agents: threads that read an agent feed over HTTP and answer each intent like a real service."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from tests.runtime_proc import TLS

Handler = Callable[[dict[str, Any]], dict[str, Any] | None]


def agent_key(admin: httpx.Client, address: str) -> str:
    """Mint a key for the service account of ``address`` (created by scenarios/apply)."""
    agent = admin.get(f"/v1/agents/{address.removeprefix('agent://')}").json()["agent"]
    r = admin.post(f"/v1/service-accounts/{agent['service_account_id']}/keys", json={})
    assert r.status_code == 200, r.text
    return str(r.json()["key"]["token"])


class FeedAgent(threading.Thread):
    """Listens on its feed; for each delivered intent calls ``handler(frame)``; a dict result is sent to
    ``/resume`` (``{"action": "complete"|"fail", ...}``); None means "do not answer". With several URLs
    (replicas behind a load balancer) it moves to the next one when a connection fails."""

    def __init__(self, url: str | list[str], token: str, name: str, handler: Handler) -> None:
        super().__init__(daemon=True)
        self.urls = [url] if isinstance(url, str) else list(url)
        self.url, self.token, self.name, self.handler = self.urls[0], token, name, handler
        self.stop_event = threading.Event()
        self.seen: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []

    def run(self) -> None:
        cursor = 0
        turn = 0
        while not self.stop_event.is_set():
            self.url = self.urls[turn % len(self.urls)]
            turn += 1
            self._follow(cursor_box := [cursor])
            cursor = cursor_box[0]

    def _follow(self, cursor_box: list[int]) -> None:
        """Follow the feed on ``self.url`` until a connection error (then the caller picks the next URL)."""
        cursor = cursor_box[0]
        with httpx.Client(verify=TLS, base_url=self.url, headers={"x-api-key": self.token}, timeout=15.0) as client:
            while not self.stop_event.is_set():
                try:
                    with client.stream("GET", f"/v1/agents/{self.name}/intents/stream",
                                       params={"since": cursor, "wait_seconds": 1}) as response:
                        if response.status_code != 200:
                            response.read()
                            self.errors.append(RuntimeError(f"feed answered {response.status_code}: {response.text}"))
                            self.stop_event.wait(0.2)
                            continue
                        # A frame counts only once its blank line arrived: a stream cut by a crash
                        # may end in the middle of one.
                        for frame in sse_frames(response.iter_lines()):
                            if not frame[0].startswith("intent."):
                                continue
                            data = frame[1]
                            cursor = cursor_box[0] = data["seq"]
                            self.seen.append(data)
                            answer = self.handler(data)
                            if answer is not None:
                                client.post(f"/v1/intents/{data['intent_id']}/resume", json=answer)
                except httpx.HTTPError as exc:
                    if self.stop_event.is_set():
                        return
                    self.errors.append(exc)
                    self.stop_event.wait(0.2)
                    if len(self.urls) > 1:
                        return

    def stop(self) -> None:
        self.stop_event.set()
        self.join(10)


def sse_frames(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    event, data = None, None
    for line in lines:
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and event and data is not None:
            yield event, json.loads(data)
            event, data = None, None

"""Wake-ups for streams after a commit. In-process for SQLite.

A stream registers an ``asyncio.Event`` for the intent or agent feed it follows, clears it,
reads, sends, then waits on it: a commit that touches that intent or feed sets it. Nothing
polls the database in a loop. Across PostgreSQL replicas the same hub is also fed by the store's
LISTEN connection (store/postgres.py), with what other replicas committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

from axme_cli.runtime.store.base import Notes


class Watch(asyncio.Event):
    """Set when a commit touched what a stream follows; ``pending`` holds the events of its intent those commits
    appended in this process (seq, data), in order, for the stream to send without reading them back."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[tuple[int, str]] = []

    def take(self) -> list[tuple[int, str]]:
        pending, self.pending = self.pending, []
        return pending


class Hub:
    def __init__(self) -> None:
        self._intents: defaultdict[str, set[Watch]] = defaultdict(set)
        self._feeds: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        self.open_streams = 0
        # The dashboard (issue 9): streams that want to hear of any intent change (live counts), and which agent
        # feeds have a listener now (feed_listeners) or had one last (feed_seen, epoch seconds). In memory, per
        # process: with PostgreSQL replicas each knows the agents connected to it.
        self._any: set[asyncio.Event] = set()
        self.feed_listeners: Counter[str] = Counter()
        self.feed_seen: dict[str, float] = {}

    @contextlib.contextmanager
    def _watch(self, table: defaultdict[str, set[Any]], key: str) -> Iterator[Any]:
        event = Watch()
        table[key].add(event)
        self.open_streams += 1
        try:
            yield event
        finally:
            self.open_streams -= 1
            waiters = table.get(key)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del table[key]

    def watch_intent(self, intent_id: str) -> contextlib.AbstractContextManager[Watch]:
        return self._watch(self._intents, intent_id)

    @contextlib.contextmanager
    def watch_feed(self, address: str) -> Iterator[asyncio.Event]:
        self.feed_listeners[address] += 1
        self.feed_seen[address] = time.time()
        try:
            with self._watch(self._feeds, address) as event:
                yield event
        finally:
            self.feed_listeners[address] -= 1
            if self.feed_listeners[address] <= 0:
                del self.feed_listeners[address]
            self.feed_seen[address] = time.time()

    @contextlib.contextmanager
    def watch_any(self) -> Iterator[asyncio.Event]:
        """Set by every commit that changed an intent (the dashboard's live counts)."""
        event = asyncio.Event()
        self._any.add(event)
        self.open_streams += 1
        try:
            yield event
        finally:
            self.open_streams -= 1
            self._any.discard(event)

    def publish(self, notes: Notes) -> None:
        if notes.intents or notes.everything:
            for event in self._any:
                event.set()
        if notes.everything:
            for table in (self._intents, self._feeds):
                for events in table.values():
                    for event in events:
                        event.set()
            return
        appended_to = notes.events or {}
        for intent_id in notes.intents:
            watches = self._intents.get(intent_id)
            if watches:
                appended = appended_to.get(intent_id)
                for watch in watches:
                    if appended:
                        watch.pending.extend(appended)
                    watch.set()
        for address in notes.feeds:
            for event in self._feeds.get(address, ()):
                event.set()


async def wait(event: asyncio.Event, timeout: float) -> bool:
    """Wait for ``event`` at most ``timeout`` seconds; True if it was set."""
    if event.is_set() or timeout <= 0:
        return event.is_set()
    try:
        async with asyncio.timeout(timeout):  # no task per wait, unlike asyncio.wait_for
            await event.wait()
    except TimeoutError:
        return False
    return True

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
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from axme_cli.runtime.clock import SYSTEM, Clock
from axme_cli.runtime.store.base import Notes, Row

T = TypeVar("T")
# How long a stream handed a gap waits for what fills it before it reads (``handed_over``): the missing commit's
# notification is normally in flight already, and arrives within a millisecond.
GAP_WAIT = 0.05


class Watch(asyncio.Event, Generic[T]):
    """Set when a commit touched what a stream follows; ``pending`` holds what those commits handed over, in order,
    for the stream to send without reading it back: an intent's events (seq, data), or the rows put on an agent's
    feed. ``partial``: a commit touched it without handing over what it wrote (a redelivery's feed row, or
    notes that carry none), so what is pending is not all there is and the stream must read.

    Several commits may wake a stream before it runs again: their hand-overs add up in ``pending``, and one of them
    without a hand-over makes the lot partial. (Without ``partial``, a commit that handed nothing over and one that
    did, arriving together, looked like the second alone: the stream sent what it was handed and never read what
    the first wrote.)"""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[T] = []
        self.partial = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0  # when the timer fires (time.monotonic())
        self._until = 0.0  # the deadline of the last ``until``
        self._expired = False

    async def until(self, deadline: float) -> bool:
        """Wait until the watch is set or ``deadline`` (``time.monotonic()``) passes; True if it was set.

        One timer serves all the waits of a stream (its deadline stays, or comes closer), made at the first and
        moved only when the deadline comes closer: a timeout per wait (``wait``: ``asyncio.timeout``'s timer
        made and cancelled) cost ~7 us more per wait, and a stream waits after every frame it sends."""
        now = time.monotonic()
        if deadline <= now:
            return False
        if self.is_set():
            return True
        self._until = deadline
        if self._timer is None or self._timer_at > deadline:
            self._arm(deadline, now)
        await self.wait()
        return not self._expired

    def _arm(self, at: float, now: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = asyncio.get_running_loop().call_later(at - now, self._fired)

    def _fired(self) -> None:
        self._timer = None
        now = time.monotonic()
        if now < self._until:  # fired early (the loop's clock is in milliseconds), or for an earlier deadline
            self._arm(self._until, now)
            return
        self._expired = True
        self.set()

    def close(self) -> None:
        """The stream is over: its timer goes."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def take(self) -> list[T] | None:
        """What was handed over since the last take, or None when that is not all that was written."""
        pending, self.pending = self.pending, []
        if self.partial:
            self.partial = False
            return None
        return pending


class Hub:
    def __init__(self, clock: Clock = SYSTEM) -> None:
        self._clock = clock
        self._intents: defaultdict[str, set[Watch[tuple[int, str]]]] = defaultdict(set)
        self._feeds: defaultdict[str, set[Watch[Row]]] = defaultdict(set)
        self.open_streams = 0
        # The dashboard: streams that want to hear of any intent change (live counts), and which agent
        # feeds have a listener now (feed_listeners) or had one last (feed_seen, epoch seconds). In memory, per
        # process: with PostgreSQL replicas each knows the agents connected to it.
        self._any: set[asyncio.Event] = set()
        self.feed_listeners: Counter[str] = Counter()
        self.feed_seen: dict[str, float] = {}

    @contextlib.contextmanager
    def _watch(self, table: defaultdict[str, set[Any]], key: str) -> Iterator[Any]:
        event: Watch[Any] = Watch()
        table[key].add(event)
        self.open_streams += 1
        try:
            yield event
        finally:
            event.close()
            self.open_streams -= 1
            waiters = table.get(key)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del table[key]

    def watch_intent(self, intent_id: str) -> contextlib.AbstractContextManager[Watch[tuple[int, str]]]:
        return self._watch(self._intents, intent_id)

    @contextlib.contextmanager
    def watch_feed(self, address: str) -> Iterator[Watch[Row]]:
        self.feed_listeners[address] += 1
        self.feed_seen[address] = self._clock.time()
        try:
            with self._watch(self._feeds, address) as event:
                yield event
        finally:
            self.feed_listeners[address] -= 1
            if self.feed_listeners[address] <= 0:
                del self.feed_listeners[address]
            self.feed_seen[address] = self._clock.time()

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
                        event.partial = True
                        event.set()
            return
        _hand_over(self._intents, notes.intents, notes.events or {})
        _hand_over(self._feeds, notes.feeds, notes.fed or {})


def _hand_over(table: defaultdict[str, set[Watch[Any]]], keys: set[str], handed: dict[str, list[Any]]) -> None:
    """Wake the watches of ``keys``, handing each what this commit appended for its key (a key it touched without
    handing anything over makes the watch partial: the stream reads)."""
    for key in keys:
        watches = table.get(key)
        if watches:
            items = handed.get(key)
            for watch in watches:
                if items:
                    watch.pending.extend(items)
                else:
                    watch.partial = True
                watch.set()


def following(handed: list[T] | None, cursor: int, position: Callable[[T], int]) -> list[T] | None:
    """What a stream was handed (``Watch.take``) after ``cursor``, in order, if it follows on from there without a
    gap: an empty list when all of it was sent already (read before those commits were handed over); None when the
    stream must read (a commit that handed nothing over, or a gap). Items may come out of order: across PostgreSQL
    replicas this replica's own commit is handed over at once and an earlier commit of another replica's comes
    through the notification connection after it."""
    if handed is None:
        return None
    expected = cursor + 1
    out: list[T] = []
    for item in sorted(handed, key=position):
        at = position(item)
        if at < expected:
            continue  # already sent, or handed over twice
        if at != expected:
            return None
        out.append(item)
        expected += 1
    return out


async def handed_over(watch: Watch[T], cursor: int, position: Callable[[T], int],
                      grace: float = GAP_WAIT) -> list[T] | None:
    """``following`` of what ``watch`` was handed since it was last taken; on a gap, what fills it is on its way (an
    earlier commit of another replica's, heard after this replica's own later one): it waits up to ``grace`` for
    that instead of reading. None: the stream reads."""
    handed = watch.take()
    out = following(handed, cursor, position)
    if out is not None or handed is None:
        return out
    deadline = time.monotonic() + grace
    while out is None:
        watch.clear()
        if not await wait(watch, deadline - time.monotonic()):
            return None
        more = watch.take()
        if more is None:
            return None
        handed += more
        out = following(handed, cursor, position)
    return out


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

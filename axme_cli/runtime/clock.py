"""The runtime's clock (``Clock``: the system's; ``ManualClock``: moved by tests) and one timestamp format for
every row and event."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from time import monotonic as _monotonic
from time import time as _wall_time


class Clock:
    """What the runtime reads "now" from: timers, deadlines, TTLs, retry delays, reminders, rate limits and the
    timestamps of what it stores. The system clock; ``time`` and ``monotonic`` are the ``time`` module's own
    functions, so a reading costs what ``time.time()`` does.

    I/O timeouts (a stream's wait, SSE pings, slow clients, storage housekeeping) stay on the real clock: they
    measure the network and the disk, not the workflows."""

    manual = False
    time = staticmethod(_wall_time)  # wall seconds (epoch)
    monotonic = staticmethod(_monotonic)

    def on_change(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (from whichever thread moved it) each time the clock jumps; returns the undo. The
        system clock never jumps."""
        return lambda: None


SYSTEM = Clock()


class ManualClock(Clock):
    """A clock that stands still until ``advance`` (or ``set``) moves it: tests and `axme dev --test-clock`.

    Thread-safe. Moving it calls the ``on_change`` callbacks, through which the runtime wakes its background
    loops (scheduler, senders) so that whatever became due fires at once, with no real wait.

    Each move lands a microsecond past the instant asked for (``PAST``): stored times have microsecond resolution
    (a deadline kept as text reads back up to half a microsecond after the instant it was set for, a sum like
    now + delay may land an ulp past it), and a clock that stood exactly on such a timer would never reach it."""

    PAST = 1e-6

    manual = True

    def __init__(self, start: float | None = None) -> None:
        self._lock = threading.Lock()
        self._wall = time.time() if start is None else float(start)
        self._mono = 1_000_000.0  # any origin: only differences of monotonic readings mean anything
        self._callbacks: list[Callable[[], None]] = []

    def time(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move both readings ``seconds`` (>= 0) forward, and a microsecond past, and wake what waits on the
        clock."""
        self._move(lambda: seconds)

    def set(self, ts: float) -> None:
        """Move the wall reading to (a microsecond past) ``ts`` (epoch seconds, not before the clock's now)."""
        self._move(lambda: ts - self._wall)

    def _move(self, by: Callable[[], float]) -> None:
        with self._lock:
            seconds = by()
            if not 0 <= seconds < math.inf:
                raise ValueError(f"a clock only moves forward by a finite number of seconds, not {seconds!r}")
            self._wall += seconds + self.PAST
            self._mono += seconds + self.PAST
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback()

    def on_change(self, callback: Callable[[], None]) -> Callable[[], None]:
        with self._lock:
            self._callbacks.append(callback)

        def undo() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return undo


# Whole seconds formatted, by second: an operation stamps times of a few different seconds (now, a deadline or a
# wake-up time ahead, a row's creation), so one remembered second was formatted again at almost every change.
_seconds: dict[int, str] = {}
_SECONDS_KEPT = 256
# The timestamps formatted lately: an operation stamps all it writes with one, but a workflow step alternates
# between two or three (now, the step's start, a deadline), so one remembered timestamp missed half the time.
_texts: dict[float, str] = {}
_TEXTS_KEPT = 64


def iso(ts: float | None = None) -> str:
    """``2026-11-28T04:48:06.123456Z`` (UTC, microseconds). Formatting the second once per second keeps this
    cheap on the hot path (it runs for every event)."""
    if ts is not None:
        text = _texts.get(ts)
        if text is not None:
            return text
    frac, whole = math.modf(time.time() if ts is None else ts)
    micro, sec = round(frac * 1e6), int(whole)  # rounded as datetime.fromtimestamp rounds
    if micro >= 1_000_000:
        sec, micro = sec + 1, micro - 1_000_000
    elif micro < 0:
        sec, micro = sec - 1, micro + 1_000_000
    prefix = _seconds.get(sec)
    if prefix is None:
        if len(_seconds) >= _SECONDS_KEPT:
            _seconds.clear()
        prefix = _seconds[sec] = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(sec))
    text = f"{prefix}{micro:06d}Z"
    if ts is not None:
        if len(_texts) >= _TEXTS_KEPT:
            _texts.clear()
        _texts[ts] = text
    return text


def parse_iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def to_iso(dt: datetime) -> str:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return iso(dt.timestamp())

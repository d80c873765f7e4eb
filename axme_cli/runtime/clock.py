"""Wall-clock helpers: one timestamp format for every row and event."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

_second: tuple[int, str] = (-1, "")  # the last whole second formatted (most timestamps share it)
_last: tuple[float, str] = (-1.0, "")  # the last timestamp formatted (an operation stamps all it writes with one)


def iso(ts: float | None = None) -> str:
    """``2026-11-28T04:48:06.123456Z`` (UTC, microseconds). Formatting the second once per second keeps this
    cheap on the hot path (it runs for every event)."""
    global _second, _last
    last = _last
    if ts == last[0]:
        return last[1]
    frac, whole = math.modf(time.time() if ts is None else ts)
    micro, sec = round(frac * 1e6), int(whole)  # rounded as datetime.fromtimestamp rounds
    if micro >= 1_000_000:
        sec, micro = sec + 1, micro - 1_000_000
    elif micro < 0:
        sec, micro = sec - 1, micro + 1_000_000
    cached = _second
    if cached[0] != sec:
        cached = _second = (sec, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(sec)))
    text = f"{cached[1]}{micro:06d}Z"
    if ts is not None:
        _last = (ts, text)
    return text


def parse_iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def to_iso(dt: datetime) -> str:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return iso(dt.timestamp())

"""Time-ordered identifiers (UUIDv7 layout): new rows land at the end of the primary-key index."""

from __future__ import annotations

import os
import threading
import time

_lock = threading.Lock()
_last_ms = 0
_counter = 0
# Random bytes from the OS, drawn a block at a time: one getrandom() per 512 ids instead of one per id (the
# runtime makes a few ids and request ids per workflow step, each a system call). Same source, same quality.
_BLOCK = 4096
_pool = b""
_used = 0


def _after_fork_in_child() -> None:
    """A forked child must not hand out the bytes its parent hands out too; and it gets a lock of its own (the
    parent held this one across the fork, so no thread of the parent had it half-way)."""
    global _pool, _used, _lock
    _pool, _used = b"", 0
    _lock = threading.Lock()


os.register_at_fork(before=_lock.acquire, after_in_parent=_lock.release, after_in_child=_after_fork_in_child)


def random_bytes(n: int) -> bytes:
    """``n`` (at most ``_BLOCK``) bytes of ``os.urandom``, served from a block drawn ahead; thread-safe."""
    with _lock:
        return _take(n)


def _take(n: int) -> bytes:
    global _pool, _used
    if _used + n > len(_pool):
        _pool, _used = os.urandom(_BLOCK), 0
    _used += n
    return _pool[_used - n:_used]


def uuid7() -> str:
    """A UUIDv7 string; monotonic within the process (a 12-bit counter breaks ties in one ms)."""
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            _counter += 1
            if _counter > 0xFFF:
                _last_ms += 1
                _counter = 0
            ms = _last_ms
        else:
            _last_ms = ms
            _counter = 0
        counter = _counter
        rand = int.from_bytes(_take(8), "big")
    value = (ms & 0xFFFFFFFFFFFF) << 80
    value |= 0x7 << 76
    value |= counter << 64
    value |= (0b10 << 62) | (rand & ((1 << 62) - 1))
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

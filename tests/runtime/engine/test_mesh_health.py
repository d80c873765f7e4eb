"""An agent's health from its mesh row (engine/mesh.py), without a database: each state at the edges of its
thresholds, which of two reasons wins, and when the mesh loop must look next; and the in-memory kill switch
keeping a change it hears while it reads the set (on a real PostgreSQL store)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from axme_cli.protocol import mesh as wire
from axme_cli.runtime.engine.mesh import KillSwitch, health, next_change, recent_failures, scope
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store import open_store
from tests.runtime_proc import new_database

NOW = 1_000_000.0


def row(beat_age: float | None = None, failures: int = 0, window_age: float | None = None) -> dict[str, Any]:
    return {"last_heartbeat_ts": None if beat_age is None else NOW - beat_age,
            "failures_since_ts": None if window_age is None else NOW - window_age, "failures_recent": failures}


@pytest.mark.parametrize(("r", "state"), [
    (None, "unknown"),
    (row(), "unknown"),
    (row(beat_age=0), "healthy"),
    (row(beat_age=wire.HEARTBEAT_FRESH_SECONDS - 0.001), "healthy"),
    (row(beat_age=wire.HEARTBEAT_FRESH_SECONDS), "degraded"),
    (row(beat_age=wire.HEARTBEAT_STALE_SECONDS - 0.001), "degraded"),
    (row(beat_age=wire.HEARTBEAT_STALE_SECONDS), "unhealthy"),
    (row(beat_age=1, failures=1, window_age=10), "degraded"),
    (row(beat_age=1, failures=wire.FAILURES_UNHEALTHY - 1, window_age=10), "degraded"),
    (row(beat_age=1, failures=wire.FAILURES_UNHEALTHY, window_age=10), "unhealthy"),
    (row(failures=2, window_age=10), "degraded"),  # no heartbeat, but deliveries fail
    (row(beat_age=1, failures=9, window_age=wire.FAILURE_WINDOW_SECONDS), "healthy"),  # the window ran out
    (row(failures=9, window_age=wire.FAILURE_WINDOW_SECONDS), "unknown"),
])
def test_health_at_the_edges(r: dict[str, Any] | None, state: str) -> None:
    assert health(r, NOW)[0] == state


def test_the_reason_says_why_and_when_to_look_next() -> None:
    assert health(row(beat_age=400, failures=5, window_age=1), NOW)[1] == "no heartbeat for 400 s"
    assert health(row(beat_age=1, failures=1, window_age=1), NOW)[1] == "1 delivery failure in the last 300 s"
    assert recent_failures(row(failures=3, window_age=299), NOW) == 3
    assert next_change(row(beat_age=10), NOW) == NOW + wire.HEARTBEAT_FRESH_SECONDS - 10
    assert next_change(row(beat_age=100), NOW) == NOW + wire.HEARTBEAT_STALE_SECONDS - 100
    assert next_change(row(beat_age=400), NOW) is None  # unhealthy until it heartbeats again
    assert next_change(row(beat_age=100, failures=1, window_age=290), NOW) == NOW + 10


@pytest.mark.backends("postgres")  # where a read leaves the event loop (SQLite reads on it, at once)
def test_the_kill_switch_applies_changes_heard_while_it_reads(backend: str, tmp_path: Path) -> None:
    """A kill or resume heard while the set is read (another replica's, say) is not lost whichever the read saw."""
    s = Settings()
    url = new_database(backend, tmp_path, migrated=True)

    async def main() -> None:
        store = open_store(url)
        await store.open()
        try:
            for address in ("a", "b"):
                await store.write(lambda tx, address=address: tx.mesh_update(scope(s), address, {"killed": 1}, "t"))
            switch = KillSwitch()
            loading = asyncio.ensure_future(switch.load(store, s))
            await asyncio.sleep(0)
            assert not loading.done()  # the read is under way
            switch.apply({"a": False, "c": True})
            await loading
            assert switch.killed == {"b", "c"} and switch.is_killed("c") and not switch.is_killed("a")
        finally:
            await store.close()

    asyncio.run(main())

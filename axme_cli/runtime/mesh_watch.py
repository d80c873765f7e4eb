"""The mesh loop: records the health changes that time alone makes (an agent whose heartbeats stopped becomes
degraded, then unhealthy; a window of delivery failures runs out), at the moment they happen, and reads the killed
set again when this replica may have missed a kill or resume (``reload``).

It sleeps until the earliest moment an agent's health may change (``engine.mesh.next_change``), at most a minute;
a heartbeat only moves those moments later, so it needs no wake-up. Each replica runs one; the change is recorded
once (compare-and-set on the health last recorded).
"""

from __future__ import annotations

import functools

from axme_cli.runtime.background import Background
from axme_cli.runtime.clock import SYSTEM, Clock
from axme_cli.runtime.engine import mesh as engine
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Store

LONGEST_SLEEP = 60.0


class MeshWatch(Background):
    name = "mesh"

    def __init__(self, store: Store, settings: Settings, switch: engine.KillSwitch, clock: Clock = SYSTEM) -> None:
        super().__init__(clock)
        self._store = store
        self._settings = settings
        self._switch = switch
        self._reload = False

    def reload(self) -> None:
        """Read the killed set again (the notification connection was lost: a kill or resume may be missed)."""
        self._reload = True
        self.wake()

    async def step(self) -> float:
        store, s = self._store, self._settings
        if self._reload:
            self._reload = False
            try:
                await self._switch.load(store)
            except BaseException:
                self._reload = True  # the loop tries again in a second
                raise
        now = self.clock.time()
        rows = await store.mesh_agents(None)  # every workspace's agents
        changed = [r["address"] for r in rows if engine.health(r, now)[0] != r["health"]]
        if changed:
            await store.write(functools.partial(engine.op_sweep, s=s, addresses=changed, now=now))
        nxt = min((t for t in (engine.next_change(r, now) for r in rows) if t is not None), default=None)
        return LONGEST_SLEEP if nxt is None else min(LONGEST_SLEEP, max(0.001, nxt - now))

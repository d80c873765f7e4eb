"""The scheduler: the background loop that fires due timers (deadlines, redeliveries, retry delays, reminders)
and, once an hour, forgets expired idempotency keys."""

from __future__ import annotations

import functools

from axme_cli.runtime.background import Background
from axme_cli.runtime.clock import SYSTEM, Clock
from axme_cli.runtime.engine import intents as intents_engine
from axme_cli.runtime.metrics import Metrics
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Store, Tx


class Scheduler(Background):
    """Sleeps until the earliest timer; a commit that sets an earlier one wakes it (``wake_before``)."""

    name = "scheduler"

    def __init__(self, store: Store, settings: Settings, metrics: Metrics, clock: Clock = SYSTEM) -> None:
        super().__init__(clock)
        self._store = store
        self._settings = settings
        self._metrics = metrics
        self._last_cleanup = 0.0

    async def step(self) -> float:
        store, s, clock = self._store, self._settings, self.clock
        now = clock.time()
        if now - self._last_cleanup > 3600:
            await store.write(functools.partial(_expire_idempotency, before=now - s.idempotency_ttl_seconds))
            self._last_cleanup = now
        nxt = await store.next_wake()
        now = clock.time()
        if nxt is None:
            return 60.0
        if nxt > now:
            return min(60.0, nxt - now)
        self._metrics.timer_lag(now - nxt)
        fired = await store.write(lambda tx: intents_engine.op_fire_due(tx, s, clock.time()))
        # None fired: another replica holds those rows (PostgreSQL SKIP LOCKED); look again soon, do not spin.
        return 0.0 if fired else 0.05


def _expire_idempotency(tx: Tx, before: float) -> int:
    return tx.idem_expire(before)

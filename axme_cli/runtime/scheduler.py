"""The scheduler: the background loop that fires due timers (deadlines, redeliveries, retry delays, reminders) and
schedules' occurrences, and, once an hour, forgets expired idempotency keys."""

from __future__ import annotations

import asyncio
import functools
import logging

from axme_cli.runtime.background import Background
from axme_cli.runtime.clock import SYSTEM, Clock
from axme_cli.runtime.engine import intents as intents_engine
from axme_cli.runtime.engine import schedules as schedules_engine
from axme_cli.runtime.errors import DomainError, StoreUnavailable
from axme_cli.runtime.metrics import Metrics
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Store, Tx

log = logging.getLogger("axme.runtime")


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
        wake = await store.next_wake()
        scheduled = await store.next_schedule_fire()  # schedules' next occurrences are timers too
        nxt = min((t for t in (wake, scheduled) if t is not None), default=None)
        now = clock.time()
        if nxt is None:
            return 60.0
        if nxt > now:
            return min(60.0, nxt - now)
        self._metrics.timer_lag(now - nxt)
        fired = 0
        if wake is not None and wake <= now:
            fired += await store.write(lambda tx: intents_engine.op_fire_due(tx, s, clock.time()))
        if scheduled is not None and scheduled <= now:
            fired += await self._fire_schedules()
        # None fired: another replica holds those rows (PostgreSQL SKIP LOCKED); look again soon, do not spin.
        return 0.0 if fired else 0.05

    async def _fire_schedules(self) -> int:
        """Each due schedule in a write of its own, so that a run that cannot start (a scenario the runtime now
        refuses) fails alone: it is recorded on the schedule, which moves on to its next occurrence. The writes are
        issued together (one group commit on SQLite, the writer pool on PostgreSQL)."""
        due = await self._store.due_schedules(self.clock.time(), 100)
        return sum(await asyncio.gather(*(self._fire_schedule(schedule_id) for schedule_id in due)))

    async def _fire_schedule(self, schedule_id: str) -> int:
        store, s, now = self._store, self._settings, self.clock.time()
        try:
            outcome = await store.write(functools.partial(schedules_engine.op_fire, s=s, schedule_id=schedule_id,
                                                          now=now))
        except StoreUnavailable:
            raise
        except Exception as exc:  # the run was refused or broke: the schedule says why, and goes on
            reason = exc.message if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, DomainError):
                log.exception("schedule %s: the run failed", schedule_id)
            row = await store.get_schedule(schedule_id)
            if row is not None and row["next_fire_ts"] is not None:
                await store.write(functools.partial(schedules_engine.op_record_failure, schedule_id=schedule_id,
                                                    due=float(row["next_fire_ts"]), reason=reason, now=now))
            return 1
        return int(outcome is not None)


def _expire_idempotency(tx: Tx, before: float) -> int:
    return tx.idem_expire(before)

"""The runtime's background loops (timers, outbound HTTP, task mail) share one shape, kept here.

A loop does what is due (``step``), then sleeps until the time ``step`` asked for or until a commit wakes
it (``wake``). A storage outage or a bug in one pass is logged and retried a second later: the loop
never dies while the runtime runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from axme_cli.runtime.clock import SYSTEM, Clock
from axme_cli.runtime.errors import StoreUnavailable
from axme_cli.runtime.notify import wait

log = logging.getLogger("axme.runtime")

RETRY_AFTER_FAILURE = 1.0  # seconds


class Background:
    name = "background"

    def __init__(self, clock: Clock = SYSTEM) -> None:
        self.clock = clock  # "now" for what is due; a test clock that jumps wakes the loop (Runtime.start)
        self.woken = asyncio.Event()
        self.next_look = 0.0  # epoch seconds when it plans to look next (0 while it works)
        self._task: asyncio.Task[None] | None = None

    async def step(self) -> float:
        """Do what is due now; return how many seconds to sleep (0 or less: look again at once)."""
        raise NotImplementedError

    def wake(self) -> None:
        self.woken.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"axme-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake_before(self, ts: float | None) -> None:
        """Wake the loop if ``ts`` (epoch seconds) comes before it means to look anyway."""
        if ts is not None and ts < self.next_look:
            self.woken.set()

    async def _run(self) -> None:
        while True:
            self.woken.clear()
            self.next_look = 0.0
            try:
                timeout = await self.step()
            except StoreUnavailable as exc:
                log.warning("%s: %s", self.name, exc.message)
                timeout = RETRY_AFTER_FAILURE
            except Exception:  # never let the loop die
                log.exception("%s: a pass failed", self.name)
                timeout = RETRY_AFTER_FAILURE
            if timeout <= 0:
                continue
            self.next_look = self.clock.time() + timeout
            await wait(self.woken, timeout)

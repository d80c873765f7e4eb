"""The outbound sender: POSTs webhook deliveries and http-binding intents, off the request path.

One asyncio task per runtime. It leases due rows in a write operation (``engine.outbound.op_claim``), sends
each in its own task with aiohttp, outside any transaction, and records the outcome in another operation
(``op_record``). It sleeps until the next row is due or a commit queues one (``Notes.outbound``). Pending rows
are in the database, so they survive a restart; a lease left by a crashed sender runs out and the row is
taken again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import TYPE_CHECKING, Any

from axme_cli.protocol.webhooks import SIGNATURE_HEADER, sign
from axme_cli.runtime.background import Background
from axme_cli.runtime.clock import SYSTEM, Clock
from axme_cli.runtime.engine import outbound as engine
from axme_cli.runtime.errors import StoreUnavailable
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Store

if TYPE_CHECKING:
    from axme_cli.runtime.egress import Egress
    from axme_cli.runtime.engine.mesh import KillSwitch

log = logging.getLogger("axme.outbound")

MAX_IN_FLIGHT = 64


class OutboundSender(Background):
    name = "outbound"

    def __init__(self, store: Store, settings: Settings, clock: Clock = SYSTEM) -> None:
        super().__init__(clock)
        self._store = store
        self._settings = settings
        self._in_flight: set[asyncio.Task[None]] = set()
        self._egress: Egress | None = None
        self._full = False
        self.held: KillSwitch | None = None  # killed agents: their deliveries wait (engine/mesh.py)

    def _client(self) -> Egress:
        """The outbound client, made at the first send: a runtime that sends nothing never imports aiohttp."""
        if self._egress is None:
            from axme_cli.runtime.egress import Egress
            from axme_cli.runtime.egress_policy import Policy

            s = self._settings
            self._egress = Egress(Policy.of(s), timeout_seconds=s.outbound_timeout_seconds,
                                  user_agent="axme-runtime")
        return self._egress

    async def stop(self) -> None:
        await super().stop()
        tasks = list(self._in_flight)
        for task in tasks:
            task.cancel()
        for task in tasks:  # an interrupted POST keeps its lease; the row is taken again once it runs out
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._egress is not None:
            await self._egress.close()
            self._egress = None

    async def step(self) -> float:
        room = MAX_IN_FLIGHT - len(self._in_flight)
        if room <= 0:
            self._full = True  # the next finished send wakes us
            return 60.0
        due = await self._store.next_outbound_due()
        now = self.clock.time()
        if due is None:
            return 60.0
        if due > now:
            return min(60.0, due - now)
        held = self.held.killed if self.held is not None else frozenset()
        jobs = await self._store.write(functools.partial(engine.op_claim, s=self._settings, now=now, limit=room,
                                                         held=held))
        for job in jobs:
            task = asyncio.create_task(self._send(job))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        # Claimed rows are leased (not due now): look again for more at once. None claimed: another replica
        # holds them (SKIP LOCKED); look again soon rather than spin.
        return 0.0 if jobs else 0.05

    async def _send(self, job: dict[str, Any]) -> None:
        import aiohttp

        from axme_cli.runtime.egress_policy import EgressRefused

        body: bytes = job["body"]
        headers = {"Content-Type": "application/json", "X-Axme-Event": job["event_type"],
                   "X-Axme-Delivery": job["delivery_id"]}
        if job["secret"]:  # None: a routing endpoint with auth_mode none (engine/routing.py)
            headers[SIGNATURE_HEADER] = sign(job["secret"], body)
        status_code: int | None = None
        error: str | None = None
        try:
            status_code = await self._client().post(job["url"], body, headers)
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
        except EgressRefused as exc:  # nothing was sent: the error names the kind of address, nothing more
            error = str(exc)
        except TimeoutError:
            error = f"no answer within {self._settings.outbound_timeout_seconds:g} s"
        except (aiohttp.ClientError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        try:
            await self._store.write(functools.partial(engine.op_record, s=self._settings,
                                                      delivery_id=job["delivery_id"], now=self.clock.time(),
                                                      status_code=status_code, error=error))
        except StoreUnavailable as exc:  # the lease runs out and the row is sent again
            log.warning("outbound: could not record delivery %s: %s", job["delivery_id"], exc.message)
        finally:
            if self._full:
                self._full = False
                self.wake()

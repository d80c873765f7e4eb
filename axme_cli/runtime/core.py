"""The runtime object: what one runtime process is made of (store, settings, wake-up hub, authentication, rate
limits, background services), started and stopped together, and what a commit wakes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from axme_cli.runtime import tracing
from axme_cli.runtime.auth import Authenticator
from axme_cli.runtime.clock import SYSTEM, Clock
from axme_cli.runtime.engine import agents as agents_engine
from axme_cli.runtime.engine import orgs as orgs_engine
from axme_cli.runtime.engine import policies, usage
from axme_cli.runtime.engine.aliases import AliasBook
from axme_cli.runtime.engine.mesh import KillSwitch
from axme_cli.runtime.engine.quotas import Quotas
from axme_cli.runtime.engine.schemas import Registry
from axme_cli.runtime.mailer import DevMailer, Mailer
from axme_cli.runtime.mesh_watch import MeshWatch
from axme_cli.runtime.metrics import Metrics
from axme_cli.runtime.notify import Hub
from axme_cli.runtime.ratelimit import Throttle
from axme_cli.runtime.scheduler import Scheduler
from axme_cli.runtime.sender import OutboundSender
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Notes, Reads, Store, Tx
from axme_cli.runtime.task_mail import TaskMailSender

T = TypeVar("T")
log = logging.getLogger("axme.runtime")


class Runtime:
    def __init__(self, store: Store, settings: Settings, *, mailer: Mailer | None = None,
                 public_url: str = "", clock: Clock = SYSTEM) -> None:
        self.store = store
        self.reads: Reads = store  # what the API and the dashboard may read (the store's writes go through write)
        self.settings = settings
        self.clock = clock  # every "now" of timers, expiries, limits and stored times (a ManualClock in tests)
        self.hub = Hub(clock)
        self.auth = Authenticator(store, settings, clock)
        self.throttle = Throttle(settings, clock)  # calls without a credential (logins, task-mail links)
        self.mailer: Mailer = mailer or DevMailer()
        self.public_url = public_url  # the base of links in mails
        self.started_at = clock.time()
        self.metrics = Metrics(store, self.hub)
        self.scheduler = Scheduler(store, settings, self.metrics, clock)
        self.sender = OutboundSender(store, settings, clock)  # webhooks and http-binding intents
        self.task_mail = TaskMailSender(store, self.mailer, public_url, clock)
        self._unhook_clock: Callable[[], None] | None = None
        self.schemas = Registry()  # the schema registry's heads in memory (engine/schemas.py)
        self.aliases = AliasBook()  # the workspace's active aliases, as recipients (engine/aliases.py)
        self.mesh = KillSwitch()  # the killed agents, in memory (engine/mesh.py)
        self.mesh_watch = MeshWatch(store, settings, self.mesh, clock)  # health changes time makes
        self.sender.held = self.mesh  # a killed agent's POSTs wait
        # usage counted in memory and added to the database every few seconds; the quota limits in force
        self.usage = usage.Counters(clock, on_refused=self.metrics.quota_refused, home=usage.workspace_of(settings))
        self.quotas = Quotas(store, settings, clock, self.usage, self.started_at)
        self.usage_flusher = usage.Flusher(store, settings, self.usage, clock, also=self.quotas.housekeeping)
        # intent id -> the write recording its delivery, not committed yet (see deliver_behind)
        self._delivering: dict[str, asyncio.Future[Any]] = {}
        self.tracing: tracing.Tracing | None = None  # set by start() when OTEL_EXPORTER_OTLP_ENDPOINT is set

    async def start(self) -> None:
        self.tracing = tracing.from_env(self.settings.service)
        self.store.on_commit = self._on_commit
        self.store.on_batch = self.metrics.commit
        # One process on SQLite sees every registry change in _on_commit; replicas also hear of them through
        # LISTEN/NOTIFY, and a TTL bounds how long a notification lost anyway leaves one stale.
        self.schemas.ttl = None if self.store.kind == "sqlite" else 30.0
        # Aliases: one process drops its book when it binds or revokes one; replicas read it again within 1 s.
        self.aliases.ttl = None if self.store.kind == "sqlite" else 1.0
        await self.store.open()
        await self.mesh.load(self.store)
        await self.quotas.reload()
        await self.store.write(lambda tx: usage.op_count_stored(tx, self.settings))
        self.usage_flusher.start()
        self.scheduler.start()
        self.sender.start()
        self.task_mail.start()
        self.mesh_watch.start()
        if self.clock.manual:  # a test clock jumps: what became due fires now, not at the next look
            loop = asyncio.get_running_loop()

            def moved() -> None:  # from the thread that moved the clock
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(self._clock_moved)

            self._unhook_clock = self.clock.on_change(moved)

    def _clock_moved(self) -> None:
        for background in (self.scheduler, self.sender, self.task_mail, self.mesh_watch):
            background.wake()

    async def stop(self) -> None:
        if self._unhook_clock is not None:
            self._unhook_clock()
            self._unhook_clock = None
        for loop in (self.sender, self.scheduler, self.task_mail, self.mesh_watch, self.usage_flusher):
            await loop.stop()
        try:  # what this process counted and has not written yet
            await self.usage_flusher.flush()
            await self.quotas.stop()
        except Exception as exc:
            log.warning("the last usage counts could not be written: %s", exc)
        await self.store.close()
        if self.tracing is not None:  # export the spans still queued
            await asyncio.get_running_loop().run_in_executor(None, self.tracing.shutdown)
            self.tracing = None

    def _on_commit(self, notes: Notes) -> None:
        if notes.killed:  # first: the streams woken below look at it
            self.mesh.apply(notes.killed)
        if notes.everything:
            self.mesh_watch.reload()
        if notes.seen:
            self.metrics.observe(notes.seen)
            self.usage.observe(notes.seen)
            if self.tracing is not None:
                self.tracing.observe(notes.seen)
        if notes.keys_changed or notes.everything:
            self.auth.keys.clear()
        if notes.schemas or notes.everything:
            self.schemas.invalidate()
        if notes.policies or notes.everything:
            policies.invalidate(self.store.memo)
        if notes.quotas or notes.everything:
            self.quotas.invalidate()
        if notes.outbound or notes.everything:
            self.sender.wake()
        if notes.mail or notes.everything:
            self.task_mail.wake()
        if notes.everything:
            self.scheduler.wake()
        else:
            self.scheduler.wake_before(notes.wake_at)  # only an earlier timer needs to wake it
        self.hub.publish(notes)

    async def write(self, op: Callable[[Tx], T]) -> T:
        return await self.store.write(op)

    def deliver_behind(self, intent_ids: list[str], op: Callable[[Tx], Any]) -> None:
        """Record deliveries without holding up the frames that carry them.

        The feed sends its frames as soon as ``op`` is queued (``Store.write_behind``: PostgreSQL holds it a
        moment for the agent's answer, to commit both at once), and a read of those intents in this process waits
        for it (``settled``, which ends that hold), so an agent that reads an intent it just received here still
        sees DELIVERED; its answer sent here queues behind ``op`` in this process's one writer. An answer through
        another replica may commit first: the intent goes from SUBMITTED to its answer (an agent may answer from
        SUBMITTED), and the mark, when it commits, changes nothing but the attempt it records
        (``op_mark_delivered``). If the process dies first, the intent is still SUBMITTED and is redelivered
        (at-least-once)."""
        task = asyncio.ensure_future(self.store.write_behind(op))
        for intent_id in intent_ids:
            self._delivering[intent_id] = task

        def done(t: asyncio.Future[Any]) -> None:
            for intent_id in intent_ids:
                if self._delivering.get(intent_id) is t:
                    del self._delivering[intent_id]
            if not t.cancelled() and t.exception() is not None:
                log.warning("recording deliveries failed (they will be redelivered): %s", t.exception())

        task.add_done_callback(done)

    async def settled(self, intent_id: str) -> None:
        """Wait until a delivery of ``intent_id`` being recorded (``deliver_behind``) is committed."""
        task = self._delivering.get(intent_id)
        if task is not None:
            self.store.hurry()
            with contextlib.suppress(Exception):
                await asyncio.shield(task)

    async def ensure_workspace_key(self, token: str) -> bool:
        now = self.clock.time()

        def ensure(tx: Tx) -> bool:
            orgs_engine.op_ensure_defaults(tx, self.settings, now)
            return agents_engine.op_ensure_workspace_key(tx, token, now)

        return await self.write(ensure)

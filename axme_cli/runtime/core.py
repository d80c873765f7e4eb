"""The runtime object: store, settings, wake-up hub, key cache and the scheduler loop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

from axme_cli.runtime import principals as pr
from axme_cli.runtime import tracing
from axme_cli.runtime.background import Background
from axme_cli.runtime.engine import agents as agents_engine
from axme_cli.runtime.engine import auth as auth_engine
from axme_cli.runtime.engine import intents as intents_engine
from axme_cli.runtime.errors import TooManyRequests, Unauthorized
from axme_cli.runtime.mailer import DevMailer, Mailer
from axme_cli.runtime.metrics import Metrics
from axme_cli.runtime.notify import Hub
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.ratelimit import Throttle
from axme_cli.runtime.sender import OutboundSender
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Notes, Store, Tx
from axme_cli.runtime.task_mail import TaskMailSender

T = TypeVar("T")
log = logging.getLogger("axme.runtime")


class Runtime:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.hub = Hub()
        self.keys = pr.KeyCache()
        rate = settings.rate_limit_per_second
        self.limiter = pr.RateLimiter(rate) if rate > 0 else None
        self.throttle = Throttle(settings)  # calls without a credential (logins, task-mail links)
        self.mailer: Mailer = DevMailer()  # server.py sets the configured one (dev console + folder, or SMTP)
        self.started_at = time.time()
        self.timers = Timers(self)
        self.sender = OutboundSender(self)  # webhooks and http-binding intents
        self.public_url = ""  # the base of links in mails (server.py sets it)
        self.task_mail = TaskMailSender(self)
        # intent id -> the write recording its delivery, not committed yet (see deliver_behind)
        self._delivering: dict[str, asyncio.Future[Any]] = {}
        self.metrics = Metrics(self)
        self.tracing: tracing.Tracing | None = None  # set by start() when OTEL_EXPORTER_OTLP_ENDPOINT is set

    async def start(self) -> None:
        self.tracing = tracing.from_env(self.settings.service)
        self.store.on_commit = self._on_commit
        self.store.on_batch = self.metrics.commit
        await self.store.open()
        self.timers.start()
        self.sender.start()
        self.task_mail.start()

    async def stop(self) -> None:
        for loop in (self.sender, self.timers, self.task_mail):
            await loop.stop()
        await self.store.close()
        if self.tracing is not None:  # export the spans still queued
            await asyncio.get_running_loop().run_in_executor(None, self.tracing.shutdown)
            self.tracing = None

    def _on_commit(self, notes: Notes) -> None:
        if notes.seen:
            self.metrics.observe(notes.seen)
            if self.tracing is not None:
                self.tracing.observe(notes.seen)
        if notes.keys_changed or notes.everything:
            self.keys.clear()
        if notes.outbound or notes.everything:
            self.sender.wake()
        if notes.mail or notes.everything:
            self.task_mail.wake()
        if notes.everything:
            self.timers.wake()
        else:
            self.timers.wake_before(notes.wake_at)  # only an earlier timer needs to wake it
        self.hub.publish(notes)

    async def write(self, op: Callable[[Tx], T]) -> T:
        return await self.store.write(op)

    def deliver_behind(self, intent_ids: list[str], op: Callable[[Tx], Any]) -> bool:
        """Record deliveries without holding up the frames that carry them (one process only).

        With one runtime process (SQLite) the feed sends its frames as soon as ``op`` is queued, and a read of
        those intents waits for it (``settled``), so an agent that reads an intent it just received still sees
        DELIVERED; its answer queues behind ``op`` in the one writer. If the process dies first, the intent is
        still SUBMITTED and is redelivered (at-least-once). Several replicas (PostgreSQL) cannot share that
        wait, so there the caller awaits the write before sending: returns False."""
        if self.store.kind != "sqlite":
            return False
        task = asyncio.ensure_future(self.store.write(op))
        for intent_id in intent_ids:
            self._delivering[intent_id] = task

        def done(t: asyncio.Future[Any]) -> None:
            for intent_id in intent_ids:
                if self._delivering.get(intent_id) is t:
                    del self._delivering[intent_id]
            if not t.cancelled() and t.exception() is not None:
                log.warning("recording deliveries failed (they will be redelivered): %s", t.exception())

        task.add_done_callback(done)
        return True

    async def settled(self, intent_id: str) -> None:
        """Wait until a delivery of ``intent_id`` being recorded (``deliver_behind``) is committed."""
        task = self._delivering.get(intent_id)
        if task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(task)

    async def ensure_workspace_key(self, token: str) -> bool:
        now = time.time()
        return await self.write(lambda tx: agents_engine.op_ensure_workspace_key(tx, token, now))

    # authentication
    async def authenticate(self, token: str | None) -> Principal:
        """The principal of ``token`` (401 if none), within its rate limit (429 past it)."""
        principal = await self._principal(token)
        if self.limiter is not None:
            wait_s = self.limiter.wait_for(principal.key_id)
            if wait_s > 0:
                self._refuse(wait_s)
        return principal

    def _refuse(self, wait_s: float) -> None:
        assert self.limiter is not None
        retry = max(1, math.ceil(wait_s))
        rate = self.limiter.rate
        raise TooManyRequests(
            f"too many requests for this key (limit {rate:g}/s, bursts of {self.limiter.burst:g}); retry in {retry} s",
            details={"limit_per_second": rate, "burst": self.limiter.burst, "retry_after_seconds": retry,
                     "retryable": True},
            retry_after=retry, limit_per_second=rate,
        )

    async def _principal(self, token: str | None) -> Principal:
        if not token:
            raise Unauthorized("missing API key: send x-api-key or Authorization: Bearer <key>", code="missing_api_key")
        token_hash = pr.hash_token(token)
        cached = self.keys.get(token_hash)
        if cached is not None:
            return cached
        session_token = pr.parse_session_token(token)
        if session_token is not None:
            actor = await self._authenticate_actor(token_hash, *session_token)
            if actor is not None:
                return actor
        lookups = sorted({pr.lookup_of(token), pr.CUSTOM_LOOKUP})
        found = None
        for row in await self.store.keys_by_lookup(lookups):
            if pr.matches(token_hash, row["hash"]):
                found = row
        if found is None and session_token is not None:
            raise Unauthorized("unknown or revoked access token; run `axme login`", code="invalid_actor_token")
        if found is None:
            raise Unauthorized("invalid or revoked API key", code="invalid_platform_api_key")
        principal = await self.key_principal(found)
        valid_for = None
        if found["expires_at"]:  # a cached key must not outlive its expiry
            from axme_cli.runtime.clock import parse_iso

            valid_for = parse_iso(found["expires_at"]) - time.time()
        self.keys.put(token_hash, principal, valid_for=valid_for)
        return principal

    async def key_principal(self, found: dict[str, Any]) -> Principal:
        """Who an API key's row (``kind``, ``status``, ``expires_at``, ...) stands for, if it still works: also
        used by the dashboard, whose sessions keep the key's id, never the key."""
        if found["status"] != "active":
            raise Unauthorized("invalid or revoked API key", code="invalid_platform_api_key")
        if found["expires_at"] and found["expires_at"] <= _iso_now():
            raise Unauthorized("this API key has expired", code="token_expired")
        if found["kind"] == "workspace":
            return Principal("workspace", found["key_id"], self.settings.admin_address)
        sa = await self.store.get_service_account(found["service_account_id"])
        if sa is None or sa["status"] != "active":
            raise Unauthorized("the service account of this key was deleted", code="invalid_platform_api_key")
        return Principal("service_account", found["key_id"], sa["address"], sa["service_account_id"])

    async def _authenticate_actor(self, token_hash: str, kind: str, token_id: str) -> Principal | None:
        """A person's access token (``axme_at_...``); None when no session token has this id."""
        row = await self.store.session_token(token_id)
        if row is None or not pr.matches(token_hash, row["hash"]):
            return None
        if kind != pr.ACCESS or row["kind"] != pr.ACCESS:
            raise Unauthorized("a refresh token is not an access token; send it to POST /v1/auth/refresh",
                               code="invalid_actor_token")
        if row["session_revoked_at"] is not None:
            raise Unauthorized("this session was revoked; run `axme login`", code="invalid_actor_token")
        left = row["expires_ts"] - time.time()
        if left <= 0:
            raise Unauthorized("the access token has expired; refresh it (POST /v1/auth/refresh)",
                               code="token_expired")
        address = auth_engine.actor_address(self.settings, row["email"])
        principal = Principal("actor", row["actor_id"], address, email=row["email"], session_id=row["session_id"])
        self.keys.put(token_hash, principal, valid_for=left)
        return principal


class Timers(Background):
    """Fires due timers (deadlines, redeliveries, retry delays, reminders), sleeping until the earliest one;
    a commit that sets an earlier timer wakes it (``Runtime._on_commit``)."""

    name = "scheduler"

    def __init__(self, rt: Runtime) -> None:
        super().__init__()
        self.rt = rt
        self._last_cleanup = 0.0

    async def step(self) -> float:
        rt, s = self.rt, self.rt.settings
        now = time.time()
        if now - self._last_cleanup > 3600:
            await rt.write(functools.partial(_expire_idempotency, before=now - s.idempotency_ttl_seconds))
            self._last_cleanup = now
        nxt = await rt.store.next_wake()
        now = time.time()
        if nxt is None:
            return 60.0
        if nxt > now:
            return min(60.0, nxt - now)
        rt.metrics.timer_lag(now - nxt)
        fired = await rt.write(lambda tx: intents_engine.op_fire_due(tx, s, time.time()))
        # None fired: another replica holds those rows (PostgreSQL SKIP LOCKED); look again soon, do not spin.
        return 0.0 if fired else 0.05


def _expire_idempotency(tx: Tx, before: float) -> int:
    return tx.idem_expire(before)


def _iso_now() -> str:
    from axme_cli.runtime.clock import iso

    return iso()

"""The runtime object: store, settings, wake-up hub, key cache and the scheduler loop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections.abc import Callable
from typing import TypeVar

from axme_cli.runtime import principals as pr
from axme_cli.runtime.engine import agents as agents_engine
from axme_cli.runtime.engine import auth as auth_engine
from axme_cli.runtime.engine import intents as intents_engine
from axme_cli.runtime.errors import StoreUnavailable, TooManyRequests, Unauthorized
from axme_cli.runtime.mailer import DevMailer, Mailer
from axme_cli.runtime.notify import Hub, wait
from axme_cli.runtime.principals import Principal
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
        self.mailer: Mailer = DevMailer()  # server.py sets the configured one (dev console + folder, or SMTP)
        self.started_at = time.time()
        self._scheduler: asyncio.Task[None] | None = None
        self.sender = OutboundSender(self)  # webhooks and http-binding intents
        self.public_url = ""  # the base of links in mails (server.py sets it)
        self.task_mail = TaskMailSender(self)

    async def start(self) -> None:
        self.store.on_commit = self._on_commit
        await self.store.open()
        self._scheduler = asyncio.create_task(self._schedule(), name="axme-scheduler")
        await self.sender.start()
        self.task_mail.start()

    async def stop(self) -> None:
        await self.sender.stop()
        if self._scheduler is not None:
            self._scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scheduler
        await self.task_mail.stop()
        await self.store.close()

    def _on_commit(self, notes: Notes) -> None:
        if notes.keys_changed or notes.everything:
            self.keys.clear()
        if notes.outbound or notes.everything:
            self.sender.wake.set()
        self.hub.publish(notes)
        if notes.mail or notes.everything:
            self.task_mail.wake()

    async def write(self, op: Callable[[Tx], T]) -> T:
        return await self.store.write(op)

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
            headers={"Retry-After": str(retry), "X-RateLimit-Limit": f"{rate:g}"},
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
        if found is None or found["status"] != "active":
            raise Unauthorized("invalid or revoked API key", code="invalid_platform_api_key")
        if found["expires_at"] and found["expires_at"] <= _iso_now():
            raise Unauthorized("this API key has expired", code="token_expired")
        if found["kind"] == "workspace":
            principal = Principal("workspace", found["key_id"], self.settings.admin_address)
        else:
            sa = await self.store.get_service_account(found["service_account_id"])
            if sa is None or sa["status"] != "active":
                raise Unauthorized("the service account of this key was deleted", code="invalid_platform_api_key")
            principal = Principal("service_account", found["key_id"], sa["address"], sa["service_account_id"])
        valid_for = None
        if found["expires_at"]:  # a cached key must not outlive its expiry
            from axme_cli.runtime.clock import parse_iso

            valid_for = parse_iso(found["expires_at"]) - time.time()
        self.keys.put(token_hash, principal, valid_for=valid_for)
        return principal

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

    # timers
    async def _schedule(self) -> None:
        s = self.settings
        last_cleanup = 0.0
        while True:
            self.hub.scheduler.clear()
            self.hub.scheduler_due = 0.0
            try:
                now = time.time()
                if now - last_cleanup > 3600:
                    await self.write(functools.partial(_expire_idempotency, before=now - s.idempotency_ttl_seconds))
                    last_cleanup = now
                nxt = await self.store.next_wake()
                now = time.time()
                if nxt is not None and nxt <= now:
                    await self.write(lambda tx: intents_engine.op_fire_due(tx, s, time.time()))
                    continue
                timeout = 60.0 if nxt is None else min(60.0, nxt - now)
            except StoreUnavailable as exc:
                log.warning("scheduler: %s", exc.message)
                timeout = 1.0
            except Exception:  # never let the timer loop die
                log.exception("scheduler iteration failed")
                timeout = 1.0
            self.hub.scheduler_due = time.time() + timeout
            await wait(self.hub.scheduler, timeout)


def _expire_idempotency(tx: Tx, before: float) -> int:
    return tx.idem_expire(before)


def _iso_now() -> str:
    from axme_cli.runtime.clock import iso

    return iso()

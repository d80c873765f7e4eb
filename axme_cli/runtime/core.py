"""The runtime object: store, settings, wake-up hub, key cache and the scheduler loop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from axme_cli.runtime import principals as pr
from axme_cli.runtime.engine import agents as agents_engine
from axme_cli.runtime.engine import intents as intents_engine
from axme_cli.runtime.errors import StoreUnavailable, Unauthorized
from axme_cli.runtime.notify import Hub, wait
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Notes, Store, Tx

T = TypeVar("T")
log = logging.getLogger("axme.runtime")


class Runtime:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.hub = Hub()
        self.keys = pr.KeyCache()
        self.started_at = time.time()
        self._scheduler: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self.store.on_commit = self._on_commit
        await self.store.open()
        self._scheduler = asyncio.create_task(self._schedule(), name="axme-scheduler")

    async def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scheduler
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        await self.store.close()

    def _on_commit(self, notes: Notes) -> None:
        if notes.keys_changed:
            self.keys.clear()
        self.hub.publish(notes)

    async def write(self, op: Callable[[Tx], T]) -> T:
        return await self.store.write(op)

    def write_soon(self, op: Callable[[Tx], Any]) -> None:
        """Queue a write whose result nobody waits for (e.g. recording a delivery)."""
        task = asyncio.ensure_future(self.store.write(op))
        self._pending.add(task)
        task.add_done_callback(self._written)

    def _written(self, task: asyncio.Task[Any]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("background write failed: %s", task.exception())

    async def ensure_workspace_key(self, token: str) -> bool:
        now = time.time()
        return await self.write(lambda tx: agents_engine.op_ensure_workspace_key(tx, token, now))

    # authentication
    async def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise Unauthorized("missing API key: send x-api-key or Authorization: Bearer <key>", code="missing_api_key")
        token_hash = pr.hash_token(token)
        cached = self.keys.get(token_hash)
        if cached is not None:
            return cached
        lookups = sorted({pr.lookup_of(token), pr.CUSTOM_LOOKUP})
        found = None
        for row in await self.store.keys_by_lookup(lookups):
            if pr.matches(token_hash, row["hash"]):
                found = row
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
        self.keys.put(token_hash, principal)
        return principal

    # timers
    async def _schedule(self) -> None:
        s = self.settings
        last_cleanup = 0.0
        while True:
            self.hub.scheduler.clear()
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
            await wait(self.hub.scheduler, timeout)


def _expire_idempotency(tx: Tx, before: float) -> int:
    return tx.idem_expire(before)


def _iso_now() -> str:
    from axme_cli.runtime.clock import iso

    return iso()

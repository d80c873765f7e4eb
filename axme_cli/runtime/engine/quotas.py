"""Quotas that hold (AXME's ``quotas.*`` family): a workspace's limits per dimension, enforced where the work comes in.

The dimensions are AXME's (its CLI's ``axme quota show``):

- ``intents_per_day``: intents callers create in a UTC day: direct intents, human tasks, workflows (one per
  apply), schedule runs. A workflow's steps and compensations are the work of a workflow already admitted and are
  not refused. 429 with ``Retry-After`` until the day ends.
- ``rate_limit_per_minute``: authenticated API requests of the workspace in a minute (every key and person
  together). 429 with ``Retry-After`` until the minute ends. (The per-key ``--rate-limit`` is another, per
  replica, limit.) The quota routes and /metrics are never refused, so an operator can always see and change a
  quota, and monitoring goes on.
- ``payload_max_bytes``: the largest payload (its JSON, in bytes) a create or apply may carry: 413.
- ``storage_bytes``: what the workspace stores: every intent's payload and every finalized upload. A create or an
  upload that would pass it: 409. (Nothing is deleted here, so it only grows.)
- ``actors_total``: people who have logged in: a new person's first login past it is 409.
- ``service_accounts_per_workspace``: active service accounts (agents): one too many is 409, also when a
  scenario's ``create_if_missing`` would make it.
- ``sse_streams_max``: intent event streams and agent feeds open at once: 429 with ``Retry-After``.

A refusal is 429/413/409 ``quota_exceeded`` with ``details {dimension, used, limit, reset_at}``, counted in
usage (``refused.<dimension>``) and in ``axme_quota_refusals_total``. With ``overage_mode`` grace or
bill_overage, or ``hard_enforcement`` false, nothing is refused: calls past a limit are counted as overage. A limit
set below what is used already is accepted and applies to new work only: nothing that exists is removed or
stopped.

Every workspace has its own policy, counts and refusals: admission asks the limits of the workspace the work is
of (the operation's scoped settings ``s``; the runtime's default workspace where none is given: people, uploads),
and requests and streams count in the caller's workspace.

What it costs: a runtime without limits pays nothing per intent (``Tx.limits`` is None: no query). With a limit
on intents per day, each create updates one counter row per workspace and day in its transaction (on PostgreSQL
that row is locked until the commit: the creates of one workspace take turns there). With a request rate limit,
PostgreSQL replicas update a row per workspace and minute per request (its commit not waiting for the disk);
one SQLite process counts in memory. The limits live in memory (``Quotas``), read again after a commit that
changed them, here or on another replica (``Notes.quotas``, LISTEN/NOTIFY), and every 10 s on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import functools
import math
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from axme_cli.protocol import quotas as wire
from axme_cli.runtime.clock import Clock, iso
from axme_cli.runtime.engine import audit
from axme_cli.runtime.engine.codec import dumps, loads
from axme_cli.runtime.engine.usage import (
    EVER,
    INTENTS,
    REQUESTS,
    STORED,
    STREAM_STALE_SECONDS,
    STREAMS_OPENED,
    STREAMS_PEAK,
    Counters,
    Pair,
    day_of,
    minute_of,
    next_day,
    next_minute,
    octets,
    overage,
    real_time,
    workspace_of,
)
from axme_cli.runtime.errors import Conflict, DomainError, Forbidden, NotFound, PayloadTooLarge, TooManyRequests
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Row, Store, Tx

RATE = wire.RATE_LIMIT_PER_MINUTE
PAYLOAD = wire.PAYLOAD_MAX_BYTES
STORAGE = wire.STORAGE_BYTES
ACTORS = wire.ACTORS_TOTAL
SERVICE_ACCOUNTS = wire.SERVICE_ACCOUNTS_PER_WORKSPACE
STREAMS = wire.SSE_STREAMS_MAX
DIMENSIONS = wire.DIMENSIONS
DEFAULT_SOFT_THRESHOLD = 80
STREAM_RETRY_SECONDS = 5  # Retry-After of a stream refused: when one may have closed
RELOAD_SECONDS = 10.0  # replicas read the limits again this often (a notification lost anyway)
_ADMITTED = ("usage", INTENTS, 1)  # the fact of an intent admitted where no limit counted it


class QuotaExceeded(TooManyRequests):
    """Past a quota of a window (a day, a minute) or of streams open at once: 429 with Retry-After."""

    code = "quota_exceeded"


class QuotaPayloadTooLarge(PayloadTooLarge):
    code = "quota_exceeded"


class QuotaFull(Conflict):
    """Past a quota of things kept (service accounts, people, stored bytes): nothing frees itself with time."""

    code = "quota_exceeded"


_FULL_FIX = {
    STORAGE: "nothing stored here is deleted: raise the limit (PATCH /v1/quotas)",
    SERVICE_ACCOUNTS: "delete a service account, or raise the limit (PATCH /v1/quotas)",
    ACTORS: "raise the limit (PATCH /v1/quotas)",
}


def exceeded(dimension: str, used: int, limit: int, reset_ts: float | None, now: float) -> DomainError:
    """The refusal of a call past ``limit`` of ``dimension`` (``used`` before the call)."""
    reset_at = iso(reset_ts) if reset_ts is not None else None
    details: dict[str, Any] = {"dimension": dimension, "used": used, "limit": limit, "reset_at": reset_at}
    if dimension == PAYLOAD:
        return QuotaPayloadTooLarge(f"Quota exceeded: {dimension} (this payload is {used} bytes, the limit {limit})",
                                    details={**details, "retryable": False})
    if dimension in _FULL_FIX:
        return QuotaFull(f"Quota exceeded: {dimension} (used {used} of {limit}); {_FULL_FIX[dimension]}",
                         details={**details, "retryable": False})
    retry = max(1, math.ceil(reset_ts - now)) if reset_ts is not None else STREAM_RETRY_SECONDS
    when = f"resets at {reset_at}" if reset_at else f"try again when one has closed (in {retry} s)"
    return QuotaExceeded(f"Quota exceeded: {dimension} (used {used} of {limit}); {when}",
                         details={**details, "retryable": True, "retry_after_seconds": retry}, retry_after=retry)


# ---------------------------------------------------------------------------------------------
# the policy


def policy_id(org_id: str, workspace_id: str) -> str:
    """A workspace has one policy: its id follows from the workspace's (stable before the first change)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"axme:quota-policy:{org_id}/{workspace_id}"))


def default_row(s: Settings, at: str, pair: Pair | None = None) -> Row:
    """The policy of a workspace nobody changed (that of ``s``, or ``pair``): the runtime's defaults (``--quota``
    of ``axme dev`` and ``axme server``; none unless given), the same for every workspace."""
    org, workspace = pair or workspace_of(s)
    return {"org_id": org, "workspace_id": workspace, "quota_policy_id": policy_id(org, workspace),
            "dimensions": dumps(dict(s.quota_defaults)), "soft_threshold_percent": DEFAULT_SOFT_THRESHOLD,
            "hard_enforcement": 1, "overage_mode": "block", "updated_by_actor_id": None, "created_at": at,
            "updated_at": at}


def policy_view(row: Row, *, stored: bool = True) -> dict[str, Any]:
    """``quota_policy`` as AXME answers it: every dimension, ``null`` where there is no limit."""
    dims = loads(row["dimensions"])
    return {
        "quota_policy_id": row["quota_policy_id"], "org_id": row["org_id"], "workspace_id": row["workspace_id"],
        "dimensions": {d: dims.get(d) for d in DIMENSIONS},
        "soft_threshold_percent": int(row["soft_threshold_percent"]),
        "hard_enforcement": bool(row["hard_enforcement"]), "overage_mode": row["overage_mode"],
        "tier": "custom" if dims else "unlimited",
        "enforced": bool(dims) and bool(row["hard_enforcement"]) and row["overage_mode"] == "block",
        "source": "policy" if stored else "defaults",
        "updated_by_actor_id": row["updated_by_actor_id"], "updated_at": row["updated_at"],
    }


@dataclass(frozen=True)
class Limits:
    """The limits in force, as operations see them (``Tx.limits``)."""

    org_id: str
    workspace_id: str
    dims: dict[str, int]
    block: bool  # a call past a limit is refused (else let through and counted as overage)
    counters: Counters = field(compare=False)

    def get(self, dimension: str) -> int | None:
        return self.dims.get(dimension)

    @property
    def pair(self) -> Pair:
        return self.org_id, self.workspace_id


class LimitBook:
    """The limits in force of every workspace (``Store.limits`` -> ``Tx.limits``): a stored policy's, else the
    runtime's defaults. Made only when some workspace has a limit (else ``Tx.limits`` is None: no cost)."""

    def __init__(self, stored: dict[Pair, Limits | None], defaults: Row | None, counters: Counters) -> None:
        self._stored = stored
        self._defaults = defaults  # the default policy's row (its pair is filled in per workspace)
        self._counters = counters
        self._made: dict[Pair, Limits | None] = {}
        self.home = counters.home

    def of(self, pair: Pair | None) -> Limits | None:
        """The limits of the workspace ``pair`` (None: the runtime's default one); None: it has none."""
        pair = pair or self.home
        if pair in self._stored:
            return self._stored[pair]
        if self._defaults is None:
            return None
        if pair not in self._made:  # one object per workspace (a dict write is atomic: a race makes two alike)
            self._made[pair] = limits_of({**self._defaults, "org_id": pair[0], "workspace_id": pair[1]},
                                         self._counters)
        return self._made[pair]


def limits_in(tx: Tx, s: Settings | None) -> Limits | None:
    """The limits of the workspace of ``s`` (None: the runtime's default one) this transaction sees."""
    book: LimitBook | None = tx.limits
    return book.of(workspace_of(s) if s is not None else None) if book is not None else None


def limits_of(row: Row, counters: Counters) -> Limits | None:
    dims = {k: int(v) for k, v in loads(row["dimensions"]).items() if k in DIMENSIONS and v is not None}
    if not dims:
        return None
    return Limits(row["org_id"], row["workspace_id"], dims,
                  bool(row["hard_enforcement"]) and row["overage_mode"] == "block", counters)


def check_workspace(s: Settings, org_id: Any, workspace_id: Any) -> None:
    """``org_id`` / ``workspace_id`` may be left out; given, they must name this runtime's (404: another
    organisation's or workspace's existence is not revealed)."""
    for name, given, mine in (("org_id", org_id, s.org), ("workspace_id", workspace_id, s.workspace)):
        if given not in (None, "", mine):
            raise NotFound(f"{name} {str(given)[:100]!r} does not exist here", code=f"{name.split('_')[0]}_not_found",
                           details={"field": name})


def op_update(tx: Tx, s: Settings, principal: Principal, req: dict[str, Any], now: float) -> dict[str, Any]:
    """PATCH /v1/quotas: the workspace admin key changes the limits given (``null``: no limit), keeping the
    others. A limit below what is used already is accepted: it applies to new work only."""
    if not principal.is_admin:
        who = "a person's login" if principal.is_actor else "an agent key"
        raise Forbidden(f"changing quotas needs the workspace API key, not {who}", code="policy_denied")
    check_workspace(s, req.get("org_id"), req.get("workspace_id"))
    org, workspace = workspace_of(s)  # the caller's workspace: its own policy
    at = iso(now)
    row = tx.get_quota_policy(org, workspace) or default_row(s, at)
    dims = loads(row["dimensions"])
    for name, value in (req.get("dimensions") or {}).items():
        if value is None:
            dims.pop(name, None)
        else:
            dims[name] = value
    row = {**row, "dimensions": dumps({d: dims[d] for d in DIMENSIONS if d in dims}), "updated_at": at,
           "updated_by_actor_id": req.get("updated_by_actor_id") or principal.address}
    for name in ("soft_threshold_percent", "overage_mode"):
        if req.get(name) is not None:
            row[name] = req[name]
    if req.get("hard_enforcement") is not None:
        row["hard_enforcement"] = 1 if req["hard_enforcement"] else 0
    tx.put_quota_policy(row)
    tx.notes.quotas = True
    audit.by(tx, "quota.updated", now, principal, target=("quota_policy", row["quota_policy_id"]),
             dimensions=req.get("dimensions"), overage_mode=req.get("overage_mode"),
             hard_enforcement=req.get("hard_enforcement"))
    return policy_view(row)


# ---------------------------------------------------------------------------------------------
# admission, inside the operations that make new work


def _past(tx: Tx, limits: Limits, dimension: str, used: int, limit: int, reset_ts: float | None,
          now: float) -> None:
    """A call past ``limit``: refused (and counted) when the policy blocks; else let through, counted as
    overage if it commits."""
    if limits.block:
        err = exceeded(dimension, used, limit, reset_ts, now)
        # Counted when the call is answered (``count_refusal``), not here: an operation may run more than once
        # before its answer (PostgreSQL runs a batch's operations again one by one when one of them refuses).
        err.refusal = (limits.counters, dimension, limits.pair)  # type: ignore[attr-defined]
        raise err
    tx.notes.see(("usage", overage(dimension), 1, limits.pair))


def count_refusal(exc: Exception) -> None:
    """Count the refusal ``exc`` carries, once (the API calls this for every error it answers)."""
    refusal = getattr(exc, "refusal", None)
    if refusal is not None:
        exc.refusal = None  # type: ignore[attr-defined]
        counters, dimension, pair = refusal
        counters.refused(dimension, pair)


def admit_intent(tx: Tx, s: Settings, payload: Any, now: float) -> None:
    """An intent a caller creates (``intents.op_create``, ``workflows.op_apply``): its payload's size, the bytes
    stored, and today's count of intents, against the limits of the workspace of ``s``. With no limit set this
    asks nothing and writes nothing (the intent is counted in memory when it commits)."""
    limits = limits_in(tx, s)
    if limits is None:
        tx.notes.see((*_ADMITTED, workspace_of(s)))
        return
    size_limit, storage_limit = limits.get(PAYLOAD), limits.get(STORAGE)
    if size_limit is not None or storage_limit is not None:
        size = octets(dumps(payload))
        if size_limit is not None and size > size_limit:
            _past(tx, limits, PAYLOAD, size, size_limit, None, now)
        if storage_limit is not None:
            check_storage(tx, limits, size, storage_limit, now)
    limit = limits.get(INTENTS)
    if limit is None:
        tx.notes.see((*_ADMITTED, limits.pair))
        return
    org, workspace, day = limits.org_id, limits.workspace_id, day_of(now)
    taken = tx.take_usage(org, workspace, INTENTS, day, 1, limit if limits.block else None)
    if taken is None:
        _past(tx, limits, INTENTS, tx.usage_value(org, workspace, INTENTS, day), limit, next_day(now), now)
    elif taken > limit:
        tx.notes.see(("usage", overage(INTENTS), 1, limits.pair))


def check_storage(tx: Tx, limits: Limits, size: int, limit: int, now: float) -> None:
    """``size`` more bytes stored: within ``limit``? Against the stored bytes as counted so far (the row, and what
    this process counted and has not added yet; other replicas add theirs every few seconds)."""
    used = (tx.usage_value(limits.org_id, limits.workspace_id, STORED, EVER)
            + limits.counters.pending(STORED, EVER, limits.pair))
    if used + size > limit:
        _past(tx, limits, STORAGE, used, limit, None, now)


def admit_upload(tx: Tx, size: int, now: float, s: Settings | None = None) -> None:
    """An upload of ``size`` bytes (as declared at create-upload) against the storage limit of the workspace of
    ``s`` (None: the default one)."""
    limits = limits_in(tx, s)
    limit = limits.get(STORAGE) if limits is not None else None
    if limits is not None and limit is not None:
        check_storage(tx, limits, size, limit, now)


def _admit_one_more(tx: Tx, s: Settings | None, dimension: str, count: Callable[[Limits], int],
                    now: float) -> None:
    limits = limits_in(tx, s)
    limit = limits.get(dimension) if limits is not None else None
    if limits is None or limit is None:
        return
    tx.exclusive(f"quota:{dimension}:{limits.org_id}/{limits.workspace_id}")  # replicas count in turn
    used = count(limits)
    if used + 1 > limit:
        _past(tx, limits, dimension, used, limit, None, now)


def admit_service_account(tx: Tx, now: float, s: Settings | None = None) -> None:
    """One more active service account (``agents.op_create_service_account``) in the workspace of ``s``."""
    _admit_one_more(tx, s, SERVICE_ACCOUNTS, lambda lim: tx.count_service_accounts(lim.org_id, lim.workspace_id), now)


def admit_actor(tx: Tx, now: float) -> None:
    """A person logging in for the first time (``auth.op_verify_login``): people are the runtime's, counted
    against the default workspace's limit."""
    _admit_one_more(tx, None, ACTORS, lambda lim: tx.count_actors(), now)


def op_take_request(tx: Tx, org_id: str, workspace_id: str, minute: str, limit: int | None) -> tuple[bool, int]:
    """One request of the minute, on the shared count (replicas): (taken, the count with it, or as it stands when
    ``limit`` refuses it)."""
    tx.lazy_commit()
    taken = tx.take_usage(org_id, workspace_id, REQUESTS, minute, 1, limit)
    if taken is None:
        return False, tx.usage_value(org_id, workspace_id, REQUESTS, minute)
    return True, taken


def op_open_stream(tx: Tx, org_id: str, workspace_id: str, replica_id: str, mine: int, limit: int | None,
                   now: float) -> tuple[bool, int]:
    """One more stream on this replica, which holds ``mine``: (admitted, streams open with it) against the counts
    of the replicas heard from in the last STREAM_STALE_SECONDS. Opens of one workspace take turns."""
    tx.exclusive(f"quota:{STREAMS}:{org_id}/{workspace_id}")
    total = tx.streams_elsewhere(org_id, workspace_id, replica_id, now - STREAM_STALE_SECONDS) + mine + 1
    if limit is not None and total > limit:
        return False, total
    tx.set_streams(org_id, workspace_id, replica_id, mine + 1, now)
    return True, total


def op_set_streams(tx: Tx, org_id: str, workspace_id: str, replica_id: str, mine: int, now: float) -> None:
    tx.set_streams(org_id, workspace_id, replica_id, mine, now)


# ---------------------------------------------------------------------------------------------
# the process's side: the limits in memory, requests and streams


class Quotas:
    """The limits in force in this process, and the counts that are kept here, per workspace: requests of the
    current minute (SQLite: the one process sees them all) and the SSE streams this process holds open.

    The limits (``LimitBook``) are also handed to every transaction (``Store.limits`` -> ``Tx.limits``), so
    operations check them without asking the database. They are read again (every workspace's policy, one query)
    after a commit that changed a policy (``invalidate``), here or on another replica, and every RELOAD_SECONDS
    on PostgreSQL."""

    def __init__(self, store: Store, settings: Settings, clock: Clock, counters: Counters,
                 started_at: float) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self.counters = counters
        self.shared = getattr(store, "kind", "sqlite") != "sqlite"  # replicas: the counts that enforce are rows
        self.replica_id = str(getattr(store, "replica_id", "") or "local")
        self._started = iso(started_at)
        self.book: LimitBook | None = None
        self._generation = 0
        self._loaded_at = 0.0  # real time
        self._tasks: set[asyncio.Task[None]] = set()
        self._minute, self._day, self._minute_ends = "", "", 0.0
        self._minute_counts: dict[Pair, int] = {}
        self._streams: dict[Pair, int] = {}  # /v1 SSE streams this process holds open, per workspace
        self._streams_written: dict[Pair, float] = {}  # real time this replica last wrote a workspace's count
        self._streams_dirty: set[Pair] = set()
        self._stream_turns: asyncio.Lock | None = None

    @property
    def streams(self) -> int:
        """The /v1 SSE streams this process holds open, of every workspace."""
        return sum(self._streams.values())

    def streams_of(self, pair: Pair) -> int:
        return self._streams.get(pair, 0)

    def _pair(self, s: Settings | None) -> Pair:
        return workspace_of(s) if s is not None else self.counters.home

    def limits_of(self, s: Settings | None) -> Limits | None:
        book = self.book
        return book.of(self._pair(s)) if book is not None else None

    # the limits
    def _apply(self, rows: list[Row]) -> None:
        stored = {(r["org_id"], r["workspace_id"]): limits_of(r, self.counters) for r in rows}
        defaults = default_row(self._settings, self._started)
        has_defaults = limits_of(defaults, self.counters) is not None
        if any(v is not None for v in stored.values()) or has_defaults:
            self.book = LimitBook(stored, defaults if has_defaults else None, self.counters)
        else:
            self.book = None
        self._store.limits = self.book

    async def reload(self) -> None:
        generation = self._generation
        rows = await self._store.read_quota_policies()
        if generation == self._generation:  # else a later change is being read: that read decides
            self._apply(rows)
            self._loaded_at = real_time()

    def invalidate(self) -> None:
        """A commit changed a policy (here or on another replica): read them again."""
        self._generation += 1
        task = asyncio.ensure_future(self._reload_logged())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reload_logged(self) -> None:
        try:
            await self.reload()
        except Exception:  # the next invalidate or the periodic read tries again
            import logging

            logging.getLogger("axme.runtime").warning("reading the quota policy failed", exc_info=True)

    # requests
    def request(self, s: Settings | None = None, *, refusable: bool = True) -> Awaitable[None] | None:
        """Count an authenticated request of the workspace of ``s`` (None: the default one); past its
        ``rate_limit_per_minute`` refuse it (QuotaExceeded). None when nothing is left to wait for (SQLite, or no
        limit: all in memory); else the shared count's write."""
        now = self._clock.time()
        if now >= self._minute_ends:
            self._minute, self._day = minute_of(now), day_of(now)
            self._minute_ends, self._minute_counts = next_minute(now), {}
        pair = self._pair(s)
        limits = self.limits_of(s)
        limit = limits.get(RATE) if limits is not None and refusable else None
        counters = self.counters
        used = self._minute_counts.get(pair, 0)
        if limits is None or limit is None:
            self._minute_counts[pair] = used + 1
            counters.add_both(REQUESTS, self._day, self._minute, pair)
            return None
        if self.shared:
            return self._take_shared(limits, limit, self._minute, self._day, now)
        if used + 1 > limit:
            if limits.block:
                counters.refused(RATE, pair)
                raise exceeded(RATE, used, limit, self._minute_ends, now)
            counters.add(overage(RATE), self._day, pair=pair)
        self._minute_counts[pair] = used + 1
        counters.add(REQUESTS, self._day, pair=pair)
        counters.add(REQUESTS, self._minute, pair=pair)
        return None

    async def _take_shared(self, limits: Limits, limit: int, minute: str, day: str, now: float) -> None:
        op = functools.partial(op_take_request, org_id=limits.org_id, workspace_id=limits.workspace_id,
                               minute=minute, limit=limit if limits.block else None)
        taken, used = await self._store.write(op)
        if not taken:
            self.counters.refused(RATE, limits.pair)
            raise exceeded(RATE, used, limit, next_minute(now), now)
        if used > limit:
            self.counters.add(overage(RATE), day, pair=limits.pair)
        self.counters.add(REQUESTS, day, pair=limits.pair)

    # SSE streams
    async def open_stream(self, s: Settings | None = None) -> Callable[[], None]:
        """Count a stream opening in the workspace of ``s`` (None: the default one); past its ``sse_streams_max``
        refuse it (QuotaExceeded). Returns what to call when it closes."""
        now = self._clock.time()
        day = day_of(now)
        pair = self._pair(s)
        self.counters.add(STREAMS_OPENED, day, pair=pair)
        limits = self.limits_of(s)
        limit = limits.get(STREAMS) if limits is not None else None
        if limits is None or limit is None:
            self._streams[pair] = self.streams_of(pair) + 1
            self.counters.peak(STREAMS_PEAK, day, self.streams_of(pair), pair)
            return self._closer(pair)
        if self._stream_turns is None:
            self._stream_turns = asyncio.Lock()
        async with self._stream_turns:  # this process's opens one at a time: each counts the one before
            mine = self.streams_of(pair)
            if self.shared:
                op = functools.partial(op_open_stream, org_id=limits.org_id, workspace_id=limits.workspace_id,
                                       replica_id=self.replica_id, mine=mine,
                                       limit=limit if limits.block else None, now=real_time())
                admitted, total = await self._store.write(op)
                self._streams_written[pair] = real_time()
            else:
                total = mine + 1
                admitted = total <= limit or not limits.block
            if not admitted:
                self.counters.refused(STREAMS, pair)
                raise exceeded(STREAMS, total - 1, limit, None, now)
            if total > limit:
                self.counters.add(overage(STREAMS), day, pair=pair)
            self._streams[pair] = self.streams_of(pair) + 1
            self.counters.peak(STREAMS_PEAK, day, total, pair)
        return self._closer(pair)

    def _limits_streams(self, pair: Pair) -> bool:
        book = self.book
        limits = book.of(pair) if book is not None else None
        return limits is not None and limits.get(STREAMS) is not None

    def _closer(self, pair: Pair) -> Callable[[], None]:
        closed = False

        def close() -> None:
            nonlocal closed
            if closed:
                return
            closed = True
            self._streams[pair] = self.streams_of(pair) - 1
            if self.shared and self._limits_streams(pair):
                task = asyncio.ensure_future(self._write_closed(pair))  # the other replicas count one fewer now
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        return close

    async def _write_closed(self, pair: Pair) -> None:
        if self._stream_turns is None:
            self._stream_turns = asyncio.Lock()
        try:
            async with self._stream_turns:  # in turn with opens, so the count written last is the latest
                await self.write_streams(pair)
        except Exception:  # the next pass of the flusher writes it
            self._streams_dirty.add(pair)

    # housekeeping (each pass of the usage flusher)
    async def housekeeping(self) -> None:
        """Replicas: write this replica's stream count of each workspace whose streams are limited (when it
        changed, and often enough to count as alive), and read the limits again now and then."""
        if not self.shared:
            return
        now = real_time()
        due = [p for p in set(self._streams) | self._streams_dirty if self._limits_streams(p) and (
            p in self._streams_dirty or now - self._streams_written.get(p, 0.0) > STREAM_STALE_SECONDS / 3)]
        if due:
            if self._stream_turns is None:
                self._stream_turns = asyncio.Lock()
            async with self._stream_turns:
                for pair in due:
                    await self.write_streams(pair)
        if now - self._loaded_at >= RELOAD_SECONDS:
            await self.reload()

    async def write_streams(self, pair: Pair | None = None, now: float | None = None, *,
                            mine: int | None = None) -> None:
        org, workspace = pair or self.counters.home
        self._streams_dirty.discard((org, workspace))
        when = real_time() if now is None else now
        count = self.streams_of((org, workspace)) if mine is None else mine
        await self._store.write(functools.partial(op_set_streams, org_id=org, workspace_id=workspace,
                                                  replica_id=self.replica_id, mine=count, now=when))
        self._streams_written[(org, workspace)] = when

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self.shared:  # this replica holds no stream any more
            for pair in list(self._streams_written):
                await self.write_streams(pair, mine=0)

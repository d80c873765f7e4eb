"""Usage: what the runtime did, per workspace, counted as it happened (AXME's ``usage.*`` family).

Counters are rows of ``usage_counters``: (counter, period) -> value, a period being a UTC day (``2026-05-01``), a
minute (``2026-05-01T12:34``) or ``*`` (ever). They are counted in two ways, never both for one event:

- in memory (``Counters``), from what a committed transaction noted (``Notes.seen``: an intent created, a
  delivery, an upload finalized) and what the API saw (a request, a stream opened, a refusal), and added to the
  rows by the process that counted them every ``usage_flush_seconds`` (``Flusher``) and before every usage read.
  Nothing is written per intent: a create costs a few dict updates. A process that dies loses what it had not
  flushed yet (at most those seconds); the daily rollup counts the intents of past days again from their rows.
- in the transaction of the call itself, when a quota limits that counter (engine/quotas.py): the count that
  enforces a limit is the row, shared by every replica (``UPDATE ... RETURNING``).

What is kept as a level, not counted: service accounts and people (their rows), and the SSE streams open (each
process knows its own; with a limit on them, replicas write theirs to ``quota_streams``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from axme_cli.protocol import quotas as wire
from axme_cli.runtime import scope
from axme_cli.runtime.background import Background
from axme_cli.runtime.clock import SYSTEM, Clock, iso
from axme_cli.runtime.store.base import Row, Store, Tx

if TYPE_CHECKING:
    from axme_cli.runtime.settings import Settings

# Counters (the ``counter`` column). Day periods unless said otherwise.
INTENTS = "intents_per_day"  # intents callers created: direct intents, human tasks, workflows, schedule runs
INTENTS_CREATED = "intents_created"  # every intent row: also workflow steps and compensations
DELIVERIES = "deliveries"  # delivery attempts handed to an agent (intent.delivered)
REQUESTS = "requests"  # authenticated API requests; also per minute
REQUESTS_PEAK = "requests_peak_minute"  # the busiest minute of a day (folded from the minutes)
PAYLOAD_MAX = "payload_max_bytes"  # the largest payload callers sent (largest value, not a sum)
PAYLOAD_BYTES = "payload_bytes"  # the bytes of the payloads callers sent
STORED = "storage_bytes"  # period '*': bytes stored (every intent's payload, finalized uploads)
STORED_ADDED = "storage_added"  # bytes stored that day
STREAMS_OPENED = "sse_streams_opened"  # intent event streams and agent feeds opened
STREAMS_PEAK = "sse_streams_peak"  # the most open at once (largest value)
EVER = "*"
STREAM_STALE_SECONDS = 30.0  # a replica that has not written its stream count for this long (real time) holds none
MAXED = frozenset({PAYLOAD_MAX, STREAMS_PEAK, REQUESTS_PEAK})  # counters that keep the largest value
MESH_EVENTS_KEPT_DAYS = 30  # the mesh's events (kills, resumes, health changes) are dropped after this long


def workspace_of(s: Settings) -> tuple[str, str]:
    """The org and workspace a call counts in (``s``: the caller's scoped settings, ``scope.settings_for``)."""
    return s.org, s.workspace


def refused(dimension: str) -> str:
    """The counter of calls a quota refused."""
    return f"refused.{dimension}"


def overage(dimension: str) -> str:
    """The counter of calls let through past a limit (overage_mode grace or bill_overage, or no hard
    enforcement)."""
    return f"overage.{dimension}"


def day_of(ts: float) -> str:
    return iso(ts)[:10]


def minute_of(ts: float) -> str:
    return iso(ts)[:16]


def day_start(day: str) -> float:
    return datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp()


def next_day(ts: float) -> float:
    """When the UTC day of ``ts`` ends."""
    return day_start(day_of(ts)) + 86400.0


def next_minute(ts: float) -> float:
    return (int(ts) // 60 + 1) * 60.0


def days_back(ts: float, n: int) -> list[str]:
    """The ``n`` UTC days that end with the day of ``ts``, oldest first."""
    last = date.fromisoformat(day_of(ts))
    return [(last - timedelta(days=i)).isoformat() for i in range(n - 1, -1, -1)]


def window_start(ts: float, window: str) -> str:
    """The first day of the calendar ``window`` (day, week from Monday, month) that holds ``ts``."""
    today = date.fromisoformat(day_of(ts))
    if window == "week":
        return (today - timedelta(days=today.weekday())).isoformat()
    if window == "month":
        return today.replace(day=1).isoformat()
    return today.isoformat()


def window_end(start: str, window: str) -> str:
    first = date.fromisoformat(start)
    if window == "week":
        return (first + timedelta(days=7)).isoformat()
    if window == "month":
        return (first.replace(year=first.year + 1, month=1) if first.month == 12
                else first.replace(month=first.month + 1)).isoformat()
    return (first + timedelta(days=1)).isoformat()


def octets(text: str) -> int:
    """The bytes ``text`` takes as UTF-8 (what both databases store)."""
    return len(text) if text.isascii() else len(text.encode())


def _admitted(doc: dict[str, Any]) -> bool:
    """An intent a caller created (direct, a human task, a workflow's parent), not a workflow's own step."""
    return not doc.get("workflow_id") or bool(doc.get("workflow_parent"))


Pair = tuple[str, str]  # (org_id, workspace_id)
Sums = dict[tuple[str, str], int]  # (counter, period) -> value


class Counters:
    """What this process counted and has not added to the rows yet, per workspace (``pair``; None: ``home``, the
    runtime's default workspace, for what names none). Thread-safe: refusals are counted inside operations, which
    run on the PostgreSQL store's writer threads."""

    def __init__(self, clock: Clock = SYSTEM, on_refused: Callable[[str], None] | None = None,
                 home: Pair = ("local", "dev")) -> None:
        self._clock = clock
        self.home = home
        self._lock = threading.Lock()
        self._sums: dict[Pair, Sums] = {}
        self._maxes: dict[Pair, Sums] = {}
        self._on_refused = on_refused

    def add(self, counter: str, period: str, n: int = 1, pair: Pair | None = None) -> None:
        with self._lock:
            self._add_held(pair, counter, period, n)

    def add_both(self, counter: str, day: str, minute: str, pair: Pair | None = None) -> None:
        """One more of ``counter`` in its ``day`` and in its ``minute`` (each request: one take of the lock)."""
        with self._lock:
            self._add_held(pair, counter, day, 1)
            self._add_held(pair, counter, minute, 1)

    def _add_held(self, pair: Pair | None, counter: str, period: str, n: int) -> None:
        """``add``, with the lock held by the caller."""
        sums = self._sums.setdefault(pair or self.home, {})
        sums[counter, period] = sums.get((counter, period), 0) + n

    def peak(self, counter: str, period: str, n: int, pair: Pair | None = None) -> None:
        key = (counter, period)
        with self._lock:
            maxes = self._maxes.setdefault(pair or self.home, {})
            if n > maxes.get(key, -1):
                maxes[key] = n

    def refused(self, dimension: str, pair: Pair | None = None) -> None:
        self.add(refused(dimension), day_of(self._clock.time()), pair=pair)
        if self._on_refused is not None:
            self._on_refused(dimension)

    def pending(self, counter: str, period: str, pair: Pair | None = None) -> int:
        with self._lock:
            return self._sums.get(pair or self.home, {}).get((counter, period), 0)

    def pending_max(self, counter: str, period: str, pair: Pair | None = None) -> int:
        with self._lock:
            return self._maxes.get(pair or self.home, {}).get((counter, period), 0)

    def snapshot(self, pair: Pair | None = None) -> tuple[Sums, Sums]:
        """Copies of what is held now for one workspace."""
        with self._lock:
            return dict(self._sums.get(pair or self.home, {})), dict(self._maxes.get(pair or self.home, {}))

    def take(self) -> dict[Pair, tuple[Sums, Sums]]:
        """Everything held, per workspace, now no longer held."""
        with self._lock:
            sums, maxes = self._sums, self._maxes
            self._sums, self._maxes = {}, {}
        return {pair: (sums.get(pair, {}), maxes.get(pair, {})) for pair in sums.keys() | maxes.keys()}

    def put_back(self, taken: dict[Pair, tuple[Sums, Sums]]) -> None:
        """What a flush that failed had taken: counted again with what came meanwhile."""
        for pair, (sums, maxes) in taken.items():
            for (counter, period), n in sums.items():
                self.add(counter, period, n, pair)
            for (counter, period), n in maxes.items():
                self.peak(counter, period, n, pair)

    def observe(self, seen: Iterable[tuple[Any, ...]]) -> None:
        """Facts of a committed transaction (``Notes.seen``), on the event loop after the commit. An intent counts
        in the workspace its fact (``("created", doc, size, pair)``) or doc (``org_id`` / ``workspace_id``) names, a
        fact ``("usage", counter, n, pair)`` in ``pair``; what names none in ``home``."""
        # Summed here first, then added under one take of the lock (a batch's facts are dozens of counts).
        sums: dict[tuple[Pair | None, str, str], int] = {}
        peaks: list[tuple[str, str, int, Pair | None]] = []
        day = ""
        for fact in seen:
            what = fact[0]
            if what not in ("created", "delivered", "usage", "stored"):
                continue
            if not day:
                day = day_of(self._clock.time())
            if what == "created":  # ("created", doc, size[, pair])
                doc, size = fact[1], fact[2] if len(fact) > 2 else 0
                pair = fact[3] if len(fact) > 3 and fact[3] else _pair_of_doc(doc)
                key = (pair, INTENTS_CREATED, day)
                sums[key] = sums.get(key, 0) + 1
                if size:
                    for key in ((pair, STORED, EVER), (pair, STORED_ADDED, day)):
                        sums[key] = sums.get(key, 0) + size
                if _admitted(doc):
                    key = (pair, PAYLOAD_BYTES, day)
                    sums[key] = sums.get(key, 0) + size
                    peaks.append((PAYLOAD_MAX, day, size, pair))
            elif what == "delivered":
                key = (None, DELIVERIES, day)
                sums[key] = sums.get(key, 0) + 1
            elif what == "stored":  # ("stored", n[, pair])
                pair = fact[2] if len(fact) > 2 else None
                for key in ((pair, STORED, EVER), (pair, STORED_ADDED, day)):
                    sums[key] = sums.get(key, 0) + fact[1]
            else:  # ("usage", counter, n[, pair]): counted by an operation in memory (no limit applied to it)
                key = (fact[3] if len(fact) > 3 else None, fact[1], day)
                sums[key] = sums.get(key, 0) + fact[2]
        if sums:
            with self._lock:
                for (pair, counter, period), n in sums.items():
                    self._add_held(pair, counter, period, n)
        for counter, period, n, pair in peaks:
            self.peak(counter, period, n, pair)


def _pair_of_doc(doc: dict[str, Any]) -> Pair | None:
    org, workspace = doc.get("org_id"), doc.get("workspace_id")
    return (org, workspace) if isinstance(org, str) and isinstance(workspace, str) else None


# ---------------------------------------------------------------------------------------------
# operations


def op_flush(tx: Tx, org_id: str, workspace_id: str, sums: Sums, maxes: Sums) -> None:
    """Add what a process counted for one workspace to its rows."""
    added = [(counter, period, n) for (counter, period), n in sorted(sums.items()) if n]
    if added:
        tx.add_usages(org_id, workspace_id, added)
    raised = [(counter, period, n) for (counter, period), n in sorted(maxes.items())]
    if raised:
        tx.add_usages(org_id, workspace_id, raised, "max")


def op_flush_all(tx: Tx, taken: dict[Pair, tuple[Sums, Sums]], fold_before: str | None, now: float) -> None:
    """``op_flush`` of each workspace's counts; with ``fold_before`` (once a day) the minutes of every workspace
    that has some are folded, and mesh events older than MESH_EVENTS_KEPT_DAYS are dropped (retention, as the
    minutes of requests are)."""
    for (org_id, workspace_id), (sums, maxes) in sorted(taken.items()):
        op_flush(tx, org_id, workspace_id, sums, maxes)
    if fold_before is not None:
        for org_id, workspace_id in tx.minute_workspaces(REQUESTS, fold_before):
            fold_minutes(tx, org_id, workspace_id, fold_before)
        tx.prune_mesh_events(uuid7_floor(now - MESH_EVENTS_KEPT_DAYS * 86400.0))


def uuid7_floor(ts: float) -> str:
    """The lowest UUIDv7 of the millisecond ``ts``: ids below it were made before (their first 48 bits are the
    time)."""
    hexed = f"{int(ts * 1000):012x}"
    return f"{hexed[:8]}-{hexed[8:]}-7000-8000-000000000000"


def fold_minutes(tx: Tx, org_id: str, workspace_id: str, before: str) -> list[Row]:
    peaks = tx.minute_peaks(org_id, workspace_id, REQUESTS, before)
    for row in peaks:
        tx.add_usage(org_id, workspace_id, REQUESTS_PEAK, row["day"], int(row["peak"]), "max")
    tx.drop_minutes(org_id, workspace_id, REQUESTS, before)
    return peaks


def op_count_stored(tx: Tx, s: Settings) -> bool:
    """Start the ever-count of stored bytes of the workspace of ``s`` from its rows, once per database (the first
    start that has usage counters): True when it counted. Runs before the runtime serves, so nothing of this
    process is counted twice; replicas starting together take turns."""
    org_id, workspace_id = workspace_of(s)
    tx.exclusive(f"usage-stored:{org_id}/{workspace_id}")
    if tx.has_usage(org_id, workspace_id, STORED, EVER):
        return False
    tx.set_usage(org_id, workspace_id, STORED, EVER, tx.stored_bytes(*scope.pair(s)))
    return True


def op_rollup(tx: Tx, s: Settings, days: list[str], now: float) -> list[dict[str, Any]]:
    """The daily rollup of the workspace of ``s`` for the days given that have ended: each day's intents of that
    workspace counted again from their rows (``intents_created``: what a process that died before it flushed had
    not added), and the minutes of requests folded into the day's busiest one."""
    today = day_of(now)
    ended = [d for d in days if d < today]
    if not ended:
        return []
    org_id, workspace_id = workspace_of(s)
    tx.exclusive(f"usage-rollup:{org_id}/{workspace_id}")
    from_rows = {r["day"]: r for r in tx.intents_by_day(*scope.pair(s), ended[0], today)}
    fold_minutes(tx, org_id, workspace_id, today)
    out = []
    for day in ended:
        row = from_rows.get(day)
        created = int(row["n"]) if row else 0
        tx.set_usage(org_id, workspace_id, INTENTS_CREATED, day, created)
        out.append({"day": day, "intents_created": created,
                    "intent_payload_bytes": int(row["bytes"]) if row else 0,
                    "requests_peak_minute": tx.usage_value(org_id, workspace_id, REQUESTS_PEAK, day)})
    return out


# ---------------------------------------------------------------------------------------------
# reading usage: the rows, and what this process has not added to them yet


SUMMED = (INTENTS, INTENTS_CREATED, DELIVERIES, REQUESTS, PAYLOAD_BYTES, STORED_ADDED, STREAMS_OPENED)
DIMENSIONS = wire.DIMENSIONS


def counters_read() -> list[str]:
    return [*SUMMED, *MAXED, STORED, *(refused(d) for d in DIMENSIONS), *(overage(d) for d in DIMENSIONS)]


@dataclass
class Report:
    """Counters of a range of days (and their minutes, and ``*``), with what this process still holds; and the
    levels kept as rows: active service accounts, people, and the streams open (other replicas' plus this one's)."""

    values: dict[tuple[str, str], int]
    service_accounts: int
    actors: int
    streams: int

    def get(self, counter: str, period: str) -> int:
        return self.values.get((counter, period), 0)

    def total(self, counter: str, days: list[str]) -> int:
        return sum(self.get(counter, d) for d in days)

    def largest(self, counter: str, days: list[str]) -> int:
        return max((self.get(counter, d) for d in days), default=0)

    def busiest_minute(self, day: str) -> int:
        """The most requests in one minute of ``day``: its folded peak, or its minutes (not folded yet)."""
        minutes = [v for (c, p), v in self.values.items() if c == REQUESTS and len(p) == 16 and p.startswith(day)]
        return max([self.get(REQUESTS_PEAK, day), *minutes])


async def read_report(reads: Any, org_id: str, workspace_id: str, counters: Counters, first_day: str, now: float,
                      *, replica_id: str, local_streams: int) -> Report:
    """The workspace's counters from ``first_day`` to now (the rows, plus what this process has not flushed)."""
    rows = await reads.usage_rows(org_id, workspace_id, counters_read(), first_day, minute_of(now))
    values = {(r["counter"], r["period"]): int(r["value"]) for r in rows}
    pending_sums, pending_maxes = counters.snapshot((org_id, workspace_id))
    for key, n in pending_sums.items():
        values[key] = values.get(key, 0) + n
    for key, n in pending_maxes.items():
        values[key] = max(values.get(key, 0), n)
    levels = await reads.usage_counts(org_id, workspace_id, replica_id, real_time() - STREAM_STALE_SECONDS)
    return Report(values, levels["service_accounts"], levels["actors"], levels["streams"] + local_streams)


def dimension_usage(report: Report, days: list[str]) -> dict[str, dict[str, int]]:
    """Per quota dimension over ``days`` (the last is today): ``used`` (what the quota is held to: intents
    created, the busiest minute's requests, the largest payload; stored bytes, people, service accounts and streams
    open now), ``refused`` and ``overage``; and ``peak`` (streams: the most open at once)."""
    used = {
        INTENTS: report.total(INTENTS, days),
        wire.RATE_LIMIT_PER_MINUTE: max((report.busiest_minute(d) for d in days), default=0),
        wire.PAYLOAD_MAX_BYTES: report.largest(PAYLOAD_MAX, days),
        wire.STORAGE_BYTES: report.get(STORED, EVER),
        wire.ACTORS_TOTAL: report.actors,
        wire.SERVICE_ACCOUNTS_PER_WORKSPACE: report.service_accounts,
        wire.SSE_STREAMS_MAX: report.streams,
    }
    out = {}
    for d in DIMENSIONS:
        entry = {"used": used[d], "refused": report.total(refused(d), days),
                 "overage": report.total(overage(d), days)}
        if d == wire.SSE_STREAMS_MAX:
            entry["peak"] = max(report.largest(STREAMS_PEAK, days), report.streams)
        out[d] = entry
    return out


def counter_totals(report: Report, days: list[str]) -> dict[str, int]:
    """What the runtime did over ``days``, beyond the quota dimensions."""
    return {INTENTS_CREATED: report.total(INTENTS_CREATED, days), DELIVERIES: report.total(DELIVERIES, days),
            REQUESTS: report.total(REQUESTS, days), STREAMS_OPENED: report.total(STREAMS_OPENED, days),
            PAYLOAD_BYTES: report.total(PAYLOAD_BYTES, days), STORED_ADDED: report.total(STORED_ADDED, days)}


def daily_points(report: Report, days: list[str], sa_rows: list[Row], actor_days: list[str]) -> list[dict[str, Any]]:
    """One point per day of ``days``: the quota dimensions as that day had them (intents created, its busiest
    minute, its largest payload, the most streams open at once; stored bytes, service accounts and people at its
    end) and its counters."""
    stored_after = 0
    levels: dict[str, int] = {}
    for day in reversed(days):  # stored bytes at a day's end: all stored, less what later days added
        levels[day] = report.get(STORED, EVER) - stored_after
        stored_after += report.get(STORED_ADDED, day)
    points = []
    for day in days:
        end = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
        accounts = sum(1 for r in sa_rows if r["created_at"] < end and (r["deleted_at"] is None
                                                                          or r["deleted_at"] >= end))
        points.append({
            "at": f"{day}T00:00:00Z",
            "dimensions": {
                INTENTS: report.get(INTENTS, day),
                wire.RATE_LIMIT_PER_MINUTE: report.busiest_minute(day),
                wire.PAYLOAD_MAX_BYTES: report.get(PAYLOAD_MAX, day),
                wire.STORAGE_BYTES: max(0, levels[day]),
                wire.ACTORS_TOTAL: sum(1 for at in actor_days if at < end),
                wire.SERVICE_ACCOUNTS_PER_WORKSPACE: accounts,
                wire.SSE_STREAMS_MAX: report.get(STREAMS_PEAK, day),
            },
            "counters": counter_totals(report, [day]),
            "refused": {d: n for d in DIMENSIONS if (n := report.get(refused(d), day))},
        })
    return points


# ---------------------------------------------------------------------------------------------
# the process's side: flushing


class Flusher(Background):
    """Adds this process's counts to the rows every ``usage_flush_seconds`` (real time: it measures the disk, not
    the workflows), and once more when the runtime stops. ``also`` runs on each pass (the quotas' housekeeping:
    the stream count of this replica, the limits read again on PostgreSQL)."""

    name = "usage"

    def __init__(self, store: Store, settings: Settings, counters: Counters, clock: Clock = SYSTEM,
                 also: Callable[[], Any] | None = None) -> None:
        super().__init__(clock)
        self._store = store
        self._settings = settings
        self.counters = counters
        self._also = also
        self._folded = ""  # the day before which minutes were last folded

    async def step(self) -> float:
        await self.flush()
        if self._also is not None:
            await self._also()
        return self._settings.usage_flush_seconds

    async def flush(self) -> None:
        taken = self.counters.take()
        now = self.clock.time()
        today = day_of(now)
        fold = today if today != self._folded else None
        if not taken and fold is None:
            return
        # once a day (fold): also the minutes of every workspace are folded, and old mesh events dropped
        try:
            await self._store.write(lambda tx: op_flush_all(tx, taken, fold, now))
        except BaseException:
            self.counters.put_back(taken)
            raise
        if fold is not None:
            self._folded = fold


def real_time() -> float:
    """Seconds since the epoch on the real clock (a replica's liveness is measured in real time)."""
    return time.time()

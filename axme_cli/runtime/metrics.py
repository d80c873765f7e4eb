"""Prometheus metrics of one runtime process (``GET /metrics``).

Operations note what happened in their transaction (``tx.notes.see``: an intent created, an intent ended, a
delivery, a redelivery). Those facts reach ``Runtime._on_commit`` only when the transaction committed, and a
PostgreSQL rerun after a deadlock starts from a fresh ``Tx``, so nothing is counted twice and nothing that rolled
back is counted. ``observe`` turns them into counter and histogram samples. Every labelled child is bound once
here, so the hot path does a dict lookup and an ``inc``/``observe``, never a label resolution.

The store's writer reports each commit (``Store.on_batch``: operations in it, seconds it took) from its own
thread; the scheduler reports how late it fires a due timer. The open SSE streams, the PostgreSQL reruns and the
store's counts of statements and commits are read when Prometheus scrapes. Each runtime has its own registry
(tests start several in one process).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from axme_cli.protocol import lifecycle as lc
from axme_cli.protocol import quotas
from axme_cli.runtime.clock import parse_iso
from axme_cli.runtime.notify import Hub
from axme_cli.runtime.store.base import Store

CONTENT_TYPE = CONTENT_TYPE_LATEST

# What an intent is, as a label: bounded, never an id or a free-form type.
KINDS = ("direct", "task", "parent", "step", "compensation")

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            1800.0, 3600.0)
_HOP = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_BATCH = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_COMMIT = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_LAG = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def kind_of(doc: dict[str, Any]) -> str:
    if doc.get("workflow_parent"):
        return "parent"
    if doc.get("workflow_id"):
        return "compensation" if doc.get("compensation") else "step"
    if doc.get("human_task"):
        return "task"
    return "direct"


class _Scraped(Collector):
    """Values read when Prometheus scrapes: reruns of PostgreSQL transactions, and the store's own counts of the
    SQL statements it ran and the write transactions it committed (``Store.statements``, ``Store.commits``)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def collect(self) -> Iterable[Any]:
        retries = CounterMetricFamily(
            "axme_store_retries", "Write operations run again after a deadlock, serialization failure or "
            "unique-key race (PostgreSQL; always 0 on SQLite).")
        retries.add_metric([], float(getattr(self._store, "retries", 0)))
        yield retries
        statements = CounterMetricFamily(
            "axme_store_statements", "SQL statements this process sent to its database: reads and writes, "
            "BEGIN, COMMIT, savepoints and notifications included.")
        statements.add_metric([], float(self._store.statements))
        yield statements
        commits = CounterMetricFamily(
            "axme_store_commits", "Write transactions this process committed (one per batch of operations).")
        commits.add_metric([], float(self._store.commits))
        yield commits


class Metrics:
    def __init__(self, store: Store, hub: Hub) -> None:
        disable_created_metrics()  # no ``*_created`` timestamp series next to every counter
        self.registry = r = CollectorRegistry(auto_describe=False)
        created = Counter("axme_intents_created", "Intents created, by kind (direct, task, parent, step, "
                          "compensation).", ["kind"], registry=r)
        self._created = {k: created.labels(k) for k in KINDS}
        terminal = Counter("axme_intents_terminal", "Intents that reached a terminal status, by kind and status.",
                           ["kind", "status"], registry=r)
        self._terminal = {(k, st): terminal.labels(k, st) for k in KINDS for st in lc.TERMINAL}
        steps = Histogram("axme_step_duration_seconds", "Workflow step (or compensation) sub-intents: seconds from "
                          "creation to the terminal event.", ["kind", "status"], buckets=_LATENCY, registry=r)
        self._steps = {(k, st): steps.labels(k, st) for k in ("step", "compensation") for st in lc.TERMINAL}
        self._hop = Histogram("axme_step_hop_seconds", "Seconds from the commit that created a step sub-intent "
                              "(the previous step's completion, a resume, a retry or delay timer, or the apply) "
                              "to its first delivery at the agent.", buckets=_HOP, registry=r)
        self._deliveries = Counter("axme_deliveries", "Delivery attempts handed to an agent (intent.delivered "
                                   "recorded: a feed frame, or a 2xx of an http-binding agent).", registry=r)
        self._redeliveries = Counter("axme_redeliveries", "New delivery attempts made by the redelivery timer "
                                     "(the agent did not pick the intent up in time).", registry=r)
        streams = Gauge("axme_sse_streams_open", "SSE streams open now (intent event streams and agent feeds).",
                        registry=r)
        streams.set_function(lambda: hub.open_streams)
        self._batch = Histogram("axme_store_commit_batch_size", "Write operations per committed transaction "
                                "(SQLite group commit; always 1 on PostgreSQL).", buckets=_BATCH, registry=r)
        self._commit = Histogram("axme_store_commit_seconds", "Seconds of one write transaction, from BEGIN to "
                                 "the end of COMMIT.", buckets=_COMMIT, registry=r)
        self._lag = Histogram("axme_timer_lag_seconds", "Seconds between when the earliest due timer was due "
                              "and when the scheduler fired it.", buckets=_LAG, registry=r)
        runs = Counter("axme_schedule_runs", "Runs schedules started, by trigger (cron: an occurrence came due; "
                       "manual: POST /v1/schedules/{id}/trigger).", ["trigger"], registry=r)
        self._schedule_runs = {t: runs.labels(t) for t in ("cron", "manual")}
        skips = Counter("axme_schedule_skips", "Schedule occurrences that started no run, by reason (overlap: the "
                        "previous run had not ended; missed: fired too late, with missed_run_policy skip).",
                        ["reason"], registry=r)
        self._schedule_skips = {reason: skips.labels(reason) for reason in ("overlap", "missed")}
        self._schedule_failures = Counter("axme_schedule_failures", "Schedule occurrences whose run could not "
                                          "start (the apply or create was refused; the schedule says why).",
                                          registry=r)
        refusals = Counter("axme_quota_refusals", "Calls a quota of the workspace refused, by dimension "
                           "(intents_per_day, rate_limit_per_minute, payload_max_bytes, storage_bytes, actors_total, "
                           "service_accounts_per_workspace, sse_streams_max).", ["dimension"], registry=r)
        self._quota_refusals = {d: refusals.labels(d) for d in quotas.DIMENSIONS}
        r.register(_Scraped(store))

    # the hot path
    def observe(self, seen: list[tuple[Any, ...]]) -> None:
        """Facts of a committed transaction (``Notes.seen``). A batch's counts are summed first and each counter
        moved once (each move takes the counter's lock)."""
        counts: dict[Any, int] = {}
        for fact in seen:
            what = fact[0]
            if what == "created":
                counter = self._created[kind_of(fact[1])]
                counts[counter] = counts.get(counter, 0) + 1
            elif what == "delivered":
                _, created_at, doc, first, now = fact
                counts[self._deliveries] = counts.get(self._deliveries, 0) + 1
                if first and doc.get("workflow_id") and not doc.get("workflow_parent"):
                    self._hop.observe(max(0.0, now - parse_iso(created_at)))
            elif what == "terminal":
                _, _, _, status, created_at, doc, now = fact
                kind = kind_of(doc)
                counter = self._terminal[kind, status]
                counts[counter] = counts.get(counter, 0) + 1
                if kind in ("step", "compensation"):
                    self._steps[kind, status].observe(max(0.0, now - parse_iso(created_at)))
            elif what == "redelivered":
                self._redeliveries.inc()
            elif what == "schedule":
                _, outcome, label = fact
                if outcome == "run":
                    self._schedule_runs[label].inc()
                elif outcome == "skip":
                    self._schedule_skips[label].inc()
                else:
                    self._schedule_failures.inc()
        for counter, n in counts.items():
            counter.inc(n)

    def quota_refused(self, dimension: str) -> None:
        """A quota refused a call (engine/quotas.py); from the event loop or a writer thread."""
        self._quota_refusals[dimension].inc()

    def commit(self, operations: int, seconds: float) -> None:
        """From the store after each commit: on the event loop (SQLite) or a writer thread (PostgreSQL)."""
        self._batch.observe(operations)
        self._commit.observe(seconds)

    def timer_lag(self, seconds: float) -> None:
        self._lag.observe(max(0.0, seconds))

    def render(self) -> bytes:
        return generate_latest(self.registry)


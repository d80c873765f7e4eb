#!/usr/bin/env python3
"""The order saga (reserve -> charge -> ship, and the failure path: ship fails, refund and release undo the rest)
end to end on axme and on its peers, DBOS and Restate, on this machine, in the same run.

    .venv/bin/python bench/saga.py                       # full: 200 workflows at 1 client, 2,000 at 32, per path
    .venv/bin/python bench/saga.py --quick --postgres    # a few minutes; the PostgreSQL systems too
    .venv/bin/python bench/saga.py --quick --postgres --rounds 3   # the systems in turn, 3 times; the medians
    .venv/bin/python bench/saga.py --smoke               # axme only, a few workflows; proves it works
    .venv/bin/python bench/saga.py --only dbos,restate   # some systems (axme, axme-pg, dbos, dbos-pg, restate)

The peers come from ``bench/setup.sh``, pinned there, installed outside the repo (``$AXME_BENCH_PEERS`` or
``~/.cache/axme-bench-peers``). A peer that is missing, or not at its pinned version, fails the run before anything
starts (exit 3) unless ``--allow-missing-peers``, which skips it with a line saying why. The versions measured go
into the results. How each peer is configured, and why that is its best documented setup: docs/performance.md.

Systems (each step is a trivial function returning a small dict, no retries, so the failure path is deterministic):

``axme``               ``axme dev`` (temp SQLite, WAL) and THREE agent processes (``axme agents run`` inventory,
                       payment, shipping with ``--handler saga_handlers:handle --concurrency 64 --ack-after 0``). A
                       workflow is ``POST /v1/scenarios/apply`` (order-saga.json with ``max_retries`` 0 and a ``fail``
                       flag in the payload), then the parent intent's event stream until COMPLETED / FAILED.
``dbos``               a DBOS workflow (three steps, the compensation in ``except``) on SQLite in WAL mode, behind
                       uvicorn[standard] (uvloop, httptools), one uvicorn process per core with the load spread over
                       them in turn: ``POST /order`` answers with the workflow's result. Compared with ``axme``.
``dbos (in-process)``  the same workflow on SQLite (WAL) called straight from asyncio tasks in one process: no HTTP at
                       all, its CPU includes its own load generator. What DBOS costs without a server in front.
``restate``            ``restate-server`` (npm) and the service (restate-sdk under hypercorn, HTTP/2 cleartext, one
                       worker per core, the SDK's own server settings; three ``ctx.run`` steps, the undo in
                       ``except TerminalError``), invoked over the ingress: POST /OrderSaga/place. Compared with axme.
``axme-pg x1|x3``      with ``--postgres``: ``axme server`` on a new PostgreSQL database, 1 and then 3 replicas, the
                       load spread round robin over them and agent i connected to replica i mod n.
``dbos-pg``            with ``--postgres``: the DBOS server above on a new database of the same PostgreSQL (DBOS's
                       production setup). Compared with ``axme-pg x1``.

Every system runs each path (``ok``, ``fail``) at 1 and 32 concurrent clients (closed loop, after a warm-up).
``wf/s`` workflows finished per second; ``p50/p99 ms`` end to end as the client saw it; ``CPU ms/wf`` the CPU time
(user + system) of every process of that system per workflow: the processes started and all their descendants
(server workers, multiprocessing helpers), and for the PostgreSQL systems the postmaster, its background processes
(checkpointer, background writer, WAL writer, autovacuum) and the backends serving that system's database; the
load generator is never counted. ``axme/peer`` axme's wf/s divided by the peer's at the same path and clients, the
axme system being the one named in ``vs`` (above 1x: axme is faster); ``CPU axme/peer`` axme's CPU ms/wf over the
peer's (below 1x: axme is cheaper). Below the table, per workflow on the ok path at 32 clients: SQL statements and
commits, from the runtime's counters (``axme_store_statements_total``, ``axme_store_commits_total`` on GET
/metrics; "n/a" when the runtime has none) and from DBOS's SQLAlchemy engine (statements it sends, commits it
asks for; pool pings not included). Restate keeps its state in RocksDB: no SQL to count.

``--rounds N`` runs every system's phases N times, the systems in turn in each round (round 1: every system once,
round 2: every system again, in the reverse order, ...), so that a slow minute of the machine falls on every
system rather than on one.
Each row then shows the median over the rounds of wf/s, p50, p99, CPU ms/wf, statements and commits per workflow
(its workflows, errors and seconds summed; each round's figures in the results' ``per_round``), and each ratio
is taken within its round, the median of those shown with their least and greatest beside it. Each system is
started afresh in each round, on a new database, and stopped after its phases, as in a run of one round: kept
running, every system's processes (some twenty) would sit idle beside the one measured, on the same cores, and
each later round would run on a database holding the earlier rounds' workflows, a difference that goes with the
round's place rather than with the machine's speed.

Results: ``bench/results/saga-<UTC timestamp>.json`` (or ``--json-out``), with the peers' versions and settings,
the machine (cores, load average before and after). Exit status 0 when all ran without errors, 1 when some
workflows failed, 2 when a system could not be started, 3 when a peer is missing. Everything listens on 127.0.0.1,
each process is started in a session of its own and stopped by its PID (its workers by that process group's id),
and the temp dir is removed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from create_throughput import (  # noqa: E402
    REPO,
    RESULTS,
    Server,
    ServerFailed,
    _num,
    _on_sigterm,
    _percentile,
    _ratio,
    git_state,
    process_cpu,
)

API_KEY = "bench-admin-key-0123456789abcdef"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
PEERS = Path(os.environ.get("AXME_BENCH_PEERS") or Path.home() / ".cache" / "axme-bench-peers")
PEER_PY = PEERS / "venv" / "bin" / "python"
SETUP = HERE / "setup.sh"
BUNDLE = REPO / "axme_cli" / "examples" / "order-saga.json"
CLIENTS = (1, 32)
PATHS = ("ok", "fail")
SYSTEMS = ("axme", "axme-pg", "dbos", "dbos-pg", "restate")
PEER_SYSTEMS = ("dbos", "dbos-pg", "restate")
PRESETS: dict[str, dict[str, int]] = {
    "full": {"count_1": 200, "count_32": 2000, "fail_share": 4, "warmup": 20},
    # quick's phases at 32 clients last seconds, not a fraction of one: at 400 (and 100 on the fail path, ~0.4 s)
    # two runs three minutes apart put axme dev at 1.27x and 1.07x Restate
    "quick": {"count_1": 40, "count_32": 1000, "fail_share": 2, "warmup": 5},
    "smoke": {"count_1": 4, "count_32": 16, "fail_share": 2, "warmup": 1},
}
# The rows each peer is compared with.
BASELINE = {"dbos": "axme", "dbos (in-process)": "axme", "restate": "axme", "dbos-pg": "axme-pg x1"}
# The counters a runtime may publish on GET /metrics (summed over their labels and over the replicas).
AXME_COUNTERS = {"statements": "axme_store_statements_total", "commits": "axme_store_commits_total"}
# hypercorn settings of the Restate service: what the SDK's own harness (restate/harness.py) serves it with.
RESTATE_HYPERCORN = {"h2_max_concurrent_streams": 2147483647, "keep_alive_max_requests": 2147483647,
                     "keep_alive_timeout": 2147483647}


Counts = dict[str, int | None]  # {"statements": n, "commits": n}; None: the system does not show it


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@dataclass
class Row:
    system: str
    path: str  # "ok" | "fail"
    clients: int
    workflows: int
    errors: int
    seconds: float
    per_s: float
    p50_ms: float | None
    p99_ms: float | None
    cpu_ms_per_wf: float | None
    error_kinds: dict[str, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)
    statements_per_wf: float | None = None  # ok path at 32 clients only, where the system shows them
    commits_per_wf: float | None = None
    cpu_ms_per_wf_by_process: dict[str, float] = field(default_factory=dict)  # ok path at 32 clients only
    baseline: str | None = None  # on peer rows: the axme row compared with
    vs_peer: float | None = None  # on peer rows: axme wf/s / this wf/s
    cpu_vs_peer: float | None = None  # on peer rows: axme CPU ms/wf / this
    # Each round's figures (--rounds); the figures above are their medians (ROUND_MEDIANS) or sums (ROUND_SUMS),
    # the CPU split by process the one of the round nearest the median CPU ms/wf.
    per_round: list[dict[str, Any]] = field(default_factory=list)
    vs_peer_range: list[float] | None = None  # the least and the greatest per-round ratio, with several rounds
    cpu_vs_peer_range: list[float] | None = None


def make_row(system: str, path: str, clients: int, latencies: list[float], errors: Counter[str], samples: list[str],
             seconds: float, cpu: float | None, sql: Counts | None = None) -> Row:
    lat = sorted(latencies)
    done = len(lat)
    p50, p99 = _percentile(lat, 0.5), _percentile(lat, 0.99)
    row = Row(system, path, clients, done, sum(errors.values()), round(seconds, 4),
              round(done / seconds, 1) if seconds > 0 else 0.0,
              None if p50 is None else round(p50 * 1000, 2), None if p99 is None else round(p99 * 1000, 2),
              None if cpu is None or not done else round(cpu * 1000 / done, 3), dict(errors), samples)
    if sql is not None and done:
        total = done + sum(errors.values())
        statements, commits = sql.get("statements"), sql.get("commits")
        row.statements_per_wf = None if statements is None else round(statements / total, 2)
        row.commits_per_wf = None if commits is None else round(commits / total, 2)
    return row


def headline(clients: int, path: str) -> bool:
    """The phase whose statements and commits are counted: ok path, most clients."""
    return path == "ok" and clients == max(CLIENTS)


# ---------------------------------------------------------------------------------------------------------------
# processes and ports


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children_map() -> dict[int, list[int]]:
    """Every process's children now, from /proc/<pid>/stat (field 4 is the parent)."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        kids.setdefault(int(fields[1]), []).append(int(entry))
    return kids


def with_descendants(pids: list[int]) -> list[int]:
    """``pids`` and every process below them (server workers, multiprocessing helpers)."""
    kids = children_map()
    seen: list[int] = []
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.append(pid)
        todo.extend(kids.get(pid, []))
    return seen


class Proc:
    """A process we started, in a session of its own: stopped by its PID (SIGTERM), then its process group by that
    group's id (SIGKILL), so workers it forked or spawned go with it."""

    def __init__(self, name: str, args: list[str], workdir: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log = workdir / f"{name}.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def terminate(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)

    def reap(self, deadline: float) -> int | None:
        """Wait for the process until ``deadline`` (time.monotonic()), then SIGKILL what is left of its group."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(max(0.0, deadline - time.monotonic()))
        # The group's id is the PID we started (start_new_session); whatever is left in it was started by it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        return self.proc.returncode

    def stop(self, timeout: float = 10.0) -> int | None:
        self.terminate()
        return self.reap(time.monotonic() + timeout)


def stop_all(procs: list[Any], timeout: float = 10.0) -> None:
    """Stop what was started, all at once: SIGTERM to each, then wait for them together."""
    for proc in procs:
        if isinstance(proc, Proc):
            proc.terminate()
    deadline = time.monotonic() + timeout
    for proc in reversed(procs):
        if isinstance(proc, subprocess.Popen):
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        elif isinstance(proc, Proc):
            proc.reap(deadline)
        else:
            proc.stop()
    procs.clear()


def wait_http(url: str, proc: Proc, timeout: float = 60.0, method: str = "GET") -> None:
    deadline = time.monotonic() + timeout
    while True:
        if not proc.alive():
            raise ServerFailed(f"{proc.name} exited with {proc.proc.returncode}:\n{proc.log_tail()}")
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=2) as resp:
                if resp.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise ServerFailed(f"{proc.name} did not answer {url} in {timeout:.0f}s:\n{proc.log_tail()}")
        time.sleep(0.02)


def http_json(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"null")


# ---------------------------------------------------------------------------------------------------------------
# the load client: `clients` workers, each starting the next workflow when its last one finished


async def closed_loop(one: Any, clients: int, count: int, fail: bool, tag: str) -> tuple[list[float], Counter[str],
                                                                                        list[str]]:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    samples: list[str] = []
    todo = iter(range(count))

    async def worker() -> None:
        for i in todo:
            start = time.perf_counter()
            try:
                problem = await one(f"{tag}-{i:06d}", fail)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                problem = f"{type(exc).__name__}: {exc}"
            if problem:
                kind = problem.split(":")[0][:60]
                errors[kind] += 1
                if errors[kind] == 1 and len(samples) < 5:
                    samples.append(problem[:300])
                continue
            latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies, errors, samples


def phase_counts(preset: dict[str, int]) -> list[tuple[int, str, int, int]]:
    """(clients, path, workflows, warm-up workflows) of each phase, in the order they run."""
    phases = []
    for clients in CLIENTS:
        for path in PATHS:
            count = preset[f"count_{clients}"]
            if path == "fail":
                count = max(1, count // preset["fail_share"])
            phases.append((clients, path, count, min(count, max(preset["warmup"], clients))))
    return phases


async def run_phases(system: str, one: Any, pids: Callable[[], list[int]], preset: dict[str, int],
                     sql: Callable[[], Counts] | None = None) -> list[Row]:
    """``pids``: the processes whose CPU counts now (processes may come and go); ``sql``: the system's statement
    and commit counters now, read around the headline phase."""
    rows = []
    for clients, path, count, warmup in phase_counts(preset):
        fail = path == "fail"
        print(f"{system}: {path} path, {clients} client(s), {count:,} workflows ...", flush=True)
        await closed_loop(one, clients, warmup, fail, f"w{clients}{path}")
        sql0 = sql() if sql is not None and headline(clients, path) else None
        before = {pid: process_cpu(pid) for pid in pids()}
        t0 = time.perf_counter()
        lat, errors, samples = await closed_loop(one, clients, count, fail, f"m{clients}{path}")
        seconds = time.perf_counter() - t0
        after = {pid: process_cpu(pid) for pid in pids()}
        sql1 = sql() if sql0 is not None and sql is not None else None
        # A process that started during the phase counts fully; one that ended is left out.
        cpu: float | None = None
        if not any(v is None for v in before.values()):
            cpu0 = sum(v for pid, v in before.items() if v is not None and after.get(pid) is not None)
            cpu = sum(v for v in after.values() if v is not None) - cpu0
        delta: Counts | None = None
        if sql0 is not None and sql1 is not None:
            delta = {}
            for key in ("statements", "commits"):
                first, last = sql0.get(key), sql1.get(key)
                delta[key] = None if first is None or last is None else last - first
        row = make_row(system, path, clients, lat, errors, samples, seconds, cpu, delta)
        if headline(clients, path) and row.workflows:
            row.cpu_ms_per_wf_by_process = cpu_by_process(before, after, row.workflows)
        rows.append(row)
    return rows


def process_label(pid: int) -> str:
    """What a process is, for the CPU split: PostgreSQL's by their title (its backends as one), the others by their
    command (a multiprocessing child by its parent's) and PID."""
    try:
        words = [w for w in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0") if w]
    except OSError:
        return f"pid {pid}"
    line = " ".join(words)
    if line.startswith("postgres:"):  # "postgres: checkpointer", "postgres: postgres DB 127.0.0.1(5432) idle"
        kind = line.split(":", 1)[1].strip()
        return "postgres: backends" if " " in kind and kind.split()[0] != "autovacuum" else f"postgres: {kind}"
    if words and Path(words[0]).name == "postgres":
        return "postgres: postmaster"
    if "multiprocessing" in line:
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            parent = int(stat[stat.rfind(")") + 2:].split()[1])
            role = "resource tracker" if "resource_tracker" in line else "worker"
            return f"{process_label(parent).rsplit(' [', 1)[0]} {role} [{pid}]"
    shown = [Path(w).name if i == 0 or w.startswith("/") else w for i, w in enumerate(words)]
    skip = {"-m", "-B", "-u"}
    return " ".join([shown[0], *[w for w in shown[1:] if w not in skip][:2]]) + f" [{pid}]"


def cpu_by_process(before: dict[int, float | None], after: dict[int, float | None], done: int) -> dict[str, float]:
    """CPU ms per workflow of each process (PostgreSQL's backends summed), most first."""
    split: dict[str, float] = {}
    for pid, last in after.items():
        if last is None:
            continue
        label = process_label(pid)
        split[label] = split.get(label, 0.0) + (last - (before.get(pid) or 0.0)) * 1000 / done
    return {label: round(ms, 3) for label, ms in sorted(split.items(), key=lambda kv: -kv[1]) if ms > 0}


def _session(headers: dict[str, str] | None = None) -> Any:
    import aiohttp

    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=max(CLIENTS) + 4),
                                 timeout=aiohttp.ClientTimeout(total=120), headers=headers)


# ---------------------------------------------------------------------------------------------------------------
# PostgreSQL


def postgres_processes(database_url: str) -> list[int]:
    """The PostgreSQL processes that work for this database now: the backends serving it, the server's background
    processes (checkpointer, background writer, WAL writer, autovacuum launcher, ...) and the postmaster. Asked
    from another database, so the asking connection is not one of them."""
    import psycopg

    admin, name = database_url.rsplit("/", 1)
    with psycopg.connect(admin + "/postgres", autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE (datname = %s OR datname IS NULL)"
                            " AND pid <> pg_backend_pid()", (name,)).fetchall()
    pids = [int(r[0]) for r in rows]
    if pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{pids[0]}/stat").read_text()
            pids.append(int(stat[stat.rfind(")") + 2:].split()[1]))  # the postmaster: every backend's parent
    return pids


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Any:
    """A new database on the server of ``admin_url`` for one run, dropped afterwards."""
    import uuid

    import psycopg

    name = f"axme_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}".encode())
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())


def notify_commit_ms(database_url: str, count: int = 200) -> float:
    """The median time of a transaction that sends a notification and commits, one after the other on one
    connection: the WAL flush of its commit and a round trip. PostgreSQL serializes notifying commits (a lock
    taken before the commit record and held until after its flush, async.c ``PreCommit_Notify``), so this is also
    the shortest interval between two notifying commits of any sessions: what bounds the commits of all replicas
    together (``replica_projection``)."""
    import psycopg

    times = []
    with psycopg.connect(database_url) as conn:
        for _ in range(count):
            start = time.perf_counter()
            conn.execute("SELECT pg_notify('axme_bench', 'x')")
            conn.commit()
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


# ---------------------------------------------------------------------------------------------------------------
# axme


def saga_bundle() -> dict[str, Any]:
    bundle = json.loads(BUNDLE.read_text())
    for step in bundle["workflow"]["steps"]:
        step["retry"] = {"max_retries": 0, "retry_delay_seconds": 1}
        if "compensate" in step:
            step["compensate"]["retry"] = {"max_retries": 0, "retry_delay_seconds": 1}
    return bundle


def prometheus_sums(text: str, names: dict[str, str]) -> dict[str, float | None]:
    """The sum over all label sets of each metric in ``names`` ({key: metric name}); None when absent."""
    sums: dict[str, float | None] = dict.fromkeys(names)
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        metric = re.split(r"[{\s]", line, maxsplit=1)[0]
        for key, name in names.items():
            if metric == name:
                with contextlib.suppress(ValueError, IndexError):
                    sums[key] = (sums[key] or 0.0) + float(line.rsplit(None, 1)[1])
    return sums


def axme_counters(urls: list[str]) -> Counts:
    """The store's statement and commit counters of every replica, summed; None when a runtime has none."""
    total: Counts = dict.fromkeys(AXME_COUNTERS, 0)
    for url in urls:
        req = urllib.request.Request(url + "/metrics", headers={"x-api-key": API_KEY})
        with urllib.request.urlopen(req, timeout=30) as resp:
            sums = prometheus_sums(resp.read().decode(), AXME_COUNTERS)
        for key, value in sums.items():
            before = total[key]
            total[key] = None if value is None or before is None else before + int(value)
    return total


def axme_workflow(session: Any, urls: list[str], bundle: dict[str, Any]) -> Callable[[str, bool],
                                                                                  Awaitable[str | None]]:
    """One order saga on axme as a client runs it: apply the bundle (to each of ``urls`` in turn), then follow the
    intent's event stream until it ends; answers None, or what went wrong."""
    template = bundle["intent"]["payload"]
    turn = iter(range(1 << 62))

    async def one(order_id: str, fail: bool) -> str | None:
        url = urls[next(turn) % len(urls)]
        body = {**bundle, "intent": {**bundle["intent"], "payload": {**template, "order_id": order_id,
                                                                        "fail": fail}}}
        async with session.post(url + "/v1/scenarios/apply", json=body) as resp:
            if resp.status != 200:
                return f"apply HTTP {resp.status}: {(await resp.text())[:200]}"
            intent_id = (await resp.json())["intent_id"]
        since = 0
        for _ in range(20):  # each stream waits up to 30 s
            async with session.get(f"{url}/v1/intents/{intent_id}/events/stream",
                                   params={"since": str(since), "wait_seconds": "30",
                                           "incremental": "true"}) as resp:
                if resp.status != 200:
                    return f"stream HTTP {resp.status}"
                async for raw in resp.content:
                    line = raw.decode().rstrip("\r\n")
                    if not line.startswith("data:"):
                        continue
                    event = json.loads(line[5:])
                    since = max(since, int(event.get("seq") or 0))
                    status = event.get("status")
                    if status in ("COMPLETED", "FAILED") and event.get("event_type", "").startswith("intent."):
                        want = "FAILED" if fail else "COMPLETED"
                        return None if status == want else f"wrong end {status}: {json.dumps(event)[:200]}"
                    if event.get("next_seq") is not None:
                        since = max(since, int(event["next_seq"]))
        return "no terminal status after 600 s"

    return one


async def run_axme(root: Path, preset: dict[str, int], procs: list[Any], system: str = "axme",
                   database_url: str | None = None, replicas: int = 1) -> list[Row]:
    """axme dev on SQLite, or ``replicas`` x ``axme server`` on one PostgreSQL database (load spread round robin,
    agent i connected to replica i mod n)."""
    work = root / system.replace(" ", "-")
    for sub in ("config", "data"):
        (work / sub).mkdir(parents=True)
    env = dict(os.environ, AXME_CONFIG_DIR=str(work / "config"), AXME_DATA_DIR=str(work / "data"))
    env.pop("AXME_DEV_API_KEY", None)
    servers = []
    for i in range(replicas):
        ready = work / f"ready-{i}"
        where = ["dev", "--db", str(work / "data" / "saga.db")] if database_url is None else [
            "server", "--database-url", database_url, "--replica-id", f"r{i}"]
        server = Server(f"{system}-r{i}".replace(" ", "-"), [
            sys.executable, "-m", "axme_cli", *where, "--host", "127.0.0.1", "--port", "0", "--ready-file",
            str(ready), "--api-key", API_KEY, "--redelivery-seconds", "30", "--rate-limit", "0"], work, ready, env)
        procs.append(server)
        server.start()
        servers.append(server)
    urls = [server.url for server in servers]
    url = urls[0]
    admin = {"x-api-key": API_KEY}
    bundle = saga_bundle()
    applied = http_json("POST", url + "/v1/scenarios/apply", {**bundle, "intent": {**bundle["intent"], "payload": {
        **bundle["intent"]["payload"], "order_id": "provision", "fail": False}}}, admin)
    agent_env = dict(env, PYTHONPATH=os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH", "")) if p))
    started = [server.pid for server in servers]
    agents = []
    for n, agent in enumerate(applied["agents"]):
        name = agent["address"].rsplit("/", 1)[-1]
        sa_id = http_json("GET", f"{url}/v1/agents/{name}", headers=admin)["agent"]["service_account_id"]
        token = http_json("POST", f"{url}/v1/service-accounts/{sa_id}/keys", {}, admin)["key"]["token"]
        proc = Proc(f"agent-{name}", [sys.executable, "-m", "axme_cli", "agents", "run", agent["address"],
                                      "--api-key", token, "--base-url", urls[n % len(urls)],
                                      "--handler", "saga_handlers:handle",
                                      "--concurrency", "64", "--ack-after", "0"], work, agent_env)
        procs.append(proc)
        agents.append(proc)
        started.append(proc.pid)
    def pids() -> list[int]:
        return with_descendants(started) + (postgres_processes(database_url) if database_url else [])

    async with _session(headers={**admin, "content-type": "application/json"}) as session:

        one = axme_workflow(session, urls, bundle)

        for proc in agents:
            if not proc.alive():
                raise ServerFailed(f"{proc.name} exited:\n{proc.log_tail()}")
        return await run_phases(system, one, pids, preset, lambda: axme_counters(urls))


# ---------------------------------------------------------------------------------------------------------------
# DBOS


def peer_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(HERE), **extra)
    env.pop("PYTHONHOME", None)
    return env


def sqlite_wal(path: Path) -> str:
    """A new SQLite database in WAL mode, for DBOS (which opens SQLite in its default rollback-journal mode, and
    keeps the journal mode the file has). ``synchronous`` stays at its default, FULL, as for ``axme dev``. Its
    workers may all launch at once: DBOS serializes its own migrations (BEGIN IMMEDIATE on SQLite, an advisory
    lock on PostgreSQL)."""
    conn = sqlite3.connect(path)
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    finally:
        conn.close()
    if mode != "wal":
        raise ServerFailed(f"{path}: journal_mode is {mode}, not wal")
    return f"sqlite:///{path}"


def run_dbos_inproc(root: Path, preset: dict[str, int], procs: list[Any]) -> list[Row]:
    work = root / "dbos-inproc"
    work.mkdir()
    phases = [[clients, count, warmup, path == "fail"] for clients, path, count, warmup in phase_counts(preset)]
    print(f"dbos (in-process): {len(phases)} phases in one process ...", flush=True)
    proc = subprocess.Popen([str(PEER_PY), str(HERE / "saga_peers.py"), "dbos-inproc", "--db",
                             sqlite_wal(work / "dbos.sqlite"), "--phases", json.dumps(phases)], cwd=work,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            env=peer_env())
    procs.append(proc)
    out, err = proc.communicate(timeout=1800)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or len(lines) != len(phases):
        raise ServerFailed(f"dbos (in-process) failed (exit {proc.returncode}):\n{err[-1500:]}")
    rows = []
    for (clients, path, _count, _warmup), line in zip(phase_counts(preset), lines, strict=True):
        data = json.loads(line)
        errors = Counter(e.split(":")[0][:60] for e in data["errors"])
        rows.append(make_row("dbos (in-process)", path, clients, data["latencies"], errors, data["errors"][:5],
                             data["seconds"], data["cpu"], data if headline(clients, path) else None))
    return rows


async def run_http_peer(system: str, urls: list[str], pids: Callable[[], list[int]], preset: dict[str, int],
                        sql: Callable[[], Counts] | None = None) -> list[Row]:
    """POST each workflow to the next of ``urls`` in turn (one URL: all to it)."""
    turn = iter(range(1 << 62))
    async with _session(headers={"content-type": "application/json"}) as session:

        async def one(order_id: str, fail: bool) -> str | None:
            url = urls[next(turn) % len(urls)]
            async with session.post(url, json={"order_id": order_id, "fail": fail}) as resp:
                text = await resp.text()
                if resp.status != 200:
                    return f"HTTP {resp.status}: {text[:200]}"
            status = json.loads(text).get("status")
            want = "FAILED" if fail else "COMPLETED"
            return None if status == want else f"wrong end {status}: {text[:200]}"

        return await run_phases(system, one, pids, preset, sql)


def dbos_sql_counts(stats: Path, servers: list[Proc]) -> Counts:
    """SIGUSR1 to each DBOS server (each wrote ``worker-<pid>`` when it started); each answers with
    ``stats-<pid>.json``: the statements and commits its SQLAlchemy engine saw so far. Summed."""
    workers = [int(p.name.split("-", 1)[1]) for p in stats.glob("worker-*")]
    if len(workers) != len(servers):
        raise ServerFailed(f"{len(workers)} DBOS servers of {len(servers)} said they started")
    asked = time.time()
    for pid in workers:
        os.kill(pid, signal.SIGUSR1)
    total: dict[str, int] = {"statements": 0, "commits": 0}
    deadline = time.monotonic() + 10
    for pid in workers:
        target = stats / f"stats-{pid}.json"
        while True:
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(target.read_text())
                if data["at"] >= asked:
                    break
            if time.monotonic() > deadline:
                logs = "\n".join(proc.log_tail() for proc in servers)
                raise ServerFailed(f"dbos server {pid} did not report its statement counts:\n{logs}")
            time.sleep(0.005)
        for key in total:
            total[key] += int(data[key])
    return dict(total)


async def run_dbos_server(root: Path, preset: dict[str, int], procs: list[Any], workers: int,
                          database_url: str | None = None) -> list[Row]:
    """DBOS behind uvicorn[standard], ``workers`` worker processes, on SQLite (WAL) or on ``database_url``.

    Each worker is a uvicorn process of its own on its own port, and the client sends the workflows to them in
    turn, as a load balancer in front of them would. ``uvicorn --workers N`` instead shares one listening socket,
    and the kernel handed most of this client's 32 keep-alive connections to one worker (measured: 8.95 against
    0.17 CPU ms/wf on the two workers of dbos-pg), which would leave DBOS one core of two."""
    system = "dbos-pg" if database_url else "dbos"
    work = root / system
    stats = work / "stats"
    stats.mkdir(parents=True)
    db = database_url or sqlite_wal(work / "dbos.sqlite")
    env = peer_env(AXME_BENCH_DBOS_URL=db, AXME_BENCH_STATS_DIR=str(stats))
    servers, ports = [], []
    for i in range(workers):
        port = free_port()
        proc = Proc(f"{system}-{i}", [str(PEER_PY), "-m", "uvicorn", "--factory", "saga_peers:dbos_app",
                                      "--app-dir", str(HERE), "--host", "127.0.0.1", "--port", str(port), "--loop",
                                      "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"],
                    work, env)
        procs.append(proc)
        servers.append(proc)
        ports.append(port)
    for proc, port in zip(servers, ports, strict=True):
        wait_http(f"http://127.0.0.1:{port}/health", proc)  # answers once DBOS launched (the app's lifespan)

    def pids() -> list[int]:
        return with_descendants([p.pid for p in servers]) + (postgres_processes(database_url) if database_url
                                                              else [])

    return await run_http_peer(system, [f"http://127.0.0.1:{port}/order" for port in ports], pids, preset,
                               lambda: dbos_sql_counts(stats, servers))


# ---------------------------------------------------------------------------------------------------------------
# Restate


def restate_binary() -> Path | None:
    found = sorted(glob.glob(str(PEERS / "node_modules" / "@restatedev" / "restate-server-*" / "bin" /
                                 "restate-server")))
    return Path(found[0]) if found else None


def hypercorn_toml(port: int, workers: int) -> str:
    settings = {"bind": [f"127.0.0.1:{port}"], "workers": workers, **RESTATE_HYPERCORN, "loglevel": "WARNING"}
    return "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())


async def run_restate(root: Path, preset: dict[str, int], procs: list[Any], workers: int) -> list[Row]:
    binary = restate_binary()
    assert binary is not None
    work = root / "restate"
    work.mkdir()
    ingress, admin, fabric, service = free_port(), free_port(), free_port(), free_port()
    env = dict(os.environ, RESTATE_INGRESS__BIND_ADDRESS=f"127.0.0.1:{ingress}",
               RESTATE_ADMIN__BIND_ADDRESS=f"127.0.0.1:{admin}", RESTATE_BIND_ADDRESS=f"127.0.0.1:{fabric}",
               RESTATE_ADVERTISED_ADDRESS=f"http://127.0.0.1:{fabric}", RESTATE_BASE_DIR=str(work / "data"),
               RESTATE_LISTEN_MODE="tcp", RESTATE_LOG_FORMAT="compact", RESTATE_LOG_FILTER="warn")
    env.pop("RESTATE_CONFIG", None)
    server = Proc("restate-server", [str(binary), "--no-logo"], work, env)
    procs.append(server)
    (work / "hypercorn.toml").write_text(hypercorn_toml(service, workers))
    svc = Proc("restate-service", [str(PEER_PY), "-m", "hypercorn", "--config", str(work / "hypercorn.toml"),
                                   "saga_peers:restate_app()"], work, peer_env())
    procs.append(svc)
    wait_http(f"http://127.0.0.1:{admin}/health", server)
    wait_http(f"http://127.0.0.1:{ingress}/restate/health", server)
    deadline = time.monotonic() + 30
    while True:
        try:
            http_json("POST", f"http://127.0.0.1:{admin}/deployments", {"uri": f"http://127.0.0.1:{service}"})
            break
        except (OSError, urllib.error.HTTPError) as exc:
            if time.monotonic() > deadline or not svc.alive():
                raise ServerFailed(f"restate: cannot register the service: {exc}\n{svc.log_tail()}") from exc
            time.sleep(0.05)
    return await run_http_peer("restate", [f"http://127.0.0.1:{ingress}/OrderSaga/place"],
                               lambda: with_descendants([server.pid, svc.pid]), preset)


# ---------------------------------------------------------------------------------------------------------------
# the peers: installed, at their pinned versions


def pins() -> dict[str, str]:
    """The versions bench/setup.sh pins: {name: version} from its ``name==version`` and ``name@version`` words."""
    text = SETUP.read_text()
    found = {}
    for name, version in re.findall(r"([A-Za-z0-9_.\-]+)(?:\[[a-z,]+\])?==([0-9][0-9A-Za-z.]*)", text):
        found[name.lower()] = version
    for name, version in re.findall(r"(@restatedev/[a-z\-]+)@([0-9][0-9.]*)", text):
        found[name] = version
    return found


def installed_versions() -> dict[str, str | None]:
    """What the peers' venv and npm folder hold of each pinned package (None: not there)."""
    wanted = pins()
    found: dict[str, str | None] = dict.fromkeys(wanted)
    python = [name for name in wanted if not name.startswith("@")]
    if PEER_PY.exists():
        out = subprocess.run([str(PEER_PY), "-c", "import json, sys\nfrom importlib import metadata\nout = {}\n"
                              "for n in sys.argv[1:]:\n    try: out[n] = metadata.version(n)\n"
                              "    except metadata.PackageNotFoundError: out[n] = None\nprint(json.dumps(out))",
                              *python], capture_output=True, text=True, timeout=60)
        if out.returncode == 0:
            found.update(json.loads(out.stdout))
    for name in wanted:
        if name.startswith("@"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                found[name] = json.loads((PEERS / "node_modules" / name / "package.json").read_text())["version"]
    return found


def restate_server_version() -> str | None:
    binary = restate_binary()
    if binary is None:
        return None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.strip() or None
    return None


PEER_PACKAGES = {
    "dbos": ("dbos", "uvicorn", "uvloop", "httptools", "sqlalchemy"),
    "dbos-pg": ("dbos", "uvicorn", "uvloop", "httptools", "sqlalchemy", "psycopg", "psycopg-binary"),
    "restate": ("restate-sdk", "hypercorn", "@restatedev/restate-server"),
}


def missing_peers(systems: list[str], versions: dict[str, str | None]) -> list[str]:
    """One line per peer system that cannot run as pinned: not installed, or another version."""
    wanted = pins()
    problems = []
    for system in systems:
        if system not in PEER_PACKAGES:
            continue
        wrong = [f"{name} {versions.get(name) or 'missing'} (pinned {wanted.get(name, '?')})"
                 for name in PEER_PACKAGES[system] if versions.get(name) is None
                 or versions.get(name) != wanted.get(name)]
        if system == "restate" and restate_binary() is None:
            wrong.append("restate-server binary missing")
        if wrong:
            problems.append(f"{system}: {', '.join(wrong)} under {PEERS}; run bench/setup.sh")
    return problems


def peer_settings(workers: int) -> dict[str, Any]:
    return {
        "dbos": {"server": "uvicorn[standard], one process per worker, load round robin", "workers": workers,
                 "loop": "uvloop", "http": "httptools",
                 "database": "SQLite, journal_mode=WAL, synchronous=FULL (default)", "executor_id": "one per worker"},
        "dbos (in-process)": {"database": "SQLite, journal_mode=WAL, synchronous=FULL (default)", "http": None},
        "dbos-pg": {"server": "uvicorn[standard], one process per worker, load round robin", "workers": workers,
                    "loop": "uvloop", "http": "httptools",
                    "database": "PostgreSQL (the server axme-pg uses), DBOS's default pool (20 per process)"},
        "restate": {"server": "restate-server defaults (single node)", "service": "hypercorn, HTTP/2 cleartext",
                    "workers": workers, **RESTATE_HYPERCORN},
    }


# ---------------------------------------------------------------------------------------------------------------
# report


def add_ratios(rows: list[Row]) -> None:
    by = {(r.system, r.path, r.clients): r for r in rows}
    for r in rows:
        base = BASELINE.get(r.system)
        a = by.get((base, r.path, r.clients)) if base else None
        if a is None:
            continue
        r.baseline = base
        if r.per_s and a.per_s:
            r.vs_peer = a.per_s / r.per_s
        if r.cpu_ms_per_wf and a.cpu_ms_per_wf:
            r.cpu_vs_peer = a.cpu_ms_per_wf / r.cpu_ms_per_wf


# A row's figures over several rounds: these summed, ...
ROUND_SUMS = ("workflows", "errors", "seconds")
# ... these the median ({field: the digits it is rounded to; None: not rounded}).
ROUND_MEDIANS = {"per_s": 1, "p50_ms": 2, "p99_ms": 2, "cpu_ms_per_wf": 3, "statements_per_wf": 2,
                 "commits_per_wf": 2, "vs_peer": None, "cpu_vs_peer": None}


def median(values: list[float | None], digits: int | None = None) -> float | None:
    """The median of the values known (None: no value known)."""
    known = [v for v in values if v is not None]
    if not known:
        return None
    mid = statistics.median(known)
    return mid if digits is None else round(mid, digits)


def spread(values: list[float | None]) -> list[float] | None:
    """[least, greatest] of the values known, when more than one is."""
    known = [v for v in values if v is not None]
    return [min(known), max(known)] if len(known) > 1 else None


def combine_rounds(rounds: list[list[Row]]) -> list[Row]:
    """One row per (system, path, clients) from the rows of every round: each ratio taken within its round (the
    systems it compares measured minutes apart, not a round apart), then every figure's median over the rounds."""
    by_key: dict[tuple[str, str, int], list[Row]] = {}
    for rows in rounds:
        add_ratios(rows)
        for r in rows:
            by_key.setdefault((r.system, r.path, r.clients), []).append(r)
    combined = []
    for (system, path, clients), rs in by_key.items():
        per_round = [{name: getattr(r, name) for name in (*ROUND_SUMS, *ROUND_MEDIANS)} for r in rs]
        mid: dict[str, Any] = {name: median([f[name] for f in per_round], digits)
                               for name, digits in ROUND_MEDIANS.items()}
        kinds: Counter[str] = Counter()
        for r in rs:
            kinds.update(r.error_kinds)
        cpu = mid["cpu_ms_per_wf"]
        nearest = min(rs, key=lambda r: abs((r.cpu_ms_per_wf or 0.0) - (cpu or 0.0)))
        combined.append(Row(
            system, path, clients, sum(r.workflows for r in rs), sum(r.errors for r in rs),
            round(sum(r.seconds for r in rs), 4), mid["per_s"], mid["p50_ms"], mid["p99_ms"], cpu, dict(kinds),
            [sample for r in rs for sample in r.error_samples][:5], mid["statements_per_wf"], mid["commits_per_wf"],
            nearest.cpu_ms_per_wf_by_process, next((r.baseline for r in rs if r.baseline), None), mid["vs_peer"],
            mid["cpu_vs_peer"], per_round, spread([r.vs_peer for r in rs]), spread([r.cpu_vs_peer for r in rs])))
    return combined


def replica_scaling(rows: list[Row]) -> float | None:
    per_s = {r.system: r.per_s for r in rows if r.path == "ok" and r.clients == max(CLIENTS)}
    one, three = per_s.get("axme-pg x1"), per_s.get("axme-pg x3")
    return three / one if one and three else None


PROJECTED_REPLICAS = (1, 3, 6, 12)
PROJECTED_PG_CORES = (4, 16)
REPLICA_MACHINE_CORES = 2


def replica_projection(rows: list[Row], notify_ms: float | None) -> dict[str, Any] | None:
    """wf/s of N replica machines (REPLICA_MACHINE_CORES each) against one PostgreSQL of K cores, from the
    per-workflow figures of the 1-replica run (N = 1) or the 3-replica run (ok path, most clients): the least of what
    the replicas' CPU, the PostgreSQL server's CPU and the serial notifying commits allow. None without both
    PostgreSQL runs."""
    by = {r.system: r for r in rows if headline(r.clients, r.path)}
    one, three = by.get("axme-pg x1"), by.get("axme-pg x3")
    if one is None or three is None:
        return None

    def split(r: Row) -> dict[str, float]:
        cpu = r.cpu_ms_per_wf_by_process
        return {"replicas_ms": sum(v for k, v in cpu.items() if "axme_cli server" in k),
                "postgres_ms": sum(v for k, v in cpu.items() if k.startswith("postgres")),
                "agents_ms": sum(v for k, v in cpu.items() if "axme_cli agents" in k),
                "statements_per_wf": r.statements_per_wf or 0.0, "commits_per_wf": r.commits_per_wf or 0.0}

    measured = {"x1": split(one), "x3": split(three)}
    table = []
    for n in PROJECTED_REPLICAS:
        f = measured["x1" if n == 1 else "x3"]
        for k in PROJECTED_PG_CORES:
            bounds = {"replicas' CPU": n * REPLICA_MACHINE_CORES * 1000 / f["replicas_ms"] if f["replicas_ms"] else
                      None, "PostgreSQL's CPU": k * 1000 / f["postgres_ms"] if f["postgres_ms"] else None,
                      "notifying commits": 1000 / (notify_ms * f["commits_per_wf"])
                      if notify_ms and f["commits_per_wf"] else None}
            known = {name: v for name, v in bounds.items() if v is not None}
            if known:
                bound = min(known, key=lambda name: known[name])
                table.append({"replicas": n, "postgres_cores": k, "wf_per_s": round(known[bound]), "bound": bound})
    return {"measured": measured, "notify_commit_ms": notify_ms, "replica_machine_cores": REPLICA_MACHINE_CORES,
            "table": table}


PROJECTION_ASSUMPTIONS = (
    "a replica's and PostgreSQL's CPU per workflow stay at the 3-replica figures as replicas are added (each "
    "replica's batches no smaller than at 32 clients over three; under more load they grow and cost less per "
    "workflow)",
    "PostgreSQL's CPU spreads over its K cores with no other contention (shared buffers, WAL insertion)",
    "notifying commits are serial (PostgreSQL holds its notify lock through each commit's WAL flush), each taking "
    "the median measured here on one connection, with the 3-replica run's commits per workflow (bigger batches "
    "under more load mean fewer commits per workflow, which raises this bound)",
    "the agents run on machines of their own and are not counted; the network between machines adds latency, "
    "not CPU",
)


def render_projection(projection: dict[str, Any]) -> list[str]:
    m = projection["measured"]
    lines = ["| replicas | replicas' CPU ms/wf (all) | PostgreSQL CPU ms/wf | agents CPU ms/wf | statements/wf | "
             "commits/wf |", "|---:|---:|---:|---:|---:|---:|"]
    for label, f in (("1", m["x1"]), ("3", m["x3"])):
        lines.append(f"| {label} | {f['replicas_ms']:.2f} | {f['postgres_ms']:.2f} | {f['agents_ms']:.2f} | "
                     f"{f['statements_per_wf']:.1f} | {f['commits_per_wf']:.2f} |")
    notify = projection["notify_commit_ms"]
    lines += ["", f"A notifying commit, one connection: {notify:.2f} ms (median)." if notify else
              "A notifying commit: not measured.", "",
              f"Projected wf/s, N replica machines of {projection['replica_machine_cores']} cores each against one "
              "PostgreSQL of K cores (the least of the three bounds; the binding one named):", "",
              "| N replicas | K cores | wf/s | bound by |", "|---:|---:|---:|---|"]
    for row in projection["table"]:
        lines.append(f"| {row['replicas']} | {row['postgres_cores']} | {row['wf_per_s']:,} | {row['bound']} |")
    lines += ["", "Assumptions:", *(f"- {a}" for a in PROJECTION_ASSUMPTIONS)]
    return lines


def _table(head: list[str], body: list[list[str]], left: int) -> str:
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]

    def fmt(line: list[str]) -> str:
        cells = [cell.ljust(w) for cell, w in zip(line[:left], widths[:left], strict=True)]
        cells += [cell.rjust(w) for cell, w in zip(line[left:], widths[left:], strict=True)]
        return "  ".join(cells).rstrip()

    return "\n".join([fmt(head), "-" * len(fmt(head)), *(fmt(line) for line in body)])


def ratio_cell(value: float | None, span: list[float] | None) -> str:
    """A ratio, with the least and greatest of its rounds beside it when there were several."""
    return _ratio(value) if span is None else f"{_ratio(value)} ({_ratio(span[0])}-{_ratio(span[1])})"


def render(rows: list[Row]) -> str:
    head = ["system", "path", "clients", "workflows", "errors", "wf/s", "p50 ms", "p99 ms", "CPU ms/wf", "vs",
            "axme/peer", "CPU axme/peer"]
    body = [[r.system, r.path, str(r.clients), f"{r.workflows:,}", str(r.errors), f"{r.per_s:,.1f}",
             _num(r.p50_ms, ".1f"), _num(r.p99_ms, ".1f"), _num(r.cpu_ms_per_wf, ".2f"), r.baseline or "",
             ratio_cell(r.vs_peer, r.vs_peer_range), ratio_cell(r.cpu_vs_peer, r.cpu_vs_peer_range)] for r in rows]
    return _table(head, body, 2)


def render_sql(rows: list[Row]) -> str:
    counted = [r for r in rows if headline(r.clients, r.path)]
    source = {"restate": "RocksDB, no SQL", "dbos": "SQLAlchemy engine events", "dbos-pg": "SQLAlchemy engine events",
              "dbos (in-process)": "SQLAlchemy engine events"}
    body = [[r.system, "n/a" if r.statements_per_wf is None else f"{r.statements_per_wf:.1f}",
             "n/a" if r.commits_per_wf is None else f"{r.commits_per_wf:.2f}",
             source.get(r.system, "GET /metrics (axme_store_*_total)")] for r in counted]
    return _table(["system", "statements/wf", "commits/wf", "counted from"], body, 1)


def markdown(result: dict[str, Any]) -> str:
    """The tables of docs/performance.md from one results file: where and when it ran, what each system did."""
    rows = [Row(**r) for r in result["rows"]]
    machine = result["machine"]
    when = result["started_at"][:16].replace("T", " ")
    rounds = result.get("rounds", 1)
    how = result["mode"] if rounds == 1 else (
        f"{result['mode']}, {rounds} rounds, the systems in turn in each: every figure the median of the rounds, "
        "every ratio the median of the ratios taken within each round, their least and greatest in brackets")
    lines = [f"One run of `bench/saga.py` ({how}), {when} UTC, commit "
             f"{(result['code'].get('commit') or '?')[:10]}{' + changes' if result['code'].get('dirty') else ''}; "
             f"{machine['cores']} cores, Python {machine['python']}; load average (1, 5, 15 min) "
             f"{', '.join(str(v) for v in machine['load_before'])} before and "
             f"{', '.join(str(v) for v in machine['load_after'])} after.", "",
             "| system | path | clients | wf/s | p50 ms | p99 ms | CPU ms/wf | vs | axme/peer | CPU axme/peer |",
             "|---|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.system} | {r.path} | {r.clients} | {r.per_s:,.1f} | {_num(r.p50_ms, '.1f')} | "
                     f"{_num(r.p99_ms, '.1f')} | {_num(r.cpu_ms_per_wf, '.2f')} | {r.baseline or ''} | "
                     f"{ratio_cell(r.vs_peer, r.vs_peer_range)} | {ratio_cell(r.cpu_vs_peer, r.cpu_vs_peer_range)} |")
    counted = [r for r in rows if headline(r.clients, r.path)]
    if counted:
        lines += ["", f"Per workflow, ok path at {max(CLIENTS)} clients:", "",
                  "| system | SQL statements | commits | CPU ms/wf by process |", "|---|---:|---:|---|"]
        for r in counted:
            split = ", ".join(f"{label} {ms:.2f}" for label, ms in r.cpu_ms_per_wf_by_process.items()) or \
                "one process (measured from inside it)"
            lines.append(f"| {r.system} | {_num(r.statements_per_wf, '.1f').replace('-', 'n/a')} | "
                         f"{_num(r.commits_per_wf, '.2f').replace('-', 'n/a')} | {split} |")
    scaling = result.get("postgres_replica_scaling")
    if scaling is not None:
        span = spread(result.get("postgres_replica_scaling_rounds") or [])
        lines += ["", f"PostgreSQL, 3 replicas / 1 replica, ok path at {max(CLIENTS)} clients: "
                      f"{ratio_cell(scaling, span)} wf/s."]
    projection = replica_projection(rows, result.get("postgres_notify_commit_ms"))
    if projection is not None:
        lines += ["", *render_projection(projection)]
    for line in result.get("skipped") or []:
        lines.append(f"\nSkipped: {line}")
    return "\n".join(lines)


def run_round(root: Path, systems: list[str], preset: dict[str, int], args: argparse.Namespace,
              pg_url: str) -> tuple[list[Row], float | None, list[str]]:
    """Every system once, one after the other, each started on a new database and stopped after its phases: the
    rows, the notifying commit's median time (axme-pg) and the systems that could not be started."""
    root.mkdir()
    rows: list[Row] = []
    notify_ms: float | None = None
    failed = []
    for system in systems:
        procs: list[Any] = []
        try:
            if system == "axme":
                rows += asyncio.run(run_axme(root, preset, procs))
            elif system == "axme-pg":
                with postgres_database(pg_url) as url:
                    notify_ms = notify_commit_ms(url)
                for replicas in (1, 3):
                    with postgres_database(pg_url) as url:
                        try:
                            rows += asyncio.run(run_axme(root, preset, procs, f"axme-pg x{replicas}", url,
                                                         replicas))
                        finally:
                            stop_all(procs)
            elif system == "dbos":
                rows += asyncio.run(run_dbos_server(root, preset, procs, args.peer_workers))
                stop_all(procs)
                if not args.smoke:
                    rows += run_dbos_inproc(root, preset, procs)
            elif system == "dbos-pg":
                with postgres_database(pg_url) as url:
                    try:
                        rows += asyncio.run(run_dbos_server(root, preset, procs, args.peer_workers, url))
                    finally:
                        stop_all(procs)
            elif system == "restate":
                rows += asyncio.run(run_restate(root, preset, procs, args.peer_workers))
        except ServerFailed as exc:
            print(f"error: {system}: {exc}", file=sys.stderr)
            failed.append(system)
        finally:
            stop_all(procs)
    return rows, notify_ms, failed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The order saga on axme, DBOS and Restate, same machine, same run.",
                                     epilog="See the module docstring for how to read the table.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="smaller counts; a few minutes")
    mode.add_argument("--smoke", action="store_true", help="axme only unless --only, a few workflows; seconds")
    parser.add_argument("--only", metavar="SYSTEMS",
                        help=f"comma-separated systems to run, of: {', '.join(SYSTEMS)} (dbos includes dbos "
                             "(in-process) unless --smoke)")
    parser.add_argument("--postgres", nargs="?", const=DEFAULT_PG, metavar="URL",
                        help="also run `axme server` on PostgreSQL with 1 and then 3 replicas, and DBOS on the same "
                             "PostgreSQL, each on a new database of this server, dropped afterwards "
                             f"[URL default: {DEFAULT_PG}]")
    parser.add_argument("--allow-missing-peers", action="store_true",
                        help="skip a peer that is not installed at its pinned version instead of failing the run")
    parser.add_argument("--peer-workers", type=int, metavar="N",
                        help="worker processes of the DBOS and Restate service servers [default: one per core, "
                             f"{cores()}; 1 with --smoke, which proves the code runs and starts fewer processes]")
    parser.add_argument("--count-1", type=int, metavar="N", help="workflows at 1 client (ok path)")
    parser.add_argument("--count-32", type=int, metavar="N", help="workflows at 32 clients (ok path)")
    parser.add_argument("--rounds", type=int, default=1, metavar="N",
                        help="run every phase of every system N times, the systems in turn in each round (each "
                             "started afresh on a new database per round), and report the medians, with each "
                             "ratio taken within a round [default: 1]; --quick --postgres --rounds 3 took 5.5 "
                             "minutes here (2 cores, beside other work)")
    parser.add_argument("--json-out", type=Path, metavar="PATH", help="write the results here")
    parser.add_argument("--tmp-dir", type=Path, metavar="DIR", help="make the temp dir under DIR")
    parser.add_argument("--markdown", type=Path, metavar="RESULTS",
                        help="run nothing: print the tables of docs/performance.md from this results file")
    args = parser.parse_args(argv)
    if args.only:
        args.systems = [s.strip() for s in args.only.split(",") if s.strip()]
        unknown = [s for s in args.systems if s not in SYSTEMS]
        if unknown or not args.systems:
            parser.error(f"--only: unknown system(s) {', '.join(unknown) or '(none)'}; choose from "
                         f"{', '.join(SYSTEMS)}")
    elif args.smoke:
        args.systems = ["axme"]
    else:
        args.systems = ["axme", "dbos", "restate", *(("axme-pg", "dbos-pg") if args.postgres else ())]
    if args.peer_workers is None:
        args.peer_workers = 1 if args.smoke else cores()
    if args.peer_workers < 1:
        parser.error("--peer-workers: at least 1")
    if args.rounds < 1:
        parser.error("--rounds: at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text())))
        return 0
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    preset = dict(PRESETS[mode])
    for n in CLIENTS:
        value = getattr(args, f"count_{n}")
        if value is not None:
            preset[f"count_{n}"] = max(1, value)
    systems: list[str] = args.systems
    pg_url = args.postgres or DEFAULT_PG
    versions = installed_versions()
    versions["restate-server"] = restate_server_version()
    skipped = missing_peers(systems, versions)
    if skipped and not args.allow_missing_peers:
        for line in skipped:
            print(f"error: peer missing: {line}", file=sys.stderr)
        print("error: the comparison needs every peer; install them (bench/setup.sh) or pass --allow-missing-peers",
              file=sys.stderr)
        return 3
    systems = [s for s in systems if not any(line.startswith(f"{s}:") for line in skipped)]
    signal.signal(signal.SIGTERM, _on_sigterm)
    root = Path(tempfile.mkdtemp(prefix="axme-saga-", dir=args.tmp_dir))
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    rounds: list[list[Row]] = []
    notify: list[float | None] = []
    running = list(systems)
    status = 0
    rounds_note = f"; {args.rounds} rounds, the systems in turn" if args.rounds > 1 else ""
    print(f"axme saga bench ({mode}): {', '.join(systems)}; {args.peer_workers} peer worker(s){rounds_note}; "
          f"temp dir {root}", flush=True)
    try:
        for n in range(args.rounds):
            if args.rounds > 1:
                print(f"round {n + 1} of {args.rounds}", flush=True)
            # every other round in the reverse order: a machine slowing (or speeding up) through a round does not
            # always fall on the same systems
            order = running if n % 2 == 0 else running[::-1]
            rows, notify_ms, failed = run_round(root / f"round-{n + 1}", order, preset, args, pg_url)
            rounds.append(rows)
            notify.append(notify_ms)
            if failed:
                skipped += [f"{system}: could not be started (see the error above)" for system in failed]
                running = [s for s in running if s not in failed]
                status = 2
    except KeyboardInterrupt:
        print("\ninterrupted; stopped what was started", file=sys.stderr)
        status = 130
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if status == 130:
        return status

    rows = combine_rounds(rounds)
    notify_ms = median(notify)
    scalings = [replica_scaling(r) for r in rounds]
    scaling = median(scalings)
    print()
    print(render(rows))
    if any(headline(r.clients, r.path) for r in rows):
        print(f"\nper workflow, ok path at {max(CLIENTS)} clients:")
        print(render_sql(rows))
    if scaling is not None:
        print(f"PostgreSQL, 3 replicas / 1 replica, ok path at {max(CLIENTS)} clients: "
              f"{ratio_cell(scaling, spread(scalings))} wf/s")
    projection = replica_projection(rows, notify_ms)
    if projection is not None:
        print("\n" + "\n".join(render_projection(projection)))
    load_after = os.getloadavg()
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min); {cores()} cores")
    for line in skipped:
        print(f"skipped: {line}")
    for r in rows:
        if r.errors:
            kinds = ", ".join(f"{k} x{n}" for k, n in r.error_kinds.items())
            print(f"ERRORS, {r.system} {r.path} at {r.clients} client(s): {kinds}")
            for sample in r.error_samples:
                print(f"  first {sample[:200]}")
    errors = sum(r.errors for r in rows)
    result = {
        "benchmark": "saga",
        "mode": mode,
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "cores": cores(), "python": platform.python_version(),
                    "platform": platform.platform(), "load_before": [round(v, 2) for v in load_before],
                    "load_after": [round(v, 2) for v in load_after]},
        "code": git_state(),
        "counts": preset,
        "systems": systems,
        "peers": {"pinned": pins(), "installed": versions, "settings": peer_settings(args.peer_workers)},
        "skipped": skipped,
        "errors": errors,
        "rounds": args.rounds,
        "postgres_replica_scaling": scaling,
        "postgres_replica_scaling_rounds": scalings,
        "postgres_notify_commit_ms": notify_ms,
        "postgres_replica_projection": projection,
        "rows": [asdict(r) for r in rows],
    }
    out = args.json_out
    if out is None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"saga-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nresults: {out}")
    if status:
        return status
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Durable ``POST /v1/intents`` per second against `axme dev`, next to what HTTP alone and SQLite alone allow.

Run it from the repo root with the project's venv (it needs aiohttp, from the ``test`` extra)::

    .venv/bin/python bench/create_throughput.py            # full run: 2,000 creates at 1 client, 20,000 at 32
    .venv/bin/python bench/create_throughput.py --quick    # smaller counts, under a minute
    .venv/bin/python bench/create_throughput.py --smoke    # a few seconds; proves it works, the numbers mean nothing
    .venv/bin/python bench/create_throughput.py --count-32 50000 --json-out /tmp/run.json

Everything is measured in the same run on the same machine, one system at a time:

``sqlite``  in this process, a WAL database with ``synchronous=FULL`` in the same temp dir as the runtime's:
            ``commit/row`` is one INSERT + COMMIT per row (the floor for a server that commits each request on its
            own); ``batch 32`` and ``batch 512`` commit the same kind of rows 32 or 512 at a time (what group commit
            can reach; the runtime's writer takes up to 512 queued operations per commit).
``bare``    ``bench/bare_asgi.py``: a raw ASGI app served by uvicorn with the runtime's settings (uvloop, httptools,
            no access log), reading the body and answering a small JSON body. The ceiling for "HTTP only".
``axme``    ``python -m axme_cli dev`` with a temp database (AXME_CONFIG_DIR / AXME_DATA_DIR point at temp dirs, so
            your config is untouched) and a fixed ``--api-key``; every request is a real durable create
            (``intent_type`` order.place.v1, a fresh ``correlation_id``, ``to_agent`` inventory); it must answer
            200 with an ``intent_id``, anything else is counted as an error.

The load generator is one aiohttp ClientSession with keep-alive (``TCPConnector(limit=clients)``) and ``clients``
workers that each send the next request as soon as the previous one is answered (a closed loop). Each phase
starts with an unmeasured warm-up. Request bodies are made before the clock starts.

Reading the table:

``req/s``           requests answered per second (rows per second for the sqlite lines).
``p50 ms/p99 ms``   latency of one request as the client saw it; for sqlite lines, of one COMMIT (of 1, 32 or 512 rows).
``srv CPU ms/req``  CPU time (user + system, all threads) the server process spent per request, from
                    /proc/<pid>/stat before and after the phase; for sqlite lines, this process's CPU per row.
                    ``srv CPU %`` is the same over wall time (100% = one core busy all the time).
``cli CPU ms/req``  CPU the load generator (this process) spent per request. Client and server share the same cores,
                    so a busy client takes CPU the server could have used: compare both before blaming either.
``box CPU %``       how busy the whole machine was (all cores, every process, the kernel): 200% = both of 2 cores.
                    Well above srv + cli means something else ran at the same time; rerun on a quiet machine.
``vs bare``         axme req/s divided by bare uvicorn req/s at the same client count (1.00x = HTTP-bound).
``vs commit/row``   req/s divided by the one-commit-per-row floor: above 1x means group commit is paying off.

Below the table: the goal (>= 5,000 durable creates/s at 32 clients) and whether this run met it, how the
runtime's CPU split between its event-loop thread and its other threads (the SQLite writer), and a warning for any
line where the load generator itself was near one full core (its req/s is then the client's limit, not the server's;
the load generator is one Python process, so expect that on the bare uvicorn line at 32 clients).

Results go to ``bench/results/create_throughput-<UTC timestamp>.json`` (or ``--json-out``). The exit status is 0
when every phase ran without request errors, 1 when some requests failed (the table still prints), 2 when a
server could not be started. All servers are started on 127.0.0.1, stopped by PID at the end (also on Ctrl+C),
and the temp dirs are removed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
API_KEY = "bench-admin-key-0123456789abcdef"
GOAL_PER_S = 5000
GOAL_CLIENTS = 32
BATCH_SIZES = (32, 512)
OTHER_LOAD = 0.35  # machine CPU beyond server + client (share of one core) worth a warning
CLIENT_BOUND = 0.85  # a load generator busier than this (share of one core) is the bottleneck itself

PRESETS: dict[str, dict[str, int]] = {
    "full": {"count_1": 2000, "count_32": 20000, "floor_rows": 2000, "batch_rows": 20000},
    "quick": {"count_1": 400, "count_32": 4000, "floor_rows": 400, "batch_rows": 8192},
    "smoke": {"count_1": 20, "count_32": 200, "floor_rows": 30, "batch_rows": 1024},
}


# ---------------------------------------------------------------------------------------------------------------
# results


@dataclass
class Row:
    system: str  # "axme" | "bare" | "sqlite"
    label: str  # what the table shows in its first column
    clients: int | None  # None for the in-process sqlite lines
    requests: int  # requests answered 200 (rows written, for sqlite)
    errors: int
    seconds: float
    per_s: float
    p50_ms: float | None
    p99_ms: float | None
    server_cpu_ms_per_req: float | None
    server_cpu_util: float | None  # CPU seconds / wall seconds (1.0 = one core)
    client_cpu_ms_per_req: float | None = None
    client_cpu_util: float | None = None  # the load generator's CPU seconds / wall seconds
    machine_cpu_util: float | None = None  # every core's busy time / wall seconds (2.0 = both cores of 2 busy)
    loop_thread_cpu_util: float | None = None  # main (event loop) thread of the server
    other_threads_cpu_util: float | None = None  # every other thread (the SQLite writer, executors)
    batch: int | None = None  # rows per commit, for sqlite lines
    error_kinds: dict[str, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)
    vs_bare: float | None = None
    vs_commit_floor: float | None = None


# ---------------------------------------------------------------------------------------------------------------
# CPU time from /proc (Linux); None elsewhere

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_cpu(path: str) -> float:
    with open(path, encoding="ascii", errors="replace") as f:
        data = f.read()
    fields = data[data.rindex(")") + 2 :].split()  # fields[0] is field 3 (state); utime = 14, stime = 15
    return (int(fields[11]) + int(fields[12])) / _TICK


def process_cpu(pid: int) -> float | None:
    try:
        return _stat_cpu(f"/proc/{pid}/stat")
    except (OSError, ValueError, IndexError):
        return None


def machine_cpu() -> float | None:
    """Busy CPU seconds of the whole machine (all cores, every process and the kernel) since boot."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / _TICK  # guest time is already inside user


def thread_cpu(pid: int) -> dict[int, float]:
    out: dict[int, float] = {}
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                out[int(tid)] = _stat_cpu(f"/proc/{pid}/task/{tid}/stat")
    return out


# ---------------------------------------------------------------------------------------------------------------
# servers as subprocesses, stopped by PID whatever happens


class ServerFailed(Exception):
    pass


class Server:
    def __init__(self, name: str, args: list[str], workdir: Path, ready: Path, env: dict[str, str]) -> None:
        self.name = name
        self.args = args
        self.workdir = workdir
        self.ready = ready
        self.env = env
        self.log = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.pid = 0

    def start(self, timeout: float = 30.0) -> Server:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.args, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self.pid = self.proc.pid
        deadline = time.monotonic() + timeout
        while not self.ready.exists():
            if self.proc.poll() is not None:
                raise ServerFailed(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise ServerFailed(f"{self.name} was not ready after {timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.02)
        info = json.loads(self.ready.read_text())
        if info.get("pid") != self.proc.pid:
            raise ServerFailed(f"{self.name}: the ready file names pid {info.get('pid')}, we started {self.proc.pid}")
        self.url = info["url"]
        host = urlsplit(self.url).hostname or ""
        if not ipaddress.ip_address(host).is_loopback:
            raise ServerFailed(f"{self.name} listens on {self.url}, not on loopback; refusing to load it")
        return self

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; only the process we started, by its PID."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
        return proc.returncode


# ---------------------------------------------------------------------------------------------------------------
# load generation


def create_bodies(n: int, prefix: str) -> list[bytes]:
    bodies = []
    for i in range(n):
        body = {
            "intent_type": "order.place.v1",
            "correlation_id": str(uuid.uuid4()),
            "to_agent": "inventory",
            "payload": {"order_id": f"{prefix}-{i:07d}", "items": [{"sku": "LAPTOP-001", "quantity": 1}]},
        }
        bodies.append(json.dumps(body, separators=(",", ":")).encode())
    return bodies


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)

    def error(self, kind: str, sample: str) -> None:
        self.errors[kind] += 1
        if self.errors[kind] == 1 and len(self.samples) < 5:  # the first of each kind
            self.samples.append(f"{kind}: {sample[:300]}")


async def _closed_loop(session: Any, url: str, bodies: list[bytes], clients: int) -> Outcome:
    import aiohttp

    out = Outcome()
    todo = iter(bodies)  # shared by the workers; one event loop, so no locking

    async def worker() -> None:
        for body in todo:
            start = time.perf_counter()
            try:
                async with session.post(url, data=body) as resp:
                    data = await resp.read()
                    status = resp.status
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                out.error(type(exc).__name__, str(exc))
                continue
            elapsed = time.perf_counter() - start
            if status != 200:
                out.error(f"HTTP {status}", data.decode(errors="replace"))
                continue
            try:
                ok = isinstance(json.loads(data).get("intent_id"), str)
            except (ValueError, AttributeError):
                ok = False
            if not ok:
                out.error("no intent_id", data.decode(errors="replace"))
                continue
            out.latencies.append(elapsed)

    await asyncio.gather(*(worker() for _ in range(clients)))
    return out


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[index]


async def _drive(server: Server, system: str, label: str, clients: int, count: int, warmup: int) -> Row:
    import aiohttp

    url = server.url + "/v1/intents"
    headers = {"content-type": "application/json", "x-api-key": API_KEY}
    warm = create_bodies(warmup, f"warm{clients}")
    bodies = create_bodies(count, f"run{clients}")
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:
        await _closed_loop(session, url, warm, clients)
        cpu0, threads0, machine0 = process_cpu(server.pid), thread_cpu(server.pid), machine_cpu()
        client0 = time.process_time()
        t0 = time.perf_counter()
        out = await _closed_loop(session, url, bodies, clients)
        seconds = time.perf_counter() - t0
        client_cpu = time.process_time() - client0
        cpu1, threads1, machine1 = process_cpu(server.pid), thread_cpu(server.pid), machine_cpu()

    done = len(out.latencies)
    lat = sorted(out.latencies)
    server_cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
    loop_util = other_util = None
    if threads0 and threads1:
        loop = threads1.get(server.pid, 0.0) - threads0.get(server.pid, 0.0)
        # threads that ended during the phase are missing from threads1; their CPU is in the process total
        other = (server_cpu if server_cpu is not None else sum(threads1.values()) - sum(threads0.values())) - loop
        loop_util, other_util = loop / seconds, max(0.0, other) / seconds
    p50, p99 = _percentile(lat, 0.50), _percentile(lat, 0.99)
    return Row(
        system=system,
        label=label,
        clients=clients,
        requests=done,
        errors=sum(out.errors.values()),
        seconds=round(seconds, 4),
        per_s=done / seconds if seconds > 0 else 0.0,
        p50_ms=p50 * 1000 if p50 is not None else None,
        p99_ms=p99 * 1000 if p99 is not None else None,
        server_cpu_ms_per_req=server_cpu * 1000 / done if server_cpu is not None and done else None,
        server_cpu_util=server_cpu / seconds if server_cpu is not None else None,
        client_cpu_ms_per_req=client_cpu * 1000 / done if done else None,
        client_cpu_util=client_cpu / seconds if seconds > 0 else None,
        machine_cpu_util=(machine1 - machine0) / seconds if machine0 is not None and machine1 is not None else None,
        loop_thread_cpu_util=loop_util,
        other_threads_cpu_util=other_util,
        error_kinds=dict(out.errors),
        error_samples=out.samples,
    )


def drive(server: Server, system: str, label: str, clients: int, count: int) -> Row:
    warmup = min(1000, max(clients * 4, count // 10))
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_drive(server, system, label, clients, count, warmup))
    # the client's loop matters on 2 cores: every CPU ms it saves is one the server can use
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_drive(server, system, label, clients, count, warmup))


# ---------------------------------------------------------------------------------------------------------------
# the SQLite commit floor (in this process)


def sqlite_floor(folder: Path, floor_rows: int, batch_rows: int) -> list[Row]:
    path = folder / "floor.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE rows (id TEXT PRIMARY KEY, payload TEXT NOT NULL)")
        # about the size of an intent row's payload + doc
        payload = json.dumps(
            {
                "intent_type": "order.place.v1",
                "correlation_id": str(uuid.uuid4()),
                "to_agent": "agent://local/dev/inventory",
                "payload": {"order_id": "ord-0000000", "items": [{"sku": "LAPTOP-001", "quantity": 1}]},
            }
        )
        counter = iter(range(10**12))

        def run(rows: int, batch: int) -> tuple[float, float, list[float]]:
            commits: list[float] = []
            machine0, cpu0, t0 = machine_cpu(), time.process_time(), time.perf_counter()
            written = 0
            while written < rows:
                n = min(batch, rows - written)
                start = time.perf_counter()
                conn.execute("BEGIN IMMEDIATE")
                for _ in range(n):
                    conn.execute("INSERT INTO rows (id, payload) VALUES (?, ?)", (f"{next(counter):012d}", payload))
                conn.execute("COMMIT")
                commits.append(time.perf_counter() - start)
                written += n
            seconds, machine1 = time.perf_counter() - t0, machine_cpu()
            machine = (machine1 - machine0) / seconds if machine0 is not None and machine1 is not None else None
            return seconds, time.process_time() - cpu0, machine, commits

        out: list[Row] = []
        for batch in (1, *BATCH_SIZES):
            rows = floor_rows if batch == 1 else batch_rows
            run(min(rows, batch * 4, 200), batch)  # warm-up: file growth, page cache
            seconds, cpu, machine, commits = run(rows, batch)
            commits.sort()
            p50, p99 = _percentile(commits, 0.50), _percentile(commits, 0.99)
            out.append(
                Row(
                    system="sqlite",
                    label="sqlite commit/row" if batch == 1 else f"sqlite batch {batch}",
                    clients=None,
                    requests=rows,
                    errors=0,
                    seconds=round(seconds, 4),
                    per_s=rows / seconds,
                    p50_ms=p50 * 1000 if p50 is not None else None,
                    p99_ms=p99 * 1000 if p99 is not None else None,
                    server_cpu_ms_per_req=cpu * 1000 / rows,
                    server_cpu_util=cpu / seconds,
                    machine_cpu_util=machine,
                    batch=batch,
                )
            )
        return out
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------------------------
# the table


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _ratio(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}x" if value < 10 else f"{value:.1f}x"


def render(rows: list[Row]) -> str:
    head = [
        "system",
        "clients",
        "requests",
        "errors",
        "req/s",
        "p50 ms",
        "p99 ms",
        "srv CPU ms/req",
        "srv CPU %",
        "cli CPU ms/req",
        "box CPU %",
        "vs bare",
        "vs commit/row",
    ]
    body = []
    for r in rows:
        body.append(
            [
                r.label,
                "-" if r.clients is None else str(r.clients),
                f"{r.requests:,}",
                str(r.errors),
                f"{r.per_s:,.0f}",
                _num(r.p50_ms, ".2f"),
                _num(r.p99_ms, ".2f"),
                _num(r.server_cpu_ms_per_req, ".3f"),
                _num(None if r.server_cpu_util is None else r.server_cpu_util * 100, ".0f"),
                _num(r.client_cpu_ms_per_req, ".3f"),
                _num(None if r.machine_cpu_util is None else r.machine_cpu_util * 100, ".0f"),
                _ratio(r.vs_bare),
                _ratio(r.vs_commit_floor),
            ]
        )
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]

    def fmt(line: list[str]) -> str:
        cells = [line[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(line[1:], widths[1:], strict=True)]
        return "  ".join(cells).rstrip()

    rule = "-" * len(fmt(head))
    return "\n".join([fmt(head), rule, *(fmt(line) for line in body)])


def add_ratios(rows: list[Row]) -> None:
    bare = {r.clients: r.per_s for r in rows if r.system == "bare"}
    floor = next((r.per_s for r in rows if r.system == "sqlite" and r.batch == 1), None)
    for r in rows:
        if r.system == "axme" and bare.get(r.clients):
            r.vs_bare = r.per_s / bare[r.clients]
        if r.system in ("axme", "sqlite") and floor and not (r.system == "sqlite" and r.batch == 1):
            r.vs_commit_floor = r.per_s / floor


def goal_line(rows: list[Row]) -> tuple[str, dict[str, Any]]:
    at = next((r for r in rows if r.system == "axme" and r.clients == GOAL_CLIENTS), None)
    goal: dict[str, Any] = {"creates_per_s": GOAL_PER_S, "clients": GOAL_CLIENTS, "measured": None, "met": None}
    if at is None:
        return f"Goal: >= {GOAL_PER_S:,} durable creates/s at {GOAL_CLIENTS} clients: not measured", goal
    met = at.per_s >= GOAL_PER_S and at.errors == 0
    goal.update(measured=round(at.per_s, 1), met=met)
    verdict = "MET" if met else "NOT MET"
    share = at.per_s / GOAL_PER_S * 100
    extra = "" if at.errors == 0 else f", with {at.errors} errors"
    return (
        f"Goal: >= {GOAL_PER_S:,} durable creates/s at {GOAL_CLIENTS} clients: {verdict} "
        f"(axme at {GOAL_CLIENTS} clients: {at.per_s:,.0f}/s = {share:.0f}% of the goal{extra})",
        goal,
    )


def notes(rows: list[Row]) -> list[str]:
    lines = []
    for r in rows:
        if r.system == "axme" and r.loop_thread_cpu_util is not None and r.other_threads_cpu_util is not None:
            lines.append(
                f"axme at {r.clients} client(s): event-loop thread {r.loop_thread_cpu_util * 100:.0f}% of a core, "
                f"other threads (SQLite writer) {r.other_threads_cpu_util * 100:.0f}%"
            )
    # CPU times tick at 10 ms: shares over phases shorter than a second are noise, so no warnings for those
    for r in rows:
        if r.seconds >= 1.0 and r.client_cpu_util is not None and r.client_cpu_util >= CLIENT_BOUND:
            lines.append(
                f"{r.label} at {r.clients} client(s): the load generator used {r.client_cpu_util * 100:.0f}% of a "
                "core; this req/s is the client's limit, the server may do more"
            )
    for r in rows:
        if r.machine_cpu_util is None or r.seconds < 1.0:
            continue
        ours = (r.server_cpu_util or 0.0) + (r.client_cpu_util or 0.0)
        if r.machine_cpu_util - ours >= OTHER_LOAD:
            lines.append(
                f"{r.label}{'' if r.clients is None else f' at {r.clients} client(s)'}: other work used about "
                f"{(r.machine_cpu_util - ours) * 100:.0f}% of a core meanwhile (kernel networking counts too); "
                "numbers may be low"
            )
    for r in rows:
        if r.errors:
            kinds = ", ".join(f"{kind} x{n}" for kind, n in sorted(r.error_kinds.items(), key=lambda kv: -kv[1]))
            lines.append(f"ERRORS, {r.label} at {r.clients} client(s): {kinds}")
            lines.extend(f"  first {sample[:200]}" for sample in r.error_samples)
    return lines


# ---------------------------------------------------------------------------------------------------------------
# main


def git_state() -> dict[str, Any]:
    """Which code was measured: the commit, and whether the work tree had changes on top of it."""
    state: dict[str, Any] = {"commit": None, "dirty": None}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
        if head.returncode == 0:
            state["commit"] = head.stdout.strip()
            changes = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no", "--", "axme_cli"],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=10,
            )
            state["dirty"] = bool(changes.stdout.strip()) if changes.returncode == 0 else None
    return state


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Durable POST /v1/intents per second against `axme dev` at 1 and 32 clients, next to a bare "
        "uvicorn endpoint and the SQLite commit floor, measured in the same run.",
        epilog="See the module docstring (top of this file) for how to read the table.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="smaller counts; the whole run takes under a minute")
    mode.add_argument("--smoke", action="store_true", help="tiny counts; finishes in seconds (numbers mean nothing)")
    parser.add_argument("--count-1", type=int, metavar="N", help="measured requests at 1 client (default 2,000)")
    parser.add_argument("--count-32", type=int, metavar="N", help="measured requests at 32 clients (default 20,000)")
    parser.add_argument("--json-out", type=Path, metavar="PATH", help="write the results here, not in bench/results/")
    parser.add_argument(
        "--tmp-dir", type=Path, metavar="DIR", help="make the temp dir (databases, logs) under DIR [default: system's]"
    )
    args = parser.parse_args(argv)
    for name in ("count_1", "count_32"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        print("this benchmark needs aiohttp: .venv/bin/pip install -e '.[test]'", file=sys.stderr)
        return 2
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    preset = dict(PRESETS[mode])
    if args.count_1 is not None:
        preset["count_1"] = args.count_1
    if args.count_32 is not None:
        preset["count_32"] = args.count_32
    counts = {1: preset["count_1"], 32: preset["count_32"]}

    signal.signal(signal.SIGTERM, _on_sigterm)
    root = Path(tempfile.mkdtemp(prefix="axme-bench-", dir=args.tmp_dir))
    servers: list[Server] = []
    rows: list[Row] = []
    started = datetime.now(UTC)
    status = 0
    try:
        print(f"axme create throughput ({mode}): temp dir {root}", flush=True)

        print("sqlite commit floor ...", flush=True)
        rows += sqlite_floor(root, preset["floor_rows"], preset["batch_rows"])

        base_env = dict(os.environ)
        base_env.pop("AXME_DEV_API_KEY", None)

        bare_dir = root / "bare"
        bare_dir.mkdir()
        bare = Server(
            "bare",
            [sys.executable, str(HERE / "bare_asgi.py"), "--host", "127.0.0.1", "--ready-file", str(bare_dir / "rdy")],
            bare_dir,
            bare_dir / "rdy",
            base_env,
        )
        servers.append(bare)
        bare.start()
        for clients, count in counts.items():
            print(f"bare uvicorn, {clients} client(s), {count:,} requests ...", flush=True)
            rows.append(drive(bare, "bare", "bare uvicorn", clients, count))
        bare.stop()

        axme_dir = root / "axme"
        for sub in ("config", "data"):
            (axme_dir / sub).mkdir(parents=True)
        env = dict(base_env, AXME_CONFIG_DIR=str(axme_dir / "config"), AXME_DATA_DIR=str(axme_dir / "data"))
        axme = Server(
            "axme",
            [
                sys.executable,
                "-m",
                "axme_cli",
                "dev",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--db",
                str(axme_dir / "data" / "bench.db"),
                "--ready-file",
                str(axme_dir / "ready"),
                "--api-key",
                API_KEY,
                "--rate-limit",  # the ceiling is measured, not the per-key limit
                "0",
            ],
            axme_dir,
            axme_dir / "ready",
            env,
        )
        servers.append(axme)
        axme.start()
        for clients, count in counts.items():
            print(f"axme dev, {clients} client(s), {count:,} durable creates ...", flush=True)
            rows.append(drive(axme, "axme", "axme", clients, count))
        code = axme.stop()
        if code not in (0, None):
            print(f"warning: axme dev exited with {code} on SIGTERM:\n{axme.log_tail()}", file=sys.stderr)
    except ServerFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        status = 2
    except KeyboardInterrupt:
        print("\ninterrupted; stopping the servers", file=sys.stderr)
        status = 130
    finally:
        for server in reversed(servers):
            server.stop()
        shutil.rmtree(root, ignore_errors=True)

    if status in (2, 130):
        return status

    add_ratios(rows)
    goal_text, goal = goal_line(rows)
    print()
    print(render(rows))
    print()
    print(goal_text)
    for line in notes(rows):
        print(line)
    errors = sum(r.errors for r in rows)

    result = {
        "benchmark": "create_throughput",
        "mode": mode,
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "sqlite": sqlite3.sqlite_version,
        },
        "code": git_state(),
        "counts": preset,
        "goal": goal,
        "errors": errors,
        "rows": [asdict(r) for r in rows],
    }
    out = args.json_out
    if out is None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"create_throughput-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nresults: {out}")
    if errors:
        print(f"{errors} request(s) failed; see the error samples above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

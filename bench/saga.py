#!/usr/bin/env python3
"""The order saga (reserve -> charge -> ship, and the failure path: ship fails, refund and release undo the rest)
end to end on axme and on its peers, DBOS and Restate, on this machine, in the same run.

    .venv/bin/python bench/saga.py              # full: 200 workflows at 1 client, 2,000 at 32, per path
    .venv/bin/python bench/saga.py --quick      # under 2 minutes
    .venv/bin/python bench/saga.py --smoke      # axme only, a few workflows; proves it works
    .venv/bin/python bench/saga.py --only dbos  # one system (axme | dbos | restate)

The peers come from ``bench/setup.sh`` (a venv and an npm folder outside the repo, ``$AXME_BENCH_PEERS`` or
``~/.cache/axme-bench-peers``); a peer that is not installed is skipped with a line saying so.

Systems (each step is a trivial function returning a small dict, no retries, so the failure path is deterministic):

``axme``               ``axme dev`` (temp SQLite) and THREE agent processes (``axme agents run`` inventory, payment,
                       shipping with ``--handler saga_handlers:handle --concurrency 64 --ack-after 0``). A workflow is
                       ``POST /v1/scenarios/apply`` (order-saga.json with ``max_retries`` 0 and a ``fail`` flag in the
                       payload), then the parent intent's event stream until COMPLETED / FAILED.
``dbos (in-process)``  a DBOS workflow (three steps, the compensation in ``except``) on SQLite, called straight from
                       asyncio tasks in the same process: no HTTP at all. Its CPU includes its own load generator.
``dbos (uvicorn)``     the same workflow behind uvicorn: ``POST /order`` answers with the workflow's result.
``axme-pg x1|x3``      with ``--postgres``: ``axme server`` on a new PostgreSQL database, 1 and then 3 replicas, the
                       load spread round robin over them and agent i connected to replica i mod n. Its CPU includes
                       the PostgreSQL backends serving that database (not the server's shared background writers).
``restate``            ``restate-server`` (from npm) and the service (restate-sdk under hypercorn, three ``ctx.run``
                       steps, the undo in ``except TerminalError``), invoked over the ingress: POST /OrderSaga/place.

Every system runs each path (``ok``, ``fail``) at 1 and 32 concurrent clients (closed loop, after a warm-up).
``wf/s`` workflows finished per second; ``p50/p99 ms`` end to end as the client saw it; ``CPU ms/wf`` the CPU time
(user + system) of every process of that system (/proc/<pid>/stat) per workflow; ``axme/peer`` axme's wf/s divided
by the peer's at the same path and clients (above 1x: axme is faster), ``CPU axme/peer`` axme's CPU ms/wf over the
peer's (below 1x: axme is cheaper). Results: ``bench/results/saga-<UTC timestamp>.json`` (or ``--json-out``).
Exit status 0 when all ran without errors, 1 when some workflows failed, 2 when axme could not be started.
Everything listens on 127.0.0.1, is stopped by PID, and the temp dir is removed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
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
BUNDLE = REPO / "axme_cli" / "examples" / "order-saga.json"
CLIENTS = (1, 32)
PATHS = ("ok", "fail")
PRESETS: dict[str, dict[str, int]] = {
    "full": {"count_1": 200, "count_32": 2000, "fail_share": 4, "warmup": 20},
    "quick": {"count_1": 40, "count_32": 400, "fail_share": 4, "warmup": 5},
    "smoke": {"count_1": 4, "count_32": 16, "fail_share": 2, "warmup": 1},
}


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
    vs_peer: float | None = None  # on peer rows: axme wf/s / this wf/s
    cpu_vs_peer: float | None = None  # on peer rows: axme CPU ms/wf / this


def make_row(system: str, path: str, clients: int, latencies: list[float], errors: Counter[str], samples: list[str],
             seconds: float, cpu: float | None) -> Row:
    lat = sorted(latencies)
    done = len(lat)
    p50, p99 = _percentile(lat, 0.5), _percentile(lat, 0.99)
    return Row(system, path, clients, done, sum(errors.values()), round(seconds, 4),
               round(done / seconds, 1) if seconds > 0 else 0.0,
               None if p50 is None else round(p50 * 1000, 2), None if p99 is None else round(p99 * 1000, 2),
               None if cpu is None or not done else round(cpu * 1000 / done, 3), dict(errors), samples)


# ---------------------------------------------------------------------------------------------------------------
# processes and ports


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A process we started, stopped by its PID (SIGTERM, then SIGKILL)."""

    def __init__(self, name: str, args: list[str], workdir: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log = workdir / f"{name}.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode


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
        time.sleep(0.1)


def http_json(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"null")


def cpu_of(pids: list[int]) -> float | None:
    values = [process_cpu(pid) for pid in pids]
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


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


async def run_phases(system: str, one: Any, pids: list[int] | Any, preset: dict[str, int]) -> list[Row]:
    """``pids``: the processes whose CPU counts, or a function giving them (processes may come and go)."""
    current = pids if callable(pids) else (lambda: pids)
    rows = []
    for clients in CLIENTS:
        for path in PATHS:
            count = preset[f"count_{clients}"]
            if path == "fail":
                count = max(1, count // preset["fail_share"])
            fail = path == "fail"
            print(f"{system}: {path} path, {clients} client(s), {count:,} workflows ...", flush=True)
            await closed_loop(one, clients, min(count, max(preset["warmup"], clients)), fail, f"w{clients}{path}")
            before = {pid: process_cpu(pid) for pid in current()}
            t0 = time.perf_counter()
            lat, errors, samples = await closed_loop(one, clients, count, fail, f"m{clients}{path}")
            seconds = time.perf_counter() - t0
            after = {pid: process_cpu(pid) for pid in current()}
            # A process that started during the phase counts fully; one that ended is left out.
            cpu0 = sum(v for pid, v in before.items() if v is not None and after.get(pid) is not None)
            cpu1 = sum(v for v in after.values() if v is not None)
            if any(v is None for v in before.values()):
                cpu0 = cpu1 = None  # type: ignore[assignment]
            cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
            rows.append(make_row(system, path, clients, lat, errors, samples, seconds, cpu))
    return rows


def _session(clients: int = 32, headers: dict[str, str] | None = None) -> Any:
    import aiohttp

    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=max(CLIENTS) + 4),
                                 timeout=aiohttp.ClientTimeout(total=120), headers=headers)


# ---------------------------------------------------------------------------------------------------------------
# axme


def saga_bundle() -> dict[str, Any]:
    bundle = json.loads(BUNDLE.read_text())
    for step in bundle["workflow"]["steps"]:
        step["retry"] = {"max_retries": 0, "retry_delay_seconds": 1}
        if "compensate" in step:
            step["compensate"]["retry"] = {"max_retries": 0, "retry_delay_seconds": 1}
    return bundle


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
    pids = [server.pid for server in servers]
    for n, agent in enumerate(applied["agents"]):
        name = agent["address"].rsplit("/", 1)[-1]
        sa_id = http_json("GET", f"{url}/v1/agents/{name}", headers=admin)["agent"]["service_account_id"]
        token = http_json("POST", f"{url}/v1/service-accounts/{sa_id}/keys", {}, admin)["key"]["token"]
        proc = Proc(f"agent-{name}", [sys.executable, "-m", "axme_cli", "agents", "run", agent["address"],
                                      "--api-key", token, "--base-url", urls[n % len(urls)],
                                      "--handler", "saga_handlers:handle",
                                      "--concurrency", "64", "--ack-after", "0"], work, agent_env)
        procs.append(proc)
        pids.append(proc.pid)
    template = bundle["intent"]["payload"]
    turn = iter(range(1 << 62))
    pg_pids = (lambda: postgres_backends(database_url)) if database_url else (lambda: [])

    async with _session(headers={**admin, "content-type": "application/json"}) as session:

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

        for proc in procs[replicas:]:
            if not proc.alive():
                raise ServerFailed(f"{proc.name} exited:\n{proc.log_tail()}")
        return await run_phases(system, one, lambda: pids + pg_pids(), preset)


def postgres_backends(database_url: str) -> list[int]:
    """The PostgreSQL server processes serving this database now (their CPU counts as axme's)."""
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                            (name,)).fetchall()
    return [int(r[0]) for r in rows]


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


# ---------------------------------------------------------------------------------------------------------------
# DBOS


def run_dbos_inproc(root: Path, preset: dict[str, int], procs: list[Any]) -> list[Row]:
    work = root / "dbos-inproc"
    work.mkdir()
    phases, keys = [], []
    for clients in CLIENTS:
        for path in PATHS:
            count = preset[f"count_{clients}"]
            if path == "fail":
                count = max(1, count // preset["fail_share"])
            phases.append([clients, count, min(count, max(preset["warmup"], clients)), path == "fail"])
            keys.append((clients, path, count))
    print(f"dbos (in-process): {len(phases)} phases in one process ...", flush=True)
    proc = subprocess.Popen([str(PEER_PY), str(HERE / "saga_peers.py"), "dbos-inproc", "--db",
                             str(work / "dbos.sqlite"), "--phases", json.dumps(phases)], cwd=work,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    procs.append(proc)
    out, err = proc.communicate(timeout=1800)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or len(lines) != len(phases):
        print(f"dbos (in-process) failed (exit {proc.returncode}):\n{err[-1500:]}", file=sys.stderr)
    rows = []
    for (clients, path, _count), line in zip(keys, lines, strict=False):
        data = json.loads(line)
        errors = Counter(e.split(":")[0][:60] for e in data["errors"])
        rows.append(make_row("dbos (in-process)", path, clients, data["latencies"], errors, data["errors"][:5],
                             data["seconds"], data["cpu"]))
    return rows


async def run_http_peer(system: str, url: str, pids: list[int], preset: dict[str, int]) -> list[Row]:
    async with _session(headers={"content-type": "application/json"}) as session:

        async def one(order_id: str, fail: bool) -> str | None:
            async with session.post(url, json={"order_id": order_id, "fail": fail}) as resp:
                text = await resp.text()
                if resp.status != 200:
                    return f"HTTP {resp.status}: {text[:200]}"
            status = json.loads(text).get("status")
            want = "FAILED" if fail else "COMPLETED"
            return None if status == want else f"wrong end {status}: {text[:200]}"

        return await run_phases(system, one, pids, preset)


async def run_dbos_uvicorn(root: Path, preset: dict[str, int], procs: list[Any]) -> list[Row]:
    work = root / "dbos-uvicorn"
    work.mkdir()
    port = free_port()
    proc = Proc("dbos-uvicorn", [str(PEER_PY), str(HERE / "saga_peers.py"), "dbos-serve", "--db",
                                 str(work / "dbos.sqlite"), "--port", str(port)], work)
    procs.append(proc)
    wait_http(f"http://127.0.0.1:{port}/health", proc)
    return await run_http_peer("dbos (uvicorn)", f"http://127.0.0.1:{port}/order", [proc.pid], preset)


# ---------------------------------------------------------------------------------------------------------------
# Restate


def restate_binary() -> Path | None:
    found = sorted(glob.glob(str(PEERS / "node_modules" / "@restatedev" / "restate-server-*" / "bin" /
                                 "restate-server")))
    return Path(found[0]) if found else None


async def run_restate(root: Path, preset: dict[str, int], procs: list[Any]) -> list[Row]:
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
    svc = Proc("restate-service", [str(PEER_PY), str(HERE / "saga_peers.py"), "restate-serve", "--port",
                                   str(service)], work)
    procs.append(svc)
    wait_http(f"http://127.0.0.1:{admin}/health", server)
    wait_http(f"http://127.0.0.1:{ingress}/restate/health", server)
    deadline = time.monotonic() + 30
    while True:
        try:
            http_json("POST", f"http://127.0.0.1:{admin}/deployments", {"uri": f"http://127.0.0.1:{service}"})
            break
        except (OSError, urllib.error.HTTPError) as exc:
            if time.monotonic() > deadline:
                raise ServerFailed(f"restate: cannot register the service: {exc}\n{svc.log_tail()}") from exc
            time.sleep(0.3)
    return await run_http_peer("restate", f"http://127.0.0.1:{ingress}/OrderSaga/place", [server.pid, svc.pid],
                               preset)


# ---------------------------------------------------------------------------------------------------------------
# report


def add_ratios(rows: list[Row]) -> None:
    axme = {(r.path, r.clients): r for r in rows if r.system == "axme"}
    for r in rows:
        a = axme.get((r.path, r.clients))
        if r.system.startswith("axme") or a is None:
            continue
        if r.per_s and a.per_s:
            r.vs_peer = a.per_s / r.per_s
        if r.cpu_ms_per_wf and a.cpu_ms_per_wf:
            r.cpu_vs_peer = a.cpu_ms_per_wf / r.cpu_ms_per_wf


def replica_scaling(rows: list[Row]) -> float | None:
    per_s = {r.system: r.per_s for r in rows if r.path == "ok" and r.clients == max(CLIENTS)}
    one, three = per_s.get("axme-pg x1"), per_s.get("axme-pg x3")
    return three / one if one and three else None


def render(rows: list[Row]) -> str:
    head = ["system", "path", "clients", "workflows", "errors", "wf/s", "p50 ms", "p99 ms", "CPU ms/wf",
            "axme/peer", "CPU axme/peer"]
    body = [[r.system, r.path, str(r.clients), f"{r.workflows:,}", str(r.errors), f"{r.per_s:,.1f}",
             _num(r.p50_ms, ".1f"), _num(r.p99_ms, ".1f"), _num(r.cpu_ms_per_wf, ".2f"), _ratio(r.vs_peer),
             _ratio(r.cpu_vs_peer)] for r in rows]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]

    def fmt(line: list[str]) -> str:
        cells = [line[0].ljust(widths[0]), line[1].ljust(widths[1])]
        cells += [cell.rjust(w) for cell, w in zip(line[2:], widths[2:], strict=True)]
        return "  ".join(cells).rstrip()

    return "\n".join([fmt(head), "-" * len(fmt(head)), *(fmt(line) for line in body)])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The order saga on axme, DBOS and Restate, same machine, same run.",
                                     epilog="See the module docstring for how to read the table.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="smaller counts; under 2 minutes")
    mode.add_argument("--smoke", action="store_true", help="axme only, a few workflows; seconds")
    parser.add_argument("--only", choices=["axme", "axme-pg", "dbos", "restate"], help="run one system")
    parser.add_argument("--postgres", nargs="?", const=DEFAULT_PG, metavar="URL",
                        help="also run `axme server` on PostgreSQL with 1 and then 3 replicas, each run on a new "
                             f"database of this server, dropped afterwards [URL default: {DEFAULT_PG}]")
    parser.add_argument("--count-1", type=int, metavar="N", help="workflows at 1 client (ok path)")
    parser.add_argument("--count-32", type=int, metavar="N", help="workflows at 32 clients (ok path)")
    parser.add_argument("--json-out", type=Path, metavar="PATH", help="write the results here")
    parser.add_argument("--tmp-dir", type=Path, metavar="DIR", help="make the temp dir under DIR")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    preset = dict(PRESETS[mode])
    for n in CLIENTS:
        value = getattr(args, f"count_{n}")
        if value is not None:
            preset[f"count_{n}"] = max(1, value)
    systems = [args.only] if args.only else ["axme"] if args.smoke else ["axme", "dbos", "restate"]
    if args.postgres and "axme-pg" not in systems:
        systems.insert(1, "axme-pg")
    signal.signal(signal.SIGTERM, _on_sigterm)
    root = Path(tempfile.mkdtemp(prefix="axme-saga-", dir=args.tmp_dir))
    started = datetime.now(UTC)
    rows: list[Row] = []
    skipped: list[str] = []
    status = 0
    print(f"axme saga bench ({mode}): {', '.join(systems)}; temp dir {root}", flush=True)
    try:
        for system in systems:
            procs: list[Any] = []
            try:
                if system == "axme":
                    rows += asyncio.run(run_axme(root, preset, procs))
                elif system == "axme-pg":
                    for replicas in (1, 3):
                        with postgres_database(args.postgres or DEFAULT_PG) as url:
                            try:
                                rows += asyncio.run(run_axme(root, preset, procs, f"axme-pg x{replicas}", url,
                                                             replicas))
                            finally:
                                for proc in reversed(procs):
                                    proc.stop()
                                procs.clear()
                elif not PEER_PY.exists():
                    skipped.append(f"{system}: skipped, no peers venv at {PEER_PY} (run bench/setup.sh)")
                elif system == "dbos":
                    if subprocess.run([str(PEER_PY), "-c", "import dbos"], capture_output=True).returncode:
                        skipped.append(f"dbos: skipped, not installed in {PEER_PY} (run bench/setup.sh)")
                        continue
                    rows += run_dbos_inproc(root, preset, procs)
                    rows += asyncio.run(run_dbos_uvicorn(root, preset, procs))
                elif system == "restate":
                    if restate_binary() is None or subprocess.run(
                            [str(PEER_PY), "-c", "import restate, hypercorn"], capture_output=True).returncode:
                        skipped.append(f"restate: skipped, restate-server or restate-sdk missing under {PEERS} "
                                       "(run bench/setup.sh)")
                        continue
                    rows += asyncio.run(run_restate(root, preset, procs))
            except ServerFailed as exc:
                print(f"error: {system}: {exc}", file=sys.stderr)
                skipped.append(f"{system}: could not be started (see the error above)")
                if system == "axme":
                    status = 2
            finally:
                for proc in reversed(procs):
                    if isinstance(proc, subprocess.Popen):
                        if proc.poll() is None:
                            proc.kill()
                            proc.wait(10)
                    else:
                        proc.stop()
    except KeyboardInterrupt:
        print("\ninterrupted; stopped what was started", file=sys.stderr)
        status = 130
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if status == 130:
        return status

    add_ratios(rows)
    print()
    print(render(rows))
    scaling = replica_scaling(rows)
    if scaling is not None:
        print(f"PostgreSQL, 3 replicas / 1 replica, ok path at 32 clients: {scaling:.2f}x wf/s")
    for line in skipped:
        print(line)
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
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "code": git_state(),
        "counts": preset,
        "skipped": skipped,
        "errors": errors,
        "postgres_replica_scaling": replica_scaling(rows),
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

#!/usr/bin/env python3
"""Where a workflow's CPU goes on PostgreSQL: the order saga's ok path against ``axme server`` (or ``axme dev``),
with the CPU split by process (each replica, the agents, the PostgreSQL backends serving the database) and the
database's own counts per workflow.

    .venv/bin/python bench/pg_profile.py                        # 1 replica, 32 clients, 400 workflows
    .venv/bin/python bench/pg_profile.py --replicas 3 --clients 1 --count 100
    .venv/bin/python bench/pg_profile.py --sqlite               # axme dev, for comparison
    .venv/bin/python bench/pg_profile.py --py-spy out.txt       # and sample replica 0 with py-spy (if installed)
    .venv/bin/python bench/pg_profile.py --callgrind out.cg     # and count replica 0's instructions (valgrind)

A copy of this file in another checkout's bench/ runs that checkout's runtime (set PYTHONPATH to it for the agents).

Columns: ``wf/s`` and ``p50 ms`` as ``bench/saga.py`` counts them; ``CPU ms/wf`` per group of processes
(/proc/<pid>/stat, user + system) and in all; per workflow, from ``GET /metrics`` of every replica,
``axme_store_statements_total`` and ``axme_store_commits_total`` (when the runtime has them), PostgreSQL's CPU by
what each of its processes does (``postgres_roles``: writers, readers, LISTEN connections, the server's own), and from
``pg_stat_database`` of the bench's database: transactions committed (read-only ones too) and rows inserted,
updated and fetched. The load runs in this process; its CPU is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from create_throughput import Server, _percentile, process_cpu, thread_cpu  # noqa: E402
from saga import (  # noqa: E402
    API_KEY,
    DEFAULT_PG,
    Proc,
    _session,
    axme_workflow,
    closed_loop,
    http_json,
    postgres_database,
    postgres_processes,
    saga_bundle,
)

COUNTERS = ("axme_store_statements_total", "axme_store_commits_total")
HISTOGRAMS = ("axme_store_commit_seconds", "axme_store_commit_batch_size")
DB_STATS = ("xact_commit", "tup_inserted", "tup_updated", "tup_fetched", "tup_returned", "blks_hit")


def sys_and_switches(pid: int) -> tuple[float, int]:
    """System CPU seconds and context switches (voluntary and not) of a process so far."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            data = f.read()
        stime = int(data[data.rindex(")") + 2:].split()[12]) / os.sysconf("SC_CLK_TCK")
        switches = 0
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.endswith("ctxt_switches:") or "ctxt_switches:" in line:
                    switches += int(line.split()[1])
        return stime, switches
    except (OSError, ValueError, IndexError):
        return 0.0, 0


def io_calls(pid: int) -> tuple[int, int]:
    """Read and write system calls of a process so far (/proc/<pid>/io ``syscr``, ``syscw``: socket sends and
    receives count, as do the database's reads and writes)."""
    try:
        with open(f"/proc/{pid}/io", encoding="ascii") as f:
            fields = dict(line.split(": ", 1) for line in f.read().splitlines())
        return int(fields["syscr"]), int(fields["syscw"])
    except (OSError, ValueError, KeyError):
        return 0, 0


def thread_names(pid: int) -> dict[int, str]:
    """Thread id -> its name (the main thread is the event loop; a pool's threads share a name)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm", encoding="utf-8") as f:
                name = f.read().strip()
        except OSError:
            continue
        out[int(tid)] = "loop" if int(tid) == pid else name.rstrip("0123456789_")
    return out


def postgres_roles(database_url: str, pids: list[int]) -> dict[int, str]:
    """What each PostgreSQL process of the run does, from its last statement: a replica's LISTEN connection
    ("listen"), its writer (last statement a COMMIT, ROLLBACK or a batch's end, checked or not), a read connection
    ("read"), or the server's own processes ("server")."""
    import psycopg

    admin, name = database_url.rsplit("/", 1)
    with psycopg.connect(admin + "/postgres", autocommit=True) as conn:
        rows = conn.execute("SELECT pid, backend_type, query FROM pg_stat_activity WHERE pid = ANY(%s)",
                            (pids,)).fetchall()
    roles = {}
    for pid, kind, query in rows:
        query = (query or "").lstrip()
        if kind != "client backend":
            roles[pid] = "server"
        elif query.startswith("LISTEN"):
            roles[pid] = "listen"
        elif query.startswith(("COMMIT", "ROLLBACK", "WITH kc", "WITH w", "WITH e", "SET LOCAL", "BEGIN")):
            roles[pid] = "write"
        else:
            roles[pid] = "read"
    return {p: roles.get(p, "server") for p in pids}


def scrape(url: str) -> dict[str, float]:
    req = urllib.request.Request(url + "/metrics", headers={"x-api-key": API_KEY})
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in COUNTERS or name.removesuffix("_sum").removesuffix("_count") in HISTOGRAMS:
            out[name] = float(value)
    return out


def db_stats(database_url: str) -> dict[str, float]:
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        row = conn.execute(f"SELECT {', '.join(DB_STATS)} FROM pg_stat_database WHERE datname = %s",
                           (name,)).fetchone()
        scans = conn.execute("SELECT relname, seq_scan, seq_tup_read FROM pg_stat_user_tables").fetchall()
    out = dict(zip(DB_STATS, (float(v) for v in row), strict=True)) if row else {}
    for relname, seq_scan, seq_read in scans:
        out[f"seq_scan {relname}"] = float(seq_scan or 0)
        out[f"seq_read {relname}"] = float(seq_read or 0)
    return out


def toggle(args: argparse.Namespace, pid: int, state: str) -> None:
    """With ``--callgrind``: replica 0's instructions counted from here ("on") or no more ("off")."""
    if args.callgrind:
        subprocess.run(["callgrind_control", "-i", state, str(pid)], check=True, stdout=subprocess.DEVNULL)


async def run(args: argparse.Namespace, work: Path, database_url: str | None) -> dict[str, Any]:
    env = dict(os.environ, AXME_CONFIG_DIR=str(work / "config"), AXME_DATA_DIR=str(work / "data"))
    env.pop("AXME_DEV_API_KEY", None)
    procs: list[Any] = []
    try:
        servers = []
        for i in range(args.replicas):
            ready = work / f"ready-{i}"
            where = ["dev", "--db", str(work / "data" / "saga.db")] if database_url is None else [
                "server", "--database-url", database_url, "--replica-id", f"r{i}"]
            # under callgrind, instructions are counted only while the measured workflows run (``toggle``)
            wrap = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={args.callgrind}"
                    ] if args.callgrind and i == 0 else []
            server = Server(f"server-{i}", [*wrap, sys.executable, "-m", "axme_cli", *where, "--host", "127.0.0.1",
                                            "--port", "0", "--ready-file", str(ready), "--api-key", API_KEY,
                                            "--redelivery-seconds", "30", "--rate-limit", "0"], work, ready, env)
            procs.append(server)
            server.start(timeout=300.0 if wrap else 30.0)
            servers.append(server)
        urls = [s.url for s in servers]
        admin = {"x-api-key": API_KEY}
        bundle = saga_bundle()
        applied = http_json("POST", urls[0] + "/v1/scenarios/apply", {**bundle, "intent": {
            **bundle["intent"], "payload": {**bundle["intent"]["payload"], "order_id": "provision", "fail": False}}},
            admin)
        agent_env = dict(env, PYTHONPATH=os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH", "")) if p))
        agents = []
        for n, agent in enumerate(applied["agents"]):
            name = agent["address"].rsplit("/", 1)[-1]
            sa_id = http_json("GET", f"{urls[0]}/v1/agents/{name}", headers=admin)["agent"]["service_account_id"]
            token = http_json("POST", f"{urls[0]}/v1/service-accounts/{sa_id}/keys", {}, admin)["key"]["token"]
            agents.append(Proc(f"agent-{name}", [sys.executable, "-m", "axme_cli", "agents", "run", agent["address"],
                                                 "--api-key", token, "--base-url", urls[n % len(urls)],
                                                 "--handler", "saga_handlers:handle", "--concurrency", "64",
                                                 "--ack-after", "0"], work, agent_env))
            procs.append(agents[-1])
        async with _session(headers={**admin, "content-type": "application/json"}) as session:
            one = axme_workflow(session, urls, bundle)

            await closed_loop(one, args.clients, max(args.clients, 10), False, "warm")
            groups = {"replicas": [s.pid for s in servers], "agents": [a.pid for a in agents]}
            if database_url:
                groups["postgres"] = postgres_processes(database_url)
            threads0 = thread_cpu(servers[0].pid)
            sw0 = [sys_and_switches(p) for p in groups["replicas"]]
            cpu0 = {g: [process_cpu(p) or 0.0 for p in pids] for g, pids in groups.items()}
            io0 = {g: [io_calls(p) for p in pids] for g, pids in groups.items() if g != "postgres"}
            pids0 = {g: list(pids) for g, pids in groups.items()}  # groups["postgres"] grows during the run
            metrics0 = [scrape(u) for u in urls]
            stats0 = db_stats(database_url) if database_url else {}
            spy = None
            if args.py_spy:
                beside = Path(sys.executable).parent / "py-spy"
                gil = ["--gil"] if args.gil else ["--idle"] if args.idle else []
                spy = subprocess.Popen([str(beside) if beside.exists() else "py-spy", "record", "-p",
                                        str(servers[0].pid), "-o", args.py_spy, "-f", "raw", "-r", "200",
                                        "--nonblocking", *gil], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            toggle(args, servers[0].pid, "on")
            t0 = time.perf_counter()
            lat, errors, samples = await closed_loop(one, args.clients, args.count, False, "m")
            seconds = time.perf_counter() - t0
            toggle(args, servers[0].pid, "off")
            if spy is not None:
                spy.send_signal(2)
                spy.wait(30)
            if database_url:  # backends that came during the run count fully
                groups["postgres"] = sorted(set(groups["postgres"]) | set(postgres_processes(database_url)))
            threads1 = thread_cpu(servers[0].pid)
            sw1 = [sys_and_switches(p) for p in groups["replicas"]]
            cpu1 = {g: [process_cpu(p) or 0.0 for p in pids] for g, pids in groups.items()}
            io1 = {g: [io_calls(p) for p in pids] for g in io0 for pids in [groups[g]]}
            metrics1 = [scrape(u) for u in urls]
            stats1 = db_stats(database_url) if database_url else {}
        done = len(lat)
        per_wf = max(done, 1)
        result: dict[str, Any] = {
            "replicas": args.replicas, "clients": args.clients, "workflows": done, "errors": dict(errors),
            "error_samples": samples, "wf_per_s": round(done / seconds, 1),
            "p50_ms": round((_percentile(sorted(lat), 0.5) or 0) * 1000, 2),
            "cpu_ms_per_wf": {}, "per_wf": {},
        }
        total = 0.0
        for g in groups:
            before = dict(zip(pids0[g], cpu0[g], strict=True))
            used = sum(v - before.get(p, 0.0) for p, v in zip(groups[g], cpu1[g], strict=True))
            result["cpu_ms_per_wf"][g] = round(used * 1000 / per_wf, 3)
            total += used
        result["cpu_ms_per_wf"]["total"] = round(total * 1000 / per_wf, 3)
        if database_url:
            roles = postgres_roles(database_url, groups["postgres"])
            before = dict(zip(pids0["postgres"], cpu0["postgres"], strict=True))
            by_role: dict[str, float] = {}
            for pid, used in zip(groups["postgres"], cpu1["postgres"], strict=True):
                by_role[roles[pid]] = by_role.get(roles[pid], 0.0) + used - before.get(pid, 0.0)
            result["cpu_ms_per_wf"]["postgres by role"] = {k: round(v * 1000 / per_wf, 3) for k, v in
                                                           sorted(by_role.items(), key=lambda kv: -kv[1])}
        result["cpu_ms_per_wf"]["replicas (system)"] = round(
            sum(b[0] - a[0] for a, b in zip(sw0, sw1, strict=True)) * 1000 / per_wf, 3)
        result["per_wf"]["replica context switches"] = round(
            sum(b[1] - a[1] for a, b in zip(sw0, sw1, strict=True)) / per_wf, 1)
        for g in io0:
            for i, what in enumerate(("read", "write")):
                calls = sum(b[i] - a[i] for a, b in zip(io0[g], io1[g], strict=True))
                result["per_wf"][f"{g} {what} syscalls"] = round(calls / per_wf, 1)
        names = thread_names(servers[0].pid)
        by_name: dict[str, float] = {}
        for tid, used in threads1.items():
            name = names.get(tid, "?")
            by_name[name] = by_name.get(name, 0.0) + used - threads0.get(tid, 0.0)
        result["cpu_ms_per_wf"]["replica 0 threads"] = {
            k: round(v * 1000 / per_wf, 3) for k, v in sorted(by_name.items(), key=lambda kv: -kv[1]) if v > 0}
        if args.replicas > 1:
            result["cpu_ms_per_wf"]["each replica"] = [
                round((b - a) * 1000 / per_wf, 3) for a, b in zip(cpu0["replicas"], cpu1["replicas"], strict=True)]
        for name in COUNTERS:
            if all(name in m for m in metrics0 + metrics1):
                used = sum(m1[name] - m0[name] for m0, m1 in zip(metrics0, metrics1, strict=True))
                result["per_wf"][name.removeprefix("axme_store_").removesuffix("_total")] = round(used / per_wf, 2)
        for name in HISTOGRAMS:
            total_n = sum(m1.get(name + "_count", 0) - m0.get(name + "_count", 0)
                          for m0, m1 in zip(metrics0, metrics1, strict=True))
            total_s = sum(m1.get(name + "_sum", 0) - m0.get(name + "_sum", 0)
                          for m0, m1 in zip(metrics0, metrics1, strict=True))
            if total_n:
                result.setdefault("mean", {})[name.removeprefix("axme_store_")] = round(total_s / total_n, 4)
        for name in [*DB_STATS, *(k for k in stats1 if k.startswith("seq_"))]:
            if name in stats0 and name in stats1 and (name in DB_STATS or stats1[name] != stats0[name]):
                result["per_wf"]["pg " + name] = round((stats1[name] - stats0[name]) / per_wf, 2)
        return result
    finally:
        for proc in reversed(procs):
            proc.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--postgres", default=DEFAULT_PG, metavar="URL", help="admin URL; a new database per run")
    parser.add_argument("--sqlite", action="store_true", help="axme dev on SQLite instead")
    parser.add_argument("--py-spy", metavar="FILE", help="sample replica 0 with py-spy into FILE (raw format)")
    parser.add_argument("--callgrind", metavar="FILE", help="run replica 0 under valgrind's callgrind, counting its "
                        "instructions while the measured workflows run, into FILE (callgrind_annotate reads it)")
    parser.add_argument("--gil", action="store_true", help="with --py-spy: only the thread holding the GIL")
    parser.add_argument("--idle", action="store_true", help="with --py-spy: waiting threads too (where time goes)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="axme-pgprof-"))
    for sub in ("config", "data"):
        (work / sub).mkdir()
    try:
        if args.sqlite:
            args.replicas = 1
            result = asyncio.run(run(args, work, None))
        else:
            with postgres_database(args.postgres) as url:
                result = asyncio.run(run(args, work, url))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())

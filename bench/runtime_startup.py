#!/usr/bin/env python3
"""Time and CPU from spawning `axme dev` to its ready file, on a fresh SQLite file and on a migrated one.

Run it from the repo root with the project's venv::

    .venv/bin/python bench/runtime_startup.py                 # 15 runs of each case
    .venv/bin/python bench/runtime_startup.py --quick         # 3 runs of each case
    .venv/bin/python bench/runtime_startup.py --runs 20 --json-out /tmp/rs.json
    # old code against new, in turns: each --python is a venv's interpreter with its own axme_cli installed
    .venv/bin/python bench/runtime_startup.py --python /tmp/old/.venv/bin/python --python .venv/bin/python

What is measured (each run is a fresh process, started in a temp dir so that only the interpreter's installed
``axme_cli`` is imported, never the current directory's):

``python -c pass``   the floor: what any Python process costs here (wall to exit, CPU from ``wait4``).
``dev fresh``        ``python -m axme_cli dev --port 0 --db NEW.db --ready-file F --api-key K``: a database file
                     that does not exist yet, so the start-up creates and migrates it.
``dev migrated``     the same on a database that an earlier (unmeasured) start migrated.

Wall time runs from spawn until the ready file exists (polled every 2 ms). CPU is the child's on-CPU time at that
moment, summed over its threads from ``/proc/PID/task/*/schedstat`` (nanoseconds; ``utime+stime`` of
``/proc/PID/stat``, 10 ms ticks, where schedstat is missing). The runtime is then stopped by its PID (SIGTERM).

Bytecode is cached as for an installed axme: PYTHONDONTWRITEBYTECODE is dropped and PYTHONPYCACHEPREFIX points
into the temp dir (or stays where the caller pointed it), which one unmeasured warm-up round fills. The cases (and
the interpreters) take turns, so a slow moment of the machine is spread over all of them. The table gives medians
and 90th percentiles (nearest rank) in ms, and the 1-minute load average before and after. Results go to
``bench/results/runtime_startup-<UTC>.json`` (or ``--json-out``). Exit status: 0 when every run became ready, 1
otherwise (the table still prints).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cli_startup import clean_env, parse_bench_args, percentile, stop_process, write_result  # noqa: E402

RESULTS = HERE / "results"
API_KEY = "bench-admin-key-0123456789abcdef"
TICK_MS = 1000.0 / os.sysconf("SC_CLK_TCK")


@dataclass
class Case:
    python: str
    kind: str  # "floor" | "fresh" | "migrated"
    wall_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None

    def fail(self, message: str) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = message


def child_cpu_ms(pid: int) -> float:
    """On-CPU time of a running process so far, all its threads."""
    total_ns = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total_ns += int(f.read().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        total_ns = 0
    if total_ns:
        return total_ns / 1e6
    with open(f"/proc/{pid}/stat") as f:  # after the ")" of the command name: utime, stime are fields 14, 15
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_MS


def run_floor(case: Case, env: dict[str, str], cwd: Path, measure: bool) -> None:
    start = time.perf_counter()
    proc = subprocess.Popen([case.python, "-c", "pass"], env=env, cwd=cwd, stdin=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = (time.perf_counter() - start) * 1000.0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        case.fail(f"exit {proc.returncode}")
    elif measure:
        case.wall_ms.append(wall)
        case.cpu_ms.append((usage.ru_utime + usage.ru_stime) * 1000.0)


def run_dev(case: Case, env: dict[str, str], cwd: Path, db: Path, measure: bool, timeout: float = 60.0) -> None:
    ready = cwd / "ready.json"
    ready.unlink(missing_ok=True)
    log = cwd / "runtime.log"
    args = [case.python, "-m", "axme_cli", "dev", "--port", "0", "--db", str(db), "--ready-file", str(ready),
            "--api-key", API_KEY]
    with open(log, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        deadline = start + timeout
        while not ready.exists():
            if proc.poll() is not None:
                case.fail(f"exit {proc.returncode}: {log.read_text(errors='replace')[-500:]}")
                return
            if time.perf_counter() > deadline:
                case.fail(f"not ready within {timeout:.0f} s: {log.read_text(errors='replace')[-500:]}")
                return
            time.sleep(0.002)
        wall = (time.perf_counter() - start) * 1000.0
        cpu = child_cpu_ms(proc.pid)
        if measure:
            case.wall_ms.append(wall)
            case.cpu_ms.append(cpu)
    finally:
        stop_process(proc)


def stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p90": None, "min": None, "max": None}
    return {"median": round(statistics.median(values), 1), "p90": round(percentile(values, 90), 1),
            "min": round(min(values), 1), "max": round(max(values), 1)}


def row(case: Case) -> dict[str, Any]:
    return {"python": case.python, "case": case.kind, "runs": len(case.wall_ms) + case.errors,
            "errors": case.errors, "first_error": case.first_error, "wall_ms": stats(case.wall_ms),
            "cpu_ms": stats(case.cpu_ms), "wall_samples_ms": [round(v, 1) for v in case.wall_ms],
            "cpu_samples_ms": [round(v, 1) for v in case.cpu_ms]}


def table(rows: list[dict[str, Any]], show_python: bool) -> str:
    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    header = ["case", "runs", "wall median", "wall p90", "CPU median", "CPU p90", "CPU range", "errors"]
    if show_python:
        header.insert(0, "python")
    cells = []
    for r in rows:
        w, c = r["wall_ms"], r["cpu_ms"]
        line = [r["case"], str(r["runs"]), fmt(w["median"]), fmt(w["p90"]), fmt(c["median"]), fmt(c["p90"]),
                f"{fmt(c['min'])}-{fmt(c['max'])}", str(r["errors"])]
        cells.append([r["python"], *line] if show_python else line)
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]

    def fmt_line(values: list[str]) -> str:
        return "  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                         for i, (v, w) in enumerate(zip(values, widths, strict=True)))

    return "\n".join([fmt_line(header), *(fmt_line(c) for c in cells)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", action="append", default=None,
                        help="an interpreter whose axme_cli to start (repeat to compare; default: this one)")
    args, runs = parse_bench_args(parser, argv, "case", 15, 3)
    pythons = args.python or [sys.executable]

    load_before = os.getloadavg()[0]
    home = Path(tempfile.mkdtemp(prefix="axme-runtime-startup-", dir=args.tmp_dir))
    env = clean_env(home)
    cases = [Case(py, kind) for py in pythons for kind in ("floor", "fresh", "migrated")]
    work = {id(case): home / f"case{n}" for n, case in enumerate(cases)}
    for path in work.values():
        path.mkdir()
    try:
        for rnd in range(runs + 1):  # round 0: warm-up (bytecode cache, file caches; migrates the kept files)
            measure = rnd > 0
            for case in cases:
                cwd = work[id(case)]
                if case.kind == "floor":
                    run_floor(case, env, cwd, measure)
                elif case.kind == "fresh":
                    db = cwd / f"fresh-{rnd}.db"
                    run_dev(case, env, cwd, db, measure)
                    for leftover in cwd.glob(f"fresh-{rnd}.db*"):
                        if leftover.is_dir():
                            shutil.rmtree(leftover, ignore_errors=True)
                        else:
                            leftover.unlink()
                else:
                    run_dev(case, env, cwd, cwd / "kept.db", measure)
            if rnd == 0:
                for case in cases:
                    case.errors, case.first_error = 0, None
    except KeyboardInterrupt:
        print("runtime_startup: interrupted", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(home, ignore_errors=True)

    rows = [row(case) for case in cases]
    now = datetime.now(UTC)
    load_after = os.getloadavg()[0]
    result = {
        "bench": "runtime_startup",
        "timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "runs": runs,
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "loadavg_1min_before": round(load_before, 2), "loadavg_1min_after": round(load_after, 2)},
        "rows": rows,
    }
    print(f"axme dev start-up: {runs} runs of each case, spawn to ready file, ms ({os.cpu_count()} CPUs, 1-min "
          f"load average {load_before:.1f} before / {load_after:.1f} after)")
    print(table(rows, show_python=len(pythons) > 1))
    out = args.json_out or RESULTS / f"runtime_startup-{now.strftime('%Y%m%dT%H%M%SZ')}.json"
    return write_result(result, out, lambda r: f"{r['case']} ({r['python']})")


if __name__ == "__main__":
    sys.exit(main())

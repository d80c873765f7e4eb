#!/usr/bin/env python3
"""Wall time of short `axme` commands, next to a bare ``python -c pass``, measured in the same run.

Run it from the repo root with the project's venv::

    .venv/bin/python bench/cli_startup.py            # 20 runs of each command
    .venv/bin/python bench/cli_startup.py --quick    # 5 runs of each command
    .venv/bin/python bench/cli_startup.py --runs 50 --json-out /tmp/startup.json

What is measured (each run is a fresh subprocess; the time is from spawning it to its exit, output captured):

``python -c pass``              ``sys.executable -c pass``: the floor, what any Python command costs here.
``axme --help``                 the installed ``axme`` script next to ``sys.executable`` (the console script
                                a user runs), printing the top-level help.
``axme version``                the same script, one command, no config and no network.
``axme intents get ID --json``  the same script against an `axme dev` this script starts (temp database,
                                temp AXME_CONFIG_DIR/AXME_DATA_DIR, ``--port 0``, ``--ready-file``): it reads the
                                context `axme dev` wrote, makes one HTTP request and prints the JSON body.

Every command runs with an environment of its own (temp AXME_CONFIG_DIR/AXME_DATA_DIR, file secrets,
NO_COLOR=1, no AXME_* from your shell), so your own config is neither read nor touched. One unmeasured
warm-up round comes first, then the commands take turns (round-robin), so a slow moment of the machine is spread
over all of them instead of landing on one.

The table shows the median and the 90th percentile (nearest rank) in milliseconds and the median as a multiple
of ``python -c pass``. Below it: whether ``axme --help`` met the goal (median <= 100 ms on this machine). The
header gives the 1-minute load average before and after the run: on a busy machine every row is slower, the ratios
less so.

Results go to ``bench/results/cli_startup-<UTC timestamp>.json`` (or ``--json-out``). Exit status: 0 when every
run exited 0 (and `intents get` printed the intent), 1 when some run failed (the table still prints), 2 when the
``axme`` script or the runtime could not be started. The runtime is stopped by its PID at the end (also on
Ctrl+C) and its temp dir removed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
API_KEY = "bench-admin-key-0123456789abcdef"
GOAL_COMMAND = "axme --help"
GOAL_MS = 100.0


class Fatal(Exception):
    """Something this bench needs could not be started (exit 2)."""


@dataclass
class Case:
    command: str
    argv: list[str]
    samples_ms: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    check: str | None = None  # "intent:<id>": stdout must be that intent's JSON

    def ok(self, proc: subprocess.CompletedProcess[bytes]) -> bool:
        if proc.returncode != 0:
            return False
        if self.check and self.check.startswith("intent:"):
            try:
                body = json.loads(proc.stdout)
            except ValueError:
                return False
            return isinstance(body, dict) and body.get("intent", {}).get("intent_id") == self.check[7:]
        return True


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def clean_env(home: Path) -> dict[str, str]:
    # Measure what an installed axme does: bytecode cached (pip compiles it at install). PYTHONDONTWRITEBYTECODE
    # (set in some dev shells) would recompile every module on every run; the cache goes to a temp prefix, so
    # the work tree is not touched, and the warm-up round fills it. A prefix the caller set (the test suite's,
    # already filled) is kept: it is outside the work tree too, and the warm-up then compiles nothing.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AXME_") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(AXME_CONFIG_DIR=str(home / "config"), AXME_DATA_DIR=str(home / "data"),
               AXME_CLI_SECRET_STORAGE="file", NO_COLOR="1",
               PYTHONPYCACHEPREFIX=os.environ.get("PYTHONPYCACHEPREFIX") or str(home / "pycache"))
    return env


class DevRuntime:
    """`axme dev` on a free port with a temp database; stopped by PID."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home = home
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.log = home / "runtime.log"

    def start(self, timeout: float = 30.0) -> None:
        ready = self.home / "ready.json"
        args = [sys.executable, "-m", "axme_cli", "dev", "--port", "0", "--db", str(self.home / "dev.db"),
                "--ready-file", str(ready), "--api-key", API_KEY]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=REPO)
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.proc.poll() is not None:
                raise Fatal(f"axme dev exited with {self.proc.returncode}:\n{self.log.read_text()}")
            if time.monotonic() > deadline:
                raise Fatal(f"axme dev was not ready within {timeout:.0f} s:\n{self.log.read_text()}")
            time.sleep(0.02)
        self.url = json.loads(ready.read_text())["url"]

    def create_intent(self) -> str:
        body = {"intent_type": "bench.startup.v1", "correlation_id": str(uuid.uuid4()), "to_agent": "inventory",
                "payload": {"order_id": "ord_1"}}
        request = urllib.request.Request(f"{self.url}/v1/intents", data=json.dumps(body).encode(), method="POST",
                                         headers={"content-type": "application/json", "x-api-key": API_KEY})
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(json.loads(response.read())["intent_id"])

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to a process this bench started (a graceful stop), SIGKILL if it is not gone within 15 s."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def run_once(case: Case, env: dict[str, str], measure: bool) -> None:
    start = time.perf_counter()
    proc = subprocess.run(case.argv, env=env, capture_output=True, stdin=subprocess.DEVNULL, cwd=REPO, check=False)
    elapsed_ms = (time.perf_counter() - start) * 1000.0
    if not case.ok(proc):
        case.errors += 1
        if case.first_error is None:
            case.first_error = (f"exit {proc.returncode}: " + proc.stderr.decode(errors="replace").strip()
                                + proc.stdout.decode(errors="replace")[:300]).strip()
    elif measure:
        case.samples_ms.append(elapsed_ms)


def row(case: Case, base_median: float | None) -> dict[str, Any]:
    samples = case.samples_ms
    median = statistics.median(samples) if samples else None
    return {
        "command": case.command,
        "argv": case.argv,
        "runs": len(samples) + case.errors,
        "errors": case.errors,
        "first_error": case.first_error,
        "median_ms": round(median, 2) if median is not None else None,
        "p90_ms": round(percentile(samples, 90), 2) if samples else None,
        "min_ms": round(min(samples), 2) if samples else None,
        "max_ms": round(max(samples), 2) if samples else None,
        "ratio_to_python": round(median / base_median, 2) if median is not None and base_median else None,
        "samples_ms": [round(s, 2) for s in samples],
    }


def table(rows: list[dict[str, Any]]) -> str:
    def fmt(value: float | None, spec: str = ".1f", suffix: str = "") -> str:
        return "-" if value is None else f"{value:{spec}}{suffix}"

    header = ["command", "runs", "median ms", "p90 ms", "vs python -c pass", "errors"]
    cells = [[r["command"], str(r["runs"]), fmt(r["median_ms"]), fmt(r["p90_ms"]),
              fmt(r["ratio_to_python"], ".2f", "x"), str(r["errors"])] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    def line(values: list[str]) -> str:
        return "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths,
                                                                                          strict=True)))

    return "\n".join([line(header), *(line(c) for c in cells)])


def write_result(result: dict[str, Any], out: Path, label: Callable[[dict[str, Any]], str]) -> int:
    """Report the rows' errors (each row named by ``label``), write the JSON result, say where, and return the
    exit status: 1 if a row had errors."""
    for r in result["rows"]:
        if r["errors"]:
            print(f"errors in {label(r)}: {r['errors']}; first: {r['first_error']}", file=sys.stderr)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"Results: {out}")
    return 1 if any(r["errors"] for r in result["rows"]) else 0


def parse_bench_args(parser: argparse.ArgumentParser, argv: list[str] | None, what: str, default_runs: int,
                     quick_runs: int) -> tuple[argparse.Namespace, int]:
    """``--runs``, ``--quick``, ``--json-out`` and ``--tmp-dir`` added to ``parser``; the parsed arguments and the
    number of measured runs of each ``what``."""
    parser.add_argument("--runs", type=int, default=None, help=f"measured runs of each {what} (default "
                        f"{default_runs})")
    parser.add_argument("--quick", action="store_true", help=f"{quick_runs} runs of each {what}")
    parser.add_argument("--json-out", type=Path, default=None, help="where to write the JSON result")
    parser.add_argument("--tmp-dir", type=Path, default=None, help="parent of the temp dir (default: the system's)")
    args = parser.parse_args(argv)
    runs = int(args.runs if args.runs is not None else (quick_runs if args.quick else default_runs))
    if runs < 1:
        parser.error("--runs must be at least 1")
    return args, runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    args, runs = parse_bench_args(parser, argv, "command", 20, 5)

    axme = Path(sys.executable).parent / "axme"
    if not axme.exists():
        print(f"cli_startup: no axme script at {axme}; install the project into this venv "
              f"(`{sys.executable} -m pip install -e .`)", file=sys.stderr)
        return 2

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    load_before = os.getloadavg()[0]
    home = Path(tempfile.mkdtemp(prefix="axme-cli-startup-", dir=args.tmp_dir))
    env = clean_env(home)
    runtime = DevRuntime(home, env)
    try:
        try:
            runtime.start()
            intent_id = runtime.create_intent()
        except (Fatal, OSError) as exc:
            print(f"cli_startup: could not start `axme dev`: {exc}", file=sys.stderr)
            return 2
        cases = [
            Case("python -c pass", [sys.executable, "-c", "pass"]),
            Case("axme --help", [str(axme), "--help"]),
            Case("axme version", [str(axme), "version"]),
            Case("axme intents get ID --json", [str(axme), "intents", "get", intent_id, "--json"],
                 check=f"intent:{intent_id}"),
        ]
        for case in cases:  # warm-up: file caches, the runtime's first request
            run_once(case, env, measure=False)
            case.errors, case.first_error = 0, None
        for _ in range(runs):
            for case in cases:
                run_once(case, env, measure=True)
    except KeyboardInterrupt:
        print("cli_startup: interrupted", file=sys.stderr)
        return 130
    finally:
        runtime.stop()
        shutil.rmtree(home, ignore_errors=True)

    base = statistics.median(cases[0].samples_ms) if cases[0].samples_ms else None
    rows = [row(case, base) for case in cases]
    goal_row = next(r for r in rows if r["command"] == GOAL_COMMAND)
    goal_median = goal_row["median_ms"]
    met = goal_median is not None and goal_median <= GOAL_MS
    now = datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    result = {
        "bench": "cli_startup",
        "timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "runs": runs,
        "axme": str(axme),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "implementation": platform.python_implementation(), "cpus": os.cpu_count(),
                    "processor": platform.processor() or platform.machine(),
                    "loadavg_1min_before": round(load_before, 2), "loadavg_1min_after": round(os.getloadavg()[0], 2)},
        "rows": rows,
        "goal": {"command": GOAL_COMMAND, "limit_ms": GOAL_MS, "median_ms": goal_median, "met": met},
    }
    print(f"axme CLI start-up: {runs} runs of each command, wall time from spawn to exit "
          f"(Python {platform.python_version()}, {os.cpu_count()} CPUs, 1-min load average "
          f"{load_before:.1f} before / {result['machine']['loadavg_1min_after']:.1f} after: other work on the machine "
          "slows every row alike)")
    print(table(rows))
    if goal_median is None:
        print(f"Goal: `{GOAL_COMMAND}` median <= {GOAL_MS:.0f} ms: not measured (every run failed)")
    else:
        verdict = "MET" if met else "NOT MET"
        print(f"Goal: `{GOAL_COMMAND}` median <= {GOAL_MS:.0f} ms: {verdict} ({goal_median:.1f} ms, "
              f"{goal_median - (base or 0):.1f} ms above `python -c pass`)")
    return write_result(result, args.json_out or RESULTS / f"cli_startup-{stamp}.json", lambda r: f"`{r['command']}`")


if __name__ == "__main__":
    sys.exit(main())

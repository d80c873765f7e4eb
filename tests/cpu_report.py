"""Sums up the CPU account of a test run (``AXME_TEST_CPU=path pytest ...``, see tests/conftest.py): per file, per
fixture kind, the slowest tests, the tests that wait most (wall time beyond their CPU), how long each worker sat idle
at the end, and each worker's start-up (interpreter, imports, plugins, collection).

    python -m tests.cpu_report path [--top N]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path


def kind(fixtures: list[str]) -> str:
    """What the test runs on: the session runtime, a module's quiet runtime, a backend of its own making (a
    runtime per test, or a store), or none."""
    for name in ("runtime", "quiet"):
        if name in fixtures:
            return name
    return "backend (own runtime/store)" if "backend" in fixtures else "no backend"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    tests, startups, totals, teardowns = [], [], [], []
    for line in args.path.read_text().splitlines():
        record = json.loads(line)
        if record.get("session_teardown"):
            teardowns.append(record)
        else:
            (startups if record.get("startup") else totals if record.get("total") else tests).append(record)

    def cost(r: dict) -> float:
        return float(r["cpu"]) + float(r["children"])

    whole = sum(cost(r) for r in tests)
    print(f"{len(tests)} tests: {sum(r['cpu'] for r in tests):.1f} s in the test processes "
          f"+ {sum(r['children'] for r in tests):.1f} s in their children = {whole:.1f} s CPU")
    for r in startups:
        print(f"start-up of {r['worker']}: {r['cpu']:.1f} s (+{r['children']:.1f} s children), {r['tests']} tests")
    for r in teardowns:
        print(f"session teardown of {r['worker']} (shared and retired runtimes): {r['cpu']:.1f} s "
              f"(+{r['children']:.1f} s children)")
    for r in totals:
        print(f"total of {r['worker']}: {r['cpu']:.1f} s (+{r['children']:.1f} s children)")

    by_file: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    for r in tests:
        row = by_file[r["file"]]
        row[0] += r["cpu"]
        row[1] += r["children"]
        row[2] += 1
    print(f"\ntop {args.top} files by CPU (s): own + children = total, tests, share")
    for name, (own, children, n) in sorted(by_file.items(), key=lambda kv: -(kv[1][0] + kv[1][1]))[:args.top]:
        share = 100 * (own + children) / whole
        print(f"{own + children:7.1f} {own:7.1f} {children:7.1f} {int(n):5d} {share:5.1f}%  {name}")

    by_kind: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for r in tests:
        by_kind[kind(r["fixtures"])][0] += cost(r)
        by_kind[kind(r["fixtures"])][1] += 1
    print("\nby fixture kind (s CPU, tests)")
    for name, (total, n) in sorted(by_kind.items(), key=lambda kv: -kv[1][0]):
        print(f"{total:7.1f} {int(n):5d}  {name}")

    print(f"\ntop {args.top} tests (s CPU: own + children)")
    for r in sorted(tests, key=cost, reverse=True)[:args.top]:
        print(f"{cost(r):6.2f} {r['cpu']:6.2f} {r['children']:6.2f}  {r['nodeid']}")

    def waiting(r: dict) -> float:  # wall time the test's own processes did not spend on a CPU
        return float(r.get("wall", 0.0)) - cost(r)

    print(f"\ntop {args.top} tests by waiting (s: wall - CPU, wall)")
    for r in sorted(tests, key=waiting, reverse=True)[:args.top]:
        print(f"{waiting(r):6.2f} {r.get('wall', 0.0):6.2f}  {r['nodeid']}")
    ends: dict[str, float] = defaultdict(float)
    for r in tests:
        ends[r["worker"]] = max(ends[r["worker"]], float(r.get("end", 0.0)))
    if all(ends.values()):  # each worker's last test ended this long before the last worker's
        last = max(ends.values())
        print("\nworkers idle at the end: " + ", ".join(f"{w} {last - t:.1f} s" for w, t in sorted(ends.items())))


if __name__ == "__main__":
    main()

"""bench/create_throughput.py --smoke runs end to end: servers start, creates succeed, JSON is written; and
bench/writer.py runs the saga's writes to the end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "create_throughput.py"
WRITER = BENCH.with_name("writer.py")


def test_create_throughput_smoke(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--json-out", str(out), "--tmp-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    result = json.loads(out.read_text())
    axme = [row for row in result["rows"] if row["system"] == "axme"]
    assert axme, result["rows"]
    for row in axme:
        assert row["errors"] == 0, row
        assert row["requests"] > 0 and row["per_s"] > 0, row
    # the temp dir (databases, logs) is removed afterwards
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


@pytest.mark.parametrize("path", [[], ["--fail"]], ids=["ok", "fail"])
def test_writer_bench_runs_the_sagas_writes_to_the_end(path: list[str]) -> None:
    """bench/writer.py: the saga's operations in one process; it checks every workflow COMPLETED (FAILED on the fail
    path) itself and exits 1 otherwise."""
    proc = subprocess.run([sys.executable, str(WRITER), "--count", "6", "--clients", "3", *path],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    fields = dict(part.split("=") for part in proc.stdout.split())
    assert fields["workflows"] == "6" and float(fields["cpu_ms_per_wf"]) > 0, fields


def test_pg_profile_loads_what_it_takes_from_saga() -> None:
    """bench/pg_profile.py borrows the saga bench's client and helpers: a rename there must fail here, not when
    someone next profiles (it runs the real thing only by hand: minutes of load)."""
    proc = subprocess.run([sys.executable, str(BENCH.with_name("pg_profile.py")), "--help"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "--replicas" in proc.stdout


def test_runtime_startup_smoke(tmp_path: Path) -> None:
    """bench/runtime_startup.py starts `axme dev` on a fresh and on a migrated file and reports every run."""
    out = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, str(BENCH.with_name("runtime_startup.py")), "--runs", "1",
                           "--json-out", str(out), "--tmp-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    result = json.loads(out.read_text())
    assert [row["case"] for row in result["rows"]] == ["floor", "fresh", "migrated"]
    for row in result["rows"]:
        assert row["errors"] == 0 and row["runs"] == 1, row
        assert row["wall_ms"]["median"] > 0 and row["cpu_ms"]["median"] > 0, row
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]

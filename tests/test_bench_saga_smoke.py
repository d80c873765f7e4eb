"""bench/saga.py --smoke on axme and on each peer, and bench/hop.py, run end to end: workflows finish, nothing
fails. A peer that is missing or broken fails here instead of dropping out of the comparison (test.sh installs
the peers with bench/setup.sh, from the package registries)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def test_saga_smoke_axme(tmp_path: Path) -> None:
    out = tmp_path / "saga.json"
    _run([str(BENCH / "saga.py"), "--smoke", "--only", "axme", "--json-out", str(out), "--tmp-dir", str(tmp_path)])
    result = json.loads(out.read_text())
    assert result["errors"] == 0
    rows = result["rows"]
    assert {(r["path"], r["clients"]) for r in rows} == {("ok", 1), ("fail", 1), ("ok", 32), ("fail", 32)}
    for row in rows:
        assert row["system"] == "axme"
        assert row["errors"] == 0, row
        assert row["workflows"] > 0 and row["per_s"] > 0, row
    assert [p.name for p in tmp_path.iterdir()] == ["saga.json"]  # the temp dir is removed


@pytest.mark.slow
@pytest.mark.parametrize(("peer", "systems"), [("dbos", {"dbos (in-process)", "dbos (uvicorn)"}),
                                               ("restate", {"restate"})])
def test_saga_smoke_peer(peer: str, systems: set[str], tmp_path: Path) -> None:
    out = tmp_path / "saga.json"
    _run([str(BENCH / "saga.py"), "--smoke", "--only", peer, "--json-out", str(out), "--tmp-dir", str(tmp_path)])
    result = json.loads(out.read_text())
    assert result["skipped"] == [], result["skipped"]  # not installed: run bench/setup.sh
    assert result["errors"] == 0
    rows = result["rows"]
    assert {(r["system"], r["path"], r["clients"]) for r in rows} == \
        {(system, path, clients) for system in systems for path in ("ok", "fail") for clients in (1, 32)}
    for row in rows:
        assert row["errors"] == 0, row
        assert row["workflows"] > 0 and row["per_s"] > 0, row
    assert [p.name for p in tmp_path.iterdir()] == ["saga.json"]  # the temp dir is removed


def test_hop_quick(tmp_path: Path) -> None:
    out = tmp_path / "hop.json"
    _run([str(BENCH / "hop.py"), "--quick", "--count", "20", "--json-out", str(out), "--tmp-dir", str(tmp_path)])
    result = json.loads(out.read_text())
    assert result["errors"] == 0
    assert result["hops"] == 20 and result["p50_ms"] > 0
    assert [p.name for p in tmp_path.iterdir()] == ["hop.json"]

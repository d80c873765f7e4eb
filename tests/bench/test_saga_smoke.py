"""bench/saga.py --smoke on axme and on each peer (DBOS on SQLite in WAL mode and on PostgreSQL, Restate), and
bench/hop.py, run end to end: workflows finish, nothing fails. A peer that is missing fails the run instead of
dropping out of the comparison (test.sh installs the peers at their pinned versions with bench/setup.sh, from the
package registries)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from tests.runtime_proc import PG_ADMIN_URL

BENCH = Path(__file__).resolve().parents[2] / "bench"
PATHS_AND_CLIENTS = {(path, clients) for path in ("ok", "fail") for clients in (1, 32)}


def _run(args: list[str], env: dict[str, str] | None = None, status: int = 0) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL, env=env)
    assert proc.returncode == status, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def _smoke(tmp_path: Path, *extra: str) -> dict[str, Any]:
    out = tmp_path / "saga.json"
    _run([str(BENCH / "saga.py"), "--smoke", *extra, "--json-out", str(out), "--tmp-dir", str(tmp_path)])
    result: dict[str, Any] = json.loads(out.read_text())
    assert result["skipped"] == [] and result["errors"] == 0, result
    for row in result["rows"]:
        assert row["errors"] == 0, row
        assert row["workflows"] > 0 and row["per_s"] > 0, row
        assert row["cpu_ms_per_wf"] > 0 or (row["clients"] == 1 and row["cpu_ms_per_wf"] == 0), row  # 10 ms ticks
    assert [p.name for p in tmp_path.iterdir()] == ["saga.json"]  # the temp dir is removed
    return result


def test_saga_smoke_axme(tmp_path: Path) -> None:
    """Two rounds: each row holds both rounds' figures and reports their medians, its workflows their sum."""
    result = _smoke(tmp_path, "--only", "axme", "--rounds", "2")
    assert {(r["system"], r["path"], r["clients"]) for r in result["rows"]} == \
        {("axme", path, clients) for path, clients in PATHS_AND_CLIENTS}
    assert result["machine"]["cores"] >= 1 and len(result["machine"]["load_before"]) == 3
    assert result["rounds"] == 2
    for row in result["rows"]:
        rounds = row["per_round"]
        assert len(rounds) == 2 and all(r["workflows"] > 0 and r["per_s"] > 0 for r in rounds), row
        assert row["workflows"] == rounds[0]["workflows"] + rounds[1]["workflows"]
        for name in ("per_s", "p50_ms", "p99_ms"):
            # the median of two: their mean, rounded to a tenth (wf/s) or a hundredth (ms)
            assert row[name] == pytest.approx((rounds[0][name] + rounds[1][name]) / 2, abs=0.06), (name, row)


def test_rounds_report_medians_and_ratios_taken_within_each_round() -> None:
    """bench/saga.py --rounds: every figure the median over the rounds, every ratio computed in its own round
    (axme against the peer measured minutes apart) and then its median, with the least and greatest beside it;
    a results file from before --rounds prints as it did."""
    from bench.saga import Row, combine_rounds, markdown

    def row(system: str, per_s: float, cpu: float, label: str) -> Row:
        return Row(system, "ok", 32, 100, 0, 100 / per_s, per_s, 1000 / per_s, 2000 / per_s, cpu,
                   statements_per_wf=cpu, commits_per_wf=0.5, cpu_ms_per_wf_by_process={label: cpu})

    # axme/restate per round: 2.00x, 1.20x, 2.00x (the ratio of the medians, 400 / 250, would be 1.60x);
    # CPU: 0.40x, 0.60x, 0.625x
    rounds = [[row("axme", 400.0, 2.0, "dev [1]"), row("restate", 200.0, 5.0, "restate [2]")],
              [row("axme", 300.0, 3.0, "dev [3]"), row("restate", 250.0, 5.0, "restate [4]")],
              [row("axme", 500.0, 2.5, "dev [5]"), row("restate", 250.0, 4.0, "restate [6]")]]
    axme, restate = combine_rounds(rounds)
    assert (axme.per_s, axme.cpu_ms_per_wf, axme.p50_ms, axme.workflows) == (400.0, 2.5, 2.5, 300)
    assert axme.cpu_ms_per_wf_by_process == {"dev [5]": 2.5}  # the round at the median CPU
    assert axme.vs_peer is None and axme.vs_peer_range is None
    assert (restate.per_s, restate.p99_ms, restate.statements_per_wf) == (250.0, 8.0, 5.0)
    assert restate.baseline == "axme" and restate.vs_peer == 2.0 and restate.vs_peer_range == [1.2, 2.0]
    assert restate.cpu_vs_peer == 0.6 and restate.cpu_vs_peer_range == [0.4, 0.625]
    assert [r["vs_peer"] for r in restate.per_round] == [2.0, 1.2, 2.0]
    assert combine_rounds(rounds[1:])[0].per_s == 400.0  # an even count: the mean of the middle two

    def result(rows: list[Row], **extra: Any) -> dict[str, Any]:
        return {"rows": [asdict(r) for r in rows], "mode": "quick", "started_at": "2026-12-07T12:00:00+00:00",
                "code": {"commit": "0123456789abcdef"}, "skipped": [], **extra,
                "machine": {"cores": 2, "python": "3.11.7", "load_before": [1, 1, 1], "load_after": [2, 2, 2]}}

    table = markdown(result([axme, restate], rounds=3))
    assert "(quick, 3 rounds, " in table
    assert "| restate | ok | 32 | 250.0 | 4.0 | 8.0 | 5.00 | axme | 2.00x (1.20x-2.00x) | 0.60x (0.40x-0.62x) |" \
        in table
    old = [{k: v for k, v in asdict(r).items() if k not in ("per_round", "vs_peer_range", "cpu_vs_peer_range")}
           for r in rounds[0]]
    old_table = markdown(result([]) | {"rows": old})
    assert "(quick), " in old_table and "| restate | ok | 32 | 200.0 | 5.0 | 10.0 | 5.00 | axme | 2.00x | 0.40x |" \
        in old_table


@pytest.mark.slow
@pytest.mark.parametrize(("system", "extra"), [("dbos", ()), ("dbos-pg", ("--postgres", PG_ADMIN_URL)),
                                               ("restate", ())])
def test_saga_smoke_peer(system: str, extra: tuple[str, ...], tmp_path: Path) -> None:
    """Each peer runs the saga, at the versions bench/setup.sh pins (a missing or different one fails here)."""
    result = _smoke(tmp_path, "--only", system, *extra)
    rows = result["rows"]
    assert {(r["system"], r["path"], r["clients"]) for r in rows} == \
        {(system, path, clients) for path, clients in PATHS_AND_CLIENTS}
    peers = result["peers"]
    assert peers["installed"] == {**peers["installed"], **peers["pinned"]}, peers  # every pin, as pinned
    assert peers["settings"][system]["workers"] == 1  # smoke: one worker each
    counted = next(r for r in rows if r["path"] == "ok" and r["clients"] == 32)
    if system.startswith("dbos"):  # DBOS's statements and commits, seen by its SQLAlchemy engine
        assert counted["statements_per_wf"] > counted["commits_per_wf"] > 0, counted
    else:  # Restate has no SQL to count
        assert counted["statements_per_wf"] is None and counted["commits_per_wf"] is None
        assert result["peers"]["installed"]["restate-server"].startswith("restate-server ")


def test_saga_fails_when_a_peer_is_missing(tmp_path: Path) -> None:
    """No peers installed: the run stops before starting anything (exit 3), naming each peer and the fix; with
    --allow-missing-peers it skips them and says so."""
    env = dict(os.environ, AXME_BENCH_PEERS=str(tmp_path / "nothing-here"))
    out = tmp_path / "saga.json"
    args = [str(BENCH / "saga.py"), "--smoke", "--only", "dbos,restate", "--json-out", str(out), "--tmp-dir",
            str(tmp_path)]
    refused = _run(args, env, status=3)
    assert "peer missing: dbos: dbos missing (pinned " in refused.stderr
    assert "peer missing: restate: restate-sdk missing (pinned " in refused.stderr
    assert "bench/setup.sh" in refused.stderr and "--allow-missing-peers" in refused.stderr
    assert list(tmp_path.iterdir()) == []  # nothing started, no results
    _run([*args, "--allow-missing-peers"], env)
    result = json.loads(out.read_text())
    assert result["rows"] == [] and [line.split(":")[0] for line in result["skipped"]] == ["dbos", "restate"]


def test_hop_quick(tmp_path: Path) -> None:
    out = tmp_path / "hop.json"
    _run([str(BENCH / "hop.py"), "--quick", "--count", "20", "--json-out", str(out), "--tmp-dir", str(tmp_path)])
    result = json.loads(out.read_text())
    assert result["errors"] == 0
    assert result["hops"] == 20 and result["p50_ms"] > 0
    assert [p.name for p in tmp_path.iterdir()] == ["hop.json"]


def test_runtime_counters_are_summed_over_labels_and_absent_ones_are_none() -> None:
    """How bench/saga.py reads the store's counters from GET /metrics: every label set summed, the ``_created``
    samples and other metrics ignored, None (printed "n/a") for a counter the runtime does not publish."""
    from bench.saga import AXME_COUNTERS, prometheus_sums

    text = "\n".join([
        "# HELP axme_store_statements_total SQL statements the store ran.",
        "# TYPE axme_store_statements_total counter",
        'axme_store_statements_total{kind="read"} 120.0',
        'axme_store_statements_total{kind="write"} 30.0',
        "axme_store_statements_created 1.7e9",
        "axme_store_statements_total_other 5.0",
        "axme_intents_created_total 7.0",
    ])
    assert prometheus_sums(text, AXME_COUNTERS) == {"statements": 150.0, "commits": None}
    assert prometheus_sums(text + "\naxme_store_commits_total 12\n", AXME_COUNTERS)["commits"] == 12.0


def test_replica_projection_takes_the_least_bound_and_names_it(tmp_path: Path) -> None:
    """bench/saga.py's projection for N replica machines against one PostgreSQL of K cores: each bound from the
    run's per-workflow figures (1 replica for N = 1, else 3), the least one kept; and a notifying commit timed on a
    real PostgreSQL database."""
    from bench.saga import Row, notify_commit_ms, postgres_database, render_projection, replica_projection

    def row(system: str, by_process: dict[str, float], commits: float) -> Row:
        return Row(system, "ok", 32, 100, 0, 1.0, 100.0, 1.0, 2.0, sum(by_process.values()),
                   cpu_ms_per_wf_by_process=by_process, statements_per_wf=10.0, commits_per_wf=commits)

    rows = [row("axme-pg x1", {"python axme_cli server [1]": 4.0, "postgres: backends": 2.0,
                               "python axme_cli agents [2]": 0.5}, 0.5),
            row("axme-pg x3", {"python axme_cli server [3]": 2.0, "python axme_cli server [4]": 2.0,
                               "python axme_cli server [5]": 2.0, "postgres: backends": 4.0,
                               "postgres: postmaster": 0.0}, 1.0)]
    assert replica_projection(rows[:1], 1.0) is None  # both runs are needed
    projection = replica_projection(rows, 0.5)
    assert projection is not None
    assert projection["measured"]["x3"] == {"replicas_ms": 6.0, "postgres_ms": 4.0, "agents_ms": 0.0,
                                            "statements_per_wf": 10.0, "commits_per_wf": 1.0}
    table = {(r["replicas"], r["postgres_cores"]): (r["wf_per_s"], r["bound"]) for r in projection["table"]}
    assert table[1, 4] == (500, "replicas' CPU")  # 1 x 2 cores / 4 ms (1-replica figures)
    assert table[3, 16] == (1000, "replicas' CPU")  # 3 x 2 cores / 6 ms
    assert table[12, 4] == (1000, "PostgreSQL's CPU")  # 4 cores / 4 ms, below 12 x 2 / 6 ms
    assert table[12, 16] == (2000, "notifying commits")  # 1000 / (0.5 ms x 1 commit per workflow)
    assert "| 12 | 16 | 2,000 | notifying commits |" in render_projection(projection)
    with postgres_database(PG_ADMIN_URL) as url:
        assert notify_commit_ms(url, count=5) > 0

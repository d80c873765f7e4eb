#!/usr/bin/env python3
"""The saga's writes alone: the engine and the SQLite store in this process, no HTTP, no agents.

    .venv/bin/python bench/writer.py                 # 3,000 workflows, 32 at a time
    .venv/bin/python bench/writer.py --count 500 --clients 8 --profile out.prof
    .venv/bin/python bench/writer.py --postgres postgresql://postgres@127.0.0.1:5432/test  # on a new database there

Each workflow is what ``bench/saga.py`` makes the runtime write for one order (ok path): ``op_apply`` of
order-saga.json, then for each of its three steps the agent feed's ``op_mark_delivered`` and the agent's
``op_resume`` (complete). ``--fail``: the fail path instead (ship is resumed with ``fail``, then the refund and the
release are each delivered and completed). Every operation goes through ``SqliteStore.write`` (group commit,
``synchronous=FULL``) on a fresh database in a temp dir, and every workflow is checked COMPLETED (FAILED with
``--fail``) at the end. It prints workflows/s and the CPU time of this process per workflow: the part of
``bench/saga.py``'s runtime CPU that is the engine and SQL (the rest is HTTP and SSE). With ``--postgres`` the
store is ``PostgresStore`` on a database made for the run (and dropped after it); it also prints the CPU of the
PostgreSQL backends serving it, and the store's statements and commits, per workflow. ``--profile`` writes cProfile
stats of the measured part (slower; for finding where the time goes, not for numbers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from axme_cli.protocol.scenario import ScenarioBundle  # noqa: E402
from axme_cli.runtime.engine import intents as intents_engine  # noqa: E402
from axme_cli.runtime.engine import workflows  # noqa: E402
from axme_cli.runtime.engine.codec import loads  # noqa: E402
from axme_cli.runtime.principals import Principal  # noqa: E402
from axme_cli.runtime.settings import Settings  # noqa: E402
from axme_cli.runtime.store.sqlite import SqliteStore  # noqa: E402

BUNDLE = REPO / "axme_cli" / "examples" / "order-saga.json"


def bundles(count: int) -> list[ScenarioBundle]:
    """One validated bundle per workflow, made before the clock starts (/apply validates before it writes)."""
    raw = json.loads(BUNDLE.read_text())
    for step in raw["workflow"]["steps"]:
        step["retry"] = {"max_retries": 0, "retry_delay_seconds": 1}
        if "compensate" in step:
            step["compensate"]["retry"] = {"max_retries": 0, "retry_delay_seconds": 1}
    template = raw["intent"]["payload"]
    return [ScenarioBundle.model_validate({**raw, "intent": {**raw["intent"], "payload": {
        **template, "order_id": f"o-{n}", "fail": False}}}) for n in range(count)]


async def run(count: int, clients: int, profile: str | None, database_url: str | None = None,
              fail: bool = False) -> dict[str, Any]:
    s = Settings()
    admin = Principal(kind="workspace", key_id="bench", address=s.admin_address)
    with tempfile.TemporaryDirectory(prefix="axme-writer-") as tmp:
        store: Any
        if database_url:
            from axme_cli.runtime.store.postgres import PostgresStore

            store = PostgresStore(database_url)
        else:
            store = SqliteStore(str(Path(tmp) / "writer.db"))
        await store.open()
        agents: dict[str, Principal] = {}
        parents: list[str] = []  # workflow ids, checked COMPLETED (FAILED with ``fail``) at the end
        end = "FAILED" if fail else "COMPLETED"

        def child_of(tx: Any, workflow_id: str) -> str | None:
            row = tx.get_workflow(workflow_id)
            child: str | None = loads(row["state"])["child"]
            return child

        async def one(bundle: ScenarioBundle) -> None:
            now = time.time()

            def apply(tx: Any) -> tuple[str, str | None, list[dict[str, Any]]]:
                answer = workflows.op_apply(tx, s, admin, bundle, now, None)
                return answer["compile_id"], child_of(tx, answer["compile_id"]), answer["agents"]

            workflow_id, child, made = await store.write(apply)
            parents.append(workflow_id)
            for agent in made:
                agents.setdefault(agent["address"], Principal(
                    kind="service_account", key_id="k-" + agent["role"], address=agent["address"],
                    service_account_id=agent["service_account_id"]))
            while child is not None:
                await store.write(lambda tx, step_child=child: intents_engine.op_mark_delivered(
                    tx, s, step_child, 1, "bench", time.time()))

                def resume(tx: Any, step_child: str = child) -> str | None:
                    row = tx.get_intent(step_child)
                    who = agents[row["to_agent"]]
                    body: dict[str, Any] = {"action": "complete", "result": {"ok": 1}}
                    doc = loads(row["doc"])
                    if fail and doc.get("step_id") == "ship" and not doc.get("compensation"):
                        body = {"action": "fail", "reason": "RuntimeError: shipping refused the order"}
                    intents_engine.op_resume(tx, s, who, step_child, body, time.time())
                    return child_of(tx, workflow_id)

                child = await store.write(resume)

        async def closed_loop(work: list[ScenarioBundle]) -> None:
            todo = iter(work)

            async def worker() -> None:
                for bundle in todo:
                    await one(bundle)

            await asyncio.gather(*(worker() for _ in range(clients)))

        await closed_loop(bundles(min(count, 100)))  # warm-up: service accounts, caches
        work = bundles(count)
        prof = None
        if profile:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        counted0 = store.statements, store.commits
        backends0 = _backends_cpu(database_url)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await closed_loop(work)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        backends = {pid: used - backends0.get(pid, 0.0) for pid, used in _backends_cpu(database_url).items()}
        statements, commits = store.statements - counted0[0], store.commits - counted0[1]
        if prof is not None:
            prof.disable()
            prof.dump_stats(profile)
        batches, ops = getattr(store, "batches", commits), getattr(store, "ops", count * 7)
        for workflow_id in parents:  # every workflow ran to its end
            wf = await store.get_workflow(workflow_id)
            parent = await store.get_intent(wf["parent_intent_id"]) if wf is not None else None
            if parent is None or parent["status"] != end:
                raise SystemExit(f"workflow {workflow_id} did not end {end}: {parent and parent['status']}")
        await store.close()
    result = {"workflows": count, "clients": clients, "seconds": round(wall, 3), "wf_per_s": round(count / wall, 1),
              "cpu_ms_per_wf": round(cpu / count * 1000, 3), "ops_per_batch": round(ops / max(1, batches), 1),
              "statements_per_wf": round(statements / count, 2), "commits_per_wf": round(commits / count, 3)}
    if database_url:
        result["postgres_cpu_ms_per_wf"] = round(sum(backends.values()) / count * 1000, 3)
    return result


def _backends_cpu(database_url: str | None) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving ``database_url``'s database (none without one)."""
    if not database_url:
        return {}
    import os

    import psycopg

    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(database_url, autocommit=True) as conn:
        pids = [int(r[0]) for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (name,)).fetchall()]
    out = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            pass
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--profile", metavar="PATH", help="write cProfile stats of the measured part here")
    parser.add_argument("--postgres", metavar="URL", help="PostgresStore on a new database of this server instead")
    parser.add_argument("--fail", action="store_true", help="the fail path: ship fails, refund and release undo")
    args = parser.parse_args(argv)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    from axme_cli.runtime.server import tune_gc

    tune_gc()
    if args.postgres:
        import uuid

        import psycopg

        name = f"axme_writer_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}".encode())
        try:
            result = runner(run(args.count, args.clients, args.profile, args.postgres.rsplit("/", 1)[0] + "/" + name,
                                args.fail))
        finally:
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())
    else:
        result = runner(run(args.count, args.clients, args.profile, fail=args.fail))
    print(" ".join(f"{k}={v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The peers of bench/saga.py: the same order saga on DBOS and on Restate. Run with the peers' venv (bench/setup.sh).

    python saga_peers.py dbos-inproc --db URL --phases '[[1, 50, 5, false], ...]'
        DBOS in this process (no HTTP): for each phase [clients, count, warmup, fail] runs the workflows from
        ``clients`` asyncio tasks and prints one JSON line {latencies, errors, seconds, cpu, statements, commits}
        (cpu: this process, all threads, load generator included).
    python -m uvicorn --factory saga_peers:dbos_app --workers N ...
        DBOS behind uvicorn: POST /order {"order_id", "fail"} answers with the workflow's result. The database URL
        and the folder for the statement counts come from $AXME_BENCH_DBOS_URL and $AXME_BENCH_STATS_DIR; each
        worker writes ``stats-<pid>.json`` (statements and commits so far) when it gets SIGUSR1.
    python -m hypercorn --config restate.toml 'saga_peers:restate_app()'
        The Restate service (HTTP/2 cleartext) for restate-server.

``URL`` is ``sqlite:///path`` (bench/saga.py makes the file and switches it to WAL first) or ``postgresql://...``.
The flow everywhere: reserve -> charge -> ship, each step a trivial function returning a small dict; when the order
says ``fail``, ship fails for good (no retries) and the completed steps are undone newest first: refund, release.
The answer is {"status": "COMPLETED"} or {"status": "FAILED", "compensated": ["charge", "reserve"]}.
"""


import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any


class ShipFailed(Exception):
    pass


def _step(name: str, order_id: str) -> dict[str, Any]:
    return {"done": name, "order_id": order_id}


def _ship(order_id: str, fail: bool) -> dict[str, Any]:
    if fail:
        raise ShipFailed(f"shipping refused order {order_id}")
    return _step("ship", order_id)


# ---------------------------------------------------------------------------------------------------------------
# DBOS


class SqlCounts:
    """Statements and commits of every SQLAlchemy engine in this process (DBOS's system database is one)."""

    statements = 0
    commits = 0

    @classmethod
    def install(cls) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        def on_statement(*_: Any) -> None:
            cls.statements += 1

        def on_commit(*_: Any) -> None:
            cls.commits += 1

        event.listen(Engine, "before_cursor_execute", on_statement)
        event.listen(Engine, "commit", on_commit)

    @classmethod
    def read(cls) -> dict[str, int]:
        return {"statements": cls.statements, "commits": cls.commits}


def dbos_url(db: str) -> str:
    """DBOS's URL for ``db``: PostgreSQL through psycopg 3 (the driver DBOS installs), SQLite as given."""
    if db.startswith("postgresql://"):
        return "postgresql+psycopg://" + db[len("postgresql://"):]
    return db


def dbos_setup(db: str) -> Any:
    from dbos import DBOS

    @DBOS.step()
    async def reserve(order_id: str) -> dict[str, Any]:
        return _step("reserve", order_id)

    @DBOS.step()
    async def charge(order_id: str) -> dict[str, Any]:
        return _step("charge", order_id)

    @DBOS.step()
    async def ship(order_id: str, fail: bool) -> dict[str, Any]:
        return _ship(order_id, fail)

    @DBOS.step()
    async def refund(order_id: str) -> dict[str, Any]:
        return _step("refund", order_id)

    @DBOS.step()
    async def release(order_id: str) -> dict[str, Any]:
        return _step("release", order_id)

    @DBOS.workflow()
    async def order_saga(order_id: str, fail: bool) -> dict[str, Any]:
        await reserve(order_id)
        await charge(order_id)
        try:
            await ship(order_id, fail)
        except Exception:
            await refund(order_id)
            await release(order_id)
            return {"status": "FAILED", "compensated": ["charge", "reserve"]}
        return {"status": "COMPLETED"}

    # Each process its own executor id, as DBOS asks of the processes of one application (recovery is per executor).
    DBOS(config={"name": "axme-bench-saga", "system_database_url": dbos_url(db), "log_level": "WARNING",
                 "executor_id": f"bench-{os.getpid()}"})
    DBOS.launch()
    return order_saga


async def _dbos_phase(saga: Any, clients: int, total: int, fail: bool, tag: str) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []
    todo = iter(range(total))

    async def worker() -> None:
        for i in todo:
            start = time.perf_counter()
            try:
                result = await saga(f"{tag}-{i}", fail)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                errors.append(f"{type(exc).__name__}: {exc}"[:300])
                continue
            if result.get("status") != ("FAILED" if fail else "COMPLETED"):
                errors.append(f"unexpected result {result}")
                continue
            latencies.append(time.perf_counter() - start)

    sql0 = SqlCounts.read()
    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    sql1 = SqlCounts.read()
    return {"latencies": latencies, "errors": errors, "seconds": seconds, "cpu": cpu,
            **{k: sql1[k] - sql0[k] for k in sql1}}


async def dbos_inproc(db: str, phases: list[list[Any]]) -> None:
    SqlCounts.install()
    saga = dbos_setup(db)
    for n, (clients, count, warmup, fail) in enumerate(phases):
        await _dbos_phase(saga, clients, warmup, fail, f"p{n}w")
        print(json.dumps(await _dbos_phase(saga, clients, count, fail, f"p{n}m")), flush=True)
    from dbos import DBOS

    DBOS.destroy()


def dbos_app() -> Any:
    """The ASGI app of one uvicorn worker: DBOS launched at startup, destroyed at shutdown (as DBOS's FastAPI
    template does it in its lifespan)."""
    db = os.environ["AXME_BENCH_DBOS_URL"]
    stats_dir = Path(os.environ["AXME_BENCH_STATS_DIR"])
    saga: Any = None

    def dump_stats(*_: Any) -> None:
        target = stats_dir / f"stats-{os.getpid()}.json"
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "at": time.time(), **SqlCounts.read()}))
        tmp.replace(target)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal saga
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    SqlCounts.install()
                    saga = dbos_setup(db)
                    signal.signal(signal.SIGUSR1, dump_stats)
                    (stats_dir / f"worker-{os.getpid()}").touch()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    from dbos import DBOS

                    DBOS.destroy()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        out: dict[str, Any] = {"ok": True}
        status = 200
        if scope["path"] != "/health":
            order = json.loads(body or b"{}")
            try:
                status, out = 200, await saga(str(order.get("order_id")), bool(order.get("fail")))
            except Exception as exc:  # noqa: BLE001 - the client counts it
                status, out = 500, {"error": f"{type(exc).__name__}: {exc}"}
        data = json.dumps(out).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})

    return app


# ---------------------------------------------------------------------------------------------------------------
# Restate


def restate_app() -> Any:
    import restate

    service = restate.Service("OrderSaga")

    def action(name: str, order_id: str, fail: bool = False) -> Any:
        async def run() -> dict[str, Any]:
            if name == "ship":
                try:
                    return _ship(order_id, fail)
                except ShipFailed as exc:
                    raise restate.TerminalError(str(exc)) from exc
            return _step(name, order_id)

        return run

    @service.handler()
    async def place(ctx: restate.Context, order: dict[str, Any]) -> dict[str, Any]:
        order_id, fail = str(order.get("order_id")), bool(order.get("fail"))
        await ctx.run_typed("reserve", action("reserve", order_id))
        await ctx.run_typed("charge", action("charge", order_id))
        try:
            await ctx.run_typed("ship", action("ship", order_id, fail))
        except restate.TerminalError:
            await ctx.run_typed("refund", action("refund", order_id))
            await ctx.run_typed("release", action("release", order_id))
            return {"status": "FAILED", "compensated": ["charge", "reserve"]}
        return {"status": "COMPLETED"}

    return restate.app(services=[service])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["dbos-inproc"])
    parser.add_argument("--db", required=True, help="sqlite:///path or postgresql://...")
    parser.add_argument("--phases", help="JSON list of [clients, count, warmup, fail]")
    args = parser.parse_args(argv)
    asyncio.run(dbos_inproc(args.db, json.loads(args.phases)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

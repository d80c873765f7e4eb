"""The peers of bench/saga.py: the same order saga on DBOS and on Restate. Run with the peers' venv (bench/setup.sh).

    python saga_peers.py dbos-inproc --db D.sqlite --phases '[[1, 50, 5, false], ...]'
        DBOS in this process (no HTTP): for each phase [clients, count, warmup, fail] runs the workflows from
        ``clients`` asyncio tasks and prints one JSON line {latencies, errors, seconds, cpu} (cpu: this process,
        all threads, load generator included).
    python saga_peers.py dbos-serve --db D.sqlite --port P       DBOS behind uvicorn: POST /order {"order_id", "fail"}
    python saga_peers.py restate-serve --port P                  the Restate service (hypercorn, h2c) for restate-server

The flow everywhere: reserve -> charge -> ship, each step a trivial function returning a small dict; when the order
says ``fail``, ship fails for good (no retries) and the completed steps are undone newest first: refund, release.
The answer is {"status": "COMPLETED"} or {"status": "FAILED", "compensated": ["charge", "reserve"]}.
"""


import argparse
import asyncio
import json
import sys
import time
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

    DBOS(config={"name": "axme-bench-saga", "system_database_url": f"sqlite:///{db}", "log_level": "WARNING"})
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

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {"latencies": latencies, "errors": errors, "seconds": seconds, "cpu": cpu}


async def dbos_inproc(db: str, phases: list[list[Any]]) -> None:
    saga = dbos_setup(db)
    for n, (clients, count, warmup, fail) in enumerate(phases):
        await _dbos_phase(saga, clients, warmup, fail, f"p{n}w")
        print(json.dumps(await _dbos_phase(saga, clients, count, fail, f"p{n}m")), flush=True)
    from dbos import DBOS

    DBOS.destroy()


def dbos_serve(db: str, port: int) -> None:
    import uvicorn

    saga = dbos_setup(db)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == "/health":
            status, out = 200, {"ok": True}
        else:
            order = json.loads(body or b"{}")
            try:
                status, out = 200, await saga(str(order.get("order_id")), bool(order.get("fail")))
            except Exception as exc:  # noqa: BLE001 - the client counts it
                status, out = 500, {"error": f"{type(exc).__name__}: {exc}"}
        data = json.dumps(out).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


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


def restate_serve(port: int) -> None:
    import hypercorn.asyncio
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = "-"
    config.loglevel = "WARNING"
    asyncio.run(hypercorn.asyncio.serve(restate_app(), config))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["dbos-inproc", "dbos-serve", "restate-serve"])
    parser.add_argument("--db")
    parser.add_argument("--port", type=int)
    parser.add_argument("--phases", help="JSON list of [clients, count, warmup, fail]")
    args = parser.parse_args(argv)
    if args.mode == "dbos-inproc":
        asyncio.run(dbos_inproc(args.db, json.loads(args.phases)))
    elif args.mode == "dbos-serve":
        dbos_serve(args.db, args.port)
    else:
        restate_serve(args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""One workflow hop on axme: from the moment an agent POSTs ``/resume`` for step N to the moment the frame of step
N+1 reaches the agent on its feed. That is the runtime's own share of every step of a workflow (commit the result,
move the workflow, create the next sub-intent, put it on the feed, wake the stream, write ``intent.delivered``).

    .venv/bin/python bench/hop.py              # 500 hops
    .venv/bin/python bench/hop.py --quick      # 100 hops
    .venv/bin/python bench/hop.py --count 20   # any number

It starts ``axme dev`` (temp database, stopped by PID, temp dir removed) and runs the agent in this process: one
aiohttp feed stream for a 3-step scenario whose steps all go to the same agent, one workflow at a time, so each
workflow gives two hops (reserve -> charge, charge -> ship). Prints p50 / p90 / p99 / max in ms and writes
``bench/results/hop-<UTC timestamp>.json`` (or ``--json-out``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from create_throughput import RESULTS, Server, ServerFailed, _on_sigterm, _percentile, git_state  # noqa: E402

API_KEY = "bench-admin-key-0123456789abcdef"
STEPS = ("reserve", "charge", "ship")


def bundle(run_id: str) -> dict[str, Any]:
    steps = [{"step_id": step, "tool_id": "tool.agent.task.v1", "assigned_to": "worker",
              "intent_type": f"bench.hop.{step}.v1", "step_deadline_seconds": 60,
              "retry": {"max_retries": 0, "retry_delay_seconds": 1}} for step in STEPS]
    return {
        "scenario_id": "bench.hop.v1",
        "title": "hop bench: three steps to one agent",
        "agents": [{"role": "worker", "address": "hop-worker", "delivery_mode": "stream", "create_if_missing": True}],
        "workflow": {"steps": steps},
        "intent": {"type": "bench.hop.v1", "payload": {"run_id": run_id}},
    }


async def measure(url: str, hops: int) -> tuple[list[float], int]:
    import aiohttp

    admin = {"x-api-key": API_KEY}
    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    async with aiohttp.ClientSession(url, headers=admin, timeout=timeout) as session:
        async with session.post("/v1/scenarios/apply", json=bundle("provision")) as resp:
            resp.raise_for_status()
            applied = await resp.json()
        name = applied["agents"][0]["address"].rsplit("/", 1)[-1]
        async with session.get(f"/v1/agents/{name}") as resp:
            sa_id = (await resp.json())["agent"]["service_account_id"]
        async with session.post(f"/v1/service-accounts/{sa_id}/keys", json={}) as resp:
            token = (await resp.json())["key"]["token"]

    resumed: dict[tuple[str, int], float] = {}  # (run_id, step index) -> when /resume for it was sent
    gaps: list[float] = []
    errors = 0
    finished: dict[str, asyncio.Event] = {}
    connector = aiohttp.TCPConnector(limit=8)
    async with aiohttp.ClientSession(url, headers={"x-api-key": token}, timeout=timeout,
                                     connector=connector) as agent, \
            aiohttp.ClientSession(url, headers=admin, timeout=timeout) as client:

        async def on_frame(delivery: dict[str, Any], arrived: float) -> None:
            nonlocal errors
            payload = delivery.get("payload") or {}
            run_id = (payload.get("parent_payload") or {}).get("run_id")
            if run_id not in finished or delivery.get("status") in ("COMPLETED", "FAILED"):
                return  # the provisioning workflow, or a replay
            index = STEPS.index(payload.get("step_id"))
            before = resumed.get((run_id, index - 1))
            if before is not None:
                gaps.append(arrived - before)
            resumed[(run_id, index)] = time.perf_counter()
            async with agent.post(f"/v1/intents/{delivery['intent_id']}/resume",
                                  json={"action": "complete", "step": payload.get("step_id")}) as resp:
                await resp.read()
                if resp.status != 200:
                    errors += 1
                    finished[run_id].set()
            if index == len(STEPS) - 1:
                finished[run_id].set()

        async def feed() -> None:
            since = 0
            while True:
                params = {"since": str(since), "wait_seconds": "30", "incremental": "true"}
                async with agent.get(f"/v1/agents/{name}/intents/stream", params=params) as resp:
                    resp.raise_for_status()
                    event = None
                    async for raw in resp.content:
                        line = raw.decode().rstrip("\r\n")
                        if line.startswith("event:"):
                            event = line[6:].strip()
                        elif line.startswith("data:") and event and event.startswith("intent."):
                            arrived = time.perf_counter()
                            delivery = json.loads(line[5:])
                            since = max(since, int(delivery.get("seq") or 0))
                            asyncio.ensure_future(on_frame(delivery, arrived))

        listener = asyncio.ensure_future(feed())
        try:
            runs = 0
            while len(gaps) < hops:
                run_id = f"run-{runs:06d}"
                runs += 1
                finished[run_id] = asyncio.Event()
                async with client.post("/v1/scenarios/apply", json=bundle(run_id)) as resp:
                    if resp.status != 200:
                        errors += 1
                        continue
                    await resp.read()
                try:
                    await asyncio.wait_for(finished[run_id].wait(), 30)
                except TimeoutError:
                    errors += 1
                    print(f"{run_id}: the third step did not arrive in 30 s", file=sys.stderr)
                if listener.done():
                    raise RuntimeError(f"feed stream ended: {listener.exception()!r}")
        finally:
            listener.cancel()
    return gaps[:hops], errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="resume of step N -> delivery of step N+1 at the agent, on axme dev")
    parser.add_argument("--quick", action="store_true", help="100 hops")
    parser.add_argument("--count", type=int, metavar="N", help="hops to measure (default 500; --quick 100)")
    parser.add_argument("--json-out", type=Path, metavar="PATH", help="write the results here")
    parser.add_argument("--tmp-dir", type=Path, metavar="DIR", help="make the temp dir under DIR")
    args = parser.parse_args(argv)
    hops = max(1, args.count if args.count is not None else 100 if args.quick else 500)
    signal.signal(signal.SIGTERM, _on_sigterm)
    root = Path(tempfile.mkdtemp(prefix="axme-hop-", dir=args.tmp_dir))
    started = datetime.now(UTC)
    for sub in ("config", "data"):
        (root / sub).mkdir()
    env = dict(os.environ, AXME_CONFIG_DIR=str(root / "config"), AXME_DATA_DIR=str(root / "data"))
    env.pop("AXME_DEV_API_KEY", None)
    server = Server("axme", [sys.executable, "-m", "axme_cli", "dev", "--host", "127.0.0.1", "--port", "0", "--db",
                             str(root / "data" / "hop.db"), "--ready-file", str(root / "ready"), "--api-key", API_KEY,
                             "--redelivery-seconds", "30", "--rate-limit", "0"], root, root / "ready", env)
    try:
        server.start()
        print(f"axme hop bench: {hops} hops against {server.url}", flush=True)
        gaps, errors = asyncio.run(measure(server.url, hops))
    except ServerFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)

    lat = sorted(g * 1000 for g in gaps)
    stats = {name: _percentile(lat, q) for name, q in (("p50_ms", 0.5), ("p90_ms", 0.9), ("p99_ms", 0.99))}
    stats["max_ms"] = lat[-1] if lat else None
    print()
    print("hop (resume of step N -> frame of step N+1 at the agent)")
    print(f"hops {len(lat)}  errors {errors}  " + "  ".join(
        f"{k.removesuffix('_ms')} {'-' if v is None else f'{v:.2f}'} ms" for k, v in stats.items()))
    result = {"benchmark": "hop", "started_at": started.isoformat(), "finished_at": datetime.now(UTC).isoformat(),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform()},
              "code": git_state(), "hops": len(lat), "errors": errors, **stats}
    out = args.json_out
    if out is None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"hop-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nresults: {out}")
    return 1 if errors or not lat else 0


if __name__ == "__main__":
    sys.exit(main())

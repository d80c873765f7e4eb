"""The agent runner behind `axme agents run`: any program or Python function becomes an agent.

It holds the agent's SSE feed open (aiohttp: design.md §8 measured httpx at ~1.5 ms of CPU per
request against ~0.1 ms for aiohttp, and an agent makes one request per step), reads the step
payload straight from the frame (no GET per intent), runs up to ``concurrency`` handlers at once,
and answers each intent with ``/resume`` (on an ``http://`` runtime through ``posts.Posts``, HTTP/1.1 on
asyncio streams, a third of aiohttp's CPU per request). It reconnects with its cursor after any error; a new
runner starts from ``since=0``, so intents a dead runner held are handled again (at-least-once).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import math
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from axme_cli.protocol.lifecycle import TERMINAL


@dataclass
class Outcome:
    """What a handler decided: complete (with a result), fail (with a reason), or retry later."""

    action: str  # "complete" | "fail" | "retry"
    result: dict[str, Any] | None = None
    reason: str = ""

    def body(self) -> dict[str, Any]:
        if self.action == "complete":
            return {**(self.result or {}), "action": "complete"}
        return {"action": "fail", "reason": self.reason or "failed"}


Handler = Callable[[dict[str, Any]], Awaitable[Outcome]]


def python_handler(spec: str) -> Handler:
    """``module:function``: the function gets the delivery (with ``payload``) and returns a dict (complete)
    or raises (fail). It may be a coroutine function."""
    import importlib

    module_name, _, func_name = spec.partition(":")
    if not module_name or not func_name:
        raise ValueError(f"--handler {spec!r}: expected module:function")
    func = getattr(importlib.import_module(module_name), func_name)
    is_async = inspect.iscoroutinefunction(func)

    async def handle(delivery: dict[str, Any]) -> Outcome:
        try:
            # A plain function runs in a worker thread so a slow one never blocks the feed.
            value = await func(delivery) if is_async else await asyncio.to_thread(func, delivery)
        except Exception as exc:
            return Outcome("fail", reason=f"{type(exc).__name__}: {exc}")
        if value is None:
            return Outcome("complete", {})
        if isinstance(value, Outcome):
            return value
        return Outcome("complete", value if isinstance(value, dict) else {"output": value})

    return handle


def command_handler(argv: list[str], retry_exit_code: int | None = None, timeout: float | None = None,
                    cwd: str | None = None) -> Handler:
    """Run ``argv`` per intent (in ``cwd``, else this process's folder): the step payload as JSON on stdin; JSON on
    stdout is the result; a non-zero exit fails the intent with the tail of stderr; ``retry_exit_code`` leaves it
    for redelivery."""

    async def handle(delivery: dict[str, Any]) -> Outcome:
        payload = delivery.get("payload") or {}
        env = dict(os.environ, AXME_INTENT_ID=str(delivery.get("intent_id", "")),
                   AXME_INTENT_TYPE=str(delivery.get("intent_type", "")),
                   AXME_STEP_ID=str(payload.get("step_id", "")),
                   AXME_ATTEMPT=str(delivery.get("delivery_attempt", "")),
                   AXME_COMPENSATION="1" if payload.get("compensation") else "0")
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=env, cwd=cwd)
        except OSError as exc:
            return Outcome("fail", reason=f"cannot run {argv[0]}: {exc.strerror}")
        try:
            out, err = await asyncio.wait_for(proc.communicate(json.dumps(payload).encode()), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return Outcome("fail", reason=f"{argv[0]} did not finish in {timeout}s")
        except asyncio.CancelledError:  # the runner is stopping: the program does not outlive it
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(proc.wait(), 5)  # reaped while the loop runs
            raise
        if retry_exit_code is not None and proc.returncode == retry_exit_code:
            return Outcome("retry", reason=f"exit {proc.returncode}")
        if proc.returncode != 0:
            tail = err.decode(errors="replace").strip()[-500:]
            return Outcome("fail", reason=tail or f"{argv[0]} exited with {proc.returncode}")
        text = out.decode(errors="replace").strip()
        if not text:
            return Outcome("complete", {})
        try:
            value = json.loads(text)
        except ValueError:
            return Outcome("complete", {"output": text[-4000:]})
        return Outcome("complete", value if isinstance(value, dict) else {"output": value})

    return handle


class Runner:
    def __init__(self, base_url: str, api_key: str, address: str, handler: Handler, *, concurrency: int = 4,
                 ack_after: float = 2.0, wait_seconds: int = 30, log: Callable[[str], None] | None = None,
                 max_intents: int | None = None, on_connected: Callable[[], None] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.path = address.removeprefix("agent://")
        self.handler = handler
        self.concurrency = max(1, concurrency)
        self.ack_after = ack_after
        self.wait_seconds = wait_seconds
        self.log = log or (lambda line: print(line, flush=True))
        self.max_intents = max_intents
        self.on_connected = on_connected  # called once, when the feed first answers: intents now reach us at once
        self.handled = 0
        self.cursor = 0
        self._posts: Any = None  # posts.Posts for an http:// runtime, else the resumes go through aiohttp
        self._in_flight: set[str] = set()
        self._done = asyncio.Event()

    async def run(self) -> None:
        import aiohttp

        sem = asyncio.Semaphore(self.concurrency)
        tasks: set[asyncio.Task[None]] = set()
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=self.wait_seconds + 15)
        connector = aiohttp.TCPConnector(limit=self.concurrency + 2)
        if self.base_url.startswith("http://"):
            from axme_cli.agents.posts import Posts

            self._posts = Posts(self.base_url, {"x-api-key": self.api_key}, self.wait_seconds + 15)
        async with aiohttp.ClientSession(self.base_url, headers={"x-api-key": self.api_key}, timeout=timeout,
                                         connector=connector) as session:
            backoff = 0.5
            stopper = asyncio.ensure_future(self._done.wait())
            while not self._done.is_set():
                listen = asyncio.ensure_future(self._listen(session, sem, tasks))
                await asyncio.wait({listen, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if not listen.done():  # stopped: leave the stream at once
                    listen.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await listen
                    break
                exc = listen.exception()
                if exc is None:
                    backoff = 0.5
                    continue
                if isinstance(exc, PermissionError):
                    self.log(f"feed refused: {exc}")
                    raise exc
                if not isinstance(exc, aiohttp.ClientError | TimeoutError | ConnectionError | ValueError):
                    raise exc
                self.log(f"feed: {type(exc).__name__}: {exc or 'connection lost'}; reconnecting in {backoff:.1f}s")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(stopper), backoff)
                backoff = min(backoff * 2, 5.0)
            stopper.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            if self._posts is not None:
                self._posts.close()

    def stop(self) -> None:
        self._done.set()

    async def _listen(self, session: Any, sem: asyncio.Semaphore, tasks: set[asyncio.Task[None]]) -> None:
        params = {"since": str(self.cursor), "wait_seconds": str(self.wait_seconds), "incremental": "true"}
        async with session.get(f"/v1/agents/{self.path}/intents/stream", params=params) as response:
            if response.status in (401, 403, 404):
                text = await response.text()
                raise PermissionError(f"HTTP {response.status}: {text[:300]}")
            if response.status != 200:
                raise ConnectionError(f"HTTP {response.status}")
            if self.on_connected is not None:
                connected, self.on_connected = self.on_connected, None
                connected()
            event: bytes | None = None
            data: bytes | None = None
            rest = b""
            # What has arrived, split into lines here: a line at a time from aiohttp's reader is an await (and a
            # copy) per line, four or five per intent.
            async for chunk in response.content.iter_any():
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()  # the line not ended yet ("" when the chunk ended one)
                for raw in lines:
                    line = raw.rstrip(b"\r")
                    if line.startswith(b"event:"):
                        event = line[6:].strip()
                    elif line.startswith(b"data:"):
                        data = line[5:].strip()
                    elif not line and event is not None:
                        if event.startswith(b"intent.") and data:
                            self._dispatch(session, sem, tasks, orjson.loads(data))
                        elif event == b"stream.timeout":
                            return
                        event, data = None, None

    def _dispatch(self, session: Any, sem: asyncio.Semaphore, tasks: set[asyncio.Task[None]],
                  delivery: dict[str, Any]) -> None:
        self.cursor = max(self.cursor, int(delivery.get("seq", 0)))
        intent_id = delivery["intent_id"]
        if delivery.get("status") in TERMINAL or intent_id in self._in_flight:
            return  # a redelivery of something this runner is already working on
        self._in_flight.add(intent_id)
        task = asyncio.ensure_future(self._handle(session, sem, delivery))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _handle(self, session: Any, sem: asyncio.Semaphore, delivery: dict[str, Any]) -> None:
        intent_id = delivery["intent_id"]
        payload = delivery.get("payload") or {}
        label = payload.get("step_id") or delivery.get("intent_type")
        if payload.get("compensation"):
            label = f"undo {label}"
        started = time.monotonic()
        try:
            async with sem:
                # A long job gets marked in_progress (no redelivery while it runs) by a timer, not by a task and
                # asyncio.wait around every handler: the mark is sent before the outcome, as one request each.
                marked: list[asyncio.Task[int]] = []
                timer = None
                if self.ack_after > 0:
                    timer = asyncio.get_running_loop().call_later(self.ack_after, lambda: marked.append(
                        asyncio.ensure_future(self._resume(session, intent_id, {"action": "in_progress"}))))
                try:
                    outcome = await self.handler(delivery)
                except BaseException:
                    for mark in marked:
                        mark.cancel()
                    raise
                finally:
                    if timer is not None:
                        timer.cancel()
                if marked:
                    await marked[0]
            took = (time.monotonic() - started) * 1000
            if outcome.action == "retry":
                self.log(f"{intent_id} {label}: left for redelivery ({outcome.reason}) after {took:.0f}ms")
                return
            status = await self._resume(session, intent_id, outcome.body())
            what = "completed" if outcome.action == "complete" else f"failed: {outcome.reason}"
            self.log(f"{intent_id} {label}: {what} in {took:.0f}ms (attempt {delivery.get('delivery_attempt')}, "
                     f"resume {status})")
        except Exception as exc:  # a runner never dies of one intent
            self.log(f"{intent_id} {label}: runner error {type(exc).__name__}: {exc}")
        finally:
            self._in_flight.discard(intent_id)
            self.handled += 1
            if self.max_intents is not None and self.handled >= self.max_intents:
                self.stop()

    async def _resume(self, session: Any, intent_id: str, body: dict[str, Any]) -> int:
        path = f"/v1/intents/{intent_id}/resume"
        for attempt in range(5):
            try:
                if self._posts is not None:
                    status = await self._posts.post(path, _json(body))
                else:
                    async with session.post(path, json=body) as response:
                        await response.read()
                        status = int(response.status)
                if status >= 500 or status == 429:
                    raise ConnectionError(f"HTTP {status}")
                return status
            except Exception:
                if attempt == 4:
                    raise
                await asyncio.sleep(0.2 * 2**attempt)
        return 0


def batched(log: Callable[[str], None]) -> Callable[[str], None]:
    """``log`` for the lines said on a running event loop, which go to it together, joined, once per pass of the
    loop: the runner says a line per intent, and each ``err`` is a write to stderr. A line said off a loop goes at
    once."""
    lines: list[str] = []

    def flush() -> None:
        text = "\n".join(lines)
        lines.clear()
        log(text)

    def say(line: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            log(line)
            return
        if not lines:
            loop.call_soon(flush)
        lines.append(line)

    return say


def _json(body: dict[str, Any]) -> bytes:
    """A resume's body as JSON: orjson, or the json module for what orjson refuses (an integer beyond 64 bits, a
    key that is not a string). A NaN or an infinity, which JSON cannot carry, is an error here (the runner says so
    and the intent is not answered), not a null: orjson would write null for it and change the result unseen."""
    try:
        data = orjson.dumps(body)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(body, allow_nan=False).encode()
    if b"null" in data and not _finite(body):
        raise ValueError("the result holds NaN or Infinity, which JSON cannot carry")
    return data


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    return True


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when it is installed (it comes with uvicorn[standard]), as the runtime uses."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        return None
    return uvloop.new_event_loop


def run_forever(runner: Runner) -> int:
    """Run until SIGINT/SIGTERM (or ``max_intents``); returns the exit code."""
    import signal

    async def main() -> None:
        from axme_cli.runtime.server import tune_gc

        tune_gc()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, runner.stop)
        await runner.run()

    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as loop_runner:
            loop_runner.run(main())
    except PermissionError:
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover - `python -m axme_cli.agents.runner` is not an entry point
    sys.exit("use `axme agents run`")

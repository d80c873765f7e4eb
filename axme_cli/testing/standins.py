"""The agents of a scenario test: stand-ins that answer each step as the case says, and real agents (a program or
a Python function) where a case names one. All of them are `axme agents run`'s runner (agents/runner.py: the
agent's SSE feed, one /resume per step) on one event loop in a thread of its own, in the process of the test.

Each case's agents listen at addresses of their own, so concurrent cases never take each other's steps."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from axme_cli.agents.runner import Handler, Outcome, Runner, command_handler, python_handler
from axme_cli.protocol.scenario_tests import Case, RealAgent

# What a stand-in tells its case when it holds a step it lets time out: the intent's id and created_at, the step's
# id, and whether it is the step's compensation.
OnHeld = Callable[[str, str, str, bool], None]


class AgentLoop:
    """One event loop in a daemon thread for every agent of a test run."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="axme scenario-test agents", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Any) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    @property
    def open(self) -> bool:
        return not self.closing.is_set()

    def close(self) -> None:
        """Cancel whatever still runs on the loop (agents of cases that were interrupted), then stop it."""
        if self.closing.is_set():
            return
        self.closing.set()

        async def drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.submit(drain()).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()


class CaseAgents:
    """The agents of one case: one runner per address, started before the workflow is applied and stopped when
    the case ends (a step a stand-in holds is let go then)."""

    def __init__(self, loop: AgentLoop, base_url: str, api_key: str, log: Callable[[str], None]) -> None:
        self.loop = loop
        self.base_url = base_url
        self.api_key = api_key
        self.log = log
        self.runners: list[Runner] = []
        self.tasks: list[Future[Any]] = []
        self._release: asyncio.Event | None = None

    def start(self, address: str, handler: Handler, timeout: float = 30.0) -> None:
        """Serve ``address`` with ``handler``; returns once its feed is open (intents reach it at once)."""
        connected = threading.Event()
        runner = Runner(self.base_url, self.api_key, address, handler, concurrency=8, ack_after=0,
                        wait_seconds=30, log=self.log, on_connected=connected.set)
        self.runners.append(runner)
        task = self.loop.submit(runner.run())
        self.tasks.append(task)
        if not _wait_either(connected, task, timeout):
            failure = task.exception() if task.done() else None
            raise RuntimeError(f"the agent at {address} could not listen"
                               + (f": {failure}" if failure else f" within {timeout:g} s"))

    def release(self) -> asyncio.Event:
        """What held steps wait for: set when the case stops (created on the agents' loop)."""
        if self._release is None:
            self._release = asyncio.Event()
        return self._release

    def stop(self, grace: float = 2.0) -> None:
        """Stop every agent of the case; one still handling a step after ``grace`` seconds is cut off (a program it
        runs is killed)."""
        if not self.loop.open:  # the run was interrupted: closing the loop ended every agent
            return

        async def stop_all() -> None:
            self.release().set()
            for runner in self.runners:
                runner.stop()

        with contextlib.suppress(Exception):
            self.loop.submit(stop_all()).result(10)
        for task in self.tasks:  # a runner ends once its handlers do
            with contextlib.suppress(Exception):
                task.result(grace)
            task.cancel()


def _wait_either(event: threading.Event, task: Future[Any], timeout: float) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while not event.wait(0.01):
        if task.done() or time.monotonic() > deadline:
            return event.is_set()
    return True


def stand_in(case: Case, agents: CaseAgents, on_held: OnHeld) -> Handler:
    """The handler of a stand-in: each delivery answered as the case says for that step, attempt and phase
    (a step or its compensation). ``timeout``: the step is taken (in_progress, so it is not redelivered) and never
    answered, so its deadline ends it."""

    async def handle(delivery: dict[str, Any]) -> Outcome:
        payload = delivery.get("payload") or {}
        step_id = str(payload.get("step_id") or "")
        attempt = int(payload.get("attempt") or 1)
        behaviour = case.behaviour(step_id, attempt, compensation=bool(payload.get("compensation")))
        if behaviour.kind == "complete":
            return Outcome("complete", dict(behaviour.result or {}))
        if behaviour.kind == "fail":
            return Outcome("fail", reason=behaviour.reason or "failed by the scenario test")
        release = agents.release()
        await _take(agents, str(delivery["intent_id"]))
        on_held(str(delivery["intent_id"]), str(delivery.get("created_at") or ""), step_id,
                bool(payload.get("compensation")))
        await release.wait()
        return Outcome("retry", reason="held until the step's deadline")

    return handle


async def _take(agents: CaseAgents, intent_id: str) -> None:
    """Mark the intent IN_PROGRESS (as a runner does for a long job), so only its deadline ends it."""
    import aiohttp

    async with aiohttp.ClientSession(agents.base_url, headers={"x-api-key": agents.api_key}) as session:
        for attempt in range(5):
            try:
                async with session.post(f"/v1/intents/{intent_id}/resume", json={"action": "in_progress"}) as answer:
                    if answer.status < 500 and answer.status != 429:
                        await answer.read()
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1 * 2**attempt)


def real_agent(agent: RealAgent, folder: str) -> Handler:
    """A case's real agent: the program of `axme agents run ROLE -- COMMAND` (run in the test file's folder) or a
    Python function (`--handler module:function`)."""
    if agent.command:
        return command_handler(list(agent.command), cwd=folder)
    return python_handler(str(agent.handler))

"""Running scenario test cases: each case applies its bundle with agents of its own (stand-ins, or the real agents
it names), answers its human steps, follows the workflow intent to its end and compares what happened with what
the case expects. Cases run concurrently on one runtime.

Time: on a runtime with a test clock, once every running case waits only on a timer (a retry delay, a delay step,
the deadline of a step nobody answers) the clock is moved to the earliest of them, so a case that waits 60 s on
the runtime's clock takes milliseconds. Without one, timers take the time they say."""

from __future__ import annotations

import copy
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from axme_cli.protocol.addresses import qualify
from axme_cli.protocol.lifecycle import TERMINAL
from axme_cli.protocol.scenario_tests import MANUAL_UNDO, Case
from axme_cli.testing.expect import Actual, Mismatch, compare, event_line
from axme_cli.testing.load import LoadedFile
from axme_cli.testing.runtime import Target
from axme_cli.testing.standins import AgentLoop, CaseAgents, real_agent, stand_in

DEFAULT_MANUAL_UNDO = {"outcome": "completed", "comment": "undone by hand (scenario test)"}
MAX_LOG_LINES = 50
NUDGE_AFTER = 1.0  # seconds (real) every case may wait on a timer already due before the test clock moves a second
REAL_TIME_LIMIT = 1.0  # without a test clock, the longest deadline a case may wait out for real


@dataclass
class CaseRun:
    """One case of one file, as it runs and as it ended."""

    file: LoadedFile
    case: Case
    state: str = "pending"  # pending | running | passed | failed | error
    intent_id: str | None = None
    step: str = ""  # what the workflow does now (for the live view)
    events: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] | None = None
    mismatches: list[Mismatch] = field(default_factory=list)
    error: str | None = None
    started: float | None = None
    ended: float | None = None
    log: list[str] = field(default_factory=list)
    # what the case waits for now, for the test clock: a timer of the workflow (due on the runtime's clock), or
    # the step intent it waits on (``child``), due when a stand-in holds it (``held``: intent id -> due)
    timer_due: float | None = None
    child: str | None = None
    held: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def done(self) -> bool:
        return self.state in ("passed", "failed", "error")

    def due(self) -> float | None:
        """When the runtime's clock must reach for this case to move on, if only a timer can move it now."""
        with self.lock:
            if self.timer_due is not None:
                return self.timer_due
            return self.held.get(self.child) if self.child else None

    def add_log(self, line: str) -> None:
        with self.lock:
            self.log.append(line)
            del self.log[:-MAX_LOG_LINES]

    def on_held(self, intent_id: str, created_at: str, step_id: str, compensation: bool) -> None:
        """A stand-in took a step it lets time out: its deadline is when it was created plus the step's."""
        step = self.file.test.steps.get(step_id)
        spec = step.compensate if compensation and step is not None and step.compensate else step
        seconds = getattr(spec, "step_deadline_seconds", None)
        created = _time(created_at)
        if seconds and created is not None:
            with self.lock:
                self.held[intent_id] = created + float(seconds)

    def seen(self, event: dict[str, Any]) -> None:
        """Follow the workflow intent's events: what it waits for now."""
        etype = event.get("event_type")
        details = event.get("details") or {}
        at = _time(event.get("at")) or 0.0
        if etype in ("intent.reminder", "intent.escalated"):
            return  # a human step's reminders: it still waits for the same thing
        step = details.get("step_id")
        timer: float | None = None
        child: str | None = None
        label = self.step
        if etype in ("intent.step_failed", "intent.compensation_failed"):
            if details.get("retry_in_seconds") is not None:
                timer = at + float(details["retry_in_seconds"])
                label = f"{'undo ' if etype == 'intent.compensation_failed' else ''}{step}: retry in " \
                        f"{details['retry_in_seconds']:g}s"
        elif etype == "intent.waiting" and event.get("waiting_reason") == "WAITING_FOR_TIME":
            timer = at + float(details.get("delay_seconds") or 0)
            label = f"{step}: waits {details.get('delay_seconds')}s"
        elif etype == "intent.waiting" and step:
            child = details.get("step_intent_id")
            label = f"{step} (attempt {details.get('attempt', 1)})"
        elif etype == "intent.compensating" and step:
            child = details.get("compensation_intent_id")
            label = f"undo {step}"
        elif etype == "intent.human_task_assigned" and step:
            label = f"{step}: waits for a person" if step != MANUAL_UNDO else "undo by hand"
            behaviour = self.case.behaviour(step, int(details.get("attempt") or 1)) if step != MANUAL_UNDO else None
            deadline = getattr(self.file.test.steps.get(step), "step_deadline_seconds", None)
            if behaviour is not None and behaviour.kind == "timeout" and deadline:
                timer = at + float(deadline)
        if event.get("status") in TERMINAL:
            label = str(event.get("status"))
        with self.lock:
            self.events.append(event)
            self.timer_due, self.child, self.step = timer, child, label

    def actual(self) -> Actual:
        final = self.final or {}
        return Actual(str(final.get("status") or "?"), list(self.events), final.get("result"), final.get("error"))

    def seconds(self) -> float | None:
        if self.started is None:
            return None
        return round((self.ended or time.monotonic()) - self.started, 3)

    def as_dict(self) -> dict[str, Any]:
        """The case's outcome, as --json, -o jsonl and the JUnit report show it."""
        actual = self.actual()
        return {
            "file": self.file.path, "case": self.case.name, "index": self.case.index,
            "passed": self.state == "passed", "state": self.state, "intent_id": self.intent_id,
            "status": actual.status if self.final else None, "seconds": self.seconds(),
            "runtime_seconds": actual.seconds(), "steps": actual.steps(), "compensated": actual.compensated(),
            "failures": [m.as_dict() for m in self.mismatches], "error": self.error,
            "events": [event_line(e) for e in self.events] if self.state != "passed" else None,
            "agent_log": list(self.log) if self.state != "passed" else None,
        }


class Run:
    """The cases of a test run on one runtime, ``parallel`` at a time."""

    def __init__(self, target: Target, *, parallel: int = 8, case_timeout: float = 60.0) -> None:
        self.target = target
        self.parallel = max(1, parallel)
        self.case_timeout = case_timeout
        self.stopping = threading.Event()  # set when the run ends or is interrupted: no case starts after it
        self._progress: tuple[int, int] = (0, 0)  # events seen and cases done, when the clock last looked
        self._still_since = time.monotonic()

    def run(self, cases: list[CaseRun], on_tick: Any = None, on_done: Any = None) -> None:
        """Run every case; ``on_tick()`` is called a few dozen times a second (a live view), ``on_done(case)``
        once per case as it ends, both from this thread. The cases run on daemon threads: interrupted (Ctrl+C),
        this returns at once and what still runs ends with the process."""
        import queue

        loop = AgentLoop()
        todo: queue.SimpleQueue[CaseRun] = queue.SimpleQueue()
        for cr in cases:
            todo.put(cr)
        failures: list[BaseException] = []

        def worker() -> None:
            while not self.stopping.is_set():
                try:
                    cr = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    self._case(loop, cr)
                except BaseException as exc:  # a bug in the runner itself, not a failed case: raised below
                    failures.append(exc)
                    return

        workers = [threading.Thread(target=worker, name=f"axme scenario-test {i}", daemon=True)
                   for i in range(min(self.parallel, len(cases)))]
        for thread in workers:
            thread.start()
        reported: set[int] = set()
        try:
            while True:
                alive = any(t.is_alive() for t in workers)
                self._move_clock(cases)
                for i, cr in enumerate(cases):
                    if cr.done and i not in reported:
                        reported.add(i)
                        if on_done is not None:
                            on_done(cr)
                if on_tick is not None:
                    on_tick()
                if not alive:
                    break
                time.sleep(0.02)
            if failures:
                raise failures[0]
        finally:
            self.stopping.set()
            loop.close()

    def _move_clock(self, cases: list[CaseRun]) -> None:
        """When every running case waits only on a timer, move the test clock to the earliest one (a millisecond
        past it): the runtime fires it at once, and the case moves on."""
        clock = self.target.clock
        if clock is None:
            return
        running = [cr for cr in cases if cr.state == "running"]
        dues = [cr.due() for cr in running]
        if not running or any(d is None for d in dues):
            return
        earliest = min(d for d in dues if d is not None)
        now = clock.time()
        progress = sum(len(cr.events) for cr in cases), sum(cr.done for cr in cases)
        if progress != self._progress:
            self._progress, self._still_since = progress, time.monotonic()
        if earliest > now:
            clock.advance(earliest - now + 0.001)
        elif time.monotonic() - self._still_since > NUDGE_AFTER:
            # Due already, yet nothing moved for a while (a due read a little early from the events): a nudge.
            clock.advance(1.0)
            self._still_since = time.monotonic()

    def _case(self, loop: AgentLoop, cr: CaseRun) -> None:
        from axme_cli.client.http import Client
        from axme_cli.errors import CliError, WaitTimeout

        t = self.target
        cr.started, cr.state = time.monotonic(), "running"
        agents = CaseAgents(loop, t.base_url, t.api_key, cr.add_log)
        c = Client(t.base_url, t.api_key)
        try:
            bundle, addresses = own_bundle(cr.file, cr.case, t.org, t.workspace)
            for role, address in addresses.items():
                agent = cr.case.agents.get(role)
                handler = real_agent(agent, cr.file.folder) if agent is not None else stand_in(cr.case, agents,
                                                                                               cr.on_held)
                agents.start(address, handler)
            cr.step = "applying"
            answer = c.apply_scenario(bundle)
            cr.intent_id = str(answer["intent_id"])
            for event in c.follow_intent(cr.intent_id, wait_seconds=15, timeout=self.case_timeout):
                cr.seen(event)
                self._answer(c, cr, event)
            cr.final = c.get_intent(cr.intent_id)["intent"]
            cr.mismatches = compare(cr.case.expect, cr.actual())
            cr.state = "failed" if cr.mismatches else "passed"
        except WaitTimeout:
            cr.error = (f"the workflow did not end within {self.case_timeout:g} s (it was at: {cr.step or '?'}); a "
                        "step no stand-in answers, or a real agent that does not answer?")
            cr.state = "error"
            _cancel(c, cr)
        except CliError as exc:
            cr.error = exc.message
            cr.state = "error"
        except Exception as exc:  # one case's trouble never stops the others
            cr.error = f"{type(exc).__name__}: {exc}"
            cr.state = "error"
        finally:
            cr.ended = time.monotonic()
            agents.stop(grace=0 if cr.state == "error" else 2.0)  # a case that ran out of time waits no more
            c.close()

    def _answer(self, c: Any, cr: CaseRun, event: dict[str, Any]) -> None:
        """People's answers: a human step as the case says; the manual undo of failed compensations."""
        if event.get("event_type") != "intent.human_task_assigned" or cr.intent_id is None:
            return
        details = event.get("details") or {}
        step = details.get("step_id")
        if step == MANUAL_UNDO:
            c.resume_intent(cr.intent_id, {"task_result": dict(cr.case.manual_undo or DEFAULT_MANUAL_UNDO)})
            return
        behaviour = cr.case.behaviour(str(step), int(details.get("attempt") or 1))
        if behaviour.kind == "answer":
            c.resume_intent(cr.intent_id, {"task_result": dict(behaviour.result or {})})


def real_time_problems(files: list[LoadedFile]) -> list[str]:
    """Without a test clock a step that times out takes its deadline in real time: refused past a second."""
    out: list[str] = []
    for file in files:
        for case in file.test.cases:
            for kind, listed in (("steps", case.steps), ("compensations", case.compensations)):
                for step_id, behaviours in listed.items():
                    if not any(b.kind == "timeout" for b in behaviours):
                        continue
                    spec = file.test.steps[step_id]
                    if kind == "compensations" and spec.compensate is not None:
                        seconds = spec.compensate.step_deadline_seconds
                    else:
                        seconds = spec.step_deadline_seconds
                    if seconds and seconds > REAL_TIME_LIMIT:
                        out.append(f"{file.path}: cases[{case.index}].{kind}.{step_id}: times out after "
                                   f"step_deadline_seconds {seconds} of real time: this runtime has no test clock to "
                                   f"move (a test waits out at most {REAL_TIME_LIMIT:g} s for real)")
    return out


def own_bundle(file: LoadedFile, case: Case, org: str, workspace: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The bundle as this case applies it, and the address each of its agents listens at: every agent at an address
    of the case's own (``inventory`` -> ``inventory-3f9a1c``) on the feed, nothing provisioned, no mail sent, the
    case's payload."""
    tag = secrets.token_hex(3)
    bundle = copy.deepcopy(file.test.bundle)
    bundle.pop("idempotency_key", None)
    addresses: dict[str, str] = {}
    for agent in bundle.get("agents") or []:
        own = f"{agent['address'].rstrip('/').rsplit('/', 1)[-1]}-{tag}"
        agent.update(address=own, create_if_missing=False, delivery_mode="stream")
        agent.pop("callback_url", None)
        addresses[agent["role"]] = qualify(own, org, workspace)
    for human in bundle.get("humans") or []:
        human.pop("contact", None)
    for step in (bundle.get("workflow") or {}).get("steps") or []:
        for spec in (step, step.get("compensate") or {}):
            literal = spec.get("assigned_to")
            if isinstance(literal, str) and ("/" in literal or "://" in literal):  # an address, not a role
                own = f"{literal.rstrip('/').rsplit('/', 1)[-1]}-{tag}"
                spec["assigned_to"] = qualify(own, org, workspace)
                addresses.setdefault(literal, spec["assigned_to"])
        if isinstance(step.get("human_task"), dict):
            step["human_task"].pop("notify_email", None)
    if case.payload is not None:
        bundle.setdefault("intent", {})["payload"] = copy.deepcopy(case.payload)
    return bundle, addresses


def _cancel(c: Any, cr: CaseRun) -> None:
    """Stop a workflow that ran out of time, so nothing of it goes on after the test."""
    import contextlib

    from axme_cli.errors import CliError

    if cr.intent_id is not None:
        with contextlib.suppress(CliError):
            c.resolve_intent(cr.intent_id, {"status": "CANCELED", "reason": "the scenario test ran out of time"})


def _time(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None

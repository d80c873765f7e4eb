"""The saga's decisions as one pure function, in the spirit of ``protocol/lifecycle.py`` for intents.

``decide(compiled, state, event, now)`` takes a workflow's compiled scenario (``workflows.compile_bundle``), its
run state (the JSON of ``workflows.state``, as stored), what happened (``Start``, ``ChildEnded``, ``ParentEnded``,
``TimerFired``, ``Answered``) and the time, and returns the next state and the decisions, in order: dispatch a
step (or compensation) attempt, open a human task, wait, record an event on the parent, point its timer, remind,
complete, fail, stop. It reads no database and changes nothing it is given; ``engine/runs.py`` applies the
decisions to the store, inside the transaction of the change that caused them.

The state (kept compatible with what earlier versions stored): ``phase`` running | compensating | manual_undo |
done; the current ``step``, its ``attempt``, ``child`` (the sub-intent running it: set by the applier once it
exists), ``step_started``; ``runs`` (the loop guard); ``results`` by step, ``completed`` steps in order, the
``history`` of attempts; the one engine ``timer`` ({kind, at, step, attempt}) and a human step's ``remind``;
``failure``, the compensation queue and progress, ``manual_undo`` (the person's answer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from axme_cli.protocol import lifecycle as lc
from axme_cli.protocol.scenario import next_step_id
from axme_cli.protocol.tasks import is_rejection, with_defaults
from axme_cli.runtime.clock import iso
from axme_cli.runtime.engine import reminders

MAX_STEP_RUNS = 1000  # a loop guard: no workflow dispatches more steps than this
DELAY_TYPES = frozenset({"delay", "timeout"})
WORKSPACE = {"type": "human", "ref": "workspace", "name": "any member of the workspace"}


def new_state() -> dict[str, Any]:
    return {
        "phase": "running",  # running | compensating | manual_undo | done
        "step": None, "attempt": 0, "child": None, "step_started": None,
        "runs": 0, "results": {}, "completed": [], "history": [], "timer": None,
        "failure": None, "comp_queue": [], "comp_step": None, "comp_attempt": 0,
        "compensated": [], "compensation_failed": [],
    }


# ---------------------------------------------------------------------------------------------
# what happened


@dataclass(frozen=True)
class Start:
    """The workflow was just applied: its entry step starts."""


@dataclass(frozen=True)
class ChildEnded:
    """A step or compensation sub-intent ended with ``status``; ``result`` / ``error`` from its doc."""

    intent_id: str
    compensation: bool
    status: str
    result: Any = None
    error: Any = None


@dataclass(frozen=True)
class ParentEnded:
    """The parent ended from outside (canceled, resolved, its deadline)."""

    status: str


@dataclass(frozen=True)
class TimerFired:
    """The parent's engine timer fired. ``waiting_for_human``: the parent waits for a person now."""

    waiting_for_human: bool


@dataclass(frozen=True)
class Answered:
    """A person answered what the workflow waits for (``awaits``): the human step, or the manual undo.
    The answer was checked against its task before."""

    answer: dict[str, Any]
    by: str


Event = Start | ChildEnded | ParentEnded | TimerFired | Answered


# ---------------------------------------------------------------------------------------------
# decisions


@dataclass(frozen=True)
class Dispatch:
    """Create attempt ``attempt`` of ``step_id``'s sub-intent (its ``compensate`` block when ``compensation``) for
    ``assignee`` (a role or an address), record the child in ``state["child"]``, then the parent's event
    (``intent.compensating`` or ``intent.waiting`` WAITING_FOR_AGENT) with ``details`` and the child's id under
    ``child_key``."""

    step_id: str
    attempt: int
    compensation: bool
    assignee: str
    details: dict[str, Any]
    child_key: str


@dataclass(frozen=True)
class OpenTask:
    """Assign ``task`` to people on the parent (``intent.human_task_assigned``); ``due_ts``: the step deadline."""

    task: dict[str, Any]
    holder: dict[str, Any]
    details: dict[str, Any]
    due_ts: float | None = None


@dataclass(frozen=True)
class Wait:
    """``intent.waiting`` WAITING_FOR_TIME (a delay step), held by ``holder``."""

    details: dict[str, Any]
    holder: dict[str, Any]


@dataclass(frozen=True)
class Record:
    """An event on the parent that changes no status (a step failed, a compensation done or failed)."""

    event_type: str
    details: dict[str, Any]


@dataclass(frozen=True)
class Arm:
    """Point the parent's ``timer_ts`` at ``at`` (the earlier of the engine timer and the next reminder)."""

    at: float | None


@dataclass(frozen=True)
class Remind:
    """Remind the holder of the human step (``remind``: counted); after the last one (``more`` false) escalate
    to ``remind["escalate_to"]`` when it names someone."""

    remind: dict[str, Any]
    more: bool
    details: dict[str, Any]


@dataclass(frozen=True)
class Complete:
    """The workflow completed: ``intent.completed`` on the parent (the state is saved first)."""

    details: dict[str, Any]
    result: dict[str, Any]


@dataclass(frozen=True)
class Fail:
    """The workflow failed: ``intent.failed`` on the parent (the state is saved first)."""

    details: dict[str, Any]
    error: dict[str, Any]
    result: dict[str, Any]


@dataclass(frozen=True)
class Stop:
    """The parent ended from outside: save the state and cancel ``child`` (the step running) if it still runs."""

    child: str | None
    reason: str


Decision = Dispatch | OpenTask | Wait | Record | Arm | Remind | Complete | Fail | Stop


# ---------------------------------------------------------------------------------------------
# the function


def decide(compiled: dict[str, Any], state: dict[str, Any], event: Event, now: float,
           steps: dict[str, dict[str, Any]] | None = None) -> tuple[dict[str, Any], list[Decision]]:
    """The next state and what to do, for ``event`` at ``now``. ``steps``: the compiled steps by id, when the
    caller keeps them (``runs.Compiled``)."""
    saga = _Saga(compiled, steps if steps is not None else {st["step_id"]: st for st in compiled["steps"]},
                 _copy(state), now)
    saga.on(event)
    return saga.st, saga.out


def awaits(compiled: dict[str, Any], state: dict[str, Any]) -> str | None:
    """What a person's answer would answer: ``manual_undo``, ``step`` (a human step), or None."""
    if state["phase"] == "manual_undo":
        return "manual_undo"
    step = next((st for st in compiled["steps"] if st["step_id"] == state["step"]), None)
    return "step" if step is not None and step["kind"] == "human" else None


def failure_reason(status: str, error: Any) -> str:
    """Why a step's sub-intent did not complete, as the workflow records it."""
    if status == lc.TIMED_OUT:
        return "step_timeout"
    if status == lc.CANCELED:
        return "canceled"
    if isinstance(error, dict):
        if error.get("code") == "delivery_failed":
            return "delivery_failed"
        for key in ("reason", "message", "error"):
            if isinstance(error.get(key), str) and error[key]:
                return str(error[key])
    return "failed"


def human_holder(compiled: dict[str, Any], assignee: str | None) -> dict[str, Any]:
    """Who holds a human step: its role's contact, else the name it was given."""
    role = compiled["roles"].get(assignee or "human")
    if role and role["kind"] == "human":
        return {"type": "human", "ref": role.get("contact") or assignee or "human", "name": role["display_name"]}
    return {"type": "human", "ref": assignee or "human", "name": assignee}


def _copy(state: dict[str, Any]) -> dict[str, Any]:
    """A copy that ``_Saga`` may change: the containers it changes are new, what it only appends to is shared."""
    st = dict(state)
    st["results"] = dict(st["results"])
    for key in ("completed", "history", "comp_queue", "compensated", "compensation_failed"):
        st[key] = list(st[key])
    return st


@dataclass
class _Saga:
    compiled: dict[str, Any]
    steps: dict[str, dict[str, Any]]
    st: dict[str, Any]
    now: float
    out: list[Decision] = field(default_factory=list)

    def on(self, event: Event) -> None:
        st = self.st
        if isinstance(event, Start):
            self.start_step(self.compiled["entry"], 1)
        elif st["phase"] == "done":
            return
        elif isinstance(event, ParentEnded):
            st["phase"] = "done"
            self.out.append(Stop(st.get("child"), f"workflow ended {event.status}"))
        elif isinstance(event, ChildEnded):
            if st.get("child") != event.intent_id:
                return  # a stale attempt, or the workflow moved on
            ok = event.status == lc.COMPLETED
            reason = "" if ok else failure_reason(event.status, event.error)
            if event.compensation:
                self.compensation_finished(ok, reason)
            elif ok:
                self.step_succeeded(event.result)
            else:
                self.step_failed(reason)
        elif isinstance(event, TimerFired):
            self.timer_fired(event.waiting_for_human)
        elif isinstance(event, Answered):
            self.answered(event.answer, event.by)

    # timers

    def set_timer(self, seconds: float, kind: str, **info: Any) -> None:
        """The workflow's one engine timer (retry delay, delay step, step deadline, compensation retry)."""
        self.st["timer"] = {"kind": kind, "at": self.now + max(0.0, seconds), **info}
        self.arm()

    def arm(self) -> None:
        due = [t["at"] for t in (self.st.get("timer"), self.st.get("remind")) if t and t.get("at") is not None]
        self.out.append(Arm(min(due) if due else None))

    def timer_fired(self, waiting_for_human: bool) -> None:
        """Reminders and escalation of a human step, then the workflow's own timer; what is left is armed again."""
        st, now = self.st, self.now
        remind = st.get("remind")
        if remind and remind["at"] <= now:
            self.remind(remind, waiting_for_human)
        timer = st.get("timer")
        if timer and timer.get("at", 0) <= now:
            st["timer"] = None
            kind = timer["kind"]
            if kind == "retry" and st["step"] == timer["step"]:
                self.start_step(timer["step"], timer["attempt"])
            elif kind == "delay" and st["step"] == timer["step"]:
                self.step_succeeded({"waited_seconds": round(now - (st.get("step_started") or now), 3)})
            elif kind == "step_deadline" and st["step"] == timer["step"] and st["attempt"] == timer["attempt"]:
                self.step_failed("step_timeout")
            elif kind == "comp_retry":
                self.dispatch_compensation(timer["step"], timer["attempt"])
        if st["phase"] != "done":
            self.arm()

    def remind(self, remind: dict[str, Any], waiting_for_human: bool) -> None:
        st = self.st
        if st["step"] != remind["step"] or not waiting_for_human:
            st["remind"] = None
            return
        counted, more = reminders.advance(remind, self.now)
        st["remind"] = counted if more else None
        self.out.append(Remind(counted, more, {"step_id": remind["step"]}))

    # steps

    def start_step(self, step_id: str, attempt: int, completed: dict[str, Any] | None = None) -> None:
        st, now = self.st, self.now
        st["runs"] += 1
        if st["runs"] > MAX_STEP_RUNS:
            self.fail_flow(step_id, f"more than {MAX_STEP_RUNS} step runs: the workflow loops")
            return
        step = self.steps[step_id]
        st.update(step=step_id, attempt=attempt, child=None, step_started=now, remind=None)
        details: dict[str, Any] = {"step_id": step_id, "attempt": attempt, "kind": step["kind"]}
        if completed:
            details["completed_step"] = completed
        kind = step["kind"]
        if kind == "agent":
            details["step_intent_id"] = None  # the child's id, once it exists
            self.out.append(Dispatch(step_id, attempt, False, step["assigned_to"], details, "step_intent_id"))
            return
        if kind == "human":
            task = with_defaults(step.get("human_task") or {"title": f"Approve step {step_id}"})
            task["step_id"] = step_id
            details["human_task"] = task
            deadline = float(step["step_deadline_seconds"]) if step.get("step_deadline_seconds") else None
            self.out.append(OpenTask(task, human_holder(self.compiled, step.get("assigned_to")), details,
                                     now + deadline if deadline is not None else None))
            st["remind"] = reminders.new_remind(step, now, step=step_id, attempt=attempt)
            if deadline is not None:
                self.set_timer(deadline, "step_deadline", step=step_id, attempt=attempt)
            else:
                self.arm()
            return
        # internal steps run in the runtime itself
        tool = step.get("runtime_type") or step.get("tool_id") or "internal"
        if step.get("runtime_type") in DELAY_TYPES or tool == "tool.internal.delay":
            config = {**(step.get("input") or {}), **(step.get("runtime_config") or {})}
            seconds = float(config.get("seconds") or config.get("delay_seconds") or step.get("step_deadline_seconds")
                            or 0)
            details["delay_seconds"] = seconds
            self.out.append(Wait(details, {"type": "internal", "ref": tool, "name": tool}))
            self.set_timer(seconds, "delay", step=step_id, attempt=attempt)
            return
        # notifications, reminders, escalations: recorded as done at once
        self.step_succeeded({"tool": tool, "notified": True, "at": iso(now)})

    def history(self, status: str, reason: str | None = None) -> dict[str, Any]:
        """Record the end of the current step (its reminders end with it)."""
        st, now = self.st, self.now
        st["remind"] = None
        started = st.get("step_started") or now
        entry = {"step_id": st["step"], "attempt": st["attempt"], "status": status, "started_at": iso(started),
                 "ended_at": iso(now), "duration_ms": round((now - started) * 1000, 1),
                 "intent_id": st.get("child")}
        if reason:
            entry["reason"] = reason
        st["history"].append(entry)
        return entry

    def step_succeeded(self, result: Any) -> None:
        st = self.st
        step_id = st["step"]
        st["results"][step_id] = result
        if step_id not in st["completed"]:
            st["completed"].append(step_id)
        done = self.history(lc.COMPLETED)
        st["child"] = None
        nxt = next_step_id(self.compiled["steps"], step_id, "success")
        if nxt is None:
            self.complete_flow(done)
        else:
            self.start_step(nxt, 1, completed=done)

    def step_failed(self, reason: str) -> None:
        st = self.st
        step_id, attempt = st["step"], st["attempt"]
        step = self.steps[step_id]
        failed = self.history(lc.FAILED, reason)
        st["child"] = None
        details: dict[str, Any] = {"step_id": step_id, "attempt": attempt, "reason": reason,
                                   "duration_ms": failed["duration_ms"]}
        if self.retry_later(step.get("retry") or {}, step_id, attempt, details, "intent.step_failed", "retry"):
            return
        on_failure = step.get("on_failure")
        if on_failure:
            details["next_step"] = on_failure
            self.out.append(Record("intent.step_failed", details))
            self.start_step(on_failure, 1)
            return
        details["final"] = True
        self.out.append(Record("intent.step_failed", details))
        self.begin_compensation(step_id, reason)

    def retry_later(self, retry: dict[str, Any], step_id: str, attempt: int, details: dict[str, Any],
                    event_type: str, timer: str) -> bool:
        """Within its retry budget, a failed step (or compensation) is tried again after its delay."""
        if attempt > int(retry.get("max_retries") or 0):
            return False
        delay = float(retry.get("retry_delay_seconds") or 30)
        details.update(retry_in_seconds=delay, next_attempt=attempt + 1)
        self.out.append(Record(event_type, details))
        self.set_timer(delay, timer, step=step_id, attempt=attempt + 1)
        return True

    def answered(self, answer: dict[str, Any], by: str) -> None:
        st = self.st
        if st["phase"] == "manual_undo":
            st["manual_undo"] = {**answer, "answered_by": by, "at": iso(self.now)}
            failure = st["failure"] or {}
            self.fail_flow(failure.get("failed_step"), failure.get("reason") or "failed")
            return
        outcome = str(answer.get("outcome") or "")
        st["timer"] = None
        st["remind"] = None
        if is_rejection(outcome):
            self.step_failed(f"{outcome} by {by}")
        else:
            self.step_succeeded({**answer, "answered_by": by})

    # compensation

    def begin_compensation(self, failed_step: str, reason: str) -> None:
        st = self.st
        st["phase"] = "compensating"
        st["failure"] = {"failed_step": failed_step, "reason": reason}
        st["comp_queue"] = [sid for sid in reversed(st["completed"]) if self.steps[sid].get("compensate")]
        self.next_compensation()

    def next_compensation(self) -> None:
        st = self.st
        if not st["comp_queue"]:
            if st["compensation_failed"] and st["phase"] == "compensating":
                self.open_manual_undo()
                return
            failure = st["failure"] or {}
            self.fail_flow(failure.get("failed_step"), failure.get("reason") or "failed")
            return
        self.dispatch_compensation(st["comp_queue"].pop(0), 1)

    def dispatch_compensation(self, step_id: str, attempt: int) -> None:
        st = self.st
        st.update(comp_step=step_id, comp_attempt=attempt, child=None, step_started=self.now)
        details = {"step_id": step_id, "attempt": attempt, "compensation_intent_id": None,
                   "failed_step": (st["failure"] or {}).get("failed_step")}
        self.out.append(Dispatch(step_id, attempt, True, self.steps[step_id]["compensate"]["assigned_to"], details,
                                 "compensation_intent_id"))

    def compensation_finished(self, ok: bool, reason: str) -> None:
        st = self.st
        step_id, attempt = st["comp_step"], st["comp_attempt"]
        st["child"] = None
        if ok:
            st["compensated"].append(step_id)
            self.out.append(Record("intent.compensated", {"step_id": step_id, "attempt": attempt}))
            self.next_compensation()
            return
        retry = self.steps[step_id]["compensate"].get("retry") or {}
        details: dict[str, Any] = {"step_id": step_id, "attempt": attempt, "reason": reason}
        if self.retry_later(retry, step_id, attempt, details, "intent.compensation_failed", "comp_retry"):
            return
        details["final"] = True
        st["compensation_failed"].append(step_id)
        self.out.append(Record("intent.compensation_failed", details))
        self.next_compensation()

    def open_manual_undo(self) -> None:
        """Compensations that failed for good are left to a person: a manual_action task on the parent. Its
        answer (completed: undone by hand; failed: it cannot be) is recorded and the workflow ends FAILED."""
        st = self.st
        failed = list(st["compensation_failed"])
        failure = st["failure"] or {}
        st.update(phase="manual_undo", child=None, remind=None, timer=None, step_started=self.now)
        task = with_defaults({
            "title": f"Undo by hand: {', '.join(failed)}",
            "description": f"Step {failure.get('failed_step')} failed ({failure.get('reason')}) and the automatic "
                           f"undo of {', '.join(failed)} failed for good. Undo it by hand, then answer completed (say "
                           "what you did), or failed when it cannot be undone. The workflow then ends FAILED.",
            "task_type": "manual_action",
        })
        self.out.append(OpenTask(task, dict(WORKSPACE),
                                 {"step_id": "manual_undo", "compensation_failed": failed, "human_task": task}))
        self.arm()

    # ends

    def complete_flow(self, last: dict[str, Any]) -> None:
        st = self.st
        st["phase"] = "done"
        self.out.append(Complete({"completed_step": last, "steps": len(st["completed"])},
                                 {"results": st["results"], "steps": st["history"]}))

    def fail_flow(self, failed_step: str | None, reason: str) -> None:
        st = self.st
        st["phase"] = "done"
        compensable = [sid for sid in st["completed"] if self.steps[sid].get("compensate")]
        error = {"failed_step": failed_step, "reason": reason, "compensated": list(st["compensated"]),
                 "compensation_failed": list(st["compensation_failed"]),
                 "not_compensated": [sid for sid in st["completed"] if sid not in compensable]}
        if st.get("manual_undo"):
            error["manual_undo"] = st["manual_undo"]
        self.out.append(Fail({"failed_step": failed_step, "reason": reason, "compensated": list(st["compensated"])},
                             error, {"results": st["results"], "steps": st["history"]}))

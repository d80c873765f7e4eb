"""The saga's decisions, without a server or a database: (compiled scenario, run state, event, now) -> decisions.

Each case is a script of events with the decisions they must give, in a short form; after a ``dispatch`` the
script does what the applier does (``runs.Run.apply``): it records the child's id in the state.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from axme_cli.runtime.engine import saga

T0 = 1_000_000.0


def agent(step_id: str, **extra: Any) -> dict[str, Any]:
    return {"step_id": step_id, "kind": "agent", "assigned_to": step_id, **extra}


def compiled(*steps: dict[str, Any]) -> dict[str, Any]:
    roles: dict[str, Any] = {st["step_id"]: {"kind": "agent", "address": f"agent://o/w/{st['step_id']}",
                                             "display_name": st["step_id"]} for st in steps}
    roles["ops"] = {"kind": "human", "contact": "ops@example.com", "display_name": "Ops"}
    return {"scenario_id": "s", "title": "t", "roles": roles, "steps": list(steps), "entry": steps[0]["step_id"],
            "intent": {"type": "order"}}


def short(d: saga.Decision) -> tuple[Any, ...]:
    """A decision as the scripts below write it."""
    if isinstance(d, saga.Dispatch):
        return ("compensate" if d.compensation else "dispatch", d.step_id, d.attempt)
    if isinstance(d, saga.OpenTask):
        return ("task", d.details["step_id"], d.holder["ref"])
    if isinstance(d, saga.Wait):
        return ("wait", d.details["delay_seconds"])
    if isinstance(d, saga.Record):
        extra = "final" if d.details.get("final") else d.details.get("retry_in_seconds", d.details.get("next_step"))
        return (d.event_type, d.details["step_id"], extra)
    if isinstance(d, saga.Arm):
        return ("arm", None if d.at is None else d.at - T0)
    if isinstance(d, saga.Remind):
        return ("remind", d.remind["count"], d.more)
    if isinstance(d, saga.Complete):
        return ("complete", d.details["steps"])
    if isinstance(d, saga.Fail):
        return ("fail", d.error["failed_step"], d.error["reason"], tuple(d.error["compensated"]),
                tuple(d.error["compensation_failed"]))
    assert isinstance(d, saga.Stop)
    return ("stop", d.child)


def ended(state: dict[str, Any], status: str = "COMPLETED", **kw: Any) -> saga.ChildEnded:
    """The running child ended (the script's children are named by the state)."""
    return saga.ChildEnded(state["child"], state["phase"] == "compensating", status, **kw)


def run(flow: dict[str, Any], script: list[tuple[Any, ...]], state: dict[str, Any] | None = None) -> dict[str, Any]:
    """Play ``script``: (seconds after T0, event or a function of the state giving one, expected decisions)."""
    state = state or saga.new_state()
    for at, event, expected in script:
        if callable(event):
            event = event(state)
        state, decisions = saga.decide(flow, state, event, T0 + at)
        assert [short(d) for d in decisions] == expected, (at, event)
        for d in decisions:
            if isinstance(d, saga.Dispatch):
                state["child"] = f"{d.step_id}-{d.attempt}-{'c' if d.compensation else 's'}"
    return state


ORDER = compiled(agent("reserve", compensate={"assigned_to": "reserve"}),
                 agent("charge", compensate={"assigned_to": "charge"}, retry={"max_retries": 1,
                                                                             "retry_delay_seconds": 5}),
                 agent("ship"))

CASES: dict[str, tuple[dict[str, Any], list[tuple[Any, ...]]]] = {
    "three steps complete": (ORDER, [
        (0, saga.Start(), [("dispatch", "reserve", 1)]),
        (1, ended, [("dispatch", "charge", 1)]),
        (2, ended, [("dispatch", "ship", 1)]),
        (3, ended, [("complete", 3)]),
    ]),
    "a retry, then compensation newest first": (ORDER, [
        (0, saga.Start(), [("dispatch", "reserve", 1)]),
        (1, ended, [("dispatch", "charge", 1)]),
        (2, lambda st: ended(st, "FAILED", error={"reason": "card declined"}),
         [("intent.step_failed", "charge", 5.0), ("arm", 7.0)]),
        (7, saga.TimerFired(False), [("dispatch", "charge", 2), ("arm", None)]),
        (8, lambda st: ended(st, "TIMED_OUT"),
         [("intent.step_failed", "charge", "final"), ("compensate", "reserve", 1)]),
        (9, ended, [("intent.compensated", "reserve", None),
                    ("fail", "charge", "step_timeout", ("reserve",), ())]),
    ]),
    "on_failure goes on elsewhere": (compiled(agent("a", on_failure="fix"), agent("b"), agent("fix")), [
        (0, saga.Start(), [("dispatch", "a", 1)]),
        (1, lambda st: ended(st, "CANCELED"), [("intent.step_failed", "a", "fix"), ("dispatch", "fix", 1)]),
        (2, ended, [("complete", 1)]),
    ]),
    "a compensation that fails for good is left to a person": (
        compiled(agent("a", compensate={"assigned_to": "a"}), agent("b")), [
            (0, saga.Start(), [("dispatch", "a", 1)]),
            (1, ended, [("dispatch", "b", 1)]),
            (2, lambda st: ended(st, "FAILED"), [("intent.step_failed", "b", "final"), ("compensate", "a", 1)]),
            (3, lambda st: ended(st, "FAILED", error={"message": "gone"}),
             [("intent.compensation_failed", "a", "final"), ("task", "manual_undo", "workspace"), ("arm", None)]),
            (4, saga.Answered({"outcome": "completed"}, "actor://o/w/ann@example.com"),
             [("fail", "b", "failed", (), ("a",))]),
        ]),
    "a human step: reminders, escalation, then an approval": (
        compiled({"step_id": "approve", "kind": "human", "assigned_to": "ops", "remind_after_seconds": 10,
                  "remind_interval_seconds": 5, "max_reminders": 2, "escalate_to": "boss"}, agent("ship")), [
            (0, saga.Start(), [("task", "approve", "ops@example.com"), ("arm", 10.0)]),
            (10, saga.TimerFired(True), [("remind", 1, True), ("arm", 15.0)]),
            (15, saga.TimerFired(True), [("remind", 2, False), ("arm", None)]),
            (20, saga.Answered({"outcome": "approved"}, "actor://o/w/boss"), [("dispatch", "ship", 1)]),
            (21, ended, [("complete", 2)]),
        ]),
    "a rejected human step fails it; its deadline too": (
        compiled({"step_id": "approve", "kind": "human", "step_deadline_seconds": 60,
                  "retry": {"max_retries": 1, "retry_delay_seconds": 1}}), [
            (0, saga.Start(), [("task", "approve", "human"), ("arm", 60.0)]),
            (5, saga.Answered({"outcome": "rejected"}, "actor://o/w/x"),
             [("intent.step_failed", "approve", 1.0), ("arm", 6.0)]),
            (6, saga.TimerFired(False), [("task", "approve", "human"), ("arm", 66.0), ("arm", 66.0)]),
            (66, saga.TimerFired(True), [("intent.step_failed", "approve", "final"),
                                         ("fail", "approve", "step_timeout", (), ())]),
        ]),
    "a delay step, then a notification done at once": (
        compiled({"step_id": "pause", "kind": "internal", "runtime_type": "delay", "runtime_config": {"seconds": 30}},
                 {"step_id": "tell", "kind": "internal", "tool_id": "tool.notify"}), [
            (0, saga.Start(), [("wait", 30.0), ("arm", 30.0)]),
            (29, saga.TimerFired(False), [("arm", 30.0)]),  # woke early: nothing is due yet
            (30, saga.TimerFired(False), [("complete", 2)]),
        ]),
    "a stale child and a run that is done change nothing": (ORDER, [
        (0, saga.Start(), [("dispatch", "reserve", 1)]),
        (1, saga.ChildEnded("another", False, "COMPLETED"), []),
        (2, saga.ParentEnded("CANCELED"), [("stop", "reserve-1-s")]),
        (3, ended, []),
        (4, saga.TimerFired(False), []),
    ]),
}


@pytest.mark.parametrize("name", CASES)
def test_scripts(name: str) -> None:
    flow, script = CASES[name]
    run(flow, script)


def test_results_history_and_the_step_payload_inputs() -> None:
    state = run(ORDER, [
        (0, saga.Start(), [("dispatch", "reserve", 1)]),
        (1.5, lambda st: ended(st, result={"held": 2}), [("dispatch", "charge", 1)]),
    ])
    assert state["results"] == {"reserve": {"held": 2}}
    assert state["completed"] == ["reserve"]
    assert [(h["step_id"], h["status"], h["duration_ms"], h["intent_id"]) for h in state["history"]] == [
        ("reserve", "COMPLETED", 1500.0, "reserve-1-s")]
    assert (state["step"], state["attempt"], state["runs"]) == ("charge", 1, 2)


def test_decide_changes_nothing_it_is_given() -> None:
    state = run(ORDER, [(0, saga.Start(), [("dispatch", "reserve", 1)]),
                        (1, ended, [("dispatch", "charge", 1)])])
    before, flow = copy.deepcopy(state), copy.deepcopy(ORDER)
    for event in (ended(state, "FAILED"), saga.ParentEnded("CANCELED"), saga.TimerFired(False)):
        saga.decide(ORDER, state, event, T0 + 3)
    assert state == before
    assert flow == ORDER


def test_the_loop_guard_ends_a_workflow_that_loops() -> None:
    flow = compiled(agent("a", on_failure="a"))
    state, _ = saga.decide(flow, saga.new_state(), saga.Start(), T0)
    for n in range(saga.MAX_STEP_RUNS - 1):
        state["child"] = f"a-{n}"
        state, decisions = saga.decide(flow, state, ended(state, "FAILED"), T0)
        assert [short(d)[0] for d in decisions] == ["intent.step_failed", "dispatch"]
    state["child"] = "last"
    state, decisions = saga.decide(flow, state, ended(state, "FAILED"), T0)
    assert [short(d) for d in decisions] == [
        ("intent.step_failed", "a", "a"),
        ("fail", "a", f"more than {saga.MAX_STEP_RUNS} step runs: the workflow loops", (), ())]


def test_a_run_stored_by_an_earlier_version_goes_on() -> None:
    """A state as ``engine/workflows.py`` wrote it before the saga was a table: the workflow finishes."""
    stored = {"phase": "running", "step": "charge", "attempt": 1, "child": "c-1", "step_started": T0,
              "runs": 2, "results": {"reserve": {"ok": 1}}, "completed": ["reserve"],
              "history": [{"step_id": "reserve", "attempt": 1, "status": "COMPLETED", "started_at": "x",
                           "ended_at": "y", "duration_ms": 1.0, "intent_id": "c-0"}],
              "timer": None, "failure": None, "comp_queue": [], "comp_step": None, "comp_attempt": 0,
              "compensated": [], "compensation_failed": [], "remind": None}
    run(ORDER, [(1, ended, [("dispatch", "ship", 1)]), (2, ended, [("complete", 3)])], stored)


@pytest.mark.parametrize(("status", "error", "reason"), [
    ("TIMED_OUT", {"reason": "x"}, "step_timeout"),
    ("CANCELED", None, "canceled"),
    ("FAILED", {"code": "delivery_failed", "reason": "max delivery attempts reached"}, "delivery_failed"),
    ("FAILED", {"reason": "out of stock"}, "out of stock"),
    ("FAILED", {"reason": "", "message": "declined"}, "declined"),
    ("FAILED", {"error": "boom"}, "boom"),
    ("FAILED", "not a dict", "failed"),
    ("FAILED", None, "failed"),
])
def test_failure_reasons(status: str, error: Any, reason: str) -> None:
    assert saga.failure_reason(status, error) == reason


def test_what_a_person_answers() -> None:
    flow = compiled({"step_id": "approve", "kind": "human"}, agent("ship"))
    state, _ = saga.decide(flow, saga.new_state(), saga.Start(), T0)
    assert saga.awaits(flow, state) == "step"
    state, _ = saga.decide(flow, state, saga.Answered({"outcome": "approved"}, "p"), T0)
    assert saga.awaits(flow, state) is None
    assert saga.awaits(flow, {**state, "phase": "manual_undo"}) == "manual_undo"

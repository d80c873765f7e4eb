"""A workflow run: the parent intent of a ScenarioBundle whose steps are sub-intents, moved on by reactions.

Everything here runs inside the store transaction of the event that caused it: a step sub-intent
becoming terminal (``on_ended``), an engine timer firing (``on_timer``), a person answering a human step
(``resume_parent``), or ``workflows.op_apply`` (``start``). So a crash can never leave a step finished
without the workflow having moved on, and the workflow never moves twice for one step.

The parent intent (to ``agent://agent_core``, never on a feed) shows the whole flow: each
dispatch is an event on it with ``pending_with`` and ``details.step_id``; failures, retries and
compensations are events too. Compensation (our extension): when a step fails for good and has
no ``on_failure``, every completed step that declares ``compensate`` is undone, newest first,
each by a compensation sub-intent to its agent, before the parent ends FAILED.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from axme_cli.protocol import addresses
from axme_cli.protocol import lifecycle as lc
from axme_cli.protocol.scenario import next_step_id
from axme_cli.protocol.tasks import is_rejection, with_defaults
from axme_cli.runtime.clock import iso
from axme_cli.runtime.engine import human_tasks
from axme_cli.runtime.engine.answers import check_task_result
from axme_cli.runtime.engine.changes import apply_event, arm_timer, insert_new_intent
from axme_cli.runtime.engine.codec import dumps, loads
from axme_cli.runtime.engine.effects import Effect, Ended
from axme_cli.runtime.engine.views import intent_view
from axme_cli.runtime.errors import Conflict, Forbidden, Unprocessable
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Row, Tx

ENGINE = "agent://axme.runtime/workflow"
MAX_STEP_RUNS = 1000  # a loop guard: no workflow dispatches more steps than this

DELAY_TYPES = frozenset({"delay", "timeout"})


def qualify(s: Settings, address: str) -> str:
    if "://" in address:
        return address
    return addresses.qualify(address, s.org, s.workspace)


def new_state() -> dict[str, Any]:
    return {
        "phase": "running",  # running | compensating | done
        "step": None, "attempt": 0, "child": None, "step_started": None,
        "runs": 0, "results": {}, "completed": [], "history": [], "timer": None,
        "failure": None, "comp_queue": [], "comp_step": None, "comp_attempt": 0,
        "compensated": [], "compensation_failed": [],
    }


class Compiled:
    """A workflow's runnable form, parsed once: ``compiled`` never changes after ``op_apply`` stores it, so the
    parsed form (and its steps by id) is kept by workflow id (the newest 4,096) instead of parsed at every step.
    Read-only: nothing may change what it holds."""

    SIZE = 4096
    _kept: dict[str, tuple[dict[str, Any], dict[str, dict[str, Any]]]] = {}

    @classmethod
    def keep(cls, workflow_id: str, compiled: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        kept = cls._kept
        if len(kept) >= cls.SIZE:
            del kept[next(iter(kept))]  # the oldest
        entry = kept[workflow_id] = (compiled, {st["step_id"]: st for st in compiled["steps"]})
        return entry

    @classmethod
    def of(cls, workflow_id: str, text: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        entry = cls._kept.get(workflow_id)
        return entry if entry is not None else cls.keep(workflow_id, loads(text))


@dataclass
class Run:
    """One workflow as loaded inside a transaction."""

    tx: Tx
    s: Settings
    parent: Row
    workflow_id: str
    compiled: dict[str, Any]
    state: dict[str, Any]
    now: float
    steps: dict[str, dict[str, Any]]  # the compiled steps by id
    fx: list[Effect]  # what the run's changes caused (a step sub-intent to deliver, the parent ended)

    def save(self) -> None:
        self.tx.update_workflow(self.workflow_id, {"state": dumps(self.state), "updated_at": iso(self.now)})

    def event(self, event_type: str, **kwargs: Any) -> dict[str, Any]:
        return apply_event(self.tx, self.s, self.parent, event_type, self.now, actor=ENGINE, fx=self.fx, **kwargs)

    def holder(self, role_or_address: str) -> dict[str, Any]:
        role = self.compiled["roles"].get(role_or_address)
        if role and role["kind"] == "human":
            return {"type": "human", "ref": role.get("contact") or role_or_address, "name": role["display_name"]}
        address = role["address"] if role else qualify(self.s, role_or_address)
        return {"type": "agent", "ref": address, "name": address}

    def set_timer(self, seconds: float, kind: str, **info: Any) -> None:
        """The workflow's one engine timer (retry delay, delay step, step deadline, compensation retry)."""
        self.state["timer"] = {"kind": kind, "at": self.now + max(0.0, seconds), **info}
        self.arm()

    def arm(self) -> None:
        """Point the parent's timer_ts at the earliest of the engine timer and the next reminder."""
        due = [t["at"] for t in (self.state.get("timer"), self.state.get("remind")) if t and t.get("at") is not None]
        arm_timer(self.tx, self.parent, min(due) if due else None)


def _load(tx: Tx, s: Settings, parent: Row, workflow_id: str, now: float, fx: list[Effect]) -> Run | None:
    wf = tx.get_workflow(workflow_id)
    if wf is None:
        return None
    compiled, steps = Compiled.of(workflow_id, wf["compiled"])
    return Run(tx, s, parent, workflow_id, compiled, loads(wf["state"]), now, steps, fx)


# ---------------------------------------------------------------------------------------------
# steps


def start(run: Run) -> None:
    """The first step of a workflow just applied."""
    _start_step(run, run.compiled["entry"], 1)


def _start_step(run: Run, step_id: str, attempt: int, completed: dict[str, Any] | None = None) -> None:
    st = run.state
    st["runs"] += 1
    if st["runs"] > MAX_STEP_RUNS:
        _fail_flow(run, step_id, f"more than {MAX_STEP_RUNS} step runs: the workflow loops")
        return
    step = run.steps[step_id]
    st.update(step=step_id, attempt=attempt, child=None, step_started=run.now, remind=None)
    details: dict[str, Any] = {"step_id": step_id, "attempt": attempt, "kind": step["kind"]}
    if completed:
        details["completed_step"] = completed
    kind = step["kind"]
    if kind == "agent":
        holder = run.holder(step["assigned_to"])
        child = _dispatch_child(run, step, holder["ref"], attempt, compensation=False)
        st["child"] = child["intent_id"]
        details["step_intent_id"] = child["intent_id"]
        run.event("intent.waiting", waiting_reason="WAITING_FOR_AGENT", details=details,
                  doc_updates={"pending_with": holder})
        return
    if kind == "human":
        task = with_defaults(step.get("human_task") or {"title": f"Approve step {step_id}"})
        task["step_id"] = step_id
        holder = run.holder(step.get("assigned_to") or "human")
        if holder["type"] != "human":
            holder = {"type": "human", "ref": step.get("assigned_to") or "human", "name": step.get("assigned_to")}
        details["human_task"] = task
        deadline = float(step["step_deadline_seconds"]) if step.get("step_deadline_seconds") else None
        human_tasks.open_task(run.tx, run.s, run.parent, task, holder, run.now, actor=ENGINE, details=details,
                        due_ts=run.now + deadline if deadline is not None else None)
        run.state["remind"] = human_tasks.new_remind(step, run.now, step=step_id, attempt=attempt)
        if deadline is not None:
            run.set_timer(deadline, "step_deadline", step=step_id, attempt=attempt)
        else:
            run.arm()
        return
    # internal steps run in the runtime itself
    tool = step.get("runtime_type") or step.get("tool_id") or "internal"
    holder = {"type": "internal", "ref": tool, "name": tool}
    if step.get("runtime_type") in DELAY_TYPES or tool == "tool.internal.delay":
        config = {**(step.get("input") or {}), **(step.get("runtime_config") or {})}
        seconds = float(config.get("seconds") or config.get("delay_seconds") or step.get("step_deadline_seconds") or 0)
        details["delay_seconds"] = seconds
        run.event("intent.waiting", waiting_reason="WAITING_FOR_TIME", details=details,
                  doc_updates={"pending_with": holder})
        run.set_timer(seconds, "delay", step=step_id, attempt=attempt)
        return
    # notifications, reminders, escalations: recorded as done at once
    _step_succeeded(run, {"tool": tool, "notified": True, "at": iso(run.now)})


def _dispatch_child(run: Run, step: dict[str, Any], address: str, attempt: int, *, compensation: bool) -> Row:
    """Create a step (or compensation) sub-intent addressed to an agent."""
    st = run.state
    parent = run.parent
    spec = step["compensate"] if compensation else step
    payload: dict[str, Any] = {
        "parent_payload": loads(parent["payload"]),
        "step_id": step["step_id"],
        "input": spec.get("input") or {},
        "results": dict(st["results"]),
        "parent_intent_id": parent["intent_id"],
        "attempt": attempt,
    }
    if compensation:
        payload.update(compensation=True, step_result=st["results"].get(step["step_id"]),
                       failure=st["failure"])
    deadline = spec.get("step_deadline_seconds")
    req = {
        "intent_type": spec.get("intent_type") or parent["intent_type"],
        "correlation_id": parent["correlation_id"],
        "from_agent": parent["from_agent"],
        "to_agent": address,
        "payload": payload,
        "max_delivery_attempts": spec.get("max_delivery_attempts") or run.compiled["intent"].get(
            "max_delivery_attempts"),
        "deadline_at": iso(run.now + float(deadline)) if deadline else None,
        "trace": loads(parent["doc"]).get("trace"),  # a step's span is a child of the parent's (issue 9)
    }
    return insert_new_intent(run.tx, run.s, req, run.now, fx=run.fx, doc_extra={
        "workflow_id": run.workflow_id, "parent_intent_id": parent["intent_id"], "step_id": step["step_id"],
        "step_attempt": attempt, "compensation": compensation,
    })


def _history(run: Run, status: str, reason: str | None = None) -> dict[str, Any]:
    """Record the end of the current step (its reminders end with it)."""
    st = run.state
    st["remind"] = None
    started = st.get("step_started") or run.now
    entry = {"step_id": st["step"], "attempt": st["attempt"], "status": status, "started_at": iso(started),
             "ended_at": iso(run.now), "duration_ms": round((run.now - started) * 1000, 1),
             "intent_id": st.get("child")}
    if reason:
        entry["reason"] = reason
    st["history"].append(entry)
    return entry


def _step_succeeded(run: Run, result: Any) -> None:
    st = run.state
    step_id = st["step"]
    st["results"][step_id] = result
    if step_id not in st["completed"]:
        st["completed"].append(step_id)
    done = _history(run, lc.COMPLETED)
    st["child"] = None
    nxt = next_step_id(run.compiled["steps"], step_id, "success")
    if nxt is None:
        _complete_flow(run, done)
    else:
        _start_step(run, nxt, 1, completed=done)


def _step_failed(run: Run, reason: str) -> None:
    st = run.state
    step_id, attempt = st["step"], st["attempt"]
    step = run.steps[step_id]
    failed = _history(run, lc.FAILED, reason)
    st["child"] = None
    retry = step.get("retry") or {}
    details: dict[str, Any] = {"step_id": step_id, "attempt": attempt, "reason": reason,
                               "duration_ms": failed["duration_ms"]}
    if _retry_later(run, retry, step_id, attempt, details, "intent.step_failed", "retry"):
        return
    on_failure = step.get("on_failure")
    if on_failure:
        details["next_step"] = on_failure
        run.event("intent.step_failed", details=details)
        _start_step(run, on_failure, 1)
        return
    details["final"] = True
    run.event("intent.step_failed", details=details)
    _begin_compensation(run, step_id, reason)


def _retry_later(run: Run, retry: dict[str, Any], step_id: str, attempt: int, details: dict[str, Any],
                 event_type: str, timer: str) -> bool:
    """Within its retry budget, a failed step (or compensation) is tried again after its delay."""
    if attempt > int(retry.get("max_retries") or 0):
        return False
    delay = float(retry.get("retry_delay_seconds") or 30)
    details.update(retry_in_seconds=delay, next_attempt=attempt + 1)
    run.event(event_type, details=details)
    run.set_timer(delay, timer, step=step_id, attempt=attempt + 1)
    return True


# ---------------------------------------------------------------------------------------------
# compensation


def _begin_compensation(run: Run, failed_step: str, reason: str) -> None:
    st = run.state
    st["phase"] = "compensating"
    st["failure"] = {"failed_step": failed_step, "reason": reason}
    st["comp_queue"] = [sid for sid in reversed(st["completed"]) if run.steps[sid].get("compensate")]
    _next_compensation(run)


def _next_compensation(run: Run) -> None:
    st = run.state
    if not st["comp_queue"]:
        if st["compensation_failed"] and st["phase"] == "compensating":
            _open_manual_undo(run)
            return
        failure = st["failure"] or {}
        _fail_flow(run, failure.get("failed_step"), failure.get("reason") or "failed")
        return
    step_id = st["comp_queue"].pop(0)
    _dispatch_compensation(run, step_id, 1)


def _dispatch_compensation(run: Run, step_id: str, attempt: int) -> None:
    st = run.state
    step = run.steps[step_id]
    holder = run.holder(step["compensate"]["assigned_to"])
    child = _dispatch_child(run, step, holder["ref"], attempt, compensation=True)
    st.update(comp_step=step_id, comp_attempt=attempt, child=child["intent_id"], step_started=run.now)
    details = {"step_id": step_id, "attempt": attempt, "compensation_intent_id": child["intent_id"],
               "failed_step": (st["failure"] or {}).get("failed_step")}
    run.event("intent.compensating", waiting_reason="WAITING_FOR_AGENT", details=details,
              doc_updates={"pending_with": holder})


def _compensation_finished(run: Run, ok: bool, reason: str) -> None:
    st = run.state
    step_id, attempt = st["comp_step"], st["comp_attempt"]
    st["child"] = None
    if ok:
        st["compensated"].append(step_id)
        run.event("intent.compensated", details={"step_id": step_id, "attempt": attempt})
        _next_compensation(run)
        return
    retry = run.steps[step_id]["compensate"].get("retry") or {}
    details: dict[str, Any] = {"step_id": step_id, "attempt": attempt, "reason": reason}
    if _retry_later(run, retry, step_id, attempt, details, "intent.compensation_failed", "comp_retry"):
        return
    details["final"] = True
    st["compensation_failed"].append(step_id)
    run.event("intent.compensation_failed", details=details)
    _next_compensation(run)


def _open_manual_undo(run: Run) -> None:
    """Compensations that failed for good are left to a person: a manual_action task on the parent. Its
    answer (completed: undone by hand; failed: it cannot be) is recorded and the workflow ends FAILED."""
    st = run.state
    failed = list(st["compensation_failed"])
    failure = st["failure"] or {}
    st.update(phase="manual_undo", child=None, remind=None, timer=None, step_started=run.now)
    task = with_defaults({
        "title": f"Undo by hand: {', '.join(failed)}",
        "description": f"Step {failure.get('failed_step')} failed ({failure.get('reason')}) and the automatic undo "
                       f"of {', '.join(failed)} failed for good. Undo it by hand, then answer completed (say what "
                       "you did), or failed when it cannot be undone. The workflow then ends FAILED.",
        "task_type": "manual_action",
    })
    holder = {"type": "human", "ref": "workspace", "name": "any member of the workspace"}
    human_tasks.open_task(run.tx, run.s, run.parent, task, holder, run.now, actor=ENGINE,
                    details={"step_id": "manual_undo", "compensation_failed": failed, "human_task": task})
    run.arm()


# ---------------------------------------------------------------------------------------------
# ends


def _complete_flow(run: Run, last: dict[str, Any]) -> None:
    st = run.state
    st["phase"] = "done"
    run.save()
    run.event("intent.completed", details={"completed_step": last, "steps": len(st["completed"])},
              doc_updates={"result": {"results": st["results"], "steps": st["history"]}, "pending_with": None})


def _fail_flow(run: Run, failed_step: str | None, reason: str) -> None:
    st = run.state
    st["phase"] = "done"
    run.save()
    compensable = [sid for sid in st["completed"] if run.steps[sid].get("compensate")]
    error = {"failed_step": failed_step, "reason": reason, "compensated": list(st["compensated"]),
             "compensation_failed": list(st["compensation_failed"]),
             "not_compensated": [sid for sid in st["completed"] if sid not in compensable]}
    if st.get("manual_undo"):
        error["manual_undo"] = st["manual_undo"]
    run.event("intent.failed", details={"failed_step": failed_step, "reason": reason,
                                        "compensated": list(st["compensated"])},
              doc_updates={"error": error, "result": {"results": st["results"], "steps": st["history"]},
                           "pending_with": None})


# ---------------------------------------------------------------------------------------------
# reactions


def _reason(row: Row, doc: dict[str, Any]) -> str:
    status = row["status"]
    if status == lc.TIMED_OUT:
        return "step_timeout"
    if status == lc.CANCELED:
        return "canceled"
    error = doc.get("error")
    if isinstance(error, dict):
        if error.get("code") == "delivery_failed":
            return "delivery_failed"
        for key in ("reason", "message", "error"):
            if isinstance(error.get(key), str) and error[key]:
                return str(error[key])
    return "failed"


def on_ended(tx: Tx, s: Settings, ended: Ended, fx: list[Effect]) -> None:
    """An intent of a workflow ended: a step, a compensation, or the parent itself."""
    row, doc, now = ended.row, ended.doc, ended.now
    if not doc.get("workflow_id"):
        return
    if doc.get("workflow_parent"):
        run = _load(tx, s, row, doc["workflow_id"], now, fx)
        if run is None or run.state["phase"] == "done":
            return
        # Ended from outside (canceled, resolved, its deadline): stop the step that is running.
        run.state["phase"] = "done"
        run.save()
        child_id = run.state.get("child")
        child = tx.get_intent(child_id) if child_id else None
        if child is not None and child["status"] not in lc.TERMINAL:
            apply_event(tx, s, child, "intent.canceled", now, actor=ENGINE,
                        details={"reason": f"workflow ended {row['status']}"},
                        doc_updates={"error": {"reason": f"workflow ended {row['status']}"}}, fx=fx)
        return
    parent = tx.get_intent(doc.get("parent_intent_id") or "")
    if parent is None or parent["status"] in lc.TERMINAL:
        return
    run = _load(tx, s, parent, doc["workflow_id"], now, fx)
    if run is None or run.state["phase"] == "done" or run.state.get("child") != row["intent_id"]:
        return  # a stale attempt, or the workflow moved on
    ok = row["status"] == lc.COMPLETED
    if doc.get("compensation"):
        _compensation_finished(run, ok, "" if ok else _reason(row, doc))
    elif ok:
        _step_succeeded(run, doc.get("result"))
    else:
        _step_failed(run, _reason(row, doc))
    if run.state["phase"] != "done":
        run.save()


def on_timer(tx: Tx, s: Settings, parent: Row, now: float, fx: list[Effect]) -> None:
    """An engine timer of a workflow parent fired (the scheduler already cleared timer_ts): reminders and
    escalation of a human step, then the workflow's own timer; whatever is left is armed again."""
    doc = loads(parent["doc"])
    if not doc.get("workflow_parent"):
        return
    run = _load(tx, s, parent, doc["workflow_id"], now, fx)
    if run is None or run.state["phase"] == "done":
        return
    remind = run.state.get("remind")
    if remind and remind["at"] <= now:
        _remind(run, remind)
    timer = run.state.get("timer")
    if timer and timer.get("at", 0) <= now:
        run.state["timer"] = None
        kind = timer["kind"]
        if kind == "retry" and run.state["step"] == timer["step"]:
            _start_step(run, timer["step"], timer["attempt"])
        elif kind == "delay" and run.state["step"] == timer["step"]:
            _step_succeeded(run, {"waited_seconds": round(now - (run.state.get("step_started") or now), 3)})
        elif kind == "step_deadline" and run.state["step"] == timer["step"] and \
                run.state["attempt"] == timer["attempt"]:
            _step_failed(run, "step_timeout")
        elif kind == "comp_retry":
            _dispatch_compensation(run, timer["step"], timer["attempt"])
    if run.state["phase"] != "done":
        run.arm()
        run.save()


def _remind(run: Run, remind: dict[str, Any]) -> None:
    """A human step is still open: remind its holder; after the last reminder, escalate when it says to whom."""
    st = run.state
    if st["step"] != remind["step"] or run.parent["waiting_reason"] != "WAITING_FOR_HUMAN":
        st["remind"] = None
        return
    def escalation_holder(to: str) -> dict[str, Any]:
        target = run.holder(to)
        return target if target["type"] == "human" else {**target, "type": "human"}

    if not human_tasks.fire_reminder(run.tx, run.s, run.parent, remind, run.now, actor=ENGINE,
                               details={"step_id": remind["step"]}, escalation_holder=escalation_holder,
                               keep_in_doc=False):
        st["remind"] = None


def resume_parent(tx: Tx, s: Settings, principal: Principal, parent: Row, doc: dict[str, Any],
                  body: dict[str, Any], now: float, fx: list[Effect]) -> dict[str, Any]:
    """A person answers the human step the workflow waits on (or the manual undo of failed compensations)."""
    if principal.kind == "service_account":
        raise Forbidden("a workflow is resumed by a person or the workspace key; agents resume their step "
                        "intents", code="policy_denied")
    if parent["status"] in lc.TERMINAL:
        raise Conflict(f"intent {parent['intent_id']} is already {parent['status']}", code="intent_terminal",
                       details={"status": parent["status"]})
    run = _load(tx, s, parent, doc["workflow_id"], now, fx)
    if run is not None and run.state["phase"] == "manual_undo" and parent["waiting_reason"] == "WAITING_FOR_HUMAN":
        answer = _task_answer(doc.get("human_task") or {}, body)
        run.state["manual_undo"] = {**answer, "answered_by": principal.address, "at": iso(now)}
        failure = run.state["failure"] or {}
        _fail_flow(run, failure.get("failed_step"), failure.get("reason") or "failed")
        return {"ok": True, "applied": True, "intent": intent_view(parent)}
    step = run.steps.get(run.state["step"] or "") if run else None
    if run is None or step is None or step["kind"] != "human" or parent["waiting_reason"] != "WAITING_FOR_HUMAN":
        raise Conflict("this workflow is not waiting for a person; its agent steps are resumed by their agents",
                       code="invalid_transition", details={"status": parent["status"],
                                                           "waiting_reason": parent["waiting_reason"]})
    answer = _task_answer(doc.get("human_task") or {}, body)
    outcome = str(answer.get("outcome") or "")
    run.state["timer"] = None
    run.state["remind"] = None
    if is_rejection(outcome):
        _step_failed(run, f"{outcome} by {principal.address}")
    else:
        _step_succeeded(run, {**answer, "answered_by": principal.address})
    if run.state["phase"] != "done":
        run.save()
    return {"ok": True, "applied": True, "intent": intent_view(parent)}


def _task_answer(task: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The ``task_result`` of a resume body (or what ``approve_current_step`` / ``action`` stand for), checked
    against the task (422 when it does not fit; the task stays open)."""
    answer = body.get("task_result")
    if not isinstance(answer, dict):
        if body.get("approve_current_step") is True or body.get("action") in ("complete", "approve"):
            answer = {"outcome": (task.get("allowed_outcomes") or ["approved"])[0]}
        elif body.get("action") in ("fail", "reject"):
            answer = {"outcome": "rejected", "comment": body.get("reason")}
        else:
            raise Unprocessable('answer the task with {"task_result": {"outcome": ...}}',
                                details={"field": "task_result", "allowed": task.get("allowed_outcomes")})
        body = {"task_result": answer}
    check_task_result(task, body)
    return answer

"""A workflow run: the saga's decisions (``engine/saga.py``) applied to the store.

Everything here runs inside the store transaction of the change that caused it: a step sub-intent
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
from axme_cli.runtime.clock import iso
from axme_cli.runtime.engine import human_tasks, saga
from axme_cli.runtime.engine.answers import check_task_result
from axme_cli.runtime.engine.changes import apply_event, arm_timer, insert_new_intent
from axme_cli.runtime.engine.codec import kept, loads, shared
from axme_cli.runtime.engine.effects import Effect, Ended
from axme_cli.runtime.engine.views import intent_view
from axme_cli.runtime.errors import Conflict, Forbidden, Unprocessable
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Row, Tx, drop_oldest

ENGINE = "agent://axme.runtime/workflow"
WAITING_FOR_HUMAN = "WAITING_FOR_HUMAN"


def qualify(s: Settings, address: str) -> str:
    if "://" in address:
        return address
    return addresses.qualify(address, s.org, s.workspace)


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
            drop_oldest(kept, cls.SIZE)
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
        # The saga never changes a state it was given (saga.decide works on a copy): the next step reads it back
        # from the text without parsing it.
        self.tx.update_workflow(self.workflow_id, {"state": kept(self.state), "updated_at": iso(self.now)})

    def event(self, event_type: str, **kwargs: Any) -> dict[str, Any]:
        return apply_event(self.tx, self.s, self.parent, event_type, self.now, actor=ENGINE, fx=self.fx, **kwargs)

    def holder(self, role_or_address: str) -> dict[str, Any]:
        role = self.compiled["roles"].get(role_or_address)
        if role and role["kind"] == "human":
            return {"type": "human", "ref": role.get("contact") or role_or_address, "name": role["display_name"]}
        address = role["address"] if role else qualify(self.s, role_or_address)
        return {"type": "agent", "ref": address, "name": address}

    def escalation_holder(self, to: str) -> dict[str, Any]:
        target = self.holder(to)
        return target if target["type"] == "human" else {**target, "type": "human"}

    def decide(self, event: saga.Event) -> list[saga.Decision]:
        """Ask the saga what ``event`` means for this run and apply its decisions, in order."""
        self.state, decisions = saga.decide(self.compiled, self.state, event, self.now, self.steps)
        for decision in decisions:
            self.apply(decision)
        return decisions

    def apply(self, d: saga.Decision) -> None:
        if isinstance(d, saga.Dispatch):
            holder = self.holder(d.assignee)
            child = _dispatch_child(self, self.steps[d.step_id], holder["ref"], d.attempt, compensation=d.compensation)
            self.state["child"] = child["intent_id"]
            self.event("intent.compensating" if d.compensation else "intent.waiting",
                       waiting_reason="WAITING_FOR_AGENT", details={**d.details, d.child_key: child["intent_id"]},
                       doc_updates={"pending_with": holder})
        elif isinstance(d, saga.OpenTask):
            human_tasks.open_task(self.tx, self.s, self.parent, d.task, d.holder, self.now, actor=ENGINE,
                                  details=d.details, due_ts=d.due_ts)
        elif isinstance(d, saga.Wait):
            self.event("intent.waiting", waiting_reason="WAITING_FOR_TIME", details=d.details,
                       doc_updates={"pending_with": d.holder})
        elif isinstance(d, saga.Record):
            self.event(d.event_type, details=d.details)
        elif isinstance(d, saga.Arm):
            arm_timer(self.tx, self.parent, d.at)
        elif isinstance(d, saga.Remind):
            human_tasks.fire_reminder(self.tx, self.s, self.parent, d.remind, d.more, self.now, actor=ENGINE,
                                      details=d.details, escalation_holder=self.escalation_holder,
                                      keep_in_doc=False)
        elif isinstance(d, saga.Complete):
            self.save()  # before the parent ends: its reactions find the run done
            self.event("intent.completed", details=d.details, doc_updates={"result": d.result, "pending_with": None})
        elif isinstance(d, saga.Fail):
            self.save()
            self.event("intent.failed", details=d.details,
                       doc_updates={"error": d.error, "result": d.result, "pending_with": None})
        elif isinstance(d, saga.Stop):
            self.save()
            running = self.tx.get_intent(d.child) if d.child else None
            if running is not None and running["status"] not in lc.TERMINAL:
                apply_event(self.tx, self.s, running, "intent.canceled", self.now, actor=ENGINE,
                            details={"reason": d.reason}, doc_updates={"error": {"reason": d.reason}}, fx=self.fx)

    def move_on(self, event: saga.Event) -> None:
        """``decide``, then keep the state when it changed and the run goes on (an ended run saved it before)."""
        if self.decide(event) and self.state["phase"] != "done":
            self.save()


def _load(tx: Tx, s: Settings, parent: Row, workflow_id: str, now: float, fx: list[Effect]) -> Run | None:
    wf = tx.get_workflow(workflow_id)
    if wf is None:
        return None
    compiled, steps = Compiled.of(workflow_id, wf["compiled"])
    return Run(tx, s, parent, workflow_id, compiled, shared(wf["state"]), now, steps, fx)


def start(run: Run) -> None:
    """The first step of a workflow just applied (``workflows.op_apply`` saves the run)."""
    run.decide(saga.Start())


def _dispatch_child(run: Run, step: dict[str, Any], address: str, attempt: int, *, compensation: bool) -> Row:
    """Create a step (or compensation) sub-intent addressed to an agent."""
    st = run.state
    parent = run.parent
    spec = step["compensate"] if compensation else step
    payload: dict[str, Any] = {  # read only, as the child's payload is (kept)
        "parent_payload": shared(parent["payload"]),
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
    deadline_ts = run.now + float(deadline) if deadline else None
    req = {
        "intent_type": spec.get("intent_type") or parent["intent_type"],
        "correlation_id": parent["correlation_id"],
        "from_agent": parent["from_agent"],
        "to_agent": address,
        "payload": payload,
        "max_delivery_attempts": spec.get("max_delivery_attempts") or run.compiled["intent"].get(
            "max_delivery_attempts"),
        "deadline_at": iso(deadline_ts) if deadline_ts is not None else None,
        "deadline_ts": deadline_ts,  # not parsed back from its text
        "trace": shared(parent["doc"]).get("trace"),  # a step's span is a child of the parent's
    }
    return insert_new_intent(run.tx, run.s, req, run.now, fx=run.fx, parent=parent, doc_extra={
        "workflow_id": run.workflow_id, "parent_intent_id": parent["intent_id"], "step_id": step["step_id"],
        "step_attempt": attempt, "compensation": compensation,
    })


# ---------------------------------------------------------------------------------------------
# reactions


def on_ended(tx: Tx, s: Settings, ended: Ended, fx: list[Effect]) -> None:
    """An intent of a workflow ended: a step, a compensation, or the parent itself."""
    row, doc, now = ended.row, ended.doc, ended.now
    if not doc.get("workflow_id"):
        return
    if doc.get("workflow_parent"):  # ended from outside (canceled, resolved, its deadline): stop the running step
        run = _load(tx, s, row, doc["workflow_id"], now, fx)
        if run is not None:
            run.move_on(saga.ParentEnded(row["status"]))
        return
    parent = tx.get_intent(doc.get("parent_intent_id") or "")
    if parent is None or parent["status"] in lc.TERMINAL:
        return
    run = _load(tx, s, parent, doc["workflow_id"], now, fx)
    if run is not None:
        run.move_on(saga.ChildEnded(row["intent_id"], bool(doc.get("compensation")), row["status"],
                                    doc.get("result"), doc.get("error")))


def on_timer(tx: Tx, s: Settings, parent: Row, now: float, fx: list[Effect]) -> None:
    """An engine timer of a workflow parent fired (the scheduler already cleared timer_ts)."""
    doc = loads(parent["doc"])
    if not doc.get("workflow_parent"):
        return
    run = _load(tx, s, parent, doc["workflow_id"], now, fx)
    if run is not None:
        run.move_on(saga.TimerFired(parent["waiting_reason"] == WAITING_FOR_HUMAN))


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
    if run is None or saga.awaits(run.compiled, run.state) is None or parent["waiting_reason"] != WAITING_FOR_HUMAN:
        raise Conflict("this workflow is not waiting for a person; its agent steps are resumed by their agents",
                       code="invalid_transition", details={"status": parent["status"],
                                                           "waiting_reason": parent["waiting_reason"]})
    answer = _task_answer(doc.get("human_task") or {}, body)
    run.move_on(saga.Answered(answer, principal.address))
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

"""ScenarioBundle: the model (axp-spec api.scenarios.bundle.request.v1 + our `compensate` block)
and its validation, offline and pure. The runtime uses the same verdicts for
``POST /v1/scenarios/validate`` and ``/apply``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from axme_cli.protocol.models import MAX_REMINDERS, MAX_SECONDS, HumanTaskSpec, IntentType, IsoDateTime

Seconds = Annotated[int, Field(ge=1, le=MAX_SECONDS)]
Reminders = Annotated[int, Field(ge=1, le=MAX_REMINDERS)]

AGENT_TOOL = "tool.agent.task.v1"
HUMAN_TOOLS = frozenset({"tool.approval.human_signoff", "tool.human.approval.v1", "tool.human.task.v1"})
INTERNAL_TOOLS = frozenset({
    "tool.internal.delay", "tool.internal.notification", "tool.internal.escalation",
    "tool.notification.notify_owner",
})
RUNTIME_TYPES = ("human_approval", "timeout", "reminder", "delay", "escalation", "notification")

StepKind = Literal["agent", "human", "internal"]


class _Model(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")


class RetryPolicy(_Model):
    max_retries: Annotated[int, Field(ge=0, le=100)] = 0
    retry_delay_seconds: Annotated[float, Field(gt=0, le=86400)] = 30


class CompensateSpec(_Model):
    """Our extension: how to undo a completed step when a later one fails for good."""

    assigned_to: Annotated[str, StringConstraints(min_length=1, max_length=383)]
    intent_type: IntentType | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    step_deadline_seconds: Seconds | None = None
    retry: RetryPolicy | None = None
    max_delivery_attempts: Annotated[int, Field(ge=1, le=100)] | None = None


class AgentSpec(_Model):
    role: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    address: Annotated[str, StringConstraints(min_length=1, max_length=383)]
    create_if_missing: bool = False
    display_name: Annotated[str, StringConstraints(max_length=255)] | None = None
    delivery_mode: Literal["stream", "poll", "http", "inbox"] | None = None
    callback_url: Annotated[str, StringConstraints(max_length=2048)] | None = None


class HumanSpec(_Model):
    role: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    contact: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None
    display_name: Annotated[str, StringConstraints(max_length=255)] | None = None


class StepSpec(_Model):
    step_id: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    tool_id: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None
    runtime_type: Literal[RUNTIME_TYPES] | None = None  # type: ignore[valid-type]
    runtime_config: dict[str, Any] | None = None
    assigned_to: Annotated[str, StringConstraints(max_length=383)] | None = None
    requires_approval: bool = False
    step_deadline_seconds: Seconds | None = None
    retry: RetryPolicy | None = None
    human_task: HumanTaskSpec | None = None
    remind_after_seconds: Seconds | None = None
    remind_interval_seconds: Seconds | None = None
    max_reminders: Reminders | None = None
    escalate_to: Annotated[str, StringConstraints(max_length=383)] | None = None
    on_success: Annotated[str, StringConstraints(max_length=100)] | None = None
    on_failure: Annotated[str, StringConstraints(max_length=100)] | None = None
    input: dict[str, Any] | None = None
    # Our extensions.
    intent_type: IntentType | None = None
    max_delivery_attempts: Annotated[int, Field(ge=1, le=100)] | None = None
    compensate: CompensateSpec | None = None


class WorkflowSpec(_Model):
    macro_id: Annotated[str, StringConstraints(max_length=255)] | None = None
    parameters: dict[str, Any] | None = None
    entry_step: Annotated[str, StringConstraints(max_length=100)] | None = None
    steps: Annotated[list[StepSpec], Field(min_length=1, max_length=100)] | None = None


class IntentSpec(_Model):
    type: IntentType
    payload: dict[str, Any] = Field(default_factory=dict)
    deadline_at: IsoDateTime | None = None
    remind_after_seconds: Seconds | None = None
    remind_interval_seconds: Seconds | None = None
    max_reminders: Reminders | None = None
    escalate_to: Annotated[str, StringConstraints(max_length=383)] | None = None
    max_delivery_attempts: Annotated[int, Field(ge=1, le=100)] | None = None
    human_task: HumanTaskSpec | None = None
    reply_to: Annotated[str, StringConstraints(min_length=3, max_length=383)] | None = None


class ScenarioBundle(_Model):
    scenario_id: Annotated[str, StringConstraints(min_length=3, max_length=255, pattern=r"^[A-Za-z0-9_.-]+$")]
    title: Annotated[str, StringConstraints(max_length=255)] | None = None
    description: Annotated[str, StringConstraints(max_length=1000)] | None = None
    idempotency_key: Annotated[str, StringConstraints(max_length=255)] | None = None
    agents: Annotated[list[AgentSpec], Field(max_length=50)] = Field(default_factory=list)
    humans: Annotated[list[HumanSpec], Field(max_length=20)] = Field(default_factory=list)
    workflow: WorkflowSpec | None = None
    intent: IntentSpec


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def parse_json_text(text: str) -> tuple[Any, str | None]:
    """A bundle's (or a test file's) text as JSON: (the value, None), or (None, where and why it is not JSON)."""
    import json

    try:
        return json.loads(text), None
    except ValueError as exc:
        line = getattr(exc, "lineno", "?")
        col = getattr(exc, "colno", "?")
        return None, f"not valid JSON at line {line} column {col}: {getattr(exc, 'msg', exc)}"


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _short(path: str) -> str:
    return path.replace("workflow.steps", "steps")


def step_kind(step: StepSpec, agent_roles: set[str], human_roles: set[str]) -> StepKind:
    """Who runs a step: an agent (a sub-intent), a person (a human task), or the runtime itself."""
    if step.requires_approval or step.human_task is not None or step.runtime_type == "human_approval":
        return "human"
    if step.tool_id in HUMAN_TOOLS:
        return "human"
    if step.runtime_type is not None or step.tool_id in INTERNAL_TOOLS or (
        step.tool_id or "").startswith("tool.internal."):
        return "internal"
    if step.assigned_to and step.assigned_to in human_roles:
        return "human"
    if step.assigned_to:
        return "agent"
    return "internal"


def _suggest(name: str, options: list[str]) -> str:
    match = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return f' (did you mean "{match[0]}"?)' if match else ""


def check(raw: Any) -> tuple[ScenarioBundle | None, list[Problem], list[Problem]]:
    """Validate a bundle: (model or None, errors, warnings). Paths look like ``steps[2].on_failure``."""
    errors: list[Problem] = []
    warnings: list[Problem] = []
    if not isinstance(raw, dict):
        return None, [Problem("", "a scenario bundle must be a JSON object")], []
    try:
        bundle = ScenarioBundle.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors(include_url=False, include_input=False):
            msg = err.get("msg", "invalid")
            if err.get("type") == "extra_forbidden":
                msg = "unknown field"
            elif err.get("type") == "missing":
                msg = "field required"
            errors.append(Problem(_short(_loc(tuple(err.get("loc", ())))), msg))
        return None, errors, warnings

    agent_roles = [a.role for a in bundle.agents]
    human_roles = [h.role for h in bundle.humans]
    for kind, roles in (("agents", agent_roles), ("humans", human_roles)):
        seen: set[str] = set()
        for i, role in enumerate(roles):
            if role in seen:
                errors.append(Problem(f"{kind}[{i}].role", f'role "{role}" is declared twice'))
            seen.add(role)
    for role in set(agent_roles) & set(human_roles):
        errors.append(Problem("humans", f'role "{role}" is both an agent and a human'))
    for i, human in enumerate(bundle.humans):
        if not human.contact:
            warnings.append(Problem(f"humans[{i}].contact", "no contact: task mail cannot be sent to this person"))

    wf = bundle.workflow
    if wf is None or not wf.steps:
        if wf is not None and wf.macro_id:
            errors.append(Problem("workflow.macro_id", f'macro "{wf.macro_id}" is not available on this runtime; '
                                  "write the steps inline"))
        elif not bundle.agents:
            errors.append(Problem("workflow", "no steps and no agents: nothing would handle the intent"))
        return bundle, errors, warnings

    steps = wf.steps
    ids = [s.step_id for s in steps]
    index: dict[str, int] = {}
    for i, sid in enumerate(ids):
        if sid in index:
            errors.append(Problem(f"steps[{i}].step_id", f'step "{sid}" is declared twice'))
        index.setdefault(sid, i)
    all_roles = agent_roles + human_roles
    agent_set, human_set = set(agent_roles), set(human_roles)

    def check_role(path: str, value: str | None, *, must_be_agent: bool = False) -> None:
        if not value:
            return
        if "://" in value or "/" in value:
            return  # a literal address
        if value in agent_set or value in human_set:
            if must_be_agent and value not in agent_set:
                errors.append(Problem(path, f'"{value}" is a human role; it must name an agent'))
            return
        if bundle.agents or bundle.humans:
            errors.append(Problem(path, f'no role "{value}"{_suggest(value, all_roles)}; declare it under '
                                  "agents or humans, or use an agent:// address"))

    for i, step in enumerate(steps):
        base = f"steps[{i}]"
        kind = step_kind(step, agent_set, human_set)
        if kind != "internal":
            check_role(f"{base}.assigned_to", step.assigned_to, must_be_agent=False)
        if kind == "agent" and not step.assigned_to:
            errors.append(Problem(f"{base}.assigned_to", "an agent step needs assigned_to (a role or address)"))
        for field in ("on_success", "on_failure"):
            target = getattr(step, field)
            if target is not None and target not in index:
                errors.append(Problem(f"{base}.{field}", f'no step "{target}"{_suggest(target, ids)}'))
        if step.on_failure == step.step_id and not (step.retry and step.retry.max_retries):
            warnings.append(Problem(f"{base}.on_failure", "jumps to itself: use retry {max_retries} instead"))
        if step.escalate_to:
            check_role(f"{base}.escalate_to", step.escalate_to)
        if step.compensate is not None:
            check_role(f"{base}.compensate.assigned_to", step.compensate.assigned_to, must_be_agent=True)
            if kind != "agent":
                errors.append(Problem(f"{base}.compensate", f"a {kind} step has no agent result to undo; "
                                      "compensate only agent steps"))
        if kind == "human" and step.human_task is None and step.requires_approval is False and \
                step.tool_id not in HUMAN_TOOLS:
            warnings.append(Problem(f"{base}", "assigned to a human role without human_task; a default approval "
                                    "task is used"))

    entry = wf.entry_step or ids[0]
    if wf.entry_step is not None and wf.entry_step not in index:
        errors.append(Problem("workflow.entry_step", f'no step "{wf.entry_step}"{_suggest(wf.entry_step, ids)}'))
        return bundle, errors, warnings

    # Reachability and exits, following the runtime's rule: no on_success → the step after it in the
    # list (or the end when it is the last step); no on_failure → the workflow fails.
    def successors(i: int) -> list[tuple[str, int | None]]:
        step = steps[i]
        out: list[tuple[str, int | None]] = []
        if step.on_success is not None:
            out.append(("success", index.get(step.on_success)))
        else:
            out.append(("success", i + 1 if i + 1 < len(steps) else None))
        out.append(("failure", index.get(step.on_failure) if step.on_failure is not None else None))
        return out

    reachable: set[int] = set()
    todo = [index[entry]]
    while todo:
        i = todo.pop()
        if i in reachable:
            continue
        reachable.add(i)
        todo.extend(j for _, j in successors(i) if j is not None)
    for i, sid in enumerate(ids):
        if i not in reachable:
            warnings.append(Problem(f"steps[{i}]", f'step "{sid}" is never reached from "{entry}"'))

    # A loop with no way out: from some reachable step, no path ever ends the workflow.
    can_end: set[int] = set()
    changed = True
    while changed:
        changed = False
        for i in reachable:
            if i in can_end:
                continue
            if any(j is None or j in can_end for _, j in successors(i)):
                can_end.add(i)
                changed = True
    for i in sorted(reachable - can_end):
        errors.append(Problem(f"steps[{i}]", f'step "{ids[i]}" is in a loop with no way out'))
    return bundle, errors, warnings


def next_step_id(steps: list[dict[str, Any]], step_id: str, outcome: Literal["success", "failure"]) -> str | None:
    """Where a workflow goes after ``step_id``: a step id, or None (end on success, fail on failure).

    ``steps`` are step dicts in bundle order. Without ``on_success`` the next step in the list
    follows (none after the last); without ``on_failure`` the workflow fails.
    """
    ids = [st["step_id"] for st in steps]
    i = ids.index(step_id)
    step = steps[i]
    if outcome == "success":
        if step.get("on_success") is not None:
            return str(step["on_success"])
        return ids[i + 1] if i + 1 < len(ids) else None
    on_failure = step.get("on_failure")
    return None if on_failure is None else str(on_failure)

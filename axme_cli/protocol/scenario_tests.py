"""Scenario test files (`axme scenarios test`): the format and its offline validation against the bundle it tests.

Pure: it reads nothing from disk and talks to nothing; the CLI reads the files and hands their JSON here. A test
file names a ScenarioBundle and lists cases; each case says how the stand-in agents answer each step (complete
with a result, fail with a reason, time out), how people answer human steps, and what must be true at the end.
Every problem names its field (``cases[2].expect.compensated[0]``) and, where one exists, the fix, so nothing
runs until the whole file makes sense for that bundle. docs/scenario-tests.md describes the format.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from axme_cli.protocol import lifecycle as lc
from axme_cli.protocol.scenario import Problem, ScenarioBundle, StepSpec, step_kind
from axme_cli.protocol.tasks import answer_problem, form_problem, form_to_check, is_rejection, with_defaults

MAX_CASES = 200
MAX_ATTEMPTS = 100  # behaviours listed per step (one per attempt)
# Every event type the runtime appends to an intent (intent.created is written with every new intent).
EVENT_TYPES = frozenset({"intent.created", *lc.EVENT_TRANSITIONS})
STATUSES = tuple(sorted(lc.TERMINAL))
MANUAL_UNDO = "manual_undo"  # the step id of the task a workflow opens when an undo failed for good

FILE_FIELDS = ("bundle", "description", "agents", "steps", "compensations", "cases")
CASE_FIELDS = ("name", "description", "payload", "agents", "steps", "compensations", "manual_undo", "expect")
EXPECT_FIELDS = ("status", "steps", "attempts", "compensated", "compensation_failed", "events", "absent_events",
                 "result", "error", "max_seconds")
AGENT_BEHAVIOURS = ("complete", "fail", "timeout")
HUMAN_BEHAVIOURS = ("approve", "reject", "answer", "timeout")


@dataclass(frozen=True)
class Behaviour:
    """What one attempt of a step (or of its compensation) does.

    ``complete`` (with ``result``), ``fail`` (with ``reason``), ``timeout`` (taken and never answered: the step's
    deadline ends it), or, for a human step, ``answer`` (``result`` is the ``task_result`` sent)."""

    kind: Literal["complete", "fail", "timeout", "answer"]
    result: dict[str, Any] | None = None
    reason: str | None = None

    def describe(self) -> str:
        if self.kind == "answer":
            return f"answer {(self.result or {}).get('outcome')}"
        return self.kind


@dataclass(frozen=True)
class RealAgent:
    """A real agent for a role instead of a stand-in: a program (`axme agents run ROLE -- COMMAND`) or a Python
    function (``module:function``, as `axme agents run --handler`)."""

    command: tuple[str, ...] | None = None
    handler: str | None = None

    def describe(self) -> str:
        return " ".join(self.command) if self.command else f"handler {self.handler}"


@dataclass(frozen=True)
class EventMatch:
    """An event of the workflow's intent: its type, and optionally its status and a part of its details."""

    type: str
    status: str | None = None
    details: dict[str, Any] | None = None

    def matches(self, event: dict[str, Any]) -> bool:
        if event.get("event_type") != self.type:
            return False
        if self.status is not None and event.get("status") != self.status:
            return False
        return self.details is None or contains(event.get("details") or {}, self.details)

    def describe(self) -> str:
        parts = [self.type]
        if self.status:
            parts.append(f"status {self.status}")
        if self.details:
            parts.append(" ".join(f"{k}={_compact(v)}" for k, v in self.details.items()))
        return " ".join(parts)


@dataclass(frozen=True)
class Expect:
    status: str | None = None
    steps: tuple[str, ...] | None = None  # steps run, in order (a retried step once per run of attempts)
    attempts: dict[str, int] | None = None  # attempts per step (0: never ran)
    compensated: tuple[str, ...] | None = None  # undone, in the order they were undone (newest first)
    compensation_failed: tuple[str, ...] | None = None
    events: tuple[EventMatch, ...] = ()  # must appear, in this order (others may come between)
    absent_events: tuple[EventMatch, ...] = ()  # must not appear
    result: dict[str, Any] | None = None  # a part of the workflow's result
    error: dict[str, Any] | None = None  # a part of the workflow's error
    max_seconds: float | None = None  # on the runtime's clock, from the apply to the final event


@dataclass(frozen=True)
class Case:
    index: int
    name: str
    expect: Expect
    payload: dict[str, Any] | None = None  # replaces the bundle's intent.payload
    steps: dict[str, tuple[Behaviour, ...]] = field(default_factory=dict)  # by step id; the last one repeats
    compensations: dict[str, tuple[Behaviour, ...]] = field(default_factory=dict)
    agents: dict[str, RealAgent] = field(default_factory=dict)  # real agents by role
    manual_undo: dict[str, Any] | None = None  # the answer to the manual-undo task, if one opens

    def behaviour(self, step_id: str, attempt: int, *, compensation: bool = False) -> Behaviour:
        """What attempt ``attempt`` (from 1) does: the listed one, the last listed after that, else complete."""
        listed = (self.compensations if compensation else self.steps).get(step_id)
        if not listed:
            return Behaviour("complete", {})
        return listed[min(attempt, len(listed)) - 1]


@dataclass(frozen=True)
class TestFile:
    bundle: dict[str, Any]  # the bundle's JSON, as read
    model: ScenarioBundle
    cases: tuple[Case, ...]
    steps: dict[str, StepSpec]  # the workflow's steps by id (a bundle without one runs its intent as "handle")
    kinds: dict[str, str]  # agent, human or internal, by step id
    description: str | None = None


# ---------------------------------------------------------------------------------------------
# the parts a case's expectations compare


def contains(actual: Any, expected: Any) -> bool:
    """Whether ``expected`` is a part of ``actual``: every key of an expected object is in the actual one with a
    value that contains the expected value; lists match item by item, with the same length; anything else is
    equal (1 and 1.0 alike, true and 1 not)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and contains(actual[k], v) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(
            contains(a, e) for a, e in zip(actual, expected, strict=True))
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(expected, bool) and isinstance(actual, bool) and actual == expected
    return bool(actual == expected)


def _compact(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


# ---------------------------------------------------------------------------------------------
# validation


def default_bundle_path(test_file_name: str) -> str | None:
    """``order-saga.test.json`` tests ``order-saga.json`` unless it names another bundle."""
    stem = test_file_name.removesuffix(".json")
    return stem.removesuffix(".test") + ".json" if stem.endswith(".test") else None


def bundle_reference(raw: Any, test_file_name: str) -> tuple[str | None, list[Problem]]:
    """The bundle a test file names (a path relative to the test file), or the problem with it."""
    if not isinstance(raw, dict):
        return None, [Problem("", "a scenario test file must be a JSON object with \"cases\"")]
    given = raw.get("bundle")
    if given is None:
        default = default_bundle_path(test_file_name)
        if default is None:
            return None, [Problem("bundle", "field required: the bundle file this tests (a path relative to this "
                                  "file), or name this file <bundle>.test.json")]
        return default, []
    if not isinstance(given, str) or not given.strip():
        return None, [Problem("bundle", "must be the path of a ScenarioBundle file, relative to this file")]
    return given, []


def check(raw: Any, bundle_raw: dict[str, Any], bundle: ScenarioBundle) -> tuple[TestFile | None, list[Problem]]:
    """Validate a test file against the (valid) bundle it tests: (the parsed file or None, problems)."""
    v = _Checker(bundle)
    if not isinstance(raw, dict):
        return None, [Problem("", "a scenario test file must be a JSON object with \"cases\"")]
    v.unknown_fields("", raw, FILE_FIELDS)
    description = raw.get("description")
    if description is not None and not isinstance(description, str):
        v.problem("description", "must be a string")
    agents = v.agents("agents", raw.get("agents"))
    steps = v.behaviours("steps", raw.get("steps"), agents, compensation=False)
    v.file_said = set(raw["steps"]) if isinstance(raw.get("steps"), dict) else set()
    comps = v.behaviours("compensations", raw.get("compensations"), agents, compensation=True)
    cases_raw = raw.get("cases")
    cases: list[Case] = []
    if cases_raw is None:
        v.problem("cases", "field required: a list of cases, each {\"name\", \"steps\", \"expect\"}")
    elif not isinstance(cases_raw, list) or not cases_raw:
        v.problem("cases", "must be a non-empty list of cases")
    elif len(cases_raw) > MAX_CASES:
        v.problem("cases", f"at most {MAX_CASES} cases in one file; split it")
    else:
        names: dict[str, int] = {}
        for i, case_raw in enumerate(cases_raw):
            case = v.case(i, case_raw, agents, steps, comps)
            if case is None:
                continue
            if case.name in names:
                v.problem(f"cases[{i}].name", f'"{case.name}" is also the name of cases[{names[case.name]}]; '
                          "give each case its own name")
            names.setdefault(case.name, i)
            cases.append(case)
    if v.problems:
        return None, v.problems
    return TestFile(bundle_raw, bundle, tuple(cases), v.steps, dict(v.kinds), description), []


def refusal(task: dict[str, Any], answer: dict[str, Any]) -> tuple[str, str] | None:
    """Why the runtime would refuse ``answer`` to ``task``: (the field inside the answer, the reason), or None."""
    found = answer_problem(task, answer)
    if found is not None:
        return found[0].removeprefix("task_result").lstrip("."), found[1]
    form = form_to_check(task, answer)
    wrong = form_problem(*form) if form is not None else None
    return (wrong[0].removeprefix("task_result").lstrip("."), wrong[1]) if wrong else None


def _suggest(name: str, options: list[str]) -> str:
    match = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return f' (did you mean "{match[0]}"?)' if match else ""


class _Checker:
    def __init__(self, bundle: ScenarioBundle) -> None:
        self.bundle = bundle
        self.problems: list[Problem] = []
        steps = (bundle.workflow.steps if bundle.workflow else None) or []
        if not steps and bundle.agents:  # no workflow: the runtime runs the intent as one step, "handle"
            steps = [StepSpec(step_id="handle", assigned_to=bundle.agents[0].role)]
        self.steps = {s.step_id: s for s in steps}
        agent_roles = {a.role for a in bundle.agents}
        human_roles = {h.role for h in bundle.humans}
        self.kinds = {sid: step_kind(s, agent_roles, human_roles) for sid, s in self.steps.items()}
        self.agent_roles = [a.role for a in bundle.agents]
        self.compensable = [sid for sid, s in self.steps.items() if s.compensate is not None]
        self.file_said: set[str] = set()  # the steps the file's own "steps" names

    def problem(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def unknown_fields(self, path: str, raw: dict[str, Any], allowed: tuple[str, ...]) -> None:
        for key in raw:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                self.problem(where, f"unknown field{_suggest(str(key), list(allowed))}; "
                             f"the fields here are {', '.join(allowed)}")

    def object(self, path: str, value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problem(path, "must be a JSON object")
            return None
        return value

    # -- real agents

    def agents(self, path: str, raw: Any) -> dict[str, RealAgent]:
        given = self.object(path, raw)
        out: dict[str, RealAgent] = {}
        for role, spec in (given or {}).items():
            where = f"{path}.{role}"
            if role not in self.agent_roles:
                self.problem(where, f'no agent role "{role}" in the bundle{_suggest(role, self.agent_roles)}; '
                             f"its roles are {', '.join(self.agent_roles) or 'none'}")
                continue
            agent = self.real_agent(where, spec)
            if agent is not None:
                out[role] = agent
        return out

    def real_agent(self, path: str, spec: Any) -> RealAgent | None:
        if not isinstance(spec, dict):
            self.problem(path, 'must be {"command": ["program", "arg", ...]} or {"handler": "module:function"}')
            return None
        self.unknown_fields(path, spec, ("command", "handler"))
        command, handler = spec.get("command"), spec.get("handler")
        if (command is None) == (handler is None):
            self.problem(path, 'give one of "command" (the program that answers each step: the step payload as '
                         'JSON on stdin, its result as JSON on stdout) or "handler" ("module:function")')
            return None
        if command is not None:
            import shlex

            if isinstance(command, str):
                try:
                    argv = shlex.split(command)
                except ValueError as exc:
                    self.problem(f"{path}.command", f"cannot be split into words: {exc}")
                    return None
            elif isinstance(command, list) and all(isinstance(w, str) for w in command):
                argv = list(command)
            else:
                self.problem(f"{path}.command", "must be a list of strings (the program and its arguments) or "
                             "one string")
                return None
            if not argv or not argv[0]:
                self.problem(f"{path}.command", "names no program")
                return None
            return RealAgent(command=tuple(argv))
        if not isinstance(handler, str) or ":" not in handler or handler.startswith(":") or handler.endswith(":"):
            self.problem(f"{path}.handler", 'must be "module:function"')
            return None
        return RealAgent(handler=handler)

    # -- behaviours

    def role_of(self, step_id: str, compensation: bool) -> str | None:
        step = self.steps[step_id]
        return step.compensate.assigned_to if compensation and step.compensate else step.assigned_to

    def behaviours(self, path: str, raw: Any, agents: dict[str, RealAgent], *,
                   compensation: bool) -> dict[str, tuple[Behaviour, ...]]:
        given = self.object(path, raw)
        out: dict[str, tuple[Behaviour, ...]] = {}
        ids = list(self.steps)
        for step_id, spec in (given or {}).items():
            where = f"{path}.{step_id}"
            if step_id not in self.steps:
                self.problem(where, f'the bundle has no step "{step_id}"{_suggest(step_id, ids)}; '
                             f"its steps are {', '.join(ids)}")
                continue
            kind = self.kinds[step_id]
            if compensation and step_id not in self.compensable:
                self.problem(where, f'step "{step_id}" has no "compensate" block, so it is never undone; '
                             "add one to the step in the bundle, or leave it out here")
                continue
            if kind == "internal" and not compensation:
                self.problem(where, f'step "{step_id}" runs in the runtime itself (a delay or notification): there '
                             "is no agent or person to stand in for; leave it out")
                continue
            role = self.role_of(step_id, compensation)
            if role in agents:
                self.problem(where, f'role "{role}" is served by the real agent {agents[role].describe()}; '
                             "leave the step to it or drop the agent")
                continue
            listed = spec if isinstance(spec, list) else [spec]
            if not listed:
                self.problem(where, "must list at least one behaviour")
                continue
            if len(listed) > MAX_ATTEMPTS:
                self.problem(where, f"at most {MAX_ATTEMPTS} behaviours (one per attempt)")
                continue
            parsed: list[Behaviour] = []
            for j, item in enumerate(listed):
                at = f"{where}[{j}]" if isinstance(spec, list) else where
                b = (self.human_behaviour(at, step_id, item) if kind == "human" and not compensation
                     else self.agent_behaviour(at, step_id, item, compensation))
                if b is not None:
                    parsed.append(b)
            if len(parsed) == len(listed):
                out[step_id] = tuple(parsed)
        return out

    def _one_key(self, path: str, item: Any, allowed: tuple[str, ...]) -> tuple[str, Any] | None:
        if isinstance(item, str):
            return item, None
        if isinstance(item, dict) and len(item) == 1:
            key, value = next(iter(item.items()))
            return str(key), value
        self.problem(path, f"must be one of {', '.join(allowed)} (a word, or an object with one of them as its "
                     'only key, e.g. {"complete": {...}} or {"fail": "reason"})')
        return None

    def agent_behaviour(self, path: str, step_id: str, item: Any, compensation: bool) -> Behaviour | None:
        got = self._one_key(path, item, AGENT_BEHAVIOURS)
        if got is None:
            return None
        word, value = got
        if word == "complete":
            if value is not None and not isinstance(value, dict):
                self.problem(path, "complete: the step's result must be a JSON object")
                return None
            return Behaviour("complete", dict(value or {}))
        if word == "fail":
            if value is not None and (not isinstance(value, str) or not value.strip()):
                self.problem(path, "fail: the reason must be a non-empty string")
                return None
            return Behaviour("fail", reason=value or "failed by the scenario test")
        if word == "timeout":
            if value is not None:
                self.problem(path, 'timeout takes no value: write "timeout"')
                return None
            step = self.steps[step_id]
            spec = step.compensate if compensation and step.compensate else step
            if not spec.step_deadline_seconds:
                block = f'the compensate block of "{step_id}"' if compensation else f'step "{step_id}"'
                self.problem(path, f"{block} has no step_deadline_seconds, so a step that is never answered waits "
                             "for ever; give it a step_deadline_seconds in the bundle, or choose fail")
                return None
            return Behaviour("timeout")
        if word in ("approve", "reject", "answer"):
            self.problem(path, f'{word}: "{step_id}" is an agent step; use complete, fail or timeout')
            return None
        self.problem(path, f'unknown behaviour "{word}"{_suggest(word, list(AGENT_BEHAVIOURS))}; '
                     f"use {', '.join(AGENT_BEHAVIOURS)}")
        return None

    def task(self, step_id: str) -> dict[str, Any]:
        """The task a human step opens, as the runtime opens it (engine/saga.py)."""
        step = self.steps[step_id]
        return with_defaults(step.human_task.model_dump(exclude_none=True, mode="json") if step.human_task
                             else {"title": f"Approve step {step_id}"})

    def human_behaviour(self, path: str, step_id: str, item: Any) -> Behaviour | None:
        got = self._one_key(path, item, HUMAN_BEHAVIOURS)
        if got is None:
            return None
        word, value = got
        step = self.steps[step_id]
        task = self.task(step_id)
        allowed = list(task.get("allowed_outcomes") or [])
        if word in ("approve", "reject"):
            if value is not None:
                self.problem(path, f'{word} takes no value: write "{word}", or {{"answer": {{"outcome": ...}}}}')
                return None
            fits = [o for o in allowed if is_rejection(o) == (word == "reject")]
            if not fits:
                which = "rejecting" if word == "reject" else "approving"
                self.problem(path, f'the task of "{step_id}" has no {which} outcome (allowed: {", ".join(allowed)}); '
                             'answer with {"answer": {"outcome": ...}}')
                return None
            return self.answer(path, task, {"outcome": fits[0]}, shorthand=word)
        if word == "answer":
            if not isinstance(value, dict) or not isinstance(value.get("outcome"), str):
                self.problem(path, 'answer: must be an object with "outcome" (and "comment", form fields)')
                return None
            return self.answer(f"{path}.answer", task, dict(value))
        if word == "timeout":
            if value is not None:
                self.problem(path, 'timeout takes no value: write "timeout"')
                return None
            if not step.step_deadline_seconds:
                self.problem(path, f'step "{step_id}" has no step_deadline_seconds, so a task nobody answers waits '
                             "for ever; give it a step_deadline_seconds in the bundle, or answer it")
                return None
            return Behaviour("timeout")
        if word in ("complete", "fail"):
            self.problem(path, f'{word}: "{step_id}" is a human step; use approve, reject, answer or timeout')
            return None
        self.problem(path, f'unknown behaviour "{word}"{_suggest(word, list(HUMAN_BEHAVIOURS))}; '
                     f"use {', '.join(HUMAN_BEHAVIOURS)}")
        return None

    def answer(self, path: str, task: dict[str, Any], answer: dict[str, Any], shorthand: str = "") -> Behaviour | None:
        """The answer as the runtime will judge it (allowed outcome, required comment, evidence, form_schema)."""
        found = refusal(task, answer)
        if found is not None:
            where, message = found
            if shorthand:
                self.problem(path, f"{shorthand} answers {answer['outcome']!r} alone, and the task refuses that: "
                             f'{message}; answer with {{"answer": {{"outcome": ..., ...}}}}')
            else:
                self.problem(f"{path}.{where}" if where else path, message)
            return None
        return Behaviour("answer", answer)

    def manual_undo(self, path: str, raw: Any) -> dict[str, Any] | None:
        if raw is None:
            return None
        if not isinstance(raw, dict) or not isinstance(raw.get("outcome"), str):
            self.problem(path, 'must be an answer: {"outcome": "completed" or "failed", "comment": ...}')
            return None
        found = refusal(with_defaults({"task_type": "manual_action"}), raw)
        if found is not None:
            self.problem(f"{path}.{found[0]}" if found[0] else path, found[1])
            return None
        if not self.compensable:
            self.problem(path, "no step of the bundle has a compensate block, so no undo can fail and no "
                         "manual-undo task opens; leave it out")
            return None
        return dict(raw)

    # -- cases

    def case(self, i: int, raw: Any, file_agents: dict[str, RealAgent], file_steps: dict[str, tuple[Behaviour, ...]],
             file_comps: dict[str, tuple[Behaviour, ...]]) -> Case | None:
        base = f"cases[{i}]"
        if not isinstance(raw, dict):
            self.problem(base, 'must be an object: {"name", "steps", "expect"}')
            return None
        before = len(self.problems)
        self.unknown_fields(base, raw, CASE_FIELDS)
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            self.problem(f"{base}.name", "field required: a non-empty string naming the case")
            name = f"case {i}"
        if raw.get("description") is not None and not isinstance(raw.get("description"), str):
            self.problem(f"{base}.description", "must be a string")
        payload = self.object(f"{base}.payload", raw.get("payload"))
        agents = {**file_agents, **self.agents(f"{base}.agents", raw.get("agents"))}
        own_steps = self.behaviours(f"{base}.steps", raw.get("steps"), agents, compensation=False)
        own_comps = self.behaviours(f"{base}.compensations", raw.get("compensations"), agents, compensation=True)
        # The file's behaviours apply where the case says nothing, except for roles the case gives a real agent.
        served = set(agents) - set(file_agents)
        steps = {k: v for k, v in file_steps.items() if self.role_of(k, False) not in served}
        comps = {k: v for k, v in file_comps.items() if self.role_of(k, True) not in served}
        merged = {**steps, **own_steps}
        said = set(raw["steps"]) if isinstance(raw.get("steps"), dict) else set()  # refused behaviours included
        for sid, kind in self.kinds.items():
            if kind == "human" and sid not in merged and sid not in said | self.file_said:
                answer = self.default_answer(f"{base}.steps", sid)
                if answer is not None:
                    merged[sid] = (answer,)
        manual = self.manual_undo(f"{base}.manual_undo", raw.get("manual_undo"))
        expect = self.expect(f"{base}.expect", raw.get("expect"))
        if len(self.problems) != before or expect is None:
            return None
        return Case(i, name.strip(), expect, payload, merged, {**comps, **own_comps}, agents, manual)

    def default_answer(self, path: str, step_id: str) -> Behaviour | None:
        """A human step a case says nothing about is approved with the task's first approving outcome, when the
        task takes that alone."""
        task = self.task(step_id)
        outcome = next((o for o in task.get("allowed_outcomes") or [] if not is_rejection(o)), None)
        found = refusal(task, {"outcome": outcome}) if outcome else ("", "the task has no approving outcome")
        if found is None:
            return Behaviour("answer", {"outcome": outcome})
        self.problem(path, f'human step "{step_id}" is approved when a case says nothing about it, and its task '
                     f'refuses a bare approval ({found[1]}); say how it is answered: '
                     f'"{step_id}": {{"answer": {{"outcome": ..., ...}}}}')
        return None

    def step_list(self, path: str, raw: Any, *, compensable: bool = False) -> tuple[str, ...] | None:
        if raw is None:
            return None
        if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
            self.problem(path, "must be a list of step ids")
            return None
        ids = list(self.steps)
        ok = True
        for j, sid in enumerate(raw):
            if sid not in self.steps:
                self.problem(f"{path}[{j}]", f'the bundle has no step "{sid}"{_suggest(sid, ids)}; its steps are '
                             f"{', '.join(ids)}")
                ok = False
            elif compensable and sid not in self.compensable:
                self.problem(f"{path}[{j}]", f'step "{sid}" has no "compensate" block, so it is never undone: this '
                             "cannot happen; add a compensate block to the step, or drop it here")
                ok = False
            elif compensable and sid in raw[:j]:
                self.problem(f"{path}[{j}]", f'"{sid}" twice: a completed step is undone once')
                ok = False
        return tuple(raw) if ok else None

    def expect(self, path: str, raw: Any) -> Expect | None:
        if raw is None:
            self.problem(path, 'field required: what must be true at the end, e.g. {"status": "COMPLETED"}')
            return None
        if not isinstance(raw, dict):
            self.problem(path, "must be a JSON object")
            return None
        self.unknown_fields(path, raw, EXPECT_FIELDS)
        if not any(raw.get(k) is not None for k in EXPECT_FIELDS):
            self.problem(path, f"expects nothing; say at least one of {', '.join(EXPECT_FIELDS)}")
            return None
        status = raw.get("status")
        if status is not None and status not in STATUSES:
            hint = _suggest(str(status).upper(), list(STATUSES))
            self.problem(f"{path}.status", f"must be a final status: {', '.join(STATUSES)}{hint}")
            status = None
        steps = self.step_list(f"{path}.steps", raw.get("steps"))
        attempts: dict[str, int] | None = None
        if raw.get("attempts") is not None:
            given = self.object(f"{path}.attempts", raw["attempts"]) or {}
            attempts = {}
            for sid, n in given.items():
                if sid not in self.steps:
                    self.problem(f"{path}.attempts.{sid}", f'the bundle has no step "{sid}"'
                                 f"{_suggest(sid, list(self.steps))}")
                elif isinstance(n, bool) or not isinstance(n, int) or n < 0:
                    self.problem(f"{path}.attempts.{sid}", "must be a whole number of attempts (0: never ran)")
                else:
                    attempts[sid] = n
        compensated = self.step_list(f"{path}.compensated", raw.get("compensated"), compensable=True)
        comp_failed = self.step_list(f"{path}.compensation_failed", raw.get("compensation_failed"), compensable=True)
        if status == lc.COMPLETED:
            for name, value in (("compensated", compensated), ("compensation_failed", comp_failed)):
                if value:
                    self.problem(f"{path}.{name}", "a workflow that COMPLETED undoes nothing: steps are undone only "
                                 "when the workflow fails; expect FAILED, or drop this")
        events = self.events(f"{path}.events", raw.get("events"))
        absent = self.events(f"{path}.absent_events", raw.get("absent_events"))
        for j, match in enumerate(absent):
            if any(match == e for e in events):
                self.problem(f"{path}.absent_events[{j}]", f"{match.describe()} is also in events: it cannot both "
                             "appear and not appear")
        result = self.object(f"{path}.result", raw.get("result"))
        error = self.object(f"{path}.error", raw.get("error"))
        if error is not None and status == lc.COMPLETED:
            self.problem(f"{path}.error", "a workflow that COMPLETED has no error; expect FAILED, or drop this")
        max_seconds = raw.get("max_seconds")
        if max_seconds is not None and (isinstance(max_seconds, bool) or not isinstance(max_seconds, int | float)
                                        or not math.isfinite(max_seconds) or max_seconds <= 0):
            self.problem(f"{path}.max_seconds", "must be a number of seconds above 0")
            max_seconds = None
        return Expect(status, steps, attempts, compensated, comp_failed, events, absent, result, error,
                      float(max_seconds) if max_seconds is not None else None)

    def events(self, path: str, raw: Any) -> tuple[EventMatch, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.problem(path, 'must be a list of event types, or of {"type", "status", "details"}')
            return ()
        out: list[EventMatch] = []
        known = sorted(EVENT_TYPES)
        for j, item in enumerate(raw):
            where = f"{path}[{j}]"
            spec = {"type": item} if isinstance(item, str) else item
            if not isinstance(spec, dict):
                self.problem(where, 'must be an event type or {"type", "status", "details"}')
                continue
            self.unknown_fields(where, spec, ("type", "status", "details"))
            etype = spec.get("type")
            if not isinstance(etype, str) or etype not in EVENT_TYPES:
                self.problem(where if isinstance(item, str) else f"{where}.type",
                             f"unknown event type {etype!r}{_suggest(str(etype), known)}; the runtime writes "
                             f"{', '.join(known)}")
                continue
            status = spec.get("status")
            if status is not None and status not in lc.STATUSES:
                self.problem(f"{where}.status", f"must be one of {', '.join(lc.STATUSES)}")
                continue
            details = spec.get("details")
            if details is not None and not isinstance(details, dict):
                self.problem(f"{where}.details", "must be a JSON object (a part of the event's details)")
                continue
            step_id = (details or {}).get("step_id")
            if step_id is not None and step_id not in self.steps and step_id != MANUAL_UNDO:
                self.problem(f"{where}.details.step_id", f'the bundle has no step "{step_id}"'
                             f"{_suggest(str(step_id), list(self.steps))}")
                continue
            out.append(EventMatch(etype, status, details))
        return tuple(out)


__all__ = ["Behaviour", "Case", "EventMatch", "Expect", "RealAgent", "TestFile",
           "bundle_reference", "check", "contains", "default_bundle_path"]

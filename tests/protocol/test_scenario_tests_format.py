"""The scenario test file format (protocol/scenario_tests.py), offline: the shipped files are valid, every kind of
mistake is named by its field with the fix, and what a case's expectations compare (testing/expect.py)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from axme_cli.protocol.scenario import check as check_bundle
from axme_cli.protocol.scenario_tests import Behaviour, bundle_reference, check, contains, default_bundle_path
from axme_cli.testing.expect import Actual, compare
from axme_cli.testing.load import load

ROOT = Path(__file__).resolve().parents[2]
ORDER_SAGA = json.loads((ROOT / "scenarios" / "order-saga.json").read_text())
REFUND = {
    "scenario_id": "refund.approval.v1",
    "agents": [{"role": "payments", "address": "payments"}],
    "humans": [{"role": "manager", "contact": "manager@example.com"}],
    "workflow": {"steps": [
        {"step_id": "approve", "assigned_to": "manager", "step_deadline_seconds": 60,
         "human_task": {"title": "Approve the refund", "task_type": "approval",
                        "form_schema": {"type": "object", "required": ["amount_cents"],
                                        "properties": {"amount_cents": {"type": "integer", "maximum": 10000}}}}},
        {"step_id": "sign_off", "assigned_to": "manager", "requires_approval": True,
         "human_task": {"title": "Sign off", "required_comment": True}},
        {"step_id": "cool_off", "runtime_type": "delay", "runtime_config": {"seconds": 1}},
        {"step_id": "refund", "assigned_to": "payments", "compensate": {"assigned_to": "payments"}},
    ]},
    "intent": {"type": "refund.request.v1", "payload": {"order_id": "ord_1"}},
}
SIGNED = {"sign_off": {"answer": {"outcome": "approved", "comment": "ok"}}}


def problems(test: Any, bundle: dict[str, Any] = ORDER_SAGA) -> list[str]:
    model, errors, _ = check_bundle(bundle)
    assert model is not None and errors == []
    parsed, found = check(test, bundle, model)
    assert (parsed is None) == bool(found)
    return [str(p) for p in found]


def one_case(**case: Any) -> dict[str, Any]:
    return {"cases": [{"name": "c", **case}]}


def test_the_shipped_test_files_are_valid() -> None:
    shipped = sorted((ROOT / "scenarios").glob("*.test.json"))
    assert {p.name for p in shipped} == {"order-saga.test.json", "cross-service-coordination.test.json"}
    for path in shipped:
        file, found = load(str(path))
        assert found == [] and file is not None, found
        assert file.test.cases and file.bundle_path.endswith(path.name.replace(".test.json", ".json"))


def test_behaviours_per_attempt_and_defaults() -> None:
    model = check_bundle(REFUND)[0]
    assert model is not None
    test = {"steps": {"refund": ["fail", {"complete": {"refund_id": "rf_1"}}]},
            "cases": [{"name": "a", "steps": {"approve": {"answer": {"outcome": "approved", "amount_cents": 5}},
                                               **SIGNED}, "expect": {"status": "COMPLETED"}},
                      {"name": "b", "steps": {"approve": "reject", **SIGNED}, "compensations": {"refund": "fail"},
                       "expect": {"status": "FAILED"}}]}
    parsed, found = check(test, REFUND, model)
    assert found == [] and parsed is not None
    a, b = parsed.cases
    assert a.behaviour("refund", 1) == Behaviour("fail", reason="failed by the scenario test")
    assert a.behaviour("refund", 2) == a.behaviour("refund", 7) == Behaviour("complete", {"refund_id": "rf_1"})
    assert a.behaviour("refund", 1, compensation=True) == Behaviour("complete", {})  # said nothing: completes
    assert b.behaviour("approve", 1) == Behaviour("answer", {"outcome": "rejected"})  # the first rejecting outcome
    assert b.behaviour("refund", 1, compensation=True).kind == "fail"
    assert parsed.kinds == {"approve": "human", "sign_off": "human", "cool_off": "internal", "refund": "agent"}


def test_a_bundle_without_a_workflow_runs_its_intent_as_the_step_handle() -> None:
    bundle = {"scenario_id": "one.step", "agents": [{"role": "worker", "address": "worker"}],
              "intent": {"type": "job.run.v1"}}
    assert problems(one_case(steps={"handle": "fail"}, expect={"status": "FAILED"}), bundle) == []
    assert problems(one_case(steps={"work": "fail"}, expect={"status": "FAILED"}), bundle) == [
        'cases[0].steps.work: the bundle has no step "work"; its steps are handle']


@pytest.mark.parametrize(("case", "expected"), [
    ({"steps": {"shipp": "fail"}, "expect": {"status": "FAILED"}},
     'cases[0].steps.shipp: the bundle has no step "shipp" (did you mean "ship"?); its steps are reserve, charge, '
     "ship"),
    ({"steps": {"ship": "explode"}, "expect": {"status": "FAILED"}},
     'cases[0].steps.ship: unknown behaviour "explode"; use complete, fail, timeout'),
    ({"steps": {"ship": ["fail", "compleat"]}, "expect": {"status": "FAILED"}},
     'cases[0].steps.ship[1]: unknown behaviour "compleat" (did you mean "complete"?); use complete, fail, timeout'),
    ({"steps": {"ship": {"fail": ""}}, "expect": {"status": "FAILED"}},
     "cases[0].steps.ship: fail: the reason must be a non-empty string"),
    ({"steps": {"ship": {"complete": [1]}}, "expect": {"status": "FAILED"}},
     "cases[0].steps.ship: complete: the step's result must be a JSON object"),
    ({"steps": {"ship": "approve"}, "expect": {"status": "FAILED"}},
     'cases[0].steps.ship: approve: "ship" is an agent step; use complete, fail or timeout'),
    ({"steps": {"ship": []}, "expect": {"status": "FAILED"}}, "cases[0].steps.ship: must list at least one behaviour"),
    ({"compensations": {"ship": "fail"}, "expect": {"status": "FAILED"}},
     'cases[0].compensations.ship: step "ship" has no "compensate" block, so it is never undone; add one to the step '
     "in the bundle, or leave it out here"),
    ({"expect": {"status": "FAILED", "compensated": ["charge", "ship"]}},
     'cases[0].expect.compensated[1]: step "ship" has no "compensate" block, so it is never undone: this cannot '
     "happen; add a compensate block to the step, or drop it here"),
    ({"expect": {"status": "FAILED", "compensated": ["charge", "charge"]}},
     'cases[0].expect.compensated[1]: "charge" twice: a completed step is undone once'),
    ({"expect": {"status": "COMPLETED", "compensated": ["charge"]}},
     "cases[0].expect.compensated: a workflow that COMPLETED undoes nothing: steps are undone only when the workflow "
     "fails; expect FAILED, or drop this"),
    ({"expect": {"status": "DONE"}},
     "cases[0].expect.status: must be a final status: CANCELED, COMPLETED, FAILED, TIMED_OUT"),
    ({"expect": {"steps": ["reserve", "pay"]}},
     'cases[0].expect.steps[1]: the bundle has no step "pay"; its steps are reserve, charge, ship'),
    ({"expect": {"attempts": {"ship": -1}}}, "cases[0].expect.attempts.ship: must be a whole number of attempts "
                                             "(0: never ran)"),
    ({"expect": {"events": ["intent.compensate"]}},
     "cases[0].expect.events[0]: unknown event type 'intent.compensate' (did you mean \"intent.compensated\"?)"),
    ({"expect": {"events": [{"type": "intent.waiting", "details": {"step_id": "pack"}}]}},
     'cases[0].expect.events[0].details.step_id: the bundle has no step "pack"'),
    ({"expect": {"events": ["intent.failed"], "absent_events": ["intent.failed"]}},
     "cases[0].expect.absent_events[0]: intent.failed is also in events: it cannot both appear and not appear"),
    ({"expect": {"max_seconds": 0}}, "cases[0].expect.max_seconds: must be a number of seconds above 0"),
    ({"expect": {}}, "cases[0].expect: expects nothing; say at least one of status, steps, attempts, compensated, "
                     "compensation_failed, events, absent_events, result, error, max_seconds"),
    ({"expect": {"status": "COMPLETED", "stepz": []}},
     'cases[0].expect.stepz: unknown field (did you mean "steps"?); the fields here are status, steps, attempts, '
     "compensated, compensation_failed, events, absent_events, result, error, max_seconds"),
    ({"steps": {}}, 'cases[0].expect: field required: what must be true at the end, e.g. {"status": "COMPLETED"}'),
    ({"agents": {"billing": {"command": ["pay"]}}, "expect": {"status": "COMPLETED"}},
     'cases[0].agents.billing: no agent role "billing" in the bundle; its roles are inventory, payment, shipping'),
    ({"agents": {"payment": {"command": []}}, "expect": {"status": "COMPLETED"}},
     "cases[0].agents.payment.command: names no program"),
    ({"agents": {"payment": {}}, "expect": {"status": "COMPLETED"}},
     'cases[0].agents.payment: give one of "command" (the program that answers each step: the step payload as JSON on '
     'stdin, its result as JSON on stdout) or "handler" ("module:function")'),
    ({"agents": {"payment": {"command": "pay.py"}}, "steps": {"charge": "fail"}, "expect": {"status": "FAILED"}},
     'cases[0].steps.charge: role "payment" is served by the real agent pay.py; leave the step to it or drop the '
     "agent"),
    ({"manual_undo": {"outcome": "done"}, "expect": {"status": "FAILED"}},
     "cases[0].manual_undo.outcome: 'done' is not one of completed, failed"),
])
def test_mistakes_name_their_field(case: dict[str, Any], expected: str) -> None:
    found = problems(one_case(**case))
    assert any(p.startswith(expected) for p in found), found


def test_a_timeout_needs_a_deadline_that_ends_it() -> None:
    bundle = copy.deepcopy(ORDER_SAGA)
    del bundle["workflow"]["steps"][2]["step_deadline_seconds"]
    del bundle["workflow"]["steps"][1]["compensate"]["step_deadline_seconds"]
    assert problems(one_case(steps={"ship": "timeout"}, compensations={"charge": "timeout"},
                             expect={"status": "FAILED"}), bundle) == [
        'cases[0].steps.ship: step "ship" has no step_deadline_seconds, so a step that is never answered waits for '
        "ever; give it a step_deadline_seconds in the bundle, or choose fail",
        'cases[0].compensations.charge: the compensate block of "charge" has no step_deadline_seconds, so a step that '
        "is never answered waits for ever; give it a step_deadline_seconds in the bundle, or choose fail"]
    assert problems(one_case(steps={"ship": "timeout", "reserve": "timeout"}, expect={"status": "FAILED"})) == []


def test_human_steps_are_answered_as_their_task_allows() -> None:
    def refund(**case: Any) -> list[str]:
        return problems(one_case(**case), REFUND)

    approved = {"approve": {"answer": {"outcome": "approved", "amount_cents": 500}}, **SIGNED}
    assert refund(steps=approved, expect={"status": "COMPLETED"}) == []
    assert refund(steps={**approved, "approve": {"answer": {"outcome": "approved", "amount_cents": "lots"}}},
                  expect={"status": "COMPLETED"}) == [
        "cases[0].steps.approve.answer.amount_cents: 'lots' is not of type 'integer'"]
    assert refund(steps={**approved, "approve": {"answer": {"outcome": "maybe"}}}, expect={"status": "FAILED"}) == [
        "cases[0].steps.approve.answer.outcome: 'maybe' is not one of approved, rejected"]
    assert refund(steps={**approved, "approve": "complete"}, expect={"status": "FAILED"}) == [
        'cases[0].steps.approve: complete: "approve" is a human step; use approve, reject, answer or timeout']
    assert refund(steps={**approved, "cool_off": "complete"}, expect={"status": "FAILED"}) == [
        'cases[0].steps.cool_off: step "cool_off" runs in the runtime itself (a delay or notification): there is no '
        "agent or person to stand in for; leave it out"]
    # a bare approval of a task that requires a comment, or of a form with required fields, is refused before running
    assert refund(steps={**approved, "sign_off": "approve"}, expect={"status": "FAILED"}) == [
        "cases[0].steps.sign_off: approve answers 'approved' alone, and the task refuses that: this task requires a "
        'comment; answer with {"answer": {"outcome": ..., ...}}']
    assert refund(steps=SIGNED, expect={"status": "COMPLETED"}) == [
        'cases[0].steps: human step "approve" is approved when a case says nothing about it, and its task refuses a '
        "bare approval ('amount_cents' is a required property); say how it is answered: "
        '"approve": {"answer": {"outcome": ..., ...}}']
    assert refund(steps={**approved, "approve": "reject"}, expect={"status": "FAILED"}) == []  # no form to fill


def test_file_level_fields() -> None:
    assert problems([]) == ['a scenario test file must be a JSON object with "cases"']
    assert problems({}) == ['cases: field required: a list of cases, each {"name", "steps", "expect"}']
    assert problems({"cases": []}) == ["cases: must be a non-empty list of cases"]
    assert problems({"cases": [{"name": "a", "expect": {"status": "FAILED"}}] * 2}) == [
        'cases[1].name: "a" is also the name of cases[0]; give each case its own name']
    assert problems({"steps": {"ship": "fail"}, "agents": {"shipping": {"handler": "m:f"}},
                     "cases": [{"name": "a", "expect": {"status": "FAILED"}}]}) == [
        'steps.ship: role "shipping" is served by the real agent handler m:f; leave the step to it or drop the agent']
    assert problems({"tests": [], "cases": [{"name": "a", "expect": {"status": "FAILED"}}]}) == [
        'tests: unknown field (did you mean "steps"?); the fields here are bundle, description, agents, steps, '
        "compensations, cases"]
    # a case that gives a role a real agent takes that role's steps from the file's stand-ins
    assert problems({"steps": {"charge": "fail"},
                     "cases": [{"name": "a", "agents": {"payment": {"command": ["pay"]}},
                                "expect": {"status": "COMPLETED"}}]}) == []


def test_the_bundle_a_file_names() -> None:
    assert default_bundle_path("order-saga.test.json") == "order-saga.json"
    assert default_bundle_path("order-saga.json") is None
    assert bundle_reference({"cases": []}, "x.test.json") == ("x.json", [])
    ref, found = bundle_reference({"cases": []}, "tests.json")
    assert ref is None and str(found[0]).startswith("bundle: field required")
    assert str(bundle_reference({"bundle": 3}, "x.test.json")[1][0]) == (
        "bundle: must be the path of a ScenarioBundle file, relative to this file")


def test_contains() -> None:
    assert contains({"a": {"b": 1, "c": [1, 2]}, "d": 0}, {"a": {"c": [1, 2]}})
    assert contains({"n": 1.0}, {"n": 1})
    assert not contains({"n": True}, {"n": 1}) and not contains({"n": 1}, {"n": True})
    assert not contains({"a": [1, 2, 3]}, {"a": [1, 2]}) and not contains({"a": None}, {"a": {}})
    assert contains([{"x": 1, "y": 2}], [{"x": 1}])


def _event(seq: int, etype: str, at: float, **details: Any) -> dict[str, Any]:
    status = {"intent.failed": "FAILED", "intent.completed": "COMPLETED"}.get(etype, "WAITING")
    return {"seq": seq, "event_type": etype, "status": status, "details": details,
            "at": f"2030-01-01T00:00:{at:06.3f}Z"}


def test_what_a_case_compares() -> None:
    model = check_bundle(ORDER_SAGA)[0]
    assert model is not None
    history = [{"step_id": s, "attempt": a, "status": st} for s, a, st in (
        ("reserve", 1, "COMPLETED"), ("charge", 1, "COMPLETED"), ("ship", 1, "FAILED"), ("ship", 2, "FAILED"))]
    events = [_event(1, "intent.created", 0), _event(2, "intent.waiting", 0.1, step_id="reserve"),
              _event(3, "intent.step_failed", 0.2, step_id="ship", attempt=1, retry_in_seconds=2),
              _event(4, "intent.compensating", 2.5, step_id="charge"), _event(5, "intent.compensated", 2.6,
                                                                             step_id="charge"),
              _event(6, "intent.failed", 3.0, reason="broke")]
    actual = Actual("FAILED", events, {"steps": history, "results": {"reserve": {"id": "r"}}},
                    {"failed_step": "ship", "reason": "broke", "compensated": ["charge", "reserve"]})
    assert actual.steps() == ["reserve", "charge", "ship"] and actual.attempts() == {"reserve": 1, "charge": 1,
                                                                                       "ship": 2}
    assert actual.seconds() == 3.0
    test = one_case(expect={
        "status": "FAILED", "steps": ["reserve", "charge", "ship"], "attempts": {"ship": 2, "reserve": 1},
        "compensated": ["charge", "reserve"], "result": {"results": {"reserve": {"id": "r"}}},
        "error": {"reason": "broke"}, "max_seconds": 3,
        "events": [{"type": "intent.step_failed", "details": {"step_id": "ship", "retry_in_seconds": 2}},
                   {"type": "intent.compensated", "details": {"step_id": "charge"}}, "intent.failed"],
        "absent_events": [{"type": "intent.compensating", "details": {"step_id": "ship"}}]})
    parsed = check(test, ORDER_SAGA, model)[0]
    assert parsed is not None
    assert compare(parsed.cases[0].expect, actual) == []
    wrong = one_case(expect={
        "status": "COMPLETED", "steps": ["reserve", "ship"], "attempts": {"ship": 1, "charge": 0},
        "events": ["intent.compensated", "intent.compensating"], "absent_events": ["intent.step_failed"],
        "result": {"results": {"reserve": {"id": "x"}}}, "max_seconds": 2.5})
    parsed = check(wrong, ORDER_SAGA, model)[0]
    assert parsed is not None
    found = {m.field: m.message for m in compare(parsed.cases[0].expect, actual)}
    assert found == {
        "expect.status": 'expected "COMPLETED", got "FAILED"',
        "expect.steps": 'expected ["reserve", "ship"], got ["reserve", "charge", "ship"]',
        "expect.attempts.ship": "expected 1, got 2",
        "expect.attempts.charge": "expected 0, got 1",
        "expect.events[1]": "intent.compensating appeared only before intent.compensated",
        "expect.absent_events[0]": "intent.step_failed appeared (seq 3)",
        "expect.result": 'expected a result containing {"results": {"reserve": {"id": "x"}}}, got '
                         '{"steps": [{"step_id": "reserve", "attempt": 1, "status": "COMPLETED"}, {"step_id": '
                         '"charge", "attempt": 1, "status": "COMPLETED"}, {"step_id": "ship", "attempt": 1, "status": '
                         '"FAILED"}, {"step_id": "ship", "attempt": 2, "status": "FAILED"}], "results": {"reserve": '
                         '{"id": "r"}}}',
        "expect.max_seconds": "expected at most 2.5 s, took 3.0 s",
    }

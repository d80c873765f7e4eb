"""Human tasks: the task types' default outcomes and which outcomes say no (axme-reference.md §1.7)."""

from __future__ import annotations

from typing import Any

from axme_cli.protocol.addresses import CORE

# Intents to this address with a `human_task` are tasks for people, not for an agent.
HUMAN_TARGET = CORE

DEFAULT_OUTCOMES: dict[str, list[str]] = {
    "approval": ["approved", "rejected"],
    "confirmation": ["confirmed", "denied", "rejected"],
    "review": ["approved", "changes_requested", "rejected"],
    "assignment": ["assigned", "declined"],
    "form": ["submitted"],
    "clarification": ["provided", "declined"],
    "manual_action": ["completed", "failed"],
    "override": ["override_approved", "rejected"],
}

REJECTING_OUTCOMES = frozenset({
    "rejected", "reject", "denied", "deny", "declined", "decline", "failed", "fail", "changes_requested",
    "halt", "no", "canceled", "cancelled",
})


def with_defaults(task: dict[str, Any]) -> dict[str, Any]:
    """The task as people see it: a type (approval by default) and its allowed outcomes."""
    task = dict(task)
    task.setdefault("task_type", "approval")
    task.setdefault("allowed_outcomes", DEFAULT_OUTCOMES.get(task["task_type"], ["approved", "rejected"]))
    return task


def is_rejection(outcome: str) -> bool:
    return outcome.lower() in REJECTING_OUTCOMES


def answer_problem(task: dict[str, Any], result: dict[str, Any]) -> tuple[str, str, dict[str, Any]] | None:
    """What is wrong with an answer to ``task`` short of its form: (field, message, details), or None.

    The outcome must be allowed; a required comment must be there; an approving answer must carry the
    evidence a task asks for. Whether it matches the task's ``form_schema`` is ``form_problem``'s question,
    asked before the answer is written (see engine.intents.judge_form).
    """
    allowed = task.get("allowed_outcomes")
    outcome = result.get("outcome")
    if allowed and outcome not in allowed:
        return ("task_result.outcome", f"{outcome!r} is not one of {', '.join(allowed)}", {"allowed": allowed})
    if task.get("required_comment") and not str(result.get("comment") or "").strip():
        return ("task_result.comment", "this task requires a comment", {})
    if isinstance(outcome, str) and is_rejection(outcome):
        return None
    if task.get("evidence_required"):
        data = result.get("data")
        if not (result.get("evidence") or (isinstance(data, dict) and data.get("evidence"))):
            return ("task_result.evidence", "this task requires evidence (e.g. --data evidence=LINK)", {})
    return None


def form_to_check(task: dict[str, Any], result: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(form_schema, form) when ``result`` must match the task's form_schema: an approving answer to a task that
    has one. The form is the answer's fields at the top level of ``task_result``, as `axme tasks --data` puts
    them."""
    schema = task.get("form_schema")
    outcome = result.get("outcome")
    if not isinstance(schema, dict) or not schema or (isinstance(outcome, str) and is_rejection(outcome)):
        return None
    return schema, {k: v for k, v in result.items() if k not in ("outcome", "comment")}


def form_problem(schema: dict[str, Any], form: dict[str, Any]) -> tuple[str, str] | None:
    """What is wrong with ``form`` under the task's ``form_schema`` (JSON Schema, protocol/schemas.py):
    (field, message), or None when it fits."""
    from axme_cli.protocol import schemas

    try:
        found = schemas.problem(schema, form)
    except schemas.SchemaRefused as exc:  # a task stored before schemas were checked at create time
        return ("human_task.form_schema", f"the task's form_schema is refused: {exc}")
    if found is None:
        return None
    where, message = found
    return (f"task_result.{where}" if where else "task_result", message)

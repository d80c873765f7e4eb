"""Human tasks: the task types' default outcomes and which outcomes say no (axme-reference.md §1.7)."""

from __future__ import annotations

from typing import Any

# Intents to this address with a `human_task` are tasks for people, not for an agent.
HUMAN_TARGET = "agent://agent_core"

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
    """What is wrong with an answer to ``task``: (field, message, details), or None when it fits.

    The outcome must be allowed; a required comment must be there; an approving answer must carry the
    evidence a task asks for and must match its ``form_schema`` (JSON Schema; the answer's fields sit at
    the top level of ``task_result``, as `axme tasks --data` puts them).
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
    schema = task.get("form_schema")
    if isinstance(schema, dict) and schema:
        import jsonschema

        form = {k: v for k, v in result.items() if k not in ("outcome", "comment")}
        try:
            validator = jsonschema.Draft202012Validator(schema)
            error = jsonschema.exceptions.best_match(validator.iter_errors(form))
        except jsonschema.exceptions.SchemaError as exc:
            return ("human_task.form_schema", f"the task's form_schema is not a valid JSON Schema: {exc.message}", {})
        if error is not None:
            where = ".".join(str(p) for p in error.absolute_path)
            return (f"task_result.{where}" if where else "task_result", error.message, {"form_schema": schema})
    return None

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

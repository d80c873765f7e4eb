"""What the order saga's agents do in the crash matrix, and what each saga must end as.

Light on purpose (no httpx, no pytest): ``saga_agent.py`` imports it inside `axme agents run` processes.
Every answer depends only on the delivery (plan, step, attempt, compensation), so a redelivered intent gets
the same answer again, whoever handles it, before or after a crash.
"""

from __future__ import annotations

from typing import Any

PLANS = ("happy", "ship_fails", "retry", "timeout")

# plan -> (final status, history [(step_id, attempt, status)], compensation events [(event_type, step_id)],
#          failed_step, reason)
UNDO = [("intent.compensating", "charge"), ("intent.compensated", "charge"),
        ("intent.compensating", "reserve"), ("intent.compensated", "reserve")]
EXPECTED: dict[str, tuple[str, list[tuple[str, int, str]], list[tuple[str, str]], str | None, str | None]] = {
    "happy": ("COMPLETED", [("reserve", 1, "COMPLETED"), ("charge", 1, "COMPLETED"), ("ship", 1, "COMPLETED")],
              [], None, None),
    "retry": ("COMPLETED", [("reserve", 1, "COMPLETED"), ("charge", 1, "FAILED"), ("charge", 2, "COMPLETED"),
                            ("ship", 1, "COMPLETED")], [], None, None),
    "ship_fails": ("FAILED", [("reserve", 1, "COMPLETED"), ("charge", 1, "COMPLETED"), ("ship", 1, "FAILED"),
                              ("ship", 2, "FAILED")], UNDO, "ship", "ship refused"),
    "timeout": ("FAILED", [("reserve", 1, "COMPLETED"), ("charge", 1, "COMPLETED"), ("ship", 1, "FAILED")],
                UNDO, "ship", "step_timeout"),
}
# The status each step sub-intent ends in, by plan and (step, attempt); compensations always complete.
CHILD_STATUS = {"timeout": {("ship", 1): "TIMED_OUT"}}


def decide(payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """("complete", result) | ("fail", {"reason"}) | ("silent", {}) for one step delivery."""
    plan = (payload.get("parent_payload") or {}).get("plan")
    step, attempt = payload.get("step_id"), payload.get("attempt")
    if payload.get("compensation"):
        return "complete", {"undone": step}
    if plan == "ship_fails" and step == "ship":
        return "fail", {"reason": "ship refused"}
    if plan == "retry" and step == "charge" and attempt == 1:
        return "fail", {"reason": "card declined once"}
    if plan == "timeout" and step == "ship":
        return "silent", {}
    return "complete", {"done": step, "attempt": attempt}

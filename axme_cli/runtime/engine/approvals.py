"""``POST /v1/approvals/{approval_id}/decision``: approve or reject what waits for a person.

The approval id is the id of an intent waiting for a human (WAITING_FOR_HUMAN): a direct human task or a
workflow's human step (its parent intent). The decision becomes a ``task_result`` with the task's approving
or rejecting outcome and goes through ``intents.op_resume``, so it is checked and applied exactly as an
answer from ``axme tasks`` is.
"""

from __future__ import annotations

from typing import Any

from axme_cli.protocol import lifecycle as lc
from axme_cli.protocol import tasks
from axme_cli.runtime.clock import iso
from axme_cli.runtime.engine import intents
from axme_cli.runtime.engine.codec import loads
from axme_cli.runtime.errors import Conflict, Forbidden, Unprocessable
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Tx


def outcome_for(task: dict[str, Any], approve: bool) -> str:
    """The task's first approving (or rejecting) outcome; 422 when it has none."""
    allowed = tasks.with_defaults(task)["allowed_outcomes"]
    fitting = [o for o in allowed if tasks.is_rejection(o) != approve]
    if not fitting:
        verb = "approves" if approve else "rejects"
        raise Unprocessable(
            f"decision: this task has no outcome that {verb} (its outcomes: {', '.join(allowed)}); "
            "answer it with POST /v1/intents/{id}/resume and a task_result",
            details={"field": "decision", "allowed": allowed},
        )
    return fitting[0]


def op_decide(tx: Tx, s: Settings, principal: Principal, approval_id: str, decision: str, comment: str | None,
              now: float) -> dict[str, Any]:
    row = intents.owned_row(tx, principal, approval_id)
    if not principal.is_member:
        raise Forbidden("approvals are decided by a person or the workspace key, not an agent key",
                        code="policy_denied")
    if row["status"] in lc.TERMINAL or row["waiting_reason"] != "WAITING_FOR_HUMAN":
        raise Conflict(f"intent {approval_id} is not waiting for an approval (status {row['status']})",
                       code="approval_not_pending",
                       details={"status": row["status"], "waiting_reason": row["waiting_reason"]})
    task = loads(row["doc"]).get("human_task") or {}
    answer: dict[str, Any] = {"outcome": outcome_for(task, decision == "approve")}
    if comment:
        answer["comment"] = comment
    intents.op_resume(tx, s, principal, approval_id, {"task_result": answer}, now)
    return {"ok": True, "approval": {"approval_id": approval_id, "decision": decision, "comment": comment,
                                     "decided_at": iso(now)}}

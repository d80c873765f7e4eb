"""GET /v1/me/tasks: the human tasks waiting for the caller."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from axme_cli.runtime import scope
from axme_cli.runtime.api.common import authenticate, int_param, respond, runtime
from axme_cli.runtime.engine.codec import loads
from axme_cli.runtime.errors import Forbidden
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.store.base import Row


def task_entry(row: Row, principal: Principal) -> dict[str, Any] | None:
    """An open human task as GET /v1/me/tasks lists it (also the dashboard's tasks page), or None."""
    if row["waiting_reason"] != "WAITING_FOR_HUMAN":
        return None
    doc = loads(row["doc"])
    task = doc.get("human_task")
    if not task:
        return None
    assignees = task.get("assignees") or []
    if principal.is_actor and assignees and principal.email not in assignees:
        return None  # a person sees open tasks for anyone, or assigned to them; the workspace key sees all
    return {
        "intent_id": row["intent_id"],
        "intent_type": row["intent_type"],
        "status": row["status"],
        "from_agent": row["from_agent"],
        "assigned_at": row["updated_at"],
        "due_at": doc.get("deadline_at"),
        "human_task": task,
        "pending_with": doc.get("pending_with"),
        "workflow_id": doc.get("workflow_id"),
    }


async def my_tasks(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    if not principal.is_member:
        raise Forbidden("tasks are for people and the workspace key, not agent keys", code="policy_denied")
    limit = int_param(request, "limit", 100, 1, 500)
    rows = await runtime(request).reads.list_intents(statuses=["WAITING"], agent=None, limit=500,
                                                     workspace=scope.principal_pair(principal))
    tasks = [t for t in (task_entry(r, principal) for r in rows) if t is not None][:limit]
    return respond({"ok": True, "tasks": tasks}, request=request)


routes = [Route("/v1/me/tasks", my_tasks, methods=["GET"])]

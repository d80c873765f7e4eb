"""The dashboard at /ui: server-rendered pages on the runtime's own port, a little hand-written
JavaScript (static/ui.js, EventSource for live updates), no build step and nothing fetched from elsewhere.

It acts with the credential its session stands for (an API key or a person's login; ui/session.py), through the
same engine operations, store reads and scoping (``Principal.may_see``) as the API.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from axme_cli.runtime.ui import intents, live, login, mesh, overview, schedules, tasks, workspaces


async def _home(request: Request) -> Response:
    """The intents page (the login page first, for a browser not logged in)."""
    return RedirectResponse("/ui/intents", status_code=303)


routes = [
    Route("/ui", _home, methods=["GET"]),
    Route("/ui/", _home, methods=["GET"]),
    Route("/ui/login", login.login, methods=["GET", "POST"]),
    Route("/ui/login/email", login.login_email, methods=["POST"]),
    Route("/ui/login/code", login.login_code, methods=["POST"]),
    Route("/ui/logout", login.logout, methods=["POST"]),
    Route("/ui/workspace", workspaces.switch, methods=["POST"]),
    Route("/ui/static/{name}", live.static, methods=["GET"]),
    Route("/ui/live/counts", live.live_counts, methods=["GET"]),
    Route("/ui/intents", intents.intents_page, methods=["GET"]),
    Route("/ui/intents/{intent_id}", intents.intent_page, methods=["GET"]),
    Route("/ui/intents/{intent_id}/events", live.intent_events, methods=["GET"]),
    Route("/ui/intents/{intent_id}/parts", intents.intent_parts, methods=["GET"]),
    Route("/ui/intents/{intent_id}/{action}", intents.action_page, methods=["GET", "POST"]),
    Route("/ui/tasks", tasks.tasks_page, methods=["GET"]),
    Route("/ui/tasks/{intent_id}", tasks.answer_task, methods=["POST"]),
    Route("/ui/scenarios", overview.scenarios_page, methods=["GET"]),
    Route("/ui/scenarios/{workflow_id}", overview.scenario_page, methods=["GET"]),
    Route("/ui/agents", overview.agents_page, methods=["GET"]),
    Route("/ui/schedules", schedules.schedules_page, methods=["GET"]),
    Route("/ui/mesh", mesh.mesh_page, methods=["GET"]),
    Route("/ui/mesh/{address_id}/{action}", mesh.action_page, methods=["GET", "POST"]),
]

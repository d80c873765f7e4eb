"""/health: is the runtime up, and what is it."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from axme_cli import __version__
from axme_cli.runtime.api.common import respond, runtime


async def health(request: Request) -> Response:
    rt = runtime(request)
    s = rt.settings
    return respond(
        {
            "ok": True,
            "service": s.service,
            "version": __version__,
            "deployment_profile": s.deployment_profile,
            "storage": rt.store.kind,
            "org_id": s.org,
            "workspace_id": s.workspace,
            "uptime_seconds": round(rt.clock.time() - rt.started_at, 3),
            "server_time": rt.clock.time(),
            "registered_users": 0,
        },
        request=request,
    )


routes = [Route("/health", health, methods=["GET"]), Route("/v1/health", health, methods=["GET"])]

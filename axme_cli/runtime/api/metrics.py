"""GET /metrics: Prometheus text format (runtime/metrics.py).

Auth: the workspace admin key (``x-api-key`` or ``Authorization: Bearer``, as Prometheus' ``authorization``
config sends it), unless the runtime runs with ``--metrics-public`` (then anyone who reaches the port may scrape).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from axme_cli.runtime.api.common import authenticate, runtime
from axme_cli.runtime.errors import Forbidden
from axme_cli.runtime.metrics import CONTENT_TYPE


async def metrics(request: Request) -> Response:
    rt = runtime(request)
    if not rt.settings.metrics_public:
        principal = await authenticate(request, refusable=False)  # a scrape is never refused by the request quota
        if not principal.is_admin:
            raise Forbidden("/metrics needs the workspace admin key (or a runtime started with --metrics-public)",
                            code="policy_denied")
    return Response(rt.metrics.render(), media_type=CONTENT_TYPE)


routes = [Route("/metrics", metrics, methods=["GET"])]

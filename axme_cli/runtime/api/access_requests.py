"""/v1/access-requests and /v1/portal/enterprise/access-requests (engine/access_requests.py): anyone with a key
asks (an agent key for itself), the workspace key or a person reviews, and an approved request grants what it
asked. People and the workspace key see every request; an agent key the ones it filed (others: 404); the portal's
queue is for people and the workspace key only."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from axme_cli.protocol import access_requests as wire
from axme_cli.runtime.api.common import authenticate, parse_object, read_body, respond, runtime
from axme_cli.runtime.api.inbox import idempotency_of
from axme_cli.runtime.api.principals_admin import parse
from axme_cli.runtime.engine import access_requests as engine
from axme_cli.runtime.engine import idempotency
from axme_cli.runtime.engine.principals_admin import check_tenancy, tenancy
from axme_cli.runtime.errors import Forbidden, NotFound, Unprocessable
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.scope import settings_for
from axme_cli.runtime.store.base import Tx

LISTED = 500  # the newest this many requests are listed (the queue of one workspace)


async def create_request(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    s = settings_for(rt.settings, principal)
    raw = await read_body(request)
    req = parse(wire.AccessRequestCreateRequest, parse_object(raw))
    idem = idempotency_of(request, principal, raw)
    now = rt.clock.time()

    def create(tx: Tx) -> dict[str, Any]:
        return idempotency.once(tx, idem, now, lambda: engine.request_view(
            engine.op_create(tx, s, principal, req, now), now)).result

    return respond({"ok": True, "access_request": await rt.write(create)}, request=request)


async def review_request(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    s = settings_for(rt.settings, principal)
    raw = await read_body(request)
    req = parse(wire.AccessRequestReviewRequest, parse_object(raw))
    access_request_id = request.path_params["access_request_id"]
    idem = idempotency_of(request, principal, raw)
    now = rt.clock.time()

    def review(tx: Tx) -> dict[str, Any]:
        return idempotency.once(tx, idem, now, lambda: engine.request_view(
            engine.op_review(tx, s, principal, access_request_id, req, now), now)).result

    return respond({"ok": True, "access_request": await rt.write(review)}, request=request)


async def get_request(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    s = settings_for(rt.settings, principal)
    access_request_id = request.path_params["access_request_id"]
    org, workspace = tenancy(s)
    row = await rt.reads.get_access_request(org, workspace, access_request_id)
    if row is None or not engine.may_see(principal, row):
        raise NotFound(f"access request {access_request_id} not found", code="access_request_not_found")
    return respond({"ok": True, "access_request": engine.request_view(row, rt.clock.time())}, request=request)


async def _listed(request: Request, principal: Principal) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the requests the caller may see, newest first; those of them in the ``state`` asked for)."""
    rt = runtime(request)
    s = settings_for(rt.settings, principal)
    check_tenancy(s, dict(request.query_params))
    state = request.query_params.get("state") or None
    if state is not None and state not in wire.STATES:
        raise Unprocessable(f"state: use one of {', '.join(wire.STATES)}", code="invalid_parameter",
                            details={"field": "state", "allowed": list(wire.STATES)})
    org, workspace = tenancy(s)
    rows = await rt.reads.list_access_requests(org, workspace, limit=LISTED,
                                               created_by=None if principal.is_member else principal.address)
    now = rt.clock.time()
    views = [engine.request_view(r, now) for r in rows]
    return views, [v for v in views if state is None or v["state"] == state]


async def list_requests(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    _, shown = await _listed(request, principal)
    return respond({"ok": True, "access_requests": shown}, request=request)


async def portal_requests(request: Request) -> Response:
    """The review queue as the enterprise portal shows it: the requests, and how many are in each state."""
    principal = await authenticate(request, elsewhere_ok=True)
    if not principal.is_member:
        raise Forbidden("the access-request queue is for people and the workspace API key, not an agent key",
                        code="policy_denied")
    views, shown = await _listed(request, principal)
    org, workspace = tenancy(settings_for(runtime(request).settings, principal))
    counts = {state: 0 for state in wire.STATES}
    for view in views:
        counts[view["state"]] += 1
    return respond({"ok": True, "org_id": org, "workspace_id": workspace, "access_requests": shown,
                    "counts": counts}, request=request)


routes = [
    Route("/v1/access-requests", create_request, methods=["POST"]),
    Route("/v1/access-requests", list_requests, methods=["GET"]),
    Route("/v1/access-requests/{access_request_id}", get_request, methods=["GET"]),
    Route("/v1/access-requests/{access_request_id}/review", review_request, methods=["POST"]),
    Route("/v1/portal/enterprise/access-requests", portal_requests, methods=["GET"]),
]

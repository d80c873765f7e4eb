"""/v1/quotas (AXME's ``quotas.*``) and GET /v1/portal/enterprise/overview (what `axme quota show` reads).

Who may: reading, the workspace key and people; changing, the workspace key only (AXME's org owners and admins).
These routes count as requests but the request-rate quota never refuses them, so an operator locked out by a
quota can always see and change it. Every workspace's keys see and change their own workspace's policy
(``runtime/scope.py``).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from axme_cli.protocol.quotas import QuotaPatchRequest, dimensions_set
from axme_cli.runtime.api.common import read_object, respond, runtime
from axme_cli.runtime.api.intents import validation_failed
from axme_cli.runtime.api.usage import check_member, check_scope, policy_row, report, scoped, with_limits
from axme_cli.runtime.engine import quotas, usage

APPLIES_TO = ("new work only: a limit below what is used already is kept, nothing that exists is removed or "
              "stopped, and new calls past it are refused")


async def get_quotas(request: Request) -> Response:
    principal, s = await scoped(request, refusable=False)
    check_member(principal, "the quota policy")
    check_scope(request, s)
    row, stored = await policy_row(runtime(request), s)
    return respond({"ok": True, "quota_policy": quotas.policy_view(row, stored=stored)}, request=request)


async def patch_quotas(request: Request) -> Response:
    principal, s = await scoped(request, refusable=False)
    body = await read_object(request)
    try:
        model = QuotaPatchRequest.model_validate(body)
    except ValidationError as exc:
        raise validation_failed(exc) from None
    req: dict[str, Any] = {**model.model_dump(exclude={"dimensions"}, exclude_none=True),
                           "dimensions": dimensions_set(model)}
    rt = runtime(request)
    now = rt.clock.time()
    view = await rt.write(lambda tx: quotas.op_update(tx, s, principal, req, now))
    await rt.quotas.reload()  # in force here before the answer (other replicas: when they hear of the commit)
    today = usage.day_of(now)
    used = usage.dimension_usage(await report(rt, s, today, now), [today])
    below = [{"dimension": name, "used": used[name]["used"], "limit": limit}
             for name, limit in view["dimensions"].items() if limit is not None and used[name]["used"] > limit]
    return respond({"ok": True, "quota_policy": view, "applies_to": APPLIES_TO, "below_current_usage": below},
                   request=request)


async def enterprise_overview(request: Request) -> Response:
    """The enterprise portal's overview, as far as this runtime has one: the quota policy and today's usage."""
    principal, s = await scoped(request, refusable=False)
    check_member(principal, "the overview")
    check_scope(request, s)
    rt = runtime(request)
    now = rt.clock.time()
    today = usage.day_of(now)
    found = await report(rt, s, today, now)
    row, stored = await policy_row(rt, s)
    view = quotas.policy_view(row, stored=stored)
    org, workspace = usage.workspace_of(s)
    overview = {
        "org_id": org, "workspace_id": workspace, "quota_policy": view,
        "usage_summary": {"window": "day", "window_start": f"{today}T00:00:00Z",
                          "window_end": f"{usage.window_end(today, 'day')}T00:00:00Z",
                          "dimensions": with_limits(usage.dimension_usage(found, [today]), view["dimensions"]),
                          "counters": usage.counter_totals(found, [today])},
    }
    return respond({"ok": True, "overview": overview}, request=request)


routes = [
    Route("/v1/quotas", get_quotas, methods=["GET"]),
    Route("/v1/quotas", patch_quotas, methods=["PATCH"]),
    Route("/v1/portal/enterprise/overview", enterprise_overview, methods=["GET"]),
]

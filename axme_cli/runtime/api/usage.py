"""/v1/usage routes (AXME's ``usage.*``): the summary of a window, a daily time series, and the daily rollup.

Computed from what the runtime counted (engine/usage.py): the counters' rows, after this process added what it
held in memory, and the levels kept as rows (service accounts, people). Who may read: the workspace key and
people (AXME's workspace admins and auditors); an agent key gets 403. The rollup: the workspace key. Every
workspace's keys read their own workspace's usage (``runtime/scope.py``); naming another is 404.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from axme_cli.runtime.api.common import authenticate, int_param, respond, runtime
from axme_cli.runtime.clock import iso
from axme_cli.runtime.core import Runtime
from axme_cli.runtime.engine import quotas, usage
from axme_cli.runtime.errors import Forbidden, Unprocessable
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.scope import settings_for
from axme_cli.runtime.settings import Settings

WINDOWS = ("day", "week", "month")


def check_member(principal: Principal, what: str) -> None:
    if not principal.is_member:
        raise Forbidden(f"{what} is for the workspace key and people of the workspace, not an agent key",
                        code="policy_denied")


async def scoped(request: Request, *, refusable: bool = True) -> tuple[Principal, Settings]:
    """The caller and the settings of its workspace, whose quotas and usage these routes read and change."""
    principal = await authenticate(request, refusable=refusable, elsewhere_ok=True)
    return principal, settings_for(runtime(request).settings, principal)


def check_scope(request: Request, s: Settings) -> None:
    """The query's ``org_id`` / ``workspace_id``: may be left out; given, the caller's (404 otherwise)."""
    q = request.query_params
    quotas.check_workspace(s, q.get("org_id"), q.get("workspace_id"))


async def report(rt: Runtime, s: Settings, first_day: str, now: float) -> usage.Report:
    """The workspace's counters from ``first_day`` on, once this process has added what it holds (so what it did
    is in)."""
    await rt.usage_flusher.flush()
    org, workspace = usage.workspace_of(s)
    return await usage.read_report(rt.reads, org, workspace, rt.usage, first_day, now,
                                   replica_id=rt.quotas.replica_id,
                                   local_streams=rt.quotas.streams_of((org, workspace)))


def with_limits(dims: dict[str, dict[str, int]], limits: dict[str, int | None]) -> dict[str, dict[str, Any]]:
    """Each dimension's usage with its ``limit`` and ``remaining`` (null without a limit) and ``percent`` used."""
    out: dict[str, dict[str, Any]] = {}
    for name, entry in dims.items():
        limit = limits.get(name)
        percent = None if not limit else round(100.0 * entry["used"] / limit, 1)
        if limit == 0:
            percent = 0.0 if entry["used"] == 0 else 100.0
        out[name] = {"used": entry["used"], "limit": limit,
                     "remaining": None if limit is None else limit - entry["used"], "percent": percent,
                     **{k: v for k, v in entry.items() if k != "used"}}
    return out


async def policy_row(rt: Runtime, s: Settings) -> tuple[dict[str, Any], bool]:
    """The workspace's quota policy as stored (read, not the memory of this replica), or the defaults."""
    org, workspace = usage.workspace_of(s)
    row = await rt.reads.read_quota_policy(org, workspace)
    if row is None:
        return quotas.default_row(s, iso(rt.started_at)), False
    return row, True


async def summary_of(rt: Runtime, s: Settings, window: str, now: float) -> dict[str, Any]:
    start = usage.window_start(now, window)
    days = [d for d in usage.days_back(now, 31) if d >= start]
    found = await report(rt, s, start, now)
    row, stored = await policy_row(rt, s)
    limits = quotas.policy_view(row, stored=stored)["dimensions"]
    org, workspace = usage.workspace_of(s)
    return {"org_id": org, "workspace_id": workspace, "window": window, "window_start": f"{start}T00:00:00Z",
            "window_end": f"{usage.window_end(start, window)}T00:00:00Z", "as_of": iso(now),
            "dimensions": with_limits(usage.dimension_usage(found, days), limits),
            "counters": usage.counter_totals(found, days)}


async def get_summary(request: Request) -> Response:
    principal, s = await scoped(request)
    check_member(principal, "usage")
    check_scope(request, s)
    window = request.query_params.get("window") or "day"
    if window not in WINDOWS:
        raise Unprocessable(f"window: {window[:20]!r} is not one of {', '.join(WINDOWS)}", code="invalid_parameter",
                            details={"field": "window", "allowed": list(WINDOWS)})
    rt = runtime(request)
    return respond({"ok": True, "summary": await summary_of(rt, s, window, rt.clock.time())}, request=request)


async def get_timeseries(request: Request) -> Response:
    principal, s = await scoped(request)
    check_member(principal, "usage")
    check_scope(request, s)
    window_days = int_param(request, "window_days", 30, 1, 90)
    rt = runtime(request)
    now = rt.clock.time()
    days = usage.days_back(now, window_days)
    found = await report(rt, s, days[0], now)
    org, workspace = usage.workspace_of(s)
    accounts = await rt.reads.service_account_days(org, workspace)
    actors = await rt.reads.actor_days()
    series = {"org_id": org, "workspace_id": workspace, "granularity": "day", "window_days": window_days,
              "points": usage.daily_points(found, days, accounts, actors)}
    return respond({"ok": True, "series": series}, request=request)


async def rollup_daily(request: Request) -> Response:
    principal, s = await scoped(request)
    if not principal.is_admin:
        raise Forbidden("the daily rollup needs the workspace API key", code="policy_denied")
    check_scope(request, s)
    window_days = int_param(request, "window_days", 30, 1, 90)
    rt = runtime(request)
    now = rt.clock.time()
    days = usage.days_back(now, window_days)
    await rt.usage_flusher.flush()
    org, workspace = usage.workspace_of(s)
    rolled = await rt.write(lambda tx: usage.op_rollup(tx, s, days, now))
    return respond({"ok": True, "rollup": {"org_id": org, "workspace_id": workspace, "window_days": window_days,
                                           "days": rolled, "rolled_up_at": iso(now)}}, request=request)


routes = [
    Route("/v1/usage/summary", get_summary, methods=["GET"]),
    Route("/v1/usage/timeseries", get_timeseries, methods=["GET"]),
    Route("/v1/usage/rollups/daily", rollup_daily, methods=["POST"]),
]

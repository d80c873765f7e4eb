"""The ASGI application: routes, and one mapping from any failure to the AXP error shape."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from axme_cli.runtime.api import (
    access_requests,
    agents,
    aliases,
    approvals,
    audit,
    auth,
    billing,
    deliveries,
    dev_clock,
    health,
    inbox,
    intents,
    invites,
    media,
    mesh,
    metrics,
    orgs,
    policies,
    principals_admin,
    quotas,
    routing,
    scenarios,
    schedules,
    schemas,
    task_pages,
    tasks,
    usage,
    users,
    webhooks,
)
from axme_cli.runtime.api.common import DIRECT, respond_raw
from axme_cli.runtime.api.errors import answer, error_response
from axme_cli.runtime.core import Runtime
from axme_cli.runtime.errors import BadRequest, DomainError
from axme_cli.runtime.ui import routes as ui_routes

log = logging.getLogger("axme.api")

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return error_response(exc, request)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {
        404: f"no route {request.method} {request.url.path}",
        405: f"method {request.method} is not allowed on {request.url.path}",
    }.get(exc.status_code, str(exc.detail))
    return answer(exc.status_code, _HTTP_CODES.get(exc.status_code, "http_error"), message, request=request)


async def _unexpected(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ClientDisconnect):  # gone mid-body (or cut off for sending too slowly): no one to answer
        return error_response(BadRequest("the client went away before its request was complete"), request)
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return answer(500, "internal_error", "internal error; the runtime logged the details", request=request)


def _nul_in_url(scope: Scope) -> bool:
    """A NUL byte in a URL's path or query is refused at once (400 ``invalid_value``) on every backend: no id or
    parameter may hold one, and PostgreSQL cannot even be asked about it. (Task pages hash their token first.)"""
    return (("\x00" in scope["path"] and not scope["path"].startswith("/t/"))
            or b"%00" in scope["query_string"] or b"\x00" in scope["query_string"])


class _HotPaths:
    """The application's front: a URL with a NUL byte is refused (``_nul_in_url``); the routes that carry a
    workflow's steps (create, apply, resume, the event stream, the agent feed) go straight to their endpoint, with
    the same error mapping; every other request goes through the proxy headers (when uvicorn leaves them to the
    app: ``forwarded_allow``) and Starlette's layers (middleware, exception handlers, router). Those layers took
    about 14% of the event loop's time under ``bench/saga.py``, and the runtime is held to one core by the GIL.

    The hot routes never read the client's address or the URL's scheme, the two things uvicorn's
    ProxyHeadersMiddleware sets from ``X-Forwarded-For`` and ``X-Forwarded-Proto``, so they skip it too: it
    looked through every request's headers for them (a hot route that comes to need either must be served
    behind it)."""

    def __init__(self, app: ASGIApp, owner: Starlette, routes: list[Route]) -> None:
        self.app = app
        self.owner = owner
        self.routes = routes
        # By method, so a request is matched only against the hot routes it could be (a route of another method
        # only ever matches partly). The route's path pattern is tried once, on the path as sent, and its match
        # gives the path parameters as Route.matches would (which would match the pattern again and copy the
        # scope's parameters): under a root_path it does not match, and the request takes the full stack, which
        # serves it the same.
        self.by_method: dict[str, list[Route]] = {}
        for route in routes:
            for method in route.methods or ():
                self.by_method.setdefault(method, []).append(route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if _nul_in_url(scope):
                err = BadRequest("a NUL byte (%00) is not allowed in a URL", code="invalid_value")
                await error_response(err)(scope, receive, send)
                return
            path = scope["path"]
            for route in self.by_method.get(scope["method"], ()):
                match = route.path_regex.match(path)
                if match is None:
                    continue
                params = match.groupdict()
                for key, value in params.items():
                    params[key] = route.param_convertors[key].convert(value)
                scope["endpoint"], scope["path_params"], scope["app"] = route.endpoint, params, self.owner
                scope[DIRECT] = True  # its response goes to the server with no middleware in between
                await self._serve(route, scope, receive, send)
                return
        await self.app(scope, receive, send)

    @staticmethod
    async def _serve(route: Route, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            response = await route.endpoint(request)
        except DomainError as exc:
            response = error_response(exc, request)
        except Exception as exc:
            response = await _unexpected(request, exc)
        await response(scope, receive, send)


class App(Starlette):
    hot: list[Route] = []
    # uvicorn's forwarded_allow_ips, when the server leaves the proxy headers to the app (server.py): only the
    # requests that are not hot go through its ProxyHeadersMiddleware (see _HotPaths)
    forwarded_allow: list[str] | str | None = None
    runtime: Runtime  # an attribute, not in app.state: State looks a name up through a __getattr__ in Python

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        if self.forwarded_allow is not None:
            stack = cast(ASGIApp, ProxyHeadersMiddleware(cast(Any, stack), trusted_hosts=self.forwarded_allow))
        return _HotPaths(stack, self, self.hot)


HOT = {("POST", "/v1/intents"), ("POST", "/v1/scenarios/apply"), ("POST", "/v1/intents/{intent_id}/resume"),
       ("GET", "/v1/intents/{intent_id}/events/stream"), ("GET", "/v1/agents/{address:path}/intents/stream"),
       ("GET", "/v1/intents/{intent_id}")}


async def _mcp(request: Request) -> Response:
    # The MCP surface and its tool table are imported at the first POST /mcp: most runtimes never get one.
    from axme_cli.runtime.api import mcp

    return await mcp.mcp_endpoint(request)


def route_table(openapi_json: Any, *, test_clock: bool = False) -> list[BaseRoute]:
    """Every route; POST /dev/clock/advance only on a runtime whose clock tests move (`axme dev --test-clock`),
    so no other runtime has it, in its routes or its OpenAPI document."""
    return [*health.routes, *intents.routes, *scenarios.routes, *tasks.routes, *policies.routes, *billing.routes,
            *agents.routes, *auth.routes,
            *webhooks.routes, *deliveries.routes, *audit.routes, *users.routes, *invites.routes, *media.routes,
            *schemas.routes, *schedules.routes, *mesh.routes, *quotas.routes, *usage.routes,
            *principals_admin.routes, *aliases.routes, *routing.routes, *access_requests.routes, *orgs.routes,
            *inbox.routes, *approvals.routes, *task_pages.routes, *metrics.routes,
            *(dev_clock.routes if test_clock else ()), Route("/mcp", _mcp, methods=["POST"], name="mcp_endpoint"),
            Route("/openapi.json", openapi_json, methods=["GET"]), *ui_routes]


def hot_routes(routes: list[BaseRoute]) -> list[Route]:
    return [r for r in routes if isinstance(r, Route) and any((m, r.path) in HOT for m in r.methods or ())]


def build_app(rt: Runtime, *, manage_runtime: bool = True) -> App:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if manage_runtime:
            await rt.start()
        try:
            yield
        finally:
            if manage_runtime:
                await rt.stop()

    async def openapi_json(request: Request) -> Response:
        # Built at the first request, not at start: ~0.1 s of CPU (pydantic's schemas of every model) that a
        # runtime nobody asks for its document would spend at every start. The route table is fixed by then.
        # Its module too: only a runtime that is asked for the document imports it.
        if request.app.state.openapi is None:
            from axme_cli.runtime.api import openapi

            request.app.state.openapi = orjson.dumps(openapi.document(request.app.routes))
        return respond_raw(request.app.state.openapi, request=request)

    routes = route_table(openapi_json, test_clock=rt.clock.manual)
    app = App(
        routes=routes,
        exception_handlers={DomainError: _domain_error, HTTPException: _http_error, Exception: _unexpected},
        lifespan=lifespan,
    )
    # Ahead of Starlette's layers (after the NUL check): the hot routes, in the route table's order.
    app.hot = hot_routes(routes)
    app.runtime = rt
    app.state.openapi = None
    return app

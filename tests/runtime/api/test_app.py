"""The application's route table: the hot routes served ahead of Starlette's router never hide another route."""

from __future__ import annotations

import re

from starlette.routing import Match, Route

from axme_cli.runtime.api.app import HOT, hot_routes, route_table


def test_every_hot_route_is_in_the_table() -> None:
    hot = hot_routes(route_table(None))
    assert {(m, r.path) for r in hot for m in (r.methods or ()) if m != "HEAD"} == HOT


def test_no_hot_route_shadows_another_route() -> None:
    """The hot routes are tried before the whole table: a request meant for any other route (its parameters
    filled in) must not match one of them."""
    table = route_table(None)
    hot = hot_routes(table)
    checked = 0
    for route in table:
        if not isinstance(route, Route) or route in hot:
            continue
        sample = re.sub(r"\{[^}]+\}", "x", route.path)
        for method in route.methods or ():
            scope = {"type": "http", "path": sample, "method": method}
            assert route.matches(scope)[0] is Match.FULL, route.path
            shadowing = [h.path for h in hot if h.matches(scope)[0] is Match.FULL]
            assert not shadowing, f"{method} {route.path} would be served by {shadowing}"
            checked += 1
    assert checked > 50


def test_a_hot_route_gets_the_path_parameters_starlette_would_give_it() -> None:
    """``_HotPaths`` takes the path parameters from its own match of the route's pattern, not from Route.matches:
    the same values (converted by the route's convertors), the same endpoint."""
    import asyncio

    from starlette.applications import Starlette
    from starlette.responses import Response

    from axme_cli.runtime.api.app import _HotPaths

    seen: list[dict[str, object]] = []

    async def endpoint(request: object) -> Response:
        seen.append(dict(request.scope))  # type: ignore[attr-defined]
        return Response(b"")

    async def nothing(message: object) -> None:
        pass

    async def no_body() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    owner = Starlette()
    for route in hot_routes(route_table(None)):
        copy = Route(route.path, endpoint, methods=list(route.methods or ()))
        method = sorted(copy.methods or ())[0]
        sample = re.sub(r"\{[^}:]+(:path)?\}", lambda m: "a/b" if m.group(1) else "x-1", route.path)
        scope = {"type": "http", "path": sample, "method": method, "headers": [], "query_string": b""}
        expected = copy.matches(dict(scope))[1]
        asyncio.run(_HotPaths(nothing, owner, [copy])(scope, no_body, nothing))  # type: ignore[arg-type]
        assert seen[-1]["path_params"] == expected["path_params"] and seen[-1]["endpoint"] is endpoint
        assert seen[-1]["app"] is owner
    assert len(seen) == len(HOT)


def test_a_query_parameter_is_what_starlettes_query_params_give() -> None:
    """``common.query_param`` looks through a query string with nothing to unquote itself: the same value as
    ``request.query_params.get`` for repeated, blank, valueless and empty fields, and for what must be unquoted."""
    from starlette.requests import Request

    from axme_cli.runtime.api.common import query_param

    strings = [b"", b"a=1", b"a=1&a=2", b"a", b"a=&b=2", b"&&a=3&", b"since=12&wait_seconds=30&incremental=true",
               b"a=1=2", b"b=1;a=2", b"a=%41", b"a=x+y", b"A=1", b"a=\xe9", b"=1&a"]
    for raw in strings:
        request = Request({"type": "http", "query_string": raw, "headers": []})
        for name in ("a", "b", "since", "wait_seconds", "incremental", "A"):
            assert query_param(request, name) == request.query_params.get(name), (raw, name)

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

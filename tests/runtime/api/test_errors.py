"""The one mapping from the runtime's refusals to HTTP (runtime/api/errors.py), and that the engine and the store
stay free of HTTP. Pure: no runtime, no database."""

from __future__ import annotations

import ast
import inspect
import pathlib

import orjson
import pytest

from axme_cli.runtime import errors
from axme_cli.runtime.api.errors import STATUS, error_response, headers_of, status_of
from axme_cli.runtime.engine.human import LinkRefused

RUNTIME = pathlib.Path(errors.__file__).parent

EXPECTED = [
    (errors.BadRequest("x"), 400, "bad_request"),
    (errors.Unauthorized("x"), 401, "unauthorized"),
    (errors.Forbidden("x"), 403, "forbidden"),
    (errors.NotFound("x"), 404, "not_found"),
    (errors.Conflict("x"), 409, "conflict"),
    (errors.Gone("x"), 410, "gone"),
    (LinkRefused("x", details={"reason": "used"}), 410, "task_link_refused"),
    (errors.PayloadTooLarge("x"), 413, "payload_too_large"),
    (errors.Unprocessable("x"), 422, "schema_invalid"),
    (errors.TooManyRequests("x", retry_after=3), 429, "rate_limit_exceeded"),
    (errors.Unavailable("x", code="mail_delivery_failed", retry_after=5), 503, "mail_delivery_failed"),
    (errors.StoreUnavailable(), 503, "storage_unavailable"),
]


@pytest.mark.parametrize(("exc", "status", "code"), EXPECTED, ids=[type(e).__name__ for e, _, _ in EXPECTED])
def test_each_refusal_has_its_status_and_code(exc: errors.DomainError, status: int, code: str) -> None:
    assert status_of(exc) == status
    response = error_response(exc)
    assert response.status_code == status
    body = orjson.loads(bytes(response.body))
    assert body == {"error": {"code": code, "message": "x" if code != "storage_unavailable" else exc.message,
                              "details": exc.details}, "detail": exc.message}


def test_every_refusal_class_is_in_the_table() -> None:
    classes = {c for _, c in inspect.getmembers(errors, inspect.isclass)
               if issubclass(c, errors.DomainError) and c is not errors.DomainError}
    unmapped = {c.__name__ for c in classes if not any(base in STATUS for base in c.__mro__)}
    assert unmapped == set()


def test_retry_after_and_the_per_key_limit_become_headers() -> None:
    assert headers_of(errors.NotFound("x")) == {}
    assert headers_of(errors.StoreUnavailable()) == {"Retry-After": "1"}
    login = errors.TooManyRequests("x", retry_after=7)
    assert headers_of(login) == {"Retry-After": "7"}
    per_key = errors.TooManyRequests("x", retry_after=2, limit_per_second=2.5)
    assert headers_of(per_key) == {"Retry-After": "2", "X-RateLimit-Limit": "2.5"}
    response = error_response(per_key)
    assert response.headers["retry-after"] == "2" and response.headers["x-ratelimit-limit"] == "2.5"


def _imports(path: pathlib.Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("part", ["engine", "store"])
def test_engine_and_store_know_nothing_of_http(part: str) -> None:
    """Neither imports the web framework or the API package, and no refusal they raise carries a status."""
    for path in sorted((RUNTIME / part).rglob("*.py")):
        bad = {m for m in _imports(path) if m.startswith(("starlette", "axme_cli.runtime.api", "axme_cli.runtime.ui"))}
        assert bad == set(), f"{path.name} imports {bad}"
    for cls in [c for _, c in inspect.getmembers(errors, inspect.isclass)] + [LinkRefused]:
        assert not hasattr(cls, "status_code") and not hasattr(cls, "headers"), cls

"""The one place a refusal of the runtime becomes an HTTP answer: its status, the AXP error body and headers.

The engine and the store raise ``runtime.errors.DomainError`` subclasses, which know nothing of HTTP. The API's
routes, the dashboard and the task pages all map them here, so a refusal is answered the same way wherever it
is met.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from axme_cli.runtime import errors
from axme_cli.runtime.api.common import JSON, echo_headers
from axme_cli.runtime.engine.quotas import count_refusal

# A refusal's class -> its HTTP status; a subclass takes the status of the nearest class listed.
STATUS: dict[type[errors.DomainError], int] = {
    errors.BadRequest: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.Gone: 410,
    errors.PayloadTooLarge: 413,
    errors.Unprocessable: 422,
    errors.TooManyRequests: 429,
    errors.Unavailable: 503,
}


def status_of(exc: errors.DomainError) -> int:
    for cls in type(exc).__mro__:
        status = STATUS.get(cls)
        if status is not None:
            return status
    return 400


def headers_of(exc: errors.DomainError) -> dict[str, str]:
    """``Retry-After`` (whole seconds) when the refusal says when to try again; ``X-RateLimit-Limit`` when the
    per-key rate limit was exceeded."""
    headers: dict[str, str] = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, errors.TooManyRequests) and exc.limit_per_second is not None:
        headers["X-RateLimit-Limit"] = f"{exc.limit_per_second:g}"
    return headers


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}, "detail": message}


def answer(status: int, code: str, message: str, *, details: Any = None, headers: dict[str, str] | None = None,
           request: Request | None = None) -> Response:
    """An error in the AXP shape; also for failures that are no refusal of the runtime (no such route, a bug)."""
    all_headers = dict(headers or {})
    all_headers.update(echo_headers(request) or {})
    return Response(orjson.dumps(error_body(code, message, details)), status_code=status, media_type=JSON,
                    headers=all_headers)


def error_response(exc: errors.DomainError, request: Request | None = None) -> Response:
    count_refusal(exc)  # a quota's refusal is counted once it is answered
    return answer(status_of(exc), exc.code, exc.message, details=exc.details, headers=headers_of(exc),
                  request=request)

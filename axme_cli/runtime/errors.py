"""One exception hierarchy for everything the runtime refuses; the API maps each to the AXP error shape."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code
        self.details = details if details is not None else {}
        self.headers = headers or {}


class BadRequest(ApiError):
    status_code = 400
    code = "bad_request"


class Unauthorized(ApiError):
    status_code = 401
    code = "unauthorized"


class Forbidden(ApiError):
    status_code = 403
    code = "forbidden"


class NotFound(ApiError):
    status_code = 404
    code = "not_found"


class Conflict(ApiError):
    status_code = 409
    code = "conflict"


class Gone(ApiError):
    status_code = 410
    code = "gone"


class PayloadTooLarge(ApiError):
    status_code = 413
    code = "payload_too_large"


class Unprocessable(ApiError):
    status_code = 422
    code = "schema_invalid"


class TooManyRequests(ApiError):
    status_code = 429
    code = "rate_limit_exceeded"


class StoreUnavailable(ApiError):
    """The database could not take the write or read (disk full, locked, unreachable)."""

    status_code = 503
    code = "storage_unavailable"

    def __init__(self, message: str = "the database is unavailable; retry shortly") -> None:
        super().__init__(message, details={"retryable": True}, headers={"Retry-After": "1"})

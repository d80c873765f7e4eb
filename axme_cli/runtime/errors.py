"""What the runtime refuses, as the engine and the store say it: a code, a sentence and details, never HTTP.

The engine and the store raise these; each side that answers a caller turns them into its own form in one place
(``runtime/api/errors.py`` for the API, the dashboard and the task pages). A number of seconds to wait before
trying again (``retry_after``) is part of the refusal, not a header.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details if details is not None else {}
        self.retry_after = retry_after  # seconds after which the same call may succeed


class BadRequest(DomainError):
    code = "bad_request"


class Unauthorized(DomainError):
    code = "unauthorized"


class Forbidden(DomainError):
    code = "forbidden"


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"


class Gone(DomainError):
    code = "gone"


class PayloadTooLarge(DomainError):
    code = "payload_too_large"


class Unprocessable(DomainError):
    code = "schema_invalid"


class TooManyRequests(DomainError):
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None, retry_after: int,
                 limit_per_second: float | None = None) -> None:
        super().__init__(message, code=code, details=details, retry_after=retry_after)
        self.limit_per_second = limit_per_second  # the per-key limit, when that is the one exceeded


class Unavailable(DomainError):
    """Something the call needs is down for now (the database, the mail server): retry later."""

    code = "unavailable"


class StoreUnavailable(Unavailable):
    """The database could not take the write or read (disk full, locked, unreachable)."""

    code = "storage_unavailable"

    def __init__(self, message: str = "the database is unavailable; retry shortly") -> None:
        super().__init__(message, details={"retryable": True}, retry_after=1)

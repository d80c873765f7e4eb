"""Pydantic models of the request bodies the runtime accepts (axp-spec public_api schemas)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import PydanticCustomError

INTENT_TYPE_PATTERN = r"^[a-z0-9_]+(?:\.[a-z0-9_]+)+\.v[0-9]+$"

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


def _json_int(value: Any) -> Any:
    """JSON Schema integers: 3 and 3.0, not "3" or true (pydantic's lax mode would take those)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be a whole number")
        return int(value)
    return value


def _json_number(value: Any) -> Any:
    """JSON Schema numbers: 3 and 2.5, not "3" or true."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    return value


def _json_str(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


# Times the runtime keeps must be representable as epoch seconds and back (1970 .. 9999 in UTC).
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
# Longest delay (reminders, step deadlines) the runtime takes: 100 years.
MAX_SECONDS = 100 * 365 * 86400
MAX_REMINDERS = 10_000


def _in_range(value: datetime) -> datetime:
    """A naive time is UTC (as ``clock.to_iso`` reads it)."""
    try:
        utc = (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("must be between 1970-01-01 and 9999-12-31 (UTC)") from None
    if not _EARLIEST <= utc <= _LATEST:
        raise ValueError("must be between 1970-01-01 and 9999-12-31 (UTC)")
    return value


def _iso_date_time(value: str) -> str:
    """An RFC 3339 date-time with a zone, kept as given (ScenarioBundle fields are passed on as strings)."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError("must be an RFC 3339 date-time, e.g. 2030-01-31T12:00:00Z") from None
    if parsed.tzinfo is None or "T" not in value.upper():
        raise ValueError("must be an RFC 3339 date-time with a zone, e.g. 2030-01-31T12:00:00Z")
    _in_range(parsed)
    return value


def _form_schema(value: dict[str, Any]) -> dict[str, Any]:
    """A form_schema the runtime will evaluate (protocol/schemas.py), refused when the task is created rather
    than when somebody answers it."""
    from axme_cli.protocol import schemas

    try:
        schemas.check(value)
    except schemas.SchemaRefused as exc:
        raise PydanticCustomError("form_schema_refused", "{reason}", {"reason": str(exc)}) from None
    return value


JsonInt = Annotated[int, BeforeValidator(_json_int)]
# RFC 3339 date-time with a zone; a number or a bare date is refused (as JSON Schema's format does).
DateTime = Annotated[AwareDatetime, BeforeValidator(_json_str), AfterValidator(_in_range)]
IsoDateTime = Annotated[str, AfterValidator(_iso_date_time)]
Seconds = Annotated[JsonInt, Field(ge=1, le=MAX_SECONDS)]
# The spec gives intent_type a pattern but no maxLength; 255 is the spec's usual bound for names.
INTENT_TYPE_MAX = 255
IntentType = Annotated[str, StringConstraints(max_length=INTENT_TYPE_MAX, pattern=INTENT_TYPE_PATTERN)]
Uuid = Annotated[str, StringConstraints(pattern=UUID_PATTERN)]
Address = Annotated[str, StringConstraints(min_length=3, max_length=383)]

TASK_TYPES = (
    "approval",
    "review",
    "clarification",
    "provide_data",
    "attach_file",
    "manual_action",
    "confirmation",
    "validate_real_world",
    "validate_output",
    "assignment",
    "delegation",
    "reroute",
    "override",
    "escalate",
    # Used by AXME's CLI, SDK and examples although absent from the spec enum.
    "form",
)


class _Strict(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", str_strip_whitespace=False)


class HumanTaskSpec(_Strict):
    title: Annotated[str, StringConstraints(max_length=255)]
    description: Annotated[str, StringConstraints(max_length=2000)] | None = None
    task_type: Literal[TASK_TYPES] | None = None  # type: ignore[valid-type]
    allowed_outcomes: (
        Annotated[
            list[Annotated[str, StringConstraints(min_length=1, max_length=64)]],
            Field(min_length=1, max_length=20),
        ]
        | None
    ) = None
    required_comment: StrictBool = False
    assignees: (
        Annotated[
            list[Annotated[str, StringConstraints(min_length=1, max_length=383)]],
            Field(min_length=1, max_length=20),
        ]
        | None
    ) = None
    evidence_required: StrictBool = False
    form_schema: Annotated[dict[str, Any], AfterValidator(_form_schema)] | None = None
    # Not in the spec, but in every AXME example. 254: the longest address SMTP carries (RFC 5321).
    notify_email: Annotated[str, StringConstraints(max_length=254)] | None = None


class MediaAttachment(_Strict):
    """A finalized upload carried by an intent or an inbox message (message.envelope ``attachments``): the sender
    must be able to read it, and the recipients then may. ``mime_type`` is taken and ignored: the upload's own
    type is what recipients see."""

    upload_id: Uuid
    mime_type: Annotated[str, StringConstraints(min_length=3, max_length=255)] | None = None


MAX_ATTACHMENTS = 64
Attachments = Annotated[list[MediaAttachment], Field(min_length=1, max_length=MAX_ATTACHMENTS)]


class IntentCreateRequest(_Strict):
    """``api.intents.create.request.v1``."""

    intent_type: IntentType
    correlation_id: Uuid
    from_agent: Address | None = None
    to_agent: Address
    reply_to: Address | None = None
    payload: dict[str, Any]
    deadline_at: DateTime | None = None
    remind_after_seconds: Seconds | None = None
    remind_interval_seconds: Seconds | None = None
    max_reminders: Annotated[JsonInt, Field(ge=1, le=MAX_REMINDERS)] | None = None
    escalate_to: Annotated[str, StringConstraints(max_length=383)] | None = None
    max_delivery_attempts: Annotated[JsonInt, Field(ge=1, le=1_000_000)] | None = None
    human_task: HumanTaskSpec | None = None
    attachments: Attachments | None = None
    # From AXME's message envelope (message.envelope.v2): how strictly the payload is checked against the schema
    # registered for its intent_type, if any (runtime/engine/schemas.py); not in the intent request's spec.
    schema_mode: Literal["none", "warn", "enforce"] | None = None


class ResolveRequest(BaseModel):
    """``api.intents.resolve.request.v1`` (extra fields are ignored, as on AXME)."""

    model_config = ConfigDict(defer_build=True, extra="allow")

    status: Literal["COMPLETED", "FAILED", "CANCELED"]
    actor: Annotated[str, StringConstraints(max_length=255)] | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | str | None = None
    reason: Annotated[str, StringConstraints(max_length=2000)] | None = None


class BulkCancelRequest(_Strict):
    older_than_hours: Annotated[float, Field(ge=0, le=MAX_SECONDS / 3600)] = 24.0
    dry_run: bool = True
    reason: Annotated[str, StringConstraints(max_length=2000)] = "bulk cancel"
    limit: Annotated[int, Field(ge=1, le=10000)] = 500
    status_filter: list[str] | None = None


class ClockAdvanceRequest(_Strict):
    """POST /dev/clock/advance: how far to move the test clock of `axme dev --test-clock`."""

    seconds: Annotated[float, BeforeValidator(_json_number), Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False)]


class ServiceAccountCreateRequest(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="ignore")

    name: Annotated[str, StringConstraints(min_length=1, max_length=383)]
    org_id: str | None = None
    workspace_id: str | None = None
    description: Annotated[str, StringConstraints(max_length=2000)] | None = None
    display_name: Annotated[str, StringConstraints(max_length=255)] | None = None
    created_by_actor_id: str | None = None


class KeyCreateRequest(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="ignore")

    expires_at: Annotated[datetime, AfterValidator(_in_range)] | None = None


create_request_adapter: TypeAdapter[IntentCreateRequest] = TypeAdapter(IntentCreateRequest)


def describe_validation_error(exc: ValidationError) -> tuple[str, list[dict[str, Any]]]:
    """One readable sentence plus per-field details for a pydantic ValidationError."""
    details: list[dict[str, Any]] = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
        msg = err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            msg = "unknown field"
        elif err.get("type") == "missing":
            msg = "field required"
        details.append({"field": loc or "(body)", "message": msg, "type": err.get("type")})
    first = details[0] if details else {"field": "(body)", "message": "invalid"}
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return f"{first['field']}: {first['message']}{more}", details

"""Quotas on the wire: AXME's dimensions, and the request of PATCH /v1/quotas (also checked by `axme quota set`).

The dimensions are those AXME's gateway and CLI use (``axme quota show``). axp-spec's quota schema names an older
set; of it, ``requests_per_minute`` is taken as ``rate_limit_per_minute`` (the same thing), and the others
(inbox writes, media upload bytes a day, webhook deliveries, schema writes) are no quota of this runtime: 422.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints

INTENTS_PER_DAY = "intents_per_day"
RATE_LIMIT_PER_MINUTE = "rate_limit_per_minute"
PAYLOAD_MAX_BYTES = "payload_max_bytes"
STORAGE_BYTES = "storage_bytes"
ACTORS_TOTAL = "actors_total"
SERVICE_ACCOUNTS_PER_WORKSPACE = "service_accounts_per_workspace"
SSE_STREAMS_MAX = "sse_streams_max"
DIMENSIONS = (INTENTS_PER_DAY, RATE_LIMIT_PER_MINUTE, PAYLOAD_MAX_BYTES, STORAGE_BYTES, ACTORS_TOTAL,
              SERVICE_ACCOUNTS_PER_WORKSPACE, SSE_STREAMS_MAX)
ALIASES = {"requests_per_minute": RATE_LIMIT_PER_MINUTE}
OVERAGE_MODES = ("block", "grace", "bill_overage")
MAX_LIMIT = 2**53  # what every JSON reader keeps exactly

# What each limit means, for help texts and docs.
MEANING = {
    INTENTS_PER_DAY: "intents created in a UTC day (direct intents, human tasks, workflows, schedule runs)",
    RATE_LIMIT_PER_MINUTE: "API requests of the workspace in a minute (all keys and people together)",
    PAYLOAD_MAX_BYTES: "the largest payload an intent or workflow may carry (its JSON, in bytes)",
    STORAGE_BYTES: "bytes stored: every intent's payload and every finalized upload",
    ACTORS_TOTAL: "people who have logged in",
    SERVICE_ACCOUNTS_PER_WORKSPACE: "active service accounts (agents)",
    SSE_STREAMS_MAX: "event streams and agent feeds open at once",
}

Limit = Annotated[StrictInt, Field(ge=0, le=MAX_LIMIT)]


class QuotaDimensions(BaseModel):
    """Limits to set; ``null`` removes one (no limit); a dimension left out keeps its limit."""

    model_config = ConfigDict(defer_build=True, extra="forbid", populate_by_name=True)

    intents_per_day: Limit | None = Field(None, description=MEANING[INTENTS_PER_DAY])
    rate_limit_per_minute: Limit | None = Field(
        None, validation_alias=AliasChoices(RATE_LIMIT_PER_MINUTE, "requests_per_minute"),
        description=MEANING[RATE_LIMIT_PER_MINUTE] + " (axp-spec's requests_per_minute is taken too)")
    payload_max_bytes: Limit | None = Field(None, description=MEANING[PAYLOAD_MAX_BYTES])
    storage_bytes: Limit | None = Field(None, description=MEANING[STORAGE_BYTES])
    actors_total: Limit | None = Field(None, description=MEANING[ACTORS_TOTAL])
    service_accounts_per_workspace: Limit | None = Field(None, description=MEANING[SERVICE_ACCOUNTS_PER_WORKSPACE])
    sse_streams_max: Limit | None = Field(None, description=MEANING[SSE_STREAMS_MAX])


Id = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class QuotaPatchRequest(BaseModel):
    """PATCH /v1/quotas: AXME's QuotaPatchRequest. ``org_id`` and ``workspace_id`` may be left out (this
    runtime's); ``overage_mode`` left out keeps the current one."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    org_id: Id | None = None
    workspace_id: Id | None = None
    dimensions: QuotaDimensions
    soft_threshold_percent: Annotated[StrictInt, Field(ge=1, le=100)] | None = Field(
        None, description="Past this share of a limit, `axme quota show` marks the dimension (informational).")
    hard_enforcement: StrictBool | None = Field(
        None, description="false: nothing is refused; calls past a limit are counted as overage.")
    overage_mode: Literal["block", "grace", "bill_overage"] | None = Field(
        None, description="block: calls past a limit are refused; grace and bill_overage: let through and counted "
                          "as overage (nothing is billed here).")
    updated_by_actor_id: Id | None = None


def dimensions_set(model: QuotaPatchRequest) -> dict[str, int | None]:
    """The dimensions the request names, by their own names (``requests_per_minute`` as
    ``rate_limit_per_minute``): a value, or None to remove the limit."""
    given = model.dimensions
    return {name: getattr(given, name) for name in DIMENSIONS if name in given.model_fields_set}


_UNITS = {"kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}
NO_LIMIT_WORDS = ("none", "unlimited", "null")


def parse_assignment(text: str) -> tuple[str, int | None]:
    """``DIMENSION=LIMIT``, as `axme quota set` and `axme server --quota` take it: LIMIT a whole number (byte
    dimensions may say 128KiB, 1GB ...), or none / unlimited for no limit. ValueError says what is wrong."""
    name, sep, raw = text.partition("=")
    name = ALIASES.get(name.strip(), name.strip())
    if not sep:
        raise ValueError(f"{text!r} is not DIMENSION=LIMIT (e.g. intents_per_day=500)")
    if name not in DIMENSIONS:
        raise ValueError(f"{name!r} is not a quota dimension; one of {', '.join(DIMENSIONS)}")
    value = raw.strip().lower().replace("_", "")
    if value in NO_LIMIT_WORDS:
        return name, None
    number, unit = value, 1
    if name.endswith("_bytes"):
        for suffix in sorted(_UNITS, key=len, reverse=True):
            if value.endswith(suffix):
                number, unit = value[: -len(suffix)].strip(), _UNITS[suffix]
                break
    if not number.isdigit() or not number.isascii():
        units = " (or with KB, MB, GB, KiB, MiB, GiB)" if name.endswith("_bytes") else ""
        raise ValueError(f"{name}: {raw.strip()!r} is not a whole number{units}, or none for no limit")
    limit = int(number) * unit
    if limit > MAX_LIMIT:
        raise ValueError(f"{name}: {limit} is more than {MAX_LIMIT}")
    return name, limit

"""An intent's controls and policy on the wire (``POST /v1/intents/{id}/controls`` and ``/policy``: AXME's
``UpdateIntentControlsRequest`` / ``UpdateIntentPolicyRequest``, axme-reference.md §2.2).

Controls move the intent's timers: its deadline (``timeout_seconds`` from now, or ``deadline_at``; ``null``
removes it), how many delivery attempts it gets (``max_delivery_attempts``, or ``max_retries`` after the first),
and how long the runtime waits for an agent before delivering again (``retry_backoff_seconds``). The policy's
``envelope_patch`` says the same in the envelope's words; its ``grants_patch`` names who else may act on the
intent: ``{"delegate:<agent address or email>": {"allow": ["resume", "update_controls", "update_policy"]}}``
(``null`` or an empty ``allow`` takes a grant back). Both carry ``expected_policy_generation``: the change is
made only if the intent's ``policy_generation`` (0, then one more per change) is still that.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StringConstraints, model_validator

from axme_cli.protocol.models import MAX_SECONDS, DateTime, JsonInt, Seconds

GRANT_ACTIONS = ("resume", "update_controls", "update_policy")
GRANT_PREFIX = "delegate:"
MAX_GRANTS = 64  # per intent
MAX_ATTEMPTS = 1_000_000  # as max_delivery_attempts at create

def _json_number(value: Any) -> Any:
    """A JSON number (not "3" or true, which pydantic's lax mode would take)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    return value


# How long the runtime waits for the agent before it delivers again: fractions of a second allowed, as in
# `axme dev --redelivery-seconds`.
Backoff = Annotated[float, BeforeValidator(_json_number), Field(ge=0.1, le=MAX_SECONDS)]
Reason = Annotated[str, StringConstraints(max_length=2000)]
Actor = Annotated[str, StringConstraints(min_length=3, max_length=255)]
Generation = Annotated[JsonInt, Field(ge=0, le=2**53)]


class _Strict(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")


def _one_of(values: dict[str, Any], names: tuple[str, ...], where: str) -> None:
    given = [n for n in names if n in values]
    if len(given) > 1:
        raise ValueError(f"{where}: give one of {', '.join(given)}, not several (each sets the same thing)")


class ControlsPatch(_Strict):
    timeout_seconds: Seconds | None = None
    deadline_at: DateTime | None = None
    max_delivery_attempts: Annotated[JsonInt, Field(ge=1, le=MAX_ATTEMPTS)] | None = None
    max_retries: Annotated[JsonInt, Field(ge=0, le=MAX_ATTEMPTS - 1)] | None = None
    retry_backoff_seconds: Backoff | None = None

    @model_validator(mode="before")
    @classmethod
    def _exclusive(cls, values: Any) -> Any:
        if isinstance(values, dict):
            _one_of(values, ("timeout_seconds", "deadline_at"), "controls_patch")
            _one_of(values, ("max_delivery_attempts", "max_retries"), "controls_patch")
        return values


class ControlsRequest(_Strict):
    """``UpdateIntentControlsRequest`` (the gateway's OpenAPI)."""

    controls_patch: ControlsPatch
    actor: Actor | None = None
    reason: Reason | None = None
    expected_policy_generation: Generation | None = None
    internal_scheduler: StrictBool = False  # AXME's own scheduler's flag: accepted, grants nothing here


class EnvelopePatch(_Strict):
    max_retry_count: Annotated[JsonInt, Field(ge=0, le=MAX_ATTEMPTS - 1)] | None = None
    retry_backoff_seconds: Backoff | None = None
    execution_timeout_seconds: Seconds | None = None  # from now
    ttl_seconds: Seconds | None = None  # from the intent's creation
    expires_at: DateTime | None = None

    @model_validator(mode="before")
    @classmethod
    def _exclusive(cls, values: Any) -> Any:
        if isinstance(values, dict):
            _one_of(values, ("execution_timeout_seconds", "ttl_seconds", "expires_at"), "envelope_patch")
        return values


class Grant(_Strict):
    allow: Annotated[list[Literal["resume", "update_controls", "update_policy"]], Field(max_length=3)]


GrantKey = Annotated[str, StringConstraints(min_length=len(GRANT_PREFIX) + 3, max_length=len(GRANT_PREFIX) + 383)]


class PolicyRequest(_Strict):
    """``UpdateIntentPolicyRequest`` (the gateway's OpenAPI)."""

    grants_patch: Annotated[dict[GrantKey, Grant | None], Field(max_length=MAX_GRANTS)] | None = None
    envelope_patch: EnvelopePatch | None = None
    actor: Actor | None = None
    reason: Reason | None = None
    expected_policy_generation: Generation | None = None
    internal_scheduler: StrictBool = False  # as on ControlsRequest


__all__ = ["GRANT_ACTIONS", "GRANT_PREFIX", "MAX_GRANTS", "MAX_SECONDS", "ControlsRequest", "PolicyRequest"]

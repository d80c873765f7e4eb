"""``POST /v1/deliveries`` on the wire (axp-spec ``api.deliveries.submit.request.v1``)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints


def _text(low: int, high: int) -> Any:
    return Annotated[str, StringConstraints(min_length=low, max_length=high)]


class DeliverySubmitRequest(BaseModel):
    """A payload for an agent with the http binding. ``principal_id`` (or ``alias``) names the agent: its address
    or bare name (both given: they must name the same agent). ``org_id`` / ``workspace_id`` may be left out;
    given, they must be this runtime's."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    org_id: _text(1, 255) | None = None  # type: ignore[valid-type]
    workspace_id: _text(1, 255) | None = None  # type: ignore[valid-type]
    payload: dict[str, Any]
    alias: _text(3, 383) | None = None  # type: ignore[valid-type]
    principal_id: _text(3, 383) | None = None  # type: ignore[valid-type]
    correlation_id: _text(3, 255) | None = None  # type: ignore[valid-type]
    idempotency_key: _text(4, 255) | None = None  # type: ignore[valid-type]


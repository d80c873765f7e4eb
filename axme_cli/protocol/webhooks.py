"""Outbound HTTP on the wire: webhook request bodies (axp-spec ``api.webhooks.*``), the http binding's
delivery config, and the signature both send (``X-Axme-Signature: sha256=<hex HMAC-SHA256 of the raw body>``)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, field_validator

# The event types a webhook subscription may name and a publisher may send (the spec's enum).
EVENT_TYPES = (
    "inbox.thread_created",
    "inbox.thread_updated",
    "inbox.reply_received",
    "invite.accepted",
    "auth.session_revoked",
)
EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]
DELIVERY_MODES = ("stream", "poll", "http", "inbox")

SIGNATURE_HEADER = "X-Axme-Signature"
Secret = Annotated[str, StringConstraints(min_length=16, max_length=128)]
CallbackUrl = Annotated[str, StringConstraints(min_length=8, max_length=2048)]


def sign(secret: str, body: bytes) -> str:
    """The ``X-Axme-Signature`` value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return value


class SubscriptionRequest(BaseModel):
    """``api.webhooks.subscriptions.upsert.request.v1``."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    callback_url: CallbackUrl
    event_types: Annotated[list[EventType], Field(min_length=1, max_length=32)]
    secret: Secret | None = None
    active: StrictBool = True
    description: Annotated[str, StringConstraints(max_length=255)] | None = None

    @field_validator("callback_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)


class EventRequest(BaseModel):
    """``api.webhooks.events.request.v1``."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    event_type: EventType
    source: Annotated[str, StringConstraints(min_length=2, max_length=100)]
    payload: dict[str, Any]


class DeliveryConfigRequest(BaseModel):
    """``PATCH /v1/service-accounts/{id}/delivery`` (AXME CLI PR #38): how an agent gets its intents."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    delivery_mode: Literal[DELIVERY_MODES]  # type: ignore[valid-type]
    callback_url: CallbackUrl | None = None
    delivery_secret: Secret | None = None  # else one is generated when the agent first becomes http
    rotate_secret: StrictBool = False

    @field_validator("callback_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)

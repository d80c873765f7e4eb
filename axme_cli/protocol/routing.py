"""Principals, aliases, routing endpoints and transport bindings on the wire (axp-spec ``api.principals.*``,
``api.aliases.*``, ``api.routing.*``, ``api.transports.bindings.*``; the gateway's request models).

What the runtime can do with a route decides what it takes: an intent is delivered over ``http`` (a POST to the
URL, ``webhook`` the same), signed with ``X-Axme-Signature`` (``signed_key``) or not at all (``none``). Transports
and auth modes it cannot run here (``matrix``, ``queue``; ``mtls``, ``jwt``) are refused with 422 naming the field
and what is accepted, rather than stored and never used.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from axme_cli.protocol.models import JsonInt

PRINCIPAL_TYPES = ("user", "service_agent", "service_account")
PRINCIPAL_STATUSES = ("active", "suspended", "inactive")
ALIAS_TYPES = ("communication", "service", "external")
ALIAS_STATUSES = ("active", "revoked")
TRANSPORT_TYPES = ("matrix", "http", "queue", "webhook")  # the gateway's
DELIVERABLE_TRANSPORTS = ("http", "webhook")  # what this runtime delivers over: a signed POST to a URL
AUTH_MODES = ("mtls", "jwt", "signed_key", "none")  # the gateway's
DELIVERABLE_AUTH_MODES = ("signed_key", "none")
FAILOVER_POLICIES = ("none", "same_region", "cross_region")
HEALTH_STATUSES = ("healthy", "degraded", "unhealthy", "unknown")
ROUTE_STATUSES = ("active", "inactive", "draining")
BINDING_STATUSES = ("active", "inactive")
RESOLVER_CHAIN = ("alias", "principal_id", "endpoint_route", "transport_dispatch")


def _text(low: int, high: int) -> Any:
    return Annotated[str, StringConstraints(min_length=low, max_length=high)]


Scope = _text(1, 255)  # org_id / workspace_id: this runtime's names (may be left out; given, they must match)
PrincipalRef = _text(5, 64)  # a principal's id, or an agent's address or bare name
Metadata = Annotated[dict[str, Any], Field(max_length=64)]
Priority = Annotated[JsonInt, Field(ge=1, le=10_000)]


def http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return value


class PrincipalCreateRequest(BaseModel):
    """``api.principals.create.request.v1``, plus ``address``: the agent this principal receives as (a bare name
    or ``agent://`` address of this workspace; an existing agent may be registered so). Without it, the principal
    gets an address of its own, ``agent://<org>/<workspace>/principal-<id>``."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    org_id: Scope | None = None  # type: ignore[valid-type]
    workspace_id: Scope | None = None  # type: ignore[valid-type]
    principal_type: Literal[PRINCIPAL_TYPES]  # type: ignore[valid-type]
    display_name: _text(1, 255) | None = None  # type: ignore[valid-type]
    metadata: Metadata | None = None
    address: _text(2, 255) | None = None  # type: ignore[valid-type]


class AliasBindRequest(BaseModel):
    """``api.aliases.bind.request.v1``."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    principal_id: PrincipalRef  # type: ignore[valid-type]
    alias: _text(3, 255)  # type: ignore[valid-type]
    alias_type: Literal[ALIAS_TYPES]  # type: ignore[valid-type]
    metadata: Metadata | None = None


class RoutingEndpointRegisterRequest(BaseModel):
    """``api.routing.endpoints.register.request.v1``."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    principal_id: PrincipalRef  # type: ignore[valid-type]
    transport_type: Literal[TRANSPORT_TYPES]  # type: ignore[valid-type]
    endpoint_url: _text(8, 4096)  # type: ignore[valid-type]
    auth_mode: Literal[AUTH_MODES]  # type: ignore[valid-type]
    region: _text(2, 64) | None = None  # type: ignore[valid-type]
    cluster_id: _text(2, 128) | None = None  # type: ignore[valid-type]
    failover_policy: Literal[FAILOVER_POLICIES] = "none"  # type: ignore[valid-type]
    priority: Priority = 100
    metadata: Metadata | None = None

    @field_validator("endpoint_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return http_url(value)


class RoutingEndpointUpdateRequest(BaseModel):
    """``api.routing.endpoints.update.request.v1``: only the fields given change."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    endpoint_url: _text(8, 4096) | None = None  # type: ignore[valid-type]
    auth_mode: Literal[AUTH_MODES] | None = None  # type: ignore[valid-type]
    region: _text(2, 64) | None = None  # type: ignore[valid-type]
    cluster_id: _text(2, 128) | None = None  # type: ignore[valid-type]
    failover_policy: Literal[FAILOVER_POLICIES] | None = None  # type: ignore[valid-type]
    priority: Priority | None = None
    health_status: Literal[HEALTH_STATUSES] | None = None  # type: ignore[valid-type]
    status: Literal[ROUTE_STATUSES] | None = None  # type: ignore[valid-type]
    metadata: Metadata | None = None

    @field_validator("endpoint_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)


class RoutingResolveRequest(BaseModel):
    """``api.routing.resolve.request.v1``: ``alias`` or ``principal_id`` (an agent's address or name too)."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    org_id: Scope | None = None  # type: ignore[valid-type]
    workspace_id: Scope | None = None  # type: ignore[valid-type]
    alias: _text(3, 255) | None = None  # type: ignore[valid-type]
    principal_id: PrincipalRef | None = None  # type: ignore[valid-type]


class TransportBindingUpsertRequest(BaseModel):
    """``api.transports.bindings.upsert.request.v1``: one binding per principal and transport (a second upsert
    of the same pair changes it). For ``http`` / ``webhook`` the handle is the URL intents are POSTed to."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    principal_id: PrincipalRef  # type: ignore[valid-type]
    transport_type: Literal[TRANSPORT_TYPES]  # type: ignore[valid-type]
    transport_handle: _text(2, 255)  # type: ignore[valid-type]
    priority: Priority = 100
    status: Literal[BINDING_STATUSES] = "active"  # type: ignore[valid-type]
    metadata: Metadata | None = None

"""Which organization and workspace a request acts in.

The runtime's settings name its default pair (``settings.org`` / ``settings.workspace``); a credential of another
workspace (a workspace admin key made for it, or a key of one of its service accounts) carries its own pair on the
``Principal``. ``settings_for`` gives the settings a request acts with, so the engine's uses of ``s.org`` /
``s.workspace`` (addresses it makes, rows it stamps) follow the caller; for the default workspace it is the runtime's
own settings object, at no cost. ``owns`` is the check every read of a scoped row makes.

Rows of the intent families (intents and what hangs off them, webhook subscriptions, events and outbound
deliveries) carry NULL for the default pair, as ``api_keys`` does: ``pair`` is what such a row made in the
workspace of ``s`` carries, ``belongs`` the check of one read by id (``Principal.may_see`` makes it for intents).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Pair as Pair

# Rows that name their workspace as ``api_keys`` does (``schedules``, ``audit_events``, the intent families) carry a
# ``Pair``: NULL for the runtime's default one, so rows made before the runtime served several workspaces need no
# backfill. A credential carries the same convention (``Principal.org_id`` None for the default workspace), so
# these compare with no settings.


def settings_for(settings: Settings, principal: Principal) -> Settings:
    """The settings of the caller's workspace: the runtime's own ones unless the credential is another's."""
    if principal.workspace_id is None or principal.org_id is None:
        return settings
    return dataclasses.replace(settings, org=principal.org_id, workspace=principal.workspace_id, scoped=True)


def settings_of(settings: Settings, row: Mapping[str, Any]) -> Settings:
    """The settings of the workspace a row of the intent families belongs to, from the runtime's own ones
    (background work: a timer acts in its intent's workspace)."""
    if row.get("workspace_id") is None:
        return settings
    return dataclasses.replace(settings, org=row["org_id"], workspace=row["workspace_id"], scoped=True)


def pair(s: Settings) -> Pair:
    """``(org_id, workspace_id)`` of a row of the intent families made in the workspace of ``s``: NULLs for the
    runtime's default one."""
    return (s.org, s.workspace) if s.scoped else (None, None)


def stamp(s: Settings) -> dict[str, str]:
    """The columns a new row of the intent families made in the workspace of ``s`` adds: none for the default
    one (NULL)."""
    return {"org_id": s.org, "workspace_id": s.workspace} if s.scoped else {}


def stamp_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """The columns that put a new row in the workspace of ``row`` (a delivery of an event, a replay)."""
    return {"org_id": row["org_id"], "workspace_id": row["workspace_id"]} if row.get("workspace_id") else {}


def owns(s: Settings, row: Mapping[str, Any]) -> bool:
    """Whether a row with ``org_id`` / ``workspace_id`` columns belongs to the workspace of ``s``."""
    return row["org_id"] == s.org and row["workspace_id"] == s.workspace


def segments(address: str) -> tuple[str, str] | None:
    """The organization and workspace an ``agent://`` or ``initiator://`` address names (None: no such two)."""
    _, sep, rest = address.partition("://")
    parts = rest.split("/")
    if not sep or len(parts) < 3 or not parts[0] or not parts[1]:
        return None
    return parts[0], parts[1]


def principal_pair(principal: Principal) -> Pair:
    """The stored pair of the caller's workspace: (None, None) for the runtime's default one."""
    return principal.org_id, principal.workspace_id


def belongs(principal: Principal, row: Mapping[str, Any] | None) -> bool:
    """Whether a row stored with a nullable pair (``principal_pair``) is of the caller's workspace; None: no row."""
    return row is not None and (row.get("org_id"), row.get("workspace_id")) == principal_pair(principal)


"""Who a request's credential stands for: an API key (workspace or service account) or a person's access token,
resolved through the store and cached for a few seconds, then held to the per-key rate limit."""

from __future__ import annotations

import dataclasses
from typing import Any

from axme_cli.runtime import principals as pr
from axme_cli.runtime.clock import SYSTEM, Clock, iso, parse_iso
from axme_cli.runtime.engine import auth as auth_engine
from axme_cli.runtime.engine import orgs
from axme_cli.runtime.errors import Forbidden, Unauthorized
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.ratelimit import KeyLimit
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Reads


class Authenticator:
    def __init__(self, reads: Reads, settings: Settings, clock: Clock = SYSTEM) -> None:
        self._reads = reads
        self._settings = settings
        self._clock = clock
        # cleared after a commit that changed keys or sessions (Runtime's on_commit)
        self.keys = pr.KeyCache(clock=clock)
        rate = settings.rate_limit_per_second
        self._limit = KeyLimit(rate, clock) if rate > 0 else None

    async def authenticate(self, token: str | None, *, elsewhere_ok: bool = False,
                           person_anywhere: bool = False) -> Principal:
        """The principal of ``token`` (Unauthorized if none), within its rate limit (TooManyRequests past it).

        A key of a workspace other than the runtime's default one works only where ``elsewhere_ok`` (the routes of
        organizations and workspaces, of service accounts and their keys, the agent directory, the governance
        families, the intent families, media, schemas and whoami, which act in the caller's workspace:
        ``runtime/scope.py``): the others (users, invites, metrics) serve the default workspace alone (403).
        ``person_anywhere``: a person acting in any workspace may call it (their own login sessions, which are the
        runtime's, not a workspace's), a key of another workspace may not."""
        principal = await self._principal(token)
        if principal.elsewhere and not elsewhere_ok and not (person_anywhere and principal.is_actor):
            whose = "you act in" if principal.is_actor else "this key is"
            raise Forbidden(f"{whose} workspace {principal.workspace_id}; this route serves the runtime's default "
                            "workspace only (users and their nicks, invites and metrics are the runtime's, not a "
                            "workspace's; every other workspace has the organization, service-account, agent, "
                            "governance and intent routes, media, schemas and whoami; use the default workspace's "
                            "admin key here, or select the default workspace: `axme workspace use`)",
                            code="workspace_not_served")
        if self._limit is not None:
            self._limit.take(principal.key_id)
        return principal

    async def _principal(self, token: str | None) -> Principal:
        if not token:
            raise Unauthorized("missing API key: send x-api-key or Authorization: Bearer <key>", code="missing_api_key")
        token_hash = pr.hash_token(token)
        cached = self.keys.get(token_hash)
        if cached is not None:
            return cached
        session_token = pr.parse_session_token(token)
        if session_token is not None:
            actor = await self._actor(token_hash, *session_token)
            if actor is not None:
                return actor
        lookups = sorted({pr.lookup_of(token), pr.CUSTOM_LOOKUP})
        found = None
        for row in await self._reads.keys_by_lookup(lookups):
            if pr.matches(token_hash, row["hash"]):
                found = row
        if found is None and session_token is not None:
            raise Unauthorized("unknown or revoked access token; run `axme login`", code="invalid_actor_token")
        if found is None:
            raise Unauthorized("invalid or revoked API key", code="invalid_platform_api_key")
        principal = await self.key_principal(found)
        valid_for = None
        if found["expires_at"]:  # a cached key must not outlive its expiry
            valid_for = parse_iso(found["expires_at"]) - self._clock.time()
        self.keys.put(token_hash, principal, valid_for=valid_for)
        return principal

    async def key_principal(self, found: dict[str, Any]) -> Principal:
        """Who an API key's row (``kind``, ``status``, ``expires_at``, ...) stands for, if it still works: also
        used by the dashboard, whose sessions keep the key's id, never the key."""
        if found["status"] != "active":
            raise Unauthorized("invalid or revoked API key", code="invalid_platform_api_key")
        if found["expires_at"] and found["expires_at"] <= iso(self._clock.time()):
            raise Unauthorized("this API key has expired", code="token_expired")
        if found["kind"] == "workspace":
            if found.get("workspace_id"):
                org, workspace = found["org_id"], found["workspace_id"]
                return Principal("workspace", found["key_id"], f"initiator://{org}/{workspace}/admin",
                                 org_id=org, workspace_id=workspace)
            return Principal("workspace", found["key_id"], self._settings.admin_address)
        sa = await self._reads.get_service_account(found["service_account_id"])
        if sa is None or sa["status"] != "active":
            raise Unauthorized("the service account of this key was deleted", code="invalid_platform_api_key")
        if (sa["org_id"], sa["workspace_id"]) != (self._settings.org, self._settings.workspace):
            return Principal("service_account", found["key_id"], sa["address"], sa["service_account_id"],
                             org_id=sa["org_id"], workspace_id=sa["workspace_id"])
        return Principal("service_account", found["key_id"], sa["address"], sa["service_account_id"])

    async def _actor(self, token_hash: str, kind: str, token_id: str) -> Principal | None:
        """A person's access token (``axme_at_...``); None when no session token has this id."""
        row = await self._reads.session_token(token_id)
        if row is None or not pr.matches(token_hash, row["hash"]):
            return None
        if kind != pr.ACCESS or row["kind"] != pr.ACCESS:
            raise Unauthorized("a refresh token is not an access token; send it to POST /v1/auth/refresh",
                               code="invalid_actor_token")
        if row["session_revoked_at"] is not None:
            raise Unauthorized("this session was revoked; run `axme login`", code="invalid_actor_token")
        left = row["expires_ts"] - self._clock.time()
        if left <= 0:
            raise Unauthorized("the access token has expired; refresh it (POST /v1/auth/refresh)",
                               code="token_expired")
        person = Principal("actor", row["actor_id"], "", email=row["email"], session_id=row["session_id"])
        principal = await self.selected(person, row["org_id"], row["workspace_id"])
        self.keys.put(token_hash, principal, valid_for=left)
        return principal

    async def selected(self, person: Principal, org_id: str | None, workspace_id: str | None) -> Principal:
        """A person acting in the workspace selected for their session (POST /v1/portal/personal/workspace-selection,
        or the dashboard's switcher): its pair on the principal, their address in it. The selection lapses (the
        runtime's default workspace again) once they no longer have an active membership there; a change of a
        membership empties the key cache (``Tx.update_member``), so that is seen at the next request."""
        s = self._settings
        default = Principal("actor", person.key_id, auth_engine.actor_address(s, str(person.email)),
                            email=person.email, session_id=person.session_id)
        if org_id is None or workspace_id is None or (org_id, workspace_id) == orgs.default_pair(s):
            return default
        if not orgs.may_act_in(await self._reads.actor_memberships(orgs.actor_keys(person), org_id), workspace_id):
            return default
        scoped = dataclasses.replace(s, org=org_id, workspace=workspace_id)
        return dataclasses.replace(default, address=auth_engine.actor_address(scoped, str(person.email)),
                                   org_id=org_id, workspace_id=workspace_id)

"""The CLI's one HTTP client (httpx): one typed method per route of the runtime; every transport and HTTP error
becomes a CliError (of the kind its status says) here."""

from __future__ import annotations

import contextlib
import functools
import ssl
import time
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from axme_cli import __version__
from axme_cli.client import sse
from axme_cli.client.lean_httpx import httpx
from axme_cli.errors import AuthError, CliError, ConflictError, NotFoundError, UnreachableError, WaitTimeout

if TYPE_CHECKING:
    from axme_cli.config.resolve import Target

REFRESH_CODES = {"token_expired", "invalid_actor_token", "missing_actor_token"}


@functools.cache
def _verified_tls() -> ssl.SSLContext:
    """One verifying context per process (certifi's CAs, or SSL_CERT_FILE/SSL_CERT_DIR as httpx reads them):
    httpx would build one for every client it makes, loading the CA bundle each time (~20 ms of CPU)."""
    return httpx.create_ssl_context()


def _tls_for(base_url: str) -> ssl.SSLContext:
    """The TLS context of a client of ``base_url``. A client sends requests only to paths under its base URL and
    follows no redirect, so one of an http:// runtime (``axme dev`` on loopback) never makes a TLS connection:
    it gets a context that trusts no certificate (any handshake would fail, closed) instead of paying for the CA
    bundle on every command."""
    if base_url.lower().startswith("https:"):
        return _verified_tls()
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


class Client:
    def __init__(self, base_url: str, api_key: str | None = None, *, actor_token: str | None = None,
                 timeout: float = 60.0, target: Target | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.target = target
        self.api_key = api_key
        self.actor_token = actor_token
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, verify=_tls_for(self.base_url),
                                  headers={"accept": "application/json",
                                           "X-Axme-Client": f"axme-cli-py/{__version__}"})
        self._apply_auth()

    @classmethod
    def for_target(cls, target: Target, timeout: float = 60.0) -> Client:
        return cls(target.base_url, target.api_key, actor_token=target.actor_token, timeout=timeout, target=target)

    def _apply_auth(self) -> None:
        for name in ("x-api-key", "authorization"):
            self._http.headers.pop(name, None)
        if self.api_key:
            self._http.headers["x-api-key"] = self.api_key
        if self.actor_token:
            self._http.headers["authorization"] = f"Bearer {self.actor_token}"
        elif self.api_key:
            self._http.headers["authorization"] = f"Bearer {self.api_key}"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ transport errors, in one place
    @contextlib.contextmanager
    def _mapped(self) -> Iterator[None]:
        try:
            yield
        except httpx.ConnectError:
            raise UnreachableError(f"cannot reach {self.base_url}", fix="start it with `axme dev`",
                                   code="unreachable") from None
        except httpx.TimeoutException:
            raise UnreachableError(f"{self.base_url} did not answer in time", fix="check it with `axme status`",
                                   code="timeout") from None
        except httpx.HTTPError as exc:
            raise CliError(f"request to {self.base_url} failed: {exc}", code="transport_error") from None

    # ------------------------------------------------------------------ requests
    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                headers: dict[str, str] | None = None, expect: tuple[int, ...] = ()) -> Any:
        self._refresh_if_due()
        with self._mapped():
            response = self._http.request(method, path, json=json, params=params, headers=headers)
        if response.status_code == 401 and self._refresh_on(response):
            with self._mapped():
                response = self._http.request(method, path, json=json, params=params, headers=headers)
        if response.status_code in expect:
            return _json_or_none(response)
        return self.parse(response)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)

    # ------------------------------------------------------------------ routes: the runtime
    def health(self) -> dict[str, Any]:
        return dict(self.get("/health"))

    # ------------------------------------------------------------------ routes: intents
    def create_intent(self, body: dict[str, Any], *, idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return dict(self.post("/v1/intents", json=body, headers=headers))

    def list_intents(self, *, limit: int, before: str | None = None,
                     **filters: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """A page of intents, newest first, and the cursor of the next page (None after the last). ``filters``:
        status (comma separated), intent_type, agent, created_after, created_before, id_prefix."""
        params: dict[str, Any] = {"limit": limit, "before": before, **filters}
        body = self.get("/v1/intents", params={k: v for k, v in params.items() if v is not None})
        return list(body.get("intents", [])), body.get("next_cursor")

    def get_intent(self, intent_id: str) -> dict[str, Any]:
        """``{ok, intent}``."""
        return dict(self.get(f"/v1/intents/{intent_id}"))

    def intent_events(self, intent_id: str) -> list[dict[str, Any]]:
        return list(self.get(f"/v1/intents/{intent_id}/events")["events"])

    def resolve_intent(self, intent_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.post(f"/v1/intents/{intent_id}/resolve", json=body))

    def resume_intent(self, intent_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.post(f"/v1/intents/{intent_id}/resume", json=body))

    def update_intent_controls(self, intent_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``{ok, applied, policy_generation, intent, event}``."""
        return dict(self.post(f"/v1/intents/{intent_id}/controls", json=body))

    def update_intent_policy(self, intent_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.post(f"/v1/intents/{intent_id}/policy", json=body))

    def bulk_cancel(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.post("/v1/intents/bulk-cancel", json=body))

    def my_tasks(self) -> list[dict[str, Any]]:
        return list(self.get("/v1/me/tasks")["tasks"])

    def apply_scenario(self, bundle: dict[str, Any]) -> dict[str, Any]:
        return dict(self.post("/v1/scenarios/apply", json=bundle))

    # ------------------------------------------------------------------ routes: the test clock
    def advance_clock(self, seconds: float) -> dict[str, Any]:
        """``{ok, now}``: move the test clock of `axme dev --test-clock` (a NotFoundError on any other runtime)."""
        return dict(self.post("/dev/clock/advance", json={"seconds": seconds}))

    # ------------------------------------------------------------------ routes: agents and their keys
    def list_agents(self, *, limit: int) -> list[dict[str, Any]]:
        return list(self.get("/v1/agents", params={"limit": limit}).get("agents", []))

    def get_agent(self, address_path: str) -> dict[str, Any]:
        """``{ok, agent}`` for an address already in its path form (see cli.agents.agent_path)."""
        return dict(self.get(f"/v1/agents/{address_path}"))

    def list_service_accounts(self) -> list[dict[str, Any]]:
        return list(self.get("/v1/service-accounts")["service_accounts"])

    def get_service_account(self, sa_id: str) -> dict[str, Any]:
        return dict(self.get(f"/v1/service-accounts/{quote(sa_id, safe='')}"))

    def create_service_account(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.post("/v1/service-accounts", json=body))

    def delete_service_account(self, sa_id: str) -> dict[str, Any]:
        return dict(self.delete(f"/v1/service-accounts/{sa_id}"))

    def create_key(self, sa_id: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return dict(self.post(f"/v1/service-accounts/{sa_id}/keys", json=body or {}))

    def revoke_key(self, sa_id: str, key_id: str) -> dict[str, Any]:
        return dict(self.post(f"/v1/service-accounts/{sa_id}/keys/{quote(key_id, safe='')}/revoke", json={}))

    # ------------------------------------------------------------------ routes: sign-in
    def whoami(self) -> dict[str, Any]:
        return dict(self.get("/v1/auth/whoami"))

    def logout(self) -> dict[str, Any]:
        return dict(self.post("/v1/auth/logout", json={}))

    def request_login_code(self, email: str) -> dict[str, Any] | None:
        """The answer, also when it is a refusal (403 not allowed, 429 too many): the caller explains it."""
        return self.post("/v1/auth/login-intent", json={"email": email}, expect=(403, 429))

    def verify_login_code(self, login_intent_id: str, code: str) -> dict[str, Any] | None:
        """The answer, also when the code or login intent is refused (404, 409, 410, 422)."""
        return self.post(f"/v1/auth/login-intent/{login_intent_id}/verify",
                         json={"code": code}, expect=(404, 409, 410, 422))

    # ------------------------------------------------------------------ routes: webhooks
    def list_subscriptions(self, *, owner_agent: str | None) -> list[dict[str, Any]]:
        return list(self.get("/v1/webhooks/subscriptions", params=_owner(owner_agent))["subscriptions"])

    def create_subscription(self, body: dict[str, Any], *, owner_agent: str | None) -> dict[str, Any]:
        return dict(self.post("/v1/webhooks/subscriptions", json=body, params=_owner(owner_agent)))

    def delete_subscription(self, subscription_id: str) -> dict[str, Any]:
        return dict(self.delete(f"/v1/webhooks/subscriptions/{subscription_id}"))

    def publish_event(self, body: dict[str, Any], *, owner_agent: str | None) -> dict[str, Any]:
        return dict(self.post("/v1/webhooks/events", json=body, params=_owner(owner_agent)))

    def replay_event(self, event_id: str) -> dict[str, Any]:
        return dict(self.post(f"/v1/webhooks/events/{event_id}/replay"))

    def list_deliveries(self, **filters: Any) -> list[dict[str, Any]]:
        params = {k: v for k, v in filters.items() if v is not None}
        return list(self.get("/v1/webhooks/deliveries", params=params)["deliveries"])

    # ------------------------------------------------------------------ routes: the agent mesh
    def mesh_agents(self, *, limit: int, health: str | None = None,
                    status: str | None = None) -> dict[str, Any]:
        """``{ok, agents, total, summary, health_rules}``."""
        params = {k: v for k, v in (("limit", limit), ("health", health), ("status", status)) if v is not None}
        return dict(self.get("/v1/mesh/agents", params=params))

    def mesh_agent(self, agent: str) -> dict[str, Any]:
        """``{ok, agent, events}``; ``agent``: a name, an address or a service-account id."""
        return dict(self.get(f"/v1/mesh/agents/{quote(agent, safe='')}"))

    def mesh_kill(self, agent: str, *, reason: str | None = None) -> dict[str, Any]:
        """``{ok, changed, agent}``."""
        return dict(self.post(f"/v1/mesh/agents/{quote(agent, safe='')}/kill",
                              json={"reason": reason} if reason else None))

    def mesh_resume(self, agent: str, *, reason: str | None = None) -> dict[str, Any]:
        """``{ok, changed, agent}``."""
        return dict(self.post(f"/v1/mesh/agents/{quote(agent, safe='')}/resume",
                              json={"reason": reason} if reason else None))

    def mesh_events(self, *, limit: int, event_type: str | None = None, agent: str | None = None,
                    before: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """A page of mesh events, newest first, and the cursor of the next page (None after the last)."""
        params = {k: v for k, v in (("limit", limit), ("event_type", event_type), ("address_id", agent),
                                    ("before", before)) if v is not None}
        body = self.get("/v1/mesh/events", params=params)
        return list(body.get("events", [])), body.get("next_before")

    # ------------------------------------------------------------------ routes: schedules
    def create_schedule(self, body: dict[str, Any], *, idempotency_key: str | None = None) -> dict[str, Any]:
        """``{ok, schedule}``."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return dict(self.post("/v1/schedules", json=body, headers=headers))

    def list_schedules(self, *, limit: int, cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """A page of schedules, newest first, and the cursor of the next page (None after the last)."""
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        body = self.get("/v1/schedules", params=params)
        return list(body.get("schedules", [])), body.get("next_cursor")

    def get_schedule(self, schedule_id: str) -> dict[str, Any]:
        return dict(self.get(f"/v1/schedules/{schedule_id}"))

    def pause_schedule(self, schedule_id: str) -> dict[str, Any]:
        return dict(self.post(f"/v1/schedules/{schedule_id}/pause"))

    def resume_schedule(self, schedule_id: str) -> dict[str, Any]:
        return dict(self.post(f"/v1/schedules/{schedule_id}/resume"))

    def trigger_schedule(self, schedule_id: str, *, overlap_policy: str | None = None) -> dict[str, Any]:
        """``{ok, schedule, run: {started, intent_id | skipped}}``."""
        body = {"overlap_policy": overlap_policy} if overlap_policy else None
        return dict(self.post(f"/v1/schedules/{schedule_id}/trigger", json=body))

    def delete_schedule(self, schedule_id: str) -> dict[str, Any]:
        return dict(self.delete(f"/v1/schedules/{schedule_id}"))
    # ------------------------------------------------------------------ routes: the schema registry
    def upsert_schema(self, body: dict[str, Any], *, owner_agent: str | None = None) -> dict[str, Any]:
        """``{ok, schema}`` (without its schema_json)."""
        return dict(self.post("/v1/schemas", json=body, params=_owner(owner_agent)))

    def get_schema(self, semantic_type: str, *, owner_agent: str | None = None) -> dict[str, Any]:
        """``{ok, schema}``: the owner agent's active schema of the type, else the workspace's."""
        return dict(self.get(f"/v1/schemas/{quote(semantic_type, safe='')}", params=_owner(owner_agent)))

    # ------------------------------------------------------------------ routes: quotas and usage
    def enterprise_overview(self) -> dict[str, Any]:
        """``{ok, overview: {quota_policy, usage_summary: {dimensions: {<dim>: {used, limit, ...}}}}}``."""
        return dict(self.get("/v1/portal/enterprise/overview"))

    def create_access_request(self, body: dict[str, Any]) -> dict[str, Any]:
        """``{ok, access_request: {access_request_id, request_type, state, requested_tier, ...}}``."""
        return dict(self.post("/v1/access-requests", json=body))

    def update_quota(self, body: dict[str, Any]) -> dict[str, Any]:
        """``{ok, quota_policy, applies_to, below_current_usage}``."""
        return dict(self.request("PATCH", "/v1/quotas", json=body))

    def usage_summary(self, window: str) -> dict[str, Any]:
        return dict(self.get("/v1/usage/summary", params={"window": window}))

    def usage_timeseries(self, window_days: int) -> dict[str, Any]:
        return dict(self.get("/v1/usage/timeseries", params={"window_days": window_days}))

    def usage_rollup(self, window_days: int) -> dict[str, Any]:
        return dict(self.post("/v1/usage/rollups/daily", params={"window_days": window_days}))

    # ------------------------------------------------------------------ routes: organizations, workspaces
    def personal_context(self) -> dict[str, Any]:
        return dict(self.get("/v1/portal/personal/context"))

    def get_organization(self, org_id: str) -> dict[str, Any]:
        return dict(self.get(f"/v1/organizations/{quote(org_id, safe='')}"))

    def create_organization(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.post("/v1/organizations", json=body))

    def update_organization(self, org_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.request("PATCH", f"/v1/organizations/{quote(org_id, safe='')}", json=body))

    def list_workspaces(self, org_id: str) -> dict[str, Any]:
        return dict(self.get(f"/v1/organizations/{quote(org_id, safe='')}/workspaces"))

    def create_workspace(self, org_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.post(f"/v1/organizations/{quote(org_id, safe='')}/workspaces", json=body))

    def update_workspace(self, org_id: str, workspace_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.request("PATCH", f"/v1/organizations/{quote(org_id, safe='')}/workspaces/"
                                          f"{quote(workspace_id, safe='')}", json=body))

    def select_workspace(self, org_id: str, workspace_id: str) -> dict[str, Any]:
        """``{context, selected_workspace, selected_organization}``: the person's session acts there from now on."""
        return dict(self.post("/v1/portal/personal/workspace-selection",
                              json={"org_id": org_id, "workspace_id": workspace_id}))

    def list_members(self, org_id: str, workspace_id: str | None = None) -> dict[str, Any]:
        params = {"workspace_id": workspace_id} if workspace_id else None
        return dict(self.get(f"/v1/organizations/{quote(org_id, safe='')}/members", params=params))

    def add_member(self, org_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.post(f"/v1/organizations/{quote(org_id, safe='')}/members", json=body))

    def update_member(self, org_id: str, member_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.request("PATCH", f"/v1/organizations/{quote(org_id, safe='')}/members/"
                                          f"{quote(member_id, safe='')}", json=body))

    def remove_member(self, org_id: str, member_id: str) -> dict[str, Any]:
        return dict(self.delete(f"/v1/organizations/{quote(org_id, safe='')}/members/{quote(member_id, safe='')}"))

    def include_member(self, workspace_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.post(f"/v1/workspaces/{quote(workspace_id, safe='')}/members/include", json=body))

    def exclude_member(self, workspace_id: str, member_id: str) -> dict[str, Any]:
        return dict(self.delete(f"/v1/workspaces/{quote(workspace_id, safe='')}/members/"
                                f"{quote(member_id, safe='')}/exclude"))

    # ------------------------------------------------------------------ routes: the inbox (x-owner-agent: whose)
    def list_threads(self, *, owner: str | None, limit: int, status: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        return list(self.get("/v1/inbox", params=params, headers=_as_owner(owner))["threads"])

    def get_thread(self, thread_id: str, *, owner: str | None) -> dict[str, Any]:
        return dict(self.get(f"/v1/inbox/{thread_id}", headers=_as_owner(owner))["thread"])

    def reply_thread(self, thread_id: str, message: str, *, owner: str | None) -> dict[str, Any]:
        return dict(self.post(f"/v1/inbox/{thread_id}/reply", json={"message": message}, headers=_as_owner(owner)))

    def decide_thread(self, thread_id: str, decision: str, comment: str | None, *,
                      owner: str | None) -> dict[str, Any]:
        """``decision``: approve or reject."""
        body = {"comment": comment} if comment else {}
        return dict(self.post(f"/v1/inbox/{thread_id}/{decision}", json=body, headers=_as_owner(owner)))

    # ------------------------------------------------------------------ routes: users (nicks, profiles), invites
    def check_nick(self, nick: str) -> dict[str, Any]:
        return dict(self.get("/v1/users/check-nick", params={"nick": nick}))

    def resolve_nick(self, nick: str) -> dict[str, Any]:
        return dict(self.get("/v1/users/resolve-nick", params={"nick": nick}))

    def register_nick(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.post("/v1/users/register-nick", json=body))

    def rename_nick(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.post("/v1/users/rename-nick", json=body))

    def user_profile(self, owner_agent: str) -> dict[str, Any]:
        return dict(self.get("/v1/users/profile", params={"owner_agent": owner_agent}))

    def update_user_profile(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.post("/v1/users/profile/update", json=body))

    def create_invite(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.post("/v1/invites/create", json=body))

    def get_invite(self, token: str) -> dict[str, Any]:
        return dict(self.get(f"/v1/invites/{quote(token, safe='')}"))

    def accept_invite(self, token: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.post(f"/v1/invites/{quote(token, safe='')}/accept", json=body))
    # ------------------------------------------------------------------ routes: media uploads
    def create_upload(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.post("/v1/media/create-upload", json=body))

    def put_upload(self, upload_url: str, content: Iterator[bytes], size: int) -> dict[str, Any]:
        """PUT the bytes to an upload URL, streamed. Only its path and token are used, sent to this client's
        runtime: the bytes (and the key this client sends) never go to a host the answer named."""
        path = _upload_path(upload_url)
        with self._mapped():
            response = self._http.put(path, content=content, headers={"content-type": "application/octet-stream",
                                                                       "content-length": str(size)})
        return dict(self.parse(response))

    def finalize_upload(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.post("/v1/media/finalize-upload", json=body))

    def get_upload(self, upload_id: str) -> dict[str, Any]:
        """``{ok, upload}``."""
        return dict(self.get(f"/v1/media/{upload_id}"))

    def download_upload(self, upload_id: str) -> Iterator[bytes]:
        """The bytes of a finalized upload, as they arrive."""
        self._refresh_if_due()
        with self._mapped(), self._http.stream("GET", f"/v1/media/download/{upload_id}") as response:
            if response.status_code >= 400:
                response.read()
                self.parse(response)
            yield from response.iter_bytes()

    # ------------------------------------------------------------------ routes: sender policies
    # ``base``: ``policy_base`` of an agent's send policy or receive override, or of the org's receive policy.
    @staticmethod
    def policy_base(*, agent_path: str | None = None, what: str = "policy", org_id: str | None = None) -> str:
        """``/v1/agents/<agent_path>/<what>`` (policy, receive-override), or the org's
        ``/v1/organizations/<org>/receive-policy``."""
        if agent_path is not None:
            return f"/v1/agents/{agent_path}/{what}"
        return f"/v1/organizations/{quote(org_id or '', safe='')}/receive-policy"

    def get_policy(self, base: str) -> dict[str, Any]:
        """``{ok, policy}`` (``{ok, override}`` of a receive override)."""
        return dict(self.get(base))

    def set_policy(self, base: str, body: dict[str, str]) -> dict[str, Any]:
        return dict(self.request("PUT", base, json=body))

    def add_policy_entry(self, base: str, pattern: str) -> dict[str, Any]:
        """``{ok, policy|override, entry, created}``."""
        return dict(self.post(f"{base}/entries", json={"sender_pattern": pattern}))

    def remove_policy_entry(self, base: str, entry_id: str) -> dict[str, Any]:
        return dict(self.delete(f"{base}/entries/{quote(entry_id, safe='')}"))

    # ------------------------------------------------------------------ routes: MCP (JSON-RPC 2.0 over POST /mcp)
    def mcp_call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """One JSON-RPC request to POST /mcp: its answer, ``{"result": ...}`` or ``{"error": {code, message,
        data}}``, whatever the HTTP status that came with it (401, 429 ... carry JSON-RPC errors too). An answer
        that is no JSON-RPC (a runtime without /mcp) is a CliError like any route's."""
        self._refresh_if_due()
        message = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        with self._mapped():
            response = self._http.post("/mcp", json=message)
        if response.status_code == 401 and _rpc_error_code(response) in REFRESH_CODES and self._refresh():
            with self._mapped():
                response = self._http.post("/mcp", json=message)
        answer = _json_or_none(response)
        if isinstance(answer, dict) and answer.get("jsonrpc") == "2.0" and ("result" in answer or "error" in answer):
            return answer
        self.parse(response)
        raise CliError(f"{self.base_url}/mcp answered with something that is not JSON-RPC",
                       fix="check that the URL points at an axme runtime", code="bad_response")

    def mcp_list_tools(self) -> dict[str, Any]:
        return self.mcp_call("tools/list", {})

    def mcp_call_tool(self, name: str, arguments: dict[str, Any], *, owner_agent: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"name": name, "arguments": arguments}
        if owner_agent and "owner_agent" not in arguments:
            params["owner_agent"] = owner_agent
        return self.mcp_call("tools/call", params)

    def follow_intent(self, intent_id: str, *, since: int = 0, wait_seconds: int = 15,
                      follow: bool = False, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Events of one intent as they happen (see client.sse.follow_intent). ``timeout``: seconds until a
        WaitTimeout (exit 1) naming the intent, if it has not ended by then."""
        self._refresh_if_due()
        until = None if timeout is None else time.monotonic() + timeout
        stream = sse.follow_intent(self._http, intent_id, since=since, wait_seconds=wait_seconds, follow=follow,
                                   until=until)
        while True:
            try:
                with self._mapped():
                    event = next(stream)
            except StopIteration:
                return
            except sse.TimedOut:
                raise WaitTimeout(f"intent {intent_id} did not end within {timeout:g} s (it goes on without us)",
                                  fix=f"follow it again with `axme observe {intent_id}`, or cancel it with "
                                      f"`axme intents cancel {intent_id}`") from None
            except sse.StreamRefused as exc:
                self.parse(exc.response)
                return
            yield event

    # ------------------------------------------------------------------ actor-token refresh
    def _refresh_if_due(self) -> None:
        target = self.target
        if target is None or not target.refresh_token:
            return
        expires = target.token_expires_at
        if self.actor_token and expires:
            try:
                left = datetime.fromisoformat(expires.replace("Z", "+00:00")).timestamp() - time.time()
            except ValueError:
                left = 0
            if left > 60:
                return
        self._refresh()

    def _refresh_on(self, response: httpx.Response) -> bool:
        target = self.target
        if target is None or not target.refresh_token:
            return False
        code = _error_code(response)
        if code not in REFRESH_CODES:
            return False
        return self._refresh()

    def _refresh(self) -> bool:
        """Rotate the refresh token once; save both tokens at once (a reused refresh token ends the session)."""
        target = self.target
        assert target is not None
        with self._mapped():
            response = self._http.post("/v1/auth/refresh", json={"refresh_token": target.refresh_token},
                                       headers={"authorization": ""})
        if response.status_code != 200:
            target.refresh_token = None
            return False
        body = response.json()
        target.actor_token = body.get("access_token")
        target.refresh_token = body.get("refresh_token")
        target.token_expires_at = body.get("expires_at")
        self.actor_token = target.actor_token
        self._apply_auth()
        if target.tokens_from_context:
            from axme_cli.config import secrets

            secrets.update(target.context, {"actor_token": target.actor_token,
                                            "refresh_token": target.refresh_token,
                                            "token_expires_at": target.token_expires_at})
        return True

    # ------------------------------------------------------------------ HTTP errors, in one place
    def parse(self, response: httpx.Response) -> Any:
        body = _json_or_none(response)
        status = response.status_code
        if status < 400:
            if body is None:
                raise CliError(f"{self.base_url} answered with something that is not JSON",
                               fix="check that the URL points at an axme runtime", code="bad_response")
            return body
        code = _error_code(response) or f"http_{status}"
        message = _error_message(body) or f"HTTP {status}"
        if code == "quota_exceeded":  # 429, 413 or 409: the message says which quota, how much is used, when it resets
            retry = response.headers.get("retry-after")
            raise CliError(message, code=code, fix=f"retry in {retry} seconds" if retry else
                           "see `axme quota show`; the workspace key raises a limit with `axme quota set`")
        if status == 401:
            raise AuthError(f"not signed in or the key was refused: {message}",
                            fix="run `axme login` (or pass --api-key / set AXME_API_KEY)", code=code)
        if status == 403:
            raise CliError(f"permission denied: {message}", fix="use a key that may do this", code=code)
        if status == 404:
            raise NotFoundError(f"not found: {message}", fix="check the id or name (e.g. `axme intents list`) and the "
                           "context you are using (`axme context show`)", code=code)
        if status == 429:
            retry = response.headers.get("retry-after")
            raise CliError(f"rate limited: {message}", fix=f"retry in {retry or 'a few'} seconds", code=code)
        if status >= 500:
            raise CliError(f"the runtime failed ({status}): {message}", fix="retry shortly; see the runtime's log",
                           code=code)
        if status == 409:
            raise ConflictError(f"request refused ({status}): {message}", code=code)
        raise CliError(f"request refused ({status}): {message}", code=code)


def _upload_path(upload_url: str) -> str:
    """``/v1/media/upload/<id>?token=...`` of an upload URL, whatever base URL the runtime put before it."""
    from urllib.parse import urlsplit

    parts = urlsplit(upload_url)
    start = parts.path.find("/v1/media/upload/")
    if start < 0:
        raise CliError("the runtime answered an upload URL that is not its own", code="bad_response")
    return f"{parts.path[start:]}?{parts.query}"


def _owner(owner_agent: str | None) -> dict[str, str] | None:
    return {"owner_agent": owner_agent} if owner_agent else None


def _as_owner(owner: str | None) -> dict[str, str] | None:
    return {"x-owner-agent": owner} if owner else None


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error_code(response: httpx.Response) -> str | None:
    body = _json_or_none(response)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = body["error"].get("code")
        return code if isinstance(code, str) else None
    return None


def _rpc_error_code(response: httpx.Response) -> str | None:
    """The runtime's own refusal code inside a JSON-RPC error (``error.data.error.code``), if any."""
    body = _json_or_none(response)
    data = body.get("error", {}).get("data") if isinstance(body, dict) and isinstance(body.get("error"), dict) else None
    inner = data.get("error") if isinstance(data, dict) else None
    code = inner.get("code") if isinstance(inner, dict) else None
    return code if isinstance(code, str) else None


def _error_message(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    if isinstance(error, str):
        return error
    detail = body.get("detail")
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        return str(detail[0].get("msg"))
    return None

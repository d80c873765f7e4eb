"""The OpenAPI 3.1 document of the runtime's HTTP API, served as ``GET /openapi.json`` (no key needed).

It is built once, from the Starlette route table (``document(routes)``): every route and method gets the
entry of ``OPERATIONS`` for it, so a route added without one shows up as ``x-undocumented`` (a test fails on
that) and an entry without a route is an error. Request bodies are the pydantic models the routes validate
with (``model_json_schema()``); responses are written here from the views the engine answers. Where an AXP
JSON Schema (axp-spec ``public_api``) describes the same body exactly, the operation names it in
``x-axp-schema`` (tests validate the answers against it too); the spec files are not shipped with the
runtime, so the document never depends on them. Every 4xx/5xx answer has the AXP error shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from starlette.routing import BaseRoute, Route

from axme_cli import __version__
from axme_cli.protocol import lifecycle as lc

Schema = dict[str, Any]
REF = "#/components/schemas/"

# ---------------------------------------------------------------------------------------------
# small schema builders

STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
TRUE: Schema = {"type": "boolean", "const": True}
OBJ: Schema = {"type": "object"}
TIME: Schema = {"type": "string", "format": "date-time"}
UUID: Schema = {"type": "string", "format": "uuid"}
STATUS: Schema = {"type": "string", "enum": list(lc.STATUSES)}
WAITING_REASON: Schema = {"type": ["string", "null"], "enum": [*lc.WAITING_REASONS, None]}


def nullable(schema: Schema) -> Schema:
    kind = schema.get("type")
    if isinstance(kind, str):
        out = {**schema, "type": [kind, "null"]}
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
        return out
    return {"anyOf": [schema, {"type": "null"}]}


def array(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


def obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None, *, closed: bool = False,
        description: str | None = None) -> Schema:
    """An object with these required and optional properties; more properties are allowed unless ``closed``."""
    schema: Schema = {"type": "object", "properties": {**required, **(optional or {})}}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    if description:
        schema["description"] = description
    return schema


def ref(name: str) -> Schema:
    return {"$ref": REF + name}


# ---------------------------------------------------------------------------------------------
# the bodies the runtime answers (components/schemas)

_PENDING_WITH = obj({}, {"type": {"type": "string", "enum": ["agent", "human", "internal"]}, "ref": STR, "name": STR})

_INTENT = obj(
    {
        "intent_id": UUID, "intent_type": STR, "correlation_id": STR, "from_agent": STR, "to_agent": STR,
        "status": STATUS, "lifecycle_status": STATUS,
        "legacy_status": {"type": "string", "enum": sorted(set(lc.LEGACY_STATUS.values()))},
        "created_at": TIME, "updated_at": TIME, "payload": OBJ, "remind_count": {**INT, "minimum": 0},
        "max_delivery_attempts": {**INT, "minimum": 1}, "delivery_attempt": {**INT, "minimum": 0},
        "seq": {**INT, "minimum": 1},
    },
    {
        "waiting_reason": {"type": "string", "enum": list(lc.WAITING_REASONS)},
        "lifecycle_waiting_reason": {"type": "string", "enum": list(lc.WAITING_REASONS)},
        "reply_to": STR, "deadline_at": TIME, "due_at": TIME,
        "remind_after_seconds": INT, "remind_interval_seconds": INT, "max_reminders": INT, "escalate_to": STR,
        "human_task": OBJ, "pending_with": _PENDING_WITH, "result": {}, "error": {},
        "attachments": array(obj({"upload_id": UUID, "filename": STR, "mime_type": STR, "size_bytes": INT,
                                  "sha256": STR})),
        "workflow": nullable(OBJ), "workflow_step": OBJ,
        "policy_generation": {**INT, "minimum": 1, "description": "Changes of its controls or policy (absent: 0)."},
        "grants": {"type": "object", "additionalProperties": obj({"allow": array(STR)}),
                   "description": "Who else may act on it: `delegate:<agent address or email>` -> `{allow}`."},
        "retry_backoff_seconds": {**NUM, "description": "Its own wait before a redelivery (controls)."},
    },
    description="An intent as the runtime shows it (axme-reference.md §2.2); unset optional fields are left out.",
)

_EVENT = obj(
    {"intent_id": UUID, "seq": {**INT, "minimum": 1}, "event_type": {"type": "string", "pattern": r"^intent\.[a-z_]+$"},
     "status": STATUS, "at": TIME, "actor": STR, "details": OBJ},
    {"waiting_reason": WAITING_REASON, "handler": nullable(STR), "pending_with": nullable(OBJ),
     "human_task": nullable(OBJ)},
)

_SERVICE_ACCOUNT = obj(
    {"service_account_id": STR, "id": STR, "org_id": STR, "workspace_id": STR, "name": STR,
     "description": nullable(STR), "display_name": nullable(STR),
     "status": {"type": "string", "enum": ["active", "suspended", "revoked", "deleted"]},
     "created_by_actor_id": nullable(STR), "created_at": TIME, "updated_at": TIME, "agent_address": STR,
     "address": STR},
    description="`id` and `address` repeat `service_account_id` and `agent_address` (AXME's CLI reads both).",
)

_KEY = obj(
    {"key_id": STR, "service_account_id": STR, "key_hint": STR, "status": {"type": "string",
                                                                          "enum": ["active", "revoked"]},
     "created_at": TIME, "expires_at": nullable(TIME), "revoked_at": nullable(TIME)},
    {"token": {**STR, "description": "The key itself: answered once, when it is made; only its hash is kept."}},
)

_AGENT = obj({"address": STR, "service_account_id": STR, "service_account_name": STR,
              "display_name": nullable(STR), "status": STR, "created_at": TIME, "updated_at": TIME})

_THREAD = obj(
    {"thread_id": UUID, "intent_id": UUID, "status": {"type": "string", "enum": ["pending", "active", "done"]},
     "owner_agent": STR, "from_agent": STR, "to_agent": STR, "created_at": TIME, "updated_at": TIME,
     "timeline": array(obj({"event_id": STR, "event_type": STR, "actor": STR, "at": TIME, "details": OBJ}))},
    {"subject": STR, "intent_type": STR, "reply_to": STR, "read": BOOL, "read_at": TIME, "completion": OBJ,
     "decision": OBJ, "delegated_to": array(STR), "messages": array(OBJ)},
)

_SUBSCRIPTION = obj(
    {"subscription_id": UUID, "owner_agent": STR, "callback_url": STR, "event_types": array(STR), "active": BOOL,
     "description": nullable(STR), "created_at": TIME, "updated_at": TIME, "revoked_at": nullable(TIME),
     "secret_hint": nullable(STR)},
)

_COUNTERS = {"queued_deliveries": INT, "processed_deliveries": INT, "delivered": INT, "pending": INT,
             "dead_lettered": INT}

_DELIVERY = obj(
    {"delivery_id": STR, "kind": {"type": "string", "enum": ["webhook", "intent", "direct"]}, "owner_agent": STR,
     "callback_url": STR, "status": STR, "attempts": INT, "max_attempts": INT, "created_at": TIME,
     "updated_at": TIME},
    {"subscription_id": STR, "event_id": STR, "event_type": STR, "intent_id": STR, "delivery_attempt": INT,
     "next_attempt_at": TIME, "last_status_code": INT, "last_error": STR, "delivered_at": TIME},
)

_SPEC_DELIVERY = obj(
    {"delivery_id": STR, "replay_of_delivery_id": nullable(STR), "org_id": STR, "workspace_id": STR,
     "principal_id": STR, "alias": nullable(STR),
     "transport_type": {"type": "string", "enum": ["matrix", "http", "queue", "webhook"]}, "route_id": STR,
     "status": {"type": "string", "enum": ["submitted", "delivered", "failed", "pending", "dead_lettered"]},
     "correlation_id": nullable(STR), "idempotency_key": nullable(STR), "payload": OBJ,
     "error_detail": nullable(STR), "created_at": TIME, "updated_at": TIME},
    closed=True,
    description="A delivery as AXME's api.deliveries.* show it (org_id and workspace_id are this runtime's names). "
                "principal_id: the agent it belongs to; route_id: the webhook subscription, or the agent's http "
                "binding.",
)

_AUDIT_EVENT = obj(
    {"event_id": STR, "created_at": TIME, "action": STR, "actor": STR, "key_id": nullable(STR),
     "owner_agent": nullable(STR), "target_type": nullable(STR), "target_id": nullable(STR), "details": OBJ},
    description="One recorded change: who (actor, the credential's key_id), what (action), about whom "
                "(owner_agent) and on what (target). Never a secret.",
)

_SCHEDULE = obj(
    {"schedule_id": UUID, "description": nullable(STR), "cron": STR, "timezone": STR,
     "kind": {"type": "string", "enum": ["scenario", "intent"]}, "scenario_id": nullable(STR),
     "intent_type": nullable(STR), "to_agent": nullable(STR), "payload": nullable(OBJ),
     "missed_run_policy": {"type": "string", "enum": ["skip", "catch_up_one"]},
     "overlap_policy": {"type": "string", "enum": ["skip", "allow"]},
     "status": {"type": "string", "enum": ["active", "paused"]}, "paused": BOOL, "next_fire_at": nullable(TIME),
     "last_fire_at": nullable(TIME), "last_intent_id": nullable(STR),
     "last_outcome": nullable({"type": "string", "enum": ["run", "skipped_overlap", "skipped_missed", "failed"]}),
     "last_error": nullable(STR), "runs": INT, "skipped_overlap": INT, "skipped_missed": INT, "failures": INT,
     "created_by": STR, "created_at": TIME, "updated_at": TIME},
    {"scenario": OBJ, "intent": OBJ},
    description="A schedule: a run (`scenario` applied, or `intent` sent) at each occurrence of `cron` in "
                "`timezone`. `next_fire_at` is null while paused; the counters count occurrences. A single schedule "
                "also shows what runs (`scenario` or `intent`).",
)

_DELIVERY_CONFIG = obj({"service_account_id": STR, "agent_address": STR,
                        "delivery_mode": {"type": "string", "enum": ["stream", "poll", "http", "inbox"]},
                        "callback_url": nullable(STR), "secret_hint": nullable(STR)})

_SESSION = obj({"session_id": STR, "is_current": BOOL, "actor_id": STR, "email": nullable(STR),
                "client_type": nullable(STR), "client": nullable(STR), "device_label": nullable(STR),
                "created_at": TIME, "expires_at": TIME, "revoked_at": nullable(TIME), "revoked": BOOL})

_TOKENS = obj(
    {"ok": TRUE, "access_token": STR, "refresh_token": STR, "expires_at": TIME, "expires_in": INT,
     "refresh_expires_at": TIME, "token_type": {"type": "string", "const": "Bearer"}, "session_id": STR},
    {"account_session_token": STR, "org_id": STR, "workspace_id": STR, "actor_id": STR, "email": STR,
     "address": STR},
)

_NICK = {"type": "string", "pattern": r"^@[A-Za-z0-9_.-]{3,32}$"}
_NORMALIZED_NICK = {"type": "string", "pattern": r"^[a-z0-9_.-]{3,32}$"}
_PUBLIC_ADDRESS = {"type": "string", "pattern": r"^[a-z0-9_.-]{3,32}@ax$"}
_USER_NAMES = {"user_id": UUID, "owner_agent": STR, "nick": _NICK, "public_address": _PUBLIC_ADDRESS}
_PROFILE_FIELDS = {"display_name": nullable(STR), "phone": nullable(STR), "email": nullable(STR)}
_PROFILE = obj({"ok": TRUE, **_USER_NAMES, "normalized_nick": _NORMALIZED_NICK, "updated_at": TIME},
               _PROFILE_FIELDS, closed=True,
               description="A user: its nick, the address it is bound to (owner_agent) and its profile.")
_INVITE_STATUS = {"type": "string", "enum": ["pending", "accepted", "expired"]}
_INVITE = obj(
    {"ok": TRUE, "token": STR, "owner_agent": STR, "status": _INVITE_STATUS, "created_at": TIME,
     "expires_at": TIME},
    {"recipient_hint": nullable(STR), "accepted_at": nullable(TIME), "accepted_owner_agent": nullable(STR),
     "nick": nullable(_NICK), "public_address": nullable(_PUBLIC_ADDRESS)},
    closed=True)

ERROR = obj(
    {"error": obj({"code": {**STR, "minLength": 1}, "message": {**STR, "minLength": 1}, "details": OBJ},
                  closed=True),
     "detail": {**STR, "description": "The message again (AXME's compatibility string)."}},
    closed=True,
    description='The AXP error shape: {"error": {"code", "message", "details"}, "detail"}.',
)

_UPLOAD = obj(
    {"upload_id": UUID, "owner_agent": STR, "bucket": STR, "object_path": STR, "mime_type": STR, "filename": STR,
     "size_bytes": {**INT, "minimum": 1}, "sha256": nullable({**STR, "pattern": "^[a-f0-9]{64}$"}),
     "status": {"type": "string", "enum": ["pending", "ready", "expired"]}, "created_at": TIME,
     "expires_at": TIME, "finalized_at": nullable(TIME), "download_url": nullable(STR),
     "preview_url": nullable(STR)},
    closed=True,
    description="A media upload. `expires_at`: when its upload URL ends (a pending upload expires then; a ready one "
                "stays). `download_url` / `preview_url` (raster images only) are this runtime's routes and need a key.",
)
_SCHEMA_FIELDS: dict[str, Schema] = {
    "semantic_type": STR, "schema_ref": STR, "schema_hash": {"type": "string", "pattern": "^[a-f0-9]{64}$"},
    "compatibility_mode": {"type": "string", "enum": ["strict", "backward", "warn"]},
    "scope": {"type": "string", "enum": ["tenant", "core"]}, "owner_agent": nullable(STR), "active": BOOL,
}
_SCHEMA_RECORD = obj({**_SCHEMA_FIELDS, "created_at": TIME, "updated_at": TIME}, closed=True,
                     description="A registered schema (api.schemas.upsert.response.v1's `schema`).")
_SCHEMA_WITH_JSON = obj({**_SCHEMA_FIELDS, "schema_json": OBJ, "created_at": TIME, "updated_at": TIME}, closed=True,
                        description="A registered schema with its JSON Schema (api.schemas.get.response.v1's).")

_POLICY_ENTRY = obj({"entry_id": UUID, "sender_pattern": STR, "created_at": TIME, "created_by": STR}, closed=True,
                    description="A sender pattern: agent://org/ws/name, agent://org/ws/*, agent://org/* or *.")
_POLICY_COMMON: dict[str, Schema] = {"org_id": STR, "entries": array(ref("SenderPolicyEntry")),
                                     "updated_at": nullable(TIME), "updated_by": nullable(STR)}
_SENDER_POLICY = obj(
    {**_POLICY_COMMON, "policy_type": {"type": "string", "enum": ["open", "allowlist", "denylist", "closed"]}},
    {"agent_address": STR, "workspace_id": STR}, closed=True,
    description="An agent's send policy (with agent_address: who may send to it; open | allowlist | denylist) or "
                "its org's receive policy (which agents of other organizations may send in; open | allowlist | "
                "closed). Never set: open, no entries, updated_at null.")
_RECEIVE_OVERRIDE = obj(
    {**_POLICY_COMMON, "agent_address": STR, "workspace_id": STR,
     "override_type": {"type": "string", "enum": ["open", "allowlist", "closed", "use_org_default"]}},
    closed=True, description="An agent's receive override: its own receive policy instead of the org's.")
_HEALTH: Schema = {"type": "string", "enum": ["healthy", "degraded", "unhealthy", "unknown"]}
_MESH_STATUS: Schema = {"type": "string", "enum": ["active", "killed"]}
_MESH_AGENT = obj(
    {"address_id": STR, "address": STR, "service_account_id": STR, "name": STR, "display_name": STR,
     "status": _MESH_STATUS, "killed": BOOL, "health": _HEALTH, "health_reason": STR,
     "last_heartbeat_at": nullable(TIME), "heartbeat_age_seconds": nullable(NUM), "heartbeats": INT,
     "metrics": OBJ, "metrics_at": nullable(TIME),
     "delivery_failures": obj({"recent": INT, "window_seconds": NUM, "total": INT, "last_at": nullable(TIME)}),
     "killed_at": nullable(TIME), "killed_by": nullable(STR), "kill_reason": nullable(STR),
     "resumed_at": nullable(TIME), "resumed_by": nullable(STR)},
    description="An agent (a service account) in the mesh. `address_id` is its service account id (a path takes "
                "it, or the address, or the name). `health`: healthy (a heartbeat within heartbeat_fresh_seconds, no "
                "delivery failure in the window), degraded (an older heartbeat, or some failures), unhealthy (none for "
                "heartbeat_stale_seconds, or failures_unhealthy failures), unknown (no heartbeat, no failure). "
                "`metrics`: what its last heartbeat with metrics reported.",
)
_MESH_EVENT = obj(
    {"event_id": UUID, "event_type": {"type": "string", "enum": ["agent.killed", "agent.resumed",
                                                                 "agent.health_changed"]},
     "address": STR, "actor": STR, "details": OBJ, "created_at": TIME},
    description="A kill, a resume (details.reason) or a health change (details.previous, health, reason).",
)
_HEALTH_RULES = obj({"heartbeat_interval_seconds": NUM, "heartbeat_fresh_seconds": NUM,
                     "heartbeat_stale_seconds": NUM, "failure_window_seconds": NUM, "failures_unhealthy": INT})

COMPONENTS: dict[str, Schema] = {
    "Error": ERROR,
    "SenderPolicyEntry": _POLICY_ENTRY,
    "SenderPolicy": _SENDER_POLICY,
    "ReceiveOverride": _RECEIVE_OVERRIDE,
    "Intent": _INTENT,
    "IntentEvent": _EVENT,
    "ServiceAccount": _SERVICE_ACCOUNT,
    "ApiKey": _KEY,
    "Agent": _AGENT,
    "InboxThread": _THREAD,
    "WebhookSubscription": _SUBSCRIPTION,
    "OutboundDelivery": _DELIVERY,
    "DeliveryConfig": _DELIVERY_CONFIG,
    "Delivery": _SPEC_DELIVERY,
    "AuditEvent": _AUDIT_EVENT,
    "Schedule": _SCHEDULE,
    "UserProfile": _PROFILE,
    "Invite": _INVITE,
    "MediaUpload": _UPLOAD,
    "SemanticSchema": _SCHEMA_RECORD,
    "SemanticSchemaWithJson": _SCHEMA_WITH_JSON,
    "Session": _SESSION,
    "SessionTokens": _TOKENS,
    "MeshAgent": _MESH_AGENT,
    "MeshEvent": _MESH_EVENT,
}


def sse_event(data: Schema) -> Schema:
    """One Server-Sent Event whose ``data`` is JSON matching ``data``."""
    return obj({"data": {"type": "string", "contentMediaType": "application/json", "contentSchema": data}},
               {"event": STR, "id": STR})


_TIMEOUT_FRAME = obj({"ok": TRUE, "next_seq": {**INT, "minimum": 0}}, {"status": nullable(STATUS)},
                     description="The last frame (`event: stream.timeout`) when nothing new came in time.")
_FEED_FRAME = obj(
    {"intent_id": UUID, "seq": {**INT, "minimum": 1}, "event_type": STR, "status": STATUS, "at": TIME,
     "intent_type": STR, "correlation_id": STR, "from_agent": STR, "to_agent": STR,
     "delivery_attempt": INT, "max_delivery_attempts": INT, "created_at": TIME, "payload": OBJ},
    description="An intent handed to the agent (`id:` is the feed cursor, `seq` too).",
)
COMPONENTS["StreamTimeout"] = _TIMEOUT_FRAME
COMPONENTS["FeedEntry"] = _FEED_FRAME

# quotas and usage (api/quotas.py, api/usage.py)
_QUOTA_DIMENSIONS = ("intents_per_day", "rate_limit_per_minute", "payload_max_bytes", "storage_bytes", "actors_total",
                     "service_accounts_per_workspace", "sse_streams_max")
_LIMIT: Schema = {"type": ["integer", "null"], "minimum": 0, "description": "null: no limit"}
COMPONENTS["QuotaPolicy"] = obj(
    {"quota_policy_id": UUID, "org_id": STR, "workspace_id": STR,
     "dimensions": obj({d: _LIMIT for d in _QUOTA_DIMENSIONS}),
     "soft_threshold_percent": {**INT, "minimum": 1, "maximum": 100}, "hard_enforcement": BOOL,
     "overage_mode": {"type": "string", "enum": ["block", "grace", "bill_overage"]},
     "tier": {"type": "string", "enum": ["unlimited", "custom"]}, "enforced": BOOL,
     "source": {"type": "string", "enum": ["policy", "defaults"]},
     "updated_by_actor_id": nullable(STR), "updated_at": TIME},
    description="A workspace's limits (AXME's quota_policy; org_id and workspace_id are this runtime's names). "
                "`enforced`: calls past a limit are refused (hard_enforcement and overage_mode block); `source`: "
                "a stored policy, or the runtime's defaults (`axme server --quota`) while nobody changed them.")
_USED = {"used": {**INT, "minimum": 0}, "refused": {**INT, "minimum": 0}, "overage": {**INT, "minimum": 0}}
COMPONENTS["UsageDimension"] = obj(
    {**_USED, "limit": _LIMIT, "remaining": nullable(INT), "percent": nullable(NUM)},
    {"peak": {**INT, "minimum": 0}},
    description="A quota dimension's usage: `used` is what the quota is held to (intents created in the window, "
                "its busiest minute of requests, its largest payload; bytes stored, people, service accounts and "
                "streams open now); `refused` and `overage`: calls past the limit, refused or let through.")
_USAGE_COUNTERS = obj({c: {**INT, "minimum": 0} for c in ("intents_created", "deliveries", "requests",
                                                         "sse_streams_opened", "payload_bytes", "storage_added")},
                      description="What the runtime did in the window: every intent (workflow steps too), "
                                  "deliveries to agents, API requests, streams opened, payload bytes callers sent, "
                                  "bytes stored.")
COMPONENTS["UsageSummary"] = obj(
    {"org_id": STR, "workspace_id": STR, "window": {"type": "string", "enum": ["day", "week", "month"]},
     "window_start": TIME, "window_end": TIME, "as_of": TIME,
     "dimensions": obj({d: ref("UsageDimension") for d in _QUOTA_DIMENSIONS}), "counters": _USAGE_COUNTERS})

# POST /mcp speaks JSON-RPC 2.0 (api/mcp.py): its answers, errors included, are JSON-RPC messages, not AXP errors.
_RPC_ID: Schema = {"type": ["string", "integer", "null"]}
_RPC_VERSION: Schema = {"type": "string", "const": "2.0"}
COMPONENTS["JsonRpcRequest"] = obj(
    {"jsonrpc": _RPC_VERSION, "method": STR}, {"id": _RPC_ID, "params": OBJ},
    description="A request (a notification without `id`): initialize, ping, tools/list, tools/call "
                "(`params`: {name, arguments, owner_agent}), resources/list, prompts/list.")
COMPONENTS["JsonRpcError"] = obj(
    {"jsonrpc": _RPC_VERSION, "id": _RPC_ID,
     "error": obj({"code": INT, "message": STR}, {"data": OBJ})},
    description="-32600 parse error or invalid request, -32601 method not found, -32602 invalid params, -32603 "
                "internal error, -32001 authentication required, -32002 owner agent required, -32003 owner "
                "mismatch, -32004 rate limited, -32010 gateway error (a route's refusal, in data.error), -32011 "
                "resolution error.")
COMPONENTS["JsonRpcResult"] = obj(
    {"jsonrpc": _RPC_VERSION, "id": _RPC_ID, "result": {}},
    description="tools/call: {ok, tool, status, owner_agent, data, content, structuredContent, isError}.")
_RPC_ANSWER: Schema = {"anyOf": [ref("JsonRpcResult"), ref("JsonRpcError")]}
_RPC_TEXT = {
    400: "The body is no JSON or no JSON-RPC message (-32600), or MCP-Protocol-Version is unknown",
    401: "A lone request that needs a credential had none that works (-32001)",
    403: "A lone tools/call named an owner the credential may not act for (-32003), or another site's page sent it",
    413: "The body is larger than the runtime accepts",
    415: "The body is not application/json",
    429: "A lone tools/call past the (owner, tool) limit, or the key's limit (-32004): wait `Retry-After` seconds",
    503: "The database is unavailable (-32010, data.error.details.retryable)",
}


def _rpc_responses() -> Schema:
    error = {"content": {"application/json": {"schema": ref("JsonRpcError")}}}
    out: Schema = {
        "200": {"description": "The answer (an array for a batch; errors of one request among them)",
                "content": {"application/json": {"schema": {"anyOf": [_RPC_ANSWER, array(_RPC_ANSWER)]}}}},
        "202": {"description": "Only notifications (or responses): nothing to answer, no body"},
    }
    for code, text in _RPC_TEXT.items():
        out[str(code)] = {"description": text, **error}
        if code in (429, 503):
            out[str(code)]["headers"] = {"Retry-After": {"description": "Seconds to wait before retrying",
                                                         "schema": {"type": "string", "pattern": "^[0-9]+$"}}}
    return out


def _ok(**props: Schema) -> Schema:
    return obj({"ok": TRUE, **props})


_THREAD_ANSWER = _ok(thread=ref("InboxThread"))
_CHANGED = _ok(applied=BOOL, policy_generation={**INT, "minimum": 0}, intent=ref("Intent"),
               event=nullable(ref("IntentEvent")))
_EVENT_COUNTS = {"event_id": STR, "owner_agent": STR, "event_type": STR, **_COUNTERS}


# ---------------------------------------------------------------------------------------------
# request bodies: the pydantic models the routes validate with


def _models() -> dict[str, type[BaseModel]]:
    from axme_cli.protocol import (
        controls,
        deliveries,
        inbox,
        media,
        mesh,
        models,
        policies,
        quotas,
        scenario,
        schedules,
        semantic_schemas,
        users,
        webhooks,
    )

    return {
        "IntentCreateRequest": models.IntentCreateRequest,
        "ResolveRequest": models.ResolveRequest,
        "BulkCancelRequest": models.BulkCancelRequest,
        "ServiceAccountCreateRequest": models.ServiceAccountCreateRequest,
        "KeyCreateRequest": models.KeyCreateRequest,
        "ScenarioBundle": scenario.ScenarioBundle,
        "ReplyRequest": inbox.ReplyRequest,
        "DelegateRequest": inbox.DelegateRequest,
        "DecisionRequest": inbox.DecisionRequest,
        "MessagesDeleteRequest": inbox.MessagesDeleteRequest,
        "ApprovalDecisionRequest": inbox.ApprovalDecisionRequest,
        "SubscriptionRequest": webhooks.SubscriptionRequest,
        "EventRequest": webhooks.EventRequest,
        "DeliveryConfigRequest": webhooks.DeliveryConfigRequest,
        "DeliverySubmitRequest": deliveries.DeliverySubmitRequest,
        "ScheduleCreateRequest": schedules.ScheduleCreateRequest,
        "ScheduleTriggerRequest": schedules.ScheduleTriggerRequest,
        "ClockAdvanceRequest": models.ClockAdvanceRequest,
        "RegisterNickRequest": users.RegisterNickRequest,
        "RenameNickRequest": users.RenameNickRequest,
        "ProfileUpdateRequest": users.ProfileUpdateRequest,
        "InviteCreateRequest": users.InviteCreateRequest,
        "InviteAcceptRequest": users.InviteAcceptRequest,
        "MediaCreateUploadRequest": media.CreateUploadRequest,
        "MediaFinalizeUploadRequest": media.FinalizeUploadRequest,
        "SchemaUpsertRequest": semantic_schemas.SchemaUpsertRequest,
        "ControlsRequest": controls.ControlsRequest,
        "PolicyRequest": controls.PolicyRequest,
        "SendPolicyRequest": policies.SendPolicyRequest,
        "ReceivePolicyRequest": policies.ReceivePolicyRequest,
        "ReceiveOverrideRequest": policies.ReceiveOverrideRequest,
        "PolicyEntryRequest": policies.PolicyEntryRequest,
        "MeshHeartbeatRequest": mesh.HeartbeatRequest,
        "MeshKillRequest": mesh.KillRequest,
        "QuotaPatchRequest": quotas.QuotaPatchRequest,
    }


def _model_components() -> dict[str, Schema]:
    """Each model's JSON Schema, its ``$defs`` lifted into components (one namespace: the names must agree)."""
    out: dict[str, Schema] = {}
    for name, model in {**_models(), **_governance_models(), **_org_models()}.items():
        schema = model.model_json_schema(ref_template=REF + "{model}", mode="validation")
        for def_name, definition in schema.pop("$defs", {}).items():
            if def_name in out and out[def_name] != definition:
                raise ValueError(f"two request models define {def_name} differently")
            out[def_name] = definition
        out[name] = schema
    return out


_EMAIL_REQUEST = obj({"email": {**STR, "format": "email"}})
_CODE_REQUEST = obj({"code": {"type": ["string", "integer"], "description": "The 6-digit code from the mail."}})
_REFRESH_REQUEST = obj({"refresh_token": STR})
_SESSION_REVOKE_REQUEST = obj({"session_id": STR})
_RESUME_REQUEST = obj(
    {},
    {"action": {"type": "string", "description": "An agent: complete, fail, in_progress, ..."},
     "task_result": obj({"outcome": STR}, {"comment": STR}), "result": {}, "error": {}, "reason": STR},
    description="Open body: an agent's `{action, ...}` or a person's `{task_result: {outcome, ...}}` "
                "(axme-reference.md §2.2).",
)


# ---------------------------------------------------------------------------------------------
# operations


@dataclass(frozen=True)
class Op:
    summary: str
    tag: str
    ok: Schema | str | tuple[str, Schema]  # the 200 body, "html", "text", "file", or ("sse", one event's schema)
    body: Schema | None = None  # the request body's schema
    body_media: str = "application/json"
    body_required: bool = True
    query: tuple[tuple[str, Schema, str], ...] = ()  # (name, schema, description)
    errors: tuple[int, ...] = ()  # beyond those implied (auth, body, path and query parameters, 503)
    auth: bool = True
    owner: bool = False  # takes owner_agent / x-owner-agent
    idempotent: bool = False  # takes Idempotency-Key
    axp: str | None = None  # the axp-spec public_api schema the 200 body conforms to
    description: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


_FILE: Schema = {"type": "string", "contentMediaType": "application/octet-stream", "description": "Bytes."}


def _limit(default: int, high: int) -> tuple[str, Schema, str]:
    return ("limit", {"type": "integer", "minimum": 1, "maximum": high, "default": default}, "At most this many.")


_SINCE = ("since", {"type": "integer", "minimum": 0, "maximum": 2**53, "default": 0},
          "Only events (feed entries) after this seq (cursor); exclusive.")
_WAIT = ("wait_seconds", {"type": "integer", "minimum": 1, "maximum": 60, "default": 15},
         "Close the stream with a `stream.timeout` frame after this long without anything new.")
_INCREMENTAL = ("incremental", {"type": "boolean", "default": False},
                "The client reads frames as they come: keep the stream open up to `wait_seconds`. Without it the "
                "stream ends a few ms after it sent frames (with `stream.timeout` and the cursor to reconnect from), "
                "for clients that read the whole response before parsing it.")
_INTENT_STATUS = ("status", STR, f"Comma-separated statuses ({', '.join(lc.STATUSES)}).")

def _policy_operations(base: str, key: str, component: str, request: str, what: str,
                       who: str) -> dict[tuple[str, str], Op]:
    """GET and PUT of a sender policy, POST of an entry, DELETE of one (api/policies.py)."""
    view = {key: ref(component)}
    return {
        ("GET", base): Op(what, "policies", _ok(**view), description=who),
        ("PUT", base): Op(f"{what}: set its type (its entries stay)", "policies",
                          obj({"ok": TRUE, **view, "changed": BOOL}), body=ref(request), errors=(403,),
                          description=who),
        ("POST", f"{base}/entries"): Op(
            "Add a sender pattern (the same one again answers its entry, created: false)", "policies",
            obj({"ok": TRUE, **view, "entry": ref("SenderPolicyEntry"), "created": BOOL}),
            body=ref("PolicyEntryRequest"), errors=(403, 409),
            description="A pattern no agent address could match is 422 naming it; 409 `too_many_entries` past "
                        "1000. " + who),
        ("DELETE", f"{base}/entries/{{entry_id}}"): Op(
            "Remove a sender pattern", "policies",
            obj({"ok": TRUE, **view, "deleted": TRUE, "entry_id": STR}), errors=(403,), description=who),
    }


def _billing(summary: str) -> Op:
    return Op(summary, "billing", OBJ, errors=(501,),
              description="Billing is AXME's hosted service's: this runtime answers 501 `not_available_locally` "
                          "(never 200) to any valid credential; no request body or parameter is read.")


OPERATIONS: dict[tuple[str, str], Op] = {
    ("GET", "/health"): Op("Is the runtime up, and what is it", "meta", _ok(
        service=STR, version=STR, deployment_profile=STR, storage=STR, org_id=STR, workspace_id=STR,
        uptime_seconds=NUM, server_time=NUM, registered_users=INT), auth=False),
    ("GET", "/v1/health"): Op("Same as GET /health", "meta", ref("HealthResponse"), auth=False),
    ("GET", "/openapi.json"): Op("This document", "meta", OBJ, auth=False),
    ("GET", "/metrics"): Op(
        "Prometheus metrics (text exposition format)", "meta", "text", errors=(403,),
        description="Needs the workspace admin key (an agent key gets 403), unless the runtime runs with "
                    "`--metrics-public`."),
    ("POST", "/dev/clock/advance"): Op(
        "Move the test clock forward (tests only)", "meta", _ok(ok=BOOL, now=TIME),
        body=ref("ClockAdvanceRequest"), errors=(403, 404),
        description="Only on `axme dev --test-clock`, whose clock stands still until this moves it: what became "
                    "due (deadlines, redeliveries, retries, reminders, expiries) fires at once. Any other runtime "
                    "answers a well-formed request 404. Needs the workspace admin key (another key gets 403)."),
    # intents
    ("POST", "/v1/intents"): Op(
        "Send an intent", "intents", _ok(intent_id=UUID, status=STATUS, created_at=TIME),
        body=ref("IntentCreateRequest"), errors=(404, 409), idempotent=True,
        axp="api.intents.create.response.v1",
        description="An Idempotency-Key replays the first answer for the same body; another body is 409. The "
                    "intent is the caller's workspace's (a bare name is one of its agents); a `to_agent`, "
                    "`reply_to` or `from_agent` naming another workspace of this runtime is 404 "
                    "`agent_not_found`."),
    ("GET", "/v1/intents"): Op(
        "List intents, newest first", "intents",
        _ok(intents=array(ref("Intent")), next_cursor=nullable(STR)),
        query=(_limit(50, 500), _INTENT_STATUS, ("before", STR, "An intent id: only older intents (paging)."),
               ("intent_type", STR, "Only intents of this type."),
               ("agent", STR, "Only intents to or from this agent (address or bare name)."),
               ("created_after", TIME, "Only intents created after this RFC 3339 time."),
               ("created_before", TIME, "Only intents created before this RFC 3339 time."),
               ("id_prefix", STR, "Only intents whose id starts with this.")),
        description="An agent key sees only intents to or from its own address, whatever the filters say."),
    ("POST", "/v1/intents/bulk-cancel"): Op(
        "Cancel old open intents (dry run by default)", "intents",
        obj({"ok": TRUE, "dry_run": BOOL, "intent_ids": array(STR)}, {"would_cancel": INT, "canceled": INT}),
        body=ref("BulkCancelRequest"), body_required=False),
    ("GET", "/v1/intents/{intent_id}"): Op(
        "Get an intent", "intents",
        {"allOf": [_ok(intent=ref("Intent")), ref("Intent")],
         "description": "`intent`, and the same fields again at the top level (AXME's examples read them there)."},
        description="An agent key sees only intents to or from its own address (others: 404); nobody sees "
                    "another workspace's (404, as a missing one)."),
    ("GET", "/v1/intents/{intent_id}/events"): Op(
        "The intent's events in seq order", "intents", _ok(events=array(ref("IntentEvent"))),
        query=(_SINCE,), axp="api.intents.events.list.response.v1"),
    ("GET", "/v1/intents/{intent_id}/events/stream"): Op(
        "Follow the intent's events (Server-Sent Events)", "intents",
        ("sse", sse_event({"anyOf": [ref("IntentEvent"), ref("StreamTimeout")]})), query=(_SINCE, _WAIT, _INCREMENTAL),
        description="Frames `id: <seq>`, `event: <event_type>`, `data: <event JSON>`; ends after a terminal "
                    "event or with `event: stream.timeout`."),
    ("POST", "/v1/intents/{intent_id}/resume"): Op(
        "Report progress, a result or a person's answer", "intents",
        _ok(applied=BOOL, intent=ref("Intent")), body=_RESUME_REQUEST, errors=(403, 409), owner=True),
    ("POST", "/v1/intents/{intent_id}/resolve"): Op(
        "Complete, fail or cancel an intent", "intents",
        _ok(intent=ref("Intent"), event=ref("IntentEvent"),
            completion_delivery=obj({"delivered": BOOL}, {"reason": STR, "reply_to": STR, "thread_id": STR,
                                                         "message_id": STR, "completion": OBJ})),
        body=ref("ResolveRequest"), errors=(403, 409), owner=True, axp="api.intents.resolve.response.v1"),
    ("POST", "/v1/intents/{intent_id}/controls"): Op(
        "Move the intent's timers: deadline, delivery attempts, redelivery wait", "intents", _CHANGED,
        body=ref("ControlsRequest"), errors=(403, 409), owner=True, idempotent=True,
        description="The sender, a delegate granted `update_controls` and the workspace key. "
                    "`expected_policy_generation` other than the intent's is 409 (`details.policy_generation`); "
                    "a patch that changes nothing answers `applied: false`."),
    ("POST", "/v1/intents/{intent_id}/policy"): Op(
        "Grant or take back who else may resume it or change its controls or policy; its envelope's timers",
        "intents", _CHANGED, body=ref("PolicyRequest"), errors=(403, 409), owner=True, idempotent=True,
        description="The sender, a delegate granted `update_policy` and the workspace key. Grants: "
                    '`{"delegate:<agent address or email>": {"allow": ["resume", "update_controls", '
                    '"update_policy"]}}` (null or an empty allow takes one back)."'),
    # the schema registry
    ("POST", "/v1/schemas"): Op(
        "Register or replace the JSON Schema of a semantic type (an intent_type)", "schemas",
        _ok(schema=ref("SemanticSchema")), body=ref("SchemaUpsertRequest"), owner=True, idempotent=True,
        errors=(403,),
        description="scope tenant (default): the owner agent's (an agent key: its own; the workspace key and people "
                    "name it, else 400 `owner_agent_required`); scope core: the workspace's, the workspace key only "
                    "(403). A schema_json the runtime will not evaluate (a `$ref` outside it, a pattern RE2 refuses, "
                    "over 64 kB / 32 levels / 1,000 keywords, not JSON Schema 2020-12) is 400 `schema_invalid`. The "
                    "semantic type takes the gateway's pattern (that of intent_type); the axp-spec schema asks for "
                    "three dotted parts."),
    ("GET", "/v1/schemas/{semantic_type}"): Op(
        "The active schema of a semantic type: the owner agent's, else the workspace's", "schemas",
        _ok(schema=ref("SemanticSchemaWithJson")), owner=True, errors=(403, 422),
        description="An agent key reads its own and the workspace's; 404 `schema_not_found` when neither is active."),
    # scenarios and tasks
    ("POST", "/v1/scenarios/validate"): Op(
        "Check a ScenarioBundle without running it", "scenarios",
        _ok(valid=BOOL, errors=array(STR), warnings=array(STR)), body=ref("ScenarioBundle"),
        description="Any JSON object is taken: what is wrong with it comes back in `errors` (200)."),
    ("POST", "/v1/scenarios/apply"): Op(
        "Provision agents, compile and start a ScenarioBundle", "scenarios",
        _ok(intent_id=UUID, scenario_id=STR, compile_id=STR, workflow_compile_id=STR, status=STATUS,
            pending_with=nullable(STR), idempotent=BOOL, agents=array(OBJ), deadline_at=nullable(STR),
            created_at=TIME, warnings=array(STR)),
        body=ref("ScenarioBundle"), errors=(403, 404, 409), idempotent=True,
        description="The workflow, its steps and the agents it provisions are the caller's workspace's; an agent "
                    "address of another workspace of this runtime is 404 `agent_not_found`."),
    ("GET", "/v1/me/tasks"): Op(
        "Human tasks waiting for the caller (people and the workspace key)", "tasks",
        _ok(tasks=array(obj({"intent_id": UUID, "intent_type": STR, "status": STATUS, "assigned_at": TIME,
                             "human_task": OBJ}, {"from_agent": STR, "due_at": nullable(STR)}))),
        query=(_limit(100, 500),), errors=(403,)),
    # service accounts and agents
    ("POST", "/v1/service-accounts"): Op(
        "Create a service account (an agent)", "service-accounts", _ok(service_account=ref("ServiceAccount")),
        body=ref("ServiceAccountCreateRequest"), errors=(403, 404, 409),
        description="404: `org_id` or `workspace_id` names another organisation or workspace than this runtime's."),
    ("GET", "/v1/service-accounts"): Op(
        "List service accounts (an agent key: only its own)", "service-accounts",
        _ok(service_accounts=array(ref("ServiceAccount")))),
    ("GET", "/v1/service-accounts/{sa_id}"): Op(
        "Get a service account and its keys (never the tokens)", "service-accounts",
        _ok(service_account=ref("ServiceAccount"), keys=array(ref("ApiKey")))),
    ("DELETE", "/v1/service-accounts/{sa_id}"): Op(
        "Delete a service account; its keys stop working", "service-accounts",
        _ok(deleted=BOOL, service_account=ref("ServiceAccount")), errors=(403,)),
    ("POST", "/v1/service-accounts/{sa_id}/keys"): Op(
        "Mint a key (the token is answered once)", "service-accounts", _ok(key=ref("ApiKey")),
        body=ref("KeyCreateRequest"), body_required=False, errors=(403,)),
    ("POST", "/v1/service-accounts/{sa_id}/keys/{key_id}/revoke"): Op(
        "Revoke a key", "service-accounts", _ok(key=ref("ApiKey")), errors=(403,)),
    ("GET", "/v1/agents"): Op("List agents (an agent key: only itself)", "agents", _ok(agents=array(ref("Agent"))),
                              query=(_limit(100, 1000),)),
    ("GET", "/v1/agents/{address}"): Op(
        "Get an agent", "agents", _ok(agent=ref("Agent")), axp="api.agents.get.response.v1",
        description="`address`: a bare name, `org/workspace/name`, or a URL-encoded `agent://` address."),
    ("GET", "/v1/agents/{address}/intents/stream"): Op(
        "An agent's delivery feed (Server-Sent Events)", "agents",
        ("sse", sse_event({"anyOf": [ref("FeedEntry"), ref("StreamTimeout")]})),
        query=(_SINCE, _WAIT, _INCREMENTAL,
               ("status", STR, "Comma-separated statuses to send [default: every open one].")),
        errors=(403,),
        description="Each frame is an intent handed to the agent (`id: <cursor>`); sending it records "
                    "`intent.delivered`. Only the workspace key or the agent's own key may listen."),
    # delivery config (the http binding)
    ("PATCH", "/v1/service-accounts/{sa_id}/delivery"): Op(
        "Set how an agent gets its intents", "service-accounts",
        obj({"ok": TRUE, "delivery": ref("DeliveryConfig")}, {"delivery_secret": STR}),
        body=ref("DeliveryConfigRequest"), errors=(403,)),
    ("PUT", "/v1/service-accounts/{sa_id}/delivery"): Op(
        "Same as PATCH", "service-accounts", obj({"ok": TRUE, "delivery": ref("DeliveryConfig")},
                                                 {"delivery_secret": STR}),
        body=ref("DeliveryConfigRequest"), errors=(403,)),
    ("GET", "/v1/service-accounts/{sa_id}/delivery"): Op(
        "How an agent gets its intents", "service-accounts", _ok(delivery=ref("DeliveryConfig"))),
    # auth
    ("POST", "/v1/auth/login-intent"): Op(
        "Mail a one-time login code", "auth",
        _ok(intent_id=STR, grant_id=STR, email=STR, expires_in=INT), body=_EMAIL_REQUEST, auth=False,
        errors=(403, 429)),
    ("POST", "/v1/auth/login-intent/{intent_id}/verify"): Op(
        "Trade the code for a session", "auth", ref("SessionTokens"), body=_CODE_REQUEST, auth=False,
        errors=(404, 409, 410, 429)),
    ("POST", "/v1/auth/refresh"): Op(
        "Trade a refresh token for new tokens (single use)", "auth", ref("SessionTokens"),
        body=_REFRESH_REQUEST, auth=False, errors=(401, 429)),
    ("GET", "/v1/auth/sessions"): Op(
        "A person's sessions (the workspace key: everyone's)", "auth",
        _ok(sessions=array(ref("Session")), current_session_id=nullable(STR)),
        query=(("include_revoked", {"type": "boolean", "default": False}, "Also revoked sessions."),),
        errors=(403,)),
    ("POST", "/v1/auth/sessions/revoke"): Op(
        "Revoke a session", "auth", _ok(session_id=STR, revoked=BOOL, already_revoked=BOOL,
                                        revoked_at=nullable(STR)),
        body=_SESSION_REVOKE_REQUEST, errors=(403, 404)),
    ("POST", "/v1/auth/logout"): Op(
        "End the caller's session (a person's access token)", "auth",
        _ok(session_id=STR, revoked=BOOL, already_revoked=BOOL, revoked_at=nullable(STR))),
    ("POST", "/v1/auth/logout-all"): Op(
        "End every session of the caller (a person's access token)", "auth",
        _ok(revoked=INT, session_ids=array(STR))),
    ("GET", "/v1/auth/whoami"): Op(
        "Who the credential is", "auth",
        _ok(principal=obj({"kind": {"type": "string", "enum": ["workspace", "service_account", "actor"]},
                           "address": STR, "is_admin": BOOL},
                          {"key_id": STR, "actor_id": STR, "session_id": nullable(STR), "email": nullable(STR),
                           "service_account_id": STR}),
            org_id=STR, workspace_id=STR)),
    # webhooks
    ("POST", "/v1/webhooks/subscriptions"): Op(
        "Create or update a subscription (by owner and callback_url)", "webhooks",
        obj({"ok": TRUE, "subscription": ref("WebhookSubscription")},
            {"secret": {**STR, "description": "A generated signing secret, answered once."}}),
        body=ref("SubscriptionRequest"), owner=True, errors=(403,)),
    ("GET", "/v1/webhooks/subscriptions"): Op(
        "List subscriptions", "webhooks", _ok(subscriptions=array(ref("WebhookSubscription"))), owner=True,
        errors=(403,), axp="api.webhooks.subscriptions.list.response.v1"),
    ("DELETE", "/v1/webhooks/subscriptions/{subscription_id}"): Op(
        "Revoke a subscription", "webhooks", _ok(subscription_id=STR, revoked_at=TIME),
        axp="api.webhooks.subscriptions.delete.response.v1"),
    ("POST", "/v1/webhooks/events"): Op(
        "Publish an event to the owner's subscriptions", "webhooks",
        _ok(accepted_at=TIME, event_type=STR, source=STR, owner_agent=STR, event_id=STR, **_COUNTERS),
        body=ref("EventRequest"), owner=True, errors=(403,), axp="api.webhooks.events.response.v1"),
    ("GET", "/v1/webhooks/events/{event_id}"): Op(
        "An event and its delivery counters", "webhooks",
        _ok(**_EVENT_COUNTS, source=STR, accepted_at=TIME, replayed_at=nullable(TIME))),
    ("POST", "/v1/webhooks/events/{event_id}/replay"): Op(
        "Deliver an event again", "webhooks",
        _ok(**_EVENT_COUNTS, replayed_at=TIME),
        axp="api.webhooks.events.replay.response.v1"),
    ("GET", "/v1/webhooks/deliveries"): Op(
        "Outbound deliveries, newest first (webhooks and http-binding intents)", "webhooks",
        _ok(deliveries=array(ref("OutboundDelivery"))),
        query=(("subscription_id", STR, ""), ("event_id", STR, ""), ("intent_id", STR, ""),
               ("status", {"type": "string", "enum": ["pending", "delivered", "dead_lettered", "failed"]}, ""),
               ("kind", STR, ""), _limit(100, 1000)),
        owner=True, errors=(403,)),
    # deliveries (AXME's view of the outbound deliveries) and the audit log
    ("GET", "/v1/deliveries"): Op(
        "Deliveries, newest first (webhooks, intents to http agents, submitted payloads)", "deliveries",
        _ok(deliveries=array(ref("Delivery"))),
        query=(("org_id", STR, "This runtime's (may be left out)."), ("workspace_id", STR, "The same."),
               ("principal_id", STR, "The agent (address or name) whose deliveries; an agent key: itself."),
               ("status", {"type": "string", "enum": ["submitted", "delivered", "failed", "pending",
                                                      "dead_lettered"]}, ""), _limit(200, 1000)),
        errors=(403, 404)),
    ("POST", "/v1/deliveries"): Op(
        "Deliver a payload to an agent with the http binding (signed, retried like a webhook)", "deliveries",
        _ok(delivery=ref("Delivery")), body=ref("DeliverySubmitRequest"), idempotent=True,
        errors=(403, 404, 409)),
    ("GET", "/v1/deliveries/{delivery_id}"): Op("A delivery", "deliveries", _ok(delivery=ref("Delivery")),
                                                 errors=(404,)),
    ("POST", "/v1/deliveries/{delivery_id}/replay"): Op(
        "Deliver again what a delivery carried (a new delivery, replay_of_delivery_id)", "deliveries",
        _ok(delivery=ref("Delivery")), errors=(404, 409)),
    ("GET", "/v1/audit/events"): Op(
        "The audit log, newest first (the admin key: the workspace; others: what they did or is about them)",
        "audit", _ok(events=array(ref("AuditEvent")), next_before=nullable(STR)),
        query=(("owner_agent", STR, "Only events about this principal (an agent key or a person: itself)."),
               ("action_prefix", {"type": "string", "pattern": "^[a-z0-9_.]{1,128}$"},
                "Only actions starting with this (e.g. `auth.login`)."),
               ("before", STR, "`next_before` of the previous page."), _limit(100, 1000)),
        errors=(403,)),
    # schedules
    ("POST", "/v1/schedules"): Op(
        "Create a schedule: a scenario applied, or an intent sent, at each occurrence of a cron expression",
        "schedules", _ok(schedule=ref("Schedule")), body=ref("ScheduleCreateRequest"), errors=(403, 409),
        idempotent=True,
        description="The workspace admin key only. `cron`: five fields (or @hourly, @daily, @weekly, @monthly, "
                    "@yearly) in `timezone` (IANA, default UTC); an invalid one is 422 `invalid_cron` naming `cron` "
                    "and the fix. Exactly one of `scenario` (a ScenarioBundle, checked as /v1/scenarios/apply checks "
                    "it) and `intent` (a body as POST /v1/intents takes; `correlation_id` optional: each run gets a "
                    "new one). `payload` is merged over the run's intent payload. `missed_run_policy`: `skip` "
                    "(default) or `catch_up_one` (one run for occurrences missed while the runtime was down); "
                    "`overlap_policy`: `skip` (default: no run while the previous one has not ended) or `allow`."),
    ("GET", "/v1/schedules"): Op(
        "List schedules, newest first", "schedules", _ok(schedules=array(ref("Schedule")), next_cursor=nullable(STR)),
        query=(_limit(50, 200), ("cursor", STR, "`next_cursor` of the previous page.")), errors=(403,),
        description="Members (the workspace key and people); agent keys get 403."),
    ("GET", "/v1/schedules/{schedule_id}"): Op(
        "Get a schedule and what it runs", "schedules", _ok(schedule=ref("Schedule")), errors=(403,)),
    ("DELETE", "/v1/schedules/{schedule_id}"): Op(
        "Delete a schedule (its runs go on)", "schedules", _ok(schedule_id=STR, deleted=BOOL), errors=(403,)),
    ("POST", "/v1/schedules/{schedule_id}/pause"): Op(
        "Pause a schedule: no occurrence fires until it is resumed", "schedules", _ok(schedule=ref("Schedule")),
        errors=(403,)),
    ("POST", "/v1/schedules/{schedule_id}/resume"): Op(
        "Resume a schedule from its first occurrence after now", "schedules", _ok(schedule=ref("Schedule")),
        errors=(403,)),
    ("POST", "/v1/schedules/{schedule_id}/trigger"): Op(
        "Run a schedule now (paused or not; the next occurrence stays)", "schedules",
        _ok(schedule=ref("Schedule"),
            run=obj({"started": BOOL}, {"intent_id": UUID, "skipped": {"type": "string", "enum": ["overlap"]},
                                        "previous_intent_id": nullable(STR), "previous_status": nullable(STATUS)})),
        body=ref("ScheduleTriggerRequest"), body_required=False, errors=(403,),
        description="The overlap policy applies (the schedule's, or `overlap_policy` given here): with `skip`, "
                    "while the previous run has not ended nothing starts (`run.started` false, `run.skipped`)."),
    # the agent mesh
    ("POST", "/v1/mesh/heartbeat"): Op(
        "An agent is alive: its last heartbeat and metrics (one write)", "mesh",
        _ok(address=STR, received_at=TIME, health=_HEALTH, status=_MESH_STATUS, killed=BOOL, heartbeats=INT,
            heartbeat_interval_seconds=NUM),
        body=ref("MeshHeartbeatRequest"), body_required=False, owner=True, errors=(404,),
        description="An agent key heartbeats for itself; the workspace key or a person for the agent named by "
                    "`owner_agent` / `x-owner-agent` (required then: 422). `metrics`: at most 64 names (letters, "
                    "digits, `_.:-`) with a number, boolean, short text or null each (422 naming `metrics.<name>`); "
                    "the last ones are kept. A killed agent's heartbeat is taken too (`killed: true`)."),
    ("GET", "/v1/mesh/agents"): Op(
        "Agents with their health, heartbeat, metrics and kill switch", "mesh",
        _ok(agents=array(ref("MeshAgent")), total=INT,
            summary=obj({"healthy": INT, "degraded": INT, "unhealthy": INT, "unknown": INT, "killed": INT}),
            health_rules=_HEALTH_RULES),
        query=(_limit(100, 1000), ("health", _HEALTH, "Only agents in this health."),
               ("status", _MESH_STATUS, "Only active or killed agents.")),
        description="An agent key sees only itself. `summary` counts every agent the caller sees, before the "
                    "filters; `total` those that pass them."),
    ("GET", "/v1/mesh/agents/{address_id}"): Op(
        "An agent with its health, metrics and its latest mesh events", "mesh",
        _ok(agent=ref("MeshAgent"), events=array(ref("MeshEvent")), health_rules=_HEALTH_RULES),
        description="`address_id`: the service account id, the address or the name. Another agent than an agent "
                    "key's own is 404."),
    ("POST", "/v1/mesh/agents/{address_id}/kill"): Op(
        "Kill an agent: no deliveries to it and no sends from it until resumed", "mesh",
        _ok(changed=BOOL, agent=ref("MeshAgent")), body=ref("MeshKillRequest"), body_required=False, errors=(403,),
        description="The workspace key or a person (an agent key: 403 `kill_switch_forbidden`). Effective within a "
                    "second on every replica: its feed streams send nothing, its http and webhook POSTs wait, its "
                    "sends are 403 `agent_killed`; intents addressed to it wait (no delivery attempt is counted) "
                    "and go out on resume. Killing a killed agent changes nothing (`changed: false`)."),
    ("POST", "/v1/mesh/agents/{address_id}/resume"): Op(
        "Resume a killed agent: what waited for it goes out now", "mesh",
        _ok(changed=BOOL, agent=ref("MeshAgent")), body=ref("MeshKillRequest"), body_required=False, errors=(403,),
        description="The workspace key or a person (an agent key: 403 `kill_switch_forbidden`). Resuming an agent "
                    "that is not killed changes nothing (`changed: false`)."),
    ("GET", "/v1/mesh/events"): Op(
        "Mesh events, newest first: kills, resumes, health changes", "mesh",
        _ok(events=array(ref("MeshEvent")), next_before=nullable(STR)),
        query=(_limit(50, 500),
               ("event_type", STR, "agent.killed, agent.resumed or agent.health_changed (or kill, resume, "
                                   "health)."),
               ("address_id", STR, "Only this agent's (its service account id, address or name)."),
               ("before", STR, "`next_before` of the previous page.")),
        errors=(404,), description="An agent key sees only its own; an `address_id` it may not see is 404."),
    # users and invites
    ("GET", "/v1/users/check-nick"): Op(
        "Is a nick free", "users",
        obj({"ok": TRUE, "nick": _NICK, "normalized_nick": _NORMALIZED_NICK, "public_address": _PUBLIC_ADDRESS,
             "available": BOOL}, closed=True),
        query=(("nick", STR, "`@name`, `name` or `name@ax` (required)."),), axp="api.users.check_nick.response.v1",
        description="422 `invalid_nick` names what a nick may hold; a reserved nick is not available."),
    ("GET", "/v1/users/resolve-nick"): Op(
        "Where a nick goes (its user's address)", "users",
        obj({"ok": TRUE, "resolved": BOOL, "nick": _NICK, "normalized_nick": _NORMALIZED_NICK,
             "public_address": _PUBLIC_ADDRESS, "owner_agent": STR}, _PROFILE_FIELDS, closed=True),
        query=(("nick", STR, "`@name`, `name` or `name@ax` (required)."),), errors=(404,),
        description="404 `nick_not_found` for a nick nobody has. Phone and email only for whoever manages the "
                    "user (the workspace key, or the agent or person that holds it); null for others."),
    ("POST", "/v1/users/register-nick"): Op(
        "Register a nick: a user bound to the caller", "users",
        obj({"ok": TRUE, **_USER_NAMES, "created_at": TIME}, _PROFILE_FIELDS, closed=True),
        body=ref("RegisterNickRequest"), idempotent=True, errors=(409,), axp="api.users.register_nick.response.v1",
        description="An agent key: the nick names the agent itself. A person: a user `agent://user/<id>` the "
                    "person holds. The workspace key: a new user `agent://user/<id>`. 409 `nick_taken`, "
                    "`nick_reserved`, or `user_exists` (the agent or person has a nick already: rename it)."),
    ("POST", "/v1/users/rename-nick"): Op(
        "Give a user another nick", "users",
        obj({"ok": TRUE, **_USER_NAMES, "renamed_at": TIME}, _PROFILE_FIELDS, closed=True),
        body=ref("RenameNickRequest"), idempotent=True, errors=(403, 404, 409),
        axp="api.users.rename_nick.response.v1",
        description="The workspace key renames any user; others only the user they hold (403)."),
    ("GET", "/v1/users/profile"): Op(
        "A user's profile", "users", ref("UserProfile"),
        query=(("owner_agent", STR, "The user's address (or its @nick) (required)."),), errors=(403, 404),
        axp="api.users.profile.get.response.v1"),
    ("POST", "/v1/users/profile/update"): Op(
        "Change a user's profile (and nick)", "users", ref("UserProfile"), body=ref("ProfileUpdateRequest"),
        idempotent=True, errors=(403, 404, 409), axp="api.users.profile.update.response.v1"),
    ("POST", "/v1/invites/create"): Op(
        "Invite someone (the token is answered once)", "invites",
        obj({"ok": TRUE, "token": STR, "invite_url": {"type": "string", "format": "uri"}, "owner_agent": STR,
             "status": _INVITE_STATUS, "created_at": TIME, "expires_at": TIME},
            {"recipient_hint": nullable(STR)}, closed=True),
        body=ref("InviteCreateRequest"), idempotent=True, errors=(403, 404, 409),
        axp="api.invites.create.response.v1",
        description="`ttl_seconds` 60..1209600 (default 604800). Only the token's hash is kept; repeating an "
                    "Idempotency-Key gives the same invite a new token (409 once it is no longer pending)."),
    ("GET", "/v1/invites/{token}"): Op(
        "An invite, by its token", "invites", ref("Invite"), axp="api.invites.get.response.v1"),
    ("POST", "/v1/invites/{token}/accept"): Op(
        "Accept an invite with a nick (once)", "invites",
        obj({"ok": TRUE, "token": STR, "status": {"type": "string", "const": "accepted"},
             "invite_owner_agent": STR, "user_id": UUID, "owner_agent": STR, "nick": _NICK,
             "public_address": _PUBLIC_ADDRESS, "accepted_at": TIME,
             "registry_bind_status": {"type": "string", "enum": ["propagated", "failed", "disabled",
                                                                 "skipped_no_hint"]}},
            {"display_name": nullable(STR)}, closed=True),
        body=ref("InviteAcceptRequest"), idempotent=True, errors=(409, 410), axp="api.invites.accept.response.v1",
        description="The accepter gets a user with the nick (as register-nick), the owner an `invite.accepted` "
                    "webhook event. 409 `invite_already_accepted` (used), 410 `invite_expired`."),
    # media uploads
    ("POST", "/v1/media/create-upload"): Op(
        "Create an upload: its upload_url takes the bytes (PUT)", "media",
        _ok(upload_id=UUID, owner_agent=STR, bucket=STR, object_path=STR, upload_url=STR,
            status={"type": "string", "const": "pending"}, expires_at=TIME, max_size_bytes=INT),
        body=ref("MediaCreateUploadRequest"), idempotent=True, errors=(403, 409),
        axp="api.media.create_upload.response.v1",
        description="`owner_agent` [default: the caller]; an agent key or a person names only itself (403 "
                    "`actor_mismatch`). 413 `media_too_large`: `size_bytes` is more than the runtime takes. "
                    "`upload_url` carries a token that is the capability to upload (until `expires_at`); it is "
                    "answered only here (an Idempotency-Key repeat answers a new one and the old one stops working)."),
    ("PUT", "/v1/media/upload/{upload_id}"): Op(
        "Upload the bytes (the upload_url of create-upload)", "media",
        _ok(upload_id=UUID, status={"type": "string", "const": "pending"}, received_bytes=INT,
            sha256={**STR, "pattern": "^[a-f0-9]{64}$"}, size_bytes=INT),
        body=_FILE, body_media="application/octet-stream", auth=False,
        query=(("token", STR, "The upload URL's token (the capability; no API key is needed)."),),
        errors=(404, 409, 410, 413, 429),
        description="The body is the file (any Content-Type). Past the upload's `size_bytes` it is 413 "
                    "`media_too_large` (at once when Content-Length says so: nothing is stored). Answered once the "
                    "bytes are durable; a new PUT replaces them until the upload is finalized (then 409). A wrong "
                    "token is 404 and counts as a guess (429 past the limit on such guesses per address)."),
    ("POST", "/v1/media/finalize-upload"): Op(
        "Finalize an upload: the bytes must have the size (and sha256) stated", "media",
        _ok(upload_id=UUID, owner_agent=STR, bucket=STR, object_path=STR, mime_type=STR, size_bytes=INT,
            sha256=nullable(STR), status={"type": "string", "const": "ready"}, finalized_at=TIME),
        body=ref("MediaFinalizeUploadRequest"), idempotent=True, errors=(403, 404, 409, 410),
        axp="api.media.finalize_upload.response.v1",
        description="422 `size_mismatch` / `sha256_mismatch` when the bytes received differ from what this call or "
                    "create-upload stated: nothing changes, the upload stays pending and unusable. 409 "
                    "`upload_incomplete` before any PUT; 410 once the upload URL expired. Only the owner or the "
                    "workspace admin key."),
    ("GET", "/v1/media/{upload_id}"): Op(
        "An upload", "media", _ok(upload=ref("MediaUpload")), axp="api.media.get.response.v1",
        description="Its owner, the workspace key and people, the participants of an intent that attached it and "
                    "the holders of an inbox thread whose message attached it may read it; others get 404."),
    ("GET", "/v1/media/download/{upload_id}"): Op(
        "Download a finalized upload (Content-Disposition: attachment)", "media", "file", errors=(409,),
        description="Served as its type only when no browser runs that type (else application/octet-stream), with "
                    "`X-Content-Type-Options: nosniff` and a sandboxing CSP. 409 `upload_not_ready` before finalize."),
    ("GET", "/v1/media/preview/{upload_id}"): Op(
        "Preview a finalized upload (raster images inline, anything else as the download)", "media", "file",
        errors=(409,)),
    # inbox and approvals
    ("GET", "/v1/inbox"): Op(
        "The owner's threads", "inbox", _ok(threads=array(ref("InboxThread"))), owner=True, errors=(403,),
        query=(("status", STR, "Comma-separated: pending, active, done."), _limit(100, 500)),
        axp="api.inbox.list.response.v1"),
    ("GET", "/v1/inbox/changes"): Op(
        "The owner's changed threads in commit order", "inbox",
        _ok(changes=array(obj({"cursor": STR, "thread": ref("InboxThread")})), next_cursor=nullable(STR),
            has_more=BOOL),
        query=(("cursor", STR, "`next_cursor` of the previous page."), _limit(50, 200)), owner=True,
        errors=(403,), axp="api.inbox.changes.response.v1"),
    ("GET", "/v1/inbox/{thread_id}"): Op("A thread", "inbox", _THREAD_ANSWER, owner=True, errors=(403,),
                                         axp="api.inbox.thread.response.v1"),
    ("POST", "/v1/inbox/{thread_id}/reply"): Op(
        "Reply in a thread", "inbox", _ok(thread=ref("InboxThread"), message_id=STR), body=ref("ReplyRequest"),
        owner=True, idempotent=True, errors=(403, 409)),
    ("POST", "/v1/inbox/{thread_id}/delegate"): Op(
        "Hand a thread to another owner", "inbox", _THREAD_ANSWER, body=ref("DelegateRequest"), owner=True,
        idempotent=True, errors=(403, 409), axp="api.inbox.thread.response.v1"),
    ("POST", "/v1/inbox/{thread_id}/approve"): Op(
        "Approve (closes the thread)", "inbox", _THREAD_ANSWER, body=ref("DecisionRequest"), body_required=False,
        owner=True, idempotent=True, errors=(403, 409), axp="api.inbox.thread.response.v1"),
    ("POST", "/v1/inbox/{thread_id}/reject"): Op(
        "Reject (closes the thread)", "inbox", _THREAD_ANSWER, body=ref("DecisionRequest"), body_required=False,
        owner=True, idempotent=True, errors=(403, 409), axp="api.inbox.thread.response.v1"),
    ("POST", "/v1/inbox/{thread_id}/read"): Op("Mark a thread read", "inbox", _THREAD_ANSWER, owner=True,
                                               errors=(403,), axp="api.inbox.thread.response.v1"),
    ("POST", "/v1/inbox/{thread_id}/messages/delete"): Op(
        "Delete messages for the owner or for everyone", "inbox",
        _ok(thread=ref("InboxThread"), mode=STR, deleted_count=INT, message_ids=array(STR)),
        body=ref("MessagesDeleteRequest"), owner=True, idempotent=True, errors=(403, 409),
        axp="api.inbox.messages.delete.response.v1"),
    ("POST", "/v1/approvals/{approval_id}/decision"): Op(
        "Approve or reject an intent that waits for a person", "inbox",
        _ok(approval=obj({"approval_id": STR, "decision": {"type": "string", "enum": ["approve", "reject"]},
                          "decided_at": TIME}, {"comment": nullable(STR)})),
        body=ref("ApprovalDecisionRequest"), idempotent=True, errors=(403, 409),
        axp="api.approvals.decision.response.v1"),
    # quotas and usage
    ("GET", "/v1/quotas"): Op(
        "The workspace's quota policy: a limit per dimension", "quotas", _ok(quota_policy=ref("QuotaPolicy")),
        query=(("org_id", STR, "This runtime's (may be left out)."), ("workspace_id", STR, "The same.")),
        errors=(403, 404), description="The workspace key and people; agent keys get 403. Never refused by the "
                                       "request-rate quota."),
    ("PATCH", "/v1/quotas"): Op(
        "Change quota limits (the workspace key)", "quotas",
        _ok(quota_policy=ref("QuotaPolicy"), applies_to=STR,
            below_current_usage=array(obj({"dimension": STR, "used": INT, "limit": INT}))),
        body=ref("QuotaPatchRequest"), errors=(403, 404),
        description="The dimensions given are set (`null`: no limit), the others kept; an unknown dimension is 422 "
                    "naming it. A limit below what is used already is accepted and applies to new work only (the "
                    "answer lists them in `below_current_usage`). Past a limit a call is refused with "
                    "`quota_exceeded` (429 with Retry-After for intents a day, requests a minute and streams; 413 "
                    "for a payload; 409 for stored bytes, people and service accounts) unless `hard_enforcement` "
                    "is false or `overage_mode` is grace or bill_overage: then it is counted as overage."),
    ("GET", "/v1/portal/enterprise/overview"): Op(
        "The enterprise overview: the quota policy and today's usage (what `axme quota show` reads)", "quotas",
        _ok(overview=obj({"org_id": STR, "workspace_id": STR, "quota_policy": ref("QuotaPolicy"),
                          "usage_summary": obj({"window": STR, "window_start": TIME, "window_end": TIME,
                                                "dimensions": obj({d: ref("UsageDimension")
                                                                   for d in _QUOTA_DIMENSIONS}),
                                                "counters": OBJ})})),
        query=(("org_id", STR, "This runtime's (may be left out)."), ("workspace_id", STR, "The same.")),
        errors=(403, 404)),
    ("GET", "/v1/usage/summary"): Op(
        "Usage of a calendar window (today, this week from Monday, this month; UTC)", "usage",
        _ok(summary=ref("UsageSummary")),
        query=(("org_id", STR, "This runtime's (may be left out)."), ("workspace_id", STR, "The same."),
               ("window", {"type": "string", "enum": ["day", "week", "month"], "default": "day"}, "")),
        errors=(403, 404), description="The workspace key and people; agent keys get 403."),
    ("GET", "/v1/usage/timeseries"): Op(
        "Usage per UTC day, the last window_days days (today last)", "usage",
        _ok(series=obj({"org_id": STR, "workspace_id": STR, "granularity": {"type": "string", "const": "day"},
                        "window_days": INT,
                        "points": array(obj({"at": TIME, "dimensions": obj({d: {**INT, "minimum": 0}
                                                                            for d in _QUOTA_DIMENSIONS}),
                                             "counters": _USAGE_COUNTERS, "refused": OBJ}))})),
        query=(("org_id", STR, "This runtime's (may be left out)."), ("workspace_id", STR, "The same."),
               ("window_days", {"type": "integer", "minimum": 1, "maximum": 90, "default": 30}, "")),
        errors=(403, 404),
        description="Per day: intents created, the busiest minute's requests, the largest payload, the most streams "
                    "open at once; stored bytes, people and service accounts at the day's end; and its counters."),
    ("POST", "/v1/usage/rollups/daily"): Op(
        "Roll up the ended days of the window: count their intents again from the rows, fold minutes into days",
        "usage",
        _ok(rollup=obj({"org_id": STR, "workspace_id": STR, "window_days": INT, "rolled_up_at": TIME,
                        "days": array(obj({"day": STR, "intents_created": INT, "intent_payload_bytes": INT,
                                           "requests_peak_minute": INT}))})),
        query=(("org_id", STR, "This runtime's (may be left out)."), ("workspace_id", STR, "The same."),
               ("window_days", {"type": "integer", "minimum": 1, "maximum": 90, "default": 30}, "")),
        errors=(403, 404), description="The workspace key only. No request body is read."),
    ("GET", "/v1/capabilities"): Op(
        "What this runtime supports", "meta", _ok(capabilities=array(STR), supported_intent_types=array(STR)),
        axp="api.capabilities.get.response.v1"),
    # sender policies (engine/policies.py) and billing
    **_policy_operations("/v1/agents/{address}/policy", "policy", "SenderPolicy", "SendPolicyRequest",
                         "An agent's send policy: who may send to it",
                         "The agent's own key may set it too; another agent's key gets 404."),
    **_policy_operations("/v1/agents/{address}/receive-override", "override", "ReceiveOverride",
                         "ReceiveOverrideRequest", "An agent's receive override of its org's receive policy",
                         "Set by the workspace key or a person (403 for an agent key); the agent reads its own."),
    **_policy_operations("/v1/organizations/{org_id}/receive-policy", "policy", "SenderPolicy",
                         "ReceivePolicyRequest",
                         "The org's receive policy: which agents of other organizations may send to its agents",
                         "Set by the workspace key or a person (403 for an agent key). Any org_id but the "
                         "runtime's is 404."),
    ("PATCH", "/v1/billing/plan"): _billing("Change the billing plan"),
    ("GET", "/v1/billing/plan"): _billing("The billing plan"),
    ("GET", "/v1/billing/invoices"): _billing("List invoices"),
    ("GET", "/v1/billing/invoices/{invoice_id}"): _billing("An invoice"),
    # MCP
    ("POST", "/mcp"): Op(
        "MCP: JSON-RPC 2.0 (initialize, ping, tools/list, tools/call, resources/list, prompts/list)", "mcp",
        ref("JsonRpcResult"),
        body={"anyOf": [ref("JsonRpcRequest"), array(ref("JsonRpcRequest"), minItems=1, maxItems=100)]},
        description="AXME's MCP surface (docs/mcp-reference.md), stateless: one message or a batch per POST, "
                    "answered as application/json (GET is 405: no server-sent stream, no session). Without a "
                    "credential only initialize, ping, tools/list and the tools axme.check_nick, "
                    "axme.register_nick and axme.check_invite_status answer. A lone request's error sets the HTTP "
                    "status below; a batch is 200.",
        extra={"responses": _rpc_responses(), "security": [{}, {"apiKey": []}, {"bearer": []}]}),
    # task pages
    ("GET", "/t/{token}"): Op(
        "The page of a task mail's link (HTML)", "task-pages", "html", auth=False, errors=(404, 410, 429),
        description="The token is the credential. Refusals are HTML pages too."),
    ("POST", "/t/{token}"): Op(
        "Answer the task of a task mail's link (an HTML form post)", "task-pages", "html", auth=False,
        body={"type": "object", "properties": {"outcome": STR, "comment": STR, "ts": STR, "nonce": STR}},
        errors=(400, 403, 404, 410, 413, 415, 422, 429),
        description="`application/x-www-form-urlencoded` from the page itself; answers are HTML pages."),
}

# ---------------------------------------------------------------------------------------------
# principals, aliases, routing endpoints, transport bindings, access requests (AXME's d6 family)


def _governance_models() -> dict[str, type[BaseModel]]:
    from axme_cli.protocol import access_requests, routing

    return {
        "PrincipalCreateRequest": routing.PrincipalCreateRequest,
        "AliasBindRequest": routing.AliasBindRequest,
        "RoutingEndpointRegisterRequest": routing.RoutingEndpointRegisterRequest,
        "RoutingEndpointUpdateRequest": routing.RoutingEndpointUpdateRequest,
        "RoutingResolveRequest": routing.RoutingResolveRequest,
        "TransportBindingUpsertRequest": routing.TransportBindingUpsertRequest,
        "AccessRequestCreateRequest": access_requests.AccessRequestCreateRequest,
        "AccessRequestReviewRequest": access_requests.AccessRequestReviewRequest,
    }


def _enum(*values: str) -> Schema:
    return {"type": "string", "enum": list(values)}


_TENANCY = {"org_id": STR, "workspace_id": STR}
_TENANCY_QUERY = (("org_id", STR, "This runtime's organisation (may be left out; another is 404)."),
                  ("workspace_id", STR, "This runtime's workspace (may be left out; another is 404)."))
_PRINCIPAL_QUERY = ("principal_id", STR, "Only this principal's (its id, or an agent's address or name); an agent "
                                         "key: only its own.")
_TRANSPORT = _enum("matrix", "http", "queue", "webhook")
_AUTH_MODE = _enum("mtls", "jwt", "signed_key", "none")
COMPONENTS["Principal"] = obj(
    {"principal_id": STR, **_TENANCY, "principal_type": _enum("user", "service_agent", "service_account"),
     "display_name": nullable(STR), "status": _enum("active", "suspended", "inactive"), "metadata": OBJ,
     "created_at": TIME, "updated_at": TIME, "address": STR},
    description="A principal (api.principals.*; org_id and workspace_id are this runtime's names): a registered one "
                "(`principal_id` a UUID) or an agent with a service account (`principal_id` its address). `address`: "
                "where it receives intents.")
COMPONENTS["Alias"] = obj(
    {"alias_id": STR, "principal_id": STR, **_TENANCY, "alias": STR,
     "alias_type": _enum("communication", "service", "external"), "status": _enum("active", "revoked"),
     "metadata": OBJ, "created_at": TIME, "updated_at": TIME, "revoked_at": nullable(TIME), "address": STR},
    description="An alias (api.aliases.*): while active, an intent whose `to_agent` is it (any case) goes to "
                "`address`, and records `to_alias`.")
_ROUTE_FIELDS: dict[str, Schema] = {
    "route_id": STR, "principal_id": STR, **_TENANCY, "transport_type": _TRANSPORT, "endpoint_url": STR,
    "auth_mode": _AUTH_MODE, "region": nullable(STR), "cluster_id": nullable(STR),
    "failover_policy": _enum("none", "same_region", "cross_region"), "priority": {**INT, "minimum": 1},
    "health_status": _enum("healthy", "degraded", "unhealthy", "unknown"),
    "status": _enum("active", "inactive", "draining"), "metadata": OBJ, "created_at": TIME, "updated_at": TIME,
    "address": STR}
COMPONENTS["RoutingEndpoint"] = obj(
    _ROUTE_FIELDS,
    description="A routing endpoint (api.routing.endpoints.*): the address's intents are POSTed to `endpoint_url` "
                "while it is active and not unhealthy, the lowest `priority` number first.")
COMPONENTS["ResolvedRoute"] = obj(
    _ROUTE_FIELDS,
    {"source": _enum("routing_endpoint", "transport_binding", "service_account", "agent_feed")},
    description="Where intents may go, in a route's shape: a routing endpoint, a transport binding (`route_id` its "
                "binding_id), the service account's http binding (its id), or the agent's feed (`feed:<address>`, "
                "transport `queue`: no URL is called, the agent reads it).")
COMPONENTS["TransportBinding"] = obj(
    {"binding_id": STR, "principal_id": STR, **_TENANCY, "transport_type": _TRANSPORT, "transport_handle": STR,
     "priority": {**INT, "minimum": 1}, "status": _enum("active", "inactive"), "metadata": OBJ,
     "created_at": TIME, "updated_at": TIME, "address": STR},
    description="A transport binding (api.transports.bindings.*): one per principal and transport; `http` / "
                "`webhook`: the URL intents are POSTed to, after the principal's routing endpoints.")
COMPONENTS["AccessRequest"] = obj(
    {"access_request_id": UUID,
     "request_type": _enum("create_organization", "join_organization", "elevated_role", "quota_upgrade",
                           "send_permission"),
     "state": _enum("pending", "under_review", "approved", "rejected", "waitlisted", "expired"),
     "requester_actor_id": STR, **_TENANCY,
     "requested_role": nullable(_enum("org_owner", "org_admin", "workspace_admin", "member", "billing_viewer",
                                      "security_auditor")),
     "requested_tier": nullable(_enum("starter", "business", "email_verified", "corporate")),
     "recipient": nullable(STR), "company_name": nullable(STR), "justification": nullable(STR),
     "expires_at": nullable(TIME), "reviewer_actor_id": nullable(STR), "review_comment": nullable(STR),
     "reviewed_at": nullable(TIME), "created_at": TIME, "updated_at": TIME},
    description="An access request (api.access_requests.*, plus AXME CLI's requested_tier and this runtime's "
                "recipient and expires_at).")
_SIGNING_SECRET = {"signing_secret": {**STR, "description": "The X-Axme-Signature secret this call made: answered "
                                                            "once."}}
_REMOVED = {"removed": TRUE}

OPERATIONS.update({
    ("POST", "/v1/principals"): Op(
        "Register a principal: an identity intents may be routed to", "principals", _ok(principal=ref("Principal")),
        body=ref("PrincipalCreateRequest"), idempotent=True, errors=(403, 404, 409),
        description="The workspace key or a person (an agent key: 403). `address` (an agent of this workspace) "
                    "registers that agent; without it the principal gets `agent://<org>/<workspace>/principal-<id>`. "
                    "One principal per address (409 `principal_exists`). `org_id` / `workspace_id`: this runtime's "
                    "(another is 404)."),
    ("GET", "/v1/principals/{principal_id}"): Op(
        "A principal (its id, or an agent's address or name)", "principals", _ok(principal=ref("Principal")),
        description="An agent key reads only itself (others: 404)."),
    ("POST", "/v1/aliases"): Op(
        "Bind an alias to a principal: intents sent to it go to the principal's address", "aliases",
        _ok(alias=ref("Alias")), body=ref("AliasBindRequest"), errors=(403, 404, 409),
        description="The workspace key or a person. Matched without regard to case; an `agent://` address, a nick "
                    "or the runtime's own address is refused (422 `invalid_alias`). Bound to another principal "
                    "already: 409 `alias_taken`; to the same: the alias as it is."),
    ("GET", "/v1/aliases"): Op(
        "List aliases, newest first", "aliases", _ok(aliases=array(ref("Alias"))),
        query=(*_TENANCY_QUERY, _PRINCIPAL_QUERY, ("status", _enum("active", "revoked"), ""), _limit(200, 1000)),
        errors=(404,)),
    ("POST", "/v1/aliases/{alias_id}/revoke"): Op(
        "Revoke an alias (intents sent to it from now on no longer resolve it)", "aliases", _ok(alias=ref("Alias")),
        errors=(403,)),
    ("GET", "/v1/aliases/resolve"): Op(
        "Which principal an alias names", "aliases",
        _ok(resolution=obj({"alias": ref("Alias"), "principal": ref("Principal")})),
        query=(*_TENANCY_QUERY, ("alias", {**STR, "minLength": 3, "maxLength": 255}, "The alias (required).")),
        errors=(404,), description="404 `alias_not_found` unless the alias is active."),
    ("POST", "/v1/routing/endpoints"): Op(
        "Register a routing endpoint: the principal's intents are POSTed to its URL", "routing",
        obj({"ok": TRUE, "route": ref("RoutingEndpoint")}, _SIGNING_SECRET),
        body=ref("RoutingEndpointRegisterRequest"), idempotent=True, errors=(404,),
        description="`transport_type` http or webhook, `auth_mode` signed_key (a signing secret is made and answered "
                    "once) or none: what this runtime can run (others: 422 naming the field). A literal internal "
                    "address in the URL is refused unless the runtime allows it (422). An agent key routes only "
                    "its own address."),
    ("GET", "/v1/routing/endpoints"): Op(
        "List routing endpoints", "routing", _ok(routes=array(ref("RoutingEndpoint"))),
        query=(*_TENANCY_QUERY, _PRINCIPAL_QUERY, _limit(200, 1000)), errors=(404,)),
    ("PATCH", "/v1/routing/endpoints/{route_id}"): Op(
        "Change a routing endpoint (unhealthy, inactive or draining: delivery fails over to the next)", "routing",
        obj({"ok": TRUE, "route": ref("RoutingEndpoint")}, _SIGNING_SECRET),
        body=ref("RoutingEndpointUpdateRequest")),
    ("DELETE", "/v1/routing/endpoints/{route_id}"): Op(
        "Remove a routing endpoint", "routing", _ok(route=obj({"route_id": STR, **_REMOVED}))),
    ("POST", "/v1/routing/resolve"): Op(
        "Where an alias's or principal's intents are delivered", "routing",
        _ok(resolution=obj({"alias": nullable(ref("Alias")), "principal": ref("Principal"),
                            "selected_route": ref("ResolvedRoute"), "candidate_routes": array(ref("ResolvedRoute")),
                            "resolver_chain": array(STR)})),
        body=ref("RoutingResolveRequest"), errors=(404,),
        description="`selected_route` is where an intent sent now goes (the first of `candidate_routes`): its "
                    "routing endpoints, then its transport bindings, then its service account's http binding, else "
                    "its feed."),
    ("POST", "/v1/transports/bindings"): Op(
        "Bind a principal to a transport (one per transport: a repeat changes it)", "transports",
        obj({"ok": TRUE, "binding": ref("TransportBinding")}, _SIGNING_SECRET),
        body=ref("TransportBindingUpsertRequest"), errors=(404,),
        description="http or webhook (others: 422): `transport_handle` is the URL intents are POSTed to, signed with "
                    "the binding's secret (answered once, when the binding is made)."),
    ("GET", "/v1/transports/bindings"): Op(
        "List transport bindings", "transports", _ok(bindings=array(ref("TransportBinding"))),
        query=(*_TENANCY_QUERY, _PRINCIPAL_QUERY, _limit(200, 1000)), errors=(404,)),
    ("DELETE", "/v1/transports/bindings/{binding_id}"): Op(
        "Remove a transport binding", "transports", _ok(binding=obj({"binding_id": STR, **_REMOVED}))),
    ("POST", "/v1/access-requests"): Op(
        "Ask for access: to join (an email), a quota tier, or to send to an agent", "access-requests",
        _ok(access_request=ref("AccessRequest")), body=ref("AccessRequestCreateRequest"), idempotent=True,
        errors=(403, 404),
        description="`request_type` join_organization, quota_upgrade or send_permission; create_organization and "
                    "elevated_role cannot be granted here (422 naming request_type and the types taken). An agent "
                    "key asks only for itself."),
    ("GET", "/v1/access-requests"): Op(
        "List access requests, newest first (an agent key: those it filed)", "access-requests",
        _ok(access_requests=array(ref("AccessRequest"))),
        query=(*_TENANCY_QUERY, ("state", _enum("pending", "under_review", "approved", "rejected", "waitlisted",
                                                "expired"), "")),
        errors=(404,)),
    ("GET", "/v1/access-requests/{access_request_id}"): Op(
        "An access request", "access-requests", _ok(access_request=ref("AccessRequest"))),
    ("POST", "/v1/access-requests/{access_request_id}/review"): Op(
        "Approve, reject or waitlist an access request (approving grants it)", "access-requests",
        _ok(access_request=ref("AccessRequest")), body=ref("AccessRequestReviewRequest"), idempotent=True,
        errors=(403, 409),
        description="The workspace key or a person. Only a pending or waitlisted request (409 otherwise)."),
    ("GET", "/v1/portal/enterprise/access-requests"): Op(
        "The access-request queue, with counts per state (people and the workspace key)", "access-requests",
        _ok(org_id=STR, workspace_id=STR, access_requests=array(ref("AccessRequest")),
            counts={"type": "object", "additionalProperties": INT}),
        query=(*_TENANCY_QUERY, ("state", _enum("pending", "under_review", "approved", "rejected", "waitlisted",
                                                "expired"), "")),
        errors=(403, 404)),
})


# ---------------------------------------------------------------------------------------------
# organizations, workspaces, members (AXME's organizations.*)


def _org_models() -> dict[str, type[BaseModel]]:
    from axme_cli.protocol import organizations

    return {name: getattr(organizations, name) for name in (
        "OrganizationCreateRequest", "OrganizationUpdateRequest", "WorkspaceCreateRequest", "WorkspaceUpdateRequest",
        "MemberAddRequest", "MemberUpdateRequest", "MemberIncludeRequest", "WorkspaceSelectionRequest")}


_ROLE = _enum("org_owner", "org_admin", "workspace_admin", "member", "billing_viewer", "security_auditor")
COMPONENTS["Organization"] = obj(
    {"org_id": STR, "name": STR, "legal_name": nullable(STR), "primary_domain": nullable(STR),
     "status": _enum("pending", "active", "suspended", "archived"), "metadata": OBJ, "created_at": TIME,
     "updated_at": TIME},
    description="An organization (api.organizations.*). `org_id` is also the first segment of its agents' addresses: "
                "the runtime's default organization keeps its name (`local`), a created one is a UUID.")
COMPONENTS["Workspace"] = obj(
    {"workspace_id": STR, "org_id": STR, "name": STR, "environment": _enum("sandbox", "staging", "production"),
     "status": _enum("active", "suspended", "archived"), "region": nullable(STR), "created_at": TIME,
     "updated_at": TIME},
    description="A workspace (api.organizations.workspaces.*); `workspace_id` is the second segment of its agents' "
                "addresses.")
COMPONENTS["WorkspaceKey"] = obj(
    {"key_id": STR, "token": STR, "key_hint": STR, "org_id": STR, "workspace_id": STR, "created_at": TIME},
    description="An admin key of a workspace: `token` is shown here only (the runtime keeps its sha256).")
COMPONENTS["Member"] = obj(
    {"member_id": UUID, "org_id": STR, "workspace_id": nullable(STR), "actor_id": STR, "role": _ROLE,
     "status": _enum("active", "invited", "suspended", "removed"), "created_at": TIME, "updated_at": TIME},
    description="A member (api.organizations.members.*): a person, by actor id or email, with a role in the "
                "organization (`workspace_id` null) or in one workspace.")
_ORG_WHO = ("The runtime's admin API key, or a person by their membership: org_owner / org_admin manage, "
            "billing_viewer / security_auditor read, a workspace_admin its own workspace. An agent key: 403; a person "
            "who is no member: 404.")

OPERATIONS.update({
    ("GET", "/v1/portal/personal/context"): Op(
        "The organizations and workspaces the caller may see, with its roles", "organizations",
        _ok(context=obj({"org_id": STR, "workspace_id": STR}), account=obj({"email": nullable(STR)}),
            organizations=array(obj({"org_id": STR, "name": STR, "status": STR, "roles": array(STR),
                                     "workspaces": array(STR)})),
            workspaces=array({"allOf": [ref("Workspace"), obj({"org_name": STR, "roles": array(STR)})]}),
            selected_organization=nullable(OBJ), selected_workspace=nullable(OBJ),
            guidance=obj({"workspace_count": INT})),
        errors=(403,),
        description="The runtime's admin key sees every organization (role `operator`); a person those of their "
                    "memberships and the runtime's default workspace (role `member`). `context`: the pair the "
                    "runtime serves the credential in (a person's: the workspace selected for their session)."),
    ("POST", "/v1/portal/personal/workspace-selection"): Op(
        "Act in a workspace: the person's session works there from now on", "organizations",
        _ok(context=obj({"org_id": STR, "workspace_id": STR}), selected_organization=nullable(OBJ),
            selected_workspace=nullable(OBJ)),
        body=ref("WorkspaceSelectionRequest"), errors=(404, 409),
        description="A person's login (an access token) only: an API key acts in its own workspace (401 "
                    "missing_actor_token). Only a workspace of one of the person's active memberships (a membership "
                    "of its organization, or of the workspace): else 404 as for one that does not exist; a "
                    "suspended or archived one: 409 workspace_not_active. Every access token of the session then "
                    "acts there (each family the runtime serves in other workspaces, as that workspace's admin key; "
                    "the others 403 workspace_not_served) until another selection, or until the membership ends. "
                    "The runtime's default pair goes back to the default workspace."),
    ("POST", "/v1/workspaces/{workspace_id}/members/include"): Op(
        "Make a person a member of a workspace", "organizations", _ok(member=ref("Member")),
        body=ref("MemberIncludeRequest"), idempotent=True, errors=(400, 403, 404, 409),
        description=_ORG_WHO + " `role`: member (the default) or workspace_admin. A body `org_id` other than the "
                               "workspace's, or a workspace the caller does not see: 404; a body `workspace_id` "
                               "other than the path's: 400; a live membership of the person there: 409."),
    ("DELETE", "/v1/workspaces/{workspace_id}/members/{member_id}/exclude"): Op(
        "Remove a member of a workspace", "organizations",
        _ok(result=obj({"member_id": UUID, "org_id": STR, "workspace_id": STR, "status": STR, "excluded": TRUE,
                        "removed_at": TIME})),
        errors=(403, 404), description=_ORG_WHO + " A member of the organization or of another workspace: 404. "
                                                  "Excluding one already removed answers the same."),
    ("POST", "/v1/organizations"): Op(
        "Create an organization (the runtime's admin key)", "organizations", _ok(organization=ref("Organization")),
        body=ref("OrganizationCreateRequest"), idempotent=True, errors=(403,),
        axp="api.organizations.create.response.v1",
        description="`requested_by_actor_id` (an actor id or an email) becomes its org_owner."),
    ("GET", "/v1/organizations/{org_id}"): Op(
        "An organization, with how many workspaces and members (not removed) it has", "organizations",
        _ok(organization={"allOf": [ref("Organization"), obj({"workspaces_count": INT, "members_count": INT})]}),
        errors=(403,),
        axp="api.organizations.get.response.v1", description=_ORG_WHO),
    ("PATCH", "/v1/organizations/{org_id}"): Op(
        "Change an organization", "organizations", _ok(organization=ref("Organization")),
        body=ref("OrganizationUpdateRequest"), idempotent=True, errors=(403, 409),
        axp="api.organizations.update.response.v1",
        description=_ORG_WHO + " The default organization stays active (409)."),
    ("POST", "/v1/organizations/{org_id}/workspaces"): Op(
        "Create a workspace, and an admin key of it", "organizations",
        _ok(workspace=ref("Workspace"), key=ref("WorkspaceKey")), body=ref("WorkspaceCreateRequest"),
        idempotent=True, errors=(403, 409),
        description=_ORG_WHO + " A body `org_id` other than the path's: 400; a name the organization has: 409. "
                               "`key.token` is answered once (a replay of the Idempotency-Key answers it again)."),
    ("POST", "/v1/organizations/{org_id}/workspaces/{workspace_id}/keys"): Op(
        "Make another admin key of a workspace", "organizations", _ok(key=ref("WorkspaceKey")), errors=(403,),
        description=_ORG_WHO + " So far a key of a workspace other than the runtime's default works, in its own "
                               "workspace, on the organization, service-account, agent-directory, schedule, mesh, "
                               "quota, usage, sender-policy, alias, routing, transport-binding, access-request, "
                               "principal and audit routes, and on intents, workflows, inbox, approvals, tasks, "
                               "webhooks, deliveries and MCP (elsewhere 403 workspace_not_served)."),
    ("GET", "/v1/organizations/{org_id}/workspaces"): Op(
        "List an organization's workspaces, oldest first", "organizations", _ok(workspaces=array(ref("Workspace"))),
        errors=(403,), axp="api.organizations.workspaces.list.response.v1", description=_ORG_WHO),
    ("PATCH", "/v1/organizations/{org_id}/workspaces/{workspace_id}"): Op(
        "Change a workspace", "organizations", _ok(workspace=ref("Workspace")), body=ref("WorkspaceUpdateRequest"),
        idempotent=True, errors=(403, 409), axp="api.organizations.workspaces.update.response.v1",
        description=_ORG_WHO + " The default workspace stays active (409)."),
    ("GET", "/v1/organizations/{org_id}/members"): Op(
        "List an organization's members (not removed), oldest first", "organizations",
        _ok(members=array(ref("Member"))), query=(("workspace_id", STR, "Only this workspace's members."),),
        errors=(403,), axp="api.organizations.members.list.response.v1", description=_ORG_WHO),
    ("POST", "/v1/organizations/{org_id}/members"): Op(
        "Add a member", "organizations", _ok(member=ref("Member")), body=ref("MemberAddRequest"), idempotent=True,
        errors=(403, 409), axp="api.organizations.members.add.response.v1",
        description=_ORG_WHO + " One live membership per person and scope (409 member_exists)."),
    ("PATCH", "/v1/organizations/{org_id}/members/{member_id}"): Op(
        "Change a member's role or status", "organizations", _ok(member=ref("Member")),
        body=ref("MemberUpdateRequest"), idempotent=True, errors=(403, 409),
        axp="api.organizations.members.update.response.v1",
        description=_ORG_WHO + " The last active org_owner stays one (409 last_owner)."),
    ("DELETE", "/v1/organizations/{org_id}/members/{member_id}"): Op(
        "Remove a member", "organizations",
        obj({"ok": TRUE, "removed": TRUE, "org_id": STR, "member_id": UUID, "removed_at": TIME}),
        errors=(403, 409), axp="api.organizations.members.remove.response.v1",
        description=_ORG_WHO + " Removing one already removed answers the same."),
})


_EXTRA_COMPONENTS = {"HealthResponse": OPERATIONS[("GET", "/health")].ok}
_ERROR_TEXT = {
    400: "Malformed request (bad JSON, a NUL byte in the URL, owner_agent and x-owner-agent disagree, ...)",
    401: "No key, or an unknown, revoked or expired one",
    403: "The key may not do this",
    404: "Not found (or not visible to this key)",
    409: "Conflict (a state that does not allow it, a reused Idempotency-Key, a duplicate)",
    410: "Gone (expired)",
    413: "The body is larger than the runtime accepts",
    415: "Unsupported media type",
    422: "The request is well-formed but invalid (schema, address, parameter)",
    429: "Too many requests for this key (or, without one, from this address or for this email), or past a quota "
         "of the workspace (`quota_exceeded`): wait `Retry-After` seconds",
    501: "Not available on a local runtime (error.code not_available_locally)",
    503: "The database is unavailable; retry (details.retryable is true)",
}


def _path_of(route: Route) -> str:
    """``/v1/agents/{address:path}`` -> ``/v1/agents/{address}``."""
    path = route.path
    for name, _ in route.param_convertors.items():
        for suffix in (":path", ":str", ":int", ":uuid"):
            path = path.replace("{" + name + suffix + "}", "{" + name + "}")
    return path


def _error_codes(op: Op, path: str) -> list[int]:
    codes = set(op.errors) | {503}
    if op.ok != "html":
        codes.add(400)  # a NUL byte in the URL, at least
    if op.auth:
        codes |= {401, 429}
    if op.body is not None:
        codes |= {400, 413, 422}
    if "{" in path:
        codes |= {404, 422} if path.startswith("/v1/agents/{") else {404}
    if op.query:
        codes.add(422)
    if op.owner:
        codes |= {400, 403, 404, 422}  # 404: an owner_agent of another workspace of this runtime
    if op.idempotent:
        codes |= {409, 422}
    return sorted(codes)


def _header(name: str, description: str) -> Schema:
    return {"name": name, "in": "header", "required": False, "schema": STR, "description": description}


def _operation(method: str, path: str, op: Op, endpoint: str) -> Schema:
    out: Schema = {"operationId": f"{method.lower()}_{endpoint}", "summary": op.summary, "tags": [op.tag]}
    if method not in ("GET", "DELETE") and op.body is None and op.ok != "html":
        out["description"] = "No request body is read."
    if op.description:
        out["description"] = op.description
    params: list[Schema] = []
    for name in [p[1:-1] for p in path.split("/") if p.startswith("{")]:
        params.append({"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}})
    for name, schema, text in op.query:
        param: Schema = {"name": name, "in": "query", "required": False, "schema": schema}
        if text:
            param["description"] = text
        params.append(param)
    if op.owner:
        params.append({"name": "owner_agent", "in": "query", "required": False, "schema": STR,
                       "description": "The inbox or webhook owner to act for [default: the caller]."})
        params.append(_header("x-owner-agent", "Same as owner_agent (both given: they must agree, else 400)."))
    if op.idempotent:
        params.append({"name": "Idempotency-Key", "in": "header", "required": False,
                       "schema": {"type": "string", "maxLength": 255},
                       "description": "The same key and body answer the first result again."})
    if params:
        out["parameters"] = params
    if op.body is not None:
        media = "application/x-www-form-urlencoded" if op.ok == "html" else op.body_media
        out["requestBody"] = {"required": op.body_required, "content": {media: {"schema": op.body}}}
    if isinstance(op.ok, tuple):
        ok: Schema = {"description": "A Server-Sent Events stream (the schema is one event's)",
                      "content": {"text/event-stream": {"schema": op.ok[1]}}}
    elif op.ok == "html":
        ok = {"description": "An HTML page", "content": {"text/html": {"schema": STR}}}
    elif op.ok == "text":
        ok = {"description": "Plain text", "content": {"text/plain": {"schema": STR}}}
    elif op.ok == "file":
        ok = {"description": "The file's bytes", "content": {"*/*": {"schema": _FILE}},
              "headers": {"Content-Disposition": {"schema": STR, "description": "attachment (preview of a raster "
                                                  "image: inline), with the upload's filename"},
                          "X-Content-Type-Options": {"schema": {"type": "string", "const": "nosniff"}}}}
    else:
        assert isinstance(op.ok, dict)
        ok = {"description": "OK", "content": {"application/json": {"schema": op.ok}}}
    if op.axp:
        out["x-axp-schema"] = f"public_api/{op.axp}.json"
    responses: Schema = {"200": ok}
    for code in _error_codes(op, path):
        if op.ok == "html" and code != 503:
            responses[str(code)] = {"description": _ERROR_TEXT[code] + " (an HTML page)",
                                    "content": {"text/html": {"schema": STR}}}
            continue
        responses[str(code)] = {"$ref": f"#/components/responses/E{code}"}
    out["responses"] = responses
    if not op.auth:
        out["security"] = []
    out.update(op.extra)
    return out


# The dashboard (runtime/ui): pages and forms for a browser, built on this API; not part of it.
NOT_API = ("/ui",)


# Routes a runtime has only when so started (POST /dev/clock/advance: `axme dev --test-clock`).
ONLY_SOMETIMES = {("POST", "/dev/clock/advance")}


def document(routes: list[BaseRoute]) -> dict[str, Any]:
    """The whole document for this route table."""
    paths: dict[str, dict[str, Any]] = {}
    seen: set[tuple[str, str]] = set()
    for route in routes:
        if not isinstance(route, Route) or not route.methods or route.path.startswith(NOT_API):
            continue
        path = _path_of(route)
        for method in sorted(route.methods - {"HEAD"}):
            seen.add((method, path))
            op = OPERATIONS.get((method, path))
            entry = (_operation(method, path, op, route.name) if op is not None else
                     {"summary": "undocumented", "x-undocumented": True,
                      "responses": {"default": {"description": "undocumented"}}})
            paths.setdefault(path, {})[method.lower()] = entry
    stale = sorted(set(OPERATIONS) - seen - ONLY_SOMETIMES)
    if stale:
        raise ValueError(f"documented operations without a route: {stale}")
    error_responses = {}
    for code, text in _ERROR_TEXT.items():
        response: Schema = {"description": text, "content": {"application/json": {"schema": ref("Error")}}}
        if code in (429, 503):
            response["headers"] = {"Retry-After": {"description": "Seconds to wait before retrying",
                                                   "schema": {"type": "string", "pattern": "^[0-9]+$"}}}
        error_responses[f"E{code}"] = response
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "axme runtime (AXP)",
            "version": __version__,
            "description": "The HTTP API of `axme dev` / `axme server`. Send the key as `x-api-key` or "
                           "`Authorization: Bearer <key>`; a person's access token as `Authorization: Bearer`. "
                           "Errors: `{\"error\": {\"code\", \"message\", \"details\"}, \"detail\"}`.",
        },
        "security": [{"apiKey": []}, {"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": {**COMPONENTS, **_EXTRA_COMPONENTS, **_model_components()},
            "responses": error_responses,
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }

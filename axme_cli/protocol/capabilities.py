"""What this runtime supports, as ``GET /v1/capabilities`` answers it (api.capabilities.get.response.v1).

The one table to update when a feature lands (or goes): add its line in its area. List only what
works in this build; a capability here is a promise the tests keep.
"""

from __future__ import annotations

CAPABILITIES: tuple[str, ...] = (
    # intents (axme-reference.md §2.2)
    "intents.create",
    "intents.idempotency_key",
    "intents.events",  # GET .../events and the SSE stream .../events/stream
    "intents.resume",
    "intents.resolve",
    "intents.bulk_cancel",
    "intents.deadlines",  # deadline_at -> TIMED_OUT, a durable timer
    "intents.any_intent_type",  # any dotted, versioned intent_type is carried; its payload is not interpreted
    "intents.controls",  # POST .../controls: deadline, delivery attempts, redelivery wait; policy_generation CAS
    "intents.policy",  # POST .../policy: grants (resume, update_controls, update_policy) and the envelope
    "schemas",  # POST /v1/schemas, GET /v1/schemas/{type}: payloads checked per schema_mode (none/warn/enforce)
    # delivery bindings (§5)
    "delivery.stream",
    "delivery.poll",
    "delivery.redelivery",  # at-least-once, max_delivery_attempts, intent.delivery_failed
    "delivery.inbox",  # reply_to: completion delivered as an inbox thread
    "delivery.http",  # the http binding: intents POSTed to an agent's callback_url, signed
    "webhooks",  # subscriptions, signed deliveries with retries and dead letters
    "webhooks.replay",
    "deliveries",  # GET /v1/deliveries[/{id}], replay, POST a payload to an http agent
    "deliveries.replay",
    # people in the loop (§1.7, §2.4, §2.5)
    "human_tasks",
    "human_tasks.form_schema",
    "human_tasks.reminders",  # direct task intents too, with escalate_to
    "human_tasks.mail_links",  # notify_email gets a single-use answer page link
    "workflows.human_reminders",
    "workflows.human_escalation",
    "me.tasks",
    "approvals.decision",
    "inbox",
    "inbox.changes",
    # scenarios and workflows (§2.4, §4)
    "scenarios.validate",
    "scenarios.apply",
    "workflows.retry",
    "workflows.compensation",
    "schedules",  # /v1/schedules: a scenario or an intent on a cron schedule, in a time zone
    # the agent mesh (/v1/mesh/*)
    "mesh.heartbeat",  # heartbeats with metrics; health from their age and the delivery failures seen
    "mesh.kill_switch",  # a killed agent gets no deliveries and may not send, on every replica, until resumed
    "mesh.events",  # kills, resumes, health changes
    # identity (§2.1, §2.3)
    "service_accounts",
    "auth.api_keys",
    "auth.email_login",
    "audit.events",  # GET /v1/audit/events: logins, keys, service accounts, deliveries, resolves
    "users.nicks",  # check, register, rename, resolve; @nick and nick@ax as intent and inbox recipients
    "users.profiles",
    "invites",  # single use, with a TTL; accepting gives the accepter a nick and tells the owner (webhook)
    "principals",  # /v1/principals: recipients with an address of their own (agents answer as principals too)
    "aliases",  # /v1/aliases: an intent sent to an alias goes to its principal's address
    "routing",  # /v1/routing/endpoints and resolve: a principal's intents POSTed to its route's URL, by priority
    "transports.bindings",  # /v1/transports/bindings: http/webhook handles, after the routes
    "access_requests",  # join_organization (email login), quota_upgrade, send_permission: approved, granted
    # media (d4): uploads to a URL the runtime serves, finalize with size and sha256, download and preview
    "media.uploads",
    "media.attachments",  # attachments: [{upload_id}] on intents and inbox replies
    # storage: this build runs on either (axme dev / axme server --database-url)
    "storage.sqlite",
    "storage.postgresql",
    "storage.replicas",  # several runtimes on one PostgreSQL database
    # seeing the system: metrics, traces, the dashboard
    "observability.metrics",  # GET /metrics, Prometheus text format
    # assistants
    "mcp",  # POST /mcp: JSON-RPC 2.0, AXME's tools and the runtime's (also `axme mcp` over stdio)
)

# Protocol intent types with a payload schema (axp-spec protocol/intent.*.v1) that the runtime carries.
SUPPORTED_INTENT_TYPES: tuple[str, ...] = (
    "intent.ask.v1",
    "intent.reply.v1",
)


def document() -> dict[str, object]:
    return {"ok": True, "capabilities": list(CAPABILITIES), "supported_intent_types": list(SUPPORTED_INTENT_TYPES)}

-- Principals, aliases, routing endpoints, transport bindings and access requests (AXME's governance family d6).
-- Every row carries the org and workspace it belongs to; every read filters on them. Addresses are this
-- runtime's agent addresses (agent://org/workspace/name): where an alias, a route or a binding delivers.

-- A principal: a named identity that receives at an address (an agent of its own, or an existing agent's).
CREATE TABLE principals (
    principal_id   TEXT PRIMARY KEY,      -- UUIDv7
    org_id         TEXT NOT NULL,
    workspace_id   TEXT NOT NULL,
    principal_type TEXT NOT NULL,         -- user | service_agent | service_account
    display_name   TEXT,
    status         TEXT NOT NULL,         -- active
    metadata       TEXT NOT NULL,         -- JSON object
    address        TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE UNIQUE INDEX principals_address ON principals (org_id, workspace_id, address);

-- An alias: another name an intent may be sent to; it resolves to its principal's address while active.
CREATE TABLE aliases (
    alias_id     TEXT PRIMARY KEY,        -- UUIDv7
    org_id       TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    principal_id TEXT NOT NULL,           -- a principal's id, or an agent's address
    address      TEXT NOT NULL,           -- where it delivers
    alias        TEXT NOT NULL,           -- as bound
    alias_key    TEXT NOT NULL,           -- lower-cased: what a recipient is matched on
    alias_type   TEXT NOT NULL,           -- communication | service | external
    status       TEXT NOT NULL,           -- active | revoked
    metadata     TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    revoked_at   TEXT
);
CREATE UNIQUE INDEX aliases_active ON aliases (org_id, workspace_id, alias_key) WHERE status = 'active';
CREATE INDEX aliases_address ON aliases (org_id, workspace_id, address);

-- A routing endpoint: an http(s) URL an address's intents are POSTed to (the lowest priority number first).
CREATE TABLE routing_endpoints (
    route_id        TEXT PRIMARY KEY,     -- UUIDv7
    org_id          TEXT NOT NULL,
    workspace_id    TEXT NOT NULL,
    principal_id    TEXT NOT NULL,
    address         TEXT NOT NULL,
    transport_type  TEXT NOT NULL,        -- http | webhook
    endpoint_url    TEXT NOT NULL,
    auth_mode       TEXT NOT NULL,        -- signed_key | none
    region          TEXT,
    cluster_id      TEXT,
    failover_policy TEXT NOT NULL,
    priority        BIGINT NOT NULL,
    health_status   TEXT NOT NULL,        -- healthy | degraded | unhealthy | unknown
    status          TEXT NOT NULL,        -- active | inactive | draining
    metadata        TEXT NOT NULL,
    signing_secret  TEXT,                 -- signed_key: the X-Axme-Signature secret (kept to sign, never shown)
    created_by      TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX routing_endpoints_address ON routing_endpoints (org_id, workspace_id, address);

-- A transport binding: an address's handle on one transport (http/webhook: the URL POSTed to); one per transport.
CREATE TABLE transport_bindings (
    binding_id       TEXT PRIMARY KEY,    -- UUIDv7
    org_id           TEXT NOT NULL,
    workspace_id     TEXT NOT NULL,
    principal_id     TEXT NOT NULL,
    address          TEXT NOT NULL,
    transport_type   TEXT NOT NULL,       -- http | webhook
    transport_handle TEXT NOT NULL,
    priority         BIGINT NOT NULL,
    status           TEXT NOT NULL,       -- active | inactive
    metadata         TEXT NOT NULL,
    signing_secret   TEXT NOT NULL,
    created_by       TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE UNIQUE INDEX transport_bindings_address ON transport_bindings (org_id, workspace_id, address, transport_type);

-- An access request, and what an approved one granted (access_grants: read by whatever honours the grant).
CREATE TABLE access_requests (
    access_request_id  TEXT PRIMARY KEY,  -- UUIDv7
    org_id             TEXT NOT NULL,
    workspace_id       TEXT NOT NULL,
    request_type       TEXT NOT NULL,     -- join_organization | quota_upgrade | send_permission
    state              TEXT NOT NULL,     -- pending | approved | rejected | waitlisted
    requester_actor_id TEXT NOT NULL,
    requested_role     TEXT,
    requested_tier     TEXT,
    recipient          TEXT,              -- send_permission: the agent it asks to send to
    company_name       TEXT,
    justification      TEXT,
    expires_at         TEXT,
    created_by         TEXT NOT NULL,     -- the credential's address
    reviewer_actor_id  TEXT,
    review_comment     TEXT,
    reviewed_at        TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);
CREATE INDEX access_requests_scope ON access_requests (org_id, workspace_id, access_request_id);

CREATE TABLE access_grants (
    grant_id          TEXT PRIMARY KEY,   -- UUIDv7
    org_id            TEXT NOT NULL,
    workspace_id      TEXT NOT NULL,
    grant_type        TEXT NOT NULL,      -- member | quota_tier | send
    subject           TEXT NOT NULL,      -- member: an email; quota_tier: the workspace; send: the sender's address
    target            TEXT,               -- send: the recipient's address
    value             TEXT,               -- quota_tier: the tier
    access_request_id TEXT NOT NULL,
    granted_by        TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    revoked_at        TEXT
);
CREATE INDEX access_grants_subject ON access_grants (org_id, workspace_id, grant_type, subject);

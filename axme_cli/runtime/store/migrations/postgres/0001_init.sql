-- Foundation schema. Migrations are append-only: never edit a released file, add the next one.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE intents (
    intent_id             TEXT PRIMARY KEY,
    intent_type           TEXT NOT NULL,
    correlation_id        TEXT NOT NULL,
    from_agent            TEXT NOT NULL,
    to_agent              TEXT NOT NULL,
    status                TEXT NOT NULL,
    waiting_reason        TEXT,
    last_seq              BIGINT NOT NULL,
    delivery_attempt      BIGINT NOT NULL DEFAULT 0,
    delivered_attempt     BIGINT NOT NULL DEFAULT 0,
    max_delivery_attempts BIGINT NOT NULL,
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL,
    deadline_ts           DOUBLE PRECISION,
    redeliver_ts          DOUBLE PRECISION,
    wake_ts               DOUBLE PRECISION,
    payload               TEXT NOT NULL,
    doc                   TEXT NOT NULL
);
CREATE INDEX intents_wake ON intents (wake_ts) WHERE wake_ts IS NOT NULL;
CREATE INDEX intents_to ON intents (to_agent, intent_id);
CREATE INDEX intents_from ON intents (from_agent, intent_id);
CREATE INDEX intents_status ON intents (status, intent_id);

CREATE TABLE events (
    intent_id TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    data      TEXT NOT NULL,
    PRIMARY KEY (intent_id, seq)
);

CREATE TABLE feed (
    address   TEXT NOT NULL,
    cursor    BIGINT NOT NULL,
    intent_id TEXT NOT NULL,
    attempt   BIGINT NOT NULL,
    at        TEXT NOT NULL,
    PRIMARY KEY (address, cursor)
);

CREATE TABLE feed_heads (
    address     TEXT PRIMARY KEY,
    last_cursor BIGINT NOT NULL
);

CREATE TABLE idempotency (
    scope       TEXT NOT NULL,
    key         TEXT NOT NULL,
    body_hash   TEXT NOT NULL,
    status_code BIGINT NOT NULL,
    response    TEXT NOT NULL,
    created_ts  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_age ON idempotency (created_ts);

CREATE TABLE service_accounts (
    service_account_id  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL,
    workspace_id        TEXT NOT NULL,
    name                TEXT NOT NULL,
    address             TEXT NOT NULL,
    display_name        TEXT,
    description         TEXT,
    status              TEXT NOT NULL,
    created_by_actor_id TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);
CREATE UNIQUE INDEX service_accounts_live_address ON service_accounts (address) WHERE status = 'active';

CREATE TABLE api_keys (
    key_id             TEXT PRIMARY KEY,
    kind               TEXT NOT NULL,      -- 'workspace' | 'service_account'
    service_account_id TEXT,
    lookup             TEXT NOT NULL,      -- the non-secret id embedded in the token, or 'custom'
    hash               TEXT NOT NULL,      -- sha256 of the whole token; the token itself is never stored
    key_hint           TEXT NOT NULL,
    status             TEXT NOT NULL,      -- 'active' | 'revoked'
    created_at         TEXT NOT NULL,
    expires_at         TEXT,
    revoked_at         TEXT
);
CREATE INDEX api_keys_lookup ON api_keys (lookup);
CREATE INDEX api_keys_sa ON api_keys (service_account_id);

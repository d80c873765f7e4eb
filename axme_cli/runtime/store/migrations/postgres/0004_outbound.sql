-- Outbound HTTP: webhook subscriptions and events, the deliveries of both webhooks and the
-- http binding, and the http binding of a service account.
-- Secrets here are kept in clear on purpose: the runtime signs every delivery with them (HMAC-SHA256),
-- so unlike API keys they cannot be stored as hashes.
ALTER TABLE service_accounts ADD COLUMN delivery_mode TEXT;
ALTER TABLE service_accounts ADD COLUMN callback_url TEXT;
ALTER TABLE service_accounts ADD COLUMN delivery_secret TEXT;

CREATE TABLE webhook_subscriptions (
    subscription_id TEXT PRIMARY KEY,
    owner_agent     TEXT NOT NULL,
    callback_url    TEXT NOT NULL,
    event_types     TEXT NOT NULL,     -- JSON array
    secret          TEXT NOT NULL,
    secret_hint     TEXT NOT NULL,
    active          BIGINT NOT NULL,
    description     TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    revoked_at      TEXT
);
CREATE INDEX webhook_subscriptions_owner ON webhook_subscriptions (owner_agent, subscription_id);

CREATE TABLE webhook_events (
    event_id    TEXT PRIMARY KEY,
    owner_agent TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    source      TEXT NOT NULL,
    payload     TEXT NOT NULL,
    accepted_at TEXT NOT NULL,
    replayed_at TEXT
);

CREATE TABLE outbound_deliveries (
    delivery_id      TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,     -- webhook | intent (the http binding)
    owner_agent      TEXT NOT NULL,     -- the subscription's owner, or the agent an intent goes to
    callback_url     TEXT NOT NULL,     -- where it went when queued (the sender reads the current one)
    subscription_id  TEXT,
    event_id         TEXT,
    event_type       TEXT,
    intent_id        TEXT,
    intent_attempt   BIGINT,           -- the intent's delivery_attempt this row carries
    status           TEXT NOT NULL,     -- pending | delivered | failed | dead_lettered | skipped
    attempts         BIGINT NOT NULL,
    max_attempts     BIGINT NOT NULL,
    next_ts          DOUBLE PRECISION NOT NULL,     -- when a sender may take it next (a lease moves it too)
    lease_until_ts   DOUBLE PRECISION,              -- a sender holds it until then
    last_status_code BIGINT,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    delivered_at     TEXT
);
CREATE INDEX outbound_due ON outbound_deliveries (next_ts) WHERE status = 'pending';
CREATE INDEX outbound_event ON outbound_deliveries (event_id, delivery_id);
CREATE INDEX outbound_subscription ON outbound_deliveries (subscription_id, delivery_id);
CREATE INDEX outbound_intent ON outbound_deliveries (intent_id, delivery_id);
CREATE INDEX outbound_owner ON outbound_deliveries (owner_agent, delivery_id);

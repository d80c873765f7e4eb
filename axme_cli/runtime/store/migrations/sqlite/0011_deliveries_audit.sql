-- Deliveries as AXME's /v1/deliveries shows them: a replay points at the delivery it repeats, and a delivery
-- submitted through POST /v1/deliveries (kind 'direct') carries its own payload, correlation id and
-- idempotency key. The audit log: who did what to logins, keys, service accounts, deliveries and intents,
-- written in the same transaction as the change; never a secret (no token, code or key).
ALTER TABLE outbound_deliveries ADD COLUMN replay_of_delivery_id TEXT;
ALTER TABLE outbound_deliveries ADD COLUMN payload TEXT;
ALTER TABLE outbound_deliveries ADD COLUMN correlation_id TEXT;
ALTER TABLE outbound_deliveries ADD COLUMN idempotency_key TEXT;
CREATE UNIQUE INDEX outbound_idempotency ON outbound_deliveries (owner_agent, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE audit_events (
    event_id    TEXT PRIMARY KEY,   -- UUIDv7: ordered by time
    created_at  TEXT NOT NULL,
    action      TEXT NOT NULL,      -- e.g. auth.login.verified, service_account.key.created
    actor       TEXT NOT NULL,      -- who did it (an address), or the email of a login not yet a session
    key_id      TEXT,               -- the credential used (its id, never the key)
    owner_agent TEXT,               -- whom it is about: an agent key sees the events about itself
    target_type TEXT,
    target_id   TEXT,
    details     TEXT NOT NULL       -- JSON object
) WITHOUT ROWID;
CREATE INDEX audit_owner ON audit_events (owner_agent, event_id);
CREATE INDEX audit_actor ON audit_events (actor, event_id);

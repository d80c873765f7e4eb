-- Dashboard sessions. The dashboard's cookie holds "<session_id>.<secret>"; only the sha256 of the
-- secret is kept. A session stands for an API key (kind 'key', key_id) or for a person's login session (kind
-- 'actor', actor_session_id): both are checked again on every request, so revoking the key or the login
-- ends the dashboard session at once. The raw API key is never stored.
CREATE TABLE ui_sessions (
    session_id       TEXT PRIMARY KEY,
    token_hash       TEXT NOT NULL,
    kind             TEXT NOT NULL,
    key_id           TEXT,
    actor_session_id TEXT,
    client           TEXT,
    created_ts       DOUBLE PRECISION NOT NULL,
    expires_ts       DOUBLE PRECISION NOT NULL,
    revoked_ts       DOUBLE PRECISION
);
CREATE INDEX ui_sessions_expiry ON ui_sessions (expires_ts);

-- Human login: email + one-time code, actors, sessions and their rotating tokens.
-- No secret is stored in clear: codes and tokens are kept as sha256 hashes only.

CREATE TABLE login_intents (
    intent_id  TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL,
    email      TEXT NOT NULL,
    code_hash  TEXT NOT NULL,      -- sha256 of '<intent_id>:<code>'
    client     TEXT,
    created_ts DOUBLE PRECISION NOT NULL,
    expires_ts DOUBLE PRECISION NOT NULL,
    tries      BIGINT NOT NULL DEFAULT 0,
    used_ts    DOUBLE PRECISION                -- set when the code was accepted (or the mail could not be sent)
);
CREATE INDEX login_intents_email ON login_intents (email, expires_ts);

CREATE TABLE actors (
    actor_id   TEXT PRIMARY KEY,
    email      TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX actors_email ON actors (email);

CREATE TABLE sessions (
    session_id    TEXT PRIMARY KEY,
    actor_id      TEXT NOT NULL,
    client        TEXT,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,   -- when the current refresh token runs out (sliding)
    expires_ts    DOUBLE PRECISION NOT NULL,
    revoked_at    TEXT,
    revoke_reason TEXT
);
CREATE INDEX sessions_actor ON sessions (actor_id, created_at);

CREATE TABLE session_tokens (
    token_id   TEXT PRIMARY KEY,   -- the non-secret id embedded in the token
    session_id TEXT NOT NULL,
    kind       TEXT NOT NULL,      -- 'access' | 'refresh'
    hash       TEXT NOT NULL,      -- sha256 of the whole token
    created_ts DOUBLE PRECISION NOT NULL,
    expires_ts DOUBLE PRECISION NOT NULL,
    used_ts    DOUBLE PRECISION                -- refresh tokens: when it was spent (one-time)
);
CREATE INDEX session_tokens_session ON session_tokens (session_id);

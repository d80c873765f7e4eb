-- Users: a nick and a profile bound to one address of this runtime (owner_agent), which is where intents and
-- inbox messages to @nick (or nick@ax) go. nick is kept normalized (lowercase, no '@') and unique: one nick
-- per address and per runtime. holder: who manages the user besides the workspace key (the agent's own
-- address, or actor://... of the person who registered it); NULL for users the workspace key made.
CREATE TABLE users (
    user_id      TEXT PRIMARY KEY,
    owner_agent  TEXT NOT NULL UNIQUE,
    nick         TEXT NOT NULL UNIQUE,
    holder       TEXT UNIQUE,
    display_name TEXT,
    phone        TEXT,
    email        TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    renamed_at   TEXT
);

-- Invites: single use, until expires_ts. Only the sha256 of each 256-bit token is kept (token_hash); the token
-- itself is answered once, to whoever created the invite. Accepting one records who accepted it (the user made
-- or bound, its address) in the same transaction as that user.
CREATE TABLE invites (
    invite_id            TEXT PRIMARY KEY,
    token_hash           TEXT NOT NULL UNIQUE,
    owner_agent          TEXT NOT NULL,
    recipient_hint       TEXT,
    created_by           TEXT NOT NULL,
    created_at           TEXT NOT NULL,
    expires_ts           REAL NOT NULL,
    accepted_at          TEXT,
    accepted_by          TEXT,
    accepted_user_id     TEXT,
    accepted_owner_agent TEXT
);
CREATE INDEX invites_owner ON invites (owner_agent);

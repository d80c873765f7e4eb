-- Media uploads (/v1/media/*): an upload is created pending with a capability URL (only the sha256 of its token is
-- kept), its bytes are PUT as a part (a new part per PUT; the last complete one counts), and finalize checks the
-- size and sha256 and makes it ready. On PostgreSQL a part's bytes are rows of media_chunks (1 MiB each), so every
-- replica reads what any replica stored, and backups hold them; media_parts tracks every part so that failed,
-- replaced and expired ones are deleted.
CREATE TABLE media_uploads (
    upload_id       TEXT PRIMARY KEY,   -- UUIDv7
    owner_agent     TEXT NOT NULL,
    created_by      TEXT NOT NULL,      -- the caller that created it (the admin key may name another owner)
    filename        TEXT NOT NULL,      -- metadata only: never a path
    mime_type       TEXT NOT NULL,
    size_bytes      BIGINT NOT NULL,    -- as declared at create; the PUT may carry at most this
    sha256          TEXT,               -- as declared at create (hex), checked at finalize
    status          TEXT NOT NULL,      -- pending | ready | expired
    token_hash      TEXT NOT NULL,      -- sha256 of the upload URL's token
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL,      -- the upload URL's end (a pending upload expires then)
    expires_ts      DOUBLE PRECISION NOT NULL,
    finalized_at    TEXT,
    part_id         TEXT,               -- the last part uploaded completely
    received_bytes  BIGINT,
    received_sha256 TEXT
);
CREATE INDEX media_uploads_pending ON media_uploads (expires_ts) WHERE status = 'pending';

-- state: writing (a PUT is streaming it), current (the upload's part_id), dead (to delete).
CREATE TABLE media_parts (
    part_id    TEXT PRIMARY KEY,
    upload_id  TEXT NOT NULL,
    state      TEXT NOT NULL,
    created_ts DOUBLE PRECISION NOT NULL
);
CREATE INDEX media_parts_upload ON media_parts (upload_id);
CREATE INDEX media_parts_dead ON media_parts (state) WHERE state = 'dead';

-- Who else may read an upload: the participants of an intent that attached it (sender, addressee, reply_to) ...
CREATE TABLE media_grants (
    upload_id TEXT NOT NULL,
    address   TEXT NOT NULL,
    intent_id TEXT NOT NULL,            -- the first intent that granted it
    PRIMARY KEY (upload_id, address)
);

-- ... and every owner that holds an inbox thread with a message that attached it (delegates included).
CREATE TABLE media_thread_links (
    upload_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    PRIMARY KEY (upload_id, thread_id)
);

-- The bytes of a part: chunk n holds bytes [n MiB, (n+1) MiB).
CREATE TABLE media_chunks (
    part_id TEXT NOT NULL,
    n       INTEGER NOT NULL,
    data    BYTEA NOT NULL,
    PRIMARY KEY (part_id, n)
);

-- Inbox: completion deliveries to a reply_to owner, kept as threads (thread_id == intent_id).
-- inbox_threads: the shared thread; doc holds subject, completion, messages, timeline and decision as JSON.
CREATE TABLE inbox_threads (
    thread_id  TEXT PRIMARY KEY,
    intent_id  TEXT NOT NULL,
    status     TEXT NOT NULL,
    from_agent TEXT NOT NULL,
    to_agent   TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    doc        TEXT NOT NULL
);

-- One row per owner that has the thread in its inbox (the reply_to owner, then delegates).
-- change_seq: the owner's dense change counter (inbox_heads) at the thread's last change, for /v1/inbox/changes.
-- hidden: JSON list of message ids deleted for this owner only.
CREATE TABLE inbox_entries (
    owner_agent TEXT NOT NULL,
    thread_id   TEXT NOT NULL,
    change_seq  BIGINT NOT NULL,
    read_at     TEXT,
    hidden      TEXT NOT NULL,
    added_at    TEXT NOT NULL,
    PRIMARY KEY (owner_agent, thread_id)
);
CREATE UNIQUE INDEX inbox_entries_changes ON inbox_entries (owner_agent, change_seq);
CREATE INDEX inbox_entries_thread ON inbox_entries (thread_id);

CREATE TABLE inbox_heads (
    owner_agent TEXT PRIMARY KEY,
    last_seq    BIGINT NOT NULL
);

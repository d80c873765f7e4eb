-- Human task mail.
-- task_links: the single-use links in task mails. Only the sha256 of each 256-bit token is kept. A link
-- answers the task it was minted for (intent_id + task_seq, the seq of the event that assigned the task)
-- while that task is open, once, and until expires_ts (7 days or the task deadline, the earlier).
CREATE TABLE task_links (
    link_id    TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    intent_id  TEXT NOT NULL,
    task_seq   INTEGER NOT NULL,
    email      TEXT NOT NULL,
    created_ts REAL NOT NULL,
    expires_ts REAL NOT NULL,
    used_ts    REAL,
    revoked_ts REAL
);
CREATE INDEX task_links_intent ON task_links (intent_id);

-- task_mail: the outbox. A row is written in the transaction that opened, reminded or escalated a task and
-- is sent after the commit. due_ts is when a sender should take it (NULL once sent, dropped or given up).
-- A claim sets lease_until_ts (and due_ts to it), so the claim of a sender that crashed runs out.
CREATE TABLE task_mail (
    mail_id         TEXT PRIMARY KEY,
    intent_id       TEXT NOT NULL,
    task_seq        INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    email           TEXT NOT NULL,
    details         TEXT NOT NULL,
    link_expires_ts REAL NOT NULL,
    state           TEXT NOT NULL,
    due_ts          REAL,
    lease_until_ts  REAL,
    attempts        INTEGER NOT NULL,
    link_id         TEXT,
    created_ts      REAL NOT NULL,
    sent_ts         REAL,
    last_error      TEXT
);
CREATE INDEX task_mail_due ON task_mail (due_ts);
CREATE INDEX task_mail_intent ON task_mail (intent_id);

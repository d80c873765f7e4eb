-- Quotas and usage. A workspace's quota policy (engine/quotas.py): a limit per dimension (a dimension left out of
-- `dimensions` has none), and whether a call past one is refused. Usage counters (engine/usage.py): a value per
-- counter and period of the workspace, both what quotas enforce (a window's count, updated in the transaction of
-- the call it admits) and what the usage routes report (added by each replica from its memory every few
-- seconds). Stream counts: the SSE streams each replica holds open, while a workspace limits them.
CREATE TABLE quota_policies (
    org_id                 TEXT NOT NULL,
    workspace_id           TEXT NOT NULL,
    quota_policy_id        TEXT NOT NULL,
    dimensions             TEXT NOT NULL,      -- JSON {dimension: limit}
    soft_threshold_percent INTEGER NOT NULL,
    hard_enforcement       INTEGER NOT NULL,   -- 1: a call past a limit is refused (with overage_mode block)
    overage_mode           TEXT NOT NULL,      -- block | grace | bill_overage
    updated_by_actor_id    TEXT,
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL,
    PRIMARY KEY (org_id, workspace_id)
) WITHOUT ROWID;

CREATE TABLE usage_counters (
    org_id       TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    counter      TEXT NOT NULL,               -- intents_per_day, requests, storage_bytes, refused.<dimension>, ...
    period       TEXT NOT NULL,               -- a UTC day (2026-05-01), a minute (2026-05-01T12:34) or '*' (ever)
    value        INTEGER NOT NULL,
    PRIMARY KEY (org_id, workspace_id, counter, period)
) WITHOUT ROWID;

CREATE TABLE quota_streams (
    org_id       TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    replica_id   TEXT NOT NULL,
    open_streams INTEGER NOT NULL,
    seen_ts      REAL NOT NULL,               -- the replica's last word (real time): older ones are left out
    PRIMARY KEY (org_id, workspace_id, replica_id)
) WITHOUT ROWID;

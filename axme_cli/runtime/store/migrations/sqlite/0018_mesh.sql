-- The agent mesh: one row per agent address with its last heartbeat and metrics (one UPSERT per heartbeat), the
-- delivery failures the runtime saw (a window and its count), the health last recorded (an event when it changes)
-- and the kill switch; and the mesh's events (kills, resumes, health changes). Rows belong to an org and workspace
-- (today the runtime's one pair), and every read names them.
CREATE TABLE mesh_agents (
    org_id            TEXT NOT NULL,
    workspace_id      TEXT NOT NULL,
    address           TEXT NOT NULL,
    last_heartbeat_ts REAL,
    heartbeats        INTEGER NOT NULL DEFAULT 0,
    metrics           TEXT,                -- JSON object: what the last heartbeat with metrics reported
    metrics_ts        REAL,
    failures_since_ts REAL,                -- the start of the current delivery-failure window
    failures_recent   INTEGER NOT NULL DEFAULT 0,
    failures_total    INTEGER NOT NULL DEFAULT 0,
    last_failure_ts   REAL,
    health            TEXT NOT NULL,       -- the health last recorded: healthy | degraded | unhealthy | unknown
    killed            INTEGER NOT NULL DEFAULT 0,
    killed_at         TEXT,
    killed_by         TEXT,
    kill_reason       TEXT,
    resumed_at        TEXT,
    resumed_by        TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    PRIMARY KEY (org_id, workspace_id, address)
) WITHOUT ROWID;
CREATE INDEX mesh_agents_killed ON mesh_agents (org_id, workspace_id) WHERE killed = 1;

CREATE TABLE mesh_events (
    event_id     TEXT PRIMARY KEY,         -- UUIDv7: ordered by time
    org_id       TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    address      TEXT NOT NULL,
    event_type   TEXT NOT NULL,            -- agent.killed | agent.resumed | agent.health_changed
    actor        TEXT NOT NULL,
    details      TEXT NOT NULL,            -- JSON object
    created_at   TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX mesh_events_scope ON mesh_events (org_id, workspace_id, event_id);
CREATE INDEX mesh_events_address ON mesh_events (org_id, workspace_id, address, event_id);

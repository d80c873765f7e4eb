-- Schedules: a run (a scenario applied, or an intent sent) at each occurrence of a cron expression in a time
-- zone. next_fire_ts is when the scheduler fires it next (NULL while paused); firing claims the row, starts the
-- run and moves next_fire_ts in one transaction, so an occurrence runs once even across replicas and crashes.
CREATE TABLE schedules (
    schedule_id       TEXT PRIMARY KEY,   -- UUIDv7: ordered by creation
    description       TEXT,
    cron              TEXT NOT NULL,
    timezone          TEXT NOT NULL,
    kind              TEXT NOT NULL,      -- scenario | intent
    spec              TEXT NOT NULL,      -- JSON: the ScenarioBundle, or the intent as the create route made it
    payload           TEXT,               -- JSON object merged over the run's intent payload, or NULL
    missed_run_policy TEXT NOT NULL,      -- skip | catch_up_one
    overlap_policy    TEXT NOT NULL,      -- skip | allow
    status            TEXT NOT NULL,      -- active | paused
    next_fire_ts      DOUBLE PRECISION,
    created_by        TEXT NOT NULL,      -- the address runs are sent as
    created_by_key_id TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    last_fire_ts      DOUBLE PRECISION,
    last_intent_id    TEXT,               -- the latest run's intent (the overlap policy looks at it)
    last_outcome      TEXT,               -- run | skipped_overlap | skipped_missed | failed
    last_error        TEXT,
    runs              BIGINT NOT NULL DEFAULT 0,
    skipped_overlap   BIGINT NOT NULL DEFAULT 0,
    skipped_missed    BIGINT NOT NULL DEFAULT 0,
    failures          BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX schedules_due ON schedules (next_fire_ts) WHERE next_fire_ts IS NOT NULL;

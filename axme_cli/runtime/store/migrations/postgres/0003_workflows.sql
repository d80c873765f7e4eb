-- Workflows (scenario runs): one row per parent intent; the engine's state as JSON.
-- intents.timer_ts: an engine timer on the intent row (retry delays, delay steps), part of wake_ts.
ALTER TABLE intents ADD COLUMN timer_ts DOUBLE PRECISION;

CREATE TABLE workflows (
    workflow_id      TEXT PRIMARY KEY,
    parent_intent_id TEXT NOT NULL UNIQUE,
    scenario_id      TEXT NOT NULL,
    compiled         TEXT NOT NULL,
    state            TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);

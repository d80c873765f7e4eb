-- The schema registry (AXME family d5): a JSON Schema per semantic type, either the workspace's (scope 'core',
-- owner_key '') or an agent's own (scope 'tenant', owner_key = its address), against which intents of that type
-- addressed to that agent are validated. An intent's controls and policy (its policy_generation and grants) live
-- in its doc and timer columns, so they need no table.
CREATE TABLE semantic_schemas (
    semantic_type      TEXT NOT NULL,
    owner_key          TEXT NOT NULL,      -- '' for the workspace's, else the owner agent's address
    scope              TEXT NOT NULL,      -- tenant | core
    owner_agent        TEXT,               -- NULL for the workspace's
    schema_json        TEXT NOT NULL,      -- the JSON Schema as registered (checked by protocol/schemas.py)
    schema_hash        TEXT NOT NULL,      -- sha256 of its canonical JSON
    schema_ref         TEXT NOT NULL,
    compatibility_mode TEXT NOT NULL,      -- strict | backward | warn
    active             BIGINT NOT NULL,    -- 1: intents are checked against it
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    updated_by         TEXT NOT NULL,      -- the address of whoever registered this version
    PRIMARY KEY (semantic_type, owner_key)
);

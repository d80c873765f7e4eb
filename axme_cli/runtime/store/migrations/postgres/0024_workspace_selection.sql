-- The workspace a person acts in (POST /v1/portal/personal/workspace-selection): kept on their login session, so
-- every access token of the session (refreshed or not) acts there; NULL for the runtime's default workspace.
ALTER TABLE sessions ADD COLUMN org_id TEXT;
ALTER TABLE sessions ADD COLUMN workspace_id TEXT;

-- The workspace a person switched the dashboard to (its header's selector): kept on the dashboard session, NULL
-- for the runtime's default workspace. A dashboard session of an API key acts in the key's own workspace.
ALTER TABLE ui_sessions ADD COLUMN org_id TEXT;
ALTER TABLE ui_sessions ADD COLUMN workspace_id TEXT;

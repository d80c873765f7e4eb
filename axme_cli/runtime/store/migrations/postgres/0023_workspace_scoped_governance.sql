-- The workspace a schedule and an audit event belong to: NULL for the runtime's default workspace (every row made
-- before 0023, and every row the default workspace's credentials make), else the organization and workspace of
-- the credential that made it (the convention of api_keys). A schedule's runs act in its workspace.
ALTER TABLE schedules ADD COLUMN org_id TEXT;
ALTER TABLE schedules ADD COLUMN workspace_id TEXT;
CREATE INDEX schedules_scope ON schedules (org_id, workspace_id, schedule_id);

ALTER TABLE audit_events ADD COLUMN org_id TEXT;
ALTER TABLE audit_events ADD COLUMN workspace_id TEXT;
CREATE INDEX audit_scope ON audit_events (org_id, workspace_id, event_id);

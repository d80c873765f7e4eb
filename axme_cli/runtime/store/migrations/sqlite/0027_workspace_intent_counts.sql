-- The dashboard's intent counts by status per workspace, read from this index alone: another workspace's by its
-- pair, the default workspace's as every intent (intents_status) less the other workspaces' (this one). Partial,
-- like intents_workspace: the default workspace's rows, most of a runtime's, cost no more to write.
CREATE INDEX intents_workspace_status ON intents (workspace_id, org_id, status) WHERE workspace_id IS NOT NULL;

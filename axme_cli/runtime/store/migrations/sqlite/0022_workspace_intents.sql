-- The workspace an intent belongs to, and with it everything reached through it (its events, feed entries,
-- workflow, inbox threads, human tasks): NULL for the runtime's default pair (settings.org / settings.workspace),
-- as api_keys does since 0021, so every older row and the default workspace's inserts need nothing. A sub-intent
-- (a saga step, a compensation) has its parent's pair.
ALTER TABLE intents ADD COLUMN org_id TEXT;
ALTER TABLE intents ADD COLUMN workspace_id TEXT;
-- Lists of another workspace's intents, newest first; the default workspace's rows are not in it.
CREATE INDEX intents_workspace ON intents (workspace_id, org_id, intent_id) WHERE workspace_id IS NOT NULL;

-- Webhook subscriptions, events and outbound deliveries are not reached through an intent: they carry their
-- workspace themselves (NULL: the default one).
ALTER TABLE webhook_subscriptions ADD COLUMN org_id TEXT;
ALTER TABLE webhook_subscriptions ADD COLUMN workspace_id TEXT;
ALTER TABLE webhook_events ADD COLUMN org_id TEXT;
ALTER TABLE webhook_events ADD COLUMN workspace_id TEXT;
ALTER TABLE outbound_deliveries ADD COLUMN org_id TEXT;
ALTER TABLE outbound_deliveries ADD COLUMN workspace_id TEXT;
CREATE INDEX outbound_workspace ON outbound_deliveries (workspace_id, org_id, delivery_id)
    WHERE workspace_id IS NOT NULL;

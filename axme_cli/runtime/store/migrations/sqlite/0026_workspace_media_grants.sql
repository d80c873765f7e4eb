-- The workspace an upload belongs to (NULL: the runtime's default pair, as in api_keys and intents since 0022), so
-- another workspace's upload ids answer 404 and its stored bytes count in its own usage. Parts, grants and thread
-- links are reached through their upload.
ALTER TABLE media_uploads ADD COLUMN org_id TEXT;
ALTER TABLE media_uploads ADD COLUMN workspace_id TEXT;

-- An approved join_organization lets its email log in whichever workspace approved it: the login reads the
-- grants of that email in every workspace.
CREATE INDEX access_grants_anywhere ON access_grants (subject, grant_type);

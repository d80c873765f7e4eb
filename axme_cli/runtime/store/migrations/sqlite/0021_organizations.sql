-- Organizations, their workspaces and their members (AXME's organizations.*, d6). An organization's and a
-- workspace's id are also the segments of the agent addresses it holds (agent://<org_id>/<workspace_id>/<name>):
-- the runtime's default pair keeps the names it was started with (--org, --workspace; `local`/`dev`), a created one
-- gets a UUIDv7. The default pair is inserted at start.

CREATE TABLE organizations (
    org_id         TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    legal_name     TEXT,
    primary_domain TEXT,
    status         TEXT NOT NULL,         -- pending | active | suspended | archived
    metadata       TEXT NOT NULL,         -- JSON object
    created_by     TEXT NOT NULL,         -- the address of who created it
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);

CREATE TABLE workspaces (
    workspace_id   TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL,
    name           TEXT NOT NULL,
    environment    TEXT NOT NULL,         -- sandbox | staging | production
    region         TEXT,
    status         TEXT NOT NULL,         -- active | suspended | archived
    created_by     TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX workspaces_org ON workspaces (org_id, workspace_id);

-- A member: a person (actor_id: their actor id or email) with a role in an organization, or in one of its
-- workspaces (workspace_id). One live membership per (org, workspace, actor): removed ones stay, status removed.
CREATE TABLE org_members (
    member_id      TEXT PRIMARY KEY,      -- UUIDv7
    org_id         TEXT NOT NULL,
    workspace_id   TEXT,                  -- NULL: the whole organization
    actor_id       TEXT NOT NULL,
    actor_key      TEXT NOT NULL,         -- actor_id lower-cased: what a person is matched on
    role           TEXT NOT NULL,         -- org_owner | org_admin | workspace_admin | member | billing_viewer | security_auditor
    status         TEXT NOT NULL,         -- active | invited | suspended | removed
    created_by     TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    removed_at     TEXT
);
CREATE INDEX org_members_org ON org_members (org_id, member_id);
CREATE INDEX org_members_actor ON org_members (actor_key, org_id);

-- The workspace an admin key administers: NULL for the runtime's default workspace (every key made before 0021),
-- else the organization and workspace it was made for.
ALTER TABLE api_keys ADD COLUMN org_id TEXT;
ALTER TABLE api_keys ADD COLUMN workspace_id TEXT;

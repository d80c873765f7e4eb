-- Who may send to whom (engine/policies.py), checked when an intent is created:
--   kind 'agent_send'    an agent's send policy: who may send to it (open | allowlist | denylist); subject = its
--                        address
--   kind 'org_receive'   the org's receive policy: which agents of other organizations may send to the org's
--                        agents (open | allowlist | closed); subject '' and workspace_id '' (it is the org's, over
--                        all its workspaces)
--   kind 'agent_receive' an agent's receive override of the org's policy (open | allowlist | closed); subject = its
--                        address; no row (or use_org_default) leaves the org's policy in force
-- A policy's entries are sender patterns (protocol/policies.py). No row: open (the agent's) or the org's policy.
CREATE TABLE sender_policies (
    org_id       TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    kind         TEXT NOT NULL,
    subject      TEXT NOT NULL,
    policy_type  TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    updated_by   TEXT NOT NULL,         -- the address of whoever set it last
    PRIMARY KEY (org_id, workspace_id, kind, subject)
);

CREATE TABLE sender_policy_entries (
    entry_id       TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL,
    workspace_id   TEXT NOT NULL,
    kind           TEXT NOT NULL,
    subject        TEXT NOT NULL,
    sender_pattern TEXT NOT NULL,       -- canonical: agent://org/ws/name, agent://org/ws/*, agent://org/*, *
    created_at     TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    UNIQUE (org_id, workspace_id, kind, subject, sender_pattern)
);

"""`axme org list|show|create|update` and `axme workspace list|create|update|use` against a real runtime
(in-process): the tables AXME's CLI prints, --json, `workspace use` saving the pair in the context, and bad input:
exit 2 naming the argument and the fix before any request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.helpers import env_for, run
from tests.runtime_thread import RuntimeThread

# What the CLI does with the answers does not depend on the storage (tests/runtime/api/test_orgs.py: both).
pytestmark = pytest.mark.backends("sqlite")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeThread]:
    rt = RuntimeThread(tmp_path_factory.mktemp("org-cli"))
    rt.start()
    yield rt
    rt.stop()


def test_org_and_workspace_commands(served: RuntimeThread, tmp_path: Path) -> None:
    env = env_for(tmp_path)
    saved = run(env, "context", "set", "team", "--base-url", served.url, "--api-key", served.api_key or "")
    assert saved.returncode == 0, saved.stderr
    assert run(env, "context", "use", "team").returncode == 0

    listed = run(env, "org", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split("\n")[0].split() == ["SELECTED", "ORG_ID", "NAME", "STATUS", "ROLES", "WORKSPACES"]
    assert any(line.split()[:3] == ["*", "local", "local"] for line in listed.stdout.splitlines())

    made = run(env, "org", "create", "Initech", "--owner", "bill@initech.example", "--domain", "initech.example",
               "--json")
    assert made.returncode == 0, made.stderr
    org = json.loads(made.stdout)["organization"]
    assert org["name"] == "Initech" and org["primary_domain"] == "initech.example"
    shown = run(env, "org", "show", "--org-id", org["org_id"])
    assert shown.returncode == 0 and f"Organization: Initech ({org['org_id']})" in shown.stdout
    assert "Members: 1" in shown.stdout and "Workspaces: 0" in shown.stdout
    changed = run(env, "org", "update", "--org-id", org["org_id"], "--legal-name", "Initech LLC")
    assert changed.returncode == 0 and "Legal name: Initech LLC" in changed.stdout

    ws = run(env, "workspace", "create", "qa-floor", "--env", "staging", "--org-id", org["org_id"], "--json")
    assert ws.returncode == 0, ws.stderr
    workspace = json.loads(ws.stdout)["workspace"]
    assert workspace["environment"] == "staging"
    updated = run(env, "workspace", "update", workspace["workspace_id"], "--org-id", org["org_id"],
                  "--region", "us-east")
    assert updated.returncode == 0 and "Region: us-east" in updated.stdout
    spaces = run(env, "workspace", "list")
    assert spaces.stdout.split("\n")[0].split() == [
        "SELECTED", "WORKSPACE_ID", "NAME", "ORG_ID", "ORG_NAME", "ENV", "STATUS", "ROLES"]
    assert workspace["workspace_id"] in spaces.stdout and "Initech" in spaces.stdout

    used = run(env, "workspace", "use", "qa-floor")
    assert used.returncode == 0 and "Switched to workspace: qa-floor (Initech)" in used.stdout
    contexts = json.loads(run(env, "context", "list", "--json").stdout)
    team = next(c for c in contexts["items"] if c["name"] == "team")
    assert (team["org_id"], team["workspace_id"]) == (org["org_id"], workspace["workspace_id"])
    assert run(env, "org", "show").stdout.startswith("Organization: Initech")  # the context's org now

    # bad input: exit 2 naming the argument and the fix
    for args, named in ((("org", "update", "--status", "gone"), "--status"),
                        (("org", "update"), "nothing to change"),
                        (("org", "create", "X", "--owner", "a@b.c"), "NAME"),
                        (("workspace", "create", "qa", "--env", "moon"), "--environment"),
                        (("workspace", "use", "no-such-space"), "WORKSPACE")):
        bad = run(env, *args)
        assert bad.returncode == 2 and named in bad.stderr, (args, bad.stderr)
    refused = run(env, "workspace", "update", workspace["workspace_id"], "--org-id", "local", "--region", "eu")
    assert refused.returncode == 1 and "not found" in refused.stderr.lower()


def test_a_new_workspaces_admin_key_is_shown_once_or_kept_in_a_context(served: RuntimeThread, tmp_path: Path) -> None:
    env = env_for(tmp_path)
    saved = run(env, "context", "set", "ops", "--base-url", served.url, "--api-key", served.api_key or "")
    assert saved.returncode == 0, saved.stderr
    assert run(env, "context", "use", "ops").returncode == 0
    org_id = json.loads(run(env, "org", "create", "Hooli", "--owner", "gavin@hooli.example", "--json").stdout
                        )["organization"]["org_id"]

    shown = run(env, "workspace", "create", "hooli-dev", "--org-id", org_id)
    assert shown.returncode == 0, shown.stderr
    token = next(line.split(": ", 1)[1] for line in shown.stdout.splitlines() if line.startswith("Admin key: "))
    assert token.startswith("axme_ws_") and "shown only this once" in shown.stdout

    kept = run(env, "workspace", "create", "hooli-prod", "--org-id", org_id, "--save-context", "hooli-prod", "--json")
    assert kept.returncode == 0, kept.stderr
    answer = json.loads(kept.stdout)
    assert answer["saved_context"] == "hooli-prod" and "token" not in answer["key"]  # kept, so never printed
    prod = answer["workspace"]
    # the saved context acts in the new workspace with its own key: a service account made there is prod's
    assert run(env, "context", "use", "hooli-prod").returncode == 0
    status = run(env, "status").stdout
    assert f"Workspace  {org_id}/{prod['workspace_id']} (the context's; the runtime's default is local/dev)" in status
    made = json.loads(run(env, "agents", "register", "--name", "billing", "--json").stdout)
    assert json.dumps(made).count(f"agent://{org_id}/{prod['workspace_id']}/billing") >= 1, made

    again = run(env, "workspace", "create", "hooli-qa", "--org-id", org_id, "--save-context", "hooli-prod")
    assert again.returncode == 2 and "--save-context" in again.stderr and "already exists" in again.stderr
    for hostile in ("../etc/passwd", "", "x" * 65, "a b"):
        bad = run(env, "workspace", "create", "hooli-qa", "--org-id", org_id, "--save-context", hostile)
        assert bad.returncode == 2 and "context name" in bad.stderr, (hostile, bad.stderr)
    names = [w["name"] for w in json.loads(run(env, "workspace", "list", "--json").stdout)["workspaces"]]
    assert "hooli-qa" not in names  # refused before any request: no workspace whose key nobody holds

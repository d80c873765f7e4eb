"""`axme member list|add|update|remove` and `axme workspace members list|include|exclude` against a real runtime
(in-process): AXME's tables and --json, and bad flags (exit 2 naming the flag before any request); `axme workspace
use` with a person's session selects the workspace on the runtime (their session acts there), and back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.auth_helpers import bearer, login
from tests.cli.helpers import env_for, run
from tests.conftest import unique
from tests.runtime_thread import RuntimeThread

# What the CLI does with the answers does not depend on the storage (tests/runtime/api/test_workspace_selection.py:
# both).
pytestmark = pytest.mark.backends("sqlite")

ANN, BOB = "ann@member.example", "bob@member.example"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeThread]:
    rt = RuntimeThread(tmp_path_factory.mktemp("member-cli"), extra_args=[
        "--allow-email", "@member.example", "--login-rate-limit", "0"])
    rt.start()
    yield rt
    rt.stop()


def ok(env: dict[str, str], *args: str) -> str:
    done = run(env, *args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def answer(env: dict[str, str], *args: str) -> dict[str, Any]:
    return dict(json.loads(ok(env, *args, "--json")))


def test_member_and_workspace_members_commands(served: RuntimeThread, tmp_path: Path) -> None:
    env = env_for(tmp_path)
    ok(env, "context", "set", "team", "--base-url", served.url, "--api-key", served.api_key or "")
    ok(env, "context", "use", "team")
    org_id = answer(env, "org", "create", unique("Members"), "--owner", BOB)["organization"]["org_id"]
    blue = answer(env, "workspace", "create", "blue", "--org-id", org_id)["workspace"]["workspace_id"]

    added = answer(env, "member", "add", ANN, "--org-id", org_id, "--workspace-id", blue)["member"]
    assert (added["actor_id"], added["role"], added["workspace_id"]) == (ANN, "member", blue)
    text = ok(env, "member", "add", "eve@member.example", "--role", "billing_viewer", "--org-id", org_id)
    assert "✓ Member added." in text and "Role: billing_viewer in the whole organization" in text
    listed = ok(env, "member", "list", "--org-id", org_id).splitlines()
    assert listed[0].split() == ["MEMBER_ID", "ACTOR_ID", "ROLE", "STATUS", "WORKSPACE_ID", "UPDATED_AT"]
    rows = {line.split()[1]: line.split() for line in listed[1:]}
    assert rows[ANN][2:5] == ["member", "active", blue] and rows[BOB][2:5] == ["org_owner", "active", "-"]
    only_blue = answer(env, "member", "list", "--org-id", org_id, "--workspace-id", blue)["members"]
    assert [m["actor_id"] for m in only_blue] == [ANN]

    changed = answer(env, "member", "update", added["member_id"], "--role", "workspace_admin", "--org-id", org_id)
    assert changed["member"]["role"] == "workspace_admin"
    assert "Status: suspended" in ok(env, "member", "update", added["member_id"], "--status", "suspended",
                                     "--org-id", org_id)
    removed = ok(env, "member", "remove", added["member_id"], "--org-id", org_id)
    assert f"✓ Member {added['member_id']} removed." in removed

    # one workspace's members: the context's workspace unless --workspace-id says another
    included = answer(env, "workspace", "members", "include", ANN, "--org-id", org_id, "--workspace-id", blue)
    member = included["member"]
    assert (member["workspace_id"], member["role"]) == (blue, "member")
    table = ok(env, "workspace", "members", "list", "--org-id", org_id, "--workspace-id", blue).splitlines()
    assert table[0].split() == ["MEMBER_ID", "ACTOR_ID", "ROLE", "STATUS", "UPDATED_AT"]
    assert [line.split()[:4] for line in table[1:]] == [[member["member_id"], ANN, "member", "active"]]
    default = ok(env, "workspace", "members", "list", "--org-id", "local")  # the runtime's own workspace
    assert default.strip() == "No members."
    excluded = ok(env, "workspace", "members", "exclude", member["member_id"], "--workspace-id", blue)
    assert f"✓ Member {member['member_id']} excluded from workspace {blue}." in excluded
    assert answer(env, "workspace", "members", "list", "--org-id", org_id, "--workspace-id", blue)["members"] == []
    refused = run(env, "workspace", "members", "exclude", member["member_id"], "--workspace-id", "dev")
    assert refused.returncode == 1 and "not found" in refused.stderr.lower()

    # bad flags: exit 2 naming the flag and a fix, before any request
    for args, named in ((("member", "add", ANN, "--role", "boss"), "--role"),
                        (("member", "update", "m-1", "--status", "gone"), "--status"),
                        (("member", "update", "m-1", "--role", "chief"), "--role"),
                        (("member", "update", "m-1"), "nothing to change"),
                        (("workspace", "members", "include", ANN, "--role", "org_owner"), "--role")):
        bad = run(env, *args)
        assert bad.returncode == 2 and named in bad.stderr and "Traceback" not in bad.stderr, (args, bad.stderr)


def test_workspace_use_selects_the_workspace_for_a_persons_session(served: RuntimeThread, tmp_path: Path) -> None:
    with served.client() as api:
        org_id = api.post("/v1/organizations", json={"name": unique("Use"), "requested_by_actor_id": BOB}).json()[
            "organization"]["org_id"]
        green = api.post(f"/v1/organizations/{org_id}/workspaces", json={"name": "green", "environment": "sandbox"}
                         ).json()["workspace"]["workspace_id"]
        person = f"{unique('p')}@member.example"
        assert api.post(f"/v1/workspaces/{green}/members/include", json={"actor_id": person}).status_code == 200
        token = login(api, served.mail_dir, person)["access_token"]

        env = env_for(tmp_path, AXME_ACTOR_TOKEN=token)
        ok(env, "context", "set", "me", "--base-url", served.url)
        ok(env, "context", "use", "me")
        spaces = ok(env, "workspace", "list")
        assert green in spaces and " dev " in spaces  # her membership's workspace and the runtime's default one
        used = answer(env, "workspace", "use", "green")
        assert used["session_selected"] is True and used["selected_workspace"]["workspace_id"] == green
        context = api.get("/v1/portal/personal/context", headers=bearer(token)).json()["context"]
        assert context == {"org_id": org_id, "workspace_id": green}
        assert "Switched to workspace: dev (local)" in ok(env, "workspace", "use", "dev")
        assert api.get("/v1/portal/personal/context", headers=bearer(token)).json()["context"]["workspace_id"] == "dev"

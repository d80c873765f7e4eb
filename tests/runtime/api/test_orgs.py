"""/v1/organizations, /workspaces and /members over a real runtime, on both backends: the default organization and
workspace exist from the start and stay active; the admin key creates organizations; people act through their
memberships (owner and admin manage, viewers read, a workspace_admin its own workspace, others are refused, and a
person who is no member gets 404 as for an organization that does not exist); agent keys are refused; bad input is
422 naming the field; duplicates and the last owner are 409."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.auth_helpers import bearer, login
from tests.conftest import make_agent, unique
from tests.runtime_proc import RuntimeProcess
from tests.runtime_thread import RuntimeThread

OWNER, ADMIN, VIEWER, WS_ADMIN, PLAIN, STRANGER = (f"{who}@orgs.example" for who in (
    "owner", "admin", "viewer", "wsadmin", "plain", "stranger"))


@pytest.fixture(scope="module")
def rt(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    proc = RuntimeThread(tmp_path_factory.mktemp("orgs"), extra_args=[
        "--redelivery-seconds", "600", "--allow-email", "@orgs.example", "--login-rate-limit", "0"], backend=backend)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def people(rt: RuntimeProcess) -> dict[str, dict[str, str]]:
    """Each person's login headers."""
    with rt.client() as api:
        return {who: bearer(login(api, rt.mail_dir, who)["access_token"])
                for who in (OWNER, ADMIN, VIEWER, WS_ADMIN, PLAIN, STRANGER)}


def err(r: httpx.Response, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"]["code"] == code, body
    if field is not None:  # named in details.field, or (schema validation) in the message
        assert body["error"]["details"].get("field") == field or field in body["error"]["message"], body
    return dict(body)


def test_the_default_organization_and_workspace_exist_and_stay_active(rt: RuntimeProcess) -> None:
    with rt.client() as api:
        org = api.get("/v1/organizations/local").json()["organization"]
        assert org["org_id"] == "local" and org["status"] == "active"
        spaces = api.get("/v1/organizations/local/workspaces").json()["workspaces"]
        assert [(w["workspace_id"], w["org_id"], w["status"]) for w in spaces] == [("dev", "local", "active")]
        err(api.patch("/v1/organizations/local", json={"status": "suspended"}), 409, "default_workspace", "status")
        err(api.patch("/v1/organizations/local/workspaces/dev", json={"status": "archived"}), 409,
            "default_workspace", "status")
        renamed = api.patch("/v1/organizations/local", json={"name": "Local Org", "metadata": {"team": "core"}})
        assert renamed.json()["organization"]["name"] == "Local Org"
        assert api.get("/v1/organizations/local").json()["organization"]["metadata"] == {"team": "core"}


def test_roles_decide_who_may_do_what(rt: RuntimeProcess, people: dict[str, dict[str, str]]) -> None:
    with rt.client() as api:
        org = api.post("/v1/organizations", json={"name": "Acme", "requested_by_actor_id": OWNER.upper()}).json()[
            "organization"]
        org_id = org["org_id"]
        base = f"/v1/organizations/{org_id}"
        owner = api.get(f"{base}/members").json()["members"]
        assert [(m["actor_id"], m["role"], m["workspace_id"]) for m in owner] == [(OWNER.upper(), "org_owner", None)]

        # the owner (matched on their email, any case) manages
        as_owner = people[OWNER]
        staging = api.post(f"{base}/workspaces", headers=as_owner,
                           json={"org_id": org_id, "name": "staging", "environment": "staging"}).json()["workspace"]
        prod = api.post(f"{base}/workspaces", headers=as_owner,
                        json={"name": "production", "environment": "production", "region": "eu"}).json()["workspace"]
        assert staging["org_id"] == org_id and staging["status"] == "active" and prod["region"] == "eu"
        for who, role, ws in ((ADMIN, "org_admin", None), (VIEWER, "billing_viewer", None),
                              (WS_ADMIN, "workspace_admin", staging["workspace_id"]),
                              (PLAIN, "member", staging["workspace_id"])):
            r = api.post(f"{base}/members", headers=as_owner, json={"actor_id": who, "role": role, "workspace_id": ws})
            assert r.status_code == 200, r.text
        members = {m["actor_id"].lower(): m for m in api.get(f"{base}/members").json()["members"]}
        assert set(members) == {OWNER, ADMIN, VIEWER, WS_ADMIN, PLAIN}

        # an org_admin manages; a viewer reads only
        assert api.patch(base, headers=people[ADMIN], json={"legal_name": "Acme Ltd"}).json()["organization"][
            "legal_name"] == "Acme Ltd"
        assert api.get(base, headers=people[VIEWER]).json()["organization"]["legal_name"] == "Acme Ltd"
        assert len(api.get(f"{base}/workspaces", headers=people[VIEWER]).json()["workspaces"]) == 2
        err(api.patch(base, headers=people[VIEWER], json={"name": "Nope"}), 403, "role_denied")
        err(api.post(f"{base}/members", headers=people[VIEWER], json={"actor_id": "x@y.z", "role": "member"}), 403,
            "role_denied")

        # a workspace_admin: its own workspace and its members, nothing else
        as_ws = people[WS_ADMIN]
        err(api.get(base, headers=as_ws), 403, "role_denied")
        assert [w["workspace_id"] for w in api.get(f"{base}/workspaces", headers=as_ws).json()["workspaces"]] == [
            staging["workspace_id"]]
        assert api.patch(f"{base}/workspaces/{staging['workspace_id']}", headers=as_ws,
                         json={"region": "us"}).json()["workspace"]["region"] == "us"
        err(api.patch(f"{base}/workspaces/{prod['workspace_id']}", headers=as_ws, json={"region": "us"}), 404,
            "workspace_not_found")
        seen = {m["actor_id"] for m in api.get(f"{base}/members", headers=as_ws).json()["members"]}
        assert seen == {WS_ADMIN, PLAIN}
        err(api.get(f"{base}/members", headers=as_ws, params={"workspace_id": prod["workspace_id"]}), 404,
            "workspace_not_found")
        added = api.post(f"{base}/members", headers=as_ws,
                         json={"actor_id": "new@orgs.example", "role": "member",
                               "workspace_id": staging["workspace_id"]}).json()["member"]
        err(api.post(f"{base}/members", headers=as_ws, json={"actor_id": "boss@orgs.example", "role": "org_admin"}),
            403, "role_denied")
        err(api.patch(f"{base}/members/{members[OWNER]['member_id']}", headers=as_ws, json={"role": "member"}), 404,
            "member_not_found")
        removed = api.delete(f"{base}/members/{added['member_id']}", headers=as_ws).json()
        assert removed["removed"] is True and removed["member_id"] == added["member_id"] and removed["removed_at"]
        assert api.delete(f"{base}/members/{added['member_id']}", headers=as_ws).json() == removed  # again: same
        err(api.patch(f"{base}/members/{added['member_id']}", json={"role": "member"}), 409, "member_removed")

        # a plain member: refused; a person of no membership, and a made-up organization: 404 alike
        err(api.get(base, headers=people[PLAIN]), 403, "role_denied")
        err(api.get(f"{base}/workspaces", headers=people[PLAIN]), 403, "role_denied")
        unknown = err(api.get("/v1/organizations/0190aaaa-0000-7000-8000-000000000000", headers=people[OWNER]),
                      404, "org_not_found")
        stranger = err(api.get(base, headers=people[STRANGER]), 404, "org_not_found")
        assert stranger["error"]["message"].replace(org_id, "X") == unknown["error"]["message"].replace(
            "0190aaaa-0000-7000-8000-000000000000", "X")
        err(api.patch(f"{base}/members/{members[PLAIN]['member_id']}", headers=people[STRANGER],
                      json={"role": "workspace_admin"}), 404, "org_not_found")

        # people do not create organizations; agent keys touch none of this
        err(api.post("/v1/organizations", headers=people[OWNER], json={"name": "Mine", "requested_by_actor_id": "me"}),
            403, "role_denied")
        _, agent_key = make_agent(api, unique("org-agent"))
        as_agent = {"x-api-key": agent_key}
        for method, path in (("GET", base), ("GET", "/v1/organizations/local"), ("GET", f"{base}/members"),
                             ("POST", "/v1/organizations")):
            err(api.request(method, path, headers=as_agent, json={"name": "Agents", "requested_by_actor_id": "a"}
                            if method == "POST" else None), 403, "policy_denied")

        # the personal context: a person's organizations and workspaces with their roles (and the runtime's default
        # workspace, where every person is a member); the admin key's: all
        mine = api.get("/v1/portal/personal/context", headers=as_ws).json()
        assert [(o["org_id"], o["roles"]) for o in mine["organizations"]] == [
            ("local", ["member"]), (org_id, ["workspace_admin"])]
        assert [(w["workspace_id"], w["org_id"], w["roles"]) for w in mine["workspaces"]] == [
            ("dev", "local", ["member"]), (staging["workspace_id"], org_id, ["workspace_admin"])]
        assert mine["workspaces"][-1]["org_name"] == "Acme"
        assert mine["account"]["email"] == WS_ADMIN and mine["context"] == {"org_id": "local", "workspace_id": "dev"}
        assert {w["workspace_id"] for w in api.get("/v1/portal/personal/context", headers=as_owner).json()[
            "workspaces"]} == {"dev", staging["workspace_id"], prod["workspace_id"]}
        everything = api.get("/v1/portal/personal/context").json()
        assert {"local", org_id} <= {o["org_id"] for o in everything["organizations"]}
        assert everything["selected_workspace"]["workspace_id"] == "dev"
        stranger = api.get("/v1/portal/personal/context", headers=people[STRANGER]).json()
        assert [o["org_id"] for o in stranger["organizations"]] == ["local"]
        assert [w["workspace_id"] for w in stranger["workspaces"]] == ["dev"]

        # the last owner stays one; with a second owner the first may step down
        owner_id = members[OWNER]["member_id"]
        err(api.patch(f"{base}/members/{owner_id}", headers=as_owner, json={"role": "org_admin"}), 409, "last_owner")
        err(api.delete(f"{base}/members/{owner_id}"), 409, "last_owner")
        api.patch(f"{base}/members/{members[ADMIN]['member_id']}", headers=as_owner, json={"role": "org_owner"})
        assert api.patch(f"{base}/members/{owner_id}", headers=as_owner, json={"status": "suspended"}).json()[
            "member"]["status"] == "suspended"
        err(api.get(base, headers=as_owner), 404, "org_not_found")  # a suspended membership grants nothing


def test_bad_input_names_the_field(rt: RuntimeProcess) -> None:
    with rt.client() as api:
        err(api.post("/v1/organizations", json={"name": "A", "requested_by_actor_id": "x"}), 422,
            "schema_invalid", "name")
        err(api.post("/v1/organizations", json={"name": "Acme"}), 422, "schema_invalid", "requested_by_actor_id")
        err(api.patch("/v1/organizations/local", json={"status": "gone"}), 422, "schema_invalid", "status")
        org_id = api.post("/v1/organizations", json={"name": "Bad Input", "requested_by_actor_id": OWNER}).json()[
            "organization"]["org_id"]
        base = f"/v1/organizations/{org_id}"
        err(api.post(f"{base}/workspaces", json={"name": "qa", "environment": "moon"}), 422, "schema_invalid",
            "environment")
        err(api.post(f"{base}/workspaces", json={"org_id": "local", "name": "qa", "environment": "sandbox"}), 400,
            "scope_mismatch", "org_id")
        err(api.post("/v1/organizations/nope/workspaces", json={"name": "qa", "environment": "sandbox"}), 404,
            "org_not_found", "org_id")
        qa = api.post(f"{base}/workspaces", json={"name": "qa", "environment": "sandbox"}).json()["workspace"]
        err(api.post(f"{base}/workspaces", json={"name": "qa", "environment": "staging"}), 409, "workspace_exists",
            "name")
        err(api.patch(f"/v1/organizations/local/workspaces/{qa['workspace_id']}", json={"region": "eu"}), 404,
            "workspace_not_found")  # a workspace of another organization
        err(api.post(f"{base}/members", json={"actor_id": "a@b.c", "role": "boss"}), 422, "schema_invalid", "role")
        err(api.post(f"{base}/members", json={"actor_id": "a@b.c", "role": "workspace_admin"}), 422,
            "invalid_role_scope", "workspace_id")
        err(api.post(f"{base}/members", json={"actor_id": "a@b.c", "role": "org_admin",
                                              "workspace_id": qa["workspace_id"]}), 422, "invalid_role_scope", "role")
        err(api.post(f"{base}/members", json={"actor_id": "a@b.c", "role": "member", "workspace_id": "dev"}), 404,
            "workspace_not_found", "workspace_id")
        err(api.post(f"{base}/members", json={"actor_id": OWNER.upper(), "role": "org_admin"}), 409, "member_exists",
            "actor_id")
        err(api.delete(f"{base}/members/0190aaaa-0000-7000-8000-000000000000"), 404, "member_not_found")
        err(api.post(f"{base}/members", content=b"[1]", headers={"content-type": "application/json"}), 422,
            "schema_invalid")


def test_a_workspace_key_administers_its_workspace_and_nothing_else_yet(rt: RuntimeProcess) -> None:
    with rt.client() as api:
        org_id = api.post("/v1/organizations", json={"name": "Keyed", "requested_by_actor_id": OWNER}).json()[
            "organization"]["org_id"]
        base = f"/v1/organizations/{org_id}"
        made = api.post(f"{base}/workspaces", json={"name": "blue", "environment": "sandbox"}).json()
        blue, key = made["workspace"], made["key"]
        assert key["workspace_id"] == blue["workspace_id"] and key["token"].startswith("axme_ws_")
        assert key["key_hint"] == "..." + key["token"][-4:]
        green = api.post(f"{base}/workspaces", json={"name": "green", "environment": "sandbox"}).json()["workspace"]
        as_blue = {"x-api-key": key["token"]}

        # its own workspace: listed, changed, its members managed, another key made
        assert [w["workspace_id"] for w in api.get(f"{base}/workspaces", headers=as_blue).json()["workspaces"]] == [
            blue["workspace_id"]]
        assert api.patch(f"{base}/workspaces/{blue['workspace_id']}", headers=as_blue,
                         json={"region": "eu"}).json()["workspace"]["region"] == "eu"
        member = api.post(f"{base}/members", headers=as_blue, json={
            "actor_id": PLAIN, "role": "member", "workspace_id": blue["workspace_id"]})
        assert member.status_code == 200, member.text
        again = api.post(f"{base}/workspaces/{blue['workspace_id']}/keys", headers=as_blue).json()["key"]
        assert again["token"] != key["token"]
        context = api.get("/v1/portal/personal/context", headers={"x-api-key": again["token"]}).json()
        assert context["context"] == {"org_id": org_id, "workspace_id": blue["workspace_id"]}
        assert [w["workspace_id"] for w in context["workspaces"]] == [blue["workspace_id"]]

        # not the other workspace, not the organization itself, not another organization, not a new one
        err(api.patch(f"{base}/workspaces/{green['workspace_id']}", headers=as_blue, json={"region": "eu"}), 404,
            "workspace_not_found")
        err(api.post(f"{base}/workspaces/{green['workspace_id']}/keys", headers=as_blue), 404, "workspace_not_found")
        err(api.patch(base, headers=as_blue, json={"name": "Mine now"}), 403, "role_denied")
        err(api.get("/v1/organizations/local", headers=as_blue), 404, "org_not_found")
        err(api.post("/v1/organizations", headers=as_blue, json={"name": "More", "requested_by_actor_id": "me"}),
            403, "role_denied")

        # the families that stay the default workspace's (tests/runtime/api/test_workspace_isolation*.py have
        # those open to every workspace) serve it only: refused, never the default's data
        for method, path in (("GET", "/v1/users/profile"), ("POST", "/v1/invites/create")):
            err(api.request(method, path, headers=as_blue, json={} if method == "POST" else None), 403,
                "workspace_not_served")
        # the opened ones answer in the new workspace, which has nothing yet
        assert api.get("/v1/intents", headers=as_blue).json()["intents"] == []
        assert api.get("/v1/inbox", headers=as_blue).json()["threads"] == []
        assert api.get("/v1/webhooks/subscriptions", headers=as_blue).json()["subscriptions"] == []
        mcp = api.post("/mcp", headers=as_blue, json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "axme.list_intents", "arguments": {}}})
        assert mcp.json()["result"]["ok"] is True and "intent_id" not in mcp.text, mcp.text[:500]

        # the tokens are nowhere in what the runtime shows afterwards
        events = api.get("/v1/audit/events", params={"action_prefix": "workspace", "limit": 50}).text
        assert "workspace.key_created" in events and key["token"] not in events and again["token"] not in events

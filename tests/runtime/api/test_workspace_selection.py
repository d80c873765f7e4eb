"""A person acting in a selected workspace, and a workspace's members included and excluded, over a real runtime on
both backends.

``POST /v1/portal/personal/workspace-selection`` records the selection on the person's login session: every access
token of it (a refreshed one too) then acts in that workspace, where the families opened to other workspaces serve
it as they serve that workspace's admin key (service accounts: B's, never A's) and the others refuse it
(403 workspace_not_served); only a workspace of an active membership may be selected (404 as for a missing one,
whether or not it exists); the selection lapses with the membership; the default pair goes back to the default
workspace; a person's own login sessions stay theirs wherever they act. ``/v1/workspaces/{ws}/members/include``
and ``.../{member}/exclude`` have the gateway's shapes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.auth_helpers import bearer, login
from tests.conftest import unique
from tests.runtime.api.test_workspace_isolation import ok
from tests.runtime_proc import RuntimeProcess
from tests.runtime_thread import RuntimeThread

ANN, BOB, CAROL = (f"{who}@select.example" for who in ("ann", "bob", "carol"))
SELECT = "/v1/portal/personal/workspace-selection"


@pytest.fixture(scope="module")
def rt(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    proc = RuntimeThread(tmp_path_factory.mktemp("select"), extra_args=[
        "--redelivery-seconds", "600", "--allow-email", "@select.example", "--login-rate-limit", "0"],
        backend=backend)
    proc.start()
    yield proc
    proc.stop()


def err(r: httpx.Response, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"]["code"] == code, body
    if field is not None:
        assert body["error"]["details"].get("field") == field or field in body["error"]["message"], body
    return dict(body)


def test_a_selected_person_acts_in_that_workspace(rt: RuntimeProcess) -> None:
    with rt.client() as api:
        org_id = ok(api.post("/v1/organizations", json={"name": unique("Sel"), "requested_by_actor_id": CAROL}))[
            "organization"]["org_id"]
        made = {name: ok(api.post(f"/v1/organizations/{org_id}/workspaces",
                                  json={"name": name, "environment": "sandbox"})) for name in ("blue", "green")}
        blue, green = (made[n]["workspace"]["workspace_id"] for n in ("blue", "green"))
        # a service account in the default workspace (A) and one in blue (B)
        in_a = ok(api.post("/v1/service-accounts", json={"name": unique("a-agent")}))["service_account"]
        with rt.client(made["blue"]["key"]["token"]) as as_blue:
            in_b = ok(as_blue.post("/v1/service-accounts", json={"name": unique("b-agent")}))["service_account"]

        # ann is included in blue (by its admin key), with the gateway's shapes
        with rt.client(made["blue"]["key"]["token"]) as as_blue:
            member = ok(as_blue.post(f"/v1/workspaces/{blue}/members/include",
                                     json={"actor_id": ANN.upper(), "org_id": org_id, "workspace_id": blue}))["member"]
        assert (member["workspace_id"], member["role"], member["status"]) == (blue, "member", "active")

        ann = login(api, rt.mail_dir, ANN)
        as_ann = bearer(ann["access_token"])
        # not selected yet: the default workspace, whose service accounts she sees
        assert ok(api.get("/v1/portal/personal/context", headers=as_ann))["context"] == {
            "org_id": "local", "workspace_id": "dev"}
        assert in_a["service_account_id"] in {s["service_account_id"] for s in ok(api.get(
            "/v1/service-accounts", headers=as_ann))["service_accounts"]}

        # a workspace without her membership, one that does not exist, an organization that does not exist or is
        # not hers: 404, the same answers
        err(api.post(SELECT, headers=as_ann, json={"org_id": org_id, "workspace_id": green}), 404,
            "workspace_not_found")
        err(api.post(SELECT, headers=as_ann, json={"org_id": org_id, "workspace_id": "0190aaaa-0000-7000-8000-0000"}),
            404, "workspace_not_found")
        missing = err(api.post(SELECT, headers=as_ann, json={"org_id": "no-such-org", "workspace_id": blue}), 404,
                      "org_not_found")
        theirs = err(api.post(SELECT, headers=bearer(login(api, rt.mail_dir, BOB)["access_token"]),
                              json={"org_id": org_id, "workspace_id": blue}), 404, "org_not_found")
        assert missing["error"]["message"].replace("no-such-org", "X") == theirs["error"]["message"].replace(
            org_id, "X")
        # bad bodies name the field; an API key has no session to select for
        err(api.post(SELECT, headers=as_ann, json={"org_id": org_id}), 422, "schema_invalid", "workspace_id")
        err(api.post(SELECT, json={"org_id": org_id, "workspace_id": blue}), 401, "missing_actor_token")

        selected = ok(api.post(SELECT, headers=as_ann, json={"org_id": org_id, "workspace_id": blue}))
        assert selected["context"] == {"org_id": org_id, "workspace_id": blue}
        assert selected["selected_workspace"]["workspace_id"] == blue
        assert selected["selected_organization"]["org_id"] == org_id

        # now she sees B's service accounts, not A's, and A's ids are 404 to her
        listed = {s["service_account_id"] for s in ok(api.get("/v1/service-accounts", headers=as_ann))[
            "service_accounts"]}
        assert in_b["service_account_id"] in listed and in_a["service_account_id"] not in listed
        err(api.get(f"/v1/service-accounts/{in_a['service_account_id']}", headers=as_ann), 404,
            "service_account_not_found")
        assert ok(api.get(f"/v1/agents/{in_b['name']}", headers=as_ann))["agent"]["service_account_id"] == in_b[
            "service_account_id"]
        # a family not opened to other workspaces refuses her there, as it refuses B's key; intents are B's
        err(api.get("/v1/users/profile", headers=as_ann), 403, "workspace_not_served")
        assert ok(api.get("/v1/intents", headers=as_ann))["intents"] == []
        # her login sessions are hers wherever she acts (B's key may not see people's sessions)
        sessions = ok(api.get("/v1/auth/sessions", headers=as_ann))
        assert sessions["current_session_id"] == ann["session_id"]
        err(api.get("/v1/auth/sessions", headers={"x-api-key": made["blue"]["key"]["token"]}), 403,
            "workspace_not_served")
        # a refreshed access token of the same session acts there too
        refreshed = ok(api.post("/v1/auth/refresh", json={"refresh_token": ann["refresh_token"]}))
        assert ok(api.get("/v1/portal/personal/context", headers=bearer(refreshed["access_token"])))["context"][
            "workspace_id"] == blue
        as_ann = bearer(refreshed["access_token"])

        # the default pair goes back to the default workspace
        back = ok(api.post(SELECT, headers=as_ann, json={"org_id": "local", "workspace_id": "dev"}))
        assert back["context"] == {"org_id": "local", "workspace_id": "dev"}
        assert ok(api.get("/v1/intents", headers=as_ann, params={"limit": 1}))["ok"] is True

        # selected again, then excluded from blue: the selection lapses at once (the default workspace again)
        ok(api.post(SELECT, headers=as_ann, json={"org_id": org_id, "workspace_id": blue}))
        err(api.get("/v1/users/profile", headers=as_ann), 403, "workspace_not_served")
        excluded = ok(api.delete(f"/v1/workspaces/{blue}/members/{member['member_id']}/exclude"))["result"]
        assert (excluded["member_id"], excluded["workspace_id"], excluded["status"]) == (
            member["member_id"], blue, "removed")
        assert ok(api.get("/v1/portal/personal/context", headers=as_ann))["context"]["workspace_id"] == "dev"
        err(api.post(SELECT, headers=as_ann, json={"org_id": org_id, "workspace_id": blue}), 404,
            "org_not_found")  # no membership of the organization left


def test_include_and_exclude_have_the_gateway_shapes_and_rules(rt: RuntimeProcess) -> None:
    with rt.client() as api:
        org_id = ok(api.post("/v1/organizations", json={"name": unique("Inc"), "requested_by_actor_id": CAROL}))[
            "organization"]["org_id"]
        made = {name: ok(api.post(f"/v1/organizations/{org_id}/workspaces",
                                  json={"name": name, "environment": "staging"})) for name in ("red", "gray")}
        red, gray = (made[n]["workspace"]["workspace_id"] for n in ("red", "gray"))
        with rt.client(made["red"]["key"]["token"]) as as_red:
            admin = ok(as_red.post(f"/v1/workspaces/{red}/members/include",
                                   json={"actor_id": BOB, "role": "workspace_admin"}))["member"]
            assert (admin["org_id"], admin["workspace_id"], admin["role"]) == (org_id, red, "workspace_admin")
            err(as_red.post(f"/v1/workspaces/{red}/members/include", json={"actor_id": BOB}), 409, "member_exists")
            # an organization-wide role is not a workspace's; the body's workspace must be the path's
            err(as_red.post(f"/v1/workspaces/{red}/members/include", json={"actor_id": ANN, "role": "org_admin"}),
                422, "schema_invalid", "role")
            err(as_red.post(f"/v1/workspaces/{red}/members/include", json={"actor_id": ANN, "workspace_id": gray}),
                400, "scope_mismatch", "workspace_id")
            # another workspace of the organization, one of another organization, one that does not exist: 404
            for other in (gray, "dev", "0190aaaa-0000-7000-8000-000000000000"):
                err(as_red.post(f"/v1/workspaces/{other}/members/include", json={"actor_id": ANN}), 404,
                    "workspace_not_found")
            err(as_red.post(f"/v1/workspaces/{red}/members/include", json={"actor_id": ANN, "org_id": "local"}),
                404, "workspace_not_found")
        # a member of the whole organization, or of another workspace, is not one to exclude here
        org_member = ok(api.post(f"/v1/organizations/{org_id}/members",
                                 json={"actor_id": ANN, "role": "billing_viewer"}))["member"]
        gray_member = ok(api.post(f"/v1/workspaces/{gray}/members/include", json={"actor_id": ANN}))["member"]
        for member_id in (org_member["member_id"], gray_member["member_id"], "not-a-member"):
            err(api.delete(f"/v1/workspaces/{red}/members/{member_id}/exclude"), 404, "member_not_found")
        # a person by their membership: bob (red's workspace_admin) manages red's members, not gray's
        as_bob = bearer(login(api, rt.mail_dir, BOB)["access_token"])
        included = ok(api.post(f"/v1/workspaces/{red}/members/include", headers=as_bob,
                               json={"actor_id": CAROL}))["member"]
        err(api.delete(f"/v1/workspaces/{gray}/members/{gray_member['member_id']}/exclude", headers=as_bob), 404,
            "workspace_not_found")
        first = ok(api.delete(f"/v1/workspaces/{red}/members/{included['member_id']}/exclude", headers=as_bob))
        assert first == ok(api.delete(f"/v1/workspaces/{red}/members/{included['member_id']}/exclude",
                                      headers=as_bob))  # again: the same answer
        listed = ok(api.get(f"/v1/organizations/{org_id}/members", params={"workspace_id": red}))["members"]
        assert [(m["actor_id"], m["role"]) for m in listed] == [(BOB, "workspace_admin")]

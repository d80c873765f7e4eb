"""Workspace isolation over a real runtime, on both backends: the families opened to other workspaces than the
runtime's default one (service accounts, their keys and the agent directory here; the governance families in
test_workspace_isolation_gov.py) serve a workspace's admin key in its
own workspace, and one workspace sees and changes nothing of another (404 for its ids, lists without its rows), in
both directions; a service account of a workspace gets that workspace's addresses and its keys carry it; the
families that stay the default workspace's (users, invites, metrics) refuse those keys (403 workspace_not_served).
The intent families (intents, workflows, inbox, approvals, tasks, webhooks, deliveries, MCP) are in
test_workspace_isolation_intents.py; media, schemas and whoami in test_workspace_isolation_rest.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from axme_sdk import AxmeClient, AxmeClientConfig
from axme_sdk.exceptions import AxmeHttpError

from tests.conftest import unique
from tests.runtime_proc import RuntimeProcess
from tests.runtime_thread import RuntimeThread


@dataclass(frozen=True)
class Space:
    org_id: str
    workspace_id: str
    key: str  # its admin key

    @property
    def prefix(self) -> str:
        return f"agent://{self.org_id}/{self.workspace_id}/"


@pytest.fixture(scope="module")
def rt(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    proc = RuntimeThread(tmp_path_factory.mktemp("iso"), extra_args=["--redelivery-seconds", "600"], backend=backend)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def spaces(rt: RuntimeProcess) -> dict[str, Space]:
    """``a``: the runtime's default workspace (its admin key); ``b`` and ``c``: two workspaces of a new org."""
    with rt.client() as api:
        org_id = api.post("/v1/organizations", json={"name": unique("iso"), "requested_by_actor_id": "o@x.example"}
                          ).json()["organization"]["org_id"]
        made = {}
        for name in ("b", "c"):
            answer = api.post(f"/v1/organizations/{org_id}/workspaces",
                              json={"name": f"space-{name}", "environment": "sandbox"}).json()
            made[name] = Space(org_id, answer["workspace"]["workspace_id"], answer["key"]["token"])
    assert rt.api_key is not None
    return {"a": Space("local", "dev", rt.api_key), **made}


def ok(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    return dict(r.json())


def err(r: httpx.Response, status: int, code: str, field: str | None = None) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"]["code"] == code, body
    if field is not None:
        assert body["error"]["details"].get("field") == field, body


def make_sa(api: httpx.Client, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    sa = api.post("/v1/service-accounts", json={"name": name})
    assert sa.status_code == 200, sa.text
    sa_id = sa.json()["service_account"]["service_account_id"]
    key = api.post(f"/v1/service-accounts/{sa_id}/keys", json={})
    assert key.status_code == 200, key.text
    return sa.json()["service_account"], key.json()["key"]


def test_service_accounts_are_their_workspaces_own(rt: RuntimeProcess, spaces: dict[str, Space]) -> None:
    name = unique("inventory")
    made: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for who, space in spaces.items():  # one name in three workspaces: three agents, no conflict
        with rt.client(space.key) as api:
            sa, key = made[who] = make_sa(api, name)
            assert sa["agent_address"] == space.prefix + name
            assert (sa["org_id"], sa["workspace_id"]) == (space.org_id, space.workspace_id)
            err(api.post("/v1/service-accounts", json={"name": name}), 409, "service_account_exists")
    ids = {who: sa["service_account_id"] for who, (sa, _) in made.items()}

    for who, space in spaces.items():
        with rt.client(space.key) as api:
            mine, others = ids[who], [i for w, i in ids.items() if w != who]
            listed = api.get("/v1/service-accounts").json()["service_accounts"]
            assert mine in {s["service_account_id"] for s in listed}
            assert {s["workspace_id"] for s in listed} == {space.workspace_id}
            agents = api.get("/v1/agents").json()["agents"]
            assert agents and all(a["address"].startswith(space.prefix) for a in agents)
            assert api.get(f"/v1/agents/{name}").json()["agent"]["service_account_id"] == mine
            for other_who, other in ((w, s) for w, s in spaces.items() if w != who):
                other_id, other_key = ids[other_who], made[other_who][1]
                # another workspace's ids: as unknown as missing ones, for reading and for changing
                err(api.get(f"/v1/service-accounts/{other_id}"), 404, "service_account_not_found")
                err(api.post(f"/v1/service-accounts/{other_id}/keys", json={}), 404, "service_account_not_found")
                err(api.post(f"/v1/service-accounts/{other_id}/keys/{other_key['key_id']}/revoke"), 404,
                    "key_not_found")
                err(api.delete(f"/v1/service-accounts/{other_id}"), 404, "service_account_not_found")
                err(api.get(f"/v1/agents/{quote(other.prefix + name, safe='')}"), 404, "agent_not_found")
                # naming the other workspace in the list's query (as the SDK does) is 404 too
                err(api.get("/v1/service-accounts", params={"org_id": other.org_id,
                                                             "workspace_id": other.workspace_id}),
                    404, "org_not_found" if other.org_id != space.org_id else "workspace_not_found")
                # nor can a new one be made there
                err(api.post("/v1/service-accounts", json={"name": unique("x"), "workspace_id": other.workspace_id}),
                    404, "workspace_not_found", "workspace_id")
                err(api.post("/v1/service-accounts", json={"name": other.prefix + unique("x")}), 422,
                    "invalid_agent_address", "name")
            assert not {i for i in others} & {s["service_account_id"] for s in listed}

    # nothing above changed another workspace: every agent and key still works
    for who, (sa, key) in made.items():
        with rt.client(key["token"]) as as_agent:
            me = as_agent.get(f"/v1/agents/{quote(sa['agent_address'], safe='')}")
            assert me.status_code == 200, me.text
            assert me.json()["agent"]["service_account_id"] == ids[who]


def test_a_workspaces_agent_key_carries_its_workspace(rt: RuntimeProcess, spaces: dict[str, Space]) -> None:
    b, a = spaces["b"], spaces["a"]
    with rt.client(b.key) as api:
        sa, key = make_sa(api, unique("worker"))
        _, spare = make_sa(api, unique("spare"))
    with rt.client(key["token"]) as as_agent:
        # it sees itself only, in its workspace
        listed = as_agent.get("/v1/service-accounts").json()["service_accounts"]
        assert [s["service_account_id"] for s in listed] == [sa["service_account_id"]]
        assert [x["address"] for x in as_agent.get("/v1/agents").json()["agents"]] == [sa["agent_address"]]
        # an agent key manages no service accounts, in its workspace or elsewhere
        err(as_agent.post("/v1/service-accounts", json={"name": unique("more")}), 403, "policy_denied")
        # the families that stay the default workspace's refuse it, and show nothing of the default one
        # (the governance families are open: test_workspace_isolation_gov.py; intents, inbox, webhooks, delivery
        # and the rest: test_workspace_isolation_intents.py; media, schemas, whoami: test_workspace_isolation_rest.py)
        for method, path in (("GET", "/v1/users/profile"), ("POST", "/v1/invites/create")):
            err(as_agent.request(method, path), 403, "workspace_not_served")
        assert as_agent.get("/v1/intents").json()["intents"] == []
        mine = as_agent.get(f"/v1/service-accounts/{sa['service_account_id']}/delivery")
        assert mine.status_code == 200, mine.text
    # the default workspace's admin cannot reach it through those families either
    with rt.client(a.key) as api:
        err(api.get(f"/v1/service-accounts/{sa['service_account_id']}/delivery"), 404, "service_account_not_found")
        err(api.put(f"/v1/service-accounts/{sa['service_account_id']}/delivery", json={"delivery_mode": "stream"}),
            404, "service_account_not_found")
        assert sa["agent_address"] not in api.get("/v1/mesh/agents").text
    # its own admin revokes it: the key stops working at once
    with rt.client(b.key) as api:
        revoked = api.post(f"/v1/service-accounts/{sa['service_account_id']}/keys/{key['key_id']}/revoke")
        assert revoked.json()["key"]["status"] == "revoked"
        gone = api.delete(f"/v1/service-accounts/{spare['service_account_id']}")
        assert gone.json()["service_account"]["status"] == "deleted"
    with rt.client(key["token"]) as as_agent:
        err(as_agent.get("/v1/service-accounts"), 401, "invalid_platform_api_key")
    with rt.client(spare["token"]) as as_agent:
        err(as_agent.get("/v1/agents"), 401, "invalid_platform_api_key")


def test_the_sdk_in_another_workspace(rt: RuntimeProcess, spaces: dict[str, Space]) -> None:
    b, a = spaces["b"], spaces["a"]
    sdk = AxmeClient(AxmeClientConfig(base_url=rt.url, api_key=b.key, max_retries=0))
    name = unique("sdk")
    sa = sdk.create_service_account({"name": name})["service_account"]
    assert sa["agent_address"] == b.prefix + name
    key = sdk.create_service_account_key(sa["service_account_id"], {})["key"]
    listed = sdk.list_service_accounts(org_id=b.org_id, workspace_id=b.workspace_id)["service_accounts"]
    assert sa["service_account_id"] in {s["service_account_id"] for s in listed}
    assert sdk.get_service_account(sa["service_account_id"])["service_account"]["address"] == sa["agent_address"]
    agents = sdk.list_agents(org_id=b.org_id, workspace_id=b.workspace_id)["agents"]
    assert {x["address"] for x in agents} >= {sa["agent_address"]}
    assert sdk.get_agent(sa["agent_address"])["agent"]["address"] == sa["agent_address"]
    with pytest.raises(AxmeHttpError) as denied:
        sdk.list_agents(org_id=a.org_id, workspace_id=a.workspace_id)
    assert denied.value.status_code == 404
    assert sdk.revoke_service_account_key(sa["service_account_id"], key["key_id"])["key"]["status"] == "revoked"
    # the default workspace's SDK does not see it
    theirs = AxmeClient(AxmeClientConfig(base_url=rt.url, api_key=a.key, max_retries=0))
    listed = theirs.list_service_accounts(org_id=a.org_id, workspace_id=a.workspace_id)["service_accounts"]
    assert sa["service_account_id"] not in {s["service_account_id"] for s in listed}
    with pytest.raises(AxmeHttpError) as hidden:
        theirs.get_service_account(sa["service_account_id"])
    assert hidden.value.status_code == 404

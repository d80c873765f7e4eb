"""Sender policies on the real runtime: an agent's send policy (/v1/agents/{address}/policy), the org's receive
policy (/v1/organizations/{org_id}/receive-policy) and an agent's receive override (/v1/agents/{address}/
receive-override), each with its entries; their shapes; who may set them; patterns that can match no address
refused naming them; and the refusals themselves: an intent a policy forbids is 403 policy_denied naming the
policy and the entry, whichever way it is created (POST /v1/intents, MCP, a schedule, a scenario's apply), and a
change reaches another replica. The in-memory rules that spare a create any query are tested at the end."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from axme_cli.runtime.engine import intents as intents_engine
from axme_cli.runtime.engine import policies as engine
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store import open_store
from tests.auth_helpers import bearer, read_code
from tests.conftest import make_agent, new_intent, unique
from tests.receiver import poll
from tests.runtime_proc import TLS, RuntimeProcess, new_database
from tests.runtime_thread import RuntimeThread

ORG = "/v1/organizations/local/receive-policy"
PARTNER = "agent://partner/prod/bot"  # an agent of another organization (the workspace key sends as it)


def path(address: str, what: str = "policy") -> str:
    return f"/v1/agents/{address.removeprefix('agent://')}/{what}"


def ok(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    return dict(r.json())


def refused(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"]["code"] == code and body["detail"] == body["error"]["message"], body
    return dict(body["error"])


def send(client: httpx.Client, to: str, **extra: Any) -> httpx.Response:
    return client.post("/v1/intents", json=new_intent(to, **extra))


@pytest.fixture
def agents(api: httpx.Client) -> dict[str, tuple[str, str]]:
    """Three agents of the workspace of their own: name -> (address, key)."""
    return {name: make_agent(api, unique(name)) for name in ("target", "friend", "stranger")}


@pytest.fixture
def org_policy(api: httpx.Client) -> Iterator[None]:
    """The org's receive policy is the runtime's: each test that changes it puts it back (open, no entries)."""
    yield
    ok(api.put(ORG, json={"policy_type": "open"}))
    for entry in ok(api.get(ORG))["policy"]["entries"]:
        ok(api.delete(f"{ORG}/entries/{entry['entry_id']}"))


# ---------------------------------------------------------------------------------------------
# the policies themselves


def test_a_send_policy_reads_sets_and_keeps_its_entries(api: httpx.Client,
                                                        agents: dict[str, tuple[str, str]]) -> None:
    target, _ = agents["target"]
    fresh = ok(api.get(path(target)))["policy"]
    assert fresh == {"org_id": "local", "agent_address": target, "workspace_id": "dev", "policy_type": "open",
                     "entries": [], "updated_at": None, "updated_by": None}
    assert ok(api.get(f"/v1/agents/{target}/policy"))["policy"] == fresh  # the literal agent:// form too
    set_ = ok(api.put(path(target), json={"policy_type": "allowlist"}))
    assert set_["changed"] is True and set_["policy"]["policy_type"] == "allowlist"
    assert set_["policy"]["updated_by"] == "initiator://local/dev/admin"
    assert ok(api.put(path(target), json={"policy_type": "allowlist"}))["changed"] is False
    added = ok(api.post(path(target, "policy/entries"), json={"sender_pattern": "friend-x"}))
    entry = added["entry"]
    assert added["created"] is True and entry["sender_pattern"] == "agent://local/dev/friend-x"
    again = ok(api.post(path(target, "policy/entries"), json={"sender_pattern": "agent://local/dev/friend-x"}))
    assert again["created"] is False and again["entry"] == entry  # the same pattern: its entry, not a second
    ok(api.post(path(target, "policy/entries"), json={"sender_pattern": "agent://local/*"}))
    policy = ok(api.get(path(target)))["policy"]
    assert [e["sender_pattern"] for e in policy["entries"]] == ["agent://local/dev/friend-x", "agent://local/*"]
    ok(api.put(path(target), json={"policy_type": "denylist"}))
    assert len(ok(api.get(path(target)))["policy"]["entries"]) == 2  # a new type keeps the entries
    gone = ok(api.delete(path(target, f"policy/entries/{entry['entry_id']}")))
    assert gone["deleted"] is True and [e["sender_pattern"] for e in gone["policy"]["entries"]] == ["agent://local/*"]
    refused(api.delete(path(target, f"policy/entries/{entry['entry_id']}")), 404, "entry_not_found")
    audit = ok(api.get("/v1/audit/events", params={"action_prefix": "sender_policy", "limit": 1000}))["events"]
    mine = [(e["action"], e["details"].get("policy_type") or e["details"].get("sender_pattern"))
            for e in audit if e["owner_agent"] == target]
    assert mine == [("sender_policy.entry_removed", "agent://local/dev/friend-x"),
                    ("sender_policy.set", "denylist"), ("sender_policy.entry_added", "agent://local/*"),
                    ("sender_policy.entry_added", "agent://local/dev/friend-x"), ("sender_policy.set", "allowlist")]


@pytest.mark.backends("sqlite")  # refused before any store read
@pytest.mark.parametrize("pattern, reason", [
    ("agent://Local/dev/x", "organization slug"),
    ("agent://local/dev/*x", "whole last part"),
    ("agent://local/*/x", "whole last part"),
    ("agent://local/dev", "three parts"),
    ("agent://local/dev/x/y", "three parts"),
    ("agent://local//x", "no empty part"),
    ("actor://local/dev/ops@example.com", "only agent addresses"),
    ("agent://local/dev/-x", "no agent name"),
    ("   ", "a pattern names senders"),
])
def test_a_pattern_that_can_match_no_address_is_422_naming_it(api: httpx.Client, pattern: str, reason: str) -> None:
    target, _ = make_agent(api, unique("target"))
    for where in (path(target, "policy/entries"), path(target, "receive-override/entries"), f"{ORG}/entries"):
        err = refused(api.post(where, json={"sender_pattern": pattern}), 422, "invalid_sender_pattern")
        assert err["details"]["field"] == "sender_pattern" and reason in err["message"], err
        assert repr(pattern) in err["message"], err


@pytest.mark.backends("sqlite")  # refused before any store read (the agent named need not exist)
@pytest.mark.parametrize("url, body, field", [
    (path("agent://local/dev/x"), {"policy_type": "closed"}, "policy_type"),
    (path("agent://local/dev/x"), {"policy_type": "open", "extra": 1}, "extra"),
    (path("agent://local/dev/x", "receive-override"), {"override_type": "denylist"}, "override_type"),
    (path("agent://local/dev/x", "receive-override"), {"policy_type": "open"}, "override_type"),
    (ORG, {"policy_type": "denylist"}, "policy_type"),
    (ORG, {}, "policy_type"),
])
def test_a_bad_body_is_422_naming_the_field(api: httpx.Client, url: str, body: dict[str, Any], field: str) -> None:
    err = refused(api.put(url, json=body), 422, "schema_invalid")
    assert err["details"]["field"] == field and field in err["message"], err
    err = refused(api.post(f"{url}/entries", json={"sender_pattern": 7}), 422, "schema_invalid")
    assert err["details"]["field"] == "sender_pattern", err


def test_paths_of_nothing_here_are_404_and_bad_addresses_422(api: httpx.Client) -> None:
    refused(api.get(path(f"agent://local/dev/{unique('nobody')}")), 404, "agent_not_found")
    refused(api.put(path(f"agent://local/dev/{unique('nobody')}"), json={"policy_type": "open"}), 404,
            "agent_not_found")
    refused(api.get(path("agent://other/dev/worker")), 404, "agent_not_found")  # another org's agent
    refused(api.get("/v1/organizations/other/receive-policy"), 404, "organization_not_found")
    refused(api.put("/v1/organizations/other/receive-policy", json={"policy_type": "closed"}), 404,
            "organization_not_found")
    refused(api.post("/v1/organizations/other/receive-policy/entries", json={"sender_pattern": "*"}), 404,
            "organization_not_found")
    refused(api.get("/v1/agents/Not%20An%20Agent/policy"), 422, "invalid_agent_address")
    refused(api.get(f"{ORG}/entries/nope"), 405, "method_not_allowed")


def test_an_agent_named_policy_is_still_an_agent(api: httpx.Client) -> None:
    """GET /v1/agents/org/ws/policy names the agent ``policy`` (org/ws alone has no policy)."""
    r = api.post("/v1/service-accounts", json={"name": "policy"})
    assert r.status_code in (200, 409), r.text
    assert ok(api.get("/v1/agents/local/dev/policy"))["agent"]["address"] == "agent://local/dev/policy"
    assert ok(api.get("/v1/agents/policy/policy"))["policy"]["agent_address"] == "agent://local/dev/policy"


def test_who_may_read_and_set_them(quiet: RuntimeProcess, api: httpx.Client,
                                   agents: dict[str, tuple[str, str]]) -> None:
    target, target_key = agents["target"]
    other, other_key = agents["stranger"]
    with quiet.client(target_key) as own, quiet.client(other_key) as stranger:
        # an agent sets its own send policy (who may send to it), reads its own override and the org's policy
        assert ok(own.put(path(target), json={"policy_type": "denylist"}))["policy"]["updated_by"] == target
        ok(own.post(path(target, "policy/entries"), json={"sender_pattern": other}))
        assert ok(own.get(path(target, "receive-override")))["override"]["override_type"] == "use_org_default"
        assert ok(own.get(ORG))["policy"]["policy_type"] in ("open", "allowlist", "closed")
        # ... but opens or closes nothing to other organizations
        err = refused(own.put(path(target, "receive-override"), json={"override_type": "open"}), 403,
                      "policy_denied")
        assert "workspace key or a person" in err["message"]
        refused(own.post(path(target, "receive-override/entries"), json={"sender_pattern": "*"}), 403,
                "policy_denied")
        refused(own.put(ORG, json={"policy_type": "closed"}), 403, "policy_denied")
        refused(own.post(f"{ORG}/entries", json={"sender_pattern": "*"}), 403, "policy_denied")
        # another agent's policies do not exist for it
        for method, url, body in (("GET", path(target), None), ("PUT", path(target), {"policy_type": "open"}),
                                  ("GET", path(target, "receive-override"), None),
                                  ("POST", path(target, "policy/entries"), {"sender_pattern": "*"})):
            refused(stranger.request(method, url, json=body), 404, "agent_not_found")
    # a person sets any of them
    with httpx.Client(verify=TLS, base_url=quiet.url, headers=bearer(_person(quiet)), timeout=30) as person:
        set_ = ok(person.put(path(target, "receive-override"), json={"override_type": "closed"}))
        assert set_["override"]["override_type"] == "closed" and set_["override"]["updated_by"].startswith("actor://")
        ok(person.put(path(target, "receive-override"), json={"override_type": "use_org_default"}))


def _person(rt: RuntimeProcess) -> str:
    """A person's access token (login by email and code)."""
    who = f"{unique('ops')}@example.com"

    def code() -> str | None:
        try:
            return read_code(rt.mail_dir, who)
        except AssertionError:  # no mail yet
            return None

    with httpx.Client(verify=TLS, base_url=rt.url, timeout=30) as anon:
        intent_id = ok(anon.post("/v1/auth/login-intent", json={"email": who}))["intent_id"]
        verified = ok(anon.post(f"/v1/auth/login-intent/{intent_id}/verify",
                                json={"code": poll(code, lambda c: c is not None)}))
    return str(verified["access_token"])


# ---------------------------------------------------------------------------------------------
# refusals


def test_an_allowlist_admits_only_its_senders_and_names_itself(quiet: RuntimeProcess, api: httpx.Client,
                                                               agents: dict[str, tuple[str, str]]) -> None:
    target, _ = agents["target"]
    friend, friend_key = agents["friend"]
    stranger, stranger_key = agents["stranger"]
    ok(api.put(path(target), json={"policy_type": "allowlist"}))
    ok(api.post(path(target, "policy/entries"), json={"sender_pattern": friend}))
    with quiet.client(friend_key) as a, quiet.client(stranger_key) as b:
        assert ok(send(a, target))["status"] == "SUBMITTED"
        err = refused(send(b, target), 403, "policy_denied")
        assert err["details"] == {"policy": "agent_send_policy", "policy_type": "allowlist", "agent_address": target,
                                  "from_agent": stranger, "to_agent": target}
        assert target in err["message"] and "allowlist" in err["message"] and stranger in err["message"]
        assert ok(send(b, friend))["status"] == "SUBMITTED"  # the policy is the target's alone
    assert ok(send(api, target))["status"] == "SUBMITTED"  # the workspace key as itself: not an agent, not judged
    err = refused(send(api, target, from_agent=stranger), 403, "policy_denied")  # ... sending as an agent: judged
    assert err["details"]["from_agent"] == stranger
    ok(api.put(path(target), json={"policy_type": "open"}))
    assert ok(send(api, target, from_agent=stranger))["status"] == "SUBMITTED"


def test_a_denylist_refuses_its_senders_naming_the_entry(quiet: RuntimeProcess, api: httpx.Client,
                                                         agents: dict[str, tuple[str, str]]) -> None:
    target, _ = agents["target"]
    friend, friend_key = agents["friend"]
    stranger, _ = agents["stranger"]
    ok(api.put(path(target), json={"policy_type": "denylist"}))
    entry = ok(api.post(path(target, "policy/entries"), json={"sender_pattern": "agent://local/dev/*"}))["entry"]
    ok(api.post(path(target, "policy/entries"), json={"sender_pattern": stranger}))
    with quiet.client(friend_key) as a:
        err = refused(send(a, target), 403, "policy_denied")
    assert err["details"]["entry_id"] == entry["entry_id"]
    assert err["details"]["sender_pattern"] == "agent://local/dev/*" and "agent://local/dev/*" in err["message"]
    err = refused(send(api, target, from_agent=stranger), 403, "policy_denied")
    assert err["details"]["sender_pattern"] == stranger  # the most specific entry is the one named
    assert ok(send(api, target, from_agent=PARTNER))["status"] == "SUBMITTED"  # matches no entry
    assert ok(send(api, friend, from_agent=stranger))["status"] == "SUBMITTED"


def test_the_org_receive_policy_judges_agents_of_other_orgs(api: httpx.Client, org_policy: None,
                                                            agents: dict[str, tuple[str, str]]) -> None:
    target, _ = agents["target"]
    friend, _ = agents["friend"]
    ok(api.put(ORG, json={"policy_type": "closed"}))
    err = refused(send(api, target, from_agent=PARTNER), 403, "policy_denied")
    assert err["details"] == {"policy": "org_receive_policy", "policy_type": "closed", "org_id": "local",
                              "from_agent": PARTNER, "to_agent": target}
    assert "organization local's receive policy is closed" in err["message"]
    task = {"title": "Refund?", "task_type": "approval"}  # the org's people are behind it too
    refused(send(api, "agent://agent_core", from_agent=PARTNER, human_task=task), 403, "policy_denied")
    assert ok(send(api, target, from_agent=friend))["status"] == "SUBMITTED"  # the org's own agents: not judged
    assert ok(send(api, "agent://partner/prod/other", from_agent=PARTNER))  # to another org: not ours to judge
    ok(api.put(ORG, json={"policy_type": "allowlist"}))
    refused(send(api, target, from_agent=PARTNER), 403, "policy_denied")
    ok(api.post(f"{ORG}/entries", json={"sender_pattern": "agent://partner/*"}))
    assert ok(send(api, target, from_agent=PARTNER))["status"] == "SUBMITTED"
    err = refused(send(api, target, from_agent="agent://rival/prod/bot"), 403, "policy_denied")
    assert "none of its 1 entries matches agent://rival/prod/bot" in err["message"]
    policy = ok(api.get(ORG))["policy"]
    assert policy["org_id"] == "local" and "agent_address" not in policy and policy["policy_type"] == "allowlist"


def test_a_receive_override_stands_for_its_agent(api: httpx.Client, org_policy: None,
                                                 agents: dict[str, tuple[str, str]]) -> None:
    target, _ = agents["target"]
    friend, _ = agents["friend"]
    ok(api.put(ORG, json={"policy_type": "closed"}))
    override = ok(api.put(path(target, "receive-override"), json={"override_type": "open"}))["override"]
    assert override["override_type"] == "open" and override["agent_address"] == target
    assert ok(send(api, target, from_agent=PARTNER))["status"] == "SUBMITTED"  # open for this agent alone
    refused(send(api, friend, from_agent=PARTNER), 403, "policy_denied")
    ok(api.put(ORG, json={"policy_type": "open"}))
    ok(api.put(path(target, "receive-override"), json={"override_type": "allowlist"}))
    entry = ok(api.post(path(target, "receive-override/entries"), json={"sender_pattern": "agent://partner/prod/*"}))
    assert entry["override"]["entries"][0]["sender_pattern"] == "agent://partner/prod/*"
    assert ok(send(api, target, from_agent=PARTNER))["status"] == "SUBMITTED"
    err = refused(send(api, target, from_agent="agent://partner/staging/bot"), 403, "policy_denied")
    assert err["details"]["policy"] == "agent_receive_override" and err["details"]["agent_address"] == target
    assert f"{target}'s receive override is an allowlist" in err["message"]
    assert ok(send(api, friend, from_agent="agent://partner/staging/bot"))["status"] == "SUBMITTED"
    ok(api.put(path(target, "receive-override"), json={"override_type": "use_org_default"}))
    assert ok(send(api, target, from_agent="agent://partner/staging/bot"))["status"] == "SUBMITTED"


def test_every_way_of_creating_an_intent_is_judged(quiet: RuntimeProcess, api: httpx.Client,
                                                   agents: dict[str, tuple[str, str]]) -> None:
    target, _ = agents["target"]
    stranger, stranger_key = agents["stranger"]
    ok(api.put(path(target), json={"policy_type": "denylist"}))
    ok(api.post(path(target, "policy/entries"), json={"sender_pattern": stranger}))
    with quiet.client(stranger_key) as b:
        # MCP: its send tool calls POST /v1/intents; the route's refusal comes back whole in the JSON-RPC error
        answer = b.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "axme.send_intent", "arguments": {"to": target, "intent_type": "order.reserve.v1"}}})
        error = answer.json()["error"]
        assert error["data"]["http_status"] == 403 and error["data"]["error"]["code"] == "policy_denied", error
        assert error["data"]["error"]["details"]["sender_pattern"] == stranger
        # a scenario applied by the agent: every agent a step (or a compensation) sends to is judged first
        bundle = {"scenario_id": "policy.walk", "agents": [{"role": "shop", "address": stranger},
                                                           {"role": "stock", "address": target}],
                  "workflow": {"steps": [{"step_id": "own", "assigned_to": "shop",
                                          "compensate": {"assigned_to": "stock"}}]},
                  "intent": {"type": "order.reserve.v1", "payload": {}}}
        err = refused(b.post("/v1/scenarios/apply", json=bundle), 403, "policy_denied")
        assert err["details"]["step_id"] == "own" and err["details"]["to_agent"] == target
        before = ok(b.get("/v1/intents", params={"limit": 50}))["intents"]
        assert not [i for i in before if i["to_agent"] == target]  # nothing was made
    # a schedule runs as the workspace key; an intent it sends as the agent is judged as that agent
    schedule = ok(api.post("/v1/schedules", json={"cron": "0 3 * * *", "intent": {
        **new_intent(target), "from_agent": stranger}}))["schedule"]
    err = refused(api.post(f"/v1/schedules/{schedule['schedule_id']}/trigger"), 403, "policy_denied")
    assert err["details"]["from_agent"] == stranger
    ok(api.delete(f"/v1/schedules/{schedule['schedule_id']}"))


@pytest.mark.backends("postgres")
def test_a_change_reaches_another_replica(quiet: RuntimeProcess, tmp_path: Path) -> None:
    """Two runtimes on one database: a denylist set through one refuses the intents the other takes (its rules
    are dropped by the commit's notification), and removing the entry lets them through again."""
    second = RuntimeThread(tmp_path, backend="postgres", database_url=quiet.database_url,
                           extra_args=["--redelivery-seconds", "600"]).start()
    try:
        with quiet.client() as a, second.client() as b:
            target, _ = make_agent(a, unique("target"))
            stranger, _ = make_agent(a, unique("stranger"))
            assert send(b, target, from_agent=stranger).status_code == 200  # b keeps rules without it
            ok(a.put(path(target), json={"policy_type": "denylist"}))
            entry = ok(a.post(path(target, "policy/entries"), json={"sender_pattern": stranger}))["entry"]
            poll(lambda: send(b, target, from_agent=stranger).status_code, lambda status: status == 403, timeout=10)
            ok(a.delete(path(target, f"policy/entries/{entry['entry_id']}")))
            poll(lambda: send(b, target, from_agent=stranger).status_code, lambda status: status == 200, timeout=10)
    finally:
        second.stop()


# ---------------------------------------------------------------------------------------------
# the in-memory rules


@pytest.mark.backends("sqlite")
def test_creates_ask_nothing_until_a_policy_changes(tmp_path: Path) -> None:
    """engine/policies.py on the real store: the rules are read once for any number of creates, and again only
    after a commit that changed a policy (what Runtime._on_commit does with Notes.policies)."""
    import asyncio

    async def main() -> None:
        store = open_store(new_database("sqlite", tmp_path))
        await store.open()
        reads = 0
        s = Settings()
        admin = Principal("workspace", "k", s.admin_address)

        def created(sender: str, to: str) -> Any:
            def op(tx: Any) -> Any:
                nonlocal reads
                real = tx.sender_rules

                def counted(*args: Any) -> Any:
                    nonlocal reads
                    reads += 1
                    return real(*args)

                tx.sender_rules = counted
                req = {**new_intent(to), "from_agent": sender, "to_agent": to}
                return intents_engine.op_create(tx, s, admin, req, time.time())
            return store.write(op)

        for n in range(50):
            await created("agent://local/dev/a", f"agent://local/dev/b{n}")
        assert reads == 1
        sa = {"service_account_id": "sa1", "org_id": "local", "workspace_id": "dev", "name": "b0",
              "address": "agent://local/dev/b0", "description": None, "display_name": None, "status": "active",
              "created_by_actor_id": None, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}
        await store.write(lambda tx: tx.insert_service_account(sa))
        notes: list[Any] = []
        store.on_commit = notes.append
        await store.write(lambda tx: engine.op_set(tx, s, admin, engine.AGENT_SEND, "agent://local/dev/b0",
                                                   "allowlist", time.time()))
        assert any(n.policies for n in notes)
        with pytest.raises(Exception) as denied:
            await created("agent://local/dev/a", "agent://local/dev/b0")
        assert getattr(denied.value, "code", None) == "policy_denied"
        for n in range(20):
            await created("agent://local/dev/a", f"agent://local/dev/c{n}")
        assert reads == 2
        await store.close()

    asyncio.run(main())


"""Workspace isolation of the governance families over a real runtime, on both backends: schedules, the mesh and its
kill switch, quotas and usage, sender policies, aliases, routing endpoints and transport bindings, access requests,
principals and the audit log serve every workspace's keys in their own workspace, and one workspace sees and
changes nothing of another (404 for its ids, never 403; lists without its rows), in both directions. Three
workspaces as in test_workspace_isolation.py: ``a`` the runtime's default one, ``b`` and ``c`` of a new org. The
runtime runs on a test clock, so a schedule's occurrence fires when a test moves it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from axme_sdk import AxmeClient, AxmeClientConfig
from axme_sdk.exceptions import AxmeHttpError

from axme_cli.runtime.clock import ManualClock, iso
from axme_cli.runtime.engine import usage
from axme_cli.runtime.store import open_store
from tests.cli.helpers import env_for, run
from tests.conftest import NO_LOGIN_LIMITS, unique
from tests.receiver import poll
from tests.runtime.api.test_workspace_isolation import Space, err, make_sa, ok, spaces
from tests.runtime.store import test_store
from tests.runtime_proc import new_database
from tests.runtime_thread import RuntimeThread

__all__ = ["spaces"]  # the fixture, used by name

START = 1_800_000_000.0  # 2027-01-15T08:00Z: the test clock's start; tests move it forward only


@pytest.fixture(scope="module")
def rt(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeThread]:
    proc = RuntimeThread(tmp_path_factory.mktemp("iso-gov"), backend=backend, clock=ManualClock(START),
                         extra_args=["--redelivery-seconds", "600", *NO_LOGIN_LIMITS])
    proc.start()
    yield proc
    proc.stop()


def others(spaces: dict[str, Space], who: str) -> list[Space]:
    return [s for w, s in spaces.items() if w != who]


def intent_schedule(to: str, cron: str = "0 3 * * *") -> dict[str, Any]:
    return {"cron": cron, "timezone": "UTC",
            "intent": {"intent_type": "report.nightly.v1", "to_agent": to, "payload": {"report": "sales"},
                       "max_delivery_attempts": 1_000_000}}


# ---------------------------------------------------------------------------------------------
# schedules


def test_schedules_are_their_workspaces_own(rt: RuntimeThread, spaces: dict[str, Space]) -> None:
    made = {}
    for who, space in spaces.items():
        with rt.client(space.key) as api:
            made[who] = ok(api.post("/v1/schedules", json=intent_schedule(unique("rep"))))["schedule"]
            assert made[who]["to_agent"].startswith(space.prefix)  # a bare name is the caller's workspace's
    for who, space in spaces.items():
        with rt.client(space.key) as api:
            listed = {s["schedule_id"] for s in ok(api.get("/v1/schedules", params={"limit": 200}))["schedules"]}
            assert made[who]["schedule_id"] in listed
            for other_who in (w for w in spaces if w != who):
                theirs = made[other_who]["schedule_id"]
                assert theirs not in listed
                err(api.get(f"/v1/schedules/{theirs}"), 404, "schedule_not_found")
                for action in ("pause", "resume", "trigger"):
                    err(api.post(f"/v1/schedules/{theirs}/{action}"), 404, "schedule_not_found")
                err(api.delete(f"/v1/schedules/{theirs}"), 404, "schedule_not_found")
    for who, space in spaces.items():  # nothing above touched them
        with rt.client(space.key) as api:
            again = ok(api.get(f"/v1/schedules/{made[who]['schedule_id']}"))["schedule"]
            assert (again["status"], again["runs"]) == ("active", 0)
            ok(api.delete(f"/v1/schedules/{made[who]['schedule_id']}"))


def intents_today(rt: RuntimeThread, space: Space) -> int:
    with rt.client(space.key) as api:
        summary = ok(api.get("/v1/usage/summary"))["summary"]
    assert (summary["org_id"], summary["workspace_id"]) == (space.org_id, space.workspace_id)
    return int(summary["dimensions"]["intents_per_day"]["used"])


def test_a_schedule_made_in_b_fires_into_b(rt: RuntimeThread, spaces: dict[str, Space]) -> None:
    a, b = spaces["a"], spaces["b"]
    assert isinstance(rt.clock, ManualClock)
    clock = rt.clock
    day = (int(clock.time()) // 86400 + 1) * 86400  # the next midnight (UTC)
    clock.set(day + 1800)  # 00:30
    before = {w: intents_today(rt, s) for w, s in spaces.items()}
    with rt.client(b.key) as api:
        schedule = ok(api.post("/v1/schedules", json=intent_schedule(unique("night"), cron="0 1 * * *")))["schedule"]
        clock.set(day + 3600.5)  # 01:00: the occurrence is due
        fired = poll(lambda: ok(api.get(f"/v1/schedules/{schedule['schedule_id']}"))["schedule"],
                     lambda s: s["runs"] == 1)
    assert fired["last_outcome"] == "run" and fired["last_intent_id"]
    # the run is B's work: counted in B's usage, not in A's or C's
    assert intents_today(rt, b) == before["b"] + 1
    assert intents_today(rt, a) == before["a"] and intents_today(rt, spaces["c"]) == before["c"]
    # and audited in B (the schedule's creation), never in A
    with rt.client(b.key) as api:
        mine = ok(api.get("/v1/audit/events", params={"action_prefix": "schedule", "limit": 1000}))["events"]
    with rt.client(a.key) as api:
        theirs = ok(api.get("/v1/audit/events", params={"action_prefix": "schedule", "limit": 1000}))["events"]
    assert schedule["schedule_id"] in {e["target_id"] for e in mine}
    assert schedule["schedule_id"] not in {e["target_id"] for e in theirs}


def test_a_schedule_sent_to_an_alias_resolves_it_at_each_run(rt: RuntimeThread, spaces: dict[str, Space]) -> None:
    a, b = spaces["a"], spaces["b"]
    alias = unique("night desk")
    with rt.client(a.key) as api:
        first, _ = make_sa(api, unique("desk"))
        second, _ = make_sa(api, unique("desk"))
        bound = ok(api.post("/v1/aliases", json={"principal_id": first["name"], "alias": alias,
                                                 "alias_type": "service"}))["alias"]
        schedule = ok(api.post("/v1/schedules", json=intent_schedule(alias)))["schedule"]
        assert schedule["to_agent"] == first["agent_address"]
        run1 = ok(api.post(f"/v1/schedules/{schedule['schedule_id']}/trigger", json={"overlap_policy": "allow"}))
        assert ok(api.get(f"/v1/intents/{run1['run']['intent_id']}"))["intent"]["to_agent"] == first["agent_address"]
        # bound again to another agent: the next run follows it
        ok(api.post(f"/v1/aliases/{bound['alias_id']}/revoke"))
        ok(api.post("/v1/aliases", json={"principal_id": second["name"], "alias": alias,
                                         "alias_type": "service"}))
        run2 = ok(api.post(f"/v1/schedules/{schedule['schedule_id']}/trigger", json={"overlap_policy": "allow"}))
        assert ok(api.get(f"/v1/intents/{run2['run']['intent_id']}"))["intent"]["to_agent"] == second["agent_address"]
    # the same alias in B is B's own: a schedule of B sent to it goes to B's agent
    with rt.client(b.key) as api:
        mine, _ = make_sa(api, unique("desk"))
        ok(api.post("/v1/aliases", json={"principal_id": mine["name"], "alias": alias,
                                         "alias_type": "service"}))
        theirs = ok(api.post("/v1/schedules", json=intent_schedule(alias)))["schedule"]
        assert theirs["to_agent"] == mine["agent_address"]
        ok(api.delete(f"/v1/schedules/{theirs['schedule_id']}"))
    with rt.client(a.key) as api:
        for alias_row in ok(api.get("/v1/aliases", params={"status": "active"}))["aliases"]:
            if alias_row["alias"] == alias:
                ok(api.post(f"/v1/aliases/{alias_row['alias_id']}/revoke"))
        # revoked with none bound again: the run is refused, naming the alias
        err(api.post(f"/v1/schedules/{schedule['schedule_id']}/trigger", json={"overlap_policy": "allow"}), 409,
            "alias_changed", "to_agent")
        ok(api.delete(f"/v1/schedules/{schedule['schedule_id']}"))


# ---------------------------------------------------------------------------------------------
# the mesh and the kill switch


def test_the_mesh_and_its_kill_switch_are_per_workspace(rt: RuntimeThread, spaces: dict[str, Space]) -> None:
    name = unique("worker")
    made: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for who, space in spaces.items():  # one name in three workspaces
        with rt.client(space.key) as api:
            made[who] = make_sa(api, name)
        with rt.client(made[who][1]["token"]) as agent:
            beat = ok(agent.post("/v1/mesh/heartbeat", json={"metrics": {"cpu_pct": 10}}))
            assert beat["address"] == space.prefix + name and beat["killed"] is False
    b = spaces["b"]
    with rt.client(b.key) as api:
        killed = ok(api.post(f"/v1/mesh/agents/{name}/kill", json={"reason": "runaway"}))
        assert killed["changed"] is True and killed["agent"]["address"] == b.prefix + name
    for who, space in spaces.items():
        sa = made[who][0]
        with rt.client(space.key) as api:
            agents = ok(api.get("/v1/mesh/agents", params={"limit": 1000}))["agents"]
            assert agents and all(x["address"].startswith(space.prefix) for x in agents)
            mine = ok(api.get(f"/v1/mesh/agents/{name}"))["agent"]
            assert mine["address"] == sa["agent_address"]
            assert mine["status"] == ("killed" if who == "b" else "active")  # B's kill is B's alone
            events = ok(api.get("/v1/mesh/events", params={"limit": 500}))["events"]
            assert {e["address"] for e in events} <= {x["address"] for x in agents}
            assert any(e["event_type"] == "agent.killed" for e in events) == (who == "b")
            for other in others(spaces, who):
                other_sa = made[next(w for w, s in spaces.items() if s is other)][0]
                for raw in (other_sa["service_account_id"], quote(other.prefix + name, safe="")):
                    err(api.get(f"/v1/mesh/agents/{raw}"), 404, "agent_not_found")
                    err(api.post(f"/v1/mesh/agents/{raw}/kill"), 404, "agent_not_found")
                    err(api.post(f"/v1/mesh/agents/{raw}/resume"), 404, "agent_not_found")
                err(api.get("/v1/mesh/events", params={"address_id": other_sa["service_account_id"]}), 404,
                    "agent_not_found")
                err(api.post("/v1/mesh/heartbeat", params={"owner_agent": other.prefix + name}), 404,
                    "agent_not_found")
    with rt.client(made["a"][1]["token"]) as agent:  # A's same-named agent beats on, not killed
        assert ok(agent.post("/v1/mesh/heartbeat"))["killed"] is False
    with rt.client(made["b"][1]["token"]) as agent:
        assert ok(agent.post("/v1/mesh/heartbeat"))["killed"] is True
    with rt.client(b.key) as api:
        assert ok(api.post(f"/v1/mesh/agents/{name}/resume"))["changed"] is True


# ---------------------------------------------------------------------------------------------
# quotas and usage


def limit(rt: RuntimeThread, space: Space, **dimensions: int | None) -> dict[str, Any]:
    with rt.client(space.key) as api:
        return ok(api.patch("/v1/quotas", json={"dimensions": dimensions}))


def test_a_quota_of_b_holds_in_b_alone(rt: RuntimeThread, spaces: dict[str, Space]) -> None:
    a, b, c = spaces["a"], spaces["b"], spaces["c"]
    with rt.client(b.key) as api:
        accounts = ok(api.get("/v1/usage/summary"))["summary"]["dimensions"]["service_accounts_per_workspace"]
    try:
        changed = limit(rt, b, service_accounts_per_workspace=accounts["used"], intents_per_day=0)
        policy = changed["quota_policy"]
        assert (policy["org_id"], policy["workspace_id"]) == (b.org_id, b.workspace_id)
        with rt.client(b.key) as api:
            # a service account made in B counts against B's limit
            err(api.post("/v1/service-accounts", json={"name": unique("more")}), 409, "quota_exceeded")
            # and a run of B's schedule against B's intents_per_day
            schedule = ok(api.post("/v1/schedules", json=intent_schedule(unique("q"))))["schedule"]
            refused = api.post(f"/v1/schedules/{schedule['schedule_id']}/trigger")
            err(refused, 429, "quota_exceeded")
            assert refused.json()["error"]["details"]["dimension"] == "intents_per_day"
            assert int(refused.headers["retry-after"]) > 0
            ok(api.delete(f"/v1/schedules/{schedule['schedule_id']}"))
            dims = ok(api.get("/v1/usage/summary"))["summary"]["dimensions"]
            assert dims["service_accounts_per_workspace"]["refused"] >= 1 and dims["intents_per_day"]["refused"] >= 1
            assert ok(api.get("/v1/quotas"))["quota_policy"]["dimensions"]["intents_per_day"] == 0
        for space in (a, c):  # A and C have no limit: the same calls go through, nothing refused there
            with rt.client(space.key) as api:
                assert ok(api.get("/v1/quotas"))["quota_policy"]["dimensions"]["intents_per_day"] is None
                make_sa(api, unique("more"))
                schedule = ok(api.post("/v1/schedules", json=intent_schedule(unique("q"))))["schedule"]
                assert ok(api.post(f"/v1/schedules/{schedule['schedule_id']}/trigger"))["run"]["started"] is True
                ok(api.delete(f"/v1/schedules/{schedule['schedule_id']}"))
                dims = ok(api.get("/v1/usage/summary"))["summary"]["dimensions"]
                assert dims["service_accounts_per_workspace"]["refused"] == 0
                assert dims["intents_per_day"]["refused"] == 0
                # another workspace's policy or usage is not reachable by naming it
                for path in ("/v1/quotas", "/v1/usage/summary", "/v1/usage/timeseries"):
                    err(api.get(path, params={"org_id": b.org_id, "workspace_id": b.workspace_id}), 404,
                        "org_not_found" if space.org_id != b.org_id else "workspace_not_found")
                err(api.patch("/v1/quotas", json={"workspace_id": b.workspace_id, "dimensions": {
                    "intents_per_day": 5}}), 404, "workspace_not_found")
    finally:
        limit(rt, b, service_accounts_per_workspace=None, intents_per_day=None)


def test_usage_counts_per_workspace(rt: RuntimeThread, spaces: dict[str, Space]) -> None:
    counts = {}
    for who, space in spaces.items():
        with rt.client(space.key) as api:
            dims = ok(api.get("/v1/usage/summary"))["summary"]["dimensions"]
            listed = ok(api.get("/v1/service-accounts"))["service_accounts"]
            assert dims["service_accounts_per_workspace"]["used"] == sum(s["status"] == "active" for s in listed)
            counts[who] = ok(api.get("/v1/usage/summary"))["summary"]["counters"]["requests"]
    with rt.client(spaces["c"].key) as api:
        for _ in range(5):
            ok(api.get("/v1/schedules"))
        after = ok(api.get("/v1/usage/summary"))["summary"]["counters"]["requests"]
        assert after >= counts["c"] + 6  # its own requests
        series = ok(api.get("/v1/usage/timeseries", params={"window_days": 2}))["series"]
        assert (series["org_id"], series["workspace_id"]) == (spaces["c"].org_id, spaces["c"].workspace_id)
        rollup = ok(api.post("/v1/usage/rollups/daily", params={"window_days": 3}))["rollup"]
        assert (rollup["org_id"], rollup["workspace_id"]) == (spaces["c"].org_id, spaces["c"].workspace_id)
    for who in ("a", "b"):  # C's requests are not theirs (each read adds its own request, counted later)
        with rt.client(spaces[who].key) as api:
            assert ok(api.get("/v1/usage/summary"))["summary"]["counters"]["requests"] <= counts[who] + 2


def test_axme_quota_show_and_usage_show_the_callers_workspace(rt: RuntimeThread, spaces: dict[str, Space],
                                                              tmp_path: Path) -> None:
    b = spaces["b"]
    limit(rt, b, intents_per_day=7)
    try:
        target = ["--base-url", rt.url, "--api-key", b.key]
        shown = run(env_for(tmp_path), "quota", "show", "--json", *target)
        assert shown.returncode == 0, shown.stderr
        overview = json.loads(shown.stdout)["overview"]
        assert (overview["org_id"], overview["workspace_id"]) == (b.org_id, b.workspace_id)
        assert overview["quota_policy"]["dimensions"]["intents_per_day"] == 7
        summary = run(env_for(tmp_path), "usage", "summary", "--json", *target)
        assert summary.returncode == 0, summary.stderr
        assert json.loads(summary.stdout)["summary"]["workspace_id"] == b.workspace_id
        theirs = run(env_for(tmp_path), "quota", "show", "--json", "--base-url", rt.url, "--api-key",
                     spaces["a"].key)
        assert json.loads(theirs.stdout)["overview"]["quota_policy"]["dimensions"]["intents_per_day"] is None
    finally:
        limit(rt, b, intents_per_day=None)


# ---------------------------------------------------------------------------------------------
# sender policies, aliases, routing, access requests, principals


def test_sender_policies_are_per_workspace(rt: RuntimeThread, spaces: dict[str, Space]) -> None:
    name = unique("guarded")
    for space in spaces.values():
        with rt.client(space.key) as api:
            make_sa(api, name)
    b = spaces["b"]
    with rt.client(b.key) as api:
        ok(api.put(f"/v1/agents/{name}/policy", json={"policy_type": "allowlist"}))
        entry = ok(api.post(f"/v1/agents/{name}/policy/entries",
                            json={"sender_pattern": f"agent://{b.org_id}/{b.workspace_id}/*"}))["entry"]
        assert ok(api.get(f"/v1/agents/{name}/policy"))["policy"]["policy_type"] == "allowlist"
        ok(api.put(f"/v1/agents/{name}/receive-override", json={"override_type": "closed"}))
        ok(api.put(f"/v1/organizations/{b.org_id}/receive-policy", json={"policy_type": "closed"}))
    for who, space in spaces.items():
        with rt.client(space.key) as api:
            own = ok(api.get(f"/v1/agents/{name}/policy"))["policy"]
            assert own["policy_type"] == ("allowlist" if who == "b" else "open")
            assert own["agent_address"] == space.prefix + name
            for other in others(spaces, who):
                address = quote(other.prefix + name, safe="")
                err(api.get(f"/v1/agents/{address}/policy"), 404, "agent_not_found")
                err(api.put(f"/v1/agents/{address}/policy", json={"policy_type": "open"}), 404, "agent_not_found")
                err(api.delete(f"/v1/agents/{address}/policy/entries/{entry['entry_id']}"), 404, "agent_not_found")
                err(api.get(f"/v1/agents/{address}/receive-override"), 404, "agent_not_found")
                if other.org_id != space.org_id:
                    err(api.get(f"/v1/organizations/{other.org_id}/receive-policy"), 404, "organization_not_found")
            # the org receive policy is the org's: B's org (B and C) has it closed, A's org not
            org = ok(api.get(f"/v1/organizations/{space.org_id}/receive-policy"))["policy"]
            assert org["policy_type"] == ("open" if who == "a" else "closed")
    with rt.client(b.key) as api:
        ok(api.put(f"/v1/organizations/{b.org_id}/receive-policy", json={"policy_type": "open"}))


def test_aliases_routes_bindings_access_requests_and_principals_are_per_workspace(
        rt: RuntimeThread, spaces: dict[str, Space]) -> None:
    made: dict[str, dict[str, Any]] = {}
    alias = unique("front desk")
    for who, space in spaces.items():
        with rt.client(space.key) as api:
            sa, _ = make_sa(api, unique("desk"))
            got: dict[str, Any] = {"sa": sa}
            got["alias"] = ok(api.post("/v1/aliases", json={"principal_id": sa["name"], "alias": alias,
                                                           "alias_type": "service"}))["alias"]
            got["route"] = ok(api.post("/v1/routing/endpoints", json={
                "principal_id": sa["name"], "transport_type": "http", "auth_mode": "none",
                "endpoint_url": "https://example.com/hook"}))["route"]
            got["binding"] = ok(api.post("/v1/transports/bindings", json={
                "principal_id": sa["name"], "transport_type": "http",
                "transport_handle": "https://example.com/bound"}))["binding"]
            got["request"] = ok(api.post("/v1/access-requests", json={
                "request_type": "send_permission", "requester_actor_id": sa["name"],
                "recipient": sa["name"], "justification": "the desk sends reports"}))["access_request"]
            got["principal"] = ok(api.post("/v1/principals", json={"display_name": "Front desk",
                                                                   "principal_type": "service_agent"}))["principal"]
            assert got["principal"]["address"].startswith(space.prefix)
            resolved = ok(api.get("/v1/aliases/resolve", params={"alias": alias}))["resolution"]
            assert resolved["alias"]["alias_id"] == got["alias"]["alias_id"]  # the same alias: its own in each
            made[who] = got
    for who, space in spaces.items():
        mine = made[who]
        with rt.client(space.key) as api:
            aliases = {x["alias_id"] for x in ok(api.get("/v1/aliases"))["aliases"]}
            routes = {x["route_id"] for x in ok(api.get("/v1/routing/endpoints"))["routes"]}
            bindings = {x["binding_id"] for x in ok(api.get("/v1/transports/bindings"))["bindings"]}
            requests = {x["access_request_id"] for x in ok(api.get("/v1/access-requests"))["access_requests"]}
            assert mine["alias"]["alias_id"] in aliases and mine["route"]["route_id"] in routes
            assert mine["binding"]["binding_id"] in bindings
            assert mine["request"]["access_request_id"] in requests
            via = ok(api.post("/v1/routing/resolve", json={"alias": alias}))
            assert via["resolution"]["principal"]["address"] == mine["sa"]["agent_address"]
            for other_who in (w for w in spaces if w != who):
                theirs = made[other_who]
                assert theirs["alias"]["alias_id"] not in aliases and theirs["route"]["route_id"] not in routes
                assert theirs["binding"]["binding_id"] not in bindings
                assert theirs["request"]["access_request_id"] not in requests
                err(api.post(f"/v1/aliases/{theirs['alias']['alias_id']}/revoke"), 404, "alias_not_found")
                err(api.patch(f"/v1/routing/endpoints/{theirs['route']['route_id']}", json={"priority": 1}), 404,
                    "route_not_found")
                err(api.delete(f"/v1/routing/endpoints/{theirs['route']['route_id']}"), 404, "route_not_found")
                err(api.delete(f"/v1/transports/bindings/{theirs['binding']['binding_id']}"), 404,
                    "binding_not_found")
                err(api.get(f"/v1/access-requests/{theirs['request']['access_request_id']}"), 404,
                    "access_request_not_found")
                err(api.post(f"/v1/access-requests/{theirs['request']['access_request_id']}/review",
                             json={"decision": "approve", "reviewer_actor_id": "ops"}), 404,
                    "access_request_not_found")
                for raw in (theirs["principal"]["principal_id"], theirs["sa"]["agent_address"]):
                    err(api.get(f"/v1/principals/{quote(raw, safe='')}"), 404, "principal_not_found")
                if len(theirs["sa"]["agent_address"]) <= 64:  # (the longest principal_id a body takes)
                    err(api.post("/v1/routing/resolve", json={"principal_id": theirs["sa"]["agent_address"]}), 404,
                        "principal_not_found")
                    # an alias bound in this workspace to another's agent: no such principal here
                    err(api.post("/v1/aliases", json={"principal_id": theirs["sa"]["agent_address"],
                                                      "alias": unique("x"), "alias_type": "service"}), 404,
                        "principal_not_found")


# ---------------------------------------------------------------------------------------------
# audit


def test_the_audit_log_is_per_workspace(rt: RuntimeThread, spaces: dict[str, Space]) -> None:
    keys = {}
    for who, space in spaces.items():  # a key made is audited (service_account.key.created)
        with rt.client(space.key) as api:
            _, keys[who] = make_sa(api, unique("audited"))
    for who, space in spaces.items():
        with rt.client(space.key) as api:
            events = ok(api.get("/v1/audit/events", params={"limit": 1000}))["events"]
            targets = {e["target_id"] for e in events}
            assert keys[who]["key_id"] in targets
            assert not {keys[w]["key_id"] for w in spaces if w != who} & targets
            assert all(e["actor"].startswith(("initiator://" + space.org_id + "/" + space.workspace_id + "/",
                                              space.prefix)) or who == "a" for e in events)
            for other in others(spaces, who):
                assert f"/{other.workspace_id}/" not in json.dumps(events)
    # an agent key of B sees its own events only, in B
    with rt.client(spaces["b"].key) as api:
        sa, key = make_sa(api, unique("self"))
    with rt.client(key["token"]) as agent:
        ok(agent.post("/v1/mesh/heartbeat"))
        mine = ok(agent.get("/v1/audit/events"))["events"]
        assert all(sa["agent_address"] in (e["actor"], e["owner_agent"]) for e in mine)
        err(agent.get("/v1/audit/events", params={"owner_agent": spaces["a"].prefix + "someone"}), 403,
            "policy_denied", "owner_agent")


# ---------------------------------------------------------------------------------------------
# the official SDK


def test_the_sdk_in_another_workspace(rt: RuntimeThread, spaces: dict[str, Space]) -> None:
    b, a = spaces["b"], spaces["a"]
    sdk = AxmeClient(AxmeClientConfig(base_url=rt.url, api_key=b.key, max_retries=0))
    with rt.client(b.key) as api:
        sa, _ = make_sa(api, unique("sdk"))
    quota = sdk.get_quota(org_id=b.org_id, workspace_id=b.workspace_id)["quota_policy"]
    assert (quota["org_id"], quota["workspace_id"]) == (b.org_id, b.workspace_id)
    assert sdk.get_usage_summary(org_id=b.org_id, workspace_id=b.workspace_id)["summary"]["workspace_id"] == \
        b.workspace_id
    bound = sdk.bind_alias({"principal_id": sa["name"], "alias": unique("sdk desk"),
                            "alias_type": "service"})["alias"]
    assert bound["alias_id"] in {x["alias_id"] for x in sdk.list_aliases(org_id=b.org_id,
                                                                         workspace_id=b.workspace_id)["aliases"]}
    agents = sdk.mesh.list_agents()["agents"]
    assert sa["agent_address"] in {x["address"] for x in agents}
    assert all(x["address"].startswith(b.prefix) for x in agents)
    assert sdk.mesh.kill(sa["service_account_id"])["agent"]["status"] == "killed"
    assert sdk.mesh.resume(sa["service_account_id"])["agent"]["status"] == "active"
    theirs = AxmeClient(AxmeClientConfig(base_url=rt.url, api_key=a.key, max_retries=0))
    with pytest.raises(AxmeHttpError) as hidden:
        theirs.mesh.kill(sa["service_account_id"])
    assert hidden.value.status_code == 404
    with pytest.raises(AxmeHttpError) as other:
        sdk.get_quota(org_id=a.org_id, workspace_id=a.workspace_id)
    assert other.value.status_code == 404
    assert bound["alias_id"] not in {x["alias_id"] for x in theirs.list_aliases(org_id=a.org_id,
                                                                                workspace_id=a.workspace_id)["aliases"]}


# ---------------------------------------------------------------------------------------------
# the daily retention pass, for every workspace


def test_the_daily_pass_folds_every_workspaces_minutes_and_drops_old_mesh_events(backend: str,
                                                                                 tmp_path: Path) -> None:
    now = START + 40 * 86400.0
    today = usage.day_of(now)
    old_day = usage.day_of(START)

    location = new_database(backend, tmp_path, migrated=True)

    async def main() -> None:
        store = open_store(location)
        await store.open()
        try:
            def seed(tx: Any) -> None:
                for pair, n in ((("local", "dev"), 3), (("org-b", "ws-b"), 7)):
                    tx.add_usage(*pair, usage.REQUESTS, f"{old_day}T08:00", n)
                for event_id, at in ((usage.uuid7_floor(START)[:-1] + "1", START),
                                     (usage.uuid7_floor(now - 3600)[:-1] + "1", now - 3600)):
                    tx.insert_mesh_event({"event_id": event_id, "org_id": "org-b", "workspace_id": "ws-b",
                                          "address": "agent://org-b/ws-b/w", "event_type": "agent.killed",
                                          "actor": "test", "details": "{}", "created_at": iso(at)})

            await store.write(seed)
            await store.write(lambda tx: usage.op_flush_all(tx, {}, today, now))
            for pair, n in ((("local", "dev"), 3), (("org-b", "ws-b"), 7)):
                rows = await store.usage_rows(*pair, [usage.REQUESTS, usage.REQUESTS_PEAK], old_day, today)
                assert {(r["counter"], r["period"]): r["value"] for r in rows} == {
                    (usage.REQUESTS_PEAK, old_day): n}  # the minute folded into its day, in its workspace
            kept = await store.mesh_events(("org-b", "ws-b"), address=None, event_type=None, before=None, limit=10)
            assert [e["created_at"] for e in kept] == [iso(now - 3600)]  # older than 30 days: dropped
        finally:
            await store.close()

    test_store.run(main())


def test_counters_keep_each_workspace_apart() -> None:
    """usage.Counters: what a committed transaction noted counts in the workspace it names, else the default one."""
    counters = usage.Counters(ManualClock(START), home=("local", "dev"))
    b = ("org-b", "ws-b")
    day = usage.day_of(START)
    in_c = {"org_id": "org-c", "workspace_id": "c"}
    counters.observe([("created", {}, 10), ("created", {}, 5, b), ("created", in_c, 7),
                      ("usage", usage.INTENTS, 1, b), ("usage", usage.INTENTS, 1), ("delivered", {})])
    counters.refused("intents_per_day", b)
    home, theirs = counters.snapshot()[0], counters.snapshot(b)[0]
    assert home == {(usage.INTENTS_CREATED, day): 1, (usage.STORED, usage.EVER): 10, (usage.STORED_ADDED, day): 10,
                    (usage.PAYLOAD_BYTES, day): 10, (usage.INTENTS, day): 1, (usage.DELIVERIES, day): 1}
    assert theirs == {(usage.INTENTS_CREATED, day): 1, (usage.STORED, usage.EVER): 5, (usage.STORED_ADDED, day): 5,
                      (usage.PAYLOAD_BYTES, day): 5, (usage.INTENTS, day): 1, ("refused.intents_per_day", day): 1}
    assert counters.snapshot(("org-c", "c"))[0][(usage.STORED, usage.EVER)] == 7
    taken = counters.take()
    assert set(taken) == {("local", "dev"), b, ("org-c", "c")} and counters.take() == {}
    counters.put_back(taken)  # a flush that failed: all of it held again, per workspace
    assert counters.snapshot(b)[0] == theirs

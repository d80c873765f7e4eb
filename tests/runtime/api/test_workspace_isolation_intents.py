"""Workspace isolation of intents and what hangs off them, over a real runtime on both backends: the runtime's
default workspace ``a`` and two workspaces ``b`` and ``c`` of a new organization (test_workspace_isolation.py's
fixtures). Each workspace's keys create, read, list, stream, resume and cancel intents in their own workspace only;
another workspace's intent is 404 as a missing one, lists and feeds carry none of its rows, a recipient in another
workspace is 404, a saga applied in one runs wholly there, and inbox, approvals, tasks, webhooks, deliveries and
MCP follow; through the official SDK too."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from axme_sdk import AxmeClient, AxmeClientConfig
from axme_sdk.exceptions import AxmeHttpError

from tests.agents_helper import FeedAgent, sse_frames
from tests.conftest import unique
from tests.receiver import Receiver, poll
from tests.runtime.api.test_workspace_isolation import Space, err, make_sa, rt, spaces
from tests.runtime_proc import RuntimeProcess

__all__ = ["rt", "spaces"]  # the fixtures, shared with test_workspace_isolation.py


PING = "inbox.thread_updated"  # an event type the webhooks take


@dataclass
class Worker:
    """A service account named alike in every workspace, with a key."""

    address: str
    sa_id: str
    token: str


def new_intent(to: str, **extra: Any) -> dict[str, Any]:
    return {"intent_type": "iso.check.v1", "correlation_id": str(uuid.uuid4()), "to_agent": to,
            "payload": {"n": 1}, **extra}


def task_intent(**extra: Any) -> dict[str, Any]:
    return new_intent("agent://agent_core", human_task={"title": "Approve it"}, **extra)


def created(api: httpx.Client, body: dict[str, Any]) -> str:
    r = api.post("/v1/intents", json=body)
    assert r.status_code == 200, r.text
    return str(r.json()["intent_id"])


def feed(rt: RuntimeProcess, token: str, address: str) -> list[dict[str, Any]]:
    """The intents an agent's feed holds now (one short read of its stream)."""
    with rt.client(token) as api, api.stream("GET", f"/v1/agents/{quote(address, safe='')}/intents/stream",
                                             params={"since": 0, "wait_seconds": 1}) as r:
        assert r.status_code == 200, r.read()
        return [data for event, data in sse_frames(r.iter_lines()) if event.startswith("intent.")]


@pytest.fixture(scope="module")
def workers(rt: RuntimeProcess, spaces: dict[str, Space]) -> dict[str, Worker]:
    name = unique("worker")
    made = {}
    for who, space in spaces.items():
        with rt.client(space.key) as api:
            sa, key = make_sa(api, name)
            made[who] = Worker(sa["agent_address"], sa["service_account_id"], key["token"])
    return made


def test_intents_are_their_workspaces_own(rt: RuntimeProcess, spaces: dict[str, Space],
                                          workers: dict[str, Worker]) -> None:
    name = workers["a"].address.rsplit("/", 1)[1]
    ids: dict[str, str] = {}
    for who, space in spaces.items():  # one bare name, three workspaces: each intent goes to its own worker
        with rt.client(space.key) as api:
            ids[who] = created(api, new_intent(name, reply_to="requester"))
            intent = api.get(f"/v1/intents/{ids[who]}").json()["intent"]
            assert intent["to_agent"] == workers[who].address
            assert intent["reply_to"] == space.prefix + "requester"
    for who, space in spaces.items():
        mine = ids[who]
        with rt.client(space.key) as api, rt.client(workers[who].token) as agent:
            listed = {i["intent_id"] for i in api.get("/v1/intents", params={"limit": 500}).json()["intents"]}
            assert mine in listed
            assert listed.isdisjoint(i for w, i in ids.items() if w != who)
            by_agent = api.get("/v1/intents", params={"agent": name}).json()["intents"]
            assert [i["intent_id"] for i in by_agent] == [mine]
            assert [i["intent_id"] for i in agent.get("/v1/intents").json()["intents"]] == [mine]
            assert [d["intent_id"] for d in feed(rt, workers[who].token, workers[who].address)] == [mine]
            dry = api.post("/v1/intents/bulk-cancel", json={"older_than_hours": 0, "reason": "x", "limit": 500})
            assert mine in dry.json()["intent_ids"] and not set(dry.json()["intent_ids"]) & (set(ids.values()) - {mine})
            for other_who, other in ((w, s) for w, s in spaces.items() if w != who):
                theirs = ids[other_who]
                for client in (api, agent):  # another workspace's intent: as unknown as a missing one
                    for method, path, body in (
                            ("GET", f"/v1/intents/{theirs}", None),
                            ("GET", f"/v1/intents/{theirs}/events", None),
                            ("GET", f"/v1/intents/{theirs}/events/stream", None),
                            ("POST", f"/v1/intents/{theirs}/resume", {"action": "complete"}),
                            ("POST", f"/v1/intents/{theirs}/resolve", {"status": "CANCELED", "reason": "x"}),
                            ("POST", f"/v1/intents/{theirs}/controls", {"controls_patch": {"max_retries": 1}}),
                            ("POST", f"/v1/intents/{theirs}/policy",
                             {"grants_patch": {"delegate:x@y.example": {"allow": ["resume"]}}})):
                        err(client.request(method, path, json=body), 404, "intent_not_found")
                # nor can it send to, or name as reply_to or sender, an agent of the other workspace
                for field, body in (("to_agent", new_intent(workers[other_who].address)),
                                    ("reply_to", new_intent(name, reply_to=other.prefix + "requester")),
                                    ("from_agent", new_intent(name, from_agent=workers[other_who].address))):
                    err(api.post("/v1/intents", json=body), 404, "agent_not_found", field)
                err(api.get(f"/v1/agents/{quote(workers[other_who].address, safe='')}/intents/stream"), 404,
                    "agent_not_found")
            # its own agent finishes its own intent
            r = agent.post(f"/v1/intents/{mine}/resume", json={"action": "complete", "done": True})
            assert r.status_code == 200 and r.json()["intent"]["status"] == "COMPLETED", r.text
    for who, space in spaces.items():  # nothing above touched another workspace's intent but its own agent
        with rt.client(space.key) as api:
            events = api.get(f"/v1/intents/{ids[who]}/events").json()["events"]
            assert [e["event_type"] for e in events][-1] == "intent.completed"
            assert {e["actor"] for e in events if e["event_type"] == "intent.completed"} == {workers[who].address}
    # an address naming no workspace of this runtime is another deployment's, as before
    with rt.client(spaces["b"].key) as api:
        created(api, new_intent("agent://elsewhere-org/elsewhere-ws/someone"))


def test_an_agent_key_of_b_sees_only_b(rt: RuntimeProcess, spaces: dict[str, Space],
                                       workers: dict[str, Worker]) -> None:
    a, b = spaces["a"], spaces["b"]
    with rt.client(a.key) as api_a, rt.client(b.key) as api_b, rt.client(workers["b"].token) as agent:
        in_a = created(api_a, new_intent(workers["a"].address))
        in_b = created(api_b, new_intent("worker-nobody"))
        sent = created(agent, new_intent(workers["b"].address.rsplit("/", 1)[1] + "-peer"))
        # the agent's own send is B's: from its address, in B's lists, not in A's
        assert api_b.get(f"/v1/intents/{sent}").json()["intent"]["from_agent"] == workers["b"].address
        assert sent not in {i["intent_id"] for i in api_a.get("/v1/intents", params={"limit": 500}).json()["intents"]}
        err(api_a.get(f"/v1/intents/{sent}"), 404, "intent_not_found")
        listed = [i["intent_id"] for i in agent.get("/v1/intents", params={"limit": 500}).json()["intents"]]
        assert sent in listed and in_a not in listed and in_b not in listed  # in_b: not its own
        err(agent.get(f"/v1/intents/{in_a}"), 404, "intent_not_found")
        # an agent key streams only itself; a name elsewhere is refused as before
        err(agent.get(f"/v1/agents/{quote(workers['a'].address, safe='')}/intents/stream"), 403, "policy_denied")


def test_a_saga_applied_in_b_runs_wholly_in_b(rt: RuntimeProcess, spaces: dict[str, Space]) -> None:
    a, b = spaces["a"], spaces["b"]
    tag = unique("s")
    bundle = {
        "scenario_id": f"iso.saga.{tag}", "title": "two steps, the second fails, the first is undone",
        "agents": [{"role": "first", "address": f"first-{tag}", "create_if_missing": True},
                   {"role": "second", "address": f"second-{tag}", "create_if_missing": True}],
        "workflow": {"steps": [
            {"step_id": "one", "assigned_to": "first", "intent_type": "iso.one.v1", "retry": {"max_retries": 0},
             "compensate": {"assigned_to": "first", "intent_type": "iso.undo.v1", "retry": {"max_retries": 0}}},
            {"step_id": "two", "assigned_to": "second", "intent_type": "iso.two.v1", "retry": {"max_retries": 0}}]},
        "intent": {"type": "iso.saga.v1", "payload": {"order": 1}},
    }
    with rt.client(b.key) as api_b, rt.client(a.key) as api_a:
        applied = api_b.post("/v1/scenarios/apply", json=bundle)
        assert applied.status_code == 200, applied.text
        parent = applied.json()["intent_id"]
        assert {x["address"] for x in applied.json()["agents"]} == {b.prefix + f"first-{tag}",
                                                                    b.prefix + f"second-{tag}"}
        tokens = {}
        for role in ("first", "second"):
            agent = api_b.get(f"/v1/agents/{role}-{tag}").json()["agent"]
            tokens[role] = api_b.post(f"/v1/service-accounts/{agent['service_account_id']}/keys",
                                      json={}).json()["key"]["token"]
        answers = {"first": {"action": "complete", "ok": True}, "second": {"action": "fail", "reason": "no stock"}}
        agents = [FeedAgent(rt.url, tokens[role], f"{role}-{tag}", lambda _f, role=role: answers[role])
                  for role in ("first", "second")]
        for agent in agents:
            agent.start()
        try:
            deadline = time.monotonic() + 30
            while (intent := api_b.get(f"/v1/intents/{parent}").json()["intent"])["status"] != "FAILED":
                assert time.monotonic() < deadline, intent
                time.sleep(0.05)
        finally:
            for agent in agents:  # both told first: each ends within its feed's 1 s wait, together
                agent.stop_event.set()
            for agent in agents:
                agent.stop()
        assert not [e for agent in agents for e in agent.errors if not isinstance(e, httpx.HTTPError)]
        assert intent["workflow"]["compensated"] == ["one"]
        # every step and the compensation went to B's agents, and each is B's intent
        children = [i for i in api_b.get("/v1/intents", params={"limit": 500}).json()["intents"]
                    if i["correlation_id"] == intent["correlation_id"] and i["intent_id"] != parent]
        assert sorted(i["intent_type"] for i in children) == ["iso.one.v1", "iso.two.v1", "iso.undo.v1"]
        assert {i["to_agent"] for i in children} <= {b.prefix + f"first-{tag}", b.prefix + f"second-{tag}"}
        # the default workspace sees none of it
        mine = api_a.get("/v1/intents", params={"limit": 500}).json()["intents"]
        assert not {i["intent_id"] for i in mine} & ({parent} | {i["intent_id"] for i in children})
        for intent_id in [parent, *(i["intent_id"] for i in children)]:
            err(api_a.get(f"/v1/intents/{intent_id}"), 404, "intent_not_found")
        # a scenario of B naming A's agents is refused before anything is made
        elsewhere = {**bundle, "scenario_id": f"iso.elsewhere.{tag}",
                     "agents": [{"role": "first", "address": a.prefix + f"first-{tag}"},
                                {"role": "second", "address": f"second-{tag}"}]}
        err(api_b.post("/v1/scenarios/apply", json=elsewhere), 404, "agent_not_found")


def test_inbox_approvals_and_tasks(rt: RuntimeProcess, spaces: dict[str, Space], workers: dict[str, Worker]) -> None:
    a, b = spaces["a"], spaces["b"]
    with rt.client(a.key) as api_a, rt.client(b.key) as api_b, rt.client(workers["b"].token) as agent:
        # a completion delivered to B's admin inbox (reply_to: its own address)
        me_b = b.prefix.replace("agent://", "initiator://") + "admin"
        done = created(api_b, new_intent(workers["b"].address, reply_to=me_b))
        assert agent.post(f"/v1/intents/{done}/resume", json={"action": "complete"}).status_code == 200
        threads = api_b.get("/v1/inbox").json()["threads"]
        thread_id = next(t["thread_id"] for t in threads if t.get("intent_id") == done)
        assert api_b.get(f"/v1/inbox/{thread_id}").status_code == 200
        # A's admin: not in its inbox, and acting for B's owner is as for an agent that does not exist
        assert thread_id not in {t["thread_id"] for t in api_a.get("/v1/inbox").json()["threads"]}
        err(api_a.get(f"/v1/inbox/{thread_id}"), 404, "thread_not_found")
        for method, path in (("GET", "/v1/inbox"), ("GET", f"/v1/inbox/{thread_id}"),
                             ("POST", f"/v1/inbox/{thread_id}/read")):
            err(api_a.request(method, path, params={"owner_agent": me_b}), 404, "agent_not_found", "owner_agent")
        # nor may B hand a thread to A's agent
        err(api_b.post(f"/v1/inbox/{thread_id}/delegate", json={"delegate_to": workers["a"].address}), 404,
            "agent_not_found", "delegate_to")

        # human tasks: each workspace's own, listed and decided there only
        task_b, task_a = created(api_b, task_intent()), created(api_a, task_intent())
        listed_b = {t["intent_id"] for t in api_b.get("/v1/me/tasks").json()["tasks"]}
        listed_a = {t["intent_id"] for t in api_a.get("/v1/me/tasks").json()["tasks"]}
        assert task_b in listed_b and task_a not in listed_b
        assert task_a in listed_a and task_b not in listed_a
        err(api_a.post(f"/v1/approvals/{task_b}/decision", json={"decision": "approve"}), 404, "intent_not_found")
        err(api_b.post(f"/v1/approvals/{task_a}/decision", json={"decision": "approve"}), 404, "intent_not_found")
        r = api_b.post(f"/v1/approvals/{task_b}/decision", json={"decision": "approve"})
        assert r.status_code == 200, r.text
        assert api_b.get(f"/v1/intents/{task_b}").json()["intent"]["status"] == "COMPLETED"
        assert api_a.get(f"/v1/intents/{task_a}").json()["intent"]["status"] == "WAITING"


def event(payload: dict[str, Any]) -> dict[str, Any]:
    return {"event_type": PING, "source": "iso", "payload": payload}


def test_webhooks_and_deliveries(rt: RuntimeProcess, spaces: dict[str, Space], workers: dict[str, Worker]) -> None:
    a, b = spaces["a"], spaces["b"]
    with Receiver() as hook_a, Receiver() as hook_b, rt.client(a.key) as api_a, rt.client(b.key) as api_b:
        subs = {}
        for who, api, hook in (("a", api_a, hook_a), ("b", api_b, hook_b)):
            r = api.post("/v1/webhooks/subscriptions", json={"callback_url": hook.url, "event_types": [PING]})
            assert r.status_code == 200, r.text
            subs[who] = r.json()["subscription"]["subscription_id"]
        # B cannot subscribe for, publish as, or list A's agent
        for method, path, body in (("POST", "/v1/webhooks/subscriptions",
                                    {"callback_url": hook_b.url, "event_types": [PING]}),
                                   ("POST", "/v1/webhooks/events", event({})),
                                   ("GET", "/v1/webhooks/subscriptions", None)):
            err(api_b.request(method, path, params={"owner_agent": workers["a"].address}, json=body), 404,
                "agent_not_found", "owner_agent")
        published = api_b.post("/v1/webhooks/events", json=event({"from": "b"}))
        assert published.status_code == 200 and published.json()["queued_deliveries"] == 1, published.text
        event_b = published.json()["event_id"]
        assert hook_b.wait_posts(1)[0]["json"]["payload"] == {"from": "b"}
        event_a = api_a.post("/v1/webhooks/events", json=event({"from": "a"}))
        assert hook_a.wait_posts(1)[0]["json"]["payload"] == {"from": "a"}
        assert [p["json"]["payload"] for p in hook_a.posts] == [{"from": "a"}]  # nothing of B's ever came
        assert [p["json"]["payload"] for p in hook_b.posts] == [{"from": "b"}]
        # lists and ids: each its own
        for api, mine, theirs, their_event in ((api_a, subs["a"], subs["b"], event_b),
                                               (api_b, subs["b"], subs["a"], event_a.json()["event_id"])):
            listed = {s["subscription_id"] for s in api.get("/v1/webhooks/subscriptions").json()["subscriptions"]}
            assert mine in listed and theirs not in listed
            deliveries = api.get("/v1/webhooks/deliveries").json()["deliveries"]
            assert deliveries and theirs not in {d["subscription_id"] for d in deliveries}
            spec = api.get("/v1/deliveries").json()["deliveries"]
            assert {d["delivery_id"] for d in spec} == {d["delivery_id"] for d in deliveries}
            other = next(d for d in (api_b if api is api_a else api_a).get("/v1/deliveries").json()["deliveries"])
            err(api.get(f"/v1/deliveries/{other['delivery_id']}"), 404, "delivery_not_found")
            err(api.post(f"/v1/deliveries/{other['delivery_id']}/replay"), 404, "delivery_not_found")
            err(api.get(f"/v1/webhooks/events/{their_event}"), 404, "event_not_found")
            err(api.post(f"/v1/webhooks/events/{their_event}/replay"), 404, "event_not_found")
            err(api.delete(f"/v1/webhooks/subscriptions/{theirs}"), 404, "subscription_not_found")
        assert spec[0]["workspace_id"] == b.workspace_id  # the last: B's view

        # an http agent of B gets B's intents; its delivery configuration is B's alone
        with Receiver() as agent_hook:
            r = api_b.put(f"/v1/service-accounts/{workers['b'].sa_id}/delivery",
                          json={"delivery_mode": "http", "callback_url": agent_hook.url})
            assert r.status_code == 200, r.text
            err(api_a.get(f"/v1/service-accounts/{workers['b'].sa_id}/delivery"), 404, "service_account_not_found")
            sent = created(api_b, new_intent(workers["b"].address))
            assert agent_hook.wait_posts(1)[0]["json"]["intent_id"] == sent
            queued = api_b.get("/v1/webhooks/deliveries", params={"intent_id": sent}).json()["deliveries"]
            assert len(queued) == 1
            assert api_a.get("/v1/webhooks/deliveries", params={"intent_id": sent}).json()["deliveries"] == []
            api_b.put(f"/v1/service-accounts/{workers['b'].sa_id}/delivery", json={"delivery_mode": "stream"})


def test_timers_act_in_the_intents_workspace(rt: RuntimeProcess, spaces: dict[str, Space],
                                             workers: dict[str, Worker]) -> None:
    """A deadline the scheduler fires ends B's intent in B: its outcome reaches B's inbox, A sees none of it."""
    a, b = spaces["a"], spaces["b"]
    me_b = b.prefix.replace("agent://", "initiator://") + "admin"
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    with rt.client(b.key) as api_b, rt.client(a.key) as api_a:
        intent_id = created(api_b, new_intent(workers["b"].address, deadline_at=soon, reply_to=me_b))
        ended = poll(lambda: api_b.get(f"/v1/intents/{intent_id}").json()["intent"],
                     lambda i: i["status"] == "TIMED_OUT")
        assert ended["error"]["code"] == "intent_timeout"
        assert intent_id in {t.get("intent_id") for t in api_b.get("/v1/inbox").json()["threads"]}
        assert intent_id not in {t.get("intent_id") for t in api_a.get("/v1/inbox").json()["threads"]}
        err(api_a.get(f"/v1/intents/{intent_id}"), 404, "intent_not_found")


def _mcp(api: httpx.Client, tool: str, **args: Any) -> dict[str, Any]:
    """The JSON-RPC answer to one tools/call: ``result`` (the tool's envelope) or ``error``."""
    r = api.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                               "params": {"name": tool, "arguments": args}})
    assert r.status_code in (200, 404), r.text
    return dict(r.json())


def test_mcp_tools_act_in_the_callers_workspace(rt: RuntimeProcess, spaces: dict[str, Space],
                                                workers: dict[str, Worker]) -> None:
    a, c = spaces["a"], spaces["c"]
    name = workers["c"].address.rsplit("/", 1)[1]
    with rt.client(c.key) as api_c, rt.client(a.key) as api_a:
        sent = _mcp(api_c, "axme.send_intent", to=name, intent_type="iso.mcp.v1", payload={"via": "mcp"})
        assert sent["result"]["ok"], sent
        intent_id = sent["result"]["intent_id"]
        assert api_c.get(f"/v1/intents/{intent_id}").json()["intent"]["to_agent"] == workers["c"].address
        listed = _mcp(api_c, "axme.list_intents")["result"]["data"]["intents"]
        assert intent_id in {i["intent_id"] for i in listed}
        assert {i["intent_id"] for i in listed} <= {
            i["intent_id"] for i in api_c.get("/v1/intents", params={"limit": 500}).json()["intents"]}
        # the default workspace: its tools see nothing of C's
        theirs = _mcp(api_a, "axme.get_intent", intent_id=intent_id)
        assert "error" in theirs and theirs["error"]["data"]["error"]["code"] == "intent_not_found", theirs
        assert intent_id not in str(_mcp(api_a, "axme.list_intents")["result"]["data"])
        # nor does C's send reach another workspace's agent
        other = _mcp(api_c, "axme.send_intent", to=workers["a"].address, intent_type="iso.mcp.v1", payload={})
        assert "error" in other and other["error"]["data"]["error"]["code"] == "agent_not_found", other


def test_the_sdk_in_another_workspace(rt: RuntimeProcess, spaces: dict[str, Space],
                                      workers: dict[str, Worker]) -> None:
    b, a = spaces["b"], spaces["a"]
    sdk_b = AxmeClient(AxmeClientConfig(base_url=rt.url, api_key=b.key, max_retries=0))
    sdk_a = AxmeClient(AxmeClientConfig(base_url=rt.url, api_key=a.key, max_retries=0))
    made = sdk_b.create_intent({"intent_type": "iso.sdk.v1", "to_agent": workers["b"].address, "payload": {}},
                               correlation_id=str(uuid.uuid4()))
    intent_id = made["intent_id"]
    assert sdk_b.get_intent(intent_id)["intent"]["to_agent"] == workers["b"].address
    events = sdk_b.list_intent_events(intent_id)["events"]
    assert [e["event_type"] for e in events][:2] == ["intent.created", "intent.submitted"]
    for call in (lambda: sdk_a.get_intent(intent_id), lambda: sdk_a.list_intent_events(intent_id),
                 lambda: sdk_a.resolve_intent(intent_id, {"status": "CANCELED", "reason": "not yours"})):
        with pytest.raises(AxmeHttpError) as hidden:
            call()
        assert hidden.value.status_code == 404
    resolved = sdk_b.resolve_intent(intent_id, {"status": "CANCELED", "reason": "done with it"})
    assert resolved["intent"]["status"] == "CANCELED"
    # webhooks, approvals and deliveries through the SDK: each workspace its own
    with Receiver() as hook:
        sub = sdk_b.upsert_webhook_subscription({"callback_url": hook.url, "event_types": [PING]})
        sub_id = sub["subscription"]["subscription_id"]
        assert sub_id in {x["subscription_id"] for x in sdk_b.list_webhook_subscriptions()["subscriptions"]}
        assert sub_id not in {x["subscription_id"] for x in sdk_a.list_webhook_subscriptions()["subscriptions"]}
        body = task_intent()
        task = sdk_b.create_intent(body, correlation_id=body["correlation_id"])["intent_id"]
        for call in (lambda: sdk_a.delete_webhook_subscription(sub_id),
                     lambda: sdk_a.decide_approval(task, decision="approve"),
                     lambda: sdk_a.list_deliveries(org_id=b.org_id, workspace_id=b.workspace_id)):
            with pytest.raises(AxmeHttpError) as hidden:
                call()
            assert hidden.value.status_code == 404
        assert sdk_b.decide_approval(task, decision="reject")["approval"]["decision"] == "reject"
        assert sdk_b.delete_webhook_subscription(sub_id)["revoked_at"]
        assert sdk_b.list_deliveries(org_id=b.org_id, workspace_id=b.workspace_id)["ok"] is True

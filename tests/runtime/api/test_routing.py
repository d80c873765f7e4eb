"""/v1/routing/endpoints, /v1/routing/resolve and /v1/transports/bindings over a real runtime: a route or binding
makes the runtime POST the principal's intents to its URL (signed with its own secret, or unsigned for auth_mode
none) instead of putting them on the agent's feed; priorities, failover when a route is marked unhealthy or
inactive, and removal back to the feed; resolve answers where an intent goes now; who may route whom; URLs the
egress policy refuses; transports and auth modes the runtime cannot run, refused naming the field."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import make_agent, new_intent, unique
from tests.receiver import Receiver, poll, signature_ok
from tests.runtime.api.test_streams import feed_path, take_frames
from tests.runtime_proc import RuntimeProcess
from tests.runtime_thread import RuntimeThread


@pytest.fixture(scope="module")
def rt(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    proc = RuntimeThread(tmp_path_factory.mktemp("routing"),
                         extra_args=["--redelivery-seconds", "600", "--outbound-timeout-seconds", "2"],
                         backend=backend)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def api(rt: RuntimeProcess) -> Iterator[httpx.Client]:
    with rt.client() as client:
        yield client


def register(api: httpx.Client, principal_id: str, url: str, **extra: Any) -> dict[str, Any]:
    r = api.post("/v1/routing/endpoints", json={"principal_id": principal_id, "transport_type": "http",
                                                "endpoint_url": url, "auth_mode": "signed_key", **extra})
    assert r.status_code == 200, r.text
    return dict(r.json())


def resolve(api: httpx.Client, **body: Any) -> dict[str, Any]:
    r = api.post("/v1/routing/resolve", json={"org_id": "local", "workspace_id": "dev", **body})
    assert r.status_code == 200, r.text
    return dict(r.json()["resolution"])


def delivered(api: httpx.Client, intent_id: str) -> dict[str, Any]:
    return dict(poll(lambda: api.get(f"/v1/intents/{intent_id}").json()["intent"],
                     lambda i: i["status"] == "DELIVERED"))


def test_a_route_takes_an_agents_intents_until_it_is_removed(rt: RuntimeProcess, api: httpx.Client) -> None:
    name = unique("rt-agent")
    address, token = make_agent(api, name)
    # no route: the feed, and resolve says so
    at_first = resolve(api, principal_id=name)
    assert at_first["selected_route"]["source"] == "agent_feed"
    assert at_first["selected_route"]["transport_type"] == "queue"
    assert at_first["resolver_chain"] == ["alias", "principal_id", "endpoint_route", "transport_dispatch"]
    first = api.post("/v1/intents", json=new_intent(name)).json()["intent_id"]
    with Receiver() as receiver:
        made = register(api, name, receiver.url, region="eu-1", metadata={"owner": "ops"})
        route, receiver.secret = made["route"], made["signing_secret"]
        assert (route["principal_id"], route["address"], route["priority"], route["health_status"],
                route["status"], route["failover_policy"], route["region"]) == (
            address, address, 100, "unknown", "active", "none", "eu-1")
        now = resolve(api, principal_id=address)
        assert now["selected_route"]["route_id"] == route["route_id"]
        assert now["selected_route"]["source"] == "routing_endpoint"
        second = api.post("/v1/intents", json=new_intent(name)).json()["intent_id"]
        [post] = receiver.wait_posts(1)
        assert post["signed"] and post["json"]["intent_id"] == second and post["json"]["to_agent"] == address
        assert post["json"]["event_type"] == "intent.delivered"
        delivered(api, second)
        r = api.delete(f"/v1/routing/endpoints/{route['route_id']}")
        assert r.status_code == 200 and r.json()["route"] == {"route_id": route["route_id"], "removed": True}
        r = api.delete(f"/v1/routing/endpoints/{route['route_id']}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "route_not_found", r.text
    third = api.post("/v1/intents", json=new_intent(name)).json()["intent_id"]
    with rt.client(token) as agent:
        frames = take_frames(agent, feed_path(name), 2, since=0, wait_seconds=5)
    assert [f.json["intent_id"] for f in frames] == [first, third]  # the routed one never was on the feed


def signed_with(post: dict[str, Any], secret: str) -> bool:
    return signature_ok(secret, post["raw"], post["headers"].get("X-Axme-Signature"))


def test_the_lowest_priority_number_wins_and_an_unhealthy_route_fails_over(api: httpx.Client) -> None:
    name = unique("rt-failover")
    make_agent(api, name)
    with Receiver() as receiver:  # one server, a path per route
        main = register(api, name, receiver.url + "/primary", priority=10)
        spare = register(api, name, receiver.url + "/backup", priority=20, auth_mode="none")
        assert "signing_secret" not in spare  # auth_mode none: nothing to sign with
        listed = api.get("/v1/routing/endpoints", params={"principal_id": name}).json()["routes"]
        assert [r["route_id"] for r in listed] == [main["route"]["route_id"], spare["route"]["route_id"]]
        candidates = resolve(api, principal_id=name)["candidate_routes"]
        assert [c["route_id"] for c in candidates] == [main["route"]["route_id"], spare["route"]["route_id"]]

        one = api.post("/v1/intents", json=new_intent(name)).json()["intent_id"]
        [post] = receiver.wait_posts(1)
        assert post["path"] == "/hooks/primary" and post["json"]["intent_id"] == one
        assert signed_with(post, main["signing_secret"])
        r = api.patch(f"/v1/routing/endpoints/{main['route']['route_id']}", json={"health_status": "unhealthy"})
        assert r.status_code == 200 and r.json()["route"]["health_status"] == "unhealthy", r.text
        two = api.post("/v1/intents", json=new_intent(name)).json()["intent_id"]
        post = receiver.wait_posts(2)[1]
        assert post["path"] == "/hooks/backup" and post["json"]["intent_id"] == two
        assert "X-Axme-Signature" not in post["headers"]
        delivered(api, two)
        # healthy again but draining: still not taken; active again: back to the primary
        api.patch(f"/v1/routing/endpoints/{main['route']['route_id']}",
                  json={"health_status": "healthy", "status": "draining"})
        assert resolve(api, principal_id=name)["selected_route"]["route_id"] == spare["route"]["route_id"]
        api.patch(f"/v1/routing/endpoints/{main['route']['route_id']}", json={"status": "active"})
        three = api.post("/v1/intents", json=new_intent(name)).json()["intent_id"]
        post = receiver.wait_posts(3)[2]
        assert post["path"] == "/hooks/primary" and post["json"]["intent_id"] == three
        assert signed_with(post, main["signing_secret"])
        # signing turned on for the spare: a secret is made and answered once
        turned = api.patch(f"/v1/routing/endpoints/{spare['route']['route_id']}", json={"auth_mode": "signed_key"})
        assert turned.json()["signing_secret"] and turned.json()["route"]["auth_mode"] == "signed_key"
        again = api.patch(f"/v1/routing/endpoints/{spare['route']['route_id']}", json={"priority": 5})
        assert "signing_secret" not in again.json() and again.json()["route"]["priority"] == 5


def test_a_transport_binding_delivers_after_the_routes(api: httpx.Client) -> None:
    name = unique("rt-binding")
    address, _ = make_agent(api, name)
    with Receiver() as receiver:
        bound_url, routed_url = receiver.url + "/bound", receiver.url + "/routed"
        r = api.post("/v1/transports/bindings", json={"principal_id": name, "transport_type": "webhook",
                                                      "transport_handle": bound_url, "priority": 7})
        assert r.status_code == 200, r.text
        binding, secret = r.json()["binding"], r.json()["signing_secret"]
        assert (binding["address"], binding["transport_type"], binding["status"], binding["priority"]) == (
            address, "webhook", "active", 7)
        assert resolve(api, principal_id=name)["selected_route"]["source"] == "transport_binding"
        one = api.post("/v1/intents", json=new_intent(name)).json()["intent_id"]
        [post] = receiver.wait_posts(1)
        assert post["path"] == "/hooks/bound" and post["json"]["intent_id"] == one and signed_with(post, secret)
        # the same principal and transport again: the binding changes (its secret stays, not answered again)
        r = api.post("/v1/transports/bindings", json={"principal_id": address, "transport_type": "webhook",
                                                      "transport_handle": bound_url, "status": "inactive"})
        assert r.json()["binding"]["binding_id"] == binding["binding_id"] and "signing_secret" not in r.json()
        assert resolve(api, principal_id=name)["selected_route"]["source"] == "agent_feed"
        api.post("/v1/transports/bindings", json={"principal_id": address, "transport_type": "webhook",
                                                  "transport_handle": bound_url})
        register(api, name, routed_url, priority=9000)
        two = api.post("/v1/intents", json=new_intent(name)).json()["intent_id"]
        post = receiver.wait_posts(2)[1]
        assert post["path"] == "/hooks/routed" and post["json"]["intent_id"] == two  # a route goes first
        listed = api.get("/v1/transports/bindings", params={"principal_id": name, "org_id": "local"}).json()
        assert [b["binding_id"] for b in listed["bindings"]] == [binding["binding_id"]]
        r = api.delete(f"/v1/transports/bindings/{binding['binding_id']}")
        assert r.json()["binding"] == {"binding_id": binding["binding_id"], "removed": True}
        assert api.get("/v1/transports/bindings", params={"principal_id": name}).json()["bindings"] == []


def test_a_principal_without_a_service_account_is_delivered_over_http(api: httpx.Client) -> None:
    """A registered principal reached through an alias and a route: alias -> principal -> route -> POST."""
    principal = api.post("/v1/principals", json={"principal_type": "service_agent"}).json()["principal"]
    spoken = f"Billing {uuid.uuid4().hex[:6]}"
    api.post("/v1/aliases", json={"principal_id": principal["principal_id"], "alias": spoken, "alias_type": "service"})
    with Receiver() as receiver:
        receiver.secret = register(api, principal["principal_id"], receiver.url)["signing_secret"]
        resolution = resolve(api, alias=spoken.lower())
        assert resolution["alias"]["alias"] == spoken
        assert resolution["principal"]["principal_id"] == principal["principal_id"]
        assert resolution["selected_route"]["endpoint_url"] == receiver.url
        intent_id = api.post("/v1/intents", json=new_intent(spoken)).json()["intent_id"]
        [post] = receiver.wait_posts(1)
        assert post["signed"] and post["json"]["intent_id"] == intent_id
        assert post["json"]["to_agent"] == principal["address"] and post["json"]["to_alias"]["alias"] == spoken


def test_the_service_accounts_own_binding_comes_last(api: httpx.Client) -> None:
    name = unique("rt-sa")
    make_agent(api, name)
    sa_id = api.get(f"/v1/agents/{name}").json()["agent"]["service_account_id"]
    with Receiver() as receiver:
        own_url = receiver.url + "/own"
        r = api.patch(f"/v1/service-accounts/{sa_id}/delivery", json={"delivery_mode": "http",
                                                                       "callback_url": own_url})
        own_secret = r.json()["delivery_secret"]
        chosen = resolve(api, principal_id=name)["selected_route"]
        assert (chosen["source"], chosen["route_id"], chosen["endpoint_url"]) == ("service_account", sa_id, own_url)
        route = register(api, name, receiver.url + "/routed")
        api.post("/v1/intents", json=new_intent(name))
        [post] = receiver.wait_posts(1)
        assert post["path"] == "/hooks/routed" and signed_with(post, route["signing_secret"])
        api.delete(f"/v1/routing/endpoints/{route['route']['route_id']}")
        intent_id = api.post("/v1/intents", json=new_intent(name)).json()["intent_id"]
        post = receiver.wait_posts(2)[1]
        assert post["path"] == "/hooks/own" and post["json"]["intent_id"] == intent_id
        assert signed_with(post, own_secret)


def test_an_agent_key_routes_only_itself(rt: RuntimeProcess, api: httpx.Client) -> None:
    name = unique("rt-self")
    address, token = make_agent(api, name)
    other, _ = make_agent(api, unique("rt-else"))
    with Receiver() as receiver, rt.client(token) as agent:
        r = agent.post("/v1/routing/endpoints", json={"principal_id": other, "transport_type": "http",
                                                      "endpoint_url": receiver.url, "auth_mode": "none"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "principal_not_found", r.text
        mine = register(agent, name, receiver.url)["route"]
        theirs = register(api, other, receiver.url)["route"]
        assert [r["route_id"] for r in agent.get("/v1/routing/endpoints").json()["routes"]] == [mine["route_id"]]
        for r in (agent.patch(f"/v1/routing/endpoints/{theirs['route_id']}", json={"priority": 1}),
                  agent.delete(f"/v1/routing/endpoints/{theirs['route_id']}")):
            assert r.status_code == 404 and r.json()["error"]["code"] == "route_not_found", r.text
        r = agent.post("/v1/routing/resolve", json={"principal_id": other})
        assert r.status_code == 404, r.text
        assert agent.post("/v1/routing/resolve", json={"principal_id": address}).status_code == 200
        r = agent.post("/v1/transports/bindings", json={"principal_id": other, "transport_type": "http",
                                                        "transport_handle": receiver.url})
        assert r.status_code == 404, r.text
        assert agent.get("/v1/transports/bindings").json()["bindings"] == []
        assert agent.delete(f"/v1/routing/endpoints/{mine['route_id']}").status_code == 200


def test_the_audit_log_records_routing_changes(api: httpx.Client) -> None:
    name = unique("rt-audit")
    make_agent(api, name)
    route = register(api, name, "https://hooks.example.com/axme")["route"]
    api.patch(f"/v1/routing/endpoints/{route['route_id']}", json={"priority": 3})
    api.delete(f"/v1/routing/endpoints/{route['route_id']}")
    events = api.get("/v1/audit/events", params={"action_prefix": "routing.endpoint", "limit": 50}).json()["events"]
    mine = [e for e in events if e["target_id"] == route["route_id"]]
    assert [e["action"] for e in mine] == ["routing.endpoint.removed", "routing.endpoint.updated",
                                           "routing.endpoint.registered"]
    assert mine[1]["details"]["changed"] == ["priority"]
    assert all("secret" not in str(e["details"]) for e in mine)


def test_urls_the_egress_policy_refuses_and_what_cannot_run_here(api: httpx.Client) -> None:
    name = unique("rt-bad")
    make_agent(api, name)
    base = {"principal_id": name, "transport_type": "http", "endpoint_url": "https://hooks.example.com/x",
            "auth_mode": "signed_key"}
    cases = [
        ({**base, "endpoint_url": "http://169.254.169.254/latest"}, "endpoint_url", "callback_url_refused"),
        ({**base, "endpoint_url": "http://10.1.2.3/x"}, "endpoint_url", "callback_url_refused"),
        ({**base, "transport_type": "matrix"}, "transport_type", "transport_not_available"),
        ({**base, "transport_type": "queue"}, "transport_type", "transport_not_available"),
        ({**base, "auth_mode": "mtls"}, "auth_mode", "auth_mode_not_available"),
        ({**base, "auth_mode": "jwt"}, "auth_mode", "auth_mode_not_available"),
    ]
    for body, field, code in cases:
        r = api.post("/v1/routing/endpoints", json=body)
        assert r.status_code == 422, r.text
        assert (r.json()["error"]["details"]["field"], r.json()["error"]["code"]) == (field, code), r.text
    route = register(api, name, "https://hooks.example.com/y")["route"]
    r = api.patch(f"/v1/routing/endpoints/{route['route_id']}", json={"endpoint_url": "http://192.168.0.9/z"})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "endpoint_url", r.text
    r = api.patch(f"/v1/routing/endpoints/{route['route_id']}", json={"auth_mode": "mtls"})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "auth_mode", r.text
    binding = {"principal_id": name, "transport_type": "http", "transport_handle": "http://169.254.169.254/"}
    r = api.post("/v1/transports/bindings", json=binding)
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "transport_handle", r.text
    r = api.post("/v1/transports/bindings", json={**binding, "transport_handle": "@bot:matrix.example"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_transport_handle", r.text
    r = api.post("/v1/transports/bindings", json={**binding, "transport_type": "matrix"})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "transport_type", r.text


def test_another_workspace_and_unknown_ids_are_not_found(api: httpx.Client) -> None:
    for path in ("/v1/routing/endpoints", "/v1/transports/bindings"):
        for params in ({"org_id": "elsewhere"}, {"workspace_id": "prod"}, {"principal_id": "nobody-here"}):
            assert api.get(path, params=params).status_code == 404, (path, params)
    r = api.post("/v1/routing/resolve",
                 json={"org_id": "elsewhere", "workspace_id": "dev", "principal_id": "inventory"})
    assert r.status_code == 404 and r.json()["error"]["details"]["field"] == "org_id", r.text
    r = api.post("/v1/routing/resolve", json={"alias": f"nobody {uuid.uuid4().hex}"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "alias_not_found", r.text
    for method, path in (("PATCH", "/v1/routing/endpoints/x-1"), ("DELETE", "/v1/routing/endpoints/x-1"),
                         ("DELETE", "/v1/transports/bindings/x-1")):
        r = api.request(method, path, json={} if method == "PATCH" else None)
        assert r.status_code == 404, (method, path, r.text)


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/routing/endpoints", {"principal_id": "inventory", "transport_type": "http", "endpoint_url": "ftp://x.example",
                               "auth_mode": "none"}, "endpoint_url"),
    ("/v1/routing/endpoints", {"principal_id": "inventory", "transport_type": "http",
                               "endpoint_url": "https://x.example/a", "auth_mode": "none", "priority": 0}, "priority"),
    ("/v1/routing/endpoints", {"principal_id": "inventory", "transport_type": "http",
                               "endpoint_url": "https://x.example/a", "auth_mode": "none", "priority": "1"},
     "priority"),
    ("/v1/routing/endpoints", {"principal_id": "inventory", "transport_type": "http",
                               "endpoint_url": "https://x.example/a", "auth_mode": "none", "failover_policy": "any"},
     "failover_policy"),
    ("/v1/routing/endpoints", {"transport_type": "http", "endpoint_url": "https://x.example/a", "auth_mode": "none"},
     "principal_id"),
    ("/v1/transports/bindings", {"principal_id": "inventory", "transport_type": "http", "transport_handle": "h",
                                 "status": "on"}, "transport_handle"),
    ("/v1/transports/bindings", {"principal_id": "inventory", "transport_type": "http",
                                 "transport_handle": "https://x.example/a", "status": "on"}, "status"),
    ("/v1/routing/resolve", {"org_id": "local", "workspace_id": "dev"}, "alias"),
    ("/v1/routing/resolve", {"alias": "ab"}, "alias"),
])
def test_bad_input_names_the_field(api: httpx.Client, path: str, body: dict[str, Any], field: str) -> None:
    r = api.post(path, json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert (error["details"].get("field") or error["details"]["errors"][0]["field"]) == field, error

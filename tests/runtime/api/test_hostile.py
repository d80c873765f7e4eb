"""Hostile input against the real runtime, route by route: each gets the right 4xx in the AXP error shape.

The routes come from the runtime's own OpenAPI document (so a new route is covered when it is documented):
malformed JSON, bodies that are not objects, bodies over the limit (with and without Content-Length), deep
nesting, wrong types, invalid addresses and intent types, unknown ids, bad query parameters, NUL bytes; and
the per-key rate limit (429 with Retry-After). Single cases on /v1/intents are in tests/runtime/api/test_intents.py.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from axme_cli.runtime.api.common import MAX_DEPTH
from axme_cli.runtime.clock import ManualClock
from axme_cli.runtime.ratelimit import RateLimiter
from axme_cli.runtime.settings import Settings
from tests.api_document import api_document
from tests.cli.helpers import cli_invoke
from tests.conftest import make_agent, new_intent, unique
from tests.runtime.api.test_intents import assert_error
from tests.runtime_proc import TLS, RuntimeProcess
from tests.runtime_thread import RuntimeThread

MAX_BODY = Settings().max_body_bytes
DOC = api_document()
OPS = [(m.upper(), p, op) for p, item in DOC["paths"].items() for m, op in item.items()]
# POST /mcp answers JSON-RPC errors, not AXP ones: its hostile bodies are in tests/runtime/api/test_mcp.py.
JSON_BODY = [(m, p) for m, p, op in OPS if "application/json" in op.get("requestBody", {}).get("content", {})
             and p != "/mcp"]
WITH_IDS = [(m, p) for m, p, op in OPS if "{" in p]
INT_PARAMS = [(m, p, q["name"], q["schema"]) for m, p, op in OPS for q in op.get("parameters", [])
              if q["in"] == "query" and q["schema"].get("type") == "integer"]


# These are refused before any handler reads or writes the store (parsing, validation, the rate limit), so
# PostgreSQL would only repeat SQLite's answer; the cases that reach the store run on both.
STORAGE_FREE = pytest.mark.backends("sqlite")


def ident(route: tuple[str, ...]) -> str:
    return " ".join(route)


def url(path: str, value: str | None = None) -> str:
    """The path with its parameters filled: an unknown id (or ``value``), a valid agent name for addresses."""
    return re.sub(r"\{(\w+)\}", lambda m: value or ("inventory" if m.group(1) == "address" else str(uuid.uuid4())),
                  path)


def post(api: httpx.Client, method: str, path: str, content: bytes | Any, **kwargs: Any) -> httpx.Response:
    return api.request(method, url(path), content=content, headers={"content-type": "application/json"}, **kwargs)


def test_the_matrix_covers_the_api() -> None:
    assert len(JSON_BODY) >= 20 and len(WITH_IDS) >= 25 and len(INT_PARAMS) >= 8
    assert ("POST", "/v1/auth/login-intent") in JSON_BODY  # routes without a key too


# ---------------------------------------------------------------------------------------------
# bodies


@STORAGE_FREE
@pytest.mark.parametrize("route", JSON_BODY, ids=ident)
def test_malformed_json_is_400_invalid_json(api: httpx.Client, route: tuple[str, str]) -> None:
    for body in (b'{"a":', b"{'a': 1}", b'{"a": 1,}', b"\xff\xfe\x00{}", b'{"a": NaN x}', b"nul\x00l"):
        assert_error(post(api, *route, body), 400, code="invalid_json")


@STORAGE_FREE
@pytest.mark.parametrize("route", JSON_BODY, ids=ident)
def test_a_body_that_is_not_an_object_is_422(api: httpx.Client, route: tuple[str, str]) -> None:
    for body in ([], [{}], "text", 42, 1.5, True, None):
        assert_error(post(api, *route, json.dumps(body).encode()), 422)


@STORAGE_FREE
@pytest.mark.parametrize("route", JSON_BODY, ids=ident)
def test_a_body_over_the_limit_is_413_with_or_without_content_length(api: httpx.Client,
                                                                     route: tuple[str, str]) -> None:
    raw = b'{"pad": "' + b"x" * MAX_BODY + b'"}'

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(raw), 16384):
            yield raw[i : i + 16384]

    body = assert_error(post(api, *route, raw), 413, code="payload_too_large")
    assert body["error"]["details"]["limit_bytes"] == MAX_BODY
    streamed = post(api, *route, chunks())
    assert "content-length" not in streamed.request.headers
    assert_error(streamed, 413, code="payload_too_large")


def _nested(depth: int, opener: str = "[", closer: str = "]") -> str:
    return opener * depth + closer * depth


@STORAGE_FREE
@pytest.mark.parametrize("route", JSON_BODY, ids=ident)
def test_deep_nesting_is_a_4xx_not_a_recursion_error(api: httpx.Client, route: tuple[str, str]) -> None:
    for inner in (_nested(10_000), '{"a":' * 10_000 + "1" + "}" * 10_000, _nested(MAX_DEPTH)):
        raw = ('{"payload": ' + inner + "}").encode()
        r = post(api, *route, raw)
        assert 400 <= r.status_code < 500, f"{r.status_code}: {r.text[:300]}"
        assert_error(r, r.status_code)
    # Just past the limit: orjson and pydantic could still parse it, the runtime refuses it by name.
    body = new_intent(payload={"x": json.loads(_nested(MAX_DEPTH - 1))})
    if route != ("POST", "/v1/intents"):
        body = {"x": json.loads(_nested(MAX_DEPTH))}
    assert_error(post(api, *route, json.dumps(body).encode()), 422, code="too_deeply_nested")


def test_nesting_within_the_limit_is_stored_and_shown(api: httpx.Client) -> None:
    deep = json.loads(_nested(MAX_DEPTH - 2))
    r = api.post("/v1/intents", json=new_intent(unique("deep"), payload={"x": deep}))
    assert r.status_code == 200, r.text
    got = api.get(f"/v1/intents/{r.json()['intent_id']}")
    assert got.status_code == 200 and got.json()["intent"]["payload"] == {"x": deep}


WRONG_TYPES: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("POST", "/v1/intents"): [new_intent(payload=5), new_intent(to_agent=["inventory"]),
                              new_intent(max_delivery_attempts="3"), new_intent(human_task=[]),
                              new_intent(deadline_at=1_900_000_000), new_intent(payload={"n": 10**40})],
    ("POST", "/v1/intents/bulk-cancel"): [{"older_than_hours": "old"}, {"limit": []}, {"older_than_hours": 1e300}],
    ("POST", "/v1/intents/{intent_id}/resolve"): [{"status": 5}, {"status": "COMPLETED", "result": "ok"},
                                                  {"status": "DONE"}],
    ("POST", "/v1/scenarios/apply"): [{"scenario_id": 5, "intent": {"type": "a.b.v1"}},
                                      {"scenario_id": "abc", "intent": "x"},
                                      {"scenario_id": "abc", "intent": {"type": "a.b.v1", "deadline_at": "soon"}},
                                      {"scenario_id": "abc", "intent": {"type": "a.b.v1", "deadline_at": 5}}],
    ("POST", "/v1/service-accounts"): [{"name": 7}, {"name": None}, {"name": ["a"]}],
    ("POST", "/v1/service-accounts/{sa_id}/keys"): [{"expires_at": "soon"}, {"expires_at": "0001-01-01T00:00:00+14:00"},
                                                   {"expires_at": []}],
    ("POST", "/v1/auth/login-intent"): [{"email": 5}, {"email": None}, {"email": "not an email"}],
    ("POST", "/v1/auth/login-intent/{intent_id}/verify"): [{"code": []}, {"code": None}],
    ("POST", "/v1/auth/refresh"): [{"refresh_token": 1}, {}],
    ("POST", "/v1/auth/sessions/revoke"): [{"session_id": {}}, {}],
    ("POST", "/v1/webhooks/subscriptions"): [{"callback_url": 5, "event_types": ["inbox.thread_created"]},
                                             {"callback_url": "http://example.com/x", "event_types": "x"},
                                             {"callback_url": "http://example.com/x",
                                              "event_types": ["inbox.thread_created"], "active": "yes"}],
    ("POST", "/v1/webhooks/events"): [{"event_type": 5, "source": "s1", "payload": {}},
                                      {"event_type": "inbox.thread_created", "source": "s1", "payload": []}],
    ("POST", "/v1/deliveries"): [{"principal_id": "inventory", "payload": []},
                                 {"principal_id": 5, "payload": {}},
                                 {"principal_id": "inventory", "payload": {}, "idempotency_key": 1234}],
    ("PATCH", "/v1/service-accounts/{sa_id}/delivery"): [{"delivery_mode": 1}, {"delivery_mode": "pigeon"}],
    ("PUT", "/v1/service-accounts/{sa_id}/delivery"): [{"delivery_mode": "http", "callback_url": 5}],
    ("POST", "/v1/inbox/{thread_id}/reply"): [{"message": []}, {"message": ""}, {}],
    ("POST", "/v1/inbox/{thread_id}/delegate"): [{"delegate_to": 5}, {"note": []}],
    ("POST", "/v1/inbox/{thread_id}/approve"): [{"comment": 5}],
    ("POST", "/v1/inbox/{thread_id}/reject"): [{"comment": {}}],
    ("POST", "/v1/inbox/{thread_id}/messages/delete"): [{"mode": "everyone"}, {"mode": "self", "limit": "3"}],
    ("POST", "/v1/approvals/{approval_id}/decision"): [{"decision": True}, {"decision": "maybe"}, {}],
    ("POST", "/v1/schedules"): [{"cron": 5, "intent": {}}, {"cron": "0 2 * * *", "scenario": "x"},
                                {"cron": "0 2 * * *", "intent": [], "paused": "no"},
                                {"cron": "0 2 * * *", "timezone": ["UTC"], "intent": {}}],
    ("POST", "/v1/schedules/{schedule_id}/trigger"): [{"overlap_policy": 1}, {"overlap_policy": "queue"}],
    ("POST", "/v1/users/register-nick"): [{"nick": 5}, {"nick": None}, {"nick": "@ann.lee", "phone": 5551234}],
    ("POST", "/v1/users/rename-nick"): [{"owner_agent": [], "nick": "@ann.lee"}, {"owner_agent": "abc", "nick": {}}],
    ("POST", "/v1/users/profile/update"): [{"owner_agent": 5}, {"owner_agent": "abc", "display_name": True}],
    ("POST", "/v1/invites/create"): [{"owner_agent": 5}, {"owner_agent": "abc", "ttl_seconds": "3600"},
                                     {"owner_agent": "abc", "ttl_seconds": 10**40}],
    ("POST", "/v1/invites/{token}/accept"): [{"nick": []}, {"nick": "@ann.lee", "display_name": 1}],
    ("POST", "/v1/media/create-upload"): [{"filename": 5, "mime_type": "a/b", "size_bytes": 1},
                                         {"filename": "a", "mime_type": "a/b", "size_bytes": "1"},
                                         {"filename": "a", "mime_type": ["a/b"], "size_bytes": 1}],
    ("POST", "/v1/media/finalize-upload"): [{"upload_id": 5, "size_bytes": 1},
                                           {"upload_id": "01a24bd1-cc74-7000-91e4-629dbb320455", "size_bytes": 1.5}],
    ("POST", "/v1/intents/{intent_id}/controls"): [{"controls_patch": []}, {"controls_patch": {"max_retries": "2"}},
                                                   {"controls_patch": {"deadline_at": 5}}],
    ("POST", "/v1/intents/{intent_id}/policy"): [{"grants_patch": []}, {"envelope_patch": {"ttl_seconds": True}},
                                                 {"grants_patch": {"delegate:x": {"allow": "resume"}}}],
    ("PUT", "/v1/agents/{address}/policy"): [{"policy_type": 5}, {"policy_type": "closed"}, {}],
    ("POST", "/v1/agents/{address}/policy/entries"): [{"sender_pattern": 5}, {"sender_pattern": "agent://A/*"}],
    ("PUT", "/v1/agents/{address}/receive-override"): [{"override_type": "denylist"}, {"policy_type": "open"}],
    ("POST", "/v1/agents/{address}/receive-override/entries"): [{"sender_pattern": []}, {"sender_pattern": "a*"}],
    ("PUT", "/v1/organizations/{org_id}/receive-policy"): [{"policy_type": "denylist"}, {"policy_type": None}],
    ("POST", "/v1/organizations/{org_id}/receive-policy/entries"): [{"sender_pattern": ""},
                                                                    {"sender_pattern": "agent://x/y"}],
    ("POST", "/v1/schemas"): [{"semantic_type": 5, "schema_json": {}, "compatibility_mode": "warn"},
                              {"semantic_type": "a.b.v1", "schema_json": [], "compatibility_mode": "warn"},
                              {"semantic_type": "a.b.v1", "schema_json": {}, "compatibility_mode": "warn",
                               "active": "yes"}],
    ("POST", "/v1/principals"): [{"principal_type": 5}, {"principal_type": "user", "metadata": "x"},
                                 {"principal_type": "user", "display_name": ["a"]}],
    ("POST", "/v1/aliases"): [{"principal_id": 5, "alias": "desk", "alias_type": "service"},
                              {"principal_id": "inventory", "alias": ["desk"], "alias_type": "service"}],
    ("POST", "/v1/routing/endpoints"): [{"principal_id": "inventory", "transport_type": "http",
                                         "endpoint_url": "https://x.example", "auth_mode": "none", "priority": "1"},
                                        {"principal_id": "inventory", "transport_type": 1,
                                         "endpoint_url": "https://x.example", "auth_mode": "none"}],
    ("PATCH", "/v1/routing/endpoints/{route_id}"): [{"priority": True}, {"status": 1}, {"metadata": []}],
    ("POST", "/v1/routing/resolve"): [{"alias": 5}, {"principal_id": ["inventory"]}],
    ("POST", "/v1/transports/bindings"): [{"principal_id": "inventory", "transport_type": "http",
                                           "transport_handle": 5}],
    ("POST", "/v1/access-requests"): [{"request_type": 1, "requester_actor_id": "x"},
                                      {"request_type": "quota_upgrade", "requester_actor_id": "x",
                                       "expires_at": 1_900_000_000}],
    ("POST", "/v1/access-requests/{access_request_id}/review"): [{"decision": True, "reviewer_actor_id": "x"},
                                                                 {"decision": "approve", "reviewer_actor_id": 5}],
    ("POST", "/v1/mesh/heartbeat"): [{"metrics": []}, {"metrics": "x"}, {"metrics": {"cpu": {"user": 1}}}],
    ("POST", "/v1/mesh/agents/{address_id}/kill"): [{"reason": 5}, {"reason": ["x"]}],
    ("POST", "/v1/mesh/agents/{address_id}/resume"): [{"reason": {}}],
    ("POST", "/v1/organizations"): [{"name": 5, "requested_by_actor_id": "x"}, {"name": "Acme"},
                                    {"name": "Acme", "requested_by_actor_id": "x", "metadata": []}],
    ("PATCH", "/v1/organizations/{org_id}"): [{"name": ["a"]}, {"status": "closed"}, {"metadata": "x"}],
    ("POST", "/v1/organizations/{org_id}/workspaces"): [{"name": "qa", "environment": 1}, {"name": 5,
                                                                                         "environment": "sandbox"}],
    ("PATCH", "/v1/organizations/{org_id}/workspaces/{workspace_id}"): [{"status": "deleted"}, {"region": 5}],
    ("POST", "/v1/organizations/{org_id}/members"): [{"actor_id": 5, "role": "member"}, {"actor_id": "a"},
                                                   {"actor_id": "a", "role": "owner"}],
    ("PATCH", "/v1/organizations/{org_id}/members/{member_id}"): [{"role": 1}, {"status": "gone"}],
    ("POST", "/v1/workspaces/{workspace_id}/members/include"): [{"actor_id": 5}, {"role": "member"},
                                                                {"actor_id": "a", "role": "org_owner"},
                                                                {"actor_id": "a", "org_id": 1}],
    ("POST", "/v1/portal/personal/workspace-selection"): [{"org_id": "local"}, {"workspace_id": "dev"},
                                                          {"org_id": 1, "workspace_id": "dev"},
                                                          {"org_id": "local", "workspace_id": ["dev"]}],
    ("PATCH", "/v1/quotas"): [{"dimensions": {"intents_per_day": "5"}}, {"dimensions": {"intents_per_day": True}},
                              {"dimensions": {"intents_per_day": -1}}, {"dimensions": {"intents_per_day": 1.5}},
                              {"dimensions": []}, {"dimensions": {}, "hard_enforcement": "yes"},
                              {"dimensions": {}, "overage_mode": "refuse"}],
}


def test_wrong_types_cover_every_body_with_fields() -> None:
    free = {("POST", "/v1/intents/{intent_id}/resume"), ("POST", "/v1/scenarios/validate")}  # open bodies
    assert set(JSON_BODY) - set(WRONG_TYPES) == free


@STORAGE_FREE
@pytest.mark.parametrize("route", sorted(WRONG_TYPES), ids=ident)
def test_wrong_types_are_422(api: httpx.Client, route: tuple[str, str]) -> None:
    for body in WRONG_TYPES[route]:
        r = post(api, *route, json.dumps(body).encode())
        assert_error(r, 422)


@STORAGE_FREE
@pytest.mark.parametrize("bad", ["", "a", "order", "order.v1", "Order.reserve.v1", "order.reserve.V1",
                                 "order..reserve.v1", "order.reserve.v1 ", " order.reserve.v1", "ordér.reserve.v1",
                                 "order.reserve.v1\n", "order-x.reserve.v1", "order.reserve.v", 5, None, ["a.b.v1"]])
def test_invalid_intent_types_are_422(api: httpx.Client, bad: Any) -> None:
    assert_error(api.post("/v1/intents", json=new_intent(intent_type=bad)), 422, code="schema_invalid",
                 names="intent_type")
    bundle = {"scenario_id": "hostile", "agents": [{"role": "a", "address": "inventory"}], "intent": {"type": bad}}
    assert_error(api.post("/v1/scenarios/apply", json=bundle), 422, code="scenario_invalid")
    verdict = api.post("/v1/scenarios/validate", json=bundle)
    assert verdict.status_code == 200 and verdict.json()["valid"] is False


BAD_ADDRESSES = ["a b", "http://example.com", "agent://", "no/such/deep/path", "UPPER CASE", "tab\there",
                 "x\x00y", "a" * 400 + " b"]


@STORAGE_FREE
@pytest.mark.parametrize("bad", BAD_ADDRESSES)
def test_invalid_addresses_are_422_invalid_agent_address(api: httpx.Client, bad: str) -> None:
    for field in ("to_agent", "reply_to", "from_agent"):
        body = new_intent(**{field: bad})
        r = api.post("/v1/intents", json=body)
        assert_error(r, 422)
        if len(bad) <= 383 and len(bad) >= 3:  # within the schema's lengths: the address rule refuses it
            assert r.json()["error"]["code"] == "invalid_agent_address", r.text
    # in a URL, a NUL byte is refused before anything else (400 invalid_value), on every backend
    in_url = (400, "invalid_value") if "\x00" in bad else (422, "invalid_agent_address")
    for path in ("/v1/inbox", "/v1/inbox/changes", "/v1/webhooks/subscriptions", "/v1/webhooks/deliveries"):
        assert_error(api.get(path, params={"owner_agent": bad}), *in_url)
        if "\x00" not in bad and "\t" not in bad:  # headers cannot carry those
            assert_error(api.get(path, headers={"x-owner-agent": bad}), 422, code="invalid_agent_address")
    if "/" not in bad:
        quoted = "/v1/agents/" + quote(bad, safe="")
        assert_error(api.get(quoted), *in_url)
        assert_error(api.get(f"{quoted}/intents/stream", params={"wait_seconds": 1}), *in_url)


@STORAGE_FREE
def test_delegating_to_an_invalid_address_is_422(quiet: RuntimeProcess, api: httpx.Client) -> None:
    owner, _ = make_agent(api, unique("owner"))
    r = api.post("/v1/intents", json=new_intent(unique("worker"), reply_to=owner))
    intent_id = r.json()["intent_id"]
    api.post(f"/v1/intents/{intent_id}/resolve", json={"status": "COMPLETED", "result": {}})
    for bad in ("a b", "agent://", "x/y/z/w"):
        r = api.post(f"/v1/inbox/{intent_id}/delegate", params={"owner_agent": owner}, json={"delegate_to": bad})
        assert_error(r, 422, code="invalid_agent_address")


# ---------------------------------------------------------------------------------------------
# ids and query parameters


@pytest.mark.parametrize("route", [r for r in WITH_IDS if r[1] != "/v1/agents/{address}/intents/stream"
                                   and not r[1].startswith("/v1/billing/")], ids=ident)
def test_unknown_ids_are_404(api: httpx.Client, route: tuple[str, str]) -> None:
    """Listening to the feed of an agent that does not exist (yet) is allowed: the admin sees an empty stream.
    Billing answers 501 whatever the id (tests/runtime/api/test_billing.py)."""
    method, path = route
    body = _valid_body(path) if method in ("POST", "PUT", "PATCH") else None
    for value in (str(uuid.uuid4()), "not-an-id", "%C3%A9t%C3%A9", "0" * 300, "%00"):
        r = api.request(method, url(path, value), json=body)
        if path.startswith("/t/"):  # the task-mail page answers people in HTML
            assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), r.text
            continue
        if value == "%00":  # on every backend (PostgreSQL could not even look it up)
            assert_error(r, 400, code="invalid_value")
            continue
        if path.startswith("/v1/agents/") and value not in ("not-an-id",) and "-" not in value:
            assert_error(r, 422, code="invalid_agent_address")  # not even an agent name
            continue
        if path.startswith("/v1/schemas/"):  # none of these is a semantic type (an intent type)
            assert_error(r, 422, code="invalid_parameter")
            continue
        assert_error(r, 404)
    if path.startswith("/v1/schemas/"):
        assert_error(api.request(method, url(path, "no.such.type.v1")), 404, code="schema_not_found")


def _valid_body(path: str) -> dict[str, Any]:
    if path.startswith("/v1/organizations/") and "receive-policy" not in path:  # organizations, workspaces, members
        last = path.rstrip("}").rsplit("/", 1)[-1]
        return {"workspaces": {"name": "qa", "environment": "sandbox"}, "members": {"actor_id": "x", "role": "member"},
                }.get(last, {"name": "Renamed"} if "member" not in path else {"role": "member"})
    if path.startswith("/v1/workspaces/"):  # a workspace's members
        return {"actor_id": "x"}
    if path.startswith(("/v1/agents/", "/v1/organizations/")):  # sender policies
        return {"sender_pattern": "*"} if path.endswith("/entries") else {
            "override_type" if "override" in path else "policy_type": "open"}
    last = path.rstrip("}").rsplit("/", 1)[-1]
    return {"resume": {"action": "complete"}, "resolve": {"status": "CANCELED", "reason": "x"},
            "delivery": {"delivery_mode": "poll"}, "reply": {"message": "x"}, "delegate": {"delegate_to": "someone"},
            "delete": {"mode": "self"}, "decision": {"decision": "approve"}, "verify": {"code": "123456"},
            "accept": {"nick": "@nobody.here"},
            "controls": {"controls_patch": {"max_retries": 1}},
            "policy": {"grants_patch": {"delegate:someone": {"allow": ["resume"]}}},
            "review": {"decision": "approve", "reviewer_actor_id": "someone"},
            }.get(last, {})


@STORAGE_FREE
@pytest.mark.parametrize("param", INT_PARAMS, ids=lambda p: f"{p[0]} {p[1]} {p[2]}")
def test_bad_integer_query_parameters_are_422(api: httpx.Client, param: tuple[str, str, str, dict[str, Any]]) -> None:
    method, path, name, schema = param
    target = url(path, str(uuid.uuid4()) if "intent_id" in path else None)
    if "{intent_id}" in path:  # an intent that exists: the parameter is what is wrong
        target = url(path, api.post("/v1/intents", json=new_intent(unique("q"))).json()["intent_id"])
    values = ["-1", "x", "1.5", "1e3", str(10**30), "9" * 5000, "\x00", "٣x", "0x10", "true",
              str(schema["maximum"] + 1), str(schema["minimum"] - 1)]
    for value in values:
        extra = {"wait_seconds": 1} if path.endswith("/stream") and name != "wait_seconds" else {}
        r = api.request(method, target, params={name: value, **extra})
        if value == "\x00":
            assert_error(r, 400, code="invalid_value")
        else:
            assert_error(r, 422, code="invalid_parameter", names=name)


@STORAGE_FREE
@pytest.mark.parametrize(("path", "name", "value"), [
    ("/v1/intents", "status", "DONE"), ("/v1/intents", "status", "SUBMITTED,,X"),
    ("/v1/agents/inventory/intents/stream", "status", "bogus"),
    ("/v1/inbox", "status", "closed"), ("/v1/webhooks/deliveries", "status", "sent"),
    ("/v1/auth/sessions", "include_revoked", "maybe"),
    ("/v1/inbox/changes", "cursor", "x"), ("/v1/inbox/changes", "cursor", "99999999999999999999999:x"),
    ("/v1/inbox/changes", "cursor", "9" * 5000), ("/v1/inbox/changes", "cursor", "²:x"),
    ("/v1/inbox/changes", "cursor", "-5:x"),
])
def test_bad_query_values_are_422(api: httpx.Client, path: str, name: str, value: str) -> None:
    assert_error(api.get(path, params={name: value, "wait_seconds": 1} if "stream" in path else {name: value}),
                 422, code="invalid_parameter", names=name)


@STORAGE_FREE
def test_a_too_long_idempotency_key_is_422(api: httpx.Client) -> None:
    key = "k" * 256
    assert_error(api.post("/v1/intents", json=new_intent(), headers={"Idempotency-Key": key}), 422,
                 names="Idempotency-Key")
    r = api.post(f"/v1/approvals/{uuid.uuid4()}/decision", json={"decision": "approve"},
                 headers={"Idempotency-Key": key})
    assert_error(r, 422, names="Idempotency-Key")


def test_nul_bytes_and_odd_text_never_500(api: httpx.Client) -> None:
    """PostgreSQL cannot hold NUL in text: such values are refused (4xx) or kept inside JSON, never a 500."""
    odd = ["\x00", "a\x00b", "\ud7ff\ue000", "😀" * 100, "\u202e\u200b", "\\u0000"]
    for text in odd:
        answers = [
            api.post("/v1/intents", json=new_intent(unique("nul"), payload={"t": text, text: 1})),
            api.post("/v1/service-accounts", json={"name": text}),
            api.post("/v1/service-accounts", json={"name": unique("nul"), "description": text}),
            api.post("/v1/webhooks/events", json={"event_type": "inbox.thread_created", "source": text + "xy",
                                                  "payload": {"t": text}}),
            api.post("/v1/auth/login-intent", json={"email": f"a{text}@example.com"}),
            api.post("/v1/scenarios/validate", json={"scenario_id": text, "intent": {"type": "a.b.v1"}}),
            api.get("/v1/intents", params={"before": text}),
            api.get(f"/v1/intents/{quote(text, safe='')}"),
            api.get("/v1/webhooks/deliveries", params={"event_id": text}),
        ]
        for r in answers:
            assert r.status_code < 500, f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:300]}"
            if r.status_code >= 400:
                assert_error(r, r.status_code)
    created = answers[0]
    assert created.status_code == 200, created.text
    shown = api.get(f"/v1/intents/{created.json()['intent_id']}").json()["intent"]["payload"]
    assert shown == {"t": odd[-1], odd[-1]: 1}


# ---------------------------------------------------------------------------------------------
# the per-key rate limit


def test_the_token_bucket() -> None:
    bucket = RateLimiter(5.0)  # bursts of 10
    assert [bucket.wait_for("a", now=100.0) for _ in range(10)] == [0.0] * 10
    assert bucket.wait_for("a", now=100.0) == pytest.approx(0.2)
    assert bucket.wait_for("b", now=100.0) == 0.0  # per key
    assert bucket.wait_for("a", now=100.2) == 0.0  # one token back after 1/rate seconds
    assert bucket.wait_for("a", now=100.2) > 0
    assert [bucket.wait_for("a", now=110.0) for _ in range(10)] == [0.0] * 10  # refilled up to the burst only
    assert bucket.wait_for("a", now=110.0) > 0


@pytest.fixture(scope="module")
def limited(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeThread]:
    """--rate-limit 2 on a test clock: the buckets refill only when the test moves it, so the counts are exact."""
    proc = RuntimeThread(tmp_path_factory.mktemp("limited"), extra_args=["--rate-limit", "2"], backend=backend,
                         clock=ManualClock())
    proc.start()
    yield proc
    proc.retire()


@STORAGE_FREE
def test_past_its_rate_a_key_gets_429_with_retry_after(limited: RuntimeThread) -> None:
    with limited.client() as admin:
        # the admin key is limited like any other: its burst (4) goes on making the agents
        _, alice_token = make_agent(admin, unique("alice"))
        _, bob_token = make_agent(admin, unique("bob"))
        assert_error(admin.get("/v1/agents"), 429, code="rate_limit_exceeded")
    with limited.client(alice_token) as alice, limited.client(bob_token) as bob:
        answers = [alice.get("/v1/agents") for _ in range(12)]
        codes = [r.status_code for r in answers]
        assert codes == [200] * 4 + [429] * 8, codes  # a burst of 2 x 2, then nothing until the clock moves
        refused = answers[4]
        body = assert_error(refused, 429, code="rate_limit_exceeded")
        retry = int(refused.headers["retry-after"])
        assert retry == 1  # the next token in 1/2 s, rounded up
        assert body["error"]["details"]["retryable"] is True
        assert body["error"]["details"]["limit_per_second"] == 2
        assert refused.headers["x-ratelimit-limit"] == "2"
        assert bob.get("/v1/agents").status_code == 200  # another key has its own bucket
        # no key: nothing to count (and /health needs none)
        with httpx.Client(base_url=limited.url, verify=TLS) as anon:
            assert anon.get("/health").status_code == 200
            assert_error(anon.get("/v1/agents"), 401)
        limited.advance_clock(0.5)  # the bucket refills at 2 a second (a refused request took no token)
        assert [alice.get("/v1/agents").status_code for _ in range(2)] == [200, 429]
        limited.advance_clock(10)  # up to the burst, no more
        assert [alice.get("/v1/agents").status_code for _ in range(5)] == [200] * 4 + [429]


def test_rate_limit_flag_is_documented() -> None:
    for command in ("dev", "server"):
        out = cli_invoke([command, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
        assert out.exit_code == 0, out.output
        assert "--rate-limit" in out.stdout and "1000" in out.stdout, out.stdout

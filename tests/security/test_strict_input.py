"""Strict input: JSON that is not JSON (NaN, Infinity) or that the runtime cannot keep (1e400, integers beyond
64 bits) is refused on every route that reads a body, POST /v1/intents included; names and keys have
lengths; the request and trace ids a caller sends are echoed only when they look like ids.

Runs on both backends (``api``): values refused here would otherwise be stored; the route matrix, refused
while the body is parsed, on SQLite only.
"""

from __future__ import annotations

import json
import re
import uuid

import httpx
import pytest

from tests.api_document import api_document
from tests.conftest import new_intent, unique
from tests.runtime.api.test_intents import assert_error

DOC = api_document()
# POST /mcp refuses them too, as JSON-RPC errors (tests/runtime/api/test_mcp.py).
JSON_BODY = [(m.upper(), p) for p, item in DOC["paths"].items() for m, op in item.items()
             if "application/json" in op.get("requestBody", {}).get("content", {}) and p != "/mcp"]
NOT_JSON = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1E+999"]


def url(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: "inventory" if m.group(1) == "address" else str(uuid.uuid4()), path)


def raw(value: str) -> bytes:
    return b'{"payload": {"n": ' + value.encode() + b'}, "x": ' + value.encode() + b"}"


@pytest.mark.backends("sqlite")  # refused while the body is parsed, before any handler reaches the store
@pytest.mark.parametrize("route", JSON_BODY, ids=" ".join)
def test_nan_infinity_and_overflowing_numbers_are_invalid_json_everywhere(api: httpx.Client,
                                                                          route: tuple[str, str]) -> None:
    method, path = route
    for value in NOT_JSON:
        r = api.request(method, url(path), content=raw(value), headers={"content-type": "application/json"})
        assert_error(r, 400, code="invalid_json")


@pytest.mark.parametrize("value", NOT_JSON)
def test_a_create_with_nan_or_1e400_stores_nothing(api: httpx.Client, value: str) -> None:
    """They were stored as null with 200 (pydantic's JSON parser reads NaN and 1e400 as floats)."""
    correlation = str(uuid.uuid4())
    text = json.dumps(new_intent(unique("nan"), correlation_id=correlation, payload={"n": 0})).replace(
        '"n": 0', f'"n": {value}')
    assert_error(api.post("/v1/intents", content=text, headers={"content-type": "application/json"}), 400,
                 code="invalid_json")
    recent = api.get("/v1/intents", params={"limit": 50}).json()["intents"]
    assert correlation not in [i["correlation_id"] for i in recent]


def test_integers_beyond_64_bits_are_refused_and_those_within_are_kept_exactly(api: httpx.Client) -> None:
    for big in (2**64, -(2**63) - 1, 10**40):
        for path, body in (("/v1/intents", new_intent(payload={"n": big})),
                           ("/v1/scenarios/validate", {"scenario_id": "big-int", "intent": {"type": "a.b.v1"},
                                                       "n": big})):
            r = api.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
            assert_error(r, 422, code="invalid_value", names="64 bits")
    edges = {"max": 2**64 - 1, "min": -(2**63), "digits_in_text": "1" * 40, "long": 12345678901234567890}
    r = api.post("/v1/intents", json=new_intent(unique("edges"), payload=edges))
    assert r.status_code == 200, r.text
    assert api.get(f"/v1/intents/{r.json()['intent_id']}").json()["intent"]["payload"] == edges


def test_intent_type_length_is_bounded(api: httpx.Client) -> None:
    longest = "a." + "b" * 250 + ".v1"
    assert len(longest) == 255
    assert api.post("/v1/intents", json=new_intent(intent_type=longest)).status_code == 200
    too_long = "a." + "b" * 251 + ".v1"
    assert_error(api.post("/v1/intents", json=new_intent(intent_type=too_long)), 422, names="intent_type")
    bundle = {"scenario_id": "long-type", "agents": [{"role": "a", "address": "inventory"}],
              "intent": {"type": too_long}}
    verdict = api.post("/v1/scenarios/validate", json=bundle).json()
    assert verdict["valid"] is False and any(e.startswith("intent.type:") for e in verdict["errors"]), verdict
    assert_error(api.post("/v1/scenarios/apply", json=bundle), 422, code="scenario_invalid")


def test_keys_and_addresses_have_lengths_and_other_organisations_stay_reachable(api: httpx.Client) -> None:
    key = "k" * 256
    assert_error(api.post("/v1/scenarios/apply", headers={"Idempotency-Key": key},
                          json={"scenario_id": "idem", "agents": [{"role": "a", "address": "inventory"}],
                                "intent": {"type": "a.b.v1"}}), 422, names="Idempotency-Key")
    task = {"title": "t", "notify_email": "a" * 250 + "@example.com"}
    assert_error(api.post("/v1/intents", json=new_intent("agent://agent_core", human_task=task)), 422,
                 names="notify_email")
    assert_error(api.post("/v1/intents", json=new_intent("agent://" + "o" * 380)), 422, names="to_agent")
    other = api.post("/v1/intents", json=new_intent("agent://other-org/other-ws/billing"))
    assert other.status_code == 200, other.text


HOSTILE_IDS = ["x" * 129, "has space", "<script>alert(1)</script>", "a;b", "tab\there", "semi\u00e9", "%0d%0aSet"]


def test_hostile_request_and_trace_ids_are_not_echoed(api: httpx.Client) -> None:
    for hostile in HOSTILE_IDS:
        headers = [(b"x-request-id", hostile.encode("latin-1")), (b"x-trace-id", hostile.encode("latin-1"))]
        for r in (api.get("/v1/intents", headers=headers, params={"limit": 1}),
                  api.get(f"/v1/intents/{uuid.uuid4()}", headers=headers),
                  api.post("/v1/intents", headers=headers, content=b"{")):
            assert r.headers["x-request-id"] != hostile and re.fullmatch(r"[0-9a-f]{16}", r.headers["x-request-id"])
            assert "x-trace-id" not in r.headers
    fine = "req-42:retry.1_A"
    r = api.get("/v1/intents", headers={"x-request-id": fine, "x-trace-id": "4bf92f3577b34da6a3ce929d0e0e4736"},
                params={"limit": 1})
    assert r.headers["x-request-id"] == fine and r.headers["x-trace-id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert len(api.get("/v1/intents", headers={"x-request-id": "r" * 128}).headers["x-request-id"]) == 128

"""/v1/intents over HTTP against the real runtime: error shapes, create, get, list, resume, resolve, bulk cancel."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import make_agent, new_intent, unique
from tests.runtime_proc import RuntimeProcess
from tests.runtime_thread import RuntimeThread

MAX_BODY = 131_072
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def assert_error(r: httpx.Response, status: int, code: str | None = None, names: str | None = None) -> dict[str, Any]:
    """The AXP error shape ``{"error": {"code", "message", "details"}, "detail"}`` with ``status``."""
    assert r.status_code == status, f"{r.status_code} != {status}: {r.text}"
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error", "detail"}, body
    err = body["error"]
    assert set(err) == {"code", "message", "details"}, body
    assert isinstance(err["code"], str) and err["code"], body
    assert isinstance(err["message"], str) and err["message"], body
    assert isinstance(err["details"], dict), body
    assert isinstance(body["detail"], str) and body["detail"], body
    if code is not None:
        assert err["code"] == code, body
    if names is not None:
        assert names in err["message"], f"{names!r} not named in {err['message']!r}"
    return body


# ---------------------------------------------------------------------------------------------
# helpers


def create(client: httpx.Client, to_agent: str = "inventory", **extra: Any) -> dict[str, Any]:
    r = client.post("/v1/intents", json=new_intent(to_agent, **extra))
    assert r.status_code == 200, r.text
    return r.json()


def get(client: httpx.Client, intent_id: str) -> dict[str, Any]:
    r = client.get(f"/v1/intents/{intent_id}")
    assert r.status_code == 200, r.text
    return r.json()["intent"]


def events_of(client: httpx.Client, intent_id: str) -> list[dict[str, Any]]:
    r = client.get(f"/v1/intents/{intent_id}/events")
    assert r.status_code == 200, r.text
    return r.json()["events"]


def with_agent(quiet: RuntimeProcess, api: httpx.Client, prefix: str) -> tuple[str, httpx.Client]:
    address, token = make_agent(api, unique(prefix))
    return address, quiet.client(token)


# ---------------------------------------------------------------------------------------------
# errors: shape and status, never a 500


@pytest.mark.backends("sqlite")  # refused before any handler reads the store
def test_malformed_json_is_400(admin: httpx.Client) -> None:
    r = admin.post(
        "/v1/intents", content=b'{"intent_type": "order.reserve.v1",', headers={"content-type": "application/json"}
    )
    assert_error(r, 400)


@pytest.mark.parametrize("body", [b"", b"   \n"])
@pytest.mark.backends("sqlite")  # refused before any handler reads the store
def test_empty_body_is_400(admin: httpx.Client, body: bytes) -> None:
    assert_error(admin.post("/v1/intents", content=body, headers={"content-type": "application/json"}), 400)


@pytest.mark.parametrize("body", [[], [new_intent()], "order", 42, None])
@pytest.mark.backends("sqlite")  # refused before any handler reads the store
def test_non_object_body_is_422(admin: httpx.Client, body: Any) -> None:
    r = admin.post("/v1/intents", content=json.dumps(body).encode(), headers={"content-type": "application/json"})
    assert_error(r, 422)


def _without(key: str) -> dict[str, Any]:
    body = new_intent()
    del body[key]
    return body


@pytest.mark.parametrize(
    ("field", "body"),
    [
        ("intent_type", new_intent(intent_type="Order.Reserve")),
        ("intent_type", new_intent(intent_type="order.reserve")),
        ("intent_type", _without("intent_type")),
        ("correlation_id", _without("correlation_id")),
        ("correlation_id", new_intent(correlation_id="not-a-uuid")),
        ("correlation_id", new_intent(correlation_id=12345)),
        ("to_agent", _without("to_agent")),
        ("payload", _without("payload")),
        ("payload", new_intent(payload=[1, 2])),
        ("payload", new_intent(payload="text")),
        ("surprise", new_intent(surprise=True)),
        ("max_delivery_attempts", new_intent(max_delivery_attempts=0)),
        ("remind_after_seconds", new_intent(remind_after_seconds=0)),
        ("deadline_at", new_intent(deadline_at="tomorrow")),
        ("human_task", new_intent(human_task={"description": "no title"})),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
@pytest.mark.backends("sqlite")  # refused before any handler reads the store
def test_schema_violation_is_422_naming_the_field(admin: httpx.Client, field: str, body: dict[str, Any]) -> None:
    assert_error(admin.post("/v1/intents", json=body), 422, code="schema_invalid", names=field)


@pytest.mark.parametrize("to_agent", ["http://x", "a b", "agent://", "no/such/deep/path", "UPPER CASE"])
@pytest.mark.backends("sqlite")  # refused before any handler reads the store
def test_invalid_to_agent_is_422_invalid_agent_address(admin: httpx.Client, to_agent: str) -> None:
    r = admin.post("/v1/intents", json=new_intent(to_agent))
    assert_error(r, 422, code="invalid_agent_address", names="to_agent")


def _body_of_size(size: int) -> bytes:
    body = new_intent(payload={"pad": ""})
    base = len(json.dumps(body, separators=(",", ":")).encode())
    body["payload"] = {"pad": "x" * (size - base)}
    raw = json.dumps(body, separators=(",", ":")).encode()
    assert len(raw) == size
    return raw


def test_body_at_the_limit_is_accepted_and_over_it_is_413(admin: httpx.Client) -> None:
    headers = {"content-type": "application/json"}
    assert admin.post("/v1/intents", content=_body_of_size(MAX_BODY), headers=headers).status_code == 200
    body = assert_error(admin.post("/v1/intents", content=_body_of_size(MAX_BODY + 1), headers=headers), 413)
    assert str(MAX_BODY) in body["error"]["message"]


@pytest.mark.backends("sqlite")  # refused before any handler reads the store
def test_chunked_body_over_the_limit_is_413(admin: httpx.Client) -> None:
    raw = _body_of_size(MAX_BODY + 10)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the runtime must count
        for i in range(0, len(raw), 8192):
            yield raw[i : i + 8192]

    r = admin.post("/v1/intents", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    assert_error(r, 413)


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("GET", "/events"), ("GET", "/events/stream"), ("POST", "/resume"), ("POST", "/resolve")],
)
def test_unknown_intent_is_404(admin: httpx.Client, method: str, suffix: str) -> None:
    body = {"action": "complete"} if suffix == "/resume" else {"status": "CANCELED", "reason": "x"}
    r = admin.request(method, f"/v1/intents/{uuid.uuid4()}{suffix}", json=body if method == "POST" else None)
    assert_error(r, 404)


@pytest.mark.backends("sqlite")  # refused before any handler reads the store
def test_unknown_route_is_404(admin: httpx.Client) -> None:
    assert_error(admin.get("/v1/no-such-thing"), 404)
    assert_error(admin.post("/v2/intents", json=new_intent()), 404)


@pytest.mark.parametrize(
    ("method", "path"), [("DELETE", "/v1/intents"), ("PUT", "/v1/intents/x"), ("GET", "/v1/intents/x/resume")]
)
@pytest.mark.backends("sqlite")  # refused before any handler reads the store
def test_wrong_method_is_405(admin: httpx.Client, method: str, path: str) -> None:
    assert_error(admin.request(method, path), 405)


@pytest.mark.parametrize(
    ("suffix", "param", "value"),
    [
        ("/events", "since", "-1"),
        ("/events", "since", "abc"),
        ("/events/stream", "since", "-1"),
        ("/events/stream", "since", "abc"),
        ("/events/stream", "wait_seconds", "0"),
        ("/events/stream", "wait_seconds", "61"),
        ("/events/stream", "wait_seconds", "x"),
    ],
)
@pytest.mark.backends("sqlite")  # refused before any handler reads the store
def test_bad_event_query_parameters_are_422(admin: httpx.Client, suffix: str, param: str, value: str) -> None:
    intent_id = create(admin, unique("nobody"), max_delivery_attempts=100)["intent_id"]
    assert_error(admin.get(f"/v1/intents/{intent_id}{suffix}", params={param: value}), 422, names=param)


@pytest.mark.parametrize(
    ("param", "value"),
    [("since", "-1"), ("since", "abc"), ("wait_seconds", "0"), ("wait_seconds", "61"), ("status", "BOGUS")],
)
@pytest.mark.backends("sqlite")  # refused before any handler reads the store
def test_bad_feed_query_parameters_are_422(admin: httpx.Client, param: str, value: str) -> None:
    assert_error(admin.get("/v1/agents/inventory/intents/stream", params={param: value}), 422, names=param)


@pytest.mark.parametrize(("param", "value"), [("limit", "0"), ("limit", "many"), ("status", "DONE")])
@pytest.mark.backends("sqlite")  # refused before any handler reads the store
def test_bad_list_query_parameters_are_422(admin: httpx.Client, param: str, value: str) -> None:
    assert_error(admin.get("/v1/intents", params={param: value}), 422, names=param)


@pytest.mark.parametrize(
    ("method", "path", "content"),
    [
        ("POST", "/v1/intents", b"\xff\xfe\x00garbage"),
        ("POST", "/v1/intents", b"[" * 5000 + b"]" * 5000),
        ("POST", "/v1/intents", b'{"intent_type": NaN}'),
        ("POST", "/v1/intents", json.dumps(new_intent(max_delivery_attempts=10**40)).encode()),
        ("POST", "/v1/intents", json.dumps(new_intent(payload={"deep": [[[[[[[[[[{}]]]]]]]]]]})).encode()[:-3]),
        ("POST", "/v1/intents", json.dumps(new_intent(to_agent="agent://" + "a" * 400)).encode()),
        ("POST", "/v1/intents", json.dumps({**new_intent(), "human_task": "approve"}).encode()),
        ("POST", "/v1/intents/bulk-cancel", b'{"older_than_hours": -1}'),
        ("POST", "/v1/intents/bulk-cancel", b'{"status_filter": ["COMPLETED"]}'),
        ("POST", "/v1/intents/bulk-cancel", b"[]"),
        ("POST", f"/v1/intents/{uuid.uuid4()}/resolve", b'{"status": "TIMED_OUT"}'),
        ("POST", "/v1/intents/not-a-uuid/resume", b"{}"),
        ("GET", "/v1/intents/%00%ff", None),
        ("GET", "/v1/agents/%20/intents/stream", None),
        ("GET", "/v1/agents/a%2F%2F%2Fb", None),
        ("POST", "/v1/service-accounts", b'{"name": 7}'),
        ("POST", "/v1/service-accounts", b"{}"),
        ("POST", f"/v1/service-accounts/{uuid.uuid4()}/keys", b'{"expires_at": "soon"}'),
    ],
)
def test_odd_requests_never_500(admin: httpx.Client, method: str, path: str, content: bytes | None) -> None:
    r = admin.request(method, path, content=content, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, f"{r.status_code}: {r.text}"
    assert_error(r, r.status_code)


@pytest.mark.backends("sqlite")  # refused before any handler reads the store
def test_trace_and_request_ids_are_returned(admin: httpx.Client) -> None:
    headers = {"X-Trace-Id": str(uuid.uuid4()), "X-Request-Id": f"req-{uuid.uuid4().hex}"}
    for r in (
        admin.post("/v1/intents", json=new_intent(unique("traced")), headers=headers),
        admin.get(f"/v1/intents/{uuid.uuid4()}", headers=headers),
    ):
        assert r.headers.get("x-trace-id") == headers["X-Trace-Id"], r.headers
        assert r.headers.get("x-request-id") == headers["X-Request-Id"], r.headers


# ---------------------------------------------------------------------------------------------
# create and read


def test_create_answers_200_with_id_status_and_time(api: httpx.Client) -> None:
    r = api.post("/v1/intents", json=new_intent())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True
    uuid.UUID(body["intent_id"])
    assert body["status"] == "SUBMITTED"
    assert RFC3339.match(body["created_at"]), body


def test_get_shows_status_delivery_and_mirrors_fields(api: httpx.Client) -> None:
    payload = {"order_id": "ord_7", "items": [{"sku": "X", "quantity": 3}]}
    req = new_intent(unique("stock"), payload=payload, max_delivery_attempts=4)
    created = api.post("/v1/intents", json=req).json()
    r = api.get(f"/v1/intents/{created['intent_id']}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True
    intent = body["intent"]
    assert intent["intent_id"] == created["intent_id"]
    assert intent["status"] == "SUBMITTED"
    assert intent["lifecycle_status"] == "SUBMITTED"
    assert intent["delivery_attempt"] == 1
    assert intent["max_delivery_attempts"] == 4
    assert intent["intent_type"] == req["intent_type"]
    assert intent["correlation_id"] == req["correlation_id"]
    assert intent["payload"] == payload
    assert intent["created_at"] == created["created_at"]
    assert intent["to_agent"] == f"agent://local/dev/{req['to_agent']}"
    assert intent["pending_with"]["type"] == "agent"
    assert intent["pending_with"]["ref"] == intent["to_agent"]
    for key in ("intent_id", "status", "lifecycle_status", "payload", "intent_type", "to_agent", "delivery_attempt"):
        assert body[key] == intent[key], key  # mirrored at the top level for example agents


def test_create_writes_created_then_submitted(api: httpx.Client) -> None:
    intent_id = create(api, unique("fresh"))["intent_id"]
    events = events_of(api, intent_id)
    assert [(e["seq"], e["event_type"], e["status"]) for e in events] == [
        (1, "intent.created", "CREATED"),
        (2, "intent.submitted", "SUBMITTED"),
    ]
    assert all(e["intent_id"] == intent_id for e in events)
    assert all(RFC3339.match(e["at"]) for e in events)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("inventory", "agent://local/dev/inventory"),
        ("local/dev/billing", "agent://local/dev/billing"),
        ("agent://local/dev/ship.v2", "agent://local/dev/ship.v2"),
        ("agent://acme/prod/remote", "agent://acme/prod/remote"),
    ],
)
def test_to_agent_forms_are_qualified(api: httpx.Client, given: str, expected: str) -> None:
    intent_id = create(api, given)["intent_id"]
    assert get(api, intent_id)["to_agent"] == expected


def test_from_agent_comes_from_the_agent_key(quiet: RuntimeProcess, api: httpx.Client) -> None:
    address, bot = with_agent(quiet, api, "sender")
    r = bot.post("/v1/intents", json=new_intent(unique("receiver"), from_agent="agent://local/dev/impostor"))
    assert_error(r, 403, code="actor_mismatch")
    r = bot.post("/v1/intents", json=new_intent(unique("receiver"), from_agent=address))
    assert r.status_code == 200, r.text
    intent = get(api, r.json()["intent_id"])
    assert intent["from_agent"] == address
    # the sender may read what it sent
    assert bot.get(f"/v1/intents/{intent['intent_id']}").status_code == 200


def test_idempotency_key_replays_and_conflicts(quiet: RuntimeProcess, api: httpx.Client) -> None:
    key = f"idem-{uuid.uuid4()}"
    body = new_intent(unique("idem"))
    first = api.post("/v1/intents", json=body, headers={"Idempotency-Key": key})
    again = api.post("/v1/intents", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 200, again.text
    assert again.json() == first.json()
    # still one intent, untouched by the replay
    assert len(events_of(api, first.json()["intent_id"])) == 2

    changed = api.post("/v1/intents", json={**body, "payload": {"other": 1}}, headers={"Idempotency-Key": key})
    err = assert_error(changed, 409)
    assert err["detail"] == "idempotency key reused with different payload"

    # a different caller's key space is separate: (sender, endpoint, key)
    _, bot = with_agent(quiet, api, "idem-other")
    other = bot.post("/v1/intents", json=body, headers={"Idempotency-Key": key})
    assert other.status_code == 200, other.text
    assert other.json()["intent_id"] != first.json()["intent_id"]


def test_list_filters_by_status_and_limit(api: httpx.Client) -> None:
    target = unique("listing")
    ids = [create(api, target)["intent_id"] for _ in range(3)]
    r = api.post(f"/v1/intents/{ids[0]}/resolve", json={"status": "COMPLETED", "result": {"n": 1}})
    assert r.status_code == 200, r.text

    completed = api.get("/v1/intents", params={"status": "COMPLETED", "limit": 500}).json()["intents"]
    assert completed and {i["status"] for i in completed} == {"COMPLETED"}
    assert ids[0] in {i["intent_id"] for i in completed}

    submitted = api.get("/v1/intents", params={"status": "SUBMITTED", "limit": 500}).json()["intents"]
    assert {i["status"] for i in submitted} == {"SUBMITTED"}
    assert set(ids[1:]) <= {i["intent_id"] for i in submitted}
    assert ids[0] not in {i["intent_id"] for i in submitted}

    both = api.get("/v1/intents", params={"status": "SUBMITTED,COMPLETED", "limit": 500}).json()["intents"]
    assert set(ids) <= {i["intent_id"] for i in both}

    r = api.get("/v1/intents", params={"limit": 2})
    assert r.status_code == 200
    assert len(r.json()["intents"]) == 2


# ---------------------------------------------------------------------------------------------
# resume (the agent answering)


def test_agent_completes_its_intent(quiet: RuntimeProcess, api: httpx.Client) -> None:
    address, bot = with_agent(quiet, api, "done")
    intent_id = create(api, address, max_delivery_attempts=100)["intent_id"]
    r = bot.post(f"/v1/intents/{intent_id}/resume", json={"action": "complete", "reserved": True, "qty": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True and body["applied"] is True
    assert body["intent"]["status"] == "COMPLETED"
    intent = get(api, intent_id)
    assert intent["status"] == intent["lifecycle_status"] == "COMPLETED"
    assert intent["result"] == {"reserved": True, "qty": 2}
    last = events_of(api, intent_id)[-1]
    assert (last["event_type"], last["status"], last["actor"]) == ("intent.completed", "COMPLETED", address)

    # a duplicate delivery answered twice is harmless
    dup = bot.post(f"/v1/intents/{intent_id}/resume", json={"action": "complete", "reserved": True, "qty": 2})
    assert dup.status_code == 200, dup.text
    assert dup.json()["applied"] is False
    assert dup.json()["intent"]["status"] == "COMPLETED"
    assert len(events_of(api, intent_id)) == 3

    # but changing the outcome of a finished intent is a conflict
    assert_error(bot.post(f"/v1/intents/{intent_id}/resume", json={"action": "fail", "reason": "late"}), 409)
    assert get(api, intent_id)["status"] == "COMPLETED"


def test_agent_fails_its_intent(quiet: RuntimeProcess, api: httpx.Client) -> None:
    address, bot = with_agent(quiet, api, "fails")
    intent_id = create(api, address, max_delivery_attempts=100)["intent_id"]
    error = {"code": "out_of_stock", "message": "no laptops"}
    r = bot.post(f"/v1/intents/{intent_id}/resume", json={"action": "fail", "error": error})
    assert r.status_code == 200, r.text
    assert r.json()["applied"] is True
    intent = get(api, intent_id)
    assert intent["status"] == "FAILED"
    assert intent["error"] == error
    assert events_of(api, intent_id)[-1]["event_type"] == "intent.failed"
    dup = bot.post(f"/v1/intents/{intent_id}/resume", json={"action": "fail", "error": error})
    assert dup.status_code == 200, dup.text
    assert dup.json()["applied"] is False
    assert_error(bot.post(f"/v1/intents/{intent_id}/resume", json={"action": "complete"}), 409)
    assert get(api, intent_id)["error"] == error


def test_agent_reports_progress_then_completes(quiet: RuntimeProcess, api: httpx.Client) -> None:
    address, bot = with_agent(quiet, api, "progress")
    intent_id = create(api, address, max_delivery_attempts=100)["intent_id"]
    r = bot.post(f"/v1/intents/{intent_id}/resume", json={"action": "in_progress"})
    assert r.status_code == 200, r.text
    assert get(api, intent_id)["status"] == "IN_PROGRESS"
    r = bot.post(f"/v1/intents/{intent_id}/resume", json={"action": "complete", "shipped": True})
    assert r.status_code == 200, r.text
    assert [e["event_type"] for e in events_of(api, intent_id)] == [
        "intent.created",
        "intent.submitted",
        "intent.in_progress",
        "intent.completed",
    ]
    assert get(api, intent_id)["result"] == {"shipped": True}


@pytest.mark.parametrize("body", [{}, {"reason": "nothing to do"}, {"action": "explode"}, {"action": 3}])
def test_resume_without_a_known_action_is_422(quiet: RuntimeProcess, api: httpx.Client, body: dict[str, Any]) -> None:
    address, bot = with_agent(quiet, api, "noaction")
    intent_id = create(api, address, max_delivery_attempts=100)["intent_id"]
    assert_error(bot.post(f"/v1/intents/{intent_id}/resume", json=body), 422, names="action")
    assert get(api, intent_id)["status"] == "SUBMITTED"


def test_owner_agent_query_and_header_must_agree(quiet: RuntimeProcess, api: httpx.Client) -> None:
    address, bot = with_agent(quiet, api, "owner")
    intent_id = create(api, address, max_delivery_attempts=100)["intent_id"]
    path = f"/v1/intents/{intent_id}/resume"
    r = bot.post(
        path,
        params={"owner_agent": address},
        headers={"x-owner-agent": "agent://local/dev/someone-else"},
        json={"action": "complete"},
    )
    assert_error(r, 400)
    r = api.post(
        f"/v1/intents/{intent_id}/resolve",
        params={"owner_agent": address},
        headers={"x-owner-agent": "agent://local/dev/someone-else"},
        json={"status": "CANCELED", "reason": "x"},
    )
    assert_error(r, 400)
    assert get(api, intent_id)["status"] == "SUBMITTED"
    # agreeing values are fine
    r = bot.post(path, params={"owner_agent": address}, headers={"x-owner-agent": address}, json={"action": "complete"})
    assert r.status_code == 200, r.text


# ---------------------------------------------------------------------------------------------
# resolve


@pytest.mark.parametrize(
    ("request_body", "status", "event_type", "stored"),
    [
        (
            {"status": "COMPLETED", "result": {"approved": True}},
            "COMPLETED",
            "intent.completed",
            ("result", {"approved": True}),
        ),
        ({"status": "FAILED", "error": {"code": "denied"}}, "FAILED", "intent.failed", ("error", {"code": "denied"})),
        ({"status": "CANCELED", "reason": "customer withdrew"}, "CANCELED", "intent.canceled", None),
    ],
)
def test_resolve_to_each_terminal_status(
    api: httpx.Client, request_body: dict[str, Any], status: str, event_type: str, stored: tuple[str, Any] | None
) -> None:
    intent_id = create(api, unique("resolve"))["intent_id"]
    r = api.post(f"/v1/intents/{intent_id}/resolve", json=request_body)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True
    assert body["intent"]["status"] == status
    assert body["event"]["event_type"] == event_type
    assert body["event"]["status"] == status
    assert body["event"]["seq"] == 3
    assert body["completion_delivery"]["delivered"] is False
    intent = get(api, intent_id)
    assert intent["status"] == status
    if stored is not None:
        assert intent[stored[0]] == stored[1]
    assert events_of(api, intent_id)[-1] == body["event"]

    again = api.post(f"/v1/intents/{intent_id}/resolve", json={"status": "CANCELED", "reason": "again"})
    assert_error(again, 409)
    assert get(api, intent_id)["status"] == status
    assert len(events_of(api, intent_id)) == 3


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"status": "FAILED"}, "error"),
        ({"status": "FAILED", "actor": "ops"}, "error"),
        ({"status": "DONE", "result": {}}, "status"),
        ({"status": "TIMED_OUT"}, "status"),
        ({}, "status"),
    ],
)
@pytest.mark.backends("sqlite")  # refused before any handler reads the store
def test_invalid_resolve_is_422(api: httpx.Client, body: dict[str, Any], names: str) -> None:
    intent_id = create(api, unique("badresolve"))["intent_id"]
    assert_error(api.post(f"/v1/intents/{intent_id}/resolve", json=body), 422, names=names)
    assert get(api, intent_id)["status"] == "SUBMITTED"


# ---------------------------------------------------------------------------------------------
# bulk cancel (its own runtime: it touches every active intent)


def test_bulk_cancel_dry_run_then_real(backend: str, tmp_path) -> None:
    rt = RuntimeThread(tmp_path, extra_args=["--redelivery-seconds", "600"], backend=backend).start()
    try:
        with rt.client() as api:
            active = [create(api, "cleanup")["intent_id"] for _ in range(2)]
            finished = create(api, "cleanup")["intent_id"]
            done = api.post(f"/v1/intents/{finished}/resolve", json={"status": "COMPLETED", "result": {}})
            assert done.status_code == 200, done.text

            # dry run by default, and by default only intents older than a day
            r = api.post("/v1/intents/bulk-cancel", json={})
            assert r.status_code == 200, r.text
            assert r.json()["would_cancel"] == 0
            assert r.json()["intent_ids"] == []

            r = api.post("/v1/intents/bulk-cancel", json={"older_than_hours": 0})
            assert r.status_code == 200, r.text
            assert r.json()["would_cancel"] == 2
            assert sorted(r.json()["intent_ids"]) == sorted(active)
            assert {get(api, i)["status"] for i in active} == {"SUBMITTED"}

            _, token = make_agent(api, "janitor")
            with rt.client(token) as bot:
                assert_error(bot.post("/v1/intents/bulk-cancel", json={"older_than_hours": 0, "dry_run": False}), 403)
            assert {get(api, i)["status"] for i in active} == {"SUBMITTED"}

            r = api.post("/v1/intents/bulk-cancel", json={"older_than_hours": 0, "dry_run": False, "reason": "cleanup"})
            assert r.status_code == 200, r.text
            assert r.json()["canceled"] == 2
            for intent_id in active:
                assert get(api, intent_id)["status"] == "CANCELED"
                assert events_of(api, intent_id)[-1]["event_type"] == "intent.canceled"
            assert get(api, finished)["status"] == "COMPLETED"

            r = api.post("/v1/intents/bulk-cancel", json={"older_than_hours": 0})
            assert r.json()["would_cancel"] == 0
    finally:
        rt.stop()

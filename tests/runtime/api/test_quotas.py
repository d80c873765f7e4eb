"""/v1/quotas against the real runtime, on both backends: the policy (defaults, changes, who may, bad input), and
every dimension held where the work comes in: intents a day (429 with Retry-After until midnight; a workflow counts
once, its steps not at all), requests a minute (the quota routes stay open), the payload size (413), stored bytes
and service accounts and people (409), SSE streams open at once (429); a refusal counted in usage and in
/metrics; overage modes that let calls through and count them; a limit below what is used, taken for new work only.
On PostgreSQL two replicas on one database share every count, and a change made on one holds on the other.

Windows are moved with the runtime's test clock (each test starts on a new UTC day), never waited for."""

from __future__ import annotations

import concurrent.futures
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from axme_cli.protocol.quotas import ALIASES, DIMENSIONS
from axme_cli.runtime.clock import ManualClock
from tests.auth_helpers import read_code
from tests.conftest import NO_LOGIN_LIMITS, make_agent, new_intent, unique
from tests.receiver import poll
from tests.runtime.api.test_intents import assert_error
from tests.runtime.api.test_metrics import scrape, value
from tests.runtime_proc import TLS
from tests.runtime_thread import RuntimeThread

STORAGE_FREE = pytest.mark.backends("sqlite")  # refused before anything is read or written
NO_LIMITS = {"dimensions": {d: None for d in DIMENSIONS}, "overage_mode": "block", "hard_enforcement": True}


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.fixture(scope="module")
def limited(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeThread]:
    """A runtime of this module (the quotas of a workspace would refuse other tests' calls), on a test clock."""
    rt = RuntimeThread(tmp_path_factory.mktemp("quotas"), backend=backend, clock=ManualClock(at("2026-06-01T10:00Z")),
                       extra_args=["--redelivery-seconds", "600", *NO_LOGIN_LIMITS])
    rt.start()
    yield rt
    rt.stop()


def clock_of(rt: RuntimeThread) -> ManualClock:
    assert isinstance(rt.clock, ManualClock)
    return rt.clock


def new_day(rt: RuntimeThread) -> float:
    """Move the clock to 10:00 UTC of the next day (the day's counts start at 0); returns that time."""
    clock = clock_of(rt)
    ten = (int(clock.time()) // 86400 + 1) * 86400 + 10 * 3600.0
    clock.set(ten)
    return ten


@pytest.fixture
def admin(limited: RuntimeThread) -> Iterator[httpx.Client]:
    """The workspace key on a new day; no limit is left set after the test."""
    new_day(limited)
    with limited.client() as client:
        yield client
        r = client.patch("/v1/quotas", json=NO_LIMITS)
        assert r.status_code == 200, r.text


def set_limits(client: httpx.Client, **dims: int | None) -> dict[str, Any]:
    r = client.patch("/v1/quotas", json={"dimensions": dims, "overage_mode": "block"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True and "new work only" in body["applies_to"]
    for name, limit in dims.items():
        assert body["quota_policy"]["dimensions"][ALIASES.get(name, name)] == limit
    return dict(body)


def usage_now(client: httpx.Client) -> dict[str, Any]:
    r = client.get("/v1/usage/summary")
    assert r.status_code == 200, r.text
    return dict(r.json()["summary"]["dimensions"])


def refusals(client: httpx.Client, dimension: str) -> float:
    samples, _ = scrape(client)
    return value(samples, "axme_quota_refusals_total", dimension=dimension)


def quota_error(r: httpx.Response, status: int, dimension: str) -> dict[str, Any]:
    details = assert_error(r, status, code="quota_exceeded", names=dimension)["error"]["details"]
    assert details["dimension"] == dimension
    assert {"used", "limit", "reset_at"} <= set(details)
    return dict(details)


def bundle(agent: str, payload: dict[str, Any] | None = None, *, create: bool = False) -> dict[str, Any]:
    return {"scenario_id": "quota.check", "agents": [{"role": "worker", "address": agent, "create_if_missing": create}],
            "intent": {"type": "order.reserve.v1", "payload": payload or {}}}


# ---------------------------------------------------------------------------------------------
# the policy


def test_no_limits_until_someone_sets_them(admin: httpx.Client) -> None:
    r = admin.get("/v1/quotas", params={"org_id": "local", "workspace_id": "dev"})
    assert r.status_code == 200, r.text
    policy = r.json()["quota_policy"]
    assert policy["dimensions"] == {d: None for d in DIMENSIONS}
    assert (policy["tier"], policy["enforced"], policy["overage_mode"], policy["hard_enforcement"]) == (
        "unlimited", False, "block", True)
    assert uuid.UUID(policy["quota_policy_id"]) and (policy["org_id"], policy["workspace_id"]) == ("local", "dev")
    changed = set_limits(admin, intents_per_day=500, requests_per_minute=120)  # axp-spec's name, taken as ours
    policy = changed["quota_policy"]
    assert policy["dimensions"]["rate_limit_per_minute"] == 120 and policy["source"] == "policy"
    assert policy["tier"] == "custom" and policy["enforced"] is True
    assert policy["updated_by_actor_id"] == "initiator://local/dev/admin"
    again = admin.get("/v1/quotas").json()["quota_policy"]
    assert again == policy  # one id for the workspace's policy, before and after the first change
    kept = set_limits(admin, sse_streams_max=10)["quota_policy"]["dimensions"]  # the others are kept
    assert (kept["intents_per_day"], kept["rate_limit_per_minute"], kept["sse_streams_max"]) == (500, 120, 10)
    audit = admin.get("/v1/audit/events", params={"action_prefix": "quota."}).json()["events"]
    assert audit[0]["action"] == "quota.updated" and audit[0]["details"]["dimensions"] == {"sse_streams_max": 10}


def test_who_may_read_and_change_quotas(limited: RuntimeThread, admin: httpx.Client) -> None:
    _, token = make_agent(admin, unique("quota-agent"))
    with limited.client(token) as agent:
        for r in (agent.get("/v1/quotas"), agent.patch("/v1/quotas", json={"dimensions": {"intents_per_day": 1}}),
                  agent.get("/v1/portal/enterprise/overview")):
            assert_error(r, 403, code="policy_denied")
    person = f"{unique('ops')}@example.com"
    sent = admin.post("/v1/auth/login-intent", json={"email": person}).json()
    tokens = admin.post(f"/v1/auth/login-intent/{sent['intent_id']}/verify",
                        json={"code": read_code(limited.mail_dir, person)}).json()
    as_person = {"authorization": f"Bearer {tokens['access_token']}"}
    with httpx.Client(verify=TLS, base_url=limited.url, headers=as_person, timeout=30) as people:
        assert people.get("/v1/quotas").status_code == 200  # people of the workspace read it
        assert_error(people.patch("/v1/quotas", json={"dimensions": {"intents_per_day": 1}}), 403,
                     code="policy_denied")
    for r in (admin.get("/v1/quotas", params={"org_id": "acme"}),
              admin.patch("/v1/quotas", json={"workspace_id": "production", "dimensions": {"intents_per_day": 1}})):
        assert_error(r, 404)  # another organisation's or workspace's: not found, not forbidden
    assert admin.get("/v1/quotas").json()["quota_policy"]["dimensions"]["intents_per_day"] is None


BAD_CHANGES = [
    ({"dimensions": {"inbox_writes_per_day": 10}}, "dimensions.inbox_writes_per_day"),
    ({"dimensions": {"intents_per_day": -1}}, "dimensions.intents_per_day"),
    ({"dimensions": {"intents_per_day": 2**60}}, "dimensions.intents_per_day"),
    ({"dimensions": {"sse_streams_max": False}}, "dimensions.sse_streams_max"),
    ({"dimensions": {"payload_max_bytes": "1kb"}}, "dimensions.payload_max_bytes"),
    ({"dimensions": {}, "overage_mode": "refuse"}, "overage_mode"),
    ({"dimensions": {}, "soft_threshold_percent": 0}, "soft_threshold_percent"),
    ({"overage_mode": "block"}, "dimensions"),
    ({"dimensions": {}, "tier": "business"}, "tier"),
]


@STORAGE_FREE
def test_bad_quota_changes_are_422_naming_the_field(limited: RuntimeThread) -> None:
    with limited.client() as client:
        for body, field in BAD_CHANGES:
            assert_error(client.patch("/v1/quotas", json=body), 422, names=field)
        assert client.get("/v1/quotas").json()["quota_policy"]["dimensions"] == {d: None for d in DIMENSIONS}


# ---------------------------------------------------------------------------------------------
# each dimension, held


def test_intents_per_day_counts_what_callers_create_and_refuses_until_midnight(limited: RuntimeThread,
                                                                             admin: httpx.Client) -> None:
    before = refusals(admin, "intents_per_day")
    set_limits(admin, intents_per_day=3)
    assert admin.post("/v1/intents", json=new_intent(unique("worker"))).status_code == 200
    applied = admin.post("/v1/scenarios/apply", json=bundle(unique("worker")))  # a workflow: one, its step none
    assert applied.status_code == 200, applied.text
    task = new_intent("agent://agent_core", human_task={"title": "Approve", "task_type": "approval"})
    assert admin.post("/v1/intents", json=task).status_code == 200
    refused = admin.post("/v1/intents", json=new_intent(unique("worker")))
    details = quota_error(refused, 429, "intents_per_day")
    midnight = (int(clock_of(limited).time()) // 86400 + 1) * 86400
    reset_at = datetime.fromtimestamp(midnight, UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    assert (details["used"], details["limit"], details["reset_at"]) == (3, 3, reset_at)
    assert refused.headers["retry-after"] == str(14 * 3600)  # 10:00 to midnight
    quota_error(admin.post("/v1/scenarios/apply", json=bundle(unique("worker"))), 429, "intents_per_day")
    used = usage_now(admin)["intents_per_day"]
    assert (used["used"], used["limit"], used["remaining"], used["refused"]) == (3, 3, 0, 2)
    counters = admin.get("/v1/usage/summary").json()["summary"]["counters"]
    assert counters["intents_created"] == 4  # the workflow's step is an intent too, not counted against the quota
    assert refusals(admin, "intents_per_day") - before == 2
    new_day(limited)
    assert admin.post("/v1/intents", json=new_intent(unique("worker"))).status_code == 200


def test_overage_modes_let_calls_through_and_count_them(admin: httpx.Client) -> None:
    admin.patch("/v1/quotas", json={"dimensions": {"intents_per_day": 1}, "overage_mode": "grace"})
    for _ in range(3):
        assert admin.post("/v1/intents", json=new_intent(unique("worker"))).status_code == 200
    assert admin.patch("/v1/quotas", json={"dimensions": {}, "overage_mode": "block",
                                           "hard_enforcement": False}).json()["quota_policy"]["enforced"] is False
    assert admin.post("/v1/intents", json=new_intent(unique("worker"))).status_code == 200
    used = usage_now(admin)["intents_per_day"]
    assert (used["used"], used["overage"], used["refused"], used["remaining"]) == (4, 3, 0, -3)


def test_a_payload_past_payload_max_bytes_is_413(admin: httpx.Client) -> None:
    set_limits(admin, payload_max_bytes=100)
    fits = {"pad": "x" * 90}  # {"pad":"..."}: 100 bytes of JSON
    assert admin.post("/v1/intents", json=new_intent(unique("worker"), payload=fits)).status_code == 200
    details = quota_error(admin.post("/v1/intents", json=new_intent(unique("worker"), payload={"pad": "é" * 46})),
                          413, "payload_max_bytes")
    assert (details["used"], details["limit"]) == (102, 100)  # bytes, not characters
    quota_error(admin.post("/v1/scenarios/apply", json=bundle(unique("worker"), {"pad": "x" * 200})), 413,
                "payload_max_bytes")
    assert usage_now(admin)["payload_max_bytes"]["used"] == 100  # the largest payload taken today


def test_storage_bytes_holds_for_intents_and_uploads(admin: httpx.Client) -> None:
    stored = usage_now(admin)["storage_bytes"]["used"]
    set_limits(admin, storage_bytes=stored + 150)
    assert admin.post("/v1/intents", json=new_intent(unique("worker"), payload={"pad": "x" * 90})).status_code == 200
    assert usage_now(admin)["storage_bytes"]["used"] == stored + 100
    details = quota_error(admin.post("/v1/intents", json=new_intent(unique("worker"), payload={"pad": "x" * 90})),
                         409, "storage_bytes")
    assert (details["used"], details["limit"]) == (stored + 100, stored + 150)
    upload = {"filename": "big.pdf", "mime_type": "application/pdf", "size_bytes": 51}
    quota_error(admin.post("/v1/media/create-upload", json=upload), 409, "storage_bytes")
    assert admin.post("/v1/media/create-upload", json={**upload, "size_bytes": 50}).status_code == 200


def test_one_service_account_too_many_is_409_and_a_limit_below_usage_is_kept(admin: httpx.Client) -> None:
    have = usage_now(admin)["service_accounts_per_workspace"]["used"]
    set_limits(admin, service_accounts_per_workspace=have + 1)
    last = admin.post("/v1/service-accounts", json={"name": unique("sa")})
    assert last.status_code == 200, last.text
    details = quota_error(admin.post("/v1/service-accounts", json={"name": unique("sa")}), 409,
                          "service_accounts_per_workspace")
    assert (details["used"], details["limit"]) == (have + 1, have + 1)
    missing = unique("provisioned")
    quota_error(admin.post("/v1/scenarios/apply", json=bundle(missing, create=True)), 409,
                "service_accounts_per_workspace")
    assert admin.get(f"/v1/agents/{missing}").status_code == 404  # the apply made nothing
    lowered = set_limits(admin, service_accounts_per_workspace=have)  # below what exists: taken, for new ones
    assert lowered["below_current_usage"] == [{"dimension": "service_accounts_per_workspace", "used": have + 1,
                                               "limit": have}]
    sa_id = last.json()["service_account"]["service_account_id"]
    assert admin.get(f"/v1/service-accounts/{sa_id}").status_code == 200  # nothing that exists is removed
    assert admin.delete(f"/v1/service-accounts/{sa_id}").status_code == 200
    quota_error(admin.post("/v1/service-accounts", json={"name": unique("sa")}), 409,
                "service_accounts_per_workspace")  # back at the limit, not under it
    set_limits(admin, service_accounts_per_workspace=have + 1)
    assert admin.post("/v1/service-accounts", json={"name": unique("sa")}).status_code == 200


def test_a_new_person_past_actors_total_is_409_and_may_log_in_once_it_is_raised(limited: RuntimeThread,
                                                                                admin: httpx.Client) -> None:
    people = usage_now(admin)["actors_total"]["used"]
    set_limits(admin, actors_total=people)
    person = f"{unique('newcomer')}@example.com"
    sent = admin.post("/v1/auth/login-intent", json={"email": person}).json()
    code = read_code(limited.mail_dir, person)
    verify = f"/v1/auth/login-intent/{sent['intent_id']}/verify"
    quota_error(admin.post(verify, json={"code": code}), 409, "actors_total")
    set_limits(admin, actors_total=people + 1)
    assert admin.post(verify, json={"code": code}).status_code == 200  # the refusal used nothing up


def test_requests_per_minute_refuse_every_key_but_not_the_quota_routes(limited: RuntimeThread,
                                                                     admin: httpx.Client) -> None:
    _, token = make_agent(admin, unique("busy"))
    clock_of(limited).advance(60)  # a new minute: the make_agent calls are the last one's
    set_limits(admin, rate_limit_per_minute=4)  # this PATCH counts (1)
    with limited.client(token) as agent:
        answers = [c.get("/v1/intents", params={"limit": 1}).status_code for c in (admin, agent, admin, agent)]
        assert answers == [200, 200, 200, 429]
        refused = agent.get("/v1/agents")
        details = quota_error(refused, 429, "rate_limit_per_minute")
        assert (details["used"], details["limit"]) == (4, 4)
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert admin.get("/v1/quotas").status_code == 200  # the operator still sees and changes quotas
        assert admin.get("/v1/portal/enterprise/overview").status_code == 200
        assert admin.get("/metrics").status_code == 200  # nor is monitoring
        clock_of(limited).advance(60)
        assert agent.get("/v1/agents").status_code == 200
    assert usage_now(admin)["rate_limit_per_minute"]["refused"] == 2


def test_sse_streams_past_the_limit_are_429_until_one_closes(limited: RuntimeThread, admin: httpx.Client) -> None:
    address, token = make_agent(admin, unique("listener"))
    intent_id = admin.post("/v1/intents", json=new_intent(unique("worker"))).json()["intent_id"]
    set_limits(admin, sse_streams_max=1)
    events = f"/v1/intents/{intent_id}/events/stream"
    with limited.client(token) as agent, agent.stream(
            "GET", f"/v1/agents/{address}/intents/stream", params={"wait_seconds": 30, "incremental": "true"}) as held:
        assert held.status_code == 200
        refused = admin.get(events, params={"wait_seconds": 1})
        details = quota_error(refused, 429, "sse_streams_max")
        assert (details["used"], details["limit"], refused.headers["retry-after"]) == (1, 1, "5")
        assert usage_now(admin)["sse_streams_max"]["used"] == 1
    # the held stream is closed: the runtime hears the disconnect and a stream opens again
    assert poll(lambda: admin.get(events, params={"wait_seconds": 1}).status_code, lambda s: s == 200) == 200


# ---------------------------------------------------------------------------------------------
# the runtime's defaults


@pytest.mark.backends("sqlite")
def test_server_defaults_hold_until_a_policy_changes_them(tmp_path: Path) -> None:
    rt = RuntimeThread(tmp_path, clock=ManualClock(at("2026-06-01T10:00Z")),
                       settings={"quota_defaults": (("intents_per_day", 1),)}).start()
    try:
        with rt.client() as client:
            policy = client.get("/v1/quotas").json()["quota_policy"]
            assert (policy["dimensions"]["intents_per_day"], policy["source"]) == (1, "defaults")
            assert client.post("/v1/intents", json=new_intent()).status_code == 200
            quota_error(client.post("/v1/intents", json=new_intent()), 429, "intents_per_day")
            assert set_limits(client, intents_per_day=None)["quota_policy"]["source"] == "policy"
            assert client.post("/v1/intents", json=new_intent()).status_code == 200
    finally:
        rt.stop()


# ---------------------------------------------------------------------------------------------
# replicas


@pytest.mark.backends("postgres")
def test_two_replicas_share_every_count_and_every_change(limited: RuntimeThread, admin: httpx.Client,
                                                        tmp_path: Path) -> None:
    other = RuntimeThread(tmp_path, backend="postgres", database_url=limited.database_url, clock=limited.clock,
                          extra_args=["--redelivery-seconds", "600"]).start()
    try:
        with other.client() as b:
            intent_id = admin.post("/v1/intents", json=new_intent(unique("worker"))).json()["intent_id"]
            events = f"/v1/intents/{intent_id}/events/stream"
            # a change made on one replica holds on the other as soon as it hears of it
            set_limits(admin, sse_streams_max=0)
            poll(lambda: b.get(events, params={"wait_seconds": 1}).status_code, lambda s: s == 429, timeout=5)
            set_limits(admin, sse_streams_max=1, intents_per_day=4)
            poll(lambda: b.get(events, params={"wait_seconds": 1}).status_code, lambda s: s == 200, timeout=5)

            with concurrent.futures.ThreadPoolExecutor(4) as pool:  # ten creates at once on both: three pass
                codes = list(pool.map(lambda i: (admin, b)[i % 2].post(
                    "/v1/intents", json=new_intent(f"replicated-{i}")).status_code, range(10)))
            assert sorted(codes) == [200] * 3 + [429] * 7  # with the one created before the limit, four today
            admin.get("/v1/usage/summary")  # the first replica adds what it counted (its refusals) ...
            totals = b.get("/v1/usage/summary").json()["summary"]["dimensions"]  # ... the second reads them all
            assert (totals["intents_per_day"]["used"], totals["intents_per_day"]["refused"]) == (4, 7)

            address, token = make_agent(admin, unique("listener"))
            with limited.client(token) as agent, agent.stream(
                    "GET", f"/v1/agents/{address}/intents/stream",
                    params={"wait_seconds": 30, "incremental": "true"}) as held:
                assert held.status_code == 200  # one stream open on the first replica ...
                quota_error(b.get(events, params={"wait_seconds": 1}), 429, "sse_streams_max")  # ... counts here
            poll(lambda: b.get(events, params={"wait_seconds": 1}).status_code, lambda s: s == 200, timeout=5)

            clock_of(limited).advance(60)
            set_limits(admin, rate_limit_per_minute=5)  # counts (1)
            answers = [c.get("/v1/agents").status_code for c in (admin, b, admin, b, admin, b)]
            assert answers == [200] * 4 + [429] * 2
    finally:
        other.stop()

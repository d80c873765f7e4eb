"""/v1/access-requests and the portal's queue over a real runtime: an approved join_organization lets a person log
in whom --allow-email does not name; quota_upgrade and send_permission grants are recorded where the rest of the
runtime reads them; types this runtime cannot grant are refused naming request_type and what it takes; the review's
state machine, expiry on the runtime's clock, and who may ask, review and see."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from axme_cli.runtime.engine import access_requests as engine
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store import open_store
from tests.auth_helpers import bearer, login
from tests.conftest import make_agent, unique
from tests.runtime_proc import RuntimeProcess, new_database
from tests.runtime_thread import RuntimeThread

STAFF = "lead@corp.example"


@pytest.fixture(scope="module")
def rt(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    """Only STAFF may log in by email (until a join request lets someone else in); the clock stands still."""
    proc = RuntimeThread(tmp_path_factory.mktemp("access"), extra_args=[
        "--redelivery-seconds", "600", "--allow-email", STAFF, "--login-rate-limit", "0", "--test-clock"],
        backend=backend)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def api(rt: RuntimeProcess) -> Iterator[httpx.Client]:
    with rt.client() as client:
        yield client


def ask(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post("/v1/access-requests", json=body)


def review(client: httpx.Client, request_id: str, decision: str, reviewer: str = "ops-admin",
           **extra: Any) -> httpx.Response:
    return client.post(f"/v1/access-requests/{request_id}/review",
                       json={"decision": decision, "reviewer_actor_id": reviewer, **extra})


def grants(api: httpx.Client, request_id: str) -> list[dict[str, Any]]:
    events = api.get("/v1/audit/events", params={"action_prefix": "access_grant", "limit": 200}).json()["events"]
    return [e["details"] for e in events if e["details"].get("access_request_id") == request_id]


def test_an_approved_join_request_lets_the_person_log_in(rt: RuntimeProcess, api: httpx.Client) -> None:
    newcomer = f"{unique('newcomer')}@elsewhere.example"
    r = api.post("/v1/auth/login-intent", json={"email": newcomer})
    assert r.status_code == 403 and r.json()["error"]["code"] == "email_not_allowed", r.text
    staff = login(api, rt.mail_dir, STAFF)
    as_staff = bearer(staff["access_token"])
    r = api.post("/v1/access-requests", headers=as_staff, json={
        "request_type": "join_organization", "requester_actor_id": newcomer.upper(), "org_id": "local",
        "workspace_id": "dev", "justification": "joins the ops rota", "company_name": "Corp"})
    assert r.status_code == 200, r.text
    asked = r.json()["access_request"]
    uuid.UUID(asked["access_request_id"])
    assert (asked["state"], asked["requester_actor_id"], asked["request_type"], asked["reviewer_actor_id"]) == (
        "pending", newcomer, "join_organization", None)
    assert api.post("/v1/auth/login-intent", json={"email": newcomer}).status_code == 403  # not yet

    parked = review(api, asked["access_request_id"], "waitlist", review_comment="after the audit").json()
    assert parked["access_request"]["state"] == "waitlisted"
    assert api.post("/v1/auth/login-intent", json={"email": newcomer}).status_code == 403
    r = api.post(f"/v1/access-requests/{asked['access_request_id']}/review", headers=as_staff,
                 json={"decision": "approve", "reviewer_actor_id": STAFF, "review_comment": "welcome"})
    assert r.status_code == 200, r.text
    done = r.json()["access_request"]
    assert (done["state"], done["reviewer_actor_id"], done["review_comment"]) == ("approved", STAFF, "welcome")
    assert done["reviewed_at"] and done["updated_at"] == done["reviewed_at"]
    assert grants(api, asked["access_request_id"]) == [{
        "grant_type": "member", "subject": newcomer, "access_request_id": asked["access_request_id"]}]

    person = login(api, rt.mail_dir, newcomer)  # let in now
    who = api.get("/v1/auth/whoami", headers=bearer(person["access_token"])).json()["principal"]
    assert who["email"] == newcomer and who["kind"] == "actor"
    r = review(api, asked["access_request_id"], "reject")
    assert r.status_code == 409 and r.json()["error"]["code"] == "access_request_decided", r.text
    assert api.get(f"/v1/access-requests/{asked['access_request_id']}").json()["access_request"] == done


def test_quota_and_send_requests_record_their_grants(rt: RuntimeProcess, api: httpx.Client) -> None:
    sender, token = make_agent(api, unique("ar-sender"))
    recipient, _ = make_agent(api, unique("ar-recipient"))
    with rt.client(token) as agent:
        r = ask(agent, request_type="send_permission", requester_actor_id=sender, recipient=recipient,
                justification="ships orders")
        assert r.status_code == 200, r.text
        send = r.json()["access_request"]
        assert (send["requester_actor_id"], send["recipient"]) == (sender, recipient)
        r = ask(agent, request_type="quota_upgrade", requester_actor_id=sender, requested_tier="business",
                company_name="Corp", justification="the launch needs more")
        quota = r.json()["access_request"]
        assert quota["requested_tier"] == "business"
        # an agent key asks only for itself, and may not review
        r = ask(agent, request_type="send_permission", requester_actor_id=recipient, recipient=sender)
        assert r.status_code == 403 and r.json()["error"]["code"] == "actor_mismatch", r.text
        r = review(agent, send["access_request_id"], "approve", reviewer=sender)
        assert r.status_code == 403 and r.json()["error"]["code"] == "policy_denied", r.text
    assert review(api, send["access_request_id"], "approve").json()["access_request"]["state"] == "approved"
    assert grants(api, send["access_request_id"]) == [{
        "grant_type": "send", "subject": sender, "grant_target": recipient,
        "access_request_id": send["access_request_id"]}]
    assert review(api, quota["access_request_id"], "approve").json()["access_request"]["state"] == "approved"
    assert grants(api, quota["access_request_id"]) == [{
        "grant_type": "quota_tier", "subject": "local/dev", "value": "business",
        "access_request_id": quota["access_request_id"]}]
    rejected = ask(api, request_type="quota_upgrade", requester_actor_id="ops", requested_tier="corporate")
    request_id = rejected.json()["access_request"]["access_request_id"]
    assert review(api, request_id, "reject").json()["access_request"]["state"] == "rejected"
    assert grants(api, request_id) == []


def test_types_this_runtime_cannot_grant_are_refused(api: httpx.Client) -> None:
    for kind in ("create_organization", "elevated_role"):
        r = ask(api, request_type=kind, requester_actor_id="someone", requested_role="org_admin")
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert (error["code"], error["details"]["field"]) == ("request_type_not_supported", "request_type")
        assert error["details"]["allowed"] == ["join_organization", "quota_upgrade", "send_permission"]


def test_a_request_expires_on_the_runtimes_clock(rt: RuntimeProcess, api: httpx.Client) -> None:
    now = api.get("/health").json()["server_time"]
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600))
    asked = ask(api, request_type="quota_upgrade", requester_actor_id="ops", requested_tier="starter",
                expires_at=expires).json()["access_request"]
    assert asked["state"] == "pending" and asked["expires_at"].startswith(expires[:19])
    rt.advance_clock(3601)
    shown = api.get(f"/v1/access-requests/{asked['access_request_id']}").json()["access_request"]
    assert shown["state"] == "expired"
    listed = api.get("/v1/access-requests", params={"state": "expired"}).json()["access_requests"]
    assert asked["access_request_id"] in {a["access_request_id"] for a in listed}
    r = review(api, asked["access_request_id"], "approve")
    assert r.status_code == 409 and r.json()["error"]["code"] == "access_request_expired", r.text
    r = ask(api, request_type="quota_upgrade", requester_actor_id="ops", requested_tier="starter",
            expires_at="2020-01-01T00:00:00Z")
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "expires_at", r.text


def test_who_sees_what_and_the_portal_queue(rt: RuntimeProcess, api: httpx.Client) -> None:
    mine, token = make_agent(api, unique("ar-mine"))
    other, _ = make_agent(api, unique("ar-other"))
    theirs = ask(api, request_type="send_permission", requester_actor_id=other, recipient=mine).json()[
        "access_request"]
    with rt.client(token) as agent:
        own = ask(agent, request_type="send_permission", requester_actor_id=mine, recipient=other).json()[
            "access_request"]
        assert [a["access_request_id"] for a in agent.get("/v1/access-requests").json()["access_requests"]] == [
            own["access_request_id"]]
        r = agent.get(f"/v1/access-requests/{theirs['access_request_id']}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "access_request_not_found", r.text
        r = agent.get("/v1/portal/enterprise/access-requests", params={"org_id": "local"})
        assert r.status_code == 403, r.text
    queue = api.get("/v1/portal/enterprise/access-requests",
                    params={"org_id": "local", "workspace_id": "dev", "state": "pending"}).json()
    assert (queue["org_id"], queue["workspace_id"]) == ("local", "dev")
    ids = [a["access_request_id"] for a in queue["access_requests"]]
    assert ids.index(own["access_request_id"]) < ids.index(theirs["access_request_id"])  # newest first
    assert {a["state"] for a in queue["access_requests"]} == {"pending"}
    assert queue["counts"]["pending"] == len(ids) and set(queue["counts"]) >= {"approved", "expired", "waitlisted"}
    everything = api.get("/v1/access-requests").json()["access_requests"]
    assert sum(queue["counts"].values()) == len(everything)


def test_an_idempotency_key_asks_and_reviews_once(api: httpx.Client) -> None:
    body = {"request_type": "quota_upgrade", "requester_actor_id": "ops", "requested_tier": "business"}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = api.post("/v1/access-requests", json=body, headers=key).json()["access_request"]
    assert api.post("/v1/access-requests", json=body, headers=key).json()["access_request"] == first
    decision = {"decision": "approve", "reviewer_actor_id": "ops-admin"}
    path = f"/v1/access-requests/{first['access_request_id']}/review"
    approved = api.post(path, json=decision, headers=key).json()["access_request"]
    assert api.post(path, json=decision, headers=key).json()["access_request"] == approved
    assert len(grants(api, first["access_request_id"])) == 1


def test_a_person_reviews_only_as_themselves(rt: RuntimeProcess, api: httpx.Client) -> None:
    staff = login(api, rt.mail_dir, STAFF)
    asked = ask(api, request_type="quota_upgrade", requester_actor_id="ops", requested_tier="starter").json()[
        "access_request"]
    r = api.post(f"/v1/access-requests/{asked['access_request_id']}/review", headers=bearer(staff["access_token"]),
                 json={"decision": "approve", "reviewer_actor_id": "someone-else@corp.example"})
    assert r.status_code == 403 and r.json()["error"]["details"]["field"] == "reviewer_actor_id", r.text


def test_another_workspace_and_unknown_ids_are_not_found(api: httpx.Client) -> None:
    r = ask(api, request_type="quota_upgrade", requester_actor_id="ops", requested_tier="starter",
            org_id="elsewhere")
    assert r.status_code == 404 and r.json()["error"]["details"]["field"] == "org_id", r.text
    for path in ("/v1/access-requests", "/v1/portal/enterprise/access-requests"):
        assert api.get(path, params={"workspace_id": "prod"}).status_code == 404
    unknown = str(uuid.uuid4())
    assert api.get(f"/v1/access-requests/{unknown}").status_code == 404
    assert review(api, unknown, "approve").status_code == 404


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize(("body", "field"), [
    ({"request_type": "become_root", "requester_actor_id": "x"}, "request_type"),
    ({"request_type": "quota_upgrade"}, "requester_actor_id"),
    ({"request_type": "quota_upgrade", "requester_actor_id": "ops"}, "requested_tier"),
    ({"request_type": "quota_upgrade", "requester_actor_id": "ops", "requested_tier": "platinum"}, "requested_tier"),
    ({"request_type": "join_organization", "requester_actor_id": "not an email"}, "requester_actor_id"),
    ({"request_type": "send_permission", "requester_actor_id": "ar-sender"}, "recipient"),
    ({"request_type": "send_permission", "requester_actor_id": "ar-sender", "recipient": "agent://elsewhere/dev/x"},
     "recipient"),
    ({"request_type": "send_permission", "requester_actor_id": "Bad Name", "recipient": "ar-x"},
     "requester_actor_id"),
    ({"request_type": "quota_upgrade", "requester_actor_id": "ops", "requested_tier": "starter",
      "expires_at": "tomorrow"}, "expires_at"),
    ({"request_type": "quota_upgrade", "requester_actor_id": "ops", "requested_tier": "starter", "x": 1}, "x"),
])
def test_bad_input_names_the_field(api: httpx.Client, body: dict[str, Any], field: str) -> None:
    r = api.post("/v1/access-requests", json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert (error["details"].get("field") or error["details"]["errors"][0]["field"]) == field, error


@pytest.mark.backends("sqlite")
def test_bad_reviews_and_list_parameters_name_the_field(api: httpx.Client) -> None:
    asked = ask(api, request_type="quota_upgrade", requester_actor_id="ops", requested_tier="starter").json()[
        "access_request"]
    for body, field in (({"decision": "maybe", "reviewer_actor_id": "x"}, "decision"),
                        ({"decision": "approve"}, "reviewer_actor_id"),
                        ({"decision": "approve", "reviewer_actor_id": ""}, "reviewer_actor_id")):
        r = api.post(f"/v1/access-requests/{asked['access_request_id']}/review", json=body)
        assert r.status_code == 422 and r.json()["error"]["details"]["errors"][0]["field"] == field, r.text
    r = api.get("/v1/access-requests", params={"state": "lost"})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "state", r.text


@pytest.mark.backends("sqlite")
def test_what_the_grants_mean_to_the_rest_of_the_runtime(tmp_path: Path) -> None:
    """engine.access_requests' readers on the real store: the latest quota tier, send pairs, members."""
    async def main() -> None:
        store = open_store(new_database("sqlite", tmp_path))
        await store.open()
        s = Settings()
        admin = Principal("workspace", "k", "initiator://local/dev/admin")

        async def approved(**req: Any) -> None:
            row = await store.write(lambda tx: engine.op_create(tx, s, admin, req, time.time()))
            await store.write(lambda tx: engine.op_review(tx, s, admin, row["access_request_id"],
                                                          {"decision": "approve", "reviewer_actor_id": "k"},
                                                          time.time()))

        assert await engine.quota_tier(store, s) is None
        await approved(request_type="quota_upgrade", requester_actor_id="ops", requested_tier="starter")
        await approved(request_type="quota_upgrade", requester_actor_id="ops", requested_tier="business")
        assert await engine.quota_tier(store, s) == "business"
        await approved(request_type="send_permission", requester_actor_id="a-sender", recipient="b-recipient")
        assert await engine.send_granted(store, s, "agent://local/dev/a-sender", "agent://local/dev/b-recipient")
        assert not await engine.send_granted(store, s, "agent://local/dev/b-recipient", "agent://local/dev/a-sender")
        await approved(request_type="join_organization", requester_actor_id="Kim@Example.com")
        assert await engine.may_log_in(store, "kim@example.com")
        assert not await engine.may_log_in(store, "lee@example.com")
        await store.close()

    asyncio.run(main())

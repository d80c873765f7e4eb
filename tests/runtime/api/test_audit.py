"""GET /v1/audit/events over a real runtime: logins (verified and refused), keys, service accounts, an agent's
http binding, resolves and deliveries are recorded as they commit, never with a secret; the admin key sees the
workspace, an agent key and a person only what they did or what is about them; filters and pages; hostile
parameters refused naming the field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.auth_helpers import read_code
from tests.conftest import make_agent, new_intent, unique
from tests.receiver import poll
from tests.runtime_proc import TLS, RuntimeProcess
from tests.runtime_thread import RuntimeThread


@pytest.fixture(scope="module")
def rt(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    work = tmp_path_factory.mktemp("audit")
    proc = RuntimeThread(work, extra_args=["--redelivery-seconds", "600", "--mail-dir", str(work / "mail"),
                                           "--login-rate-limit", "0"], backend=backend)
    proc.start()
    yield proc
    proc.retire()


@pytest.fixture
def api(rt: RuntimeProcess) -> Iterator[httpx.Client]:
    with rt.client() as client:
        yield client


def events(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    r = client.get("/v1/audit/events", params=params)
    assert r.status_code == 200, r.text
    return list(r.json()["events"])


def login(rt: RuntimeProcess, who: str, *, wrong_first: bool = False) -> dict[str, Any]:
    with httpx.Client(verify=TLS, base_url=rt.url, timeout=10) as anon:
        intent_id = anon.post("/v1/auth/login-intent", json={"email": who}).json()["intent_id"]
        code = poll(lambda: _code(rt, who), lambda c: c is not None)
        if wrong_first:
            wrong = "000000" if code != "000000" else "111111"
            assert anon.post(f"/v1/auth/login-intent/{intent_id}/verify", json={"code": wrong}).status_code == 422
        r = anon.post(f"/v1/auth/login-intent/{intent_id}/verify", json={"code": code})
        assert r.status_code == 200, r.text
        return {**r.json(), "code": code, "login_intent": intent_id}


def _code(rt: RuntimeProcess, who: str) -> str | None:
    try:
        return read_code(rt.workdir / "mail", who)
    except AssertionError:
        return None


def test_logins_are_recorded_without_a_secret(rt: RuntimeProcess, api: httpx.Client) -> None:
    who = f"{unique('audited')}@example.com"
    tokens = login(rt, who, wrong_first=True)
    person = tokens["address"]
    mine = events(api, owner_agent=person)
    assert [e["action"] for e in mine] == ["auth.login.verified", "auth.login.refused", "auth.login.requested"]
    verified, refused, requested = mine
    assert refused["details"] == {"reason": "wrong_code", "tries_left": 4}
    assert verified["target_id"] == tokens["session_id"] and verified["actor"] == person
    assert requested["target_id"] == tokens["login_intent"]
    text = json.dumps(mine)
    for secret in (tokens["code"], tokens["access_token"], tokens["refresh_token"]):
        assert secret not in text
    # the person sees their own logins, and nothing about others
    as_person = httpx.Client(verify=TLS, base_url=rt.url, headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert {e["owner_agent"] for e in events(as_person)} == {person}
    r = as_person.get("/v1/audit/events", params={"owner_agent": "agent://local/dev/someone"})
    assert r.status_code == 403 and r.json()["error"]["details"]["field"] == "owner_agent", r.text
    # a session revoked by the admin key is recorded as the admin's act, about the session
    assert api.post("/v1/auth/sessions/revoke", json={"session_id": tokens["session_id"]}).status_code == 200
    [revoked] = events(api, action_prefix="auth.session.revoked", limit=1)
    assert revoked["target_id"] == tokens["session_id"] and revoked["actor"].startswith("initiator://")


def test_keys_service_accounts_bindings_and_resolves_are_recorded(rt: RuntimeProcess, api: httpx.Client) -> None:
    name = unique("audited-agent")
    address, token = make_agent(api, name)
    sa_id = api.get(f"/v1/agents/{name}").json()["agent"]["service_account_id"]
    key = api.post(f"/v1/service-accounts/{sa_id}/keys", json={}).json()["key"]
    api.post(f"/v1/service-accounts/{sa_id}/keys/{key['key_id']}/revoke")
    r = api.patch(f"/v1/service-accounts/{sa_id}/delivery",
                  json={"delivery_mode": "http", "callback_url": "http://127.0.0.1:9/agent"})
    secret = r.json()["delivery_secret"]
    intent_id = api.post("/v1/intents", json=new_intent(name)).json()["intent_id"]
    api.post(f"/v1/intents/{intent_id}/resolve", json={"status": "CANCELED", "reason": "not needed"})
    about = events(api, owner_agent=address)
    actions = [e["action"] for e in reversed(about)]
    assert actions == ["service_account.key.created", "service_account.key.created", "service_account.key.revoked",
                       "service_account.delivery.updated", "intent.resolved"], actions
    assert about[0]["details"] == {"status": "CANCELED", "reason": "not needed"}
    assert about[0]["target_id"] == intent_id
    assert about[1]["details"]["callback_url"] == "http://127.0.0.1:9/agent"
    text = json.dumps(about)
    assert token not in text and key["token"] not in text and secret not in text
    # the agent's own key sees these (they are about it), not other agents' events, and may not ask for them
    agent = httpx.Client(verify=TLS, base_url=rt.url, headers={"x-api-key": token})
    assert [e["event_id"] for e in events(agent)] == [e["event_id"] for e in about]
    r = agent.get("/v1/audit/events", params={"owner_agent": "someone-else"})
    assert r.status_code == 403, r.text
    api.delete(f"/v1/service-accounts/{sa_id}")
    assert events(api, owner_agent=address, limit=1)[0]["action"] == "service_account.deleted"


def test_action_prefix_and_pages(api: httpx.Client) -> None:
    for _ in range(3):
        make_agent(api, unique("paged"))
    first = events(api, action_prefix="service_account.key", limit=2)
    assert len(first) == 2 and all(e["action"].startswith("service_account.key") for e in first)
    page = api.get("/v1/audit/events", params={"action_prefix": "service_account.key", "limit": 2}).json()
    second = events(api, action_prefix="service_account.key", limit=2, before=page["next_before"])
    assert second and second[0]["event_id"] < first[-1]["event_id"]
    # the prefix is a plain prefix: % and _ are not wildcards
    assert events(api, action_prefix="service_account_") == []


@pytest.mark.parametrize(("params", "field"), [
    ({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"), ({"limit": "x"}, "limit"),
    ({"action_prefix": "auth%"}, "action_prefix"), ({"action_prefix": "a" * 129}, "action_prefix"),
    ({"before": "not-an-id"}, "before"), ({"owner_agent": "has space"}, "owner_agent"),
])
def test_hostile_parameters_are_refused_naming_the_field(api: httpx.Client, params: dict[str, str],
                                                         field: str) -> None:
    r = api.get("/v1/audit/events", params=params)
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == field, r.text


def test_without_a_key_it_is_401(rt: RuntimeProcess) -> None:
    assert httpx.get(f"{rt.url}/v1/audit/events").status_code == 401

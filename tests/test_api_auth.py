"""Keys, scoping of agent keys, service accounts and agents, against the real runtime."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY, new_intent
from tests.runtime_proc import RuntimeProcess
from tests.test_api_intents import assert_error
from tests.test_api_streams import eventually


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_sa(admin: httpx.Client, name: str, **extra: Any) -> dict[str, Any]:
    r = admin.post("/v1/service-accounts", json={"name": name, **extra})
    assert r.status_code == 200, r.text
    return r.json()["service_account"]


def mint_key(admin: httpx.Client, sa_id: str) -> dict[str, Any]:
    r = admin.post(f"/v1/service-accounts/{sa_id}/keys", json={})
    assert r.status_code == 200, r.text
    return r.json()["key"]


class Agent:
    """A service account, one key, and a client that uses it."""

    def __init__(self, runtime: RuntimeProcess, admin: httpx.Client, prefix: str) -> None:
        self.name = unique(prefix)
        self.sa = create_sa(admin, self.name)
        self.sa_id: str = self.sa["service_account_id"]
        self.address: str = self.sa["agent_address"]
        self.key = mint_key(admin, self.sa_id)
        self.token: str = self.key["token"]
        self.client = runtime.client(self.token)


def create(client: httpx.Client, to_agent: str, **extra: Any) -> str:
    r = client.post("/v1/intents", json=new_intent(to_agent, max_delivery_attempts=100, **extra))
    assert r.status_code == 200, r.text
    return r.json()["intent_id"]


# ---------------------------------------------------------------------------------------------
# authentication


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/intents"),
        ("POST", "/v1/intents"),
        ("GET", f"/v1/intents/{uuid.uuid4()}"),
        ("GET", f"/v1/intents/{uuid.uuid4()}/events/stream"),
        ("GET", "/v1/agents/inventory/intents/stream"),
        ("GET", "/v1/service-accounts"),
        ("GET", "/v1/agents"),
    ],
)
def test_no_key_is_401_missing_api_key(runtime: RuntimeProcess, method: str, path: str) -> None:
    with httpx.Client(base_url=runtime.url, timeout=10) as anon:
        r = anon.request(method, path, json=new_intent() if method == "POST" else None)
    assert_error(r, 401, code="missing_api_key")


@pytest.mark.parametrize(
    "key",
    [
        "nope",
        ADMIN_KEY + "x",
        f"axme_sa_{uuid.uuid4()}_{'A' * 43}",
        f"axme_ws_{uuid.uuid4()}_{'A' * 43}",
    ],
)
def test_unknown_key_is_401(runtime: RuntimeProcess, key: str) -> None:
    with runtime.client(key) as client:
        assert_error(client.get("/v1/intents"), 401)
    with httpx.Client(base_url=runtime.url, headers={"authorization": f"Bearer {key}"}, timeout=10) as client:
        assert_error(client.get("/v1/intents"), 401)


def test_bearer_key_works(runtime: RuntimeProcess, admin: httpx.Client) -> None:
    with httpx.Client(base_url=runtime.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10) as c:
        r = c.post("/v1/intents", json=new_intent(unique("bearer")))
        assert r.status_code == 200, r.text
        assert c.get(f"/v1/intents/{r.json()['intent_id']}").status_code == 200
    bot = Agent(runtime, admin, "bearer")
    with httpx.Client(base_url=runtime.url, headers={"Authorization": f"Bearer {bot.token}"}, timeout=10) as c:
        r = c.get("/v1/service-accounts")
        assert r.status_code == 200, r.text
        assert [sa["service_account_id"] for sa in r.json()["service_accounts"]] == [bot.sa_id]


def test_revoked_key_is_401(runtime: RuntimeProcess, admin: httpx.Client) -> None:
    bot = Agent(runtime, admin, "revoked")
    spare = mint_key(admin, bot.sa_id)
    assert bot.client.get("/v1/intents").status_code == 200
    r = admin.post(f"/v1/service-accounts/{bot.sa_id}/keys/{bot.key['key_id']}/revoke")
    assert r.status_code == 200, r.text
    assert r.json()["key"]["status"] == "revoked"
    assert_error(bot.client.get("/v1/intents"), 401)
    # the account's other key still works
    with runtime.client(spare["token"]) as other:
        assert other.get("/v1/intents").status_code == 200


def test_key_of_deleted_service_account_is_401(runtime: RuntimeProcess, admin: httpx.Client) -> None:
    bot = Agent(runtime, admin, "deleted")
    assert bot.client.get("/v1/service-accounts").status_code == 200
    r = admin.delete(f"/v1/service-accounts/{bot.sa_id}")
    assert r.status_code == 200, r.text
    assert_error(bot.client.get("/v1/service-accounts"), 401)
    assert_error(bot.client.post("/v1/intents", json=new_intent("inventory")), 401)


def test_expired_key_is_401(runtime: RuntimeProcess, admin: httpx.Client) -> None:
    bot = Agent(runtime, admin, "expired")
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    r = admin.post(f"/v1/service-accounts/{bot.sa_id}/keys", json={"expires_at": past})
    if r.status_code == 200:  # refusing to mint an already-expired key would be fine too
        with runtime.client(r.json()["key"]["token"]) as client:
            assert_error(client.get("/v1/intents"), 401, code="token_expired")
    else:
        assert_error(r, 422)


def test_key_stops_working_once_it_expires(runtime: RuntimeProcess, admin: httpx.Client) -> None:
    bot = Agent(runtime, admin, "expiring")
    expires = datetime.now(UTC) + timedelta(seconds=1)
    key = admin.post(f"/v1/service-accounts/{bot.sa_id}/keys", json={"expires_at": expires.isoformat()})
    assert key.status_code == 200, key.text
    assert key.json()["key"]["expires_at"] is not None
    with runtime.client(key.json()["key"]["token"]) as client:
        assert client.get("/v1/intents").status_code == 200  # valid (and now in the key cache)
        eventually(lambda: datetime.now(UTC) > expires + timedelta(milliseconds=50), what="the expiry time passes")
        assert_error(client.get("/v1/intents"), 401, code="token_expired")


def test_token_format(runtime: RuntimeProcess, admin: httpx.Client) -> None:
    bot = Agent(runtime, admin, "format")
    assert re.fullmatch(rf"axme_sa_{re.escape(bot.sa_id)}_[A-Za-z0-9_-]{{16,}}", bot.token), bot.token
    assert bot.key["service_account_id"] == bot.sa_id
    assert bot.key["status"] == "active"
    assert bot.token.endswith(bot.key["key_hint"].lstrip("."))
    assert bot.key["key_hint"] != bot.token


def test_token_is_never_shown_again(runtime: RuntimeProcess, admin: httpx.Client) -> None:
    bot = Agent(runtime, admin, "shown")
    secret = bot.token.removeprefix(f"axme_sa_{bot.sa_id}_")  # the whole secret (it may itself contain "_")
    for path in (f"/v1/service-accounts/{bot.sa_id}", "/v1/service-accounts", "/v1/agents"):
        r = admin.get(path)
        assert r.status_code == 200, r.text
        assert secret not in r.text, path
    keys = admin.get(f"/v1/service-accounts/{bot.sa_id}").json()["keys"]
    assert [k["key_id"] for k in keys] == [bot.key["key_id"]]
    assert "token" not in keys[0]
    mine = bot.client.get(f"/v1/service-accounts/{bot.sa_id}")
    assert mine.status_code == 200, mine.text
    assert secret not in mine.text


def test_token_is_not_stored_in_the_database(runtime: RuntimeProcess, admin: httpx.Client) -> None:
    bot = Agent(runtime, admin, "stored")
    secret = bot.token.removeprefix(f"axme_sa_{bot.sa_id}_")  # the whole secret (it may itself contain "_")
    data = runtime.stored_bytes()
    assert bot.key["key_id"].encode() in data  # sanity: we are reading the file the key was written to
    assert bot.token.encode() not in data
    assert secret.encode() not in data
    assert ADMIN_KEY.encode() not in data


# ---------------------------------------------------------------------------------------------
# what an agent key may do


def test_agent_key_sees_only_its_own_intents(runtime: RuntimeProcess, admin: httpx.Client) -> None:
    alice = Agent(runtime, admin, "alice")
    bob = Agent(runtime, admin, "bob")
    to_alice = create(admin, alice.address)
    from_alice = create(alice.client, bob.address)
    to_bob = create(admin, bob.address)

    for intent_id in (to_alice, from_alice):
        assert alice.client.get(f"/v1/intents/{intent_id}").status_code == 200
    for suffix in ("", "/events", "/events/stream"):
        assert_error(alice.client.get(f"/v1/intents/{to_bob}{suffix}"), 404)

    listed = {i["intent_id"] for i in alice.client.get("/v1/intents", params={"limit": 500}).json()["intents"]}
    assert {to_alice, from_alice} <= listed
    assert to_bob not in listed
    for intent in alice.client.get("/v1/intents", params={"limit": 500}).json()["intents"]:
        assert alice.address in (intent["to_agent"], intent["from_agent"])

    r = alice.client.post(f"/v1/intents/{to_bob}/resume", json={"action": "complete"})
    assert r.status_code in (403, 404), r.text
    assert_error(r, r.status_code)
    r = alice.client.post(f"/v1/intents/{to_bob}/resolve", json={"status": "CANCELED", "reason": "mine now"})
    assert r.status_code in (403, 404), r.text
    # the sender is not the handler: it may read but not resume its own request
    r = alice.client.post(f"/v1/intents/{from_alice}/resume", json={"action": "complete"})
    assert r.status_code in (403, 404), r.text
    assert admin.get(f"/v1/intents/{to_bob}").json()["intent"]["status"] == "SUBMITTED"
    assert admin.get(f"/v1/intents/{from_alice}").json()["intent"]["status"] == "SUBMITTED"


def test_agent_key_cannot_listen_to_another_feed(runtime: RuntimeProcess, admin: httpx.Client) -> None:
    alice = Agent(runtime, admin, "listener")
    bob = Agent(runtime, admin, "private")
    create(admin, bob.address)
    for path in (bob.name, f"local/dev/{bob.name}", bob.address.replace("://", "%3A%2F%2F").replace("/", "%2F")):
        assert_error(alice.client.get(f"/v1/agents/{path}/intents/stream", params={"wait_seconds": 1}), 403)


def test_agent_key_cannot_manage_accounts(runtime: RuntimeProcess, admin: httpx.Client) -> None:
    bot = Agent(runtime, admin, "manager")
    assert_error(bot.client.post("/v1/service-accounts", json={"name": unique("minion")}), 403)
    assert_error(bot.client.post(f"/v1/service-accounts/{bot.sa_id}/keys", json={}), 403)
    r = bot.client.post(f"/v1/service-accounts/{bot.sa_id}/keys/{bot.key['key_id']}/revoke")
    assert r.status_code in (403, 404), r.text
    r = bot.client.delete(f"/v1/service-accounts/{bot.sa_id}")
    assert r.status_code in (403, 404), r.text
    assert bot.client.get("/v1/intents").status_code == 200  # still alive


def test_agent_key_lists_only_itself(runtime: RuntimeProcess, admin: httpx.Client) -> None:
    bot = Agent(runtime, admin, "solo")
    Agent(runtime, admin, "neighbour")
    r = bot.client.get("/v1/service-accounts")
    assert r.status_code == 200, r.text
    assert [sa["service_account_id"] for sa in r.json()["service_accounts"]] == [bot.sa_id]
    r = bot.client.get("/v1/agents")
    assert r.status_code == 200, r.text
    assert [a["address"] for a in r.json()["agents"]] == [bot.address]


# ---------------------------------------------------------------------------------------------
# service accounts and agents


def test_service_account_lifecycle(runtime: RuntimeProcess, admin: httpx.Client) -> None:
    name = unique("crud")
    sa = create_sa(admin, name, description="does things", display_name="Crud Bot")
    sa_id = sa["service_account_id"]
    assert sa["name"] == name
    assert sa["agent_address"] == f"agent://local/dev/{name}"
    assert sa["status"] == "active"
    assert sa["description"] == "does things"
    assert sa["display_name"] == "Crud Bot"

    assert_error(admin.post("/v1/service-accounts", json={"name": name}), 409)

    listed = admin.get("/v1/service-accounts").json()["service_accounts"]
    assert sa_id in {s["service_account_id"] for s in listed}
    got = admin.get(f"/v1/service-accounts/{sa_id}")
    assert got.status_code == 200, got.text
    assert got.json()["service_account"]["service_account_id"] == sa_id
    assert got.json()["service_account"]["name"] == name

    r = admin.delete(f"/v1/service-accounts/{sa_id}")
    assert r.status_code == 200, r.text
    assert_error(admin.get(f"/v1/service-accounts/{sa_id}"), 404)
    assert_error(admin.delete(f"/v1/service-accounts/{sa_id}"), 404)
    assert_error(admin.post(f"/v1/service-accounts/{sa_id}/keys", json={}), 404)
    listed = admin.get("/v1/service-accounts").json()["service_accounts"]
    assert sa_id not in {s["service_account_id"] for s in listed}
    assert_error(admin.get(f"/v1/agents/{name}"), 404, code="agent_not_found")

    # the name is free again
    again = create_sa(admin, name)
    assert again["service_account_id"] != sa_id


@pytest.mark.parametrize("name", ["Bad Name", "UPPER", "-leading", "trailing-", "a" * 64, "x/y", "", "émile"])
def test_invalid_service_account_name_is_422(admin: httpx.Client, name: str) -> None:
    assert_error(admin.post("/v1/service-accounts", json={"name": name}), 422, names="name")


def test_unknown_service_account_is_404(admin: httpx.Client) -> None:
    assert_error(admin.get(f"/v1/service-accounts/{uuid.uuid4()}"), 404)
    assert_error(admin.delete(f"/v1/service-accounts/{uuid.uuid4()}"), 404)


def test_agents_list_and_get(runtime: RuntimeProcess, admin: httpx.Client) -> None:
    bot = Agent(runtime, admin, "findme")
    agents = admin.get("/v1/agents").json()["agents"]
    assert bot.address in {a["address"] for a in agents}

    raw_forms = [
        f"local/dev/{bot.name}",
        bot.name,
        f"agent%3A%2F%2Flocal%2Fdev%2F{bot.name}",
    ]
    for form in raw_forms:
        r = admin.get(f"/v1/agents/{form}")
        assert r.status_code == 200, f"{form}: {r.text}"
        agent = r.json()["agent"]
        assert agent["address"] == bot.address
        assert agent["service_account_id"] == bot.sa_id
        assert agent["service_account_name"] == bot.name
        assert agent["status"] == "active"
    # the encoded form really went over the wire encoded
    assert b"%3A%2F%2F" in admin.get(f"/v1/agents/{raw_forms[2]}").request.url.raw_path

    assert_error(admin.get(f"/v1/agents/{unique('ghost')}"), 404, code="agent_not_found")
    assert_error(admin.get(f"/v1/agents/local/dev/{unique('ghost')}"), 404, code="agent_not_found")

"""Authentication against the real runtime: keys, scoping of agent keys, service accounts and agents; then
/v1/auth for people (email + code login, refresh rotation, sessions) on runtimes of their own, in-process; expiries
on a test clock, moved past them."""

from __future__ import annotations

import asyncio
import re
import socketserver
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from axme_cli.runtime.clock import ManualClock, iso
from tests.auth_helpers import auth_runtime, bearer, login, read_code
from tests.auth_helpers import mail_dir as mail
from tests.conftest import ADMIN_KEY, make_agent, new_intent, unique
from tests.runtime.api.test_intents import assert_error
from tests.runtime_proc import TLS, RuntimeProcess
from tests.runtime_thread import RuntimeThread


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


@pytest.mark.backends("sqlite")  # refused before any lookup
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
    with httpx.Client(base_url=runtime.url, timeout=10, verify=TLS) as anon:
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
    with httpx.Client(base_url=runtime.url, headers={"authorization": f"Bearer {key}"}, timeout=10,
                      verify=TLS) as client:
        assert_error(client.get("/v1/intents"), 401)


def test_bearer_key_works(runtime: RuntimeProcess, admin: httpx.Client) -> None:
    with httpx.Client(base_url=runtime.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10,
                      verify=TLS) as c:
        r = c.post("/v1/intents", json=new_intent(unique("bearer")))
        assert r.status_code == 200, r.text
        assert c.get(f"/v1/intents/{r.json()['intent_id']}").status_code == 200
    bot = Agent(runtime, admin, "bearer")
    with httpx.Client(base_url=runtime.url, headers={"Authorization": f"Bearer {bot.token}"}, timeout=10,
                      verify=TLS) as c:
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


def test_key_stops_working_once_it_expires(short: RuntimeThread) -> None:
    with short.client() as admin:
        bot = Agent(short, admin, "expiring")
        key = admin.post(f"/v1/service-accounts/{bot.sa_id}/keys", json={"expires_at": iso(short.clock.time() + 60)})
    assert key.status_code == 200, key.text
    assert key.json()["key"]["expires_at"] is not None
    with short.client(key.json()["key"]["token"]) as client:
        assert client.get("/v1/intents").status_code == 200  # valid (and now in the key cache)
        short.advance_clock(60)  # the expiry passes
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


@pytest.mark.backends("sqlite")  # refused by validation, before the store
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


# ---------------------------------------------------------------------------------------------
# people: /v1/auth

SHORT = 2.0  # seconds (of its test clock): login-code and access-token lifetime of the `short` runtime


def thread_runtime(workdir: Path, *extra: str, backend: str, clock: ManualClock | None = None) -> RuntimeThread:
    """``auth_runtime``'s `axme dev` (mails in ``workdir/mail``, no limits on login calls), in-process."""
    return RuntimeThread(workdir, extra_args=["--mail-dir", str(workdir / "mail"), "--login-rate-limit", "0", *extra],
                         backend=backend, clock=clock)


@pytest.fixture(scope="module")
def rt(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeThread]:
    proc = thread_runtime(tmp_path_factory.mktemp("auth"), backend=backend)
    proc.start()
    yield proc
    proc.retire()


@pytest.fixture(scope="module")
def short(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeThread]:
    proc = thread_runtime(tmp_path_factory.mktemp("auth-short"), "--login-code-ttl", str(SHORT),
                          "--access-token-ttl", str(SHORT), "--allow-email", "Short@Example.com",
                          "--allow-email", "short2@example.com", backend=backend, clock=ManualClock())
    proc.start()
    yield proc
    proc.retire()


@pytest.fixture
def anon(rt: RuntimeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=rt.url, timeout=30.0, verify=TLS) as c:
        yield c


def new_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.com"


def error_code(r: httpx.Response) -> str:
    body = r.json()
    assert body["detail"] == body["error"]["message"]
    return str(body["error"]["code"])


# ------------------------------------------------------------------------------------------ login
def test_full_login_flow(rt: RuntimeThread, anon: httpx.Client, capfd: pytest.CaptureFixture[str]) -> None:
    who = new_email()
    r = anon.post("/v1/auth/login-intent", json={"email": who.upper()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True and body["expires_in"] == 300 and body["email"] == who
    assert body["intent_id"] and body["grant_id"]
    [eml] = [p for p in mail(rt).glob("*.eml") if body["intent_id"] in p.name]
    assert eml.stat().st_mode & 0o777 == 0o600
    code = read_code(mail(rt), who)
    assert f"login code for {who}: {code} (expires in 5 min)" in capfd.readouterr().out  # `axme dev` prints it

    r = anon.post(f"/v1/auth/login-intent/{body['intent_id']}/verify", json={"code": code})
    assert r.status_code == 200, r.text
    s = r.json()
    assert s["ok"] is True and s["email"] == who
    assert s["access_token"].startswith("axme_at_") and s["refresh_token"].startswith("axme_rt_")
    assert s["account_session_token"] == s["access_token"]
    assert s["expires_in"] == 900 and s["expires_at"].endswith("Z")
    assert (s["org_id"], s["workspace_id"]) == ("local", "dev")
    assert s["actor_id"] and s["session_id"]

    r = anon.get("/v1/auth/whoami", headers=bearer(s["access_token"]))
    assert r.status_code == 200, r.text
    me = r.json()
    assert me["principal"] == {"kind": "actor", "address": f"actor://local/dev/{who}", "is_admin": False,
                               "actor_id": s["actor_id"], "session_id": s["session_id"], "email": who}
    # the same person logging in again is the same actor, in a new session
    again = login(anon, mail(rt), who)
    assert again["actor_id"] == s["actor_id"] and again["session_id"] != s["session_id"]


def test_wrong_code_is_422_and_five_wrong_tries_kill_the_intent(rt: RuntimeProcess, anon: httpx.Client) -> None:
    who = new_email()
    intent_id = anon.post("/v1/auth/login-intent", json={"email": who}).json()["intent_id"]
    code = read_code(mail(rt), who)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for left in (4, 3, 2, 1, 0):
        r = anon.post(f"/v1/auth/login-intent/{intent_id}/verify", json={"code": wrong})
        assert r.status_code == 422, r.text
        assert error_code(r) == "invalid_login_code" and r.json()["error"]["details"]["tries_left"] == left
    r = anon.post(f"/v1/auth/login-intent/{intent_id}/verify", json={"code": code})
    assert r.status_code == 410 and error_code(r) == "login_code_exhausted"


def test_code_is_single_use(rt: RuntimeProcess, anon: httpx.Client) -> None:
    who = new_email()
    intent_id = anon.post("/v1/auth/login-intent", json={"email": who}).json()["intent_id"]
    code = read_code(mail(rt), who)
    assert anon.post(f"/v1/auth/login-intent/{intent_id}/verify", json={"code": code}).status_code == 200
    r = anon.post(f"/v1/auth/login-intent/{intent_id}/verify", json={"code": code})
    assert r.status_code == 409 and error_code(r) == "login_code_used"


def test_bad_requests(anon: httpx.Client) -> None:
    r = anon.post("/v1/auth/login-intent", json={"email": "not-an-email"})
    assert r.status_code == 422 and error_code(r) == "invalid_email"
    r = anon.post("/v1/auth/login-intent", json={})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "email"
    r = anon.post(f"/v1/auth/login-intent/{uuid.uuid4()}/verify", json={"code": "123456"})
    assert r.status_code == 404 and error_code(r) == "login_intent_not_found"
    r = anon.post(f"/v1/auth/login-intent/{uuid.uuid4()}/verify", json={})
    assert r.status_code == 422
    r = anon.post("/v1/auth/refresh", json={"refresh_token": "axme_rt_nope"})
    assert r.status_code == 401 and error_code(r) == "invalid_refresh_token"
    r = anon.get("/v1/auth/whoami")
    assert r.status_code == 401 and error_code(r) == "missing_api_key"


def test_at_most_five_open_codes_per_email(anon: httpx.Client) -> None:
    who = new_email()
    for _ in range(5):
        assert anon.post("/v1/auth/login-intent", json={"email": who}).status_code == 200
    r = anon.post("/v1/auth/login-intent", json={"email": who})
    assert r.status_code == 429 and error_code(r) == "rate_limit_exceeded"
    assert 1 <= int(r.headers["retry-after"]) <= 301
    assert anon.post("/v1/auth/login-intent", json={"email": new_email()}).status_code == 200  # per email


def test_expired_code_is_410(short: RuntimeThread) -> None:
    with httpx.Client(base_url=short.url, verify=TLS) as c:
        intent_id = c.post("/v1/auth/login-intent", json={"email": "short@example.com"}).json()["intent_id"]
        code = read_code(mail(short), "short@example.com")
        short.advance_clock(SHORT)
        r = c.post(f"/v1/auth/login-intent/{intent_id}/verify", json={"code": code})
        assert r.status_code == 410 and error_code(r) == "login_code_expired"


def test_allow_email_restricts_who_may_log_in(short: RuntimeProcess) -> None:
    with httpx.Client(base_url=short.url, verify=TLS) as c:
        r = c.post("/v1/auth/login-intent", json={"email": "mallory@example.com"})
        assert r.status_code == 403 and error_code(r) == "email_not_allowed"
        assert c.post("/v1/auth/login-intent", json={"email": "SHORT2@example.com"}).status_code == 200
    assert "mallory" not in "".join(p.read_text() for p in mail(short).glob("*.eml"))


# ------------------------------------------------------------------------------------------ tokens
def test_refresh_rotates_and_reuse_revokes_the_session(rt: RuntimeProcess, anon: httpx.Client) -> None:
    first = login(anon, mail(rt), new_email())
    r = anon.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200, r.text
    second = r.json()
    assert set(second) >= {"access_token", "refresh_token", "expires_at", "expires_in"}
    assert second["expires_in"] == 900
    assert second["refresh_token"] != first["refresh_token"] and second["access_token"] != first["access_token"]
    r = anon.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert r.status_code == 200
    third = r.json()
    assert anon.get("/v1/auth/whoami", headers=bearer(third["access_token"])).status_code == 200

    # a spent refresh token presented again: someone copied it; the whole session ends
    r = anon.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 401 and error_code(r) == "refresh_token_reused"
    r = anon.get("/v1/auth/whoami", headers=bearer(third["access_token"]))
    assert r.status_code == 401 and error_code(r) == "invalid_actor_token"
    r = anon.post("/v1/auth/refresh", json={"refresh_token": third["refresh_token"]})
    assert r.status_code == 401 and error_code(r) == "session_revoked"
    with rt.client() as admin:
        sessions = admin.get("/v1/auth/sessions", params={"include_revoked": "true"}).json()["sessions"]
    [mine] = [x for x in sessions if x["session_id"] == first["session_id"]]
    assert mine["revoked"] is True and mine["revoked_at"]


def test_expired_access_token_is_401_token_expired(short: RuntimeThread) -> None:
    with httpx.Client(base_url=short.url, verify=TLS) as c:
        s = login(c, mail(short), "short@example.com")
        assert s["expires_in"] == SHORT
        assert c.get("/v1/auth/whoami", headers=bearer(s["access_token"])).status_code == 200
        short.advance_clock(SHORT)
        r = c.get("/v1/auth/whoami", headers=bearer(s["access_token"]))
        assert r.status_code == 401 and error_code(r) == "token_expired"
        unknown = s["access_token"][:-6] + "AAAAAA"
        r = c.get("/v1/auth/whoami", headers=bearer(unknown))
        assert r.status_code == 401 and error_code(r) == "invalid_actor_token"
        r = c.post("/v1/auth/refresh", json={"refresh_token": s["refresh_token"]})
        assert r.status_code == 200
        assert c.get("/v1/auth/whoami", headers=bearer(r.json()["access_token"])).status_code == 200
        # a refresh token is not an access token
        r = c.get("/v1/auth/whoami", headers=bearer(r.json()["refresh_token"]))
        assert r.status_code == 401 and error_code(r) == "invalid_actor_token"


# ------------------------------------------------------------------------------------------ principals
def test_api_keys_still_work_both_ways(rt: RuntimeProcess, anon: httpx.Client) -> None:
    for headers in ({"x-api-key": str(rt.api_key)}, bearer(str(rt.api_key))):
        r = anon.get("/v1/auth/whoami", headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["principal"]["kind"] == "workspace" and r.json()["principal"]["is_admin"] is True
    with rt.client() as admin:
        address, token = make_agent(admin, f"who-{uuid.uuid4().hex[:6]}")
    p = anon.get("/v1/auth/whoami", headers={"x-api-key": token}).json()["principal"]
    assert p["kind"] == "service_account" and p["address"] == address
    # a person's bearer token wins over an API key sent alongside (the CLI sends both)
    s = login(anon, mail(rt), new_email())
    r = anon.get("/v1/auth/whoami", headers={"x-api-key": str(rt.api_key), **bearer(s["access_token"])})
    assert r.json()["principal"]["kind"] == "actor"


def test_actor_acts_on_intents_but_not_on_service_accounts(rt: RuntimeProcess, anon: httpx.Client) -> None:
    who = new_email()
    h = bearer(login(anon, mail(rt), who)["access_token"])
    r = anon.post("/v1/service-accounts", json={"name": f"nope-{uuid.uuid4().hex[:6]}"}, headers=h)
    assert r.status_code == 403 and error_code(r) == "policy_denied"
    with rt.client() as admin:
        r = admin.post("/v1/service-accounts", json={"name": f"sa-{uuid.uuid4().hex[:6]}"})
        sa_id = r.json()["service_account"]["service_account_id"]
        created = admin.post("/v1/intents", json=new_intent("inventory")).json()
    assert anon.post(f"/v1/service-accounts/{sa_id}/keys", json={}, headers=h).status_code == 403
    assert anon.delete(f"/v1/service-accounts/{sa_id}", headers=h).status_code == 403

    r = anon.post("/v1/intents", json=new_intent("inventory"), headers=h)
    assert r.status_code == 200, r.text
    mine = anon.get(f"/v1/intents/{r.json()['intent_id']}", headers=h).json()["intent"]
    assert mine["from_agent"] == f"actor://local/dev/{who}"
    # an intent of the workspace the actor did not send: visible; it may cancel it (not complete it: that is
    # the addressed agent's), as itself
    assert anon.get(f"/v1/intents/{created['intent_id']}", headers=h).status_code == 200
    r = anon.post(f"/v1/intents/{created['intent_id']}/resolve", json={"status": "COMPLETED", "result": {}},
                  headers=h)
    assert r.status_code == 403 and error_code(r) == "policy_denied"
    r = anon.post(f"/v1/intents/{created['intent_id']}/resolve", json={"status": "CANCELED"}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["event"]["actor"] == f"actor://local/dev/{who}"


# ------------------------------------------------------------------------------------------ sessions
def test_sessions_list_revoke_and_logout(rt: RuntimeProcess, anon: httpx.Client) -> None:
    who = new_email()
    a = login(anon, mail(rt), who)
    b = login(anon, mail(rt), who)
    other = login(anon, mail(rt), new_email())
    r = anon.get("/v1/auth/sessions", headers=bearer(a["access_token"]))
    assert r.status_code == 200, r.text
    sessions = {x["session_id"]: x for x in r.json()["sessions"]}
    assert set(sessions) == {a["session_id"], b["session_id"]}  # only this person's
    assert sessions[a["session_id"]]["is_current"] is True and sessions[b["session_id"]]["is_current"] is False
    assert sessions[a["session_id"]]["client_type"] == "api" and sessions[a["session_id"]]["revoked"] is False
    assert set(sessions[a["session_id"]]) >= {"session_id", "is_current", "client_type", "created_at",
                                               "expires_at", "revoked_at", "revoked"}

    # someone else's session is not found; one's own other session is revoked at once
    r = anon.post("/v1/auth/sessions/revoke", json={"session_id": other["session_id"]},
                  headers=bearer(a["access_token"]))
    assert r.status_code == 404
    r = anon.post("/v1/auth/sessions/revoke", json={"session_id": b["session_id"]},
                  headers=bearer(a["access_token"]))
    assert r.status_code == 200 and r.json()["revoked"] is True
    assert anon.get("/v1/auth/whoami", headers=bearer(b["access_token"])).status_code == 401
    r = anon.get("/v1/auth/sessions", headers=bearer(a["access_token"]))
    assert [x["session_id"] for x in r.json()["sessions"]] == [a["session_id"]]

    # logout ends the current session; an API key has no session to end
    r = anon.post("/v1/auth/logout", json={}, headers=bearer(a["access_token"]))
    assert r.status_code == 200 and r.json()["session_id"] == a["session_id"]
    assert anon.get("/v1/auth/whoami", headers=bearer(a["access_token"])).status_code == 401
    assert anon.post("/v1/auth/refresh", json={"refresh_token": a["refresh_token"]}).status_code == 401
    r = anon.post("/v1/auth/logout", json={}, headers={"x-api-key": str(rt.api_key)})
    assert r.status_code == 401 and error_code(r) == "missing_actor_token"

    # the workspace key sees every person's sessions and may revoke them; an agent key may not
    with rt.client() as admin:
        every = admin.get("/v1/auth/sessions").json()["sessions"]
        assert other["session_id"] in {x["session_id"] for x in every}
        assert admin.post("/v1/auth/sessions/revoke", json={"session_id": other["session_id"]}).status_code == 200
        _, agent_key = make_agent(admin, f"sess-{uuid.uuid4().hex[:6]}")
    assert anon.get("/v1/auth/sessions", headers={"x-api-key": agent_key}).status_code == 403


def test_logout_all(rt: RuntimeProcess, anon: httpx.Client) -> None:
    who = new_email()
    a, b = login(anon, mail(rt), who), login(anon, mail(rt), who)
    r = anon.post("/v1/auth/logout-all", json={}, headers=bearer(a["access_token"]))
    assert r.status_code == 200 and r.json()["revoked"] == 2
    for s in (a, b):
        assert anon.get("/v1/auth/whoami", headers=bearer(s["access_token"])).status_code == 401


# ------------------------------------------------------------------------------------------ secrets at rest
def test_no_token_in_clear_in_the_database_or_the_log(rt: RuntimeThread, anon: httpx.Client,
                                                     capfd: pytest.CaptureFixture[str],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    tokens: list[str] = []
    emails = [new_email() for _ in range(3)]
    for email in emails:
        s = login(anon, mail(rt), email)
        r = anon.post("/v1/auth/refresh", json={"refresh_token": s["refresh_token"]}).json()
        tokens += [s["access_token"], s["refresh_token"], r["access_token"], r["refresh_token"]]
    blobs = rt.stored_bytes()
    # the dump holds what this test wrote (its size depends on which other tests shared this runtime before it)
    for email in emails:
        assert email.encode() in blobs
    out, err = capfd.readouterr()  # the in-process runtime's log: what it printed, and its log records
    log = (out + err + caplog.text).encode()
    assert b"login code for" in log  # (what `axme dev` prints: the codes of these logins)
    for token in tokens:
        secret = token.split("_", 3)[3]  # axme_at_<id>_<secret>; the secret may contain "_" itself
        for needle in (token.encode(), secret.encode()):
            assert needle not in blobs
            assert needle not in log


# ------------------------------------------------------------------------------------------ SMTP
class _FakeSmtp(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server: _SmtpServer = self.server  # type: ignore[assignment]

        def say(text: str) -> None:
            self.wfile.write(text.encode() + b"\r\n")

        say("220 fake ESMTP")
        lines: list[str] | None = None
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            text = raw.decode().rstrip("\r\n")
            if lines is not None:
                if text == ".":
                    server.mails.append("\n".join(lines))
                    lines = None
                    say("250 queued")
                else:
                    lines.append(text[1:] if text.startswith("..") else text)
                continue
            verb = text[:4].upper()
            if verb == "EHLO":
                say("250-fake")
                say("250 AUTH PLAIN LOGIN")
            elif verb == "AUTH":
                server.auth.append(text)
                say("235 ok")
            elif verb == "DATA":
                lines = []
                say("354 go on")
            elif verb == "QUIT":
                say("221 bye")
                return
            else:
                say("250 ok")


class _SmtpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _FakeSmtp)
        self.mails: list[str] = []
        self.auth: list[str] = []


@pytest.fixture
def smtp_server() -> Iterator[_SmtpServer]:
    server = _SmtpServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_smtp_mailer_through_axme_dev(tmp_path: Path, smtp_server: _SmtpServer) -> None:
    port = smtp_server.server_address[1]
    proc = auth_runtime(tmp_path, "--smtp-url", f"smtp://mailer:s3cret-pass@127.0.0.1:{port}?from=axme@test.local")
    proc.start()
    try:
        with httpx.Client(base_url=proc.url, verify=TLS) as c:
            r = c.post("/v1/auth/login-intent", json={"email": "smtp@example.com"})
            assert r.status_code == 200, r.text
            [message] = smtp_server.mails
            assert "To: smtp@example.com" in message and "From: axme@test.local" in message
            code = message.split("Your axme login code: ", 1)[1][:6]
            r = c.post(f"/v1/auth/login-intent/{r.json()['intent_id']}/verify", json={"code": code})
            assert r.status_code == 200, r.text
        assert smtp_server.auth and smtp_server.auth[0].startswith("AUTH PLAIN")
    finally:
        proc.stop()
    log = proc.log.read_text()
    assert f"sent through smtp://127.0.0.1:{port}" in log
    assert "s3cret-pass" not in log and code not in log
    assert not (tmp_path / "mail").exists()


def test_smtp_failure_is_a_mail_error() -> None:
    from axme_cli.runtime.mailer import MailError, SmtpMailer

    with socketserver.TCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler) as s:
        port = s.server_address[1]  # bound, then closed: nothing listens there afterwards
    mailer = SmtpMailer(f"smtp://127.0.0.1:{port}", timeout=5)
    with pytest.raises(MailError, match="did not take the mail"):
        asyncio.run(mailer.send_login_code("x@example.com", "123456", 300, "id"))
    with pytest.raises(ValueError, match="not an SMTP URL"):
        SmtpMailer("http://user:pw@host")

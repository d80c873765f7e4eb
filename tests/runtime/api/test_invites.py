"""/v1/invites over a real runtime: created with a TTL in the spec's bounds, looked up and accepted by token in the
gateway's shapes (axp-spec ``api.invites.*``); single use (409), expiry (410); what accepting grants (a nick that
reaches the accepter, the owner's ``invite.accepted`` webhook); tokens never at rest, in logs or in the audit log;
scoping, bad input, and the official Python SDK's three methods."""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from axme_sdk import AxmeClient, AxmeClientConfig
from axme_sdk.exceptions import AxmeHttpError

from tests.auth_helpers import bearer, login
from tests.conftest import ADMIN_KEY, NO_LOGIN_LIMITS, make_agent, new_intent, unique
from tests.protocol.test_conformance import assert_valid
from tests.receiver import Receiver
from tests.runtime.api.test_users import agent_client, nick, ok, refused
from tests.runtime_proc import TLS, RuntimeProcess
from tests.runtime_thread import RuntimeThread

CREATED = "public_api/api.invites.create.response.v1.json"
GOT = "public_api/api.invites.get.response.v1.json"
ACCEPTED = "public_api/api.invites.accept.response.v1.json"


def invite(api: httpx.Client, owner: str, **extra: Any) -> dict[str, Any]:
    return ok(api.post("/v1/invites/create", json={"owner_agent": owner, **extra}), CREATED)


@pytest.fixture(scope="module")
def clocked(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    """A runtime on a test clock: an invite expires when the test moves the clock past it, without waiting."""
    rt = RuntimeThread(tmp_path_factory.mktemp("invites-clock"), extra_args=["--test-clock", *NO_LOGIN_LIMITS],
                       backend=backend)
    rt.start()
    yield rt
    rt.retire()


def test_create_get_accept_once(quiet: RuntimeProcess, api: httpx.Client) -> None:
    owner, _ = agent_client(quiet, api)
    created = invite(api, owner, recipient_hint="Partner A", ttl_seconds=3600)
    token = created["token"]
    assert token.startswith("axme_inv_") and len(token) == 52
    assert created["invite_url"] == f"{quiet.url}/v1/invites/{token}"
    assert (created["owner_agent"], created["recipient_hint"], created["status"]) == (owner, "Partner A", "pending")
    got = ok(api.get(f"/v1/invites/{token}"), GOT)
    assert got == {**{k: created[k] for k in ("ok", "token", "owner_agent", "recipient_hint", "status", "created_at",
                                             "expires_at")},
                   "accepted_at": None, "accepted_owner_agent": None, "nick": None, "public_address": None}
    # an agent accepts: its nick names the agent itself, and reaches it
    accepter_address, accepter = agent_client(quiet, api)
    name = nick("joined")
    accepted = ok(accepter.post(f"/v1/invites/{token}/accept", json={"nick": name, "display_name": "Joined"}),
                  ACCEPTED)
    assert accepted == {"ok": True, "token": token, "status": "accepted", "invite_owner_agent": owner,
                        "user_id": accepted["user_id"], "owner_agent": accepter_address, "nick": name,
                        "public_address": f"{name[1:]}@ax", "display_name": "Joined",
                        "accepted_at": accepted["accepted_at"], "registry_bind_status": "propagated"}
    intent_id = ok(api.post("/v1/intents", json=new_intent(name)))["intent_id"]
    assert ok(api.get(f"/v1/intents/{intent_id}"))["intent"]["to_agent"] == accepter_address
    got = ok(api.get(f"/v1/invites/{token}"), GOT)
    assert (got["status"], got["accepted_at"], got["accepted_owner_agent"], got["nick"]) == (
        "accepted", accepted["accepted_at"], accepter_address, name)
    # single use: anyone else, or the same caller again, is 409
    _, late = agent_client(quiet, api)
    refused(late.post(f"/v1/invites/{token}/accept", json={"nick": nick()}), 409, "invite_already_accepted")
    refused(accepter.post(f"/v1/invites/{token}/accept", json={"nick": nick()}), 409, "invite_already_accepted")
    # a rename later shows in the invite
    renamed = nick("renamed")
    ok(accepter.post("/v1/users/rename-nick", json={"owner_agent": accepter_address, "nick": renamed}))
    assert ok(api.get(f"/v1/invites/{token}"), GOT)["nick"] == renamed


def test_an_expired_invite_is_410_and_says_expired(clocked: RuntimeProcess) -> None:
    with clocked.client() as api:
        owner = make_agent(api, unique("clock-owner"))[0]
        created = invite(api, owner)
        assert _seconds(created["expires_at"]) - _seconds(created["created_at"]) == 604800  # the default: 7 days
        short = invite(api, owner, ttl_seconds=60)
        clocked.advance_clock(60)  # the shortest TTL: gone at its expires_at ...
        assert ok(api.get(f"/v1/invites/{short['token']}"), GOT)["status"] == "expired"
        assert ok(api.get(f"/v1/invites/{created['token']}"), GOT)["status"] == "pending"  # ... the other not yet
        wanted = nick("late")
        refused(api.post(f"/v1/invites/{short['token']}/accept", json={"nick": wanted}), 410, "invite_expired")
        assert ok(api.get("/v1/users/check-nick", params={"nick": wanted}))["available"] is True  # nothing was made
        clocked.advance_clock(604800 - 60 - 1)
        ok(api.post(f"/v1/invites/{created['token']}/accept", json={"nick": wanted}), ACCEPTED)  # a second left


def _seconds(at: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


def test_accepting_tells_the_owner_by_webhook(quiet: RuntimeProcess, api: httpx.Client) -> None:
    owner, owner_client = agent_client(quiet, api)
    with Receiver() as receiver:
        sub = ok(owner_client.post("/v1/webhooks/subscriptions", json={
            "callback_url": receiver.url, "event_types": ["invite.accepted"]}))
        receiver.secret = sub["secret"]
        created = ok(owner_client.post("/v1/invites/create", json={"owner_agent": owner, "recipient_hint": "Bo"}),
                     CREATED)
        name = nick("bo")
        accepted = ok(api.post(f"/v1/invites/{created['token']}/accept", json={"nick": name}), ACCEPTED)
        [post] = receiver.wait_posts(1)
    assert post["signed"] and post["json"]["event_type"] == "invite.accepted"
    assert post["json"]["payload"] == {
        "invite_id": post["json"]["payload"]["invite_id"], "invite_owner_agent": owner, "recipient_hint": "Bo",
        "user_id": accepted["user_id"], "owner_agent": accepted["owner_agent"], "nick": name,
        "public_address": f"{name[1:]}@ax", "accepted_at": accepted["accepted_at"]}
    assert created["token"] not in post["raw"].decode()


def test_a_person_accepts_and_holds_the_user(quiet: RuntimeProcess, api: httpx.Client) -> None:
    owner, _ = agent_client(quiet, api)
    token = invite(api, owner)["token"]
    who = f"{unique('carol')}@example.com"
    with httpx.Client(verify=TLS, base_url=quiet.url, timeout=30) as anon:
        carol = bearer(login(anon, quiet.mail_dir, who)["access_token"])
        name = nick("carol")
        accepted = ok(anon.post(f"/v1/invites/{token}/accept", json={"nick": name}, headers=carol), ACCEPTED)
        assert accepted["owner_agent"] == f"agent://user/{accepted['user_id']}"
        profile = ok(anon.get("/v1/users/profile", params={"owner_agent": name}, headers=carol))
        assert (profile["email"], profile["user_id"]) == (who, accepted["user_id"])
        # a second invite cannot give the same person a second nick
        again = invite(api, owner)["token"]
        refused(anon.post(f"/v1/invites/{again}/accept", json={"nick": nick()}, headers=carol), 409, "user_exists")
        assert ok(api.get(f"/v1/invites/{again}"))["status"] == "pending"  # the refusal used nothing up


def test_scoping(quiet: RuntimeProcess, api: httpx.Client) -> None:
    owner, owner_client = agent_client(quiet, api)
    other, _ = agent_client(quiet, api)
    # an agent invites as itself (or by its own nick), not as another
    mine = nick("owner")
    ok(owner_client.post("/v1/users/register-nick", json={"nick": mine}))
    assert ok(owner_client.post("/v1/invites/create", json={"owner_agent": owner}), CREATED)["owner_agent"] == owner
    assert ok(owner_client.post("/v1/invites/create", json={"owner_agent": mine}))["owner_agent"] == owner
    for as_whom in (other, "agent://user/" + str(uuid.uuid4()), "initiator://local/dev/admin"):
        refused(owner_client.post("/v1/invites/create", json={"owner_agent": as_whom}), 403, "policy_denied",
                "owner_agent")
    # its own invite is for someone else
    token = ok(owner_client.post("/v1/invites/create", json={"owner_agent": owner}))["token"]
    refused(owner_client.post(f"/v1/invites/{token}/accept", json={"nick": nick()}), 409, "invite_own")
    # unknown and malformed tokens, unknown owner nicks
    for bad in ("axme_inv_" + "A" * 43, "short", "x" * 65, "has%20space", "axme_inv_%00nul"):
        refused(api.get(f"/v1/invites/{bad}"), 404 if "%00" not in bad else 400)
        refused(api.post(f"/v1/invites/{bad}/accept", json={"nick": nick()}), 404 if "%00" not in bad else 400)
    refused(api.post("/v1/invites/create", json={"owner_agent": nick("ghost")}), 404, "nick_not_found",
            "owner_agent")


def test_concurrent_accepts_let_one_through(quiet: RuntimeProcess, api: httpx.Client) -> None:
    owner, _ = agent_client(quiet, api)
    token = invite(api, owner)["token"]
    takers = [agent_client(quiet, api)[1] for _ in range(4)]
    answers: list[httpx.Response] = []

    def accept(client: httpx.Client) -> None:
        answers.append(client.post(f"/v1/invites/{token}/accept", json={"nick": nick("racer")}))

    threads = [threading.Thread(target=accept, args=(c,)) for c in takers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in answers) == [200, 409, 409, 409]
    assert {r.json()["error"]["code"] for r in answers if r.status_code == 409} == {"invite_already_accepted"}


def test_idempotency_keys(quiet: RuntimeProcess, api: httpx.Client) -> None:
    owner, _ = agent_client(quiet, api)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    body = {"owner_agent": owner, "ttl_seconds": 600}
    first = ok(api.post("/v1/invites/create", json=body, headers=key), CREATED)
    # a repeat is the same invite with a new token (the first is not kept, so it cannot be answered again)
    second = ok(api.post("/v1/invites/create", json=body, headers=key), CREATED)
    assert second["created_at"] == first["created_at"] and second["token"] != first["token"]
    refused(api.get(f"/v1/invites/{first['token']}"), 404, "invite_not_found")
    assert ok(api.get(f"/v1/invites/{second['token']}"))["status"] == "pending"
    refused(api.post("/v1/invites/create", json={**body, "ttl_seconds": 601}, headers=key), 409,
            "idempotency_conflict")
    # accepting with a key answers the same again, instead of 409
    accept_key = {"Idempotency-Key": uuid.uuid4().hex}
    name = {"nick": nick("idem")}
    accepted = ok(api.post(f"/v1/invites/{second['token']}/accept", json=name, headers=accept_key), ACCEPTED)
    assert ok(api.post(f"/v1/invites/{second['token']}/accept", json=name, headers=accept_key)) == accepted
    refused(api.post(f"/v1/invites/{second['token']}/accept", json=name), 409, "invite_already_accepted")
    refused(api.post("/v1/invites/create", json=body, headers=key), 409, "invite_not_pending")


def test_the_token_is_never_kept_logged_or_audited(quiet: RuntimeProcess, api: httpx.Client,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    owner, _ = agent_client(quiet, api)
    token = invite(api, owner)["token"]
    ok(api.get(f"/v1/invites/{token}"))
    ok(api.post(f"/v1/invites/{token}/accept", json={"nick": nick("quiet")}, headers={
        "Idempotency-Key": uuid.uuid4().hex}))
    assert token.encode() not in quiet.stored_bytes()
    assert hashlib.sha256(token.encode()).hexdigest().encode() in quiet.stored_bytes()
    runtime_logs = [r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert not [line for line in runtime_logs if token in line]  # (the test's own client logs its URLs)


@pytest.mark.backends("sqlite")
def test_an_unexpected_error_logs_the_route_not_the_token(quiet: RuntimeProcess, api: httpx.Client,
                                                          caplog: pytest.LogCaptureFixture,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from axme_cli.runtime.engine import invites as engine

    token = invite(api, "agent://local/dev/broken-view")["token"]

    def broken(*args: Any) -> dict[str, Any]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(engine, "invite_view", broken)
    refused(api.get(f"/v1/invites/{token}"), 500, "internal_error")
    logged = [r for r in caplog.records if r.name == "axme.api"]
    assert [r.getMessage() for r in logged] == ["unexpected error on GET /v1/invites/{token}"]
    runtime_logs = "\n".join(caplog.handler.format(r) for r in caplog.records
                             if not r.name.startswith(("httpx", "httpcore")))  # the test's client logs its URLs
    assert "RuntimeError: a bug" in runtime_logs and token not in runtime_logs
    assert token not in api.get("/v1/audit/events", params={"limit": 50}).text


# ---------------------------------------------------------------------------------------------
# bad input


BAD_CREATES = [
    ({}, "owner_agent"),
    ({"owner_agent": "ab"}, "owner_agent"),
    ({"owner_agent": "x" * 256}, "owner_agent"),
    ({"owner_agent": "agent://local/dev/x", "ttl_seconds": 59}, "ttl_seconds"),
    ({"owner_agent": "agent://local/dev/x", "ttl_seconds": 1_209_601}, "ttl_seconds"),
    ({"owner_agent": "agent://local/dev/x", "ttl_seconds": "3600"}, "ttl_seconds"),
    ({"owner_agent": "agent://local/dev/x", "ttl_seconds": 3600.5}, "ttl_seconds"),
    ({"owner_agent": "agent://local/dev/x", "ttl_seconds": True}, "ttl_seconds"),
    ({"owner_agent": "agent://local/dev/x", "recipient_hint": ""}, "recipient_hint"),
    ({"owner_agent": "agent://local/dev/x", "recipient_hint": "a" * 256}, "recipient_hint"),
    ({"owner_agent": "agent://local/dev/x", "recipient_hint": "line\nbreak"}, "recipient_hint"),
    ({"owner_agent": "agent://local/dev/x", "token": "mine"}, "token"),
    ({"owner_agent": "not an address"}, "owner_agent"),
]


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("case", range(len(BAD_CREATES)))
def test_bad_creates_are_422_naming_the_field(api: httpx.Client, case: int) -> None:
    body, field = BAD_CREATES[case]
    refused(api.post("/v1/invites/create", json=body), 422, field=field)


@pytest.mark.backends("sqlite")
def test_bad_accepts_and_missing_keys(quiet: RuntimeProcess, api: httpx.Client) -> None:
    token = invite(api, "agent://local/dev/bad-accepts")["token"]
    for body, field, code in (({}, "nick", None), ({"nick": "@no"}, "nick", "invalid_nick"),
                              ({"nick": "@ok.nick", "display_name": ""}, "display_name", None),
                              ({"nick": "@ok.nick", "extra": 1}, "extra", None), ({"nick": 7}, "nick", None)):
        refused(api.post(f"/v1/invites/{token}/accept", json=body), 422, code, field)
    refused(api.post(f"/v1/invites/{token}/accept", content=b"nope", headers={"content-type": "application/json"}),
            400, "invalid_json")
    assert ok(api.get(f"/v1/invites/{token}"))["status"] == "pending"
    with httpx.Client(verify=TLS, base_url=quiet.url, timeout=30) as anon:
        refused(anon.post("/v1/invites/create", json={"owner_agent": "agent://local/dev/x"}), 401)
        refused(anon.get(f"/v1/invites/{token}"), 401, "missing_api_key")
        refused(anon.post(f"/v1/invites/{token}/accept", json={"nick": nick()}), 401, "missing_api_key")
    assert ok(api.get(f"/v1/invites/{token}"))["status"] == "pending"


# ---------------------------------------------------------------------------------------------
# the unchanged official SDK


def test_the_sdk_creates_gets_and_accepts(quiet: RuntimeProcess, api: httpx.Client) -> None:
    owner, _ = agent_client(quiet, api)
    sdk = AxmeClient(AxmeClientConfig(base_url=quiet.url, api_key=ADMIN_KEY))
    created = sdk.create_invite({"owner_agent": owner, "recipient_hint": "Partner A", "ttl_seconds": 3600},
                                idempotency_key=uuid.uuid4().hex)
    assert_valid(CREATED, created)
    assert_valid(GOT, got := sdk.get_invite(created["token"]))
    assert got["status"] == "pending"
    name = nick("sdk")
    accepted = sdk.accept_invite(created["token"], {"nick": name, "display_name": "Partner User"})
    assert_valid(ACCEPTED, accepted)
    assert accepted["invite_owner_agent"] == owner and accepted["owner_agent"].startswith("agent://user/")
    assert sdk.get_user_profile(accepted["owner_agent"])["nick"] == name
    assert sdk.get_invite(created["token"])["status"] == "accepted"
    with pytest.raises(AxmeHttpError) as used:
        sdk.accept_invite(created["token"], {"nick": nick()})
    assert used.value.status_code == 409

"""/v1/users over a real runtime: nicks checked, registered, renamed and resolved, profiles read and changed, in the
gateway's shapes (axp-spec ``api.users.*``); a nick as an intent's or an inbox message's recipient reaching the agent
or user behind it; who manages which user; every bad input refused with the field named; and the official Python
SDK's five methods."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import httpx
import pytest
from axme_sdk import AxmeClient, AxmeClientConfig
from axme_sdk.exceptions import AxmeHttpError

from tests.auth_helpers import bearer, login
from tests.conftest import ADMIN_KEY, make_agent, new_intent, unique
from tests.protocol.test_conformance import assert_valid
from tests.runtime.api.test_streams import feed_path, read_frames
from tests.runtime_proc import TLS, RuntimeProcess

REGISTERED = "public_api/api.users.register_nick.response.v1.json"
CHECKED = "public_api/api.users.check_nick.response.v1.json"
RENAMED = "public_api/api.users.rename_nick.response.v1.json"
PROFILE = "public_api/api.users.profile.get.response.v1.json"
UPDATED = "public_api/api.users.profile.update.response.v1.json"


def nick(prefix: str = "u") -> str:
    """A nick no other test of this runtime uses (3-32 characters after the @)."""
    return f"@{prefix}.{uuid.uuid4().hex[:10]}"


def ok(r: httpx.Response, schema: str | None = None) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    if schema:
        assert_valid(schema, r.json())
    return dict(r.json())


def refused(r: httpx.Response, status: int, code: str | None = None, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "detail"} and set(body["error"]) == {"code", "message", "details"}, body
    if code:
        assert body["error"]["code"] == code, body
    if field:
        assert body["error"]["details"].get("field") == field, body
    return dict(body["error"])


def agent_client(rt: RuntimeProcess, api: httpx.Client) -> tuple[str, httpx.Client]:
    address, key = make_agent(api, unique("user-agent"))
    return address, httpx.Client(verify=TLS, base_url=rt.url, headers={"x-api-key": key}, timeout=30)


# ---------------------------------------------------------------------------------------------
# the workspace key: users of their own (agent://user/<id>)


def test_register_check_rename_resolve_and_profile(api: httpx.Client) -> None:
    name = nick("Partner")
    lower = name.lower()
    checked = ok(api.get("/v1/users/check-nick", params={"nick": name}), CHECKED)
    assert checked == {"ok": True, "nick": lower, "normalized_nick": lower[1:],
                       "public_address": f"{lower[1:]}@ax", "available": True}
    user = ok(api.post("/v1/users/register-nick", json={"nick": name, "display_name": "Partner User",
                                                        "phone": "+12025550100", "email": "partner@example.com"}),
              REGISTERED)
    assert user["nick"] == lower and user["owner_agent"] == f"agent://user/{user['user_id']}"
    assert (user["display_name"], user["phone"], user["email"]) == ("Partner User", "+12025550100",
                                                                      "partner@example.com")
    # taken now, whatever the case or form it is written in
    for form in (name.upper(), lower[1:], f"{lower[1:]}@ax"):
        assert ok(api.get("/v1/users/check-nick", params={"nick": form}), CHECKED)["available"] is False
    resolved = ok(api.get("/v1/users/resolve-nick", params={"nick": f"{lower[1:]}@ax"}))
    assert resolved == {"ok": True, "resolved": True, "nick": lower, "normalized_nick": lower[1:],
                        "public_address": f"{lower[1:]}@ax", "owner_agent": user["owner_agent"],
                        "display_name": "Partner User", "phone": "+12025550100", "email": "partner@example.com"}
    profile = ok(api.get("/v1/users/profile", params={"owner_agent": user["owner_agent"]}), PROFILE)
    assert profile["user_id"] == user["user_id"] and profile["updated_at"] == user["created_at"]

    renamed_to = nick("renamed")
    renamed = ok(api.post("/v1/users/rename-nick", json={"owner_agent": user["owner_agent"], "nick": renamed_to,
                                                         "display_name": "Renamed"}), RENAMED)
    assert (renamed["nick"], renamed["display_name"], renamed["phone"]) == (renamed_to, "Renamed", "+12025550100")
    # the old nick is free again and no longer resolves; the new one does
    assert ok(api.get("/v1/users/check-nick", params={"nick": name}))["available"] is True
    refused(api.get("/v1/users/resolve-nick", params={"nick": name}), 404, "nick_not_found", "nick")
    assert ok(api.get("/v1/users/resolve-nick", params={"nick": renamed_to}))["owner_agent"] == user["owner_agent"]

    # profile/update: the fields given change, the others stay; a nick given renames
    updated = ok(api.post("/v1/users/profile/update", json={"owner_agent": user["owner_agent"],
                                                            "phone": "+1 (202) 555-0101"}), UPDATED)
    assert (updated["phone"], updated["display_name"], updated["email"], updated["nick"]) == (
        "+1 (202) 555-0101", "Renamed", "partner@example.com", renamed_to)
    third = nick("third")
    assert ok(api.post("/v1/users/profile/update", json={"owner_agent": renamed_to, "nick": third}),
              UPDATED)["nick"] == third  # owner_agent may name the user by its nick
    assert ok(api.get("/v1/users/profile", params={"owner_agent": third}))["user_id"] == user["user_id"]
    actions = [e["action"] for e in api.get("/v1/audit/events", params={
        "owner_agent": user["owner_agent"]}).json()["events"]]
    assert actions == ["user.profile.updated", "user.profile.updated", "user.renamed", "user.registered"]
    events = api.get("/v1/audit/events", params={"owner_agent": user["owner_agent"]}).text
    for private in ("partner@example.com", "+12025550100", "555-0101"):  # no phone or email in the audit log
        assert private not in events


def test_nicks_are_unique_and_some_are_reserved(quiet: RuntimeProcess, api: httpx.Client) -> None:
    taken = nick("taken")
    first = ok(api.post("/v1/users/register-nick", json={"nick": taken}))
    refused(api.post("/v1/users/register-nick", json={"nick": taken.upper()}), 409, "nick_taken", "nick")
    _, agent = agent_client(quiet, api)
    refused(agent.post("/v1/users/register-nick", json={"nick": taken}), 409, "nick_taken", "nick")
    second = ok(api.post("/v1/users/register-nick", json={"nick": nick("second")}))
    refused(api.post("/v1/users/rename-nick", json={"owner_agent": second["owner_agent"], "nick": taken}), 409,
            "nick_taken", "nick")
    # renaming to one's own nick is no conflict
    ok(api.post("/v1/users/rename-nick", json={"owner_agent": first["owner_agent"], "nick": taken}))
    for reserved in ("@admin", "@Agent_Core", "axme"):
        assert ok(api.get("/v1/users/check-nick", params={"nick": reserved}))["available"] is False
        refused(api.post("/v1/users/register-nick", json={"nick": reserved}), 409, "nick_reserved", "nick")


def test_two_registrations_of_one_nick_at_once_make_one_user(api: httpx.Client) -> None:
    wanted = nick("race")
    answers: list[int] = []

    def register() -> None:
        answers.append(api.post("/v1/users/register-nick", json={"nick": wanted}).status_code)

    threads = [threading.Thread(target=register) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [200, 409, 409, 409]


def test_an_idempotency_key_registers_once(api: httpx.Client) -> None:
    body = {"nick": nick("idem")}
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    first = ok(api.post("/v1/users/register-nick", json=body, headers=headers))
    again = ok(api.post("/v1/users/register-nick", json=body, headers=headers))
    assert again == first
    refused(api.post("/v1/users/register-nick", json={"nick": nick("other")}, headers=headers), 409,
            "idempotency_conflict")


# ---------------------------------------------------------------------------------------------
# agents and people


def test_an_agent_nick_names_the_agent_and_intents_to_it_reach_its_feed(quiet: RuntimeProcess,
                                                                         api: httpx.Client) -> None:
    address, agent = agent_client(quiet, api)
    name = nick("bot")
    user = ok(agent.post("/v1/users/register-nick", json={"nick": name, "display_name": "Inventory bot"}),
              REGISTERED)
    assert user["owner_agent"] == address
    refused(agent.post("/v1/users/register-nick", json={"nick": nick("second")}), 409, "user_exists")
    sent = [ok(api.post("/v1/intents", json=new_intent(to)))["intent_id"] for to in (name, f"{name[1:]}@ax")]
    for intent_id in sent:
        assert ok(api.get(f"/v1/intents/{intent_id}"))["intent"]["to_agent"] == address
    frames = read_frames(agent, feed_path(address.removeprefix("agent://")), since=0, wait_seconds=1)
    assert [f.json["intent_id"] for f in frames if f.event != "stream.timeout"] == sent
    # reply_to by nick: the completion lands in the agent's inbox
    asked = ok(api.post("/v1/intents", json=new_intent("somebody-else", reply_to=name)))["intent_id"]
    ok(api.post(f"/v1/intents/{asked}/resolve", json={"status": "CANCELED", "reason": "no"}))
    thread = ok(agent.get(f"/v1/inbox/{asked}"))["thread"]
    assert thread["owner_agent"] == address
    # and an inbox thread handed to a nick reaches that owner
    other_address, other = agent_client(quiet, api)
    other_nick = nick("other")
    ok(other.post("/v1/users/register-nick", json={"nick": other_nick}))
    ok(agent.post(f"/v1/inbox/{asked}/delegate", json={"delegate_to": other_nick}))
    assert ok(other.get(f"/v1/inbox/{asked}"))["thread"]["thread_id"] == asked
    # an unknown nick is 404 naming the field; no intent is made
    refused(api.post("/v1/intents", json=new_intent(nick("ghost"))), 404, "nick_not_found", "to_agent")
    refused(api.post("/v1/intents", json=new_intent("someone", reply_to=nick("ghost"))), 404, "nick_not_found",
            "reply_to")
    refused(agent.post(f"/v1/inbox/{asked}/delegate", json={"delegate_to": nick("ghost")}), 404, "nick_not_found",
            "delegate_to")


def test_who_manages_which_user(quiet: RuntimeProcess, api: httpx.Client) -> None:
    address, agent = agent_client(quiet, api)
    _, stranger = agent_client(quiet, api)
    name = nick("mine")
    ok(agent.post("/v1/users/register-nick", json={"nick": name, "phone": "+12025550100",
                                                   "email": "bot@example.com"}))
    # the agent manages its own user, the workspace key every user, nobody else
    assert ok(agent.get("/v1/users/profile", params={"owner_agent": address}), PROFILE)["nick"] == name
    ok(agent.post("/v1/users/profile/update", json={"owner_agent": address, "display_name": "Mine"}), UPDATED)
    assert ok(api.get("/v1/users/profile", params={"owner_agent": address}))["display_name"] == "Mine"
    for call in (stranger.get("/v1/users/profile", params={"owner_agent": address}),
                 stranger.post("/v1/users/rename-nick", json={"owner_agent": address, "nick": nick("stolen")}),
                 stranger.post("/v1/users/profile/update", json={"owner_agent": address, "display_name": "X"}),
                 agent.get("/v1/users/profile", params={"owner_agent": "agent://user/" + str(uuid.uuid4())})):
        refused(call, 403, "policy_denied", "owner_agent")
    # a name nobody holds: 404 for the workspace key (it may know), and for an agent asking about itself
    refused(api.get("/v1/users/profile", params={"owner_agent": "agent://user/" + str(uuid.uuid4())}), 404,
            "user_not_found", "owner_agent")
    _, fresh = agent_client(quiet, api)
    fresh_address = fresh.get("/v1/auth/whoami").json()["principal"]["address"]
    refused(fresh.get("/v1/users/profile", params={"owner_agent": fresh_address}), 404, "user_not_found")
    refused(api.post("/v1/users/rename-nick", json={"owner_agent": "nobody-here", "nick": nick()}), 404,
            "user_not_found")
    # anyone with a key resolves the nick, but phone and email are for those who manage the user
    seen = ok(stranger.get("/v1/users/resolve-nick", params={"nick": name}))
    assert (seen["owner_agent"], seen["display_name"], seen["phone"], seen["email"]) == (address, "Mine", None, None)
    assert ok(api.get("/v1/users/resolve-nick", params={"nick": name}))["email"] == "bot@example.com"
    # the workspace key renames any user
    assert ok(api.post("/v1/users/rename-nick", json={"owner_agent": address, "nick": nick("by-admin")}))[
        "owner_agent"] == address


def test_a_person_gets_a_user_of_their_own(quiet: RuntimeProcess, api: httpx.Client) -> None:
    who, other = f"{unique('ann')}@example.com", f"{unique('bob')}@example.com"
    with httpx.Client(verify=TLS, base_url=quiet.url, timeout=30) as anon:
        ann = bearer(login(anon, quiet.mail_dir, who)["access_token"])
        bob = bearer(login(anon, quiet.mail_dir, other)["access_token"])
        name = nick("ann")
        user = ok(anon.post("/v1/users/register-nick", json={"nick": name}, headers=ann), REGISTERED)
        assert user["owner_agent"] == f"agent://user/{user['user_id']}" and user["email"] == who
        refused(anon.post("/v1/users/register-nick", json={"nick": nick()}, headers=ann), 409, "user_exists")
        assert ok(anon.get("/v1/users/profile", params={"owner_agent": name}, headers=ann))["email"] == who
        refused(anon.get("/v1/users/profile", params={"owner_agent": name}, headers=bob), 403, "policy_denied")
        assert ok(anon.get("/v1/users/resolve-nick", params={"nick": name}, headers=bob))["email"] is None
        # what is sent to the nick, the person reads (a person acts for any inbox owner of the workspace)
        asked = ok(api.post("/v1/intents", json=new_intent("somebody", reply_to=name)))["intent_id"]
        ok(api.post(f"/v1/intents/{asked}/resolve", json={"status": "CANCELED", "reason": "no"}))
        thread = ok(anon.get(f"/v1/inbox/{asked}", params={"owner_agent": user["owner_agent"]}, headers=ann))
        assert thread["thread"]["owner_agent"] == user["owner_agent"]


# ---------------------------------------------------------------------------------------------
# bad input: the field named, never a 500


BAD_BODIES = [
    # (route, body, field, code)
    ("register-nick", {}, "nick", None),
    ("register-nick", {"nick": "@ab"}, "nick", "invalid_nick"),
    ("register-nick", {"nick": "@" + "a" * 33}, "nick", "invalid_nick"),
    ("register-nick", {"nick": "a" * 65}, "nick", None),
    ("register-nick", {"nick": "@ann lee"}, "nick", "invalid_nick"),
    ("register-nick", {"nick": "@ännchen"}, "nick", "invalid_nick"),
    ("register-nick", {"nick": "@ann@ax"}, "nick", "invalid_nick"),
    ("register-nick", {"nick": "@"}, "nick", "invalid_nick"),
    ("register-nick", {"nick": ""}, "nick", None),
    ("register-nick", {"nick": 12345}, "nick", None),
    ("register-nick", {"nick": ["@ann.lee"]}, "nick", None),
    ("register-nick", {"nick": "@ann.lee", "role": "admin"}, "role", None),
    ("register-nick", {"nick": "@ann.lee", "display_name": ""}, "display_name", None),
    ("register-nick", {"nick": "@ann.lee", "display_name": "a" * 121}, "display_name", None),
    ("register-nick", {"nick": "@ann.lee", "display_name": "Ann\nLee"}, "display_name", None),
    ("register-nick", {"nick": "@ann.lee", "email": "not-an-email"}, "email", None),
    ("register-nick", {"nick": "@ann.lee", "email": "a@b"}, "email", None),
    ("register-nick", {"nick": "@ann.lee", "phone": "call me"}, "phone", None),
    ("register-nick", {"nick": "@ann.lee", "phone": "+1" * 17}, "phone", None),
    ("rename-nick", {"nick": "@ann.lee"}, "owner_agent", None),
    ("rename-nick", {"owner_agent": "ab", "nick": "@ann.lee"}, "owner_agent", None),
    ("rename-nick", {"owner_agent": "agent://local/dev/x"}, "nick", None),
    ("rename-nick", {"owner_agent": "has space", "nick": "@ann.lee"}, "owner_agent", "invalid_agent_address"),
    ("profile/update", {}, "owner_agent", None),
    ("profile/update", {"owner_agent": "agent://local/dev/x", "nick": "@x"}, "nick", "invalid_nick"),
    ("profile/update", {"owner_agent": "agent://local/dev/x", "phone": 5551234}, "phone", None),
]


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("case", range(len(BAD_BODIES)))
def test_bad_bodies_are_422_naming_the_field(api: httpx.Client, case: int) -> None:
    route, body, field, code = BAD_BODIES[case]
    refused(api.post(f"/v1/users/{route}", json=body), 422, code, field)


@pytest.mark.backends("sqlite")
def test_bad_queries_bodies_and_missing_keys(quiet: RuntimeProcess, api: httpx.Client) -> None:
    for path in ("/v1/users/check-nick", "/v1/users/resolve-nick"):
        refused(api.get(path), 422, "invalid_parameter", "nick")
        refused(api.get(path, params={"nick": "@x"}), 422, "invalid_nick", "nick")
        refused(api.get(path, params={"nick": "@" + "z" * 40}), 422, "invalid_nick", "nick")
    refused(api.get("/v1/users/profile"), 422, "invalid_parameter", "owner_agent")
    refused(api.get("/v1/users/profile", params={"owner_agent": "not an address"}), 422, "invalid_agent_address",
            "owner_agent")
    for route in ("register-nick", "rename-nick", "profile/update"):
        refused(api.post(f"/v1/users/{route}", content=b"[1, 2]", headers={"content-type": "application/json"}),
                422, field="(body)")
        refused(api.post(f"/v1/users/{route}", content=b"{nick", headers={"content-type": "application/json"}),
                400, "invalid_json")
    with httpx.Client(verify=TLS, base_url=quiet.url, timeout=30) as anon:
        for method, path, body in (("GET", "/v1/users/check-nick?nick=@abc", None),
                                   ("GET", "/v1/users/resolve-nick?nick=@abc", None),
                                   ("GET", "/v1/users/profile?owner_agent=x", None),
                                   ("POST", "/v1/users/register-nick", {"nick": "@abc"}),
                                   ("POST", "/v1/users/rename-nick", {"owner_agent": "abc", "nick": "@abc"}),
                                   ("POST", "/v1/users/profile/update", {"owner_agent": "abc"})):
            refused(anon.request(method, path, json=body), 401, "missing_api_key")


# ---------------------------------------------------------------------------------------------
# the unchanged official SDK


def test_the_sdk_registers_checks_renames_and_updates(quiet: RuntimeProcess) -> None:
    sdk = AxmeClient(AxmeClientConfig(base_url=quiet.url, api_key=ADMIN_KEY))
    name = nick("sdk")
    assert_valid(CHECKED, checked := sdk.check_nick(name))
    assert checked["available"] is True
    user = sdk.register_nick({"nick": name, "display_name": "SDK User"}, idempotency_key=uuid.uuid4().hex)
    assert_valid(REGISTERED, user)
    assert sdk.check_nick(name)["available"] is False
    renamed_to = nick("sdk2")
    assert_valid(RENAMED, renamed := sdk.rename_nick({"owner_agent": user["owner_agent"], "nick": renamed_to}))
    assert renamed["nick"] == renamed_to
    assert_valid(PROFILE, profile := sdk.get_user_profile(user["owner_agent"]))
    assert (profile["nick"], profile["display_name"]) == (renamed_to, "SDK User")
    updated = sdk.update_user_profile({"owner_agent": user["owner_agent"], "email": "sdk@example.com"})
    assert_valid(UPDATED, updated)
    assert updated["email"] == "sdk@example.com" and sdk.get_user_profile(user["owner_agent"])["email"] == (
        "sdk@example.com")
    with pytest.raises(AxmeHttpError) as taken:
        sdk.register_nick({"nick": renamed_to})
    assert taken.value.status_code == 409

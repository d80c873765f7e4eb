"""/v1/aliases over a real runtime: an intent sent to an alias is delivered to the agent it is bound to (the agent's
feed hands it out) and records both; a revoke stops that at once; resolve answers the target; who may bind, list
and resolve; another replica sees a change within a second; and the in-memory book that spares every other create a
query."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from axme_cli.runtime.engine import aliases as engine
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store import open_store
from tests.auth_helpers import bearer, login
from tests.conftest import make_agent, new_intent, unique
from tests.receiver import poll
from tests.runtime.api.test_streams import feed_path, take_frames
from tests.runtime_proc import RuntimeProcess, new_database
from tests.runtime_thread import RuntimeThread


def bind(api: httpx.Client, principal_id: str, alias: str, **extra: Any) -> httpx.Response:
    return api.post("/v1/aliases", json={"principal_id": principal_id, "alias": alias, "alias_type": "service",
                                         **extra})


def test_an_intent_sent_to_an_alias_reaches_its_agent_and_records_both(quiet: RuntimeProcess,
                                                                        api: httpx.Client) -> None:
    name = unique("al-stock")
    address, token = make_agent(api, name)
    spoken = f"Stock Team {uuid.uuid4().hex[:6]}"
    r = bind(api, name, spoken, metadata={"desk": "3F"})
    assert r.status_code == 200, r.text
    alias = r.json()["alias"]
    assert (alias["principal_id"], alias["address"], alias["alias"], alias["status"], alias["revoked_at"]) == (
        address, address, spoken, "active", None)
    assert alias["metadata"] == {"desk": "3F"}

    r = api.post("/v1/intents", json=new_intent(spoken.upper()))  # matched whatever the case
    assert r.status_code == 200, r.text
    intent_id = r.json()["intent_id"]
    with quiet.client(token) as agent:
        [frame] = take_frames(agent, feed_path(name), 1, since=0, wait_seconds=5)
        assert frame.json["intent_id"] == intent_id and frame.json["to_agent"] == address
        intent = agent.get(f"/v1/intents/{intent_id}").json()["intent"]
    assert intent["to_agent"] == address
    assert intent["to_alias"] == {"alias_id": alias["alias_id"], "alias": spoken}
    created = api.get(f"/v1/intents/{intent_id}/events").json()["events"][0]
    assert created["details"]["to_alias"] == intent["to_alias"] and created["details"]["to_agent"] == address

    resolved = api.get("/v1/aliases/resolve", params={"alias": spoken.lower()}).json()["resolution"]
    assert resolved["alias"]["alias_id"] == alias["alias_id"] and resolved["principal"]["address"] == address

    # revoked: the next intent to it does not reach the agent; what was sent stays where it went
    r = api.post(f"/v1/aliases/{alias['alias_id']}/revoke")
    assert r.status_code == 200 and r.json()["alias"]["status"] == "revoked" and r.json()["alias"]["revoked_at"]
    again = api.post(f"/v1/aliases/{alias['alias_id']}/revoke").json()["alias"]
    assert again["revoked_at"] == r.json()["alias"]["revoked_at"]
    r = api.post("/v1/intents", json=new_intent(spoken))
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "to_agent", r.text
    r = api.get("/v1/aliases/resolve", params={"alias": spoken})
    assert r.status_code == 404 and r.json()["error"]["code"] == "alias_not_found", r.text
    assert api.get(f"/v1/intents/{intent_id}").json()["intent"]["to_alias"]["alias_id"] == alias["alias_id"]


def test_an_alias_wins_over_a_bare_name_until_revoked(api: httpx.Client) -> None:
    """A bare name that is an alias goes to the alias's principal; a full address never is an alias."""
    target, _ = make_agent(api, unique("al-target"))
    spelled = unique("al-shadow")  # also a valid agent name
    alias = bind(api, target, spelled).json()["alias"]
    sent = api.post("/v1/intents", json=new_intent(spelled)).json()["intent_id"]
    assert api.get(f"/v1/intents/{sent}").json()["intent"]["to_agent"] == target
    full = f"agent://local/dev/{spelled}"
    sent = api.post("/v1/intents", json=new_intent(full)).json()["intent_id"]
    assert api.get(f"/v1/intents/{sent}").json()["intent"]["to_agent"] == full
    api.post(f"/v1/aliases/{alias['alias_id']}/revoke")
    sent = api.post("/v1/intents", json=new_intent(spelled)).json()["intent_id"]
    intent = api.get(f"/v1/intents/{sent}").json()["intent"]
    assert intent["to_agent"] == full and "to_alias" not in intent


def test_a_registered_principal_receives_at_its_own_address(quiet: RuntimeProcess, api: httpx.Client) -> None:
    principal = api.post("/v1/principals", json={"principal_type": "user"}).json()["principal"]
    spoken = f"dana.{uuid.uuid4().hex[:6]}@corp.example"
    assert bind(api, principal["principal_id"], spoken).json()["alias"]["principal_id"] == principal["principal_id"]
    intent_id = api.post("/v1/intents", json=new_intent(spoken)).json()["intent_id"]
    # nobody has a key for it: the workspace key reads its feed
    name = principal["address"].rsplit("/", 1)[1]
    [frame] = take_frames(api, feed_path(name), 1, since=0, wait_seconds=5)
    assert frame.json["intent_id"] == intent_id and frame.json["to_agent"] == principal["address"]


def test_binding_again_is_idempotent_and_a_taken_alias_conflicts(api: httpx.Client) -> None:
    one, _ = make_agent(api, unique("al-one"))
    two, _ = make_agent(api, unique("al-two"))
    spoken = unique("al-desk")
    first = bind(api, one, spoken).json()["alias"]
    assert bind(api, one, spoken.upper()).json()["alias"] == first
    r = bind(api, two, spoken)
    assert r.status_code == 409 and r.json()["error"]["code"] == "alias_taken", r.text
    assert r.json()["error"]["details"]["alias_id"] == first["alias_id"]
    api.post(f"/v1/aliases/{first['alias_id']}/revoke")
    moved = bind(api, two, spoken).json()["alias"]
    assert moved["alias_id"] != first["alias_id"] and moved["address"] == two
    listed = api.get("/v1/aliases", params={"principal_id": one, "org_id": "local", "workspace_id": "dev"}).json()
    assert [(a["alias_id"], a["status"]) for a in listed["aliases"]] == [(first["alias_id"], "revoked")]
    active = api.get("/v1/aliases", params={"principal_id": two, "status": "active"}).json()["aliases"]
    assert [a["alias_id"] for a in active] == [moved["alias_id"]]


def test_who_may_bind_revoke_list_and_resolve(quiet: RuntimeProcess, api: httpx.Client) -> None:
    mine, token = make_agent(api, unique("al-mine"))
    theirs, _ = make_agent(api, unique("al-theirs"))
    spoken_mine, spoken_theirs = unique("al-m"), unique("al-t")
    bound = bind(api, mine, spoken_mine).json()["alias"]
    bind(api, theirs, spoken_theirs)
    with quiet.client(token) as agent:
        # an agent key could take intents meant for another agent's bare name: it binds nothing
        for r in (bind(agent, mine, unique("al-x")), agent.post(f"/v1/aliases/{bound['alias_id']}/revoke")):
            assert r.status_code == 403 and r.json()["error"]["code"] == "policy_denied", r.text
        assert {a["address"] for a in agent.get("/v1/aliases").json()["aliases"]} == {mine}
        r = agent.get("/v1/aliases", params={"principal_id": theirs})
        assert r.status_code == 404, r.text
        resolved = agent.get("/v1/aliases/resolve", params={"alias": spoken_theirs}).json()["resolution"]
        assert resolved["principal"]["address"] == theirs  # any key may ask where an alias goes
    person = login(api, quiet.mail_dir, f"{unique('aliaser')}@example.com")
    r = api.post("/v1/aliases", headers=bearer(person["access_token"]),
                 json={"principal_id": theirs, "alias": unique("al-p"), "alias_type": "communication"})
    assert r.status_code == 200, r.text


def test_another_workspace_and_unknown_ids_are_not_found(api: httpx.Client) -> None:
    for params in ({"org_id": "elsewhere"}, {"workspace_id": "prod"}):
        r = api.get("/v1/aliases", params=params)
        assert r.status_code == 404 and r.json()["error"]["details"]["field"] in params, r.text
        r = api.get("/v1/aliases/resolve", params={**params, "alias": "anything"})
        assert r.status_code == 404, r.text
    r = bind(api, "agent://elsewhere/dev/inventory", unique("al-far"))
    assert r.status_code == 404 and r.json()["error"]["code"] == "principal_not_found", r.text
    r = api.post(f"/v1/aliases/{uuid.uuid4()}/revoke")
    assert r.status_code == 404 and r.json()["error"]["code"] == "alias_not_found", r.text


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize(("body", "field"), [
    ({"principal_id": "inventory", "alias": "ab", "alias_type": "service"}, "alias"),
    ({"principal_id": "inventory", "alias": "  ab  ", "alias_type": "service"}, "alias"),
    ({"principal_id": "inventory", "alias": "agent://local/dev/x", "alias_type": "service"}, "alias"),
    ({"principal_id": "inventory", "alias": "@someone", "alias_type": "service"}, "alias"),
    ({"principal_id": "inventory", "alias": "someone@ax", "alias_type": "service"}, "alias"),
    ({"principal_id": "inventory", "alias": "agent_core", "alias_type": "service"}, "alias"),
    ({"principal_id": "inventory", "alias": "tab\there", "alias_type": "service"}, "alias"),
    ({"principal_id": "inventory", "alias": "desk", "alias_type": "nickname"}, "alias_type"),
    ({"principal_id": "inv", "alias": "desk", "alias_type": "service"}, "principal_id"),
    ({"alias": "desk", "alias_type": "service"}, "principal_id"),
    ({"principal_id": "inventory", "alias": "desk", "alias_type": "service", "extra": 1}, "extra"),
])
def test_bad_input_names_the_field(api: httpx.Client, body: dict[str, Any], field: str) -> None:
    r = api.post("/v1/aliases", json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert (error["details"].get("field") or error["details"]["errors"][0]["field"]) == field, error


@pytest.mark.backends("sqlite")
def test_bad_list_and_resolve_parameters_name_the_field(api: httpx.Client) -> None:
    for params, field in (({"status": "gone"}, "status"), ({"limit": "0"}, "limit")):
        r = api.get("/v1/aliases", params=params)
        assert r.status_code == 422 and r.json()["error"]["details"]["field"] == field, r.text
    r = api.get("/v1/aliases/resolve")
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "alias", r.text


@pytest.mark.backends("postgres")
def test_another_replica_follows_a_bind_and_a_revoke_within_a_second(quiet: RuntimeProcess, api: httpx.Client,
                                                                      tmp_path: Path) -> None:
    second = RuntimeThread(tmp_path, backend="postgres", database_url=quiet.database_url,
                           extra_args=["--redelivery-seconds", "600"]).start()
    try:
        target, _ = make_agent(api, unique("al-replica"))
        spoken = f"Replica Desk {uuid.uuid4().hex[:6]}"
        with second.client() as b:
            assert b.post("/v1/intents", json=new_intent(spoken)).status_code == 422  # b's book is read now
            alias = bind(api, target, spoken).json()["alias"]

            def send() -> tuple[int, Any]:
                r = b.post("/v1/intents", json=new_intent(spoken))
                return r.status_code, r.json()

            status, body = poll(send, lambda answer: answer[0] == 200, timeout=5)
            assert b.get(f"/v1/intents/{body['intent_id']}").json()["intent"]["to_agent"] == target
            api.post(f"/v1/aliases/{alias['alias_id']}/revoke")
            # until b reads its book again (within a second), its create finds the alias revoked in its
            # transaction: 409 alias_changed, never a delivery to the old target
            seen = []
            poll(lambda: seen.append(send()) or seen[-1], lambda answer: answer[0] == 422, timeout=5)
            assert {status for status, _ in seen} <= {409, 422}
            assert all(body["error"]["code"] == "alias_changed" for status, body in seen if status == 409)
    finally:
        second.stop()


@pytest.mark.backends("sqlite")
def test_the_book_is_read_once_and_a_stale_one_is_caught_in_the_transaction(tmp_path: Path) -> None:
    """engine.aliases.AliasBook on the real store: creates ask the database nothing after the first read (and
    nothing at all for agent:// addresses); a revoke drops it; a create that used a stale entry finds the alias
    revoked inside its transaction (AliasChanged, 409)."""
    async def main() -> None:
        store = open_store(new_database("sqlite", tmp_path))
        await store.open()
        s = Settings()
        reads = 0
        real = store.active_alias_index

        async def counted(org: str, workspace: str) -> list[dict[str, Any]]:
            nonlocal reads
            reads += 1
            return await real(org, workspace)

        store.active_alias_index = counted  # type: ignore[method-assign]
        admin = Principal("workspace", "k", "initiator://local/dev/admin")
        await store.write(lambda tx: tx.insert_service_account({
            "service_account_id": str(uuid.uuid4()), "org_id": "local", "workspace_id": "dev", "name": "stock",
            "address": "agent://local/dev/stock", "display_name": None, "description": None, "status": "active",
            "created_by_actor_id": "k", "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}))
        book = engine.AliasBook()
        assert await book.lookup(store, s, "agent://local/dev/desk") is None and reads == 0
        for n in range(100):
            assert await book.lookup(store, s, f"name-{n}") is None
        assert reads == 1
        req = {"principal_id": "stock", "alias": "Front Desk", "alias_type": "service"}
        row = await store.write(lambda tx: engine.op_bind(tx, s, admin, req, time.time()))
        assert await book.lookup(store, s, "front desk") is None  # not dropped yet: stale
        book.invalidate()  # what the bind route does after its commit
        hits = await asyncio.gather(*[book.lookup(store, s, "FRONT DESK") for _ in range(20)])
        assert reads == 2 and {h.address for h in hits if h} == {"agent://local/dev/stock"} and all(hits)
        await store.write(lambda tx: engine.op_revoke(tx, s, admin, row["alias_id"], time.time()))
        stale = hits[0]
        assert stale is not None
        with pytest.raises(engine.AliasChanged):
            await store.write(lambda tx: engine.confirm(tx, s, {"to_alias": stale.recorded()}))
        await store.close()

    asyncio.run(main())

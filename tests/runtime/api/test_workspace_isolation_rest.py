"""Workspace isolation of the last families over a real runtime, on both backends: media uploads, the schema
registry and ``/v1/auth/whoami`` serve every workspace's keys in their own workspace (another's ids 404, in both
directions); usage counts what a workspace stored, created and streamed in that workspace alone (the daily rollup's
recount and the stored bytes counted from the rows too); a join_organization approved in another workspace lets its
person log in; a policy grant naming another workspace's agent is refused. Three workspaces as in
test_workspace_isolation.py: ``a`` the runtime's default one, ``b`` and ``c`` of a new org. Users and invites stay
the default workspace's (docs/architecture.md says why): their refusal is checked here too."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from axme_cli.runtime.clock import ManualClock
from axme_cli.runtime.engine import usage
from axme_cli.runtime.store import open_store
from tests.auth_helpers import bearer, login
from tests.conftest import NO_LOGIN_LIMITS, unique
from tests.runtime.api.test_workspace_isolation import Space, err, make_sa, ok, spaces
from tests.runtime_proc import TLS
from tests.runtime_thread import RuntimeThread

__all__ = ["spaces"]  # the fixture, used by name

START = 1_800_000_000.0  # 2027-01-15T08:00Z: the test clock's start; tests move it forward only
STAFF = "staff@iso-rest.example"


@pytest.fixture(scope="module")
def rt(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeThread]:
    proc = RuntimeThread(tmp_path_factory.mktemp("iso-rest"), backend=backend, clock=ManualClock(START),
                         extra_args=["--redelivery-seconds", "600", "--allow-email", STAFF, *NO_LOGIN_LIMITS])
    proc.start()
    yield proc
    proc.stop()


def upload(api: httpx.Client, data: bytes) -> str:
    """A finalized upload of ``data`` made with ``api``'s key: its id."""
    created = ok(api.post("/v1/media/create-upload", json={"filename": "r.bin", "mime_type": "application/pdf",
                                                           "size_bytes": len(data)}))
    assert httpx.put(created["upload_url"], content=data, verify=TLS).status_code == 200
    ok(api.post("/v1/media/finalize-upload", json={"upload_id": created["upload_id"], "size_bytes": len(data),
                                                    "sha256": hashlib.sha256(data).hexdigest()}))
    return str(created["upload_id"])


def send(api: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    """POST /v1/intents of ``body`` with a fresh correlation id."""
    return api.post("/v1/intents", json={"correlation_id": str(uuid.uuid4()), **body})


def summary(rt: RuntimeThread, space: Space) -> dict[str, Any]:
    with rt.client(space.key) as api:
        return dict(ok(api.get("/v1/usage/summary"))["summary"])


# ---------------------------------------------------------------------------------------------
# media


def test_uploads_are_their_workspaces_own(rt: RuntimeThread, spaces: dict[str, Space]) -> None:
    made = {}
    stored = {who: summary(rt, s)["dimensions"]["storage_bytes"]["used"] for who, s in spaces.items()}
    for who, space in spaces.items():
        with rt.client(space.key) as api:
            made[who] = upload(api, who.encode() * 100)
            assert api.get(f"/v1/media/download/{made[who]}").content == who.encode() * 100
    for who, space in spaces.items():
        with rt.client(space.key) as api:
            for other_who in (w for w in spaces if w != who):
                theirs = made[other_who]
                for path in (f"/v1/media/{theirs}", f"/v1/media/download/{theirs}", f"/v1/media/preview/{theirs}"):
                    err(api.get(path), 404, "upload_not_found")
                err(api.post("/v1/media/finalize-upload", json={"upload_id": theirs, "size_bytes": 100}), 404,
                    "upload_not_found")
                # nor can it be attached to an intent sent from here
                sent = send(api, {"intent_type": "doc.review.v1", "to_agent": unique("rev"),
                                                     "payload": {}, "attachments": [{"upload_id": theirs}]})
                err(sent, 422, "invalid_attachment", "attachments[0].upload_id")
                # an owner_agent of another workspace is as missing as an unknown agent
                other = spaces[other_who]
                err(api.post("/v1/media/create-upload", json={
                    "filename": "x.bin", "mime_type": "application/pdf", "size_bytes": 1,
                    "owner_agent": other.prefix + unique("o")}), 404, "agent_not_found", "owner_agent")
            assert ok(api.get(f"/v1/media/{made[who]}"))["upload"]["upload_id"] == made[who]
    # each workspace's stored bytes grew by its own upload alone
    for who, space in spaces.items():
        assert summary(rt, space)["dimensions"]["storage_bytes"]["used"] == stored[who] + 100


def test_an_upload_counts_against_its_workspaces_storage(rt: RuntimeThread, spaces: dict[str, Space]) -> None:
    a, b = spaces["a"], spaces["b"]
    used = summary(rt, b)["dimensions"]["storage_bytes"]["used"]
    with rt.client(b.key) as api:
        ok(api.patch("/v1/quotas", json={"dimensions": {"storage_bytes": used + 10}}))
        try:
            body = {"filename": "big.bin", "mime_type": "application/pdf", "size_bytes": 11}
            refused = api.post("/v1/media/create-upload", json=body)
            err(refused, 429 if refused.status_code == 429 else 409, "quota_exceeded")
            assert refused.json()["error"]["details"]["dimension"] == "storage_bytes"
            with rt.client(a.key) as api_a:  # A has no such limit: the same upload goes through there
                ok(api_a.post("/v1/media/create-upload", json=body))
        finally:
            ok(api.patch("/v1/quotas", json={"dimensions": {"storage_bytes": None}}))


# ---------------------------------------------------------------------------------------------
# schemas


def test_the_schema_registry_is_per_workspace(rt: RuntimeThread, spaces: dict[str, Space]) -> None:
    semantic_type = f"{unique('order').replace('-', '')}.place.v1"
    for who, space in spaces.items():  # one semantic type, each workspace's own core schema
        schema = {"type": "object", "required": [f"field_{who}"]}
        with rt.client(space.key) as api:
            ok(api.post("/v1/schemas", json={"semantic_type": semantic_type, "schema_json": schema, "scope": "core",
                                             "compatibility_mode": "strict"}))
    for who, space in spaces.items():
        with rt.client(space.key) as api:
            got = ok(api.get(f"/v1/schemas/{semantic_type}"))["schema"]
            assert got["schema_json"]["required"] == [f"field_{who}"] and got["scope"] == "core"
            # an intent of that type sent here is checked against this workspace's schema alone
            sa, _ = make_sa(api, unique("clerk"))
            intent = {"intent_type": semantic_type, "to_agent": sa["agent_address"], "schema_mode": "enforce"}
            ok(send(api, {**intent, "payload": {f"field_{who}": 1}}))
            for other_who in (w for w in spaces if w != who):
                err(send(api, {**intent, "payload": {f"field_{other_who}": 1}}), 422,
                    "schema_validation_failed")
                # a tenant schema for another workspace's agent is as missing as the agent
                other = spaces[other_who]
                err(api.get(f"/v1/schemas/{semantic_type}", params={"owner_agent": other.prefix + "clerk"}), 404,
                    "agent_not_found", "owner_agent")
    # a semantic type only B registered is unknown to A and C
    lone = f"{unique('lone').replace('-', '')}.only.v1"
    with rt.client(spaces["b"].key) as api:
        ok(api.post("/v1/schemas", json={"semantic_type": lone, "schema_json": {"type": "object"}, "scope": "core",
                                         "compatibility_mode": "strict"}))
    for space in (spaces["a"], spaces["c"]):
        with rt.client(space.key) as api:
            err(api.get(f"/v1/schemas/{lone}"), 404, "schema_not_found")


# ---------------------------------------------------------------------------------------------
# whoami, and the families that stay the default workspace's


def test_whoami_reports_the_callers_own_workspace(rt: RuntimeThread, spaces: dict[str, Space]) -> None:
    for space in spaces.values():
        with rt.client(space.key) as api:
            me = ok(api.get("/v1/auth/whoami"))
            assert (me["org_id"], me["workspace_id"]) == (space.org_id, space.workspace_id)
            assert me["principal"]["is_admin"] is True
    with rt.client(spaces["b"].key) as api:
        sa, key = make_sa(api, unique("who"))
    with rt.client(key["token"]) as as_agent:
        me = ok(as_agent.get("/v1/auth/whoami"))
        assert (me["org_id"], me["workspace_id"]) == (spaces["b"].org_id, spaces["b"].workspace_id)
        assert me["principal"]["address"] == sa["agent_address"]


def test_billing_answers_every_workspace_alike(rt: RuntimeThread, spaces: dict[str, Space]) -> None:
    """Billing is AXME's hosted service's: every workspace's key learns so (501), none is told its route is refused."""
    for space in spaces.values():
        with rt.client(space.key) as api:
            err(api.get("/v1/billing/plan"), 501, "not_available_locally")


def test_users_and_invites_stay_the_default_workspaces(rt: RuntimeThread, spaces: dict[str, Space]) -> None:
    for space in (spaces["b"], spaces["c"]):
        with rt.client(space.key) as api:
            for method, path in (("GET", "/v1/users/check-nick?nick=@someone"), ("GET", "/v1/users/profile"),
                                 ("POST", "/v1/users/register-nick"), ("POST", "/v1/invites/create")):
                refused = api.request(method, path)
                err(refused, 403, "workspace_not_served")
                assert "default workspace" in refused.json()["error"]["message"]
    with rt.client(spaces["a"].key) as api:
        assert api.get("/v1/users/check-nick", params={"nick": "@someone"}).status_code == 200


# ---------------------------------------------------------------------------------------------
# counts


def test_streams_count_in_their_workspace(rt: RuntimeThread, spaces: dict[str, Space]) -> None:
    a, b = spaces["a"], spaces["b"]
    opened = {w: summary(rt, s)["counters"]["sse_streams_opened"] for w, s in spaces.items()}
    with rt.client(b.key) as api:
        sa, _ = make_sa(api, unique("listener"))
        intent_id = ok(send(api, {"intent_type": "t.stream.v1", "to_agent": sa["agent_address"],
                                                     "payload": {}}))["intent_id"]
        streamed = api.get(f"/v1/intents/{intent_id}/events/stream", params={"wait_seconds": 1})
        assert streamed.status_code == 200, streamed.text
    assert summary(rt, b)["counters"]["sse_streams_opened"] == opened["b"] + 1
    assert summary(rt, a)["counters"]["sse_streams_opened"] == opened["a"]
    assert summary(rt, spaces["c"])["counters"]["sse_streams_opened"] == opened["c"]
    # B's stream limit holds for B's streams and not A's
    with rt.client(b.key) as api:
        ok(api.patch("/v1/quotas", json={"dimensions": {"sse_streams_max": 0}}))
        try:
            refused = api.get(f"/v1/intents/{intent_id}/events/stream", params={"wait_seconds": 1})
            assert refused.json()["error"]["code"] == "quota_exceeded", refused.text
            assert refused.json()["error"]["details"]["dimension"] == "sse_streams_max"
            with rt.client(a.key) as api_a:
                mine = ok(send(api_a, {"intent_type": "t.stream.v1", "to_agent": unique("l"),
                                                          "payload": {}}))["intent_id"]
                assert api_a.get(f"/v1/intents/{mine}/events/stream", params={"wait_seconds": 1}).status_code == 200
        finally:
            ok(api.patch("/v1/quotas", json={"dimensions": {"sse_streams_max": None}}))


def test_the_daily_rollup_recounts_each_workspaces_intents(rt: RuntimeThread, spaces: dict[str, Space]) -> None:
    clock = rt.clock
    assert isinstance(clock, ManualClock)
    day = (int(clock.time()) // 86400 + 1) * 86400  # the next midnight (UTC): a day nothing was made on yet
    clock.set(day + 3600)
    sent = {"a": 1, "b": 3, "c": 0}
    for who, n in sent.items():
        with rt.client(spaces[who].key) as api:
            for _ in range(n):
                ok(send(api, {"intent_type": "t.count.v1", "to_agent": unique("counted"),
                                                 "payload": {"x": who}}))
    clock.set(day + 86400 + 3600)  # the next day: that one has ended
    for who, n in sent.items():
        space = spaces[who]
        with rt.client(space.key) as api:
            rolled = ok(api.post("/v1/usage/rollups/daily", params={"window_days": 2}))["rollup"]
        assert (rolled["org_id"], rolled["workspace_id"]) == (space.org_id, space.workspace_id)
        that_day = {d["day"]: d for d in rolled["days"]}[usage.day_of(day)]
        assert that_day["intents_created"] == n, (who, rolled)
        assert that_day["intent_payload_bytes"] == n * len('{"x":"a"}'), (who, rolled)



def test_stored_bytes_are_counted_from_each_workspaces_rows(backend: str, tmp_path: Path) -> None:
    """What a first start counts (``usage.op_count_stored``): the payloads and finalized uploads of one workspace."""
    proc = RuntimeThread(tmp_path, backend=backend, extra_args=list(NO_LOGIN_LIMITS))
    proc.start()
    try:
        with proc.client() as api:
            org_id = ok(api.post("/v1/organizations", json={"name": unique("st"), "requested_by_actor_id": "o@x.x"})
                        )["organization"]["org_id"]
            made = ok(api.post(f"/v1/organizations/{org_id}/workspaces",
                               json={"name": "st-b", "environment": "sandbox"}))
            upload(api, b"a" * 10)
            ok(send(api, {"intent_type": "t.st.v1",
                                             "to_agent": unique("st"), "payload": {"x": "a"}}))
        with proc.client(made["key"]["token"]) as api:
            upload(api, b"b" * 1000)
            for _ in range(3):
                ok(send(api, {"intent_type": "t.st.v1",
                                                 "to_agent": unique("st"), "payload": {"x": "b"}}))
        b = (org_id, made["workspace"]["workspace_id"])
    finally:
        proc.stop()
    payload = len('{"x":"a"}')

    async def counted() -> tuple[int, int, int]:
        store = open_store(proc.database_url or str(proc.db))
        await store.open()
        try:
            s_b = dataclasses.replace(proc.settings, org=b[0], workspace=b[1], scoped=True)
            await store.write(lambda tx: usage.op_count_stored(tx, s_b))
            mine = await store.write(lambda tx: tx.stored_bytes(None, None))
            theirs = await store.write(lambda tx: tx.stored_bytes(*b))
            ever = await store.write(lambda tx: tx.usage_value(*b, usage.STORED, usage.EVER))
            return mine, theirs, ever
        finally:
            await store.close()

    mine, theirs, ever = asyncio.run(counted())
    assert mine == 10 + payload
    assert theirs == ever == 1000 + 3 * payload


# ---------------------------------------------------------------------------------------------
# access requests and policy grants


def test_a_join_approved_in_b_lets_the_person_log_in_and_act_in_b(rt: RuntimeThread, spaces: dict[str, Space]) -> None:
    b = spaces["b"]
    newcomer = f"{unique('joiner')}@elsewhere.example"
    with rt.client() as anon:
        refused = anon.post("/v1/auth/login-intent", json={"email": newcomer})
        err(refused, 403, "email_not_allowed")
    with rt.client(b.key) as api:
        asked = ok(api.post("/v1/access-requests", json={
            "request_type": "join_organization", "requester_actor_id": newcomer, "org_id": b.org_id,
            "workspace_id": b.workspace_id, "justification": "joins B"}))["access_request"]
        ok(api.post(f"/v1/access-requests/{asked['access_request_id']}/review",
                    json={"decision": "approve", "reviewer_actor_id": "b-admin"}))
    with rt.client() as anon:
        person = login(anon, rt.mail_dir, newcomer)
        as_person = bearer(person["access_token"])
        me = ok(anon.get("/v1/auth/whoami", headers=as_person))
        assert me["principal"]["email"] == newcomer
        assert (me["org_id"], me["workspace_id"]) == (spaces["a"].org_id, spaces["a"].workspace_id)
        # joined B's organization as a member of B: the person may act there (and not in C)
        ok(anon.post("/v1/portal/personal/workspace-selection", headers=as_person,
                     json={"org_id": b.org_id, "workspace_id": b.workspace_id}))
        me = ok(anon.get("/v1/auth/whoami", headers=as_person))
        assert (me["org_id"], me["workspace_id"]) == (b.org_id, b.workspace_id)
        c = spaces["c"]
        err(anon.post("/v1/portal/personal/workspace-selection", headers=as_person,
                      json={"org_id": c.org_id, "workspace_id": c.workspace_id}), 404, "workspace_not_found")
    with rt.client(b.key) as api:
        members = ok(api.get(f"/v1/organizations/{b.org_id}/members"))["members"]
        assert [(m["role"], m["workspace_id"]) for m in members if m["actor_id"] == newcomer] == [
            ("member", b.workspace_id)]


def test_a_policy_grant_to_another_workspaces_agent_is_refused(rt: RuntimeThread,
                                                              spaces: dict[str, Space]) -> None:
    for who, space in spaces.items():
        with rt.client(space.key) as api:
            sa, _ = make_sa(api, unique("granted"))
            intent_id = ok(send(api, {"intent_type": "t.grant.v1", "to_agent": sa["agent_address"],
                                                         "payload": {}}))["intent_id"]
            for other in (s for w, s in spaces.items() if w != who):
                key = f"delegate:{other.prefix}{unique('ops')}"
                err(api.post(f"/v1/intents/{intent_id}/policy", json={"grants_patch": {key: {"allow": ["resume"]}}}),
                    404, "agent_not_found", f"grants_patch.{key[:100]}")
            # its own workspace's agent is granted
            mine = f"delegate:{sa['agent_address']}"
            granted = api.post(f"/v1/intents/{intent_id}/policy", json={"grants_patch": {mine: {"allow": ["resume"]}}})
            assert granted.status_code == 200, granted.text
            got = ok(api.get(f"/v1/intents/{quote(intent_id)}"))
            assert mine in str(got)

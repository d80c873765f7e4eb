"""The schema registry (POST /v1/schemas, GET /v1/schemas/{semantic_type}) on the real runtime: registered
schemas answer in the spec's shapes; intents of a registered type are checked against the schema that applies
(the target agent's own, else the workspace's) as schema_mode says (enforce: 422 naming the payload's field;
warn: taken, the problem on intent.created); the inert-schema rules of task forms; who may register what; a
replica hears of a new schema; the official SDK's methods; and the in-memory index that spares a create without
a schema any query."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from axme_sdk import AxmeClient, AxmeClientConfig, AxmeHttpError

from axme_cli.runtime.engine import schemas as engine
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.store import open_store
from tests.conftest import ADMIN_KEY, make_agent, new_intent, unique
from tests.protocol.test_conformance import assert_valid
from tests.receiver import poll
from tests.runtime_proc import TLS, RuntimeProcess, new_database
from tests.runtime_thread import RuntimeThread

ORDER = {"type": "object", "required": ["order_id"], "additionalProperties": False,
         "properties": {"order_id": {"type": "string", "pattern": "^ord_[0-9]+$"},
                        "items": {"type": "array", "items": {"type": "object", "required": ["sku"],
                                                             "properties": {"sku": {"type": "string"}}}}}}


def semantic_type(parts: int = 2) -> str:
    """A type no other test registers: ``t<hex>.x[.y].v1``."""
    return f"t{uuid.uuid4().hex[:10]}." + ".".join(["step"] * (parts - 1)) + ".v1"


def register(client: httpx.Client, stype: str, schema: dict[str, Any] | None = None, *, mode: str = "strict",
             scope: str = "core", status: int = 200, **extra: Any) -> dict[str, Any]:
    body = {"semantic_type": stype, "schema_json": schema or ORDER, "compatibility_mode": mode, "scope": scope,
            **extra}
    r = client.post("/v1/schemas", json=body)
    assert r.status_code == status, r.text
    return dict(r.json())


def send(client: httpx.Client, to: str, stype: str, payload: dict[str, Any], **extra: Any) -> httpx.Response:
    return client.post("/v1/intents", json=new_intent(to, intent_type=stype, payload=payload, **extra))


def created_details(client: httpx.Client, intent_id: str) -> dict[str, Any]:
    events = client.get(f"/v1/intents/{intent_id}/events").json()["events"]
    assert events[0]["event_type"] == "intent.created"
    return dict(events[0]["details"])


def error(r: httpx.Response, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"]["code"] == code, body
    if field is not None:
        assert body["error"]["details"]["field"] == field, body
        assert field in body["error"]["message"], body
    return dict(body["error"])


# ---------------------------------------------------------------------------------------------
# registering and reading


def test_upsert_and_get_answer_the_spec_shapes(api: httpx.Client) -> None:
    stype = semantic_type(3)  # the spec's semantic_type pattern wants three parts
    up = register(api, stype, mode="backward", schema_ref="urn:example:order")
    assert_valid("public_api/api.schemas.upsert.response.v1.json", up)
    assert up["schema"]["schema_ref"] == "urn:example:order" and up["schema"]["owner_agent"] is None
    got = api.get(f"/v1/schemas/{stype}")
    assert got.status_code == 200, got.text
    assert_valid("public_api/api.schemas.get.response.v1.json", got.json())
    schema = got.json()["schema"]
    assert schema["schema_json"] == ORDER and schema["scope"] == "core" and schema["active"] is True
    assert schema["schema_hash"] == up["schema"]["schema_hash"] and len(schema["schema_hash"]) == 64


def test_the_same_registration_again_changes_nothing_and_a_new_one_replaces_it(api: httpx.Client) -> None:
    stype = semantic_type()
    first = register(api, stype)["schema"]
    assert first["schema_ref"] == f"registry://core/{stype}@{first['schema_hash'][:12]}"
    again = register(api, stype)["schema"]
    assert again == first  # a retry: same updated_at, same hash
    replaced = register(api, stype, {**ORDER, "additionalProperties": True}, mode="warn")["schema"]
    assert replaced["schema_hash"] != first["schema_hash"] and replaced["compatibility_mode"] == "warn"
    assert replaced["created_at"] == first["created_at"] and replaced["updated_at"] > first["updated_at"]
    audit = api.get("/v1/audit/events", params={"action_prefix": "schema.upserted", "limit": 1000}).json()["events"]
    mine = [e for e in audit if e["target_id"] == stype]
    assert [e["details"]["created"] for e in mine] == [False, True]  # newest first; the retry recorded nothing


# ---------------------------------------------------------------------------------------------
# intents checked against the schema of their type


def test_enforce_refuses_a_payload_naming_its_field_and_takes_one_that_fits(api: httpx.Client) -> None:
    stype = semantic_type()
    head = register(api, stype)["schema"]
    r = send(api, unique("shop"), stype, {"order_id": "ord_1", "items": [{"sku": "A"}, {"qty": 1}]})
    err = error(r, 422, "schema_validation_failed", "payload.items.1")
    assert "'sku' is a required property" in err["message"] and err["details"]["schema_ref"] == head["schema_ref"]
    error(send(api, unique("shop"), stype, {"order_id": "ORD-1"}), 422, "schema_validation_failed",
          "payload.order_id")
    error(send(api, unique("shop"), stype, {"order_id": "ord_1", "extra": 1}), 422, "schema_validation_failed",
          "payload")
    ok = send(api, unique("shop"), stype, {"order_id": "ord_7", "items": [{"sku": "A"}]})
    assert ok.status_code == 200, ok.text
    assert created_details(api, ok.json()["intent_id"])["schema_validation"] == {
        "semantic_type": stype, "schema_ref": head["schema_ref"], "schema_hash": head["schema_hash"],
        "mode": "enforce", "valid": True}


def test_warn_takes_the_intent_and_records_the_problem_on_intent_created(api: httpx.Client) -> None:
    stype = semantic_type()
    register(api, stype, mode="warn")
    r = send(api, unique("shop"), stype, {"order_id": 12})
    assert r.status_code == 200, r.text
    checked = created_details(api, r.json()["intent_id"])["schema_validation"]
    assert checked["mode"] == "warn" and checked["valid"] is False
    assert checked["problem"]["field"] == "payload.order_id" and "is not of type 'string'" in checked["problem"][
        "message"]


def test_schema_mode_asks_for_more_or_less_except_of_a_strict_schema(api: httpx.Client) -> None:
    backward, warn, strict = semantic_type(), semantic_type(), semantic_type()
    register(api, backward, mode="backward")
    register(api, warn, mode="warn")
    register(api, strict, mode="strict")
    bad = {"order_id": "nope"}
    error(send(api, "shop", backward, bad), 422, "schema_validation_failed", "payload.order_id")
    r = send(api, "shop", backward, bad, schema_mode="none")
    assert r.status_code == 200 and "schema_validation" not in created_details(api, r.json()["intent_id"])
    r = send(api, "shop", backward, bad, schema_mode="warn")
    assert r.status_code == 200 and created_details(api, r.json()["intent_id"])["schema_validation"]["valid"] is False
    error(send(api, "shop", warn, bad, schema_mode="enforce"), 422, "schema_validation_failed", "payload.order_id")
    for asked in ("none", "warn"):
        error(send(api, "shop", strict, bad, schema_mode=asked), 422, "schema_validation_failed", "payload.order_id")


def test_the_target_agents_own_schema_comes_before_the_workspaces(api: httpx.Client) -> None:
    stype = semantic_type()
    own, own_key = make_agent(api, unique("picky"))
    other = unique("relaxed")
    register(api, stype)  # the workspace's: order_id must look like ord_N
    with httpx.Client(verify=TLS, base_url=str(api.base_url), headers={"x-api-key": own_key}, timeout=10) as picky:
        mine = register(picky, stype, {"type": "object", "required": ["sku"]}, scope="tenant")["schema"]
        assert mine["owner_agent"] == own and mine["scope"] == "tenant"
        assert picky.get(f"/v1/schemas/{stype}").json()["schema"]["owner_agent"] == own  # its own first
    assert api.get(f"/v1/schemas/{stype}").json()["schema"]["scope"] == "core"
    assert api.get(f"/v1/schemas/{stype}", params={"owner_agent": own}).json()["schema"]["owner_agent"] == own
    error(send(api, own, stype, {"order_id": "ord_1"}), 422, "schema_validation_failed", "payload")  # no sku
    assert send(api, own, stype, {"sku": "A", "order_id": "whatever"}).status_code == 200
    assert send(api, other, stype, {"order_id": "ord_1"}).status_code == 200
    error(send(api, other, stype, {"sku": "A"}), 422, "schema_validation_failed", "payload")


def test_an_inactive_schema_checks_nothing_and_is_not_found(api: httpx.Client) -> None:
    stype = semantic_type()
    register(api, stype)
    error(send(api, "shop", stype, {"n": 1}), 422, "schema_validation_failed", "payload")
    register(api, stype, active=False)
    r = send(api, "shop", stype, {"n": 1})  # the registry changed: the next create knows at once
    assert r.status_code == 200, r.text
    assert "schema_validation" not in created_details(api, r.json()["intent_id"])
    error(api.get(f"/v1/schemas/{stype}"), 404, "schema_not_found")


def test_a_schema_registered_after_a_create_applies_to_the_next_one(api: httpx.Client) -> None:
    stype = semantic_type()
    assert send(api, "shop", stype, {"n": 1}).status_code == 200  # no schema (the index is read and kept)
    register(api, stype)
    error(send(api, "shop", stype, {"n": 1}), 422, "schema_validation_failed", "payload")
    register(api, stype, {"type": "object"})
    assert send(api, "shop", stype, {"n": 1}).status_code == 200


def test_a_human_task_to_agent_core_is_checked_too(api: httpx.Client) -> None:
    stype = semantic_type()
    register(api, stype)
    task = {"title": "Approve the order"}
    error(send(api, "agent://agent_core", stype, {"n": 1}, human_task=task), 422, "schema_validation_failed",
          "payload")
    assert send(api, "agent://agent_core", stype, {"order_id": "ord_2"}, human_task=task).status_code == 200


# ---------------------------------------------------------------------------------------------
# inert schemas (the rules of task forms: protocol/schemas.py)


@pytest.mark.parametrize(("schema", "field", "named"), [
    ({"$ref": "http://127.0.0.1:9/evil.json"}, "schema_json.$ref", "only references inside the schema"),
    ({"properties": {"x": {"$ref": "file:///etc/passwd"}}}, "schema_json.properties.x.$ref", "nothing is fetched"),
    ({"type": "string", "pattern": "^(?=a)b"}, "schema_json.pattern", "RE2"),
    ({"type": "nonsense"}, "schema_json.type", "not a valid JSON Schema"),
    ({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}, "schema_json.$ref.$ref", "recursive"),
    ({"description": "x" * 70_000}, "schema_json", "at most 65536"),
])
@pytest.mark.backends("sqlite")
def test_a_schema_the_runtime_will_not_evaluate_is_400_naming_where(api: httpx.Client, schema: dict[str, Any],
                                                                    field: str, named: str) -> None:
    stype = semantic_type()
    r = api.post("/v1/schemas", json={"semantic_type": stype, "schema_json": schema, "compatibility_mode": "strict",
                                      "scope": "core"})
    err = error(r, 400, "schema_invalid", field)
    assert named in err["message"], err
    error(api.get(f"/v1/schemas/{stype}"), 404, "schema_not_found")


def test_a_backtracking_pattern_runs_in_linear_time_on_a_hostile_payload(api: httpx.Client) -> None:
    stype = semantic_type()
    register(api, stype, {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}}})
    r = send(api, "shop", stype, {"s": "a" * 50_000 + "!"})  # exponential for a backtracking engine
    error(r, 422, "schema_validation_failed", "payload.s")


# ---------------------------------------------------------------------------------------------
# who may register and read what


def test_scopes_and_owners(quiet: RuntimeProcess, api: httpx.Client) -> None:
    stype = semantic_type()
    me, key = make_agent(api, unique("owner"))
    other, _ = make_agent(api, unique("other"))
    with quiet.client(key) as agent:
        error(agent.post("/v1/schemas", json={"semantic_type": stype, "schema_json": ORDER,
                                              "compatibility_mode": "strict", "scope": "core"}),
              403, "scope_forbidden", "scope")
        r = agent.post("/v1/schemas", params={"owner_agent": other},
                       json={"semantic_type": stype, "schema_json": ORDER, "compatibility_mode": "strict"})
        error(r, 403, "policy_denied")
        error(agent.get(f"/v1/schemas/{stype}", params={"owner_agent": other}), 403, "policy_denied")
        error(agent.get(f"/v1/schemas/{stype}"), 404, "schema_not_found")
    r = api.post("/v1/schemas", json={"semantic_type": stype, "schema_json": ORDER, "compatibility_mode": "strict"})
    error(r, 400, "owner_agent_required", "owner_agent")
    r = api.post("/v1/schemas", headers={"x-owner-agent": me},
                 json={"semantic_type": stype, "schema_json": ORDER, "compatibility_mode": "strict"})
    assert r.status_code == 200 and r.json()["schema"]["owner_agent"] == me, r.text
    with quiet.client(key) as agent:
        assert agent.get(f"/v1/schemas/{stype}").json()["schema"]["owner_agent"] == me
    with httpx.Client(verify=TLS, base_url=quiet.url, timeout=10) as anonymous:
        assert anonymous.get(f"/v1/schemas/{stype}").status_code == 401
        assert anonymous.post("/v1/schemas", json={}).status_code == 401


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize(("body", "field"), [
    ({"semantic_type": "Order.place.v1"}, "semantic_type"),
    ({"semantic_type": "order.v1"}, "semantic_type"),
    ({"compatibility_mode": "loose"}, "compatibility_mode"),
    ({"scope": "global"}, "scope"),
    ({"schema_json": "{}"}, "schema_json"),
    ({"schema_json": None}, "schema_json"),
    ({"active": "yes"}, "active"),
    ({"schema_ref": "r" * 513}, "schema_ref"),
    ({"owner": "x"}, "owner"),
])
def test_malformed_fields_are_422_naming_them(api: httpx.Client, body: dict[str, Any], field: str) -> None:
    full = {"semantic_type": semantic_type(), "schema_json": ORDER, "compatibility_mode": "warn", "scope": "core",
            **body}
    r = api.post("/v1/schemas", json=full)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["message"].startswith(field), r.text


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("path", ["Order.place.v1", "order.v1", "x" * 300 + ".a.v1", "a.b.v1%20"])
def test_get_of_a_malformed_type_is_422(api: httpx.Client, path: str) -> None:
    error(api.get(f"/v1/schemas/{path}"), 422, "invalid_parameter", "semantic_type")


# ---------------------------------------------------------------------------------------------
# replicas, the SDK, the in-memory index


@pytest.mark.backends("postgres")
def test_another_replica_hears_of_a_new_schema(quiet: RuntimeProcess, tmp_path: Path) -> None:
    """Two runtimes on one database: a schema registered through one checks the intents the other takes (its
    index is dropped by the commit's notification)."""
    second = RuntimeThread(tmp_path, backend="postgres", database_url=quiet.database_url,
                           extra_args=["--redelivery-seconds", "600"]).start()
    try:
        stype = semantic_type()
        with quiet.client() as a, second.client() as b:
            assert send(b, "shop", stype, {"n": 1}).status_code == 200  # b keeps an index without it
            register(a, stype)
            poll(lambda: send(b, "shop", stype, {"n": 1}).status_code, lambda status: status == 422, timeout=10)
            register(a, stype, active=False)
            poll(lambda: send(b, "shop", stype, {"n": 1}).status_code, lambda status: status == 200, timeout=10)
    finally:
        second.stop()


def test_the_official_sdk_registers_and_reads_a_schema(quiet: RuntimeProcess) -> None:
    client = AxmeClient(AxmeClientConfig(base_url=quiet.url, api_key=ADMIN_KEY))
    stype = semantic_type(3)
    up = client.upsert_schema({"semantic_type": stype, "schema_json": ORDER, "compatibility_mode": "strict",
                               "scope": "core"}, idempotency_key=uuid.uuid4().hex)
    assert up["ok"] is True and up["schema"]["semantic_type"] == stype
    got = client.get_schema(stype)
    assert got["schema"]["schema_json"] == ORDER and got["schema"]["schema_hash"] == up["schema"]["schema_hash"]
    with pytest.raises(AxmeHttpError) as refused:
        client.send_intent({"intent_type": stype, "to_agent": "shop", "payload": {"order_id": 1}})
    assert refused.value.status_code == 422
    assert client.send_intent({"intent_type": stype, "to_agent": "shop", "payload": {"order_id": "ord_3"}})
    with pytest.raises(AxmeHttpError) as missing:
        client.get_schema(semantic_type(3))
    assert missing.value.status_code == 404


@pytest.mark.backends("sqlite")
def test_the_index_is_read_once_until_the_registry_changes(tmp_path: Path) -> None:
    """engine.schemas.Registry on the real store: creates of types without a schema ask the database nothing
    after the first; a change drops the index (one read after it, however many ask at once)."""
    async def main() -> None:
        store = open_store(new_database("sqlite", tmp_path))
        await store.open()
        reads = 0
        real = store.active_schema_index

        async def counted() -> list[dict[str, Any]]:
            nonlocal reads
            reads += 1
            return await real()

        store.active_schema_index = counted  # type: ignore[method-assign]
        registry = engine.Registry()
        for n in range(200):
            assert await registry.head(store, f"t.n{n}.v1", "agent://local/dev/a") is None
        assert reads == 1
        admin = Principal("workspace", "k", "initiator://local/dev/admin")
        req = {"semantic_type": "t.n7.v1", "schema_json": ORDER, "compatibility_mode": "warn", "scope": "core"}
        await store.write(lambda tx: engine.op_upsert(tx, admin, req, None, time.time()))
        registry.invalidate()  # what Runtime._on_commit does for a commit with Notes.schemas
        heads = await asyncio.gather(*[registry.head(store, "t.n7.v1", "agent://local/dev/a") for _ in range(50)])
        assert reads == 2 and {h.compatibility_mode for h in heads if h} == {"warn"} and all(heads)
        body = await registry.schema(store, heads[0])  # type: ignore[arg-type]
        assert body == ORDER
        await store.close()

    asyncio.run(main())

"""The official Python SDK (`axme` 0.2.0, unchanged) walked through one scenario of real use against `axme dev`:
every public method outside the enterprise families gets a real answer, checked for the documented shape's key
fields (and against AXME's JSON Schema where axp-spec has one for that response).

The walk records what it called through `Recorder`; the completeness check at the end holds the set of the SDK's
public methods, minus the exclusions named below, equal to that record: a method a new SDK adds, or one the walk
stops calling, fails this test.

SQLite only: each family has its own tests on both backends (tests/runtime/api/); this one is about the SDK's
requests and what it reads from the answers.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import uuid
from contextlib import closing
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from axme_sdk import AxmeClient, AxmeClientConfig
from jsonschema import Draft202012Validator

from tests.conftest import SHARED
from tests.receiver import Receiver, poll
from tests.runtime_proc import RuntimeProcess

# The enterprise families the walk leaves out: the runtime does not serve them yet (a later issue).
ENTERPRISE: dict[str, set[str]] = {}
# Families whose SDK methods are walked, through the same Recorder and with the same completeness check, in a file
# of their own (the family's set-up is long): the method names each file must call, checked below.
ELSEWHERE = {
    "tests/runtime/api/test_routing_sdk.py": {
        "create_principal", "get_principal", "bind_alias", "list_aliases", "revoke_alias", "resolve_alias",
        "register_routing_endpoint", "list_routing_endpoints", "update_routing_endpoint", "remove_routing_endpoint",
        "resolve_routing", "upsert_transport_binding", "list_transport_bindings", "remove_transport_binding"},
    "tests/runtime/api/test_billing.py": {  # each answers 501 not_available_locally
        "update_billing_plan", "get_billing_plan", "list_billing_invoices", "get_billing_invoice"},
    "tests/runtime/api/test_quotas_sdk.py": {"get_quota", "update_quota", "get_usage_summary", "get_usage_timeseries"},
    "tests/runtime/api/test_orgs_sdk.py": {
        "create_organization", "get_organization", "update_organization", "create_workspace", "list_workspaces",
        "update_workspace", "list_organization_members", "add_organization_member", "update_organization_member",
        "remove_organization_member"},
    "tests/runtime/api/test_access_requests_sdk.py": {
        "create_access_request", "list_access_requests", "get_access_request", "review_access_request"},
}
NOT_WALKED = {
    # a property, not a method (the Recorder records calls): the Agent Mesh client, whose every method
    # tests/runtime/api/test_mesh_sdk.py walks against /v1/mesh/*
    "mesh",
}
EXCLUDED = set().union(*ENTERPRISE.values(), *ELSEWHERE.values()) | NOT_WALKED


def public_methods() -> set[str]:
    return {name for name, _ in inspect.getmembers(AxmeClient) if not name.startswith("_")}


class Recorder:
    """An AxmeClient whose public methods are recorded by name in ``called`` as they are called."""

    def __init__(self, client: AxmeClient, called: set[str]) -> None:
        self._client = client
        self._called = called

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name.startswith("_") or not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self._called.add(name)
            return attr(*args, **kwargs)

        return call


@cache
def _schema(name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((SHARED / "axp-spec" / "schemas" / "public_api" / f"api.{name}.v1.json")
                                           .read_text()))


def spec(name: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` checked against axp-spec's ``public_api/api.<name>.v1.json`` (every required field there, of its
    type and values), returned for further checks. Two things the runtime does on purpose are let through: fields
    beyond the schema's (``address`` beside ``agent_address``, ...: clients ignore what they do not read), and
    formats (``org_id`` is the runtime's name, ``local``, not a UUID)."""
    problems = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                for e in _schema(name).iter_errors(body) if e.validator != "additionalProperties"]
    assert not problems, f"{name}:\n  " + "\n  ".join(problems)
    return body


def sdk(rt: RuntimeProcess, key: str, called: set[str]) -> Any:
    return Recorder(AxmeClient(AxmeClientConfig(base_url=rt.url, api_key=key, max_retries=0)), called)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.mark.backends("sqlite")
def test_every_public_sdk_method_gets_a_real_answer(runtime: RuntimeProcess) -> None:
    called: set[str] = set()
    admin = sdk(runtime, runtime.api_key, called)

    # --- the runtime itself ----------------------------------------------------------------
    health = admin.health()
    assert health["ok"] is True and health["storage"] == "sqlite"
    org, workspace = health["org_id"], health["workspace_id"]
    capabilities = spec("capabilities.get.response", admin.get_capabilities())
    assert capabilities["ok"] is True and capabilities["capabilities"]

    # --- service accounts and their keys, made with the SDK ----------------------------------
    def service_account(name: str) -> tuple[str, str, str, str]:
        """(service account id, address, key id, token) of a new agent."""
        made = spec("service_accounts.create.response", admin.create_service_account({"name": name}))
        sa = made["service_account"]
        assert sa["name"] == name and sa["agent_address"].endswith(f"/{name}")
        key = spec("service_accounts.keys.create.response",
                   admin.create_service_account_key(sa["service_account_id"], {}))
        assert key["key"]["token"] and key["key"]["service_account_id"] == sa["service_account_id"]
        return sa["service_account_id"], sa["agent_address"], key["key"]["key_id"], key["key"]["token"]

    worker_sa, worker, _, worker_token = service_account(unique("walk-worker"))
    requester_sa, requester, _, requester_token = service_account(unique("walk-requester"))
    listed = spec("service_accounts.list.response", admin.list_service_accounts(org_id=org, workspace_id=workspace))
    assert {worker_sa, requester_sa} <= {s["service_account_id"] for s in listed["service_accounts"]}
    got_sa = spec("service_accounts.get.response", admin.get_service_account(worker_sa))
    assert got_sa["service_account"]["agent_address"] == worker
    spare = spec("service_accounts.keys.create.response", admin.create_service_account_key(worker_sa, {}))
    revoked = spec("service_accounts.keys.revoke.response",
                   admin.revoke_service_account_key(worker_sa, spare["key"]["key_id"]))
    assert revoked["key"]["key_id"] == spare["key"]["key_id"] and revoked["key"]["status"] == "revoked"
    as_worker = sdk(runtime, worker_token, called)
    as_requester = sdk(runtime, requester_token, called)
    # an agent key lists only itself (the workspace key would list every test's agents on this shared runtime)
    agents = spec("agents.list.response", as_worker.list_agents(org_id=org, workspace_id=workspace, limit=10))
    assert [a["address"] for a in agents["agents"]] == [worker]
    agent = spec("agents.get.response", admin.get_agent(worker))
    assert agent["agent"]["address"] == worker and agent["agent"]["service_account_id"] == worker_sa

    # --- the schema registry ---------------------------------------------------------------
    semantic_type = f"walk.order.x{uuid.uuid4().hex[:8]}.v1"
    schema = {"type": "object", "required": ["order_id"], "properties": {"order_id": {"type": "string"}}}
    upserted = spec("schemas.upsert.response", admin.upsert_schema(
        {"semantic_type": semantic_type, "schema_json": schema, "compatibility_mode": "strict", "scope": "core"}))
    assert upserted["ok"] is True
    got_schema = spec("schemas.get.response", admin.get_schema(semantic_type))
    assert got_schema["schema"]["semantic_type"] == semantic_type and got_schema["schema"]["schema_json"] == schema

    # --- an intent: create, read, controls and policy, delivered to its agent, resumed ----------
    correlation, key = str(uuid.uuid4()), str(uuid.uuid4())
    body = {"intent_type": semantic_type, "to_agent": worker, "reply_to": requester, "payload": {"order_id": "o-1"}}
    created = spec("intents.create.response", admin.create_intent(body, correlation_id=correlation,
                                                                   idempotency_key=key))
    intent_id = created["intent_id"]
    # the SDK retries a create that has an Idempotency-Key: a repeat is the same intent
    assert admin.create_intent(body, correlation_id=correlation, idempotency_key=key)["intent_id"] == intent_id
    got = spec("intents.get.response", admin.get_intent(intent_id))
    assert got["intent"]["intent_id"] == intent_id and got["intent"]["correlation_id"] == correlation
    events = spec("intents.events.list.response", admin.list_intent_events(intent_id))
    assert [e["event_type"] for e in events["events"]][:2] == ["intent.created", "intent.submitted"]
    assert [e["seq"] for e in admin.list_intent_events(intent_id, since=1)["events"]] == [
        e["seq"] for e in events["events"][1:]]
    controls = admin.update_intent_controls(intent_id, {"controls_patch": {"max_retries": 4},
                                                        "expected_policy_generation": 0})
    assert controls["applied"] is True and controls["policy_generation"] == 1
    assert controls["event"]["event_type"] == "intent.controls_updated"
    policy = admin.update_intent_policy(intent_id, {"grants_patch": {f"delegate:{requester}": {"allow": ["resume"]}},
                                                    "expected_policy_generation": 1})
    assert policy["applied"] is True and policy["policy_generation"] == 2
    # the agent hears of it on its stream (bounded: the first delivery), then answers with its own key
    with closing(as_worker.listen(worker, wait_seconds=1, timeout_seconds=10)) as feed:
        delivery = next(feed)
    assert delivery["intent_id"] == intent_id and delivery["status"] == "DELIVERED"
    resumed = as_worker.resume_intent(intent_id, {"action": "complete", "reserved": True})
    assert resumed["intent"]["status"] == "COMPLETED" and resumed["intent"]["result"] == {"reserved": True}
    observed = list(admin.observe(intent_id, wait_seconds=1, timeout_seconds=10))
    assert observed[-1]["event_type"] == "intent.completed"
    assert [e["seq"] for e in observed] == list(range(1, len(observed) + 1))
    assert admin.wait_for(intent_id, wait_seconds=1, timeout_seconds=10)["status"] == "COMPLETED"

    # a second intent, sent and resolved by the workspace key (its outcome reaches the requester's inbox too)
    resolved_id = admin.send_intent({"intent_type": "walk.resolve.v1", "to_agent": worker, "reply_to": requester,
                                     "payload": {}})
    resolved = spec("intents.resolve.response", admin.resolve_intent(
        resolved_id, {"status": "FAILED", "error": {"reason": "out of stock"}}))
    assert resolved["intent"]["status"] == "FAILED" and resolved["completion_delivery"]["delivered"] is True

    # --- the requester's inbox: the two outcomes are threads ---------------------------------
    inbox = spec("inbox.list.response", as_requester.list_inbox())
    assert {intent_id, resolved_id} <= {t["thread_id"] for t in inbox["threads"]}
    thread = spec("inbox.thread.response", as_requester.get_inbox_thread(intent_id))
    assert thread["thread"]["completion"]["status"] == "COMPLETED" and thread["thread"]["owner_agent"] == requester
    # the workspace key reads an owner's inbox by naming it
    assert admin.get_inbox_thread(intent_id, owner_agent=requester)["thread"] == thread["thread"]
    first_page = spec("inbox.changes.response", as_requester.list_inbox_changes(limit=1))
    rest = spec("inbox.changes.response", as_requester.list_inbox_changes(cursor=first_page["next_cursor"]))
    assert first_page["has_more"] is True and rest["has_more"] is False
    assert [c["thread"]["thread_id"] for c in first_page["changes"] + rest["changes"]] == [intent_id, resolved_id]
    replied = spec("inbox.thread.response", as_requester.reply_inbox_thread(intent_id, message="thanks, ship it"))
    assert replied["thread"]["messages"][-1]["content"] == "thanks, ship it"
    delegated = spec("inbox.thread.response", as_requester.delegate_inbox_thread(
        intent_id, {"delegate_to": worker, "note": "FYI"}))
    assert delegated["thread"]["delegated_to"] == [worker]
    first_message = replied["thread"]["messages"][0]["message_id"]
    deleted = spec("inbox.messages.delete.response", as_requester.delete_inbox_messages(
        intent_id, {"mode": "self", "message_ids": [first_message]}))
    assert deleted["deleted_count"] == 1 and deleted["message_ids"] == [first_message]
    approved = spec("inbox.thread.response", as_requester.approve_inbox_thread(intent_id, {"comment": "checked"}))
    assert approved["thread"]["status"] == "done" and approved["thread"]["decision"]["decision"] == "approved"
    rejected = spec("inbox.thread.response", as_requester.reject_inbox_thread(resolved_id, {"comment": "no stock"}))
    assert rejected["thread"]["decision"]["decision"] == "rejected"

    # --- a human task, decided as an approval -------------------------------------------------
    task_id = admin.send_intent({"intent_type": "ops.approve.v1", "to_agent": "agent://agent_core",
                                 "payload": {"change": "CHG-7"}, "human_task": {"title": "Approve CHG-7"}})
    decided = spec("approvals.decision.response", admin.decide_approval(task_id, decision="approve", comment="go"))
    assert decided["approval"]["approval_id"] == task_id and decided["approval"]["decision"] == "approve"
    assert admin.get_intent(task_id)["intent"]["status"] == "COMPLETED"

    # --- webhooks, and the deliveries they make (one receiver for both parts: each stops in ~0.5 s) ------
    with Receiver() as receiver, runtime.client() as http:
        sub = spec("webhooks.subscriptions.response", as_requester.upsert_webhook_subscription(
            {"callback_url": receiver.url, "event_types": ["inbox.thread_created"]}))
        receiver.secret = sub["secret"]
        subscription_id = sub["subscription"]["subscription_id"]
        subs = spec("webhooks.subscriptions.list.response", as_requester.list_webhook_subscriptions())
        assert [s["subscription_id"] for s in subs["subscriptions"]] == [subscription_id]
        published = spec("webhooks.events.response", as_requester.publish_webhook_event(
            {"event_type": "inbox.thread_created", "source": "walk", "payload": {"n": 7}}))
        assert published["owner_agent"] == requester and published["queued_deliveries"] == 1
        replayed = spec("webhooks.events.replay.response", as_requester.replay_webhook_event(published["event_id"]))
        assert replayed["event_id"] == published["event_id"] and replayed["queued_deliveries"] == 1
        posts = receiver.wait_posts(2)
        assert all(p["signed"] and p["json"]["payload"] == {"n": 7} for p in posts)
        deliveries = spec("deliveries.list.response", as_requester.list_deliveries(org_id=org, workspace_id=workspace))
        assert len(deliveries["deliveries"]) == 2 and {d["route_id"] for d in deliveries["deliveries"]} == {
            subscription_id}
        first = deliveries["deliveries"][0]["delivery_id"]
        named = admin.list_deliveries(org_id=org, workspace_id=workspace, principal_id=requester)
        assert [d["delivery_id"] for d in named["deliveries"]] == [d["delivery_id"] for d in deliveries["deliveries"]]
        settled = poll(lambda: as_requester.get_delivery(first)["delivery"], lambda d: d["status"] == "delivered")
        spec("deliveries.get.response", {"ok": True, "delivery": settled})
        again = spec("deliveries.replay.response", as_requester.replay_delivery(first))
        assert again["delivery"]["replay_of_delivery_id"] == first
        assert receiver.wait_posts(3)[2]["json"]["payload"] == {"n": 7}
        gone = spec("webhooks.subscriptions.delete.response",
                    as_requester.delete_webhook_subscription(subscription_id))
        assert gone["subscription_id"] == subscription_id and gone["revoked_at"]

        # a payload submitted to an agent that takes its intents over HTTP (bound with the runtime's own route:
        # the SDK has no method for a service account's delivery binding)
        r = http.patch(f"/v1/service-accounts/{requester_sa}/delivery",
                       json={"delivery_mode": "http", "callback_url": receiver.url})
        assert r.status_code == 200, r.text
        receiver.secret = r.json()["delivery_secret"]
        submitted = spec("deliveries.submit.response", admin.submit_delivery(
            {"principal_id": requester, "payload": {"hello": "agent"}, "org_id": org, "workspace_id": workspace}))
        assert submitted["delivery"]["principal_id"] == requester
        post = receiver.wait_posts(4)[3]
        assert post["signed"] and post["json"]["payload"] == {"hello": "agent"}

    # --- nicks and profiles, invites -------------------------------------------------------------
    nick = "@" + unique("walker").replace("-", "")
    checked = spec("users.check_nick.response", as_worker.check_nick(nick))
    assert checked["available"] is True
    registered = spec("users.register_nick.response", as_worker.register_nick({"nick": nick, "display_name": "W"}))
    assert registered["owner_agent"] == worker
    renamed_nick = nick + "x"
    renamed = spec("users.rename_nick.response", as_worker.rename_nick({"owner_agent": worker, "nick": renamed_nick}))
    assert renamed["nick"] == renamed_nick
    profile = spec("users.profile.get.response", as_worker.get_user_profile(worker))
    assert profile["owner_agent"] == worker and profile["nick"] == renamed_nick
    updated = spec("users.profile.update.response", as_worker.update_user_profile(
        {"owner_agent": worker, "display_name": "Walker"}))
    assert updated["display_name"] == "Walker" and updated["nick"] == renamed_nick

    invite = spec("invites.create.response", as_requester.create_invite({"owner_agent": requester,
                                                                         "recipient_hint": "Bo"}))
    token = invite["token"]
    seen = spec("invites.get.response", as_requester.get_invite(token))
    assert seen["status"] == "pending" and seen["owner_agent"] == requester
    joiner_nick = "@" + unique("joiner").replace("-", "")
    _, joiner, _, joiner_token = service_account(unique("walk-joiner"))
    as_joiner = sdk(runtime, joiner_token, called)
    accepted = spec("invites.accept.response", as_joiner.accept_invite(token, {"nick": joiner_nick}))
    assert accepted["status"] == "accepted" and accepted["owner_agent"] == joiner and accepted["nick"] == joiner_nick

    # --- media: create an upload, PUT the bytes to the URL it answered, finalize, read it --------
    data = b"%PDF-1.4 walk\n" * 50
    upload = spec("media.create_upload.response", admin.create_media_upload(
        {"filename": "walk.pdf", "mime_type": "application/pdf", "size_bytes": len(data)}))
    put = httpx.put(upload["upload_url"], content=data, timeout=10)
    assert put.status_code == 200, put.text
    finalized = spec("media.finalize_upload.response", admin.finalize_media_upload(
        {"upload_id": upload["upload_id"], "size_bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}))
    assert finalized["status"] == "ready"
    media = spec("media.get.response", admin.get_media_upload(upload["upload_id"]))
    assert media["upload"]["upload_id"] == upload["upload_id"] and media["upload"]["size_bytes"] == len(data)

    # --- MCP ----------------------------------------------------------------------------------------
    init = admin.mcp_initialize()
    assert init["protocolVersion"] == "2024-11-05" and init["serverInfo"]["name"]
    tools = admin.mcp_list_tools()
    assert "axme.get_intent" in {t["name"] for t in tools["tools"]}
    # the SDK checks the arguments against the tool's inputSchema it just listed, then calls it
    answered = admin.mcp_call_tool("axme.get_intent", arguments={"intent_id": intent_id})
    assert (answered["ok"], answered["tool"], answered["status"]) == (True, "axme.get_intent", "completed")
    assert answered["data"]["intent"]["status"] == "COMPLETED" and answered["content"][0]["type"] == "text"
    threads = admin.mcp_call_tool("axme.list_threads", owner_agent=requester)
    assert threads["owner_agent"] == requester
    assert {intent_id, resolved_id} <= {t["thread_id"] for t in threads["data"]["threads"]}

    # --- scenarios ------------------------------------------------------------------------------------
    coordinator = unique("walk-coordinator")
    bundle = {
        "scenario_id": "walk.demo.v1",
        "agents": [{"role": "coordinator", "address": coordinator, "create_if_missing": True}],
        "workflow": {"steps": [{"step_id": "coordinate", "tool_id": "tool.agent.task.v1",
                                "assigned_to": "coordinator", "intent_type": "walk.coordinate.v1"}]},
        "intent": {"type": "walk.order.v1", "payload": {"order_id": "o-2"}},
    }
    valid = admin.validate_scenario(bundle)
    assert valid["errors"] == [] and isinstance(valid["warnings"], list)
    applied = spec("scenarios.bundle.response", admin.apply_scenario(bundle))
    assert applied["scenario_id"] == "walk.demo.v1" and applied["intent_id"]
    assert [(a["role"], a["address"], a["created"]) for a in applied["agents"]] == [
        ("coordinator", f"agent://{org}/{workspace}/{coordinator}", True)]

    for client in (admin, as_worker, as_requester, as_joiner):
        client.close()

    # --- complete: every public method but the exclusions was called ------------------------------
    assert public_methods() >= EXCLUDED, f"excluded, but no longer in the SDK: {EXCLUDED - public_methods()}"
    walked = public_methods() - EXCLUDED
    root = Path(__file__).resolve().parents[2]
    for name, methods in ELSEWHERE.items():  # each of those files calls what it is said to call
        text = (root / name).read_text()
        assert not [m for m in methods if f".{m}(" not in text], (name, [m for m in methods if f".{m}(" not in text])
    assert called == walked, f"not called: {sorted(walked - called)}; excluded, yet called: {sorted(called - walked)}"

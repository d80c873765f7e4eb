"""POST /mcp (runtime/api/mcp.py, mcp_tools.py) on the real runtime: JSON-RPC over HTTP with httpx, the official
`mcp` package's own Streamable HTTP client, and the official SDK's mcp_* methods.

The protocol (batches, notifications, version negotiation), bad input (always a JSON-RPC error, never HTML or a
500), credentials and owners, the (owner, tool) rate limit, and the tools: intents sent and waited for, human
tasks answered by the API's rules, scenarios, messages and the inbox, and the families' tools.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from axme_sdk import AxmeAuthError, AxmeClient, AxmeClientConfig, AxmeRateLimitError, AxmeValidationError

from axme_cli.runtime.api import mcp_tools
from axme_cli.runtime.api.mcp import MAX_BATCH, PROTOCOL_VERSIONS
from axme_cli.runtime.settings import Settings
from tests.conftest import ADMIN_KEY, make_agent, new_intent, unique
from tests.runtime.api.test_intents import assert_error
from tests.runtime_proc import TLS, RuntimeProcess
from tests.runtime_thread import RuntimeThread

STORAGE_FREE = pytest.mark.backends("sqlite")  # refused or answered before the store is asked

# AXME's tools (docs/mcp-reference.md: 22 names and the list_inbox alias) and this runtime's own.
AXME_TOOLS = {
    "axme.register_nick", "axme.check_nick", "axme.rename_nick", "axme.get_profile", "axme.update_profile",
    "axme.resolve_contact", "axme.send_message", "axme.send", "axme.confirm_send", "axme.list_dialogs",
    "axme.open_dialog", "axme.list_threads", "axme.list_inbox", "axme.get_thread", "axme.reply", "axme.mark_read",
    "axme.delete_messages", "axme.generate_invite_link", "axme.check_invite_status", "axme.media_create_upload",
    "axme.media_upload_inline", "axme.media_finalize_upload", "axme.media_get_upload",
}
OWN_TOOLS = {"axme.send_intent", "axme.wait_intent", "axme.get_intent", "axme.list_intents", "axme.list_tasks",
             "axme.answer_task", "axme.validate_scenario", "axme.apply_scenario"}


def post(client: httpx.Client, body: Any, status: int = 200, **headers: str) -> Any:
    r = client.post("/mcp", json=body, headers=headers or None)
    assert r.status_code == status, f"{r.status_code} != {status}: {r.text}"
    assert r.headers["content-type"].startswith("application/json"), r.headers
    return r.json()


def rpc(client: httpx.Client, method: str, params: dict[str, Any] | None = None, *, status: int = 200,
        id_: Any = 1) -> dict[str, Any]:
    answer = post(client, {"jsonrpc": "2.0", "id": id_, "method": method, "params": params or {}}, status)
    assert answer["jsonrpc"] == "2.0" and answer["id"] == id_, answer
    return dict(answer)


def tool(client: httpx.Client, name: str, http: int = 200, **arguments: Any) -> dict[str, Any]:
    """A tools/call answer (result or error); ``http``: the HTTP status it must come with."""
    return rpc(client, "tools/call", {"name": name, "arguments": arguments}, status=http)


def result(answer: dict[str, Any], status: str | None = None) -> dict[str, Any]:
    """The tool result of an answer, in AXME's envelope (also MCP's content / structuredContent)."""
    assert "result" in answer, answer
    res = answer["result"]
    shown = {k: v for k, v in res.items() if k not in ("content", "structuredContent", "isError")}
    assert {"ok", "tool", "status", "owner_agent", "data"} <= set(shown), res
    assert res["structuredContent"] == shown and res["isError"] is (not res["ok"]), res
    assert res["content"][0]["type"] == "text" and res["content"][0]["text"], res
    if status is not None:
        assert res["status"] == status, res
    return dict(res)


def rpc_error(answer: dict[str, Any], code: int, names: str | None = None) -> dict[str, Any]:
    assert "error" in answer and "result" not in answer, answer
    err = answer["error"]
    assert err["code"] == code and isinstance(err["message"], str) and err["message"], answer
    if names is not None:
        assert names in err["message"], f"{names!r} not named in {err['message']!r}"
    return dict(err)


@pytest.fixture
def anon(quiet: RuntimeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=quiet.url, timeout=30, verify=TLS) as client:
        yield client


# ---------------------------------------------------------------------------------------------
# the protocol


@STORAGE_FREE
def test_initialize_negotiates_the_version_and_needs_no_key(anon: httpx.Client) -> None:
    init = rpc(anon, "initialize", {"protocolVersion": "2024-11-05", "capabilities": {},
                                    "clientInfo": {"name": "t", "version": "1"}})["result"]
    assert init["protocolVersion"] == "2024-11-05"
    assert init["capabilities"]["tools"] == {"listChanged": False}
    assert init["serverInfo"]["name"] == "axme"
    for asked in PROTOCOL_VERSIONS:  # a version this server speaks is answered as asked (MCP)
        assert rpc(anon, "initialize", {"protocolVersion": asked})["result"]["protocolVersion"] == asked
    assert rpc(anon, "initialize", {"protocolVersion": "2099-01-01"})["result"]["protocolVersion"] == \
        PROTOCOL_VERSIONS[-1]
    assert rpc(anon, "initialize")["result"]["protocolVersion"] == "2024-11-05"
    assert rpc(anon, "ping", id_="p")["result"] == {"pong": True}


@STORAGE_FREE
def test_the_capabilities_say_mcp(api: httpx.Client) -> None:
    assert "mcp" in api.get("/v1/capabilities").json()["capabilities"]


@STORAGE_FREE
def test_tools_list_names_every_tool_with_its_schema(anon: httpx.Client) -> None:
    listed = rpc(anon, "tools/list")["result"]["tools"]
    names = [t["name"] for t in listed]
    assert len(names) == len(set(names)) and set(names) == AXME_TOOLS | OWN_TOOLS
    from jsonschema import Draft202012Validator

    for t in listed:
        assert t["description"] and t["inputSchema"]["type"] == "object", t
        Draft202012Validator.check_schema(t["inputSchema"])
        assert t["inputSchema"]["additionalProperties"] is False and "owner_agent" in t["inputSchema"]["properties"]
    schemas = {t["name"]: t["inputSchema"] for t in listed}
    assert schemas["axme.send_message"]["required"] == ["recipient"]
    assert set(schemas["axme.delete_messages"]["properties"]) >= {"thread_id", "mode", "message_ids", "last_n"}


@STORAGE_FREE
def test_notifications_get_no_answer_and_a_batch_answers_in_order(api: httpx.Client) -> None:
    r = api.post("/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert r.status_code == 202 and r.content == b""
    r = api.post("/mcp", json=[{"jsonrpc": "2.0", "method": "notifications/initialized"},
                               {"jsonrpc": "2.0", "id": 9, "result": {}}])  # a client's response: nothing either
    assert r.status_code == 202 and r.content == b""
    batch = post(api, [
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}},
        {"jsonrpc": "2.0", "id": "two", "method": "no/such"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "axme.list_intents",
                                                                        "arguments": {"limit": 1}}},
        {"jsonrpc": "2.0", "id": 4, "method": "resources/list"},
        {"jsonrpc": "2.0", "id": 5, "method": "prompts/list"},
        "not a message",
    ])
    assert [a["id"] for a in batch] == [1, "two", 3, 4, 5, None]
    assert batch[0]["result"] == {"pong": True}
    rpc_error(batch[1], -32601, names="no/such")
    result(batch[2], "completed")
    assert batch[3]["result"] == {"resources": []} and batch[4]["result"] == {"prompts": []}
    rpc_error(batch[5], -32600)


# ---------------------------------------------------------------------------------------------
# bad input: a JSON-RPC error object every time, never HTML or a 500


def _rpc_refusal(r: httpx.Response, status: int, code: int = -32600) -> dict[str, Any]:
    assert r.status_code == status, f"{r.status_code}: {r.text}"
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert body["jsonrpc"] == "2.0" and body["id"] is None, body
    return rpc_error(body, code)


@STORAGE_FREE
def test_malformed_bodies_are_json_rpc_errors(api: httpx.Client) -> None:
    json_type = {"content-type": "application/json"}
    ping = '{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"n": %s}}'
    numbers = ("NaN", "Infinity", "-Infinity", "1e400", "123456789012345678901234567890")
    for raw in (b"{", b"", b"   ", b"{'a': 1}", b"\xff\xfe", b"nul\x00l", b"[" * 10_000 + b"]" * 10_000,
                *[(ping % n).encode() for n in numbers]):
        _rpc_refusal(api.post("/mcp", content=raw, headers=json_type), 400)
    for message in ({"jsonrpc": "1.0", "id": 1, "method": "ping"}, {"id": 1, "method": "ping"},
                    {"jsonrpc": "2.0", "id": 1, "method": 5}, {"jsonrpc": "2.0", "id": {"x": 1}, "method": "ping"},
                    {"jsonrpc": "2.0", "id": True, "method": "ping"}, 42, "ping", None):
        r = api.post("/mcp", content=json.dumps(message).encode(), headers=json_type)
        assert r.status_code == 400, r.text
        rpc_error(r.json(), -32600)
    _rpc_refusal(api.post("/mcp", json=[]), 400)
    _rpc_refusal(api.post("/mcp", json=[{"jsonrpc": "2.0", "id": i, "method": "ping"} for i in range(MAX_BATCH + 1)]),
                 400)
    big = {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "x" * Settings().max_body_bytes}}
    _rpc_refusal(api.post("/mcp", json=big), 413)
    _rpc_refusal(api.post("/mcp", content=b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}',
                          headers={"content-type": "text/plain"}), 415)
    _rpc_refusal(api.post("/mcp", content=b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}'), 415)
    for origin in ({"origin": "https://evil.example"}, {"origin": "null"}, {"sec-fetch-site": "cross-site"}):
        _rpc_refusal(api.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers=origin), 403)
    same = {"origin": str(api.base_url).rstrip("/")}
    assert post(api, {"jsonrpc": "2.0", "id": 1, "method": "ping"}, **same)["result"] == {"pong": True}
    _rpc_refusal(api.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                          headers={"mcp-protocol-version": "1999-01-01"}), 400)
    # no server-sent stream and no session: GET and DELETE are 405 in the API's error shape
    assert_error(api.get("/mcp"), 405)
    assert_error(api.delete("/mcp"), 405)


@STORAGE_FREE
def test_bad_params_and_arguments_name_what_is_wrong(api: httpx.Client) -> None:
    rpc_error(post(api, {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": ["a"]}), -32602, "params")
    rpc_error(rpc(api, "tools/call", {"arguments": {}}), -32602, "name")
    rpc_error(rpc(api, "tools/call", {"name": "axme.nothing"}), -32602, "axme.nothing")
    rpc_error(rpc(api, "tools/call", {"name": "axme.get_intent", "arguments": [1]}), -32602, "arguments")
    rpc_error(tool(api, "axme.get_intent"), -32602, "intent_id")
    err = rpc_error(tool(api, "axme.get_intent", intent_id="nope"), -32602, "intent_id")
    assert "UUID" in err["message"] and err["data"]["field"] == "intent_id"
    rpc_error(tool(api, "axme.get_intent", intent_id=str(uuid.uuid4()), bogus=1), -32602, "bogus")
    rpc_error(tool(api, "axme.list_intents", limit="5"), -32602, "limit")
    rpc_error(tool(api, "axme.list_intents", limit=1000), -32602, "limit")
    rpc_error(tool(api, "axme.send_intent", to="inventory", intent_type="Not A Type"), -32602, "intent_type")
    rpc_error(tool(api, "axme.send_message", recipient="inventory"), -32602, "message")
    rpc_error(tool(api, "axme.delete_messages", thread_id=str(uuid.uuid4()), message_ids=["a"], last_n=1), -32602,
              "last_n")
    # the route's own validation, with the tool's argument named
    rpc_error(tool(api, "axme.send_intent", to="not an address", intent_type="a.b.v1"), -32602, "to")
    rpc_error(tool(api, "axme.send_intent", to="inventory", intent_type="a.b.v1", deadline_at="soon"), -32602,
              "deadline_at")
    rpc_error(tool(api, "axme.list_intents", status="DONE"), -32602, "status")


# ---------------------------------------------------------------------------------------------
# credentials and owners


@STORAGE_FREE
def test_without_a_credential_only_the_public_methods_and_tools_answer(anon: httpx.Client) -> None:
    for method in ("resources/list", "prompts/list"):
        rpc_error(rpc(anon, method, status=401), -32001)
    rpc_error(tool(anon, "axme.list_intents", 401), -32001)
    rpc_error(tool(anon, "axme.check_nick", 401, nick="bob", owner_agent="inventory"), -32001, "owner_agent")
    for name, args in (("axme.check_nick", {"nick": "bob"}), ("axme.register_nick", {"nick": "bob"}),
                       ("axme.check_invite_status", {"token": "abc"})):
        # public: the MCP layer lets them through, and each is then as open as its route (a route's refusal
        # carries its HTTP status in data)
        r = anon.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                    "params": {"name": name, "arguments": args}})
        answer = r.json()
        assert "result" in answer or "http_status" in answer["error"]["data"], answer
    batch = post(anon, [{"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "axme.get_intent"}}])
    assert batch[0]["result"]["tools"] and batch[1]["error"]["code"] == -32001  # a batch is 200 whatever is in it


def test_unknown_and_revoked_credentials_are_32001(quiet: RuntimeProcess, api: httpx.Client) -> None:
    for headers in ({"x-api-key": "not-a-key"}, {"authorization": f"Bearer axme_at_{uuid.uuid4()}_{'A' * 43}"}):
        with httpx.Client(base_url=quiet.url, headers=headers, timeout=30, verify=TLS) as bad:
            err = rpc_error(tool(bad, "axme.list_intents", 401), -32001)
            assert err["data"]["error"]["code"] in ("invalid_platform_api_key", "invalid_actor_token")
            assert rpc(bad, "initialize")["result"]["protocolVersion"] == "2024-11-05"  # public: no key looked at


def test_an_agent_key_acts_only_as_itself(quiet: RuntimeProcess, api: httpx.Client) -> None:
    me, token = make_agent(api, unique("me"))
    other, _ = make_agent(api, unique("other"))
    with quiet.client(token) as agent:
        own = result(tool(agent, "axme.list_threads"), "completed")
        assert own["owner_agent"] == me and own["data"]["threads"] == []
        assert result(tool(agent, "axme.list_threads", owner_agent=me))["owner_agent"] == me
        err = rpc_error(tool(agent, "axme.list_threads", 403, owner_agent=other), -32003, "owner_agent")
        assert err["data"]["allowed"] == [me]
        rpc_error(rpc(agent, "tools/call", {"name": "axme.list_threads", "arguments": {}, "owner_agent": other},
                      status=403), -32003)
        rpc_error(rpc(agent, "tools/call", {"name": "axme.list_threads", "arguments": {"owner_agent": me},
                                            "owner_agent": other}, status=403), -32003)
        rpc_error(tool(agent, "axme.list_threads", owner_agent="  "), -32002, "owner_agent")
        rpc_error(tool(agent, "axme.list_threads", owner_agent="not an address"), -32602, "owner_agent")
        # what the key may not see stays unseen: another agent's intent is not found (a route's 404: -32010)
        theirs = api.post("/v1/intents", json=new_intent(other)).json()["intent_id"]
        err = rpc_error(tool(agent, "axme.get_intent", intent_id=theirs), -32010)
        assert err["data"]["http_status"] == 404 and err["data"]["error"]["code"] == "intent_not_found"
        err = rpc_error(tool(agent, "axme.list_tasks", http=403), -32003)  # tasks: people and the workspace key
        assert err["data"]["http_status"] == 403 and err["data"]["error"]["code"] == "policy_denied"
    assert result(tool(api, "axme.list_threads", owner_agent=other))["owner_agent"] == other  # the admin key may


# ---------------------------------------------------------------------------------------------
# the (owner, tool) rate limit


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeThread]:
    rt = RuntimeThread(tmp_path_factory.mktemp("mcp-limit"), settings={"mcp_tool_calls_per_minute": 3.0})
    rt.start()
    yield rt
    rt.retire()


@STORAGE_FREE
def test_past_its_limit_an_owner_and_tool_get_32004_and_429(limited: RuntimeThread, backend: str) -> None:
    with limited.client() as admin:
        for _ in range(3):
            result(tool(admin, "axme.list_intents", limit=1))
        r = admin.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                     "params": {"name": "axme.list_intents", "arguments": {"limit": 1}}})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1, r.text
        err = rpc_error(r.json(), -32004, "axme.list_intents")
        assert err["data"]["retryable"] is True and err["data"]["limit_per_minute"] == 3
        result(tool(admin, "axme.list_tasks"))  # another tool has its own budget
        result(tool(admin, "axme.list_intents", owner_agent=unique("someone")))  # so has another owner
        batch = post(admin, [{"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                              "params": {"name": "axme.list_intents", "arguments": {}}}])
        rpc_error(batch[0], -32004)  # in a batch: 200 with the error in its place
        sdk = AxmeClient(AxmeClientConfig(base_url=limited.url, api_key=ADMIN_KEY, max_retries=0))
        with pytest.raises(AxmeRateLimitError):
            sdk.mcp_call_tool("axme.list_intents", arguments={})


# ---------------------------------------------------------------------------------------------
# intents, human tasks and scenarios


def _complete_soon(quiet: RuntimeProcess, token: str, intent_id: str) -> threading.Thread:
    """The agent completes the intent a moment after the send, while the tool waits."""
    def complete() -> None:
        with quiet.client(token) as agent:
            r = agent.post(f"/v1/intents/{intent_id}/resume", json={"action": "complete", "reserved": 1})
            assert r.status_code == 200, r.text

    return threading.Thread(target=complete)


def test_send_intent_waits_for_its_end_bounded(quiet: RuntimeProcess, api: httpx.Client) -> None:
    name = unique("worker")
    _, token = make_agent(api, name)
    sent = result(tool(api, "axme.send_intent", to=name, intent_type="order.reserve.v1", payload={"n": 1},
                       idempotency_key=uuid.uuid4().hex), "accepted")
    intent_id = sent["intent_id"]
    assert sent["data"]["intent_id"] == intent_id and sent["data"]["status"] == "SUBMITTED"
    waited = result(tool(api, "axme.wait_intent", intent_id=intent_id, wait_seconds=0.2), "accepted")
    assert waited["data"]["finished"] is False and waited["data"]["intent"]["status"] != "COMPLETED"
    worker = _complete_soon(quiet, token, intent_id)
    worker.start()
    done = result(tool(api, "axme.wait_intent", intent_id=intent_id, wait_seconds=30), "completed")
    worker.join()
    assert done["data"]["finished"] is True and done["data"]["intent"]["status"] == "COMPLETED"
    assert done["data"]["intent"]["result"] == api.get(f"/v1/intents/{intent_id}").json()["intent"]["result"]
    assert done["data"]["intent"]["result"]["reserved"] == 1
    got = result(tool(api, "axme.get_intent", intent_id=intent_id), "completed")["data"]
    assert [e["status"] for e in got["events"]][-1] == "COMPLETED" and got["intent"]["intent_id"] == intent_id
    assert result(tool(api, "axme.get_intent", intent_id=intent_id, include_events=False))["data"].keys() == {"intent"}
    listed = result(tool(api, "axme.list_intents", status="COMPLETED", limit=100))["data"]["intents"]
    assert intent_id in [i["intent_id"] for i in listed]


def test_human_tasks_are_answered_by_the_apis_rules(quiet: RuntimeProcess, api: httpx.Client) -> None:
    task = {"title": "Approve the refund", "task_type": "approval", "required_comment": True,
            "form_schema": {"type": "object", "required": ["amount"],
                            "properties": {"amount": {"type": "integer", "maximum": 100}}}}
    sent = result(tool(api, "axme.send_intent", to="agent_core", intent_type="refund.approve.v1", human_task=task,
                       wait_seconds=0.1), "accepted")
    intent_id = sent["intent_id"]
    assert sent["data"]["intent"]["waiting_reason"] == "WAITING_FOR_HUMAN"
    tasks = result(tool(api, "axme.list_tasks", limit=100))["data"]["tasks"]
    assert intent_id in [t["intent_id"] for t in tasks]
    rpc_error(tool(api, "axme.answer_task", intent_id=intent_id, outcome="maybe"), -32602, "outcome")
    rpc_error(tool(api, "axme.answer_task", intent_id=intent_id, outcome="approved"), -32602, "comment")
    rpc_error(tool(api, "axme.answer_task", intent_id=intent_id, outcome="approved", comment="ok",
                   form={"amount": 500}), -32602, "amount")
    rpc_error(tool(api, "axme.answer_task", intent_id=intent_id, outcome="approved", form={"outcome": "x"}), -32602,
              "form.outcome")
    answered = result(tool(api, "axme.answer_task", intent_id=intent_id, outcome="approved", comment="fine",
                           form={"amount": 40}), "completed")
    assert answered["data"]["intent"]["status"] == "COMPLETED"
    again = result(tool(api, "axme.answer_task", intent_id=intent_id, outcome="approved", comment="again",
                        form={"amount": 1}))
    assert again["data"]["applied"] is False  # answered already: the API's harmless duplicate
    agents_intent = result(tool(api, "axme.send_intent", to=unique("worker"), intent_type="order.reserve.v1"))
    rpc_error(tool(api, "axme.answer_task", intent_id=agents_intent["intent_id"], outcome="approved"), -32602,
              "does not wait for a person")


def test_scenarios_are_validated_and_applied(quiet: RuntimeProcess, api: httpx.Client) -> None:
    bad = result(tool(api, "axme.validate_scenario", bundle={"scenario_id": "x", "intent": {"type": "nope"}}))
    assert bad["data"]["valid"] is False and bad["data"]["errors"]
    worker = unique("worker")
    _, token = make_agent(api, worker)
    bundle = {"scenario_id": "mcp.apply", "agents": [{"role": "worker", "address": worker}],
              "workflow": {"steps": [{"step_id": "work", "assigned_to": "worker"}]},
              "intent": {"type": "order.reserve.v1", "payload": {"n": 1}}}
    assert result(tool(api, "axme.validate_scenario", bundle=bundle))["data"]["valid"] is True
    applied = result(tool(api, "axme.apply_scenario", bundle=bundle), "accepted")
    assert applied["intent_id"] == applied["data"]["intent_id"] and applied["data"]["agents"][0]["address"]
    rpc_error(tool(api, "axme.apply_scenario", bundle={"scenario_id": "x"}), -32602)


# ---------------------------------------------------------------------------------------------
# messages and the inbox


def test_a_message_comes_back_to_the_senders_inbox(quiet: RuntimeProcess, api: httpx.Client) -> None:
    sender, sender_token = make_agent(api, unique("sender"))
    recipient_name = unique("recipient")
    recipient, recipient_token = make_agent(api, recipient_name)
    with quiet.client(sender_token) as me, quiet.client(recipient_token) as them:
        sent = result(tool(me, "axme.send_message", recipient=recipient_name, text="lunch at 12?",
                           idempotency_key="m-1"), "accepted")
        assert sent["owner_agent"] == sender and sent["data"]["recipient_agent"] == recipient
        assert sent["data"]["resolution"]["method"] == "address"
        again = result(tool(me, "axme.send_message", recipient=recipient_name, text="lunch at 12?",
                            idempotency_key="m-1"))
        assert again["intent_id"] == sent["intent_id"]  # the same key sends once
        intent = them.get(f"/v1/intents/{sent['intent_id']}").json()["intent"]
        assert intent["intent_type"] == "message.text.v1" and intent["payload"]["text"] == "lunch at 12?"
        assert intent["from_agent"] == sender and intent["reply_to"] == sender
        r = them.post(f"/v1/intents/{sent['intent_id']}/resume", json={"action": "complete", "result": {"ok": True}})
        assert r.status_code == 200, r.text
        thread_id = sent["intent_id"]

        dialogs = result(tool(me, "axme.list_dialogs", unread_only=True))["data"]["dialogs"]
        assert [(d["dialog_id"], d["with"], d["unread"]) for d in dialogs] == [(thread_id, recipient, True)]
        assert len(result(tool(me, "axme.list_threads", status="unread"))["data"]["threads"]) == 1
        assert result(tool(me, "axme.list_inbox", status="pending"))["data"]["threads"][0]["thread_id"] == thread_id
        opened = result(tool(me, "axme.open_dialog", **{"with": recipient_name}))["data"]
        assert opened["dialog"]["dialog_id"] == thread_id and opened["messages"]
        assert result(tool(me, "axme.list_threads", status="unread"))["data"]["threads"] == []  # opened: read
        replied = result(tool(me, "axme.reply", thread_id=thread_id, message="thanks"))["data"]
        got = result(tool(me, "axme.get_thread", thread_id=thread_id))["data"]["thread"]
        assert replied["message_id"] in [m["message_id"] for m in got["messages"]]
        result(tool(me, "axme.mark_read", thread_id=thread_id))
        deleted = result(tool(me, "axme.delete_messages", thread_id=thread_id, last_n=1))["data"]
        assert deleted["deleted_count"] == 1 and deleted["mode"] == "self"
        # someone else's thread is not in this inbox
        err = rpc_error(tool(them, "axme.get_thread", thread_id=thread_id), -32010)
        assert err["data"]["http_status"] == 404


def test_recipients_are_resolved_or_reported_not_found(api: httpx.Client) -> None:
    name = unique("known")
    address, _ = make_agent(api, name)
    found = result(tool(api, "axme.resolve_contact", query=name), "completed")["data"]
    assert found["agent_address"] == address and found["resolution"]["verified"] is True
    assert result(tool(api, "axme.resolve_contact", query=address))["data"]["agent_address"] == address
    missing = result(tool(api, "axme.resolve_contact", query=unique("nobody")), "contact_not_found")
    assert missing["ok"] is False and missing["isError"] is True
    nobody = result(tool(api, "axme.send_message", recipient=unique("nobody"), message="hi"), "contact_not_found")
    assert "intent_id" not in nobody  # nothing was sent
    rpc_error(tool(api, "axme.send_message", recipient="bob@example.com", message="hi"), -32011, "recipient")
    rpc_error(tool(api, "axme.resolve_contact", query="agent://"), -32011, "query")
    sent = result(tool(api, "axme.send", to=name, content_kind="intent",
                       intent={"intent_type": "order.reserve.v1", "payload": {"sku": "A"}}), "accepted")
    got = result(tool(api, "axme.get_intent", intent_id=sent["intent_id"], include_events=False))["data"]["intent"]
    assert got["intent_type"] == "order.reserve.v1" and got["payload"] == {"sku": "A"}
    text = result(tool(api, "axme.send", to=name, message="hello", ack="read"), "accepted")
    got = result(tool(api, "axme.get_intent", intent_id=text["intent_id"], include_events=False))["data"]["intent"]
    assert got["intent_type"] == "message.text.v1" and got["payload"]["ack"] == "read"
    assert result(tool(api, "axme.confirm_send", intent_id=text["intent_id"], confirm=True),
                  "not_implemented")["ok"] is False


# ---------------------------------------------------------------------------------------------
# the families' tools: users, invites, media


def test_account_and_contact_tools(quiet: RuntimeProcess, api: httpx.Client) -> None:
    name = unique("nicked")
    me, token = make_agent(api, name)
    nick = "@" + unique("n").replace("-", "")
    with quiet.client(token) as agent:
        assert result(tool(agent, "axme.check_nick", nick=nick))["data"]["available"] is True
        registered = result(tool(agent, "axme.register_nick", nick=nick, display_name="Ann"), "completed")["data"]
        assert registered["owner_agent"] == me and registered["nick"] == nick
        assert result(tool(agent, "axme.check_nick", nick=nick))["data"]["available"] is False
        assert result(tool(agent, "axme.get_profile"))["data"]["display_name"] == "Ann"
        assert result(tool(agent, "axme.update_profile", display_name="Ann B"))["data"]["display_name"] == "Ann B"
        renamed = nick + "x"
        assert result(tool(agent, "axme.rename_nick", nick=renamed))["data"]["nick"] == renamed
        rpc_error(tool(agent, "axme.get_profile", 403, owner_agent=unique("other")), -32003)
        rpc_error(tool(agent, "axme.update_profile", email="not an email"), -32602, "email")
    found = result(tool(api, "axme.resolve_contact", query=renamed))["data"]
    assert found["agent_address"] == me and found["resolution"]["method"] == "nick"
    result(tool(api, "axme.resolve_contact", query=nick), "contact_not_found")  # renamed away
    sent = result(tool(api, "axme.send_message", recipient=renamed, message="hi"), "accepted")
    assert sent["data"]["recipient_agent"] == me


def test_invite_tools(quiet: RuntimeProcess, api: httpx.Client) -> None:
    _, token = make_agent(api, unique("inviter"))
    with quiet.client(token) as agent:
        made = result(tool(agent, "axme.generate_invite_link", recipient_hint="bob", ttl_seconds=3600))["data"]
        assert made["invite_token"] and made["link"].endswith(made["invite_token"])
        status = result(tool(agent, "axme.check_invite_status", token=made["invite_token"]))["data"]
        assert status["status"] == "pending" and status["recipient_hint"] == "bob"
        rpc_error(tool(agent, "axme.generate_invite_link", ttl_seconds=10), -32602, "ttl_seconds")
        rpc_error(tool(agent, "axme.check_invite_status", token="../../v1/intents"), -32602, "token")


def test_media_tools(quiet: RuntimeProcess, api: httpx.Client) -> None:
    sender, token = make_agent(api, unique("uploader"))
    recipient = unique("viewer")
    make_agent(api, recipient)
    content = b"hello, media"
    with quiet.client(token) as agent:
        inline = result(tool(agent, "axme.media_upload_inline", filename="a.txt", mime_type="text/plain",
                             content_base64=base64.b64encode(content).decode()), "ready")["data"]
        assert inline["size_bytes"] == len(content) and inline["sha256"] == hashlib.sha256(content).hexdigest()
        got = result(tool(agent, "axme.media_get_upload", upload_id=inline["upload_id"]))["data"]
        assert "ready" in str(got)
        rpc_error(tool(agent, "axme.media_upload_inline", filename="a.txt", mime_type="text/plain",
                       content_base64="not base64!"), -32602, "content_base64")
        # the two-step way: an upload URL, the bytes PUT there by the client, then finalize (checked)
        started = result(tool(agent, "axme.media_create_upload", filename="b.bin", mime_type="application/octet-stream",
                              size_bytes=len(content)), "pending_upload")["data"]
        r = httpx.put(started["upload_url"], content=content, timeout=30, verify=TLS)
        assert r.status_code == 200, r.text
        rpc_error(tool(agent, "axme.media_finalize_upload", upload_id=started["upload_id"], size_bytes=len(content),
                       sha256="0" * 64), -32602)
        done = result(tool(agent, "axme.media_finalize_upload", upload_id=started["upload_id"],
                           size_bytes=len(content)), "ready")["data"]
        assert done["size_bytes"] == len(content)
        sent = result(tool(agent, "axme.send_message", recipient=recipient, message="a file",
                           attachments=[{"upload_id": inline["upload_id"]}]), "accepted")
        intent = api.get(f"/v1/intents/{sent['intent_id']}").json()["intent"]
        assert inline["upload_id"] in str(intent) and intent["from_agent"] == sender


def test_send_checks_the_payload_by_its_schema_mode(api: httpx.Client) -> None:
    name = unique("noted")
    make_agent(api, name)
    note_type = f"mcp.{uuid.uuid4().hex[:8]}.v1"
    intent = {"intent_type": note_type, "payload": {}}
    schema = {"type": "object", "required": ["title"], "properties": {"title": {"type": "string"}}}
    r = api.post("/v1/schemas", json={"semantic_type": note_type, "compatibility_mode": "strict", "scope": "core",
                                      "schema_json": schema})
    assert r.status_code == 200, r.text
    err = rpc_error(tool(api, "axme.send", to=name, intent=intent, schema_mode="enforce"), -32602)
    assert err["data"]["field"].startswith("intent.payload"), err
    ok = result(tool(api, "axme.send", to=name, intent={**intent, "payload": {"title": "x"}}, schema_mode="enforce"))
    assert ok["status"] == "accepted"


# ---------------------------------------------------------------------------------------------
# clients: the official SDK and the mcp package


def test_the_official_sdk_mcp_methods(quiet: RuntimeProcess, api: httpx.Client) -> None:
    sdk = AxmeClient(AxmeClientConfig(base_url=quiet.url, api_key=ADMIN_KEY))
    assert sdk.mcp_initialize()["protocolVersion"] == "2024-11-05"
    tools = sdk.mcp_list_tools()["tools"]
    assert {t["name"] for t in tools} == AXME_TOOLS | OWN_TOOLS
    me, token = make_agent(api, unique("sdk"))
    agent = AxmeClient(AxmeClientConfig(base_url=quiet.url, api_key=token, default_owner_agent=me))
    agent.mcp_list_tools()  # the SDK checks arguments against the schemas it listed
    listed = agent.mcp_call_tool("axme.list_threads", arguments={"status": "pending"})
    assert listed["ok"] is True and listed["owner_agent"] == me and listed["data"] == {"threads": []}
    sent = agent.mcp_call_tool("axme.send_intent", arguments={"to": "inventory", "intent_type": "order.reserve.v1"},
                               idempotency_key=uuid.uuid4().hex)
    assert sent["status"] == "accepted" and sent["intent_id"]
    with pytest.raises(AxmeValidationError):
        agent.mcp_call_tool("axme.get_intent", arguments={"intent_id": "nope"}, validate_input_schema=False)
    with pytest.raises(AxmeAuthError):
        agent.mcp_call_tool("axme.list_threads", owner_agent="agent://local/dev/someone-else")


@STORAGE_FREE
def test_the_mcp_packages_streamable_http_client(quiet: RuntimeProcess, api: httpx.Client) -> None:
    """What the official client sends: a server/discover probe (refused: this server speaks the handshake), then
    initialize, notifications/initialized, the calls; with an MCP-Protocol-Version header and Accept."""
    import httpx2
    from mcp import Client, MCPError
    from mcp.client.streamable_http import streamable_http_client

    name = unique("worker")
    make_agent(api, name)

    async def session() -> None:
        async with httpx2.AsyncClient(headers={"x-api-key": ADMIN_KEY}, timeout=30) as http, \
                Client(streamable_http_client(f"{quiet.url}/mcp", http_client=http)) as client:
            assert client.protocol_version in PROTOCOL_VERSIONS and client.server_info is not None
            assert client.server_info.name == "axme"
            listed = await client.list_tools()
            assert {t.name for t in listed.tools} == AXME_TOOLS | OWN_TOOLS
            called = await client.call_tool("axme.send_intent", {"to": name, "intent_type": "order.reserve.v1"})
            assert not called.is_error and called.structured_content is not None
            assert called.structured_content["status"] == "accepted"
            with pytest.raises(MCPError) as refused:
                await client.call_tool("axme.get_intent", {"intent_id": "nope"})
            assert refused.value.code == -32602 and "intent_id" in refused.value.message
            await client.session.send_ping()

    asyncio.run(session())


@STORAGE_FREE
def test_a_tool_whose_routes_are_not_served_says_not_implemented() -> None:
    """Each tool names the routes it calls; where a runtime lacks one (a family not built in), the tool answers
    status not_implemented naming it (the check api/mcp.py makes before running a tool)."""
    from starlette.routing import Route

    served = [Route("/v1/intents/{id}", lambda r: None, methods=["GET"])]
    assert mcp_tools.unserved(mcp_tools.TOOLS["axme.get_intent"].routes, served) == [
        "GET /v1/intents/{intent_id}/events"]
    assert mcp_tools.unserved((("GET", "/v1/intents/{intent_id}"),), served) == []


@STORAGE_FREE
def test_every_tool_is_in_the_table_once_and_names_its_routes() -> None:
    assert set(mcp_tools.TOOLS) == AXME_TOOLS | OWN_TOOLS
    for t in mcp_tools.TOOLS.values():
        assert t.name.startswith("axme.") and t.description.endswith((".", ")")), t.name
        for method, path in t.routes:
            assert method in ("GET", "POST", "PUT") and path.startswith("/v1/"), (t.name, path)

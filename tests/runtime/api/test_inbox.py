"""Inbox, approvals and capabilities (issue 6): reply_to completion delivery seen through the API, the unchanged
official SDK and `axme inbox`; what owners do with a thread; owner scoping; the change feed's pagination."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from axme_sdk import AxmeAuthError, AxmeClient, AxmeClientConfig, AxmeValidationError

from axme_cli.runtime.clock import ManualClock, iso
from tests.auth_helpers import bearer, login
from tests.cli.helpers import run
from tests.conftest import ADMIN_KEY, SHARED, make_agent, new_intent, unique
from tests.protocol.test_conformance import assert_valid
from tests.runtime_proc import TLS, RuntimeProcess
from tests.runtime_thread import RuntimeThread, tick

LIST_SCHEMA = "public_api/api.inbox.list.response.v1.json"
THREAD_SCHEMA = "public_api/api.inbox.thread.response.v1.json"
CHANGES_SCHEMA = "public_api/api.inbox.changes.response.v1.json"
DELETE_SCHEMA = "public_api/api.inbox.messages.delete.response.v1.json"
RESOLVE_SCHEMA = "public_api/api.intents.resolve.response.v1.json"
APPROVAL_SCHEMA = "public_api/api.approvals.decision.response.v1.json"
CAPABILITIES_SCHEMA = "public_api/api.capabilities.get.response.v1.json"


class Party:
    """A service account: its address, its key, and an HTTP client acting with that key."""

    def __init__(self, rt: RuntimeProcess, api: httpx.Client, prefix: str) -> None:
        self.name = unique(prefix)
        self.address, self.token = make_agent(api, self.name)
        self.http = rt.client(self.token)


@pytest.fixture
def parties(quiet: RuntimeProcess, api: httpx.Client) -> Any:
    """A requester (the reply_to owner) and a worker (the agent that handles the intents)."""
    requester, worker = Party(quiet, api, "requester"), Party(quiet, api, "worker")
    yield requester, worker
    requester.http.close()
    worker.http.close()


def completed_by_worker(api: httpx.Client, requester: Party, worker: Party, **result: Any) -> str:
    """An intent with ``reply_to`` (a bare name) that its agent completes through /resume."""
    intent_id = api.post("/v1/intents", json=new_intent(worker.name, reply_to=requester.name)).json()["intent_id"]
    r = worker.http.post(f"/v1/intents/{intent_id}/resume", json={"action": "complete", **result})
    assert r.status_code == 200 and r.json()["intent"]["status"] == "COMPLETED", r.text
    return str(intent_id)


def thread_of(client: httpx.Client, thread_id: str, **params: str) -> dict[str, Any]:
    r = client.get(f"/v1/inbox/{thread_id}", params=params)
    assert r.status_code == 200, r.text
    assert_valid(THREAD_SCHEMA, r.json())
    return dict(r.json()["thread"])


def sdk(rt: RuntimeProcess, key: str = ADMIN_KEY) -> AxmeClient:
    return AxmeClient(AxmeClientConfig(base_url=rt.url, api_key=key))


def task_intent(reply_to: str | None = None, **task: Any) -> dict[str, Any]:
    body = {"intent_type": "ops.approve.v1", "correlation_id": str(uuid.uuid4()), "to_agent": "agent://agent_core",
            "payload": {"change": "CHG-7"}, "human_task": {"title": "Approve CHG-7", **task}}
    if reply_to:
        body["reply_to"] = reply_to
    return body


# ---------------------------------------------------------------------------------------------
# completion delivery


def test_a_completed_intent_with_reply_to_becomes_a_thread_in_the_owner_inbox(api: httpx.Client,
                                                                              parties: Any) -> None:
    requester, worker = parties
    intent_id = completed_by_worker(api, requester, worker, reserved=True)
    listed = requester.http.get("/v1/inbox")  # no owner given: the key's own inbox
    assert listed.status_code == 200, listed.text
    assert_valid(LIST_SCHEMA, listed.json())
    [thread] = listed.json()["threads"]
    assert thread["thread_id"] == thread["intent_id"] == intent_id
    assert thread["owner_agent"] == thread["reply_to"] == requester.address
    assert (thread["from_agent"], thread["to_agent"]) == ("initiator://local/dev/admin", worker.address)
    assert thread["status"] == "pending" and thread["read"] is False
    assert thread["completion"] == {"type": "intent_completion", "intent_id": intent_id, "status": "COMPLETED",
                                    "result": {"reserved": True}}
    [message] = thread["messages"]
    assert message["role"] == "agent" and message["author"] == worker.address
    assert message["content"] == "order.reserve.v1 COMPLETED"
    [delivered] = thread["timeline"]
    assert delivered["event_type"] == "intent_completion_delivered" and delivered["details"]["status"] == "COMPLETED"
    assert thread_of(requester.http, intent_id) == thread
    # the agent that did the work does not get the thread; the workspace key finds it by owner
    assert worker.http.get("/v1/inbox").json()["threads"] == []
    assert thread_of(api, intent_id, owner_agent=requester.address)["thread_id"] == intent_id


def test_resolve_answers_the_completion_delivery_truthfully(api: httpx.Client, parties: Any) -> None:
    requester, worker = parties
    intent_id = api.post("/v1/intents", json=new_intent(worker.name, reply_to=requester.address)).json()["intent_id"]
    r = api.post(f"/v1/intents/{intent_id}/resolve", json={"status": "FAILED", "error": {"code": "out_of_stock"}})
    assert r.status_code == 200, r.text
    assert_valid(RESOLVE_SCHEMA, r.json())
    delivery = r.json()["completion_delivery"]
    thread = thread_of(requester.http, intent_id)
    assert delivery == {"delivered": True, "reply_to": requester.address, "thread_id": intent_id,
                        "message_id": thread["messages"][0]["message_id"],
                        "completion": {"type": "intent_completion", "intent_id": intent_id, "status": "FAILED"}}
    assert thread["completion"]["error"] == {"code": "out_of_stock"}

    plain = api.post("/v1/intents", json=new_intent(worker.name)).json()["intent_id"]
    r = api.post(f"/v1/intents/{plain}/resolve", json={"status": "CANCELED", "reason": "not needed"})
    assert r.status_code == 200, r.text
    assert_valid(RESOLVE_SCHEMA, r.json())
    assert r.json()["completion_delivery"] == {"delivered": False, "reason": "reply_to_not_set"}
    assert api.get(f"/v1/inbox/{plain}", params={"owner_agent": requester.address}).status_code == 404


def test_a_timed_out_intent_is_delivered_too(tmp_path: Path, backend: str) -> None:
    """On a test clock: the deadline passes when the clock moves past it, not a second later."""
    rt = RuntimeThread(tmp_path, extra_args=["--redelivery-seconds", "600"], backend=backend, clock=ManualClock())
    rt.start()
    try:
        with rt.client() as api:
            requester, worker = Party(rt, api, "requester"), Party(rt, api, "worker")
            soon = iso(rt.clock.time() + 1)
            body = new_intent(worker.name, reply_to=requester.name, deadline_at=soon)
            intent_id = api.post("/v1/intents", json=body).json()["intent_id"]
            assert requester.http.get(f"/v1/inbox/{intent_id}").status_code == 404  # still open: no thread yet
            assert tick(rt, 1, lambda: requester.http.get(f"/v1/inbox/{intent_id}").status_code) == 200
            r = requester.http.get(f"/v1/inbox/{intent_id}")
            assert r.json()["thread"]["completion"]["status"] == "TIMED_OUT"
            assert api.get(f"/v1/intents/{intent_id}").json()["intent"]["status"] == "TIMED_OUT"
            requester.http.close()
            worker.http.close()
    finally:
        rt.retire()


# ---------------------------------------------------------------------------------------------
# what owners do with a thread


def test_read_reply_delegate_delete_then_approve_closes_the_thread(quiet: RuntimeProcess, api: httpx.Client,
                                                                   parties: Any) -> None:
    requester, worker = parties
    intent_id = completed_by_worker(api, requester, worker)
    base = f"/v1/inbox/{intent_id}"

    read = requester.http.post(f"{base}/read")
    assert read.status_code == 200 and read.json()["thread"]["status"] == "active" and read.json()["thread"]["read"]
    again = requester.http.post(f"{base}/read").json()["thread"]
    assert again["updated_at"] == read.json()["thread"]["updated_at"]  # reading twice changes nothing
    assert [e["event_type"] for e in again["timeline"]] == ["intent_completion_delivered", "thread.read"]

    replied = requester.http.post(f"{base}/reply", json={"message": "thanks, ship it"})
    assert replied.status_code == 200, replied.text
    mine = replied.json()["message_id"]
    assert [(m["role"], m["content"]) for m in replied.json()["thread"]["messages"]] == [
        ("agent", "order.reserve.v1 COMPLETED"), ("owner", "thanks, ship it")]
    assert replied.json()["thread"]["timeline"][-1]["event_type"] == "message.sent"
    assert requester.http.post(f"{base}/reply", json={}).status_code == 422
    assert requester.http.post(f"{base}/reply", json={"message": "x", "extra": 1}).status_code == 422

    auditor = Party(quiet, api, "auditor")
    with auditor.http:
        delegated = requester.http.post(f"{base}/delegate", json={"delegate_to": auditor.name, "note": "FYI"})
        assert delegated.status_code == 200, delegated.text
        assert delegated.json()["thread"]["delegated_to"] == [auditor.address]
        assert delegated.json()["thread"]["timeline"][-1]["details"] == {"delegate_to": auditor.address,
                                                                         "note": "FYI"}
        theirs = thread_of(auditor.http, intent_id)
        assert theirs["owner_agent"] == auditor.address and theirs["read"] is False
        assert requester.http.post(f"{base}/delegate", json={"note": "to whom?"}).status_code == 422

        # self: hidden for the auditor only; both: the requester's own reply disappears for everyone
        agent_message = theirs["messages"][0]["message_id"]
        hidden = auditor.http.post(f"{base}/messages/delete", json={"mode": "self", "message_ids": [agent_message]})
        assert hidden.status_code == 200, hidden.text
        assert_valid(DELETE_SCHEMA, hidden.json())
        assert (hidden.json()["deleted_count"], hidden.json()["message_ids"]) == (1, [agent_message])
        assert [m["message_id"] for m in hidden.json()["thread"]["messages"]] == [mine]
        assert len(thread_of(requester.http, intent_id)["messages"]) == 2
        refused = requester.http.post(f"{base}/messages/delete", json={"mode": "both", "message_ids": [agent_message]})
        assert refused.status_code == 403, refused.text
        unknown = requester.http.post(f"{base}/messages/delete", json={"mode": "self", "message_ids": ["nope"]})
        assert unknown.status_code == 404
        assert requester.http.post(f"{base}/messages/delete", json={"mode": "self"}).status_code == 422
        assert requester.http.post(f"{base}/messages/delete", json={"mode": "all", "limit": 1}).status_code == 422
        both = requester.http.post(f"{base}/messages/delete", json={"mode": "both", "limit": 5})
        assert both.status_code == 200 and both.json()["message_ids"] == [mine], both.text
        assert thread_of(auditor.http, intent_id)["messages"] == []
        assert [m["role"] for m in thread_of(requester.http, intent_id)["messages"]] == ["agent"]

        approved = auditor.http.post(f"{base}/approve", json={"comment": "checked"})
        assert approved.status_code == 200, approved.text
        thread = approved.json()["thread"]
        assert thread["status"] == "done"
        assert thread["decision"]["decision"] == "approved" and thread["decision"]["comment"] == "checked"
        assert thread["decision"]["decided_by"] == auditor.address
        assert thread["timeline"][-1]["event_type"] == "thread.approved"
        assert thread_of(requester.http, intent_id)["status"] == "done"  # the thread is shared
    for path, body in (("reply", {"message": "late"}), ("approve", {}), ("reject", {"comment": "late"}),
                       ("delegate", {"delegate_to": worker.name})):
        r = requester.http.post(f"{base}/{path}", json=body)
        assert r.status_code == 409 and r.json()["error"]["code"] == "thread_closed", (path, r.text)
    assert requester.http.post(f"{base}/read").status_code == 200


def test_reject_and_a_repeated_idempotency_key(api: httpx.Client, parties: Any) -> None:
    requester, worker = parties
    intent_id = completed_by_worker(api, requester, worker)
    base = f"/v1/inbox/{intent_id}"
    key = {"Idempotency-Key": f"reply-{uuid.uuid4()}"}
    first = requester.http.post(f"{base}/reply", json={"message": "once"}, headers=key)
    second = requester.http.post(f"{base}/reply", json={"message": "once"}, headers=key)
    assert first.status_code == second.status_code == 200
    assert first.json()["message_id"] == second.json()["message_id"]
    assert requester.http.post(f"{base}/reply", json={"message": "other"}, headers=key).status_code == 409
    assert [m["content"] for m in thread_of(requester.http, intent_id)["messages"]][1:] == ["once"]
    rejected = requester.http.post(f"{base}/reject")  # no body: no comment
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["thread"]["decision"]["decision"] == "rejected"
    assert rejected.json()["thread"]["timeline"][-1]["event_type"] == "thread.rejected"
    assert requester.http.get("/v1/inbox", params={"status": "done"}).json()["threads"][0]["thread_id"] == intent_id
    assert requester.http.get("/v1/inbox", params={"status": "pending"}).json()["threads"] == []
    assert requester.http.get("/v1/inbox", params={"status": "closed"}).status_code == 422


# ---------------------------------------------------------------------------------------------
# owner scoping


def test_owner_scoping(quiet: RuntimeProcess, api: httpx.Client, parties: Any) -> None:
    requester, worker = parties
    intent_id = completed_by_worker(api, requester, worker)
    base = f"/v1/inbox/{intent_id}"
    # both given and different: 400; the same owner written two ways is fine
    r = api.get("/v1/inbox", params={"owner_agent": requester.address}, headers={"x-owner-agent": worker.address})
    assert r.status_code == 400 and r.json()["error"]["code"] == "owner_agent_mismatch", r.text
    same = api.get(base, params={"owner_agent": requester.name}, headers={"x-owner-agent": requester.address})
    assert same.status_code == 200, same.text
    assert api.get(base, headers={"x-owner-agent": requester.name}).status_code == 200
    # a service-account key acts only as itself: 403 outside its scope, on every route
    for method, path, body in (("GET", "/v1/inbox", None), ("GET", base, None), ("GET", "/v1/inbox/changes", None),
                               ("POST", f"{base}/reply", {"message": "hi"}), ("POST", f"{base}/read", None),
                               ("POST", f"{base}/approve", {})):
        r = worker.http.request(method, path, json=body, params={"owner_agent": requester.address})
        assert r.status_code == 403 and r.json()["error"]["code"] == "policy_denied", (path, r.text)
        r = worker.http.request(method, path, json=body, headers={"x-owner-agent": requester.name})
        assert r.status_code == 403, (path, r.text)
    # in its own scope the thread is simply not there: 404 (also for the admin's own inbox)
    assert worker.http.get(base).status_code == 404
    assert worker.http.post(f"{base}/reply", json={"message": "hi"}).status_code == 404
    assert api.get(base).status_code == 404
    assert requester.http.get(f"/v1/inbox/{uuid.uuid4()}").status_code == 404
    assert requester.http.get("/v1/inbox", params={"owner_agent": requester.address}).status_code == 200
    # a person logged in by email acts for any owner
    mail = quiet.mail_dir
    with httpx.Client(base_url=quiet.url, timeout=30.0, verify=TLS) as anon:
        token = login(anon, mail, f"{unique('ops')}@example.com")["access_token"]
        person = anon.get(base, params={"owner_agent": requester.address}, headers=bearer(token))
        assert person.status_code == 200, person.text
        replied = anon.post(f"{base}/reply", params={"owner_agent": requester.address}, headers=bearer(token),
                            json={"message": "on it"})
        assert replied.status_code == 200, replied.text
        mine = replied.json()["thread"]["messages"][-1]
        assert mine["author"] == requester.address and mine["sent_by"].startswith("actor://")


# ---------------------------------------------------------------------------------------------
# the change feed


def test_changes_page_through_many_threads_each_exactly_once(quiet: RuntimeProcess, api: httpx.Client) -> None:
    owner = Party(quiet, api, "owner")
    created = []
    for _ in range(60):
        intent_id = api.post("/v1/intents", json=new_intent("inventory", reply_to=owner.address)).json()["intent_id"]
        r = api.post(f"/v1/intents/{intent_id}/resolve", json={"status": "COMPLETED", "result": {"ok": True}})
        assert r.json()["completion_delivery"]["delivered"] is True
        created.append(intent_id)
    with owner.http:
        pages: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 25}
            if cursor is not None:
                params["cursor"] = cursor
            r = owner.http.get("/v1/inbox/changes", params=params)
            assert r.status_code == 200, r.text
            assert_valid(CHANGES_SCHEMA, r.json())
            pages.append(r.json())
            cursor = r.json()["next_cursor"]
            if not r.json()["has_more"]:
                break
            assert len(pages) < 10
        assert [len(p["changes"]) for p in pages] == [25, 25, 10]
        assert [p["has_more"] for p in pages] == [True, True, False]
        seen = [c["thread"]["thread_id"] for p in pages for c in p["changes"]]
        assert seen == created  # every thread once, in the order they changed
        assert cursor == pages[-1]["changes"][-1]["cursor"]
        # nothing new: an empty page that keeps the cursor; a change moves its thread to the end of the feed
        idle = owner.http.get("/v1/inbox/changes", params={"cursor": cursor}).json()
        assert (idle["changes"], idle["next_cursor"], idle["has_more"]) == ([], cursor, False)
        assert owner.http.post(f"/v1/inbox/{created[3]}/reply", json={"message": "seen"}).status_code == 200
        moved = owner.http.get("/v1/inbox/changes", params={"cursor": cursor}).json()
        assert [c["thread"]["thread_id"] for c in moved["changes"]] == [created[3]]
        assert moved["changes"][0]["thread"]["status"] == "active"
        assert owner.http.get("/v1/inbox/changes", params={"cursor": "garbage"}).status_code == 422
        assert owner.http.get("/v1/inbox/changes", params={"limit": 0}).status_code == 422
        listed = owner.http.get("/v1/inbox", params={"limit": 5}).json()["threads"]
        assert listed[0]["thread_id"] == created[3] and len(listed) == 5  # most recently changed first


# ---------------------------------------------------------------------------------------------
# approvals and capabilities


def test_approval_decisions_answer_human_tasks(quiet: RuntimeProcess, api: httpx.Client, parties: Any) -> None:
    requester, _ = parties
    approval_id = api.post("/v1/intents", json=task_intent(reply_to=requester.address)).json()["intent_id"]
    r = api.post(f"/v1/approvals/{approval_id}/decision", json={"decision": "approve", "comment": "go"})
    assert r.status_code == 200, r.text
    assert_valid(APPROVAL_SCHEMA, r.json())
    assert r.json()["approval"]["approval_id"] == approval_id and r.json()["approval"]["decision"] == "approve"
    intent = api.get(f"/v1/intents/{approval_id}").json()["intent"]
    assert intent["status"] == "COMPLETED"
    assert intent["result"]["outcome"] == "approved" and intent["result"]["comment"] == "go"
    # it had a reply_to: the owner finds the outcome in its inbox
    assert thread_of(requester.http, approval_id)["completion"]["result"]["outcome"] == "approved"
    again = api.post(f"/v1/approvals/{approval_id}/decision", json={"decision": "reject"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "approval_not_pending"

    rejected = api.post("/v1/intents", json=task_intent(task_type="confirmation")).json()["intent_id"]
    key = {"Idempotency-Key": f"decide-{uuid.uuid4()}"}
    r = api.post(f"/v1/approvals/{rejected}/decision", json={"decision": "reject"}, headers=key)
    assert r.status_code == 200, r.text
    repeated = api.post(f"/v1/approvals/{rejected}/decision", json={"decision": "reject"}, headers=key)
    assert repeated.status_code == 200 and repeated.json() == r.json()  # the first answer, not a second decision
    intent = api.get(f"/v1/intents/{rejected}").json()["intent"]
    assert intent["status"] == "CANCELED" and intent["result"]["outcome"] == "denied"

    # the task's own rules still hold: a form without its fields gets 422 and stays open
    form = {"type": "object", "required": ["approved"], "properties": {"approved": {"type": "boolean"}}}
    form_id = api.post("/v1/intents", json=task_intent(task_type="form", form_schema=form)).json()["intent_id"]
    r = api.post(f"/v1/approvals/{form_id}/decision", json={"decision": "approve"})
    assert r.status_code == 422 and "'approved' is a required property" in r.json()["error"]["message"]
    r = api.post(f"/v1/approvals/{form_id}/decision", json={"decision": "reject"})
    assert r.status_code == 422 and r.json()["error"]["details"]["allowed"] == ["submitted"]
    assert api.get(f"/v1/intents/{form_id}").json()["intent"]["status"] == "WAITING"

    for body in ({"decision": "maybe"}, {}, {"decision": "approve", "comment": "x" * 1001}):
        assert api.post(f"/v1/approvals/{form_id}/decision", json=body).status_code == 422
    assert api.post(f"/v1/approvals/{uuid.uuid4()}/decision", json={"decision": "approve"}).status_code == 404
    # an agent key may not decide, even on a task it sent
    own = requester.http.post("/v1/intents", json=task_intent()).json()["intent_id"]
    r = requester.http.post(f"/v1/approvals/{own}/decision", json={"decision": "approve"})
    assert r.status_code == 403, r.text


def test_capabilities(api: httpx.Client) -> None:
    r = api.get("/v1/capabilities")
    assert r.status_code == 200, r.text
    assert_valid(CAPABILITIES_SCHEMA, r.json())
    caps = r.json()["capabilities"]
    assert len(caps) == len(set(caps))
    for expected in ("inbox", "inbox.changes", "approvals.decision", "delivery.inbox", "human_tasks",
                     "scenarios.apply", "storage.sqlite"):
        assert expected in caps
    assert httpx.get(f"{api.base_url}/v1/capabilities", verify=TLS).status_code == 401


# ---------------------------------------------------------------------------------------------
# the unchanged official SDK


def test_the_sdk_reads_and_answers_the_inbox(quiet: RuntimeProcess, api: httpx.Client, parties: Any) -> None:
    requester, worker = parties
    first = completed_by_worker(api, requester, worker, n=1)
    second = completed_by_worker(api, requester, worker, n=2)
    mine, admin = sdk(quiet, requester.token), sdk(quiet)
    with mine, admin:
        assert [t["thread_id"] for t in mine.list_inbox()["threads"]] == [second, first]
        assert [t["thread_id"] for t in admin.list_inbox(owner_agent=requester.address)["threads"]] == [second, first]
        assert mine.get_inbox_thread(first)["thread"]["completion"]["result"] == {"n": 1}
        page = mine.list_inbox_changes(limit=1)
        assert page["has_more"] is True and page["changes"][0]["thread"]["thread_id"] == first
        rest = mine.list_inbox_changes(cursor=page["next_cursor"], limit=10)
        assert rest["has_more"] is False and [c["thread"]["thread_id"] for c in rest["changes"]] == [second]

        replied = mine.reply_inbox_thread(first, message="received", idempotency_key=f"k-{uuid.uuid4()}")
        assert replied["thread"]["messages"][-1]["content"] == "received"
        auditor = Party(quiet, api, "auditor")
        with auditor.http:
            out = mine.delegate_inbox_thread(first, {"delegate_to": auditor.address, "note": "please check"})
            assert out["thread"]["delegated_to"] == [auditor.address]
            assert auditor.http.get(f"/v1/inbox/{first}").status_code == 200
        deleted = mine.delete_inbox_messages(first, {"mode": "both", "limit": 1})
        assert deleted["deleted_count"] == 1 and deleted["mode"] == "both"
        assert mine.approve_inbox_thread(first, {"comment": "ok"})["thread"]["status"] == "done"
        assert mine.reject_inbox_thread(second, {})["thread"]["decision"]["decision"] == "rejected"
        with pytest.raises(AxmeValidationError) as closed:
            mine.reply_inbox_thread(second, message="too late")
        assert closed.value.status_code == 409
        with pytest.raises(AxmeAuthError) as denied:
            mine.list_inbox(owner_agent=worker.address)
        assert denied.value.status_code == 403

        caps = admin.get_capabilities()
        assert "inbox" in caps["capabilities"] and caps["supported_intent_types"]
        # a workflow's human step, decided as an approval; the workflow's reply_to gets the outcome
        bundle = json.loads((SHARED / "axme-examples" / "internal" / "human_approval.json").read_text())
        bundle["intent"]["reply_to"] = requester.name
        parent = api.post("/v1/scenarios/apply", json=bundle).json()["intent_id"]
        decided = admin.decide_approval(parent, decision="approve", comment="fine by me")
        assert decided["approval"]["decision"] == "approve" and decided["approval"]["comment"] == "fine by me"
        assert api.get(f"/v1/intents/{parent}").json()["intent"]["status"] == "COMPLETED"
        delivered = mine.get_inbox_thread(parent)["thread"]
        assert delivered["completion"]["status"] == "COMPLETED" and delivered["intent_type"] == bundle["intent"]["type"]


# ---------------------------------------------------------------------------------------------
# axme inbox


def axme(rt: RuntimeProcess, tmp_path: Path, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, AXME_CONFIG_DIR=str(tmp_path / "cfg"), NO_COLOR="1", AXME_CLI_SECRET_STORAGE="file",
               AXME_BASE_URL=rt.url, AXME_API_KEY=key or rt.api_key or "")
    env.pop("AXME_OWNER_AGENT", None)
    return run(env, *args)


def test_cli_inbox_list_get_reply_approve_reject(quiet: RuntimeProcess, api: httpx.Client, parties: Any,
                                                 tmp_path: Path) -> None:
    requester, worker = parties
    first = completed_by_worker(api, requester, worker)
    second = completed_by_worker(api, requester, worker)

    listed = axme(quiet, tmp_path, "inbox", "list", "--json", key=requester.token)  # the key's own inbox
    assert listed.returncode == 0, listed.stderr
    assert [t["thread_id"] for t in json.loads(listed.stdout)["items"]] == [second, first]
    plain = axme(quiet, tmp_path, "inbox", "list", "--owner-agent", requester.name)  # the admin, for an owner
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.splitlines()[0].split() == ["THREAD", "ID", "STATUS", "SUBJECT", "FROM", "READ", "UPDATED"]
    assert first in plain.stdout and second in plain.stdout and "pending" in plain.stdout
    empty = axme(quiet, tmp_path, "inbox", "list", "--owner-agent", worker.address)
    assert empty.returncode == 0 and f"No threads in the inbox of {worker.address}." in empty.stdout

    shown = axme(quiet, tmp_path, "inbox", "get", first, key=requester.token)
    assert shown.returncode == 0, shown.stderr
    assert f"Thread ID:   {first}" in shown.stdout and "order.reserve.v1 COMPLETED" in shown.stdout
    assert "intent_completion_delivered" in shown.stdout and f"axme inbox approve {first}" in shown.stdout
    as_json = json.loads(axme(quiet, tmp_path, "inbox", "get", first, "--json", key=requester.token).stdout)
    assert as_json["thread_id"] == first and as_json["owner_agent"] == requester.address

    replied = axme(quiet, tmp_path, "inbox", "reply", first, "-m", "thanks", "--owner-agent", requester.address)
    assert replied.returncode == 0 and f"Replied in thread {first}" in replied.stdout, replied.stderr
    approved = axme(quiet, tmp_path, "inbox", "approve", first, "--comment", "good", key=requester.token)
    assert approved.returncode == 0 and "approved; it is now done" in approved.stdout, approved.stderr
    rejected = axme(quiet, tmp_path, "inbox", "reject", second, "--json", key=requester.token)
    assert rejected.returncode == 0, rejected.stderr
    assert json.loads(rejected.stdout)["thread"]["decision"]["decision"] == "rejected"
    thread = thread_of(requester.http, first)
    assert [m["content"] for m in thread["messages"]][-1] == "thanks" and thread["decision"]["comment"] == "good"

    late = axme(quiet, tmp_path, "inbox", "reply", first, "-m", "late", key=requester.token)
    assert late.returncode == 1 and "is done (approved)" in late.stderr
    denied = axme(quiet, tmp_path, "inbox", "list", "--owner-agent", requester.name, key=worker.token)
    assert denied.returncode == 1 and "permission denied: this key acts only as" in denied.stderr, denied.stderr
    missing = axme(quiet, tmp_path, "inbox", "reply", first)
    assert missing.returncode == 2

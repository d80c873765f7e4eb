"""Who may do what, on every route: credentials that do not work, agent keys kept to their own things, and
secrets kept out of the runtime's log and of every ``--json`` output of a CLI session.

What tests/runtime/api/test_auth.py (keys, intents and feeds of agent keys; people's sessions),
tests/runtime/api/test_inbox.py (inbox owner scope) and tests/runtime/api/test_webhooks.py already check is not
repeated:
this file adds every route of the OpenAPI document for the credential checks, and the service-account,
delivery-config, inbox and webhook routes an agent key must not reach for another agent.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api_document import api_document
from tests.auth_helpers import bearer, login
from tests.cli.helpers import run
from tests.conftest import ADMIN_KEY, new_intent, unique
from tests.runtime.api.test_intents import assert_error
from tests.runtime_proc import TLS, RuntimeProcess

DOC = api_document()
# POST /mcp answers JSON-RPC (-32001 for a missing or refused credential): tests/runtime/api/test_mcp.py.
AUTHENTICATED = [(m.upper(), p) for p, item in DOC["paths"].items() for m, op in item.items()
                 if op.get("security") != [] and p != "/mcp"]


@pytest.fixture(scope="module")
def rt(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    work = tmp_path_factory.mktemp("scoping")
    proc = RuntimeProcess(work, extra_args=["--redelivery-seconds", "600", "--mail-dir", str(work / "mail"),
                                            "--log-level", "info"], backend=backend)
    proc.start()
    yield proc
    proc.retire()


@pytest.fixture
def admin(rt: RuntimeProcess) -> Iterator[httpx.Client]:
    with rt.client() as client:
        yield client


class Agent:
    def __init__(self, rt: RuntimeProcess, admin: httpx.Client, prefix: str) -> None:
        self.name = unique(prefix)
        r = admin.post("/v1/service-accounts", json={"name": self.name})
        assert r.status_code == 200, r.text
        self.sa_id: str = r.json()["service_account"]["service_account_id"]
        self.address: str = r.json()["service_account"]["agent_address"]
        r = admin.post(f"/v1/service-accounts/{self.sa_id}/keys", json={})
        assert r.status_code == 200, r.text
        self.key: dict[str, Any] = r.json()["key"]
        self.token: str = self.key["token"]
        self.http = rt.client(self.token)


def call(client: httpx.Client, method: str, path: str, **headers: str) -> httpx.Response:
    filled = re.sub(r"\{(\w+)\}", lambda m: "inventory" if m.group(1) == "address" else str(uuid.uuid4()), path)
    body = {} if method in ("POST", "PUT", "PATCH") else None
    params = {"wait_seconds": 1} if path.endswith("/stream") else None
    return client.request(method, filled, json=body, params=params, headers=headers or None)


def refused_everywhere(client: httpx.Client, code: str | None = None, **headers: str) -> None:
    assert len(AUTHENTICATED) > 45
    for method, path in AUTHENTICATED:
        r = call(client, method, path, **headers)
        assert r.status_code == 401, f"{method} {path}: {r.status_code} {r.text[:200]}"
        assert_error(r, 401, code=code)


# ---------------------------------------------------------------------------------------------
# credentials, on every route that needs one


# Refused before any handler reads the store; an unknown key and token on each backend: test_auth.py
@pytest.mark.backends("sqlite")
def test_every_route_but_the_public_ones_needs_a_key(rt: RuntimeProcess) -> None:
    public = {(m.upper(), p) for p, item in DOC["paths"].items() for m, op in item.items()
              if op.get("security") == []}
    assert public == {("GET", "/health"), ("GET", "/v1/health"), ("GET", "/openapi.json"),
                      ("POST", "/v1/auth/login-intent"), ("POST", "/v1/auth/login-intent/{intent_id}/verify"),
                      ("POST", "/v1/auth/refresh"), ("GET", "/t/{token}"), ("POST", "/t/{token}"),
                      ("PUT", "/v1/media/upload/{upload_id}")}  # the upload URL's token is the credential
    with httpx.Client(base_url=rt.url, timeout=30, verify=TLS) as anon:
        refused_everywhere(anon, code="missing_api_key")
        refused_everywhere(anon, code="missing_api_key", authorization="Basic dXNlcjpwYXNz")
        refused_everywhere(anon, **{"x-api-key": "not-a-key"})
        refused_everywhere(anon, authorization=f"Bearer axme_at_{uuid.uuid4()}_{'A' * 43}")


def test_revoked_deleted_and_expired_keys_are_refused_everywhere(rt: RuntimeProcess, admin: httpx.Client) -> None:
    revoked, deleted, expiring = (Agent(rt, admin, p) for p in ("revoked", "deleted", "expiring"))
    soon = datetime.now(UTC) + timedelta(seconds=1)
    r = admin.post(f"/v1/service-accounts/{expiring.sa_id}/keys", json={"expires_at": soon.isoformat()})
    assert r.status_code == 200, r.text
    short = rt.client(r.json()["key"]["token"])
    for agent in (revoked, deleted):
        assert agent.http.get("/v1/agents").status_code == 200  # works, and sits in the key cache
    assert short.get("/v1/agents").status_code == 200
    r = admin.post(f"/v1/service-accounts/{revoked.sa_id}/keys/{revoked.key['key_id']}/revoke")
    assert r.status_code == 200, r.text
    assert admin.delete(f"/v1/service-accounts/{deleted.sa_id}").status_code == 200
    refused_everywhere(revoked.http, code="invalid_platform_api_key")
    refused_everywhere(deleted.http, code="invalid_platform_api_key")
    while datetime.now(UTC) <= soon + timedelta(milliseconds=50):
        time.sleep(0.05)
    refused_everywhere(short, code="token_expired")


def test_a_revoked_session_is_refused_everywhere(rt: RuntimeProcess) -> None:
    with httpx.Client(base_url=rt.url, timeout=30, verify=TLS) as anon:
        session = login(anon, rt.workdir / "mail", f"{unique('gone')}@example.com")
        assert anon.get("/v1/intents", headers=bearer(session["access_token"])).status_code == 200
        assert anon.post("/v1/auth/logout", headers=bearer(session["access_token"])).status_code == 200
        refused_everywhere(anon, authorization=f"Bearer {session['access_token']}")


# ---------------------------------------------------------------------------------------------
# an agent key and another agent's things


def test_an_agent_key_cannot_reach_another_agents_account_keys_or_delivery(rt: RuntimeProcess,
                                                                          admin: httpx.Client) -> None:
    alice, bob = Agent(rt, admin, "alice"), Agent(rt, admin, "bob")
    base = f"/v1/service-accounts/{bob.sa_id}"
    for method, path, body in (("GET", base, None), ("GET", f"{base}/delivery", None),
                               ("PATCH", f"{base}/delivery", {"delivery_mode": "poll"}),
                               ("PUT", f"{base}/delivery", {"delivery_mode": "poll"}),
                               ("POST", f"{base}/keys", {}), ("POST", f"{base}/keys/{bob.key['key_id']}/revoke", None),
                               ("DELETE", base, None), ("GET", f"/v1/agents/{bob.name}", None)):
        r = alice.http.request(method, path, json=body)
        assert r.status_code in (403, 404), f"{method} {path}: {r.status_code} {r.text}"
        assert bob.key["key_id"] not in r.text and bob.token not in r.text
        assert_error(r, r.status_code)
    assert bob.http.get("/v1/agents").status_code == 200  # bob's key still works, his account is there
    # its own account: visible, keys listed without their tokens
    mine = alice.http.get(f"/v1/service-accounts/{alice.sa_id}")
    assert mine.status_code == 200 and [k["key_id"] for k in mine.json()["keys"]] == [alice.key["key_id"]]
    assert alice.token not in mine.text and "token" not in mine.json()["keys"][0]
    assert alice.http.patch(f"/v1/service-accounts/{alice.sa_id}/delivery",
                            json={"delivery_mode": "poll"}).status_code == 200
    # the admin key reaches everything
    assert admin.get(base).status_code == 200
    assert admin.patch(f"{base}/delivery", json={"delivery_mode": "stream"}).status_code == 200
    spare = admin.post(f"{base}/keys", json={})
    assert spare.status_code == 200
    assert admin.post(f"{base}/keys/{spare.json()['key']['key_id']}/revoke").status_code == 200


def test_an_agent_key_cannot_act_for_the_workspace(rt: RuntimeProcess, admin: httpx.Client) -> None:
    alice = Agent(rt, admin, "worker")
    waiting = admin.post("/v1/intents", json=new_intent("agent://agent_core", human_task={"title": "Approve"}))
    assert waiting.status_code == 200, waiting.text
    approval = f"/v1/approvals/{waiting.json()['intent_id']}/decision"
    for method, path, body in (("POST", "/v1/service-accounts", {"name": unique("minion")}),
                               ("POST", "/v1/intents/bulk-cancel", {"dry_run": True}),
                               ("GET", "/v1/me/tasks", None), ("GET", "/v1/auth/sessions", None),
                               ("POST", approval, {"decision": "approve"})):
        r = alice.http.request(method, path, json=body)
        assert r.status_code in (403, 404), f"{method} {path}: {r.status_code} {r.text}"
        assert_error(r, r.status_code)
    assert admin.get(f"/v1/intents/{waiting.json()['intent_id']}").json()["intent"]["status"] == "WAITING"
    assert admin.post(approval, json={"decision": "approve"}).status_code == 200
    assert admin.post("/v1/intents/bulk-cancel", json={"dry_run": True}).status_code == 200


def test_an_agent_key_cannot_touch_another_owners_inbox(rt: RuntimeProcess, admin: httpx.Client) -> None:
    alice, bob = Agent(rt, admin, "reader"), Agent(rt, admin, "owner")
    intent_id = admin.post("/v1/intents", json=new_intent(unique("w"), reply_to=bob.address)).json()["intent_id"]
    assert admin.post(f"/v1/intents/{intent_id}/resolve", json={"status": "COMPLETED", "result": {}}).status_code == 200
    thread = f"/v1/inbox/{intent_id}"
    routes = [("GET", "/v1/inbox", None), ("GET", "/v1/inbox/changes", None), ("GET", thread, None),
              ("POST", f"{thread}/read", None), ("POST", f"{thread}/reply", {"message": "mine"}),
              ("POST", f"{thread}/delegate", {"delegate_to": alice.address}),
              ("POST", f"{thread}/messages/delete", {"mode": "both"}), ("POST", f"{thread}/approve", {}),
              ("POST", f"{thread}/reject", {})]
    assert {(m, re.sub(r"/v1/inbox/[0-9a-f-]{36}", "/v1/inbox/{thread_id}", p)) for m, p, _ in routes} == {
        (m.upper(), p) for p, item in DOC["paths"].items() for m in item if p.startswith("/v1/inbox")}
    for method, path, body in routes:
        for how in ({"params": {"owner_agent": bob.address}}, {"headers": {"x-owner-agent": bob.name}}):
            r = alice.http.request(method, path, json=body, **how)  # type: ignore[arg-type]
            assert_error(r, 403, code="policy_denied")
        if path == thread or method == "POST":  # in its own inbox, the thread is simply not there
            assert_error(alice.http.request(method, path, json=body), 404)
    shown = bob.http.get(thread)
    assert shown.status_code == 200 and shown.json()["thread"]["status"] == "pending"  # nothing happened to it
    assert admin.get(thread, params={"owner_agent": bob.address}).status_code == 200
    assert admin.post(f"{thread}/approve", params={"owner_agent": bob.address}, json={}).status_code == 200


def test_an_agent_key_cannot_touch_another_owners_webhooks(rt: RuntimeProcess, admin: httpx.Client) -> None:
    alice, bob = Agent(rt, admin, "hooker"), Agent(rt, admin, "hooked")
    hook = {"callback_url": "http://127.0.0.1:9/bob", "event_types": ["inbox.thread_created"]}
    sub = bob.http.post("/v1/webhooks/subscriptions", json=hook)
    assert sub.status_code == 200, sub.text
    sub_id = sub.json()["subscription"]["subscription_id"]
    event = bob.http.post("/v1/webhooks/events", json={"event_type": "inbox.thread_created", "source": "bob",
                                                       "payload": {}})
    assert event.status_code == 200, event.text
    event_id = event.json()["event_id"]
    as_bob = {"owner_agent": bob.address}
    for method, path, body, params, status in (
        ("POST", "/v1/webhooks/subscriptions", {**hook, "callback_url": "http://127.0.0.1:9/a"}, as_bob, 403),
        ("GET", "/v1/webhooks/subscriptions", None, as_bob, 403),
        ("POST", "/v1/webhooks/events", {"event_type": "inbox.thread_created", "source": "x1", "payload": {}},
         as_bob, 403),
        ("GET", "/v1/webhooks/deliveries", None, as_bob, 403),
        ("DELETE", f"/v1/webhooks/subscriptions/{sub_id}", None, None, 404),
        ("GET", f"/v1/webhooks/events/{event_id}", None, None, 404),
        ("POST", f"/v1/webhooks/events/{event_id}/replay", None, None, 404),
    ):
        assert_error(alice.http.request(method, path, json=body, params=params), status)
    assert alice.http.get("/v1/webhooks/subscriptions").json()["subscriptions"] == []
    assert alice.http.get("/v1/webhooks/deliveries").json()["deliveries"] == []
    listed = bob.http.get("/v1/webhooks/subscriptions").json()["subscriptions"]
    assert [(s["subscription_id"], s["active"]) for s in listed] == [(sub_id, True)]
    assert admin.get(f"/v1/webhooks/events/{event_id}").status_code == 200
    assert admin.delete(f"/v1/webhooks/subscriptions/{sub_id}").status_code == 200


# ---------------------------------------------------------------------------------------------
# secrets in the log and in --json output


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    proc = run(env, *args, "--json")  # in this process: what it prints is what a process of its own would
    assert "Traceback" not in proc.stderr, proc.stderr
    json.loads(proc.stdout or proc.stderr)  # --json: one JSON document, also for errors
    return proc


def test_no_secret_in_the_log_or_in_any_json_output(rt: RuntimeProcess, admin: httpx.Client,
                                                    tmp_path: Path) -> None:
    """A CLI session touching every kind of credential; the keys and tokens appear in none of its --json
    outputs (but the one that mints a key, which hands it over) and nowhere in the runtime's log."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AXME_")}
    env.update(AXME_CONFIG_DIR=str(tmp_path / "config"), AXME_DATA_DIR=str(tmp_path / "data"),
               AXME_CLI_SECRET_STORAGE="file", NO_COLOR="1")
    outputs: list[str] = []

    def axme(*args: str, ok: bool = True) -> Any:
        proc = _cli(env, *args)
        assert (proc.returncode == 0) == ok, proc.stdout + proc.stderr
        outputs.append(proc.stdout + proc.stderr)
        return json.loads(proc.stdout or proc.stderr)

    axme("login", "--api-key", ADMIN_KEY, "--base-url", rt.url, "--context", "ops")
    bot = unique("cli-bot")
    axme("agents", "register", "--name", bot, "--with-key")
    minted = _cli(env, "agents", "keys", "create", bot)  # hands the token over: not grepped
    assert minted.returncode == 0, minted.stdout + minted.stderr
    token = json.loads(minted.stdout)["key"]["token"]
    saved = json.loads((tmp_path / "config" / "scenario-agents.json").read_text())
    agent_tokens = [token, *(a["api_key"] for a in saved["agents"])]
    sent = axme("intents", "send", "--to", bot, "--type", "order.reserve.v1", "--data-json", '{"n": 1}')
    intent_id = sent["intent_id"]
    for args in (("status",), ("whoami",), ("doctor",), ("context", "show"), ("context", "list"),
                 ("agents", "list"), ("agents", "show", bot), ("intents", "list"), ("intents", "get", intent_id),
                 ("intents", "log", intent_id), ("webhooks", "list"), ("inbox", "list"), ("tasks", "list")):
        axme(*args)
    axme("intents", "get", intent_id, "--api-key", token)  # the agent's own view
    axme("intents", "resume", intent_id, "--api-key", token, "--action", "complete")
    axme("agents", "keys", "revoke", bot, "--key-id", json.loads(minted.stdout)["key"]["key_id"])
    axme("intents", "get", intent_id, "--api-key", token, ok=False)  # a revoked key: an error, without the key
    axme("intents", "list", "--api-key", ADMIN_KEY + "x", ok=False)
    who = f"{unique('person')}@example.com"
    with httpx.Client(base_url=rt.url, timeout=30, verify=TLS) as anon:
        person = login(anon, rt.workdir / "mail", who)
        refreshed = anon.post("/v1/auth/refresh", json={"refresh_token": person["refresh_token"]}).json()
    people = [person["access_token"], person["refresh_token"], refreshed["access_token"],
              refreshed["refresh_token"]]
    axme("intents", "list", "--api-key", refreshed["refresh_token"], ok=False)  # not an API key
    axme("login", "--email", who, "--base-url", rt.url, "--context", "person")  # a pending login

    log = rt.log.read_text(errors="replace")
    assert "axme dev" in log and len(outputs) >= 20
    for secret in [ADMIN_KEY, *agent_tokens, *people]:
        found = re.fullmatch(r"axme_[a-z]{2}_[0-9a-f-]{36}_(.+)", secret)  # the secret part (may hold "_")
        tail = found.group(1) if found else secret
        assert len(tail) >= 30
        for text, where in [(log, "the runtime log"), *((out, f"--json output #{i}") for i, out in
                                                        enumerate(outputs))]:
            assert secret not in text and tail not in text, f"a secret ...{secret[-4:]} in {where}"

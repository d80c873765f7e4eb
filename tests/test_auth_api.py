"""/v1/auth against the real runtime (a subprocess): email + code login, refresh rotation, sessions."""

from __future__ import annotations

import asyncio
import socketserver
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.auth_helpers import auth_runtime, bearer, login, read_code
from tests.auth_helpers import mail_dir as mail
from tests.conftest import make_agent, new_intent
from tests.runtime_proc import RuntimeProcess

SHORT = 2.0  # seconds: login-code and access-token lifetime of the `short` runtime


@pytest.fixture(scope="module")
def rt(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    proc = auth_runtime(tmp_path_factory.mktemp("auth"), backend=backend)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def short(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    proc = auth_runtime(tmp_path_factory.mktemp("auth-short"), "--login-code-ttl", str(SHORT),
                        "--access-token-ttl", str(SHORT), "--allow-email", "Short@Example.com",
                        "--allow-email", "short2@example.com", backend=backend)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def anon(rt: RuntimeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=rt.url, timeout=30.0) as c:
        yield c


def unique(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.com"


def error_code(r: httpx.Response) -> str:
    body = r.json()
    assert body["detail"] == body["error"]["message"]
    return str(body["error"]["code"])


# ------------------------------------------------------------------------------------------ login
def test_full_login_flow(rt: RuntimeProcess, anon: httpx.Client) -> None:
    who = unique()
    r = anon.post("/v1/auth/login-intent", json={"email": who.upper()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True and body["expires_in"] == 300 and body["email"] == who
    assert body["intent_id"] and body["grant_id"]
    [eml] = [p for p in mail(rt).glob("*.eml") if body["intent_id"] in p.name]
    assert eml.stat().st_mode & 0o777 == 0o600
    code = read_code(mail(rt), who)
    assert f"login code for {who}: {code} (expires in 5 min)" in rt.log.read_text()

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
    who = unique()
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
    who = unique()
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
    who = unique()
    for _ in range(5):
        assert anon.post("/v1/auth/login-intent", json={"email": who}).status_code == 200
    r = anon.post("/v1/auth/login-intent", json={"email": who})
    assert r.status_code == 429 and error_code(r) == "rate_limit_exceeded"
    assert 1 <= int(r.headers["retry-after"]) <= 301
    assert anon.post("/v1/auth/login-intent", json={"email": unique()}).status_code == 200  # per email


def test_expired_code_is_410(short: RuntimeProcess) -> None:
    with httpx.Client(base_url=short.url) as c:
        intent_id = c.post("/v1/auth/login-intent", json={"email": "short@example.com"}).json()["intent_id"]
        code = read_code(mail(short), "short@example.com")
        time.sleep(SHORT + 0.2)
        r = c.post(f"/v1/auth/login-intent/{intent_id}/verify", json={"code": code})
        assert r.status_code == 410 and error_code(r) == "login_code_expired"


def test_allow_email_restricts_who_may_log_in(short: RuntimeProcess) -> None:
    with httpx.Client(base_url=short.url) as c:
        r = c.post("/v1/auth/login-intent", json={"email": "mallory@example.com"})
        assert r.status_code == 403 and error_code(r) == "email_not_allowed"
        assert c.post("/v1/auth/login-intent", json={"email": "SHORT2@example.com"}).status_code == 200
    assert "mallory" not in "".join(p.read_text() for p in mail(short).glob("*.eml"))


# ------------------------------------------------------------------------------------------ tokens
def test_refresh_rotates_and_reuse_revokes_the_session(rt: RuntimeProcess, anon: httpx.Client) -> None:
    first = login(anon, mail(rt), unique())
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


def test_expired_access_token_is_401_token_expired(short: RuntimeProcess) -> None:
    with httpx.Client(base_url=short.url) as c:
        s = login(c, mail(short), "short@example.com")
        assert s["expires_in"] == SHORT
        assert c.get("/v1/auth/whoami", headers=bearer(s["access_token"])).status_code == 200
        time.sleep(SHORT + 0.2)
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
    s = login(anon, mail(rt), unique())
    r = anon.get("/v1/auth/whoami", headers={"x-api-key": str(rt.api_key), **bearer(s["access_token"])})
    assert r.json()["principal"]["kind"] == "actor"


def test_actor_acts_on_intents_but_not_on_service_accounts(rt: RuntimeProcess, anon: httpx.Client) -> None:
    who = unique()
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
    who = unique()
    a = login(anon, mail(rt), who)
    b = login(anon, mail(rt), who)
    other = login(anon, mail(rt), unique())
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
    who = unique()
    a, b = login(anon, mail(rt), who), login(anon, mail(rt), who)
    r = anon.post("/v1/auth/logout-all", json={}, headers=bearer(a["access_token"]))
    assert r.status_code == 200 and r.json()["revoked"] == 2
    for s in (a, b):
        assert anon.get("/v1/auth/whoami", headers=bearer(s["access_token"])).status_code == 401


# ------------------------------------------------------------------------------------------ secrets at rest
def test_no_token_in_clear_in_the_database_or_the_log(rt: RuntimeProcess, anon: httpx.Client) -> None:
    tokens: list[str] = []
    emails = [unique() for _ in range(3)]
    for email in emails:
        s = login(anon, mail(rt), email)
        r = anon.post("/v1/auth/refresh", json={"refresh_token": s["refresh_token"]}).json()
        tokens += [s["access_token"], s["refresh_token"], r["access_token"], r["refresh_token"]]
    blobs = rt.stored_bytes()
    # the dump holds what this test wrote (its size depends on which other tests shared this runtime before it)
    for email in emails:
        assert email.encode() in blobs
    log = rt.log.read_bytes()
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
        with httpx.Client(base_url=proc.url) as c:
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

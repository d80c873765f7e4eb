"""Login is closed by default, limited in rate, and its codes never reach a log (the attacks of issue 16).

A stranger used to log in to `axme server` (any email was allowed), guess codes at ~550 a second, make the
runtime mail anyone ~110 times a second, and read codes in the server's log. These tests start real runtimes.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from axme_cli.runtime.clock import ManualClock
from tests.auth_helpers import bearer, read_code
from tests.runtime_proc import TLS, RuntimeProcess
from tests.runtime_thread import RuntimeThread


def server(workdir: Path, backend: str, *args: str) -> RuntimeProcess:
    """`axme server` on ``backend`` with its mails in ``workdir/mail`` (and the default login limits)."""
    database_url = f"sqlite:///{workdir / 'server.db'}" if backend == "sqlite" else None
    return RuntimeProcess(workdir, command="server", backend=backend, database_url=database_url,
                          extra_args=["--mail-dir", str(workdir / "mail"), *args])


@pytest.fixture
def started() -> Iterator[list[RuntimeProcess]]:
    """Runtimes a test starts; stopped after it."""
    procs: list[RuntimeProcess] = []
    yield procs
    for proc in procs:
        proc.retire()


def start(started: list[RuntimeProcess], proc: RuntimeProcess) -> RuntimeProcess:
    started.append(proc)
    return proc.start()


def email() -> str:
    return f"stranger-{uuid.uuid4().hex[:8]}@example.com"


def error_of(r: httpx.Response, status: int, code: str) -> dict[str, object]:
    """The AXP error shape with ``status`` and ``code``."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "detail"} and body["detail"] == body["error"]["message"], body
    assert body["error"]["code"] == code, body
    return dict(body["error"])


def ask_code(c: httpx.Client, who: str) -> httpx.Response:
    return c.post("/v1/auth/login-intent", json={"email": who})


def log_in(c: httpx.Client, mail: Path, who: str) -> dict[str, object]:
    r = ask_code(c, who)
    assert r.status_code == 200, r.text
    r = c.post(f"/v1/auth/login-intent/{r.json()['intent_id']}/verify", json={"code": read_code(mail, who)})
    assert r.status_code == 200, r.text
    return dict(r.json())


def ui_email_login(c: httpx.Client, who: str) -> httpx.Response:
    assert c.get("/ui/login").status_code == 200
    return c.post("/ui/login/email", data={"csrf": c.cookies["axme_ui_login"], "email": who})


# ------------------------------------------------------------------------------------- who may log in
# SQLite only: the allow list is read before any storage is (a refusal), and what is checked of a login that is let
# in is the server's output; logins on both backends are tests/runtime/api/test_auth.py's.
@pytest.mark.backends("sqlite")
def test_a_server_without_allow_email_lets_nobody_log_in(backend: str, tmp_path: Path,
                                                         started: list[RuntimeProcess]) -> None:
    rt = start(started, server(tmp_path, backend))
    assert "Logins     email login off (--allow-email names who may log in)" in rt.log.read_text()
    with httpx.Client(verify=TLS, base_url=rt.url, timeout=30.0) as c:
        for who in (email(), "admin@localhost", "root@example.com"):
            error = error_of(ask_code(c, who), 403, "email_not_allowed")
            assert error["details"] == {"field": "email"}
        r = ui_email_login(c, email())  # the dashboard's email login obeys the same rule
        assert r.status_code == 403 and "may not log in" in r.text
    assert not list((tmp_path / "mail").glob("*.eml"))  # nothing was mailed


@pytest.mark.backends("sqlite")
def test_a_server_lets_in_the_emails_and_domains_it_names_and_logs_no_code(
        backend: str, tmp_path: Path, started: list[RuntimeProcess]) -> None:
    rt = start(started, server(tmp_path, backend, "--allow-email", "Ann@Example.com", "--allow-email", "@corp.test"))
    assert "Logins     by email (@corp.test, ann@example.com); codes written to" in rt.log.read_text()
    mail = tmp_path / "mail"
    codes = []
    with httpx.Client(verify=TLS, base_url=rt.url, timeout=30.0) as c:
        for who in ("ann@example.com", "bob@corp.test", "CAROL@CORP.TEST"):
            session = log_in(c, mail, who.lower())
            me = c.get("/v1/auth/whoami", headers=bearer(str(session["access_token"])))
            assert me.json()["principal"]["email"] == who.lower()
            codes.append(read_code(mail, who.lower()))
        for who in ("bob@example.com", "ann@corp.test.evil", "x@sub.corp.test", "corp.test@evil.test"):
            error_of(ask_code(c, who), 403, "email_not_allowed")
        r = ui_email_login(c, "dave@corp.test")  # the dashboard: the same list
        assert r.status_code == 200 and 'name="login_intent"' in r.text
        codes.append(read_code(mail, "dave@corp.test"))
    rt.stop()
    log = rt.log.read_text()
    assert "login code for" not in log
    for code in codes:
        assert not re.search(rf"\b{code}\b", log), f"a login code is in the server's output:\n{log}"


def test_dev_on_loopback_still_lets_any_email_in_and_prints_its_code(tmp_path: Path,
                                                                     started: list[RuntimeProcess]) -> None:
    rt = start(started, RuntimeProcess(tmp_path, extra_args=["--mail-dir", str(tmp_path / "mail")]))
    assert "Logins     by email (any email)" in rt.log.read_text()
    who = email()
    with httpx.Client(verify=TLS, base_url=rt.url, timeout=30.0) as c:
        log_in(c, tmp_path / "mail", who)
    code = read_code(tmp_path / "mail", who)
    assert f"login code for {who}: {code}" in rt.log.read_text()  # the console of `axme dev` only


def test_dev_bound_beyond_loopback_is_closed_like_a_server(tmp_path: Path, started: list[RuntimeProcess]) -> None:
    rt = start(started, RuntimeProcess(tmp_path, extra_args=["--host", "0.0.0.0", "--mail-dir",
                                                             str(tmp_path / "mail")]))
    assert "email login off" in rt.log.read_text()
    with httpx.Client(verify=TLS, base_url=rt.url.replace("0.0.0.0", "127.0.0.1"), timeout=30.0) as c:
        error_of(ask_code(c, email()), 403, "email_not_allowed")


# ------------------------------------------------------------------------------------- rate limits
# On a test clock the buckets refill only when the test moves it: each limit lets its burst through, exactly.
def limited(tmp_path: Path, *args: str) -> RuntimeThread:
    return RuntimeThread(tmp_path, extra_args=list(args), clock=ManualClock())


def burst(send: Callable[[], httpx.Response], tries: int) -> tuple[int, httpx.Response]:
    """Call ``send()`` until it answers 429 (at most ``tries`` times): (answers before it, the 429)."""
    for n in range(tries):
        r = send()
        if r.status_code == 429:
            return n, r
    raise AssertionError(f"no 429 in {tries} calls")


def refused_for(r: httpx.Response, dimension: str) -> int:
    """A 429 in the AXP shape, with Retry-After; returns it."""
    error = error_of(r, 429, "rate_limit_exceeded")
    details = error["details"]
    assert isinstance(details, dict) and details["dimension"] == dimension and details["retryable"] is True
    retry = int(r.headers["retry-after"])
    assert retry == details["retry_after_seconds"] and retry >= 1
    return retry


def test_code_checks_per_address_are_limited(tmp_path: Path, started: list[RuntimeProcess]) -> None:
    rt = start(started, limited(tmp_path))
    with httpx.Client(verify=TLS, base_url=rt.url, timeout=30.0) as c:
        intent = f"/v1/auth/login-intent/{uuid.uuid4()}/verify"
        got, refused = burst(lambda: c.post(intent, json={"code": "123456"}), 100)
        assert got == 10
        assert refused_for(refused, "code_checks_per_address") == 6  # 10 a minute: the next in 6 s
        # the dashboard's code form and task-mail links count as the same guesses
        assert c.get("/ui/login").status_code == 200
        r = c.post("/ui/login/code", data={"csrf": c.cookies["axme_ui_login"], "login_intent": str(uuid.uuid4()),
                                           "email": "a@example.com", "code": "123456"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        r = c.get(f"/t/{uuid.uuid4().hex}")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


def test_wrong_task_link_tokens_are_limited(tmp_path: Path, started: list[RuntimeProcess]) -> None:
    rt = start(started, limited(tmp_path))
    with httpx.Client(verify=TLS, base_url=rt.url, timeout=30.0) as c:
        got, refused = burst(lambda: c.get(f"/t/{uuid.uuid4().hex}"), 100)
        assert got == 10 and refused.status_code == 429, got
        assert int(refused.headers["retry-after"]) >= 1 and "Too many tries" in refused.text


def test_login_calls_per_address_are_limited(tmp_path: Path, started: list[RuntimeProcess]) -> None:
    rt = start(started, limited(tmp_path))
    with httpx.Client(verify=TLS, base_url=rt.url, timeout=30.0) as c:
        got, refused = burst(lambda: c.post("/v1/auth/refresh", json={"refresh_token": "axme_rt_x"}), 200)
        assert got == 30
        assert refused_for(refused, "login_calls_per_address") == 2  # 30 a minute: the next in 2 s
        refused_for(ask_code(c, email()), "login_calls_per_address")  # one budget for every such call
        assert c.get("/ui/login").status_code == 200
        r = c.post("/ui/login", data={"csrf": c.cookies["axme_ui_login"], "api_key": "x" * 40})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert c.get("/health").status_code == 200  # the rest of the API is not affected


def test_codes_per_email_are_limited(tmp_path: Path, started: list[RuntimeProcess]) -> None:
    rt = start(started, limited(tmp_path, "--mail-dir", str(tmp_path / "mail")))
    who = email()
    with httpx.Client(verify=TLS, base_url=rt.url, timeout=30.0) as c:
        for _ in range(5):  # each code used at once, so the open-codes limit is not what refuses the sixth
            log_in(c, tmp_path / "mail", who)
        retry = refused_for(ask_code(c, who), "login_codes_per_email")
        assert retry == 120  # one code every 2 min (5 per 10 min)
        rt.advance_clock(120)  # and the next one two minutes later
        assert ask_code(c, who).status_code == 200
        assert ask_code(c, email()).status_code == 200  # per email
    assert len(list((tmp_path / "mail").glob("*.eml"))) == 7


def test_login_rate_limit_zero_turns_the_limits_off(tmp_path: Path, started: list[RuntimeProcess]) -> None:
    rt = start(started, RuntimeThread(tmp_path, extra_args=["--login-rate-limit", "0"]))
    with httpx.Client(verify=TLS, base_url=rt.url, timeout=30.0) as c:
        intent = f"/v1/auth/login-intent/{uuid.uuid4()}/verify"
        assert {c.post(intent, json={"code": "123456"}).status_code for _ in range(40)} == {404}

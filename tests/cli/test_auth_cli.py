"""`axme login / logout / whoami / doctor` as a user runs them (in this process; prompts on a terminal: a process)
against a real `axme dev` (a process: its log and the context it writes are checked) and, for token refresh, a
runtime in a thread."""

from __future__ import annotations

import json
import os
import pty
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth_helpers import auth_runtime, bearer, read_code
from tests.auth_helpers import mail_dir as mail
from tests.cli.helpers import run
from tests.runtime_proc import ADMIN_KEY, TLS, RuntimeProcess
from tests.runtime_thread import RuntimeThread

SHORT = 1.0  # access-token lifetime of the `short` runtime (the least `axme dev` takes), on its test clock


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    proc = auth_runtime(tmp_path_factory.mktemp("cli-auth"))
    proc.start()
    yield proc
    proc.retire()


@pytest.fixture(scope="module")
def short(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    work = tmp_path_factory.mktemp("cli-auth-short")
    proc = RuntimeThread(work, extra_args=["--mail-dir", str(work / "mail"), "--login-rate-limit", "0",
                                           "--access-token-ttl", str(SHORT), "--test-clock"])
    proc.start()
    yield proc
    proc.retire()


def cli_env(config_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AXME_")}
    env.update(AXME_CONFIG_DIR=str(config_dir), AXME_DATA_DIR=str(config_dir / "data"),
               AXME_CLI_SECRET_STORAGE="file")
    return env


def axme(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """In this process; stdin is never a terminal (``stdin``, or empty as /dev/null), so the CLI never prompts."""
    return run(env, *args, input=stdin)


def ok_json(out: subprocess.CompletedProcess[str]) -> Any:
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    return json.loads(out.stdout)


def secrets_of(config_dir: Path) -> dict[str, Any]:
    path = config_dir / "secrets.json"
    assert path.stat().st_mode & 0o777 == 0o600
    return dict(json.loads(path.read_text()))


def email_login(env: dict[str, str], rt: RuntimeProcess, context: str, who: str) -> dict[str, Any]:
    """The non-interactive two steps: ask for a code, then finish with it."""
    pending = ok_json(axme(env, "login", "--base-url", rt.url, "--context", context, "--email", who, "--json"))
    assert pending == {"ok": True, "context": context, "base_url": rt.url, "method": "email", "pending": True,
                       "email": who, "next": "axme login --code CODE"}
    done = ok_json(axme(env, "login", "--context", context, "--code", read_code(mail(rt), who), "--json"))
    assert done["method"] == "email" and done["email"] == who and done["context"] == context
    return dict(done)


# ------------------------------------------------------------------------------------------ email + code
def test_email_login_whoami_doctor_logout(rt: RuntimeProcess, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    env = cli_env(cfg)
    done = email_login(env, rt, "work", "ana@example.com")

    stored = secrets_of(cfg)["work"]
    assert set(stored) == {"actor_token", "refresh_token", "token_expires_at"}
    tokens = [stored["actor_token"], stored["refresh_token"]]
    config_text = (cfg / "config.json").read_text()
    config = json.loads(config_text)
    assert config["last_login_email"] == "ana@example.com" and "pending_login" not in config
    assert config["contexts"]["work"] == {"base_url": rt.url, "org_id": "local", "workspace_id": "dev"}
    assert "axme_at_" not in config_text and "axme_rt_" not in config_text

    who = ok_json(axme(env, "whoami", "--context", "work", "--json"))
    assert who["principal"]["kind"] == "actor" and who["principal"]["email"] == "ana@example.com"
    assert who["principal"]["session_id"] == done["session_id"]
    assert who["context"] == "work" and who["base_url"] == rt.url
    assert who["credentials"] == {"actor_token": "context", "refresh_token": "context"}
    assert who["secret_storage"] == {"mode": "file", "detail": str(cfg / "secrets.json")}
    human = axme(env, "whoami", "--context", "work")
    assert human.returncode == 0 and "ana@example.com" in human.stdout and "Secret storage" in human.stdout

    doctor = axme(env, "doctor", "--context", "work", "--json")
    checks = {c["check"]: c for c in ok_json(doctor)["items"]}
    assert list(checks) == ["config_file", "context", "base_url", "credentials", "secret_storage",
                            "runtime_reachable", "server_version", "clock_skew", "credentials_accepted"]
    assert all(c["ok"] for c in checks.values()), checks
    assert checks["credentials_accepted"]["detail"] == "actor ana@example.com"
    assert "from context" in checks["credentials"]["detail"]
    table = axme(env, "doctor", "--context", "work")
    assert table.returncode == 0 and table.stdout.split()[:4] == ["CHECK", "OK", "DETAIL", "FIX"]

    outputs = json.dumps(done) + json.dumps(who) + human.stdout + doctor.stdout + table.stdout
    for token in tokens:
        assert token not in outputs
        assert token not in rt.log.read_text()

    out = ok_json(axme(env, "logout", "--context", "work", "--json"))
    assert out["account_session_cleared"] is True and out["api_key_cleared"] is False
    assert out["server_logout"]["revoked"] is True and out["server_logout"]["session_id"] == done["session_id"]
    assert "work" not in secrets_of(cfg)
    with httpx.Client(verify=TLS, base_url=rt.url) as c:
        assert c.get("/v1/auth/whoami", headers=bearer(tokens[0])).status_code == 401
    after = axme(env, "whoami", "--context", "work")
    assert after.returncode == 2 and "axme login" in after.stderr


def test_wrong_code_keeps_the_login_pending(rt: RuntimeProcess, tmp_path: Path) -> None:
    env = cli_env(tmp_path / "cfg")
    assert axme(env, "login", "--base-url", rt.url, "--email", "ben@example.com").returncode == 0
    code = read_code(mail(rt), "ben@example.com")
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    out = axme(env, "login", "--code", wrong)
    assert out.returncode == 2 and "wrong code; 4 tries left" in out.stderr  # the input was wrong: exit 2
    out = axme(env, "login", "--code", wrong, "--json")
    assert json.loads(out.stdout)["error"]["code"] == "invalid_login_code"
    out = axme(env, "login", "--code", code)
    assert out.returncode == 0, out.stderr
    assert f"Signed in to {rt.url} as ben@example.com" in out.stdout
    out = axme(env, "login", "--code", code)
    assert out.returncode == 2 and "no pending login" in out.stderr


def _expect(fd: int, text: str, seen: list[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while text.encode() not in b"".join(seen):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(f"no {text!r} on the terminal; got {b''.join(seen)!r}")
        try:
            seen.append(os.read(fd, 4096))
        except OSError:
            raise AssertionError(f"terminal closed before {text!r}; got {b''.join(seen)!r}") from None


def _on_terminal(env: dict[str, str], *args: str) -> tuple[subprocess.Popen[bytes], int]:
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "axme_cli", *args], env=env, stdin=slave, stdout=subprocess.PIPE,
                            stderr=slave)
    os.close(slave)
    return proc, master


def test_interactive_login_prompts_for_email_and_code(rt: RuntimeProcess, tmp_path: Path) -> None:
    env = cli_env(tmp_path / "cfg")
    proc, term = _on_terminal(env, "login", "--base-url", rt.url, "--context", "tty")
    seen: list[bytes] = []
    try:
        _expect(term, "Email:", seen)
        os.write(term, b"Tty@Example.com\n")
        _expect(term, "Code:", seen)
        code = read_code(mail(rt), "tty@example.com")
        os.write(term, f"{(int(code) + 1) % 1_000_000:06d}\n".encode())
        _expect(term, "wrong code", seen)
        _expect(term, "Code:", seen[-1:])
        os.write(term, code.encode() + b"\n")
        stdout, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
        os.close(term)
    assert proc.returncode == 0, b"".join(seen)
    assert b"Signed in to " + rt.url.encode() + b" as tty@example.com" in stdout

    # the next login remembers the email; --force signs in again even with a live session
    proc, term = _on_terminal(env, "login", "--context", "tty", "--force")
    seen = []
    try:
        _expect(term, "Email [tty@example.com]:", seen)
        os.write(term, b"\n")
        _expect(term, "Code:", seen)
        os.write(term, read_code(mail(rt), "tty@example.com").encode() + b"\n")
        stdout, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
        os.close(term)
    assert proc.returncode == 0, b"".join(seen)


def test_without_credentials_and_without_a_terminal(rt: RuntimeProcess, tmp_path: Path) -> None:
    env = cli_env(tmp_path / "cfg")
    out = axme(env, "login", "--base-url", rt.url, "--context", "nobody", "--json")
    assert out.returncode == 2
    body = json.loads(out.stdout)
    assert body["ok"] is False and body["error"]["code"] == "no_credentials"
    assert "--api-key" in out.stderr and "Traceback" not in out.stderr


# ------------------------------------------------------------------------------------------ API keys
def test_login_with_api_key_and_with_token(rt: RuntimeProcess, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    env = cli_env(cfg)
    out = axme(env, "login", "--api-key", ADMIN_KEY, "--context", "ci", "--base-url", rt.url, "--json")
    body = ok_json(out)
    assert body["method"] == "api_key" and body["context"] == "ci" and body["principal"]["kind"] == "workspace"
    assert ADMIN_KEY not in out.stdout + out.stderr
    assert secrets_of(cfg)["ci"] == {"api_key": ADMIN_KEY}
    assert ADMIN_KEY not in (cfg / "config.json").read_text()
    assert json.loads((cfg / "config.json").read_text())["active_context"] == "ci"

    out = axme(env, "login", "--with-token", "--context", "piped", "--base-url", rt.url, stdin=ADMIN_KEY + "\n")
    assert out.returncode == 0, out.stderr
    assert "workspace admin key" in out.stdout and "context piped" in out.stdout
    assert secrets_of(cfg)["piped"] == {"api_key": ADMIN_KEY}
    assert axme(env, "whoami", "--context", "piped").returncode == 0

    out = axme(env, "login", "--api-key", "not-the-key-0123456789", "--context", "bad", "--base-url", rt.url)
    assert out.returncode == 2 and "refused this API key" in out.stderr
    assert "bad" not in secrets_of(cfg) and "bad" not in json.loads((cfg / "config.json").read_text())["contexts"]
    out = axme(env, "login", "--with-token", "--context", "empty", stdin="")
    assert out.returncode == 2 and "stdin was empty" in out.stderr


def test_local_context_from_axme_dev_needs_no_login(rt: RuntimeProcess) -> None:
    env = cli_env(rt.workdir / "config")  # where `axme dev` wrote context `local` and its key
    body = ok_json(axme(env, "login", "--json"))
    assert body["method"] == "local_context" and body["context"] == "local" and body["base_url"] == rt.url
    assert body["principal"]["kind"] == "workspace"
    out = axme(env, "login")
    assert out.returncode == 0
    assert ("Signed in to the local runtime through the context `local` that `axme dev` wrote; no login needed"
            in out.stdout)
    out = axme(env, "login", "--force", "--json")  # force: the email flow, which needs an email here
    assert out.returncode == 2 and json.loads(out.stdout)["error"]["code"] == "no_credentials"


def test_logout_all_also_deletes_the_api_key(rt: RuntimeProcess, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    env = cli_env(cfg)
    ok_json(axme(env, "login", "--api-key", ADMIN_KEY, "--context", "both", "--base-url", rt.url, "--json"))
    email_login(env, rt, "both", "cleo@example.com")
    assert set(secrets_of(cfg)["both"]) == {"api_key", "actor_token", "refresh_token", "token_expires_at"}
    # the person's token wins over the key sent with it
    assert ok_json(axme(env, "whoami", "--json"))["principal"]["kind"] == "actor"
    out = ok_json(axme(env, "logout", "--json"))
    assert out["api_key_remaining"] is True and secrets_of(cfg)["both"] == {"api_key": ADMIN_KEY}
    assert ok_json(axme(env, "whoami", "--json"))["principal"]["kind"] == "workspace"
    out = ok_json(axme(env, "logout", "--all", "--json"))
    assert out["api_key_cleared"] is True and out["account_session_cleared"] is False
    assert "both" not in secrets_of(cfg)


# ------------------------------------------------------------------------------------------ refresh
def test_cli_refreshes_an_expired_access_token(short: RuntimeProcess, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    env = cli_env(cfg)
    email_login(env, short, "s", "dora@example.com")
    first = secrets_of(cfg)["s"]

    # ahead of time: the stored expiry says the access token is (about to be) gone (the CLI renews a token with
    # less than a minute left, by its own clock)
    assert ok_json(axme(env, "whoami", "--json"))["principal"]["email"] == "dora@example.com"
    second = secrets_of(cfg)["s"]
    assert second["actor_token"] != first["actor_token"] and second["refresh_token"] != first["refresh_token"]

    # on the runtime's word: the stored expiry lies, the runtime answers 401 token_expired
    lie = dict(second, token_expires_at="2999-01-01T00:00:00.000000Z")
    data = json.loads((cfg / "secrets.json").read_text())
    data["s"] = lie
    (cfg / "secrets.json").write_text(json.dumps(data))
    short.advance_clock(SHORT + 0.2)  # gone by the runtime's clock
    assert ok_json(axme(env, "whoami", "--json"))["principal"]["email"] == "dora@example.com"
    third = secrets_of(cfg)["s"]
    assert third["refresh_token"] != second["refresh_token"]

    # a copied (spent) refresh token ends the session for everyone
    with httpx.Client(verify=TLS, base_url=short.url) as c:
        r = c.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert r.status_code == 401 and r.json()["error"]["code"] == "refresh_token_reused"
    out = axme(env, "whoami")
    assert out.returncode == 2 and "axme login" in out.stderr


# ------------------------------------------------------------------------------------------ doctor
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_doctor_when_nothing_listens(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "cfg")
    url = f"http://127.0.0.1:{_free_port()}"
    out = axme(env, "doctor", "--base-url", url, "--json")
    assert out.returncode == 1
    body = json.loads(out.stdout)
    assert body["ok"] is False and body["next_cursor"] is None  # a failed check: the list reports a failure
    checks = {c["check"]: c for c in body["items"]}
    assert checks["runtime_reachable"]["ok"] is False
    assert checks["runtime_reachable"]["detail"] == f"cannot reach {url}" and "axme dev" in checks[
        "runtime_reachable"]["fix"]
    assert checks["credentials"]["ok"] is False
    assert checks["server_version"]["ok"] is None and checks["server_version"]["status"] == "skip"
    out = axme(env, "doctor", "--base-url", url)
    assert out.returncode == 1 and "FAIL" in out.stdout and "Traceback" not in out.stderr

"""`axme intents ...` and `axme observe` as a user runs them, against the real runtime.

Every command runs in this process (tests/cli/helpers.py ``run``: the CLI's own command tree, stdout and stderr
captured) in an environment of its own (AXME_CONFIG_DIR and AXME_DATA_DIR in a temp folder, file secrets,
NO_COLOR, no AXME_* from the parent); a live stream and a terminal run ``python -m axme_cli`` as a process. Agents
are played over HTTP with service-account keys (``make_agent``), waiting on their delivery feed instead of
sleeping.

``--json`` shapes are compared with ``tests/snapshots/<name>.json``: keys and value types only (ids and
timestamps normalised). Rewrite them after a deliberate change with ``AXME_UPDATE_SNAPSHOTS=1``.

The helpers at the top (``cli_env``, ``write_context``, ``axme``, ``axme_many``, ``assert_snapshot``) are shared
with ``tests/cli/test_context_cli.py``.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import socket
import struct
import subprocess
import sys
import termios
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.helpers import run as run_cli
from tests.conftest import intent, make_agent
from tests.runtime_proc import ADMIN_KEY, RuntimeProcess
from tests.runtime_thread import RuntimeThread

REPO = Path(__file__).resolve().parents[2]
SNAPSHOTS = REPO / "tests" / "snapshots"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


# ---------------------------------------------------------------------------------------------
# helpers (also used by test_context_cli.py)


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment of its own: config and data under ``home``, file secrets, no colour, no AXME_* leaks."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AXME_")}
    env.update(AXME_CONFIG_DIR=str(home / "config"), AXME_DATA_DIR=str(home / "data"),
               AXME_CLI_SECRET_STORAGE="file", NO_COLOR="1")
    env.update(extra)
    return env


def write_context(home: Path, contexts: dict[str, tuple[str, str | None]], active: str | None) -> None:
    """Write config.json and secrets.json (0600) directly: ``{name: (base_url, api_key)}``."""
    cfg = home / "config"
    cfg.mkdir(parents=True, exist_ok=True, mode=0o700)
    config: dict[str, Any] = {"contexts": {name: {"base_url": url} for name, (url, _) in contexts.items()}}
    if active:
        config["active_context"] = active
    (cfg / "config.json").write_text(json.dumps(config))
    secrets = cfg / "secrets.json"
    secrets.write_text(json.dumps({name: {"api_key": key} for name, (_, key) in contexts.items() if key}))
    secrets.chmod(0o600)


@dataclass
class Run:
    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"axme {' '.join(self.args)} -> exit {self.code}\n--- stdout:\n{self.out}\n--- stderr:\n{self.err}"

    def doc(self) -> Any:
        """The one JSON document on stdout (one line, nothing else)."""
        assert self.out.count("\n") == 1 and self.out.endswith("\n"), f"not one JSON document on stdout:\n{self}"
        return json.loads(self.out)

    def docs(self) -> list[dict[str, Any]]:
        """A stream under --json: one JSON object per line."""
        lines = self.out.splitlines()
        values = [json.loads(line) for line in lines]
        assert all(isinstance(v, dict) for v in values), f"not one JSON object per line:\n{self}"
        return values

    def error(self, code: int) -> dict[str, Any]:
        """An error under --json: exit ``code``, ``{"ok": false, "error": {"code", "message"}}`` on stdout."""
        assert self.code == code, str(self)
        assert self.out.strip(), f"no JSON error document on stdout:\n{self}"
        body = self.doc()
        assert body.get("ok") is False and isinstance(body.get("error"), dict), str(self)
        assert isinstance(body["error"].get("code"), str) and isinstance(body["error"].get("message"), str), str(self)
        return body["error"]

    def human_error(self, code: int, *, fix: bool = True) -> str:
        """A human error: exit ``code``, nothing on stdout, ``axme: <sentence>`` and (``fix``) a fix on stderr."""
        assert self.code == code, str(self)
        assert self.out == "", f"an error printed to stdout:\n{self}"
        assert self.err.startswith("axme: "), str(self)
        if fix:
            assert "\n  fix: " in self.err, f"no fix given:\n{self}"
        return self.err


def axme(*args: str, env: dict[str, str]) -> Run:
    """`axme *args` in this process, stdin empty and not a terminal (as /dev/null)."""
    proc = run_cli(env, *args)
    result = Run(args, proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in result.out + result.err, str(result)
    return result


def axme_many(calls: Sequence[tuple[Sequence[str], dict[str, str]]]) -> list[Run]:
    """Independent commands, one after another (a few milliseconds each in this process)."""
    return [axme(*args, env=env) for args, env in calls]


def shape(value: Any) -> Any:
    """Keys and value types of a JSON value; ids and timestamps are normalised, lists keep distinct shapes."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        shapes: list[Any] = []
        for item in value:
            s = shape(item)
            if s not in shapes:
                shapes.append(s)
        return shapes
    if value is None:
        return None
    if isinstance(value, bool):
        return "<bool>"
    if isinstance(value, int):
        return "<int>"
    if isinstance(value, float):
        return "<float>"
    if isinstance(value, str):
        if UUID_RE.match(value):
            return "<uuid>"
        if TS_RE.match(value):
            return "<timestamp>"
        return "<str>"
    raise TypeError(f"not a JSON value: {value!r}")


def assert_snapshot(name: str, value: Any) -> None:
    path = SNAPSHOTS / f"{name}.json"
    actual = shape(value)
    if os.environ.get("AXME_UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(actual, indent=2, sort_keys=True) + "\n")
        return
    assert path.exists(), f"no snapshot {path}; write it with AXME_UPDATE_SNAPSHOTS=1"
    expected = json.loads(path.read_text())
    assert actual == expected, f"the --json shape of {name} changed; if on purpose, rerun with AXME_UPDATE_SNAPSHOTS=1"


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


# ---------------------------------------------------------------------------------------------
# fixtures: a runtime of this module whose redelivery timer never fires during the tests


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    proc = RuntimeThread(tmp_path_factory.mktemp("cli-intents-rt"), extra_args=["--redelivery-seconds", "600"])
    proc.env["AXME_CLI_SECRET_STORAGE"] = "file"
    proc.start()
    yield proc
    proc.retire()


@pytest.fixture(scope="module")
def env(rt: RuntimeProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The CLI finds the runtime through its active context (config.json + secrets.json)."""
    home = tmp_path_factory.mktemp("cli-intents-home")
    write_context(home, {"test": (rt.url, ADMIN_KEY)}, active="test")
    return cli_env(home)


@pytest.fixture(scope="module")
def api(rt: RuntimeProcess) -> Iterator[httpx.Client]:
    with rt.client() as client:
        yield client


def create(api: httpx.Client, to_agent: str = "inventory", **extra: Any) -> str:
    body = {"intent_type": "order.reserve.v1", "correlation_id": str(uuid.uuid4()), "to_agent": to_agent,
            "payload": {"order_id": "ord_1", "quantity": 2}, **extra}
    r = api.post("/v1/intents", json=body)
    assert r.status_code == 200, r.text
    return str(r.json()["intent_id"])



def resolve(api: httpx.Client, intent_id: str, status: str, **extra: Any) -> None:
    r = api.post(f"/v1/intents/{intent_id}/resolve", json={"status": status, **extra})
    assert r.status_code == 200, r.text


def events(api: httpx.Client, intent_id: str) -> list[dict[str, Any]]:
    r = api.get(f"/v1/intents/{intent_id}/events")
    assert r.status_code == 200, r.text
    return list(r.json()["events"])


class AgentWorker(threading.Thread):
    """An agent: waits on its delivery feed for one intent, then resumes it over HTTP with its own key."""

    def __init__(self, rt: RuntimeProcess, name: str, token: str, body: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.rt, self.name, self.token, self.body = rt, name, token, body
        self.intent_id: str | None = None
        self.response: httpx.Response | None = None
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            with self.rt.client(self.token) as client:
                while self.intent_id is None:
                    path = f"/v1/agents/{self.name}/intents/stream"
                    with client.stream("GET", path, params={"wait_seconds": 20}) as r:
                        assert r.status_code == 200, r.read()
                        for line in r.iter_lines():
                            if line.startswith("data:"):
                                data = json.loads(line[5:])
                                if data.get("intent_id"):
                                    self.intent_id = data["intent_id"]
                                    break
                self.response = client.post(f"/v1/intents/{self.intent_id}/resume", json=self.body)
        except BaseException as exc:  # re-raised in finish()
            self.failure = exc

    def finish(self) -> str:
        self.join(30)
        assert not self.is_alive(), "the agent never got its intent"
        if self.failure:
            raise self.failure
        assert self.response is not None and self.response.status_code == 200, self.response
        assert self.intent_id
        return self.intent_id


def new_agent(api: httpx.Client, prefix: str) -> tuple[str, str, str]:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    address, token = make_agent(api, name)
    return name, address, token


# ---------------------------------------------------------------------------------------------
# send


def test_send_typed_data_json_and_json_before_or_after(env: dict[str, str], api: httpx.Client,
                                                      tmp_path: Path) -> None:
    payload_file = tmp_path / "payload.json"
    payload_file.write_text('{"order_id": "ord_9", "items": [{"sku": "LAPTOP-001", "quantity": 1}]}')
    typed, before, human = axme_many([
        (["intents", "send", "--to", "inventory", "--type", "order.reserve.v1", "--data", "qty=2",
          "--data", "price=9.5", "--data", "gift=true", "--data", "note=two words", "--data", 'tags=["a","b"]',
          "--data", "nothing=null", "--data", "sku=007", "--json"], env),
        (["--json", "intents", "send", "--to", "agent://local/dev/inventory",
          "--data-json", '{"order_id": "ord_1", "qty": 1}', "--data", "qty=3"], env),
        (["intents", "send", "--to", "inventory", "--data-json", f"@{payload_file}"], env),
    ])

    assert typed.code == 0, str(typed)
    body = typed.doc()
    assert body["ok"] is True and body["status"] == "SUBMITTED" and UUID_RE.match(body["intent_id"])
    assert_snapshot("intents_send", body)
    got = intent(api, body["intent_id"])
    assert got["payload"] == {"qty": 2, "price": 9.5, "gift": True, "note": "two words", "tags": ["a", "b"],
                              "nothing": None, "sku": "007"}  # 007 is not JSON: kept as text
    assert got["intent_type"] == "order.reserve.v1" and got["to_agent"] == "agent://local/dev/inventory"

    assert before.code == 0, str(before)
    got = intent(api, before.doc()["intent_id"])
    assert got["payload"] == {"order_id": "ord_1", "qty": 3}  # --data wins over --data-json
    assert got["intent_type"] == "intent.ask.v1"

    assert human.code == 0, str(human)
    m = re.search(r"^Sent intent (\S+) \(SUBMITTED\)\.$", human.out, re.M)
    assert m, str(human)
    assert f"axme observe {m.group(1)}" in human.out
    assert intent(api, m.group(1))["payload"] == {"order_id": "ord_9", "items": [{"sku": "LAPTOP-001", "quantity": 1}]}


def test_send_again_with_the_same_idempotency_key_is_the_same_intent(env: dict[str, str]) -> None:
    key = f"idem-{uuid.uuid4().hex}"
    args = ["intents", "send", "--to", "inventory", "--data", "qty=1", "--idempotency-key", key, "--json"]
    first = axme(*args, env=env)
    assert first.code == 0, str(first)
    again = axme(*args, env=env)
    assert again.code == 0, str(again)
    assert again.doc()["intent_id"] == first.doc()["intent_id"]


def test_send_wait_exits_0_when_the_agent_completes(rt: RuntimeProcess, env: dict[str, str],
                                                    api: httpx.Client) -> None:
    name, address, token = new_agent(api, "waiter")
    worker = AgentWorker(rt, name, token, {"action": "complete", "reserved": True})
    worker.start()
    run = axme("intents", "send", "--to", address, "--data", "qty=1", "--wait", env=env)
    assert run.code == 0, str(run)
    intent_id = worker.finish()
    assert f"Intent {intent_id} ended COMPLETED" in run.out
    assert intent(api, intent_id)["result"] == {"reserved": True}


def test_send_wait_exits_1_when_the_agent_fails(rt: RuntimeProcess, env: dict[str, str], api: httpx.Client) -> None:
    name, address, token = new_agent(api, "failer")
    worker = AgentWorker(rt, name, token, {"action": "fail", "error": {"message": "out of stock"}})
    worker.start()
    run = axme("intents", "send", "--to", address, "--wait", "--json", env=env)
    assert run.code == 1, str(run)
    intent_id = worker.finish()
    body = run.doc()
    assert body["intent"]["intent_id"] == intent_id
    assert body["intent"]["lifecycle_status"] == "FAILED"
    assert body["intent"]["error"] == {"message": "out of stock"}


# ---------------------------------------------------------------------------------------------
# get, list


def test_get_and_list_human_and_json(env: dict[str, str], api: httpx.Client) -> None:
    intent_id = create(api)
    human, after, before, listed, table = axme_many([
        (["intents", "get", intent_id], env),
        (["intents", "get", intent_id, "--json"], env),
        (["--json", "intents", "get", intent_id], env),
        (["intents", "list", "--status", "submitted", "--limit", "500", "--json"], env),
        (["intents", "list", "--limit", "5"], env),
    ])

    assert human.code == 0, str(human)
    assert re.search(rf"^intent_id:\s+{intent_id}$", human.out, re.M), str(human)
    assert re.search(r"^lifecycle_status:\s+SUBMITTED$", human.out, re.M), str(human)
    assert re.search(r"^to_agent:\s+agent://local/dev/inventory$", human.out, re.M), str(human)
    assert re.search(r'^payload:\s+\{"order_id": "ord_1", "quantity": 2\}$', human.out, re.M), str(human)
    assert "\x1b[" not in human.out

    assert after.code == 0 and before.code == 0, f"{after}\n{before}"
    body = after.doc()
    assert body["intent"]["lifecycle_status"] == "SUBMITTED" and body["intent"]["intent_id"] == intent_id
    assert before.doc() == body
    assert_snapshot("intents_get", body)

    assert listed.code == 0, str(listed)
    page = listed.doc()
    assert page["ok"] is True and set(page) == {"ok", "items", "next_cursor"}, str(listed)
    rows = page["items"]
    assert isinstance(rows, list) and all(r["status"] == "SUBMITTED" for r in rows)
    mine = [r for r in rows if r["intent_id"] == intent_id]
    assert len(mine) == 1
    assert_snapshot("intents_list_item", mine)

    assert table.code == 0, str(table)
    lines = table.out.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "TYPE", "TO", "AGE"]
    assert lines[1].split()[:4] == [intent_id, "SUBMITTED", "order.reserve.v1", "agent://local/dev/inventory"]
    assert "\x1b[" not in table.out  # piped + NO_COLOR: plain text


def read_pty(args: Sequence[str], env: dict[str, str], columns: int = 80) -> tuple[int, str]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    try:
        proc = subprocess.run([sys.executable, "-m", "axme_cli", *args], stdout=slave, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, env=env, timeout=60)
    finally:
        os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO once the other side is closed and drained
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return proc.returncode, b"".join(chunks).decode("utf-8", "replace")


def test_list_on_a_terminal_is_a_coloured_table_with_whole_ids(env: dict[str, str], api: httpx.Client) -> None:
    intent_id = create(api)
    tty_env = {k: v for k, v in env.items() if k != "NO_COLOR"}
    tty_env["TERM"] = "xterm-256color"
    code, text = read_pty(["intents", "list", "--limit", "3"], tty_env, columns=80)
    assert code == 0, text
    assert "\x1b[" in text, f"no colour on a terminal:\n{text!r}"
    # the id is what every other command takes: a standard 80-column terminal must show it whole
    assert intent_id in text, f"intent id cut off in an 80-column terminal:\n{text}"


# ---------------------------------------------------------------------------------------------
# watch, observe, log


def test_watch_streams_live_json_lines_and_stops_at_the_terminal_status(env: dict[str, str], api: httpx.Client) -> None:
    intent_id = create(api)
    proc = subprocess.Popen([sys.executable, "-m", "axme_cli", "intents", "watch", intent_id, "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            env=env, cwd=REPO)
    watchdog = threading.Timer(30, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout is not None and proc.stderr is not None
        lines = []
        while not lines or json.loads(lines[-1])["seq"] < 2:  # the stream is live once SUBMITTED is shown
            line = proc.stdout.readline()
            assert line, f"watch ended early: {proc.stderr.read()}"
            lines.append(line)
        resolve(api, intent_id, "COMPLETED", result={"reserved": True})
        lines += proc.stdout.readlines()
        code = proc.wait(30)
        stderr = proc.stderr.read()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    run = Run(("intents", "watch", intent_id, "--json"), code, "".join(lines), stderr)
    assert code == 0, str(run)
    assert "Traceback" not in stderr
    docs = run.docs()
    assert [d["seq"] for d in docs] == [1, 2, 3]
    assert [d["status"] for d in docs] == ["CREATED", "SUBMITTED", "COMPLETED"]
    assert all(d["intent_id"] == intent_id for d in docs)
    assert_snapshot("intents_watch_lines", docs)

    human = axme("intents", "watch", intent_id, env=env)  # already terminal: prints and stops
    assert human.code == 0, str(human)
    lines = human.out.splitlines()
    assert len(lines) == 3, str(human)
    assert re.search(r"#1\s+CREATED\s+intent\.created$", lines[0])
    assert re.search(r"#2\s+SUBMITTED\s+intent\.submitted\s+holder=inventory$", lines[1])
    assert re.search(r"#3\s+COMPLETED\s+intent\.completed$", lines[2])


def test_observe_exits_0_for_completed_and_1_for_failed_or_canceled(env: dict[str, str], api: httpx.Client) -> None:
    done, failed, canceled = create(api), create(api), create(api)
    resolve(api, done, "COMPLETED", result={"ok": 1})
    r = api.post(f"/v1/intents/{failed}/resume", json={"action": "fail", "error": {"message": "boom"}})
    assert r.status_code == 200, r.text
    resolve(api, canceled, "CANCELED", reason="not needed")
    ok, bad, gone = axme_many([(["observe", done], env), (["observe", failed, "--json"], env),
                               (["observe", canceled], env)])

    assert ok.code == 0, str(ok)
    assert ok.out.startswith(f"intent {done}  type=order.reserve.v1  to=agent://local/dev/inventory")
    assert re.search(r"#3\s+COMPLETED\s+intent\.completed", ok.out)
    assert re.search(r"COMPLETED after \S+$", ok.out.splitlines()[-1]), str(ok)

    assert bad.code == 1, str(bad)
    assert [(e["seq"], e["status"]) for e in bad.docs()] == [(1, "CREATED"), (2, "SUBMITTED"), (3, "FAILED")]
    assert gone.code == 1, str(gone)
    assert re.search(r"#3\s+CANCELED\s+intent\.canceled\s+reason=not needed", gone.out), str(gone)
    assert re.search(r"CANCELED after \S+$", gone.out.splitlines()[-1]), str(gone)


def test_log_human_and_json(env: dict[str, str], api: httpx.Client) -> None:
    intent_id = create(api)
    resolve(api, intent_id, "COMPLETED", result={"reserved": True})
    human, as_json = axme_many([(["intents", "log", intent_id], env), (["intents", "log", intent_id, "--json"], env)])

    assert human.code == 0, str(human)
    lines = human.out.splitlines()
    assert lines[0].startswith(f"intent {intent_id}  type=order.reserve.v1")
    assert re.search(r"#1\s+CREATED\s+intent\.created", lines[1])
    assert re.search(r"#2\s+SUBMITTED\s+intent\.submitted\s+holder=inventory", lines[2])
    assert re.search(r"#3\s+COMPLETED\s+intent\.completed", lines[3])
    assert lines[4] == f"Final status: COMPLETED   Intent ID: {intent_id}   Events: 3"

    assert as_json.code == 0, str(as_json)
    body = as_json.doc()
    assert body["ok"] is True and body["next_cursor"] is None, str(as_json)
    log = body["items"]
    assert isinstance(log, list) and [e["seq"] for e in log] == [1, 2, 3]
    assert [e["event_type"] for e in log] == ["intent.created", "intent.submitted", "intent.completed"]
    assert_snapshot("intents_log", log)


# ---------------------------------------------------------------------------------------------
# cancel, retry, resume


def test_cancel_human_json_and_twice(env: dict[str, str], api: httpx.Client) -> None:
    first, second = create(api), create(api)
    human, as_json = axme_many([(["intents", "cancel", first, "--reason", "not needed"], env),
                                (["intents", "cancel", second, "--json"], env)])
    assert human.code == 0, str(human)
    assert human.out == f"Canceled {first}.\n"
    assert intent(api, first)["lifecycle_status"] == "CANCELED"
    assert events(api, first)[-1]["details"]["reason"] == "not needed"

    assert as_json.code == 0, str(as_json)
    body = as_json.doc()
    assert body["ok"] is True and body["intent"]["status"] == "CANCELED" and body["intent"]["intent_id"] == second
    assert_snapshot("intents_cancel", body)

    again = axme("intents", "cancel", first, "--json", env=env)
    error = again.error(1)
    assert error["code"] == "intent_terminal" and "CANCELED" in error["message"]


def test_retry_recreates_a_canceled_intent_and_refuses_a_submitted_one(env: dict[str, str],
                                                                       api: httpx.Client) -> None:
    canceled, submitted = create(api, payload={"order_id": "ord_7"}), create(api)
    resolve(api, canceled, "CANCELED", reason="wrong warehouse")
    human, as_json, refused, refused_human = axme_many([
        (["intents", "retry", canceled], env),
        (["intents", "retry", canceled, "--json"], env),
        (["intents", "retry", submitted, "--json"], env),
        (["intents", "retry", submitted], env),
    ])

    assert human.code == 0, str(human)
    m = re.fullmatch(rf"Sent again as (\S+) \(the old intent {canceled} stays CANCELED\)\.\n", human.out)
    assert m, str(human)
    new = intent(api, m.group(1))
    assert new["lifecycle_status"] == "SUBMITTED"
    assert (new["intent_type"], new["to_agent"], new["payload"]) == (
        "order.reserve.v1", "agent://local/dev/inventory", {"order_id": "ord_7"})

    assert as_json.code == 0, str(as_json)
    body = as_json.doc()
    assert body["ok"] is True and body["retried_intent_id"] == canceled
    assert body["new_intent"]["intent_id"] not in (canceled, m.group(1))
    assert_snapshot("intents_retry", body)
    assert intent(api, canceled)["lifecycle_status"] == "CANCELED"

    error = refused.error(1)
    assert "SUBMITTED" in error["message"]
    text = refused_human.human_error(1)
    assert "SUBMITTED" in text and f"axme observe {submitted}" in text
    assert intent(api, submitted)["lifecycle_status"] == "SUBMITTED"


def test_resume_as_the_agent_calls_resume_for_real(env: dict[str, str], api: httpx.Client) -> None:
    _, address, token = new_agent(api, "resumer")
    _, _, other_token = new_agent(api, "stranger")
    done, failed, foreign = create(api, to_agent=address), create(api, to_agent=address), create(api, to_agent=address)
    human, as_json, denied = axme_many([
        (["intents", "resume", done, "--api-key", token, "--data-json", '{"reserved": true}', "--data", "count=2"],
         env),
        (["intents", "resume", failed, "--api-key", token, "--action", "fail",
          "--data-json", '{"error": {"message": "no stock"}}', "--json"], env),
        (["intents", "resume", foreign, "--api-key", other_token, "--json"], env),
    ])

    assert human.code == 0, str(human)
    assert human.out == f"Resumed {done} (complete, applied); now COMPLETED.\n"
    got = intent(api, done)
    assert got["lifecycle_status"] == "COMPLETED" and got["result"] == {"reserved": True, "count": 2}
    last = events(api, done)[-1]
    assert last["details"]["via"] == "resume" and last["actor"] == address

    assert as_json.code == 0, str(as_json)
    body = as_json.doc()
    assert body["applied"] is True and body["intent"]["status"] == "FAILED"
    assert body["intent"]["error"] == {"message": "no stock"}
    assert_snapshot("intents_resume", body)

    # another agent's key does not even see it (404, a failed request: exit 1)
    assert denied.error(1)["code"] == "intent_not_found"
    assert intent(api, foreign)["lifecycle_status"] == "SUBMITTED"

    conflict = axme("intents", "resume", done, "--action", "fail", "--json", env=env)
    assert "COMPLETED" in conflict.error(1)["message"]


# ---------------------------------------------------------------------------------------------
# trace


def test_trace_says_what_to_do_next(env: dict[str, str], api: httpx.Client) -> None:
    waiting, canceled = create(api), create(api)
    resolve(api, canceled, "CANCELED", reason="dup")
    human, as_json, ended = axme_many([(["intents", "trace", waiting], env),
                                       (["intents", "trace", waiting, "--json"], env),
                                       (["intents", "trace", canceled], env)])

    assert human.code == 0, str(human)
    assert re.search(r"^status:\s+SUBMITTED$", human.out, re.M), str(human)
    assert re.search(r"^next_action:\s+waiting for agent agent://local/dev/inventory to pick it up \(attempt 1 of 3\)"
                     r": is that agent running and listening\?$", human.out, re.M), str(human)

    assert as_json.code == 0, str(as_json)
    body = as_json.doc()
    assert body["intent_id"] == waiting and body["status"] == "SUBMITTED"
    assert body["last_event"] == "intent.submitted" and body["events_count"] == 2
    assert "waiting for agent" in body["next_action"]
    assert_snapshot("intents_trace", body)

    assert ended.code == 0, str(ended)
    assert re.search(rf"^next_action:\s+.*`axme intents log {canceled}`.*`axme intents retry {canceled}`", ended.out,
                     re.M), str(ended)


# ---------------------------------------------------------------------------------------------
# errors


@pytest.fixture(scope="module")
def failing(env: dict[str, str]) -> dict[str, Any]:
    """The error paths, run once for the module; each test below checks one of them."""
    dead, unknown = dead_url(), str(uuid.uuid4())
    calls = {
        "down_json": ["intents", "list", "--base-url", dead, "--json"],
        "down_observe": ["observe", unknown, "--base-url", dead],
        "unknown_json": ["intents", "get", unknown, "--json"],
        "unknown": ["intents", "get", unknown],
        "bad_key_json": ["--json", "intents", "list", "--api-key", "wrong-key-0000000000"],
        "bad_key": ["intents", "list", "--api-key", "wrong-key-0000000000"],
        "bad_data_json": ["intents", "send", "--to", "inventory", "--data-json", "{bad", "--json"],
        "bad_data": ["intents", "send", "--to", "inventory", "--data-json", "{bad"],
        "no_to_json": ["intents", "send", "--data", "qty=1", "--json"],
        "no_to": ["intents", "send", "--data", "qty=1"],
    }
    runs = axme_many([(args, env) for args in calls.values()])
    return {"dead": dead, "unknown": unknown, **dict(zip(calls, runs, strict=True))}


def test_error_runtime_down(failing: dict[str, Any]) -> None:
    dead = failing["dead"]
    assert failing["down_json"].error(1) == {"code": "unreachable", "message": f"cannot reach {dead}"}
    text = failing["down_observe"].human_error(1)
    assert f"cannot reach {dead}" in text and "axme dev" in text


def test_error_unknown_intent(failing: dict[str, Any]) -> None:
    error = failing["unknown_json"].error(1)
    assert error["code"] == "intent_not_found" and "not found" in error["message"]
    assert "not found" in failing["unknown"].human_error(1)


def test_error_bad_key(failing: dict[str, Any]) -> None:
    assert failing["bad_key_json"].error(2)["message"]
    text = failing["bad_key"].human_error(2)
    assert "--api-key" in text or "AXME_API_KEY" in text


def test_error_malformed_data_json(failing: dict[str, Any]) -> None:
    assert "--data-json" in failing["bad_data_json"].error(2)["message"]
    text = failing["bad_data"].human_error(2)
    assert "--data-json" in text and "not valid JSON" in text


def test_error_missing_to(failing: dict[str, Any]) -> None:
    human = failing["no_to"]
    assert human.code == 2 and "--to" in human.err and human.out == "", str(human)
    assert "--to" in failing["no_to_json"].error(2)["message"]


# ---------------------------------------------------------------------------------------------
# cleanup (last: it cancels every open intent of this module's runtime)


def test_cleanup_dry_run_then_for_real(env: dict[str, str], api: httpx.Client) -> None:
    first, second = create(api), create(api)
    recent, dry, dry_json = axme_many([
        (["intents", "cleanup"], env),  # default: a dry run of intents older than 24 h
        (["intents", "cleanup", "--older-than", "0"], env),
        (["intents", "cleanup", "--older-than", "0", "--dry-run", "--json"], env),
    ])
    assert recent.code == 0 and recent.out == "Dry run: 0 intents would be canceled.\n", str(recent)

    assert dry.code == 0, str(dry)
    m = re.match(r"Dry run: (\d+) intents would be canceled\.\n", dry.out)
    assert m and int(m.group(1)) >= 2, str(dry)
    assert f"  {first}\n" in dry.out and f"  {second}\n" in dry.out
    assert dry.out.endswith("Run with --no-dry-run to cancel them.\n")

    body = dry_json.doc()
    assert body["dry_run"] is True and body["would_cancel"] >= 2 and {first, second} <= set(body["intent_ids"])
    assert_snapshot("intents_cleanup_dry_run", body)
    assert intent(api, first)["lifecycle_status"] == "SUBMITTED"  # a dry run changes nothing

    real = axme("intents", "cleanup", "--older-than", "0", "--no-dry-run", "--json", env=env)
    assert real.code == 0, str(real)
    body = real.doc()
    assert body["dry_run"] is False and body["canceled"] >= 2 and {first, second} <= set(body["intent_ids"])
    assert_snapshot("intents_cleanup", body)
    assert intent(api, first)["lifecycle_status"] == "CANCELED"
    assert intent(api, second)["lifecycle_status"] == "CANCELED"

    nothing_left = axme("intents", "cleanup", "--older-than", "0", "--no-dry-run", "--reason", "tidy", env=env)
    assert nothing_left.code == 0 and nothing_left.out == "Canceled 0 intents (reason: tidy).\n", str(nothing_left)


# ---------------------------------------------------------------------------------------------
# bench/cli_startup.py runs end to end (the numbers are not checked: one run of each command shows that it runs)


@pytest.mark.slow
def test_cli_startup_bench_quick(tmp_path: Path) -> None:
    out = tmp_path / "cli_startup.json"
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "cli_startup.py"), "--runs", "1", "--json-out",
                           str(out), "--tmp-dir", str(work)], capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL, env={k: v for k, v in os.environ.items()
                                                         if not k.startswith("AXME_")})
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    result = json.loads(out.read_text())
    rows = {row["command"]: row for row in result["rows"]}
    assert set(rows) == {"python -c pass", "axme --help", "axme version", "axme intents get ID --json"}
    for row in rows.values():
        assert row["runs"] == 1 and len(row["samples_ms"]) == 1 and row["errors"] == 0, row
        assert row["median_ms"] > 0 and row["p90_ms"] >= row["median_ms"]
    assert isinstance(result["goal"]["met"], bool) and result["goal"]["limit_ms"] == 100
    assert "axme --help" in proc.stdout and "100 ms" in proc.stdout
    assert list(work.iterdir()) == []  # its runtime's temp dir is gone

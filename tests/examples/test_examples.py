"""`axme examples run` and `axme agents run`, as a newcomer runs them, against a real runtime.

The command runs in this process (tests/cli/helpers.py ``run``) and starts its demo agents (and, with nothing
answering, its temporary runtime) as processes, as it always does; a process of its own where the process is
tested (two runs at once, SIGTERM). The runs share the module's runtime whose timer redelivers nothing for
minutes (``quiet``), so a step a loaded machine is slow to take is not redelivered meanwhile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.cli.helpers import run
from tests.conftest import make_agent
from tests.runtime_proc import TLS, RuntimeProcess


def env_for(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, AXME_CONFIG_DIR=str(tmp_path / "cfg"), AXME_DATA_DIR=str(tmp_path / "data"),
               AXME_CLI_SECRET_STORAGE="file", NO_COLOR="1")
    for name in ("AXME_BASE_URL", "AXME_API_KEY", "AXME_CONTEXT"):
        env.pop(name, None)
    return env


def axme(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run(env, *args)


def dead_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_examples_list(tmp_path: Path) -> None:
    out = axme(env_for(tmp_path), "examples", "list")
    assert out.returncode == 0 and "order-saga" in out.stdout
    listed = json.loads(axme(env_for(tmp_path), "examples", "list", "--json").stdout)
    assert listed["ok"] is True and listed["next_cursor"] is None
    assert {e["name"] for e in listed["items"]} >= {"order-saga", "cross-service-coordination"}


@pytest.mark.slow
def test_order_saga_runs_on_a_temporary_runtime(tmp_path: Path) -> None:
    env = dict(env_for(tmp_path), AXME_BASE_URL=dead_url())  # the environment's target, not --base-url
    out = axme(env, "examples", "run", "order-saga", "--delay", "0")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "started a temporary one" in out.stdout
    assert "[final]         COMPLETED" in out.stdout and "Final status: COMPLETED" in out.stdout
    # its log went with it: the hint does not offer a command that would fail
    assert "Audit log: gone with the temporary runtime" in out.stdout and "axme intents log" not in out.stdout
    # nothing of the user's was written: the temporary runtime used its own config dir
    assert not (tmp_path / "cfg" / "config.json").exists()


@pytest.mark.backends("sqlite")  # the order of the undo steps; the temporary runtime it ran on was SQLite
def test_fail_at_shipping_undoes_newest_first(quiet: RuntimeProcess, tmp_path: Path) -> None:
    env = env_for(tmp_path)
    out = axme(env, "examples", "run", "order-saga", "--fail-at", "shipping", "--delay", "0", "--base-url",
               quiet.url, "--api-key", quiet.api_key or "")
    assert out.returncode == 1, out.stdout + out.stderr
    text = out.stdout
    assert text.index("undo charge") < text.index("undo reserve")
    assert "compensated: charge, reserve" in text
    bad = axme(env, "examples", "run", "order-saga", "--fail-at", "nowhere")
    assert bad.returncode == 2 and "--fail-at" in bad.stderr


def test_examples_run_uses_the_context_runtime_and_json_lines(quiet: RuntimeProcess, tmp_path: Path) -> None:
    env = env_for(tmp_path)
    out = axme(env, "examples", "run", "cross-service-coordination", "--delay", "0", "--base-url", quiet.url,
               "--api-key", quiet.api_key or "", "--json")
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert events[-1]["status"] == "COMPLETED"
    assert "Using the runtime at" in out.stderr
    # the run's own agent (order-coordinator-demo-<tag>) is retired at the end: its key forgotten, its account gone
    assert json.loads((tmp_path / "cfg" / "scenario-agents.json").read_text())["agents"] == []
    address = next(w for w in out.stderr.split() if "/order-coordinator-demo-" in w)
    with quiet.client() as admin:
        accounts = admin.get("/v1/service-accounts").json()["service_accounts"]
    assert all(a["status"] == "deleted" for a in accounts if a["agent_address"] == address)


def test_an_explicit_dead_base_url_is_an_error_not_a_temporary_runtime(tmp_path: Path) -> None:
    url = dead_url()
    out = axme(env_for(tmp_path), "examples", "run", "order-saga", "--base-url", url)
    assert out.returncode == 1 and f"axme: cannot reach {url} (--base-url)" in out.stderr
    assert "started a temporary one" not in out.stdout + out.stderr


def test_the_log_hint_keeps_the_target_it_was_given(quiet: RuntimeProcess, tmp_path: Path) -> None:
    out = axme(env_for(tmp_path), "examples", "run", "cross-service-coordination", "--delay", "0", "--base-url",
               quiet.url, "--api-key", quiet.api_key or "")
    assert out.returncode == 0, out.stdout + out.stderr
    hint = next(line for line in out.stdout.splitlines() if line.startswith("Audit log: "))
    intent_id = hint.split()[5]
    assert hint == f"Audit log: axme intents log {intent_id} --base-url {quiet.url} --api-key <key>"
    shown = axme(env_for(tmp_path), "intents", "log", intent_id, "--base-url", quiet.url, "--api-key",
                 quiet.api_key or "")
    assert shown.returncode == 0 and "Final status: COMPLETED" in shown.stdout


@pytest.mark.slow
@pytest.mark.backends("sqlite")  # slow processes; which storage serves the runtime changes nothing here
def test_concurrent_runs_each_end_as_their_flags_say(quiet: RuntimeProcess, tmp_path: Path) -> None:
    """Two runs of one example on one runtime at once (two processes): each run's demo agents serve only that
    run."""
    args = ("examples", "run", "order-saga", "--delay", "0.2", "--base-url", quiet.url, "--api-key",
            quiet.api_key or "")
    env = env_for(tmp_path)
    ok = subprocess.Popen([sys.executable, "-m", "axme_cli", *args], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    failing = subprocess.Popen([sys.executable, "-m", "axme_cli", *args, "--fail-at", "shipping"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ok_out, ok_err = ok.communicate(timeout=120)
    bad_out, bad_err = failing.communicate(timeout=120)
    assert ok.returncode == 0 and "Final status: COMPLETED" in ok_out, ok_out + ok_err
    assert failing.returncode == 1 and "Final status: FAILED" in bad_out, bad_out + bad_err
    assert "compensated: charge, reserve" in bad_out


@pytest.mark.backends("sqlite")  # slow processes; which storage serves the runtime changes nothing here
def test_a_leftover_agent_on_the_plain_address_takes_no_step(quiet: RuntimeProcess, tmp_path: Path) -> None:
    """`axme agents run inventory` left running (here one that fails whatever it gets, at once) does not serve
    the example's steps."""
    with quiet.client() as admin:
        accounts = admin.get("/v1/service-accounts").json()["service_accounts"]
        existing = next((a for a in accounts if a["agent_address"] == "agent://local/dev/inventory"
                         and a["status"] == "active"), None)
        if existing is None:
            _, token = make_agent(admin, "inventory")
        else:
            token = admin.post(f"/v1/service-accounts/{existing['service_account_id']}/keys",
                               json={}).json()["key"]["token"]
    env = env_for(tmp_path)
    leftover = subprocess.Popen([sys.executable, "-m", "axme_cli", "agents", "run", "inventory", "--api-key", token,
                                 "--base-url", quiet.url, "--", "false"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
    try:
        out = axme(env, "examples", "run", "order-saga", "--delay", "0", "--base-url", quiet.url, "--api-key",
                   quiet.api_key or "")
    finally:
        leftover.terminate()
        _, leftover_err = leftover.communicate(timeout=15)
    assert out.returncode == 0 and "Final status: COMPLETED" in out.stdout, out.stdout + out.stderr
    assert "order.inventory" not in leftover_err  # it was handed none of the example's steps


SCRIPT = """
import json, os, sys
payload = json.load(sys.stdin)
if payload.get("mode") == "fail":
    print("the disk is on fire", file=sys.stderr)
    sys.exit(3)
if payload.get("mode") == "later":
    sys.exit(75)
print(json.dumps({"doubled": payload["n"] * 2, "intent": os.environ["AXME_INTENT_ID"]}))
"""


@pytest.mark.backends("sqlite")  # slow processes; which storage serves the runtime changes nothing here
def test_agents_run_turns_a_command_into_an_agent(runtime: RuntimeProcess, tmp_path: Path) -> None:
    name = f"cmd-{uuid.uuid4().hex[:8]}"
    with runtime.client() as admin:
        _, token = make_agent(admin, name)
        ids = {}
        for mode in ("ok", "fail", "later"):
            body = {"intent_type": "calc.double.v1", "correlation_id": str(uuid.uuid4()), "to_agent": name,
                    "payload": {"n": 21, "mode": mode}, "max_delivery_attempts": 50}
            ids[mode] = admin.post("/v1/intents", json=body).json()["intent_id"]
    script = tmp_path / "agent.py"
    script.write_text(SCRIPT)
    env = env_for(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "axme_cli", "agents", "run", name, "--api-key", token,
                             "--base-url", runtime.url, "--retry-exit-code", "75", "--", sys.executable, str(script)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with runtime.client() as admin:
            deadline = time.monotonic() + 30
            done: dict[str, dict] = {}
            while time.monotonic() < deadline and len(done) < 2:
                for mode in ("ok", "fail"):
                    intent = admin.get(f"/v1/intents/{ids[mode]}").json()["intent"]
                    if intent["status"] in ("COMPLETED", "FAILED"):
                        done[mode] = intent
                time.sleep(0.1)
            later = admin.get(f"/v1/intents/{ids['later']}").json()["intent"]
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    assert done["ok"]["status"] == "COMPLETED"
    assert done["ok"]["result"] == {"doubled": 42, "intent": ids["ok"]}
    assert done["fail"]["status"] == "FAILED" and "the disk is on fire" in done["fail"]["error"]["reason"]
    assert later["status"] in ("SUBMITTED", "DELIVERED")  # left for redelivery, never answered
    assert proc.returncode == 0  # SIGTERM: a clean stop
    assert f"{ids['ok']} calc.double.v1: completed" in err
    assert "left for redelivery" in err


def test_agents_run_without_a_key_is_a_usage_error(tmp_path: Path) -> None:
    out = axme(env_for(tmp_path), "agents", "run", "nobody", "--base-url", "http://127.0.0.1:9", "--", "true")
    assert out.returncode == 2 and "scenario-agents.json" in out.stderr
    out = axme(env_for(tmp_path), "agents", "run", "nobody", "--api-key", "k")
    assert out.returncode == 2 and "command" in out.stderr


def test_agents_run_with_a_revoked_key_stops(runtime: RuntimeProcess, tmp_path: Path) -> None:
    name = f"gone-{uuid.uuid4().hex[:6]}"
    with runtime.client() as admin:
        r = admin.post("/v1/service-accounts", json={"name": name})
        assert r.status_code == 200, r.text
        sa_id = r.json()["service_account"]["service_account_id"]
        r = admin.post(f"/v1/service-accounts/{sa_id}/keys", json={})
        assert r.status_code == 200, r.text
        key = r.json()["key"]
        # the key opens its own agent's feed before the revocation, so the refusal below is the revocation's
        with httpx.Client(verify=TLS, base_url=runtime.url, headers={"x-api-key": key["token"]}) as agent, \
                agent.stream("GET", f"/v1/agents/{name}/intents/stream", params={"wait_seconds": 1}) as feed:
            assert feed.status_code == 200
        r = admin.post(f"/v1/service-accounts/{sa_id}/keys/{key['key_id']}/revoke")
        assert r.status_code == 200, r.text
    out = axme(env_for(tmp_path), "agents", "run", name, "--api-key", key["token"], "--base-url", runtime.url,
               "--", "true")
    assert out.returncode == 2 and "feed refused: HTTP 401" in out.stderr, out.stderr

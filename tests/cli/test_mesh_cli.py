"""`axme mesh` against the real runtime, driven in-process (``tests/cli/helpers.run``): agents list and get (text
and --json), kill (refused without a terminal unless --yes; on a terminal it asks, and no is no), resume, events,
dashboard (the runtime's own page); refusals of the runtime as exit 1, bad input as exit 2 naming the flag before
any request."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.helpers import env_for, run
from tests.conftest import make_agent, new_intent, unique
from tests.receiver import closed_port_url
from tests.runtime_proc import RuntimeProcess

# What the CLI does with the answers does not depend on the storage (tests/runtime/api/test_mesh.py runs the
# routes on both backends).
pytestmark = pytest.mark.backends("sqlite")


@pytest.fixture
def env(tmp_path: Path, runtime: RuntimeProcess) -> dict[str, str]:
    return env_for(tmp_path, AXME_BASE_URL=runtime.url, AXME_API_KEY=runtime.api_key or "")


def ok_json(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = run(env, *args, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(json.loads(done.stdout))


def test_list_get_kill_resume_and_events(env: dict[str, str], admin: httpx.Client, runtime: RuntimeProcess) -> None:
    address, key = make_agent(admin, unique("cli-mesh"))
    name = address.rsplit("/", 1)[1]
    assert httpx.post(f"{runtime.url}/v1/mesh/heartbeat", headers={"x-api-key": key},
                      json={"metrics": {"queue_depth": 4}}).status_code == 200

    listed = ok_json(env, "mesh", "agents", "list", "--health", "healthy")
    mine = next(a for a in listed["items"] if a["address"] == address)
    assert mine["health"] == "healthy" and mine["metrics"] == {"queue_depth": 4} and listed["next_cursor"] is None
    text = run(env, "mesh", "agents", "list").stdout
    assert "AGENT" in text and "HEALTH" in text and f"{name}" in text and "healthy" in text and " shown; " in text

    got = run(env, "mesh", "agents", "get", name)
    assert got.returncode == 0, got.stderr
    assert f"Agent {address}: healthy" in got.stdout and "queue_depth=4" in got.stdout
    assert "unknown → healthy" in got.stdout  # its first heartbeat, among the latest events

    refused = run(env, "mesh", "kill", name)  # no terminal to ask on
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert ok_json(env, "mesh", "agents", "get", address)["agent"]["status"] == "active"
    killed = run(env, "mesh", "kill", name, "--yes", "--reason", "loops forever")
    assert killed.returncode == 0, killed.stderr
    assert f"Agent {address} killed" in killed.stdout and f"axme mesh resume {name}" in killed.stdout
    assert "already killed" in run(env, "mesh", "kill", name, "--yes").stdout
    with runtime.client(key) as agent:
        assert agent.post("/v1/intents", json=new_intent("someone")).json()["error"]["code"] == "agent_killed"
    assert ok_json(env, "mesh", "agents", "list", "--status", "killed")["items"][0]["killed"] is True

    resumed = ok_json(env, "mesh", "resume", address, "--reason", "fixed")
    assert resumed["changed"] is True and resumed["agent"]["status"] == "active"
    assert "is not killed" in run(env, "mesh", "resume", name).stdout

    events = ok_json(env, "mesh", "events", "--agent", name, "--limit", "10")
    assert [e["event_type"] for e in events["items"]][:2] == ["agent.resumed", "agent.killed"]
    assert events["items"][1]["details"]["reason"] == "loops forever"
    kills = run(env, "mesh", "events", "--type", "kill", "--agent", name)
    assert "killed" in kills.stdout and "loops forever" in kills.stdout and "resumed" not in kills.stdout

    # refusals of the runtime: exit 1 with its message
    unknown = run(env, "mesh", "kill", "nobody-" + unique("x"), "--yes")
    assert unknown.returncode == 1 and "not found" in unknown.stderr
    as_agent = run(dict(env, AXME_API_KEY=key), "mesh", "kill", name, "--yes")
    assert as_agent.returncode == 1 and "not an agent key" in as_agent.stderr


def test_kill_on_a_terminal_asks_first(env: dict[str, str], admin: httpx.Client) -> None:
    address, _ = make_agent(admin, unique("cli-ask"))
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "axme_cli", "mesh", "kill", address], stdin=follower,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    finally:
        os.close(follower)
    try:
        os.write(leader, b"n\n")
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(leader)
    assert proc.returncode == 1 and f"Kill agent {address}?" in err and "was not killed" in err, out + err
    assert admin.get(f"/v1/mesh/agents/{address}").json()["agent"]["status"] == "active"


def test_dashboard_opens_the_runtimes_mesh_page(env: dict[str, str], runtime: RuntimeProcess) -> None:
    assert ok_json(env, "mesh", "dashboard")["url"] == f"{runtime.url}/ui/mesh"
    printed = run(env, "mesh", "dashboard", "--no-browser")
    assert printed.returncode == 0 and printed.stdout.strip() == f"{runtime.url}/ui/mesh"


@pytest.mark.parametrize(("args", "names"), [
    (["mesh", "agents", "list", "--health", "sick"], "--health"),
    (["mesh", "agents", "list", "--status", "dead"], "--status"),
    (["mesh", "agents", "get", "two words"], "AGENT"),
    (["mesh", "kill", "x", "--yes", "--reason", "y" * 501], "--reason"),
    (["mesh", "events", "--type", "boom"], "--type"),
    (["mesh", "events", "--before", "yesterday"], "--before"),
])
def test_bad_input_is_exit_2_before_any_request(tmp_path: Path, args: list[str], names: str) -> None:
    nobody = env_for(tmp_path, AXME_BASE_URL=closed_port_url(), AXME_API_KEY="k")  # a request would be exit 1
    done = run(nobody, *args)
    assert done.returncode == 2 and names in done.stderr, done.stderr

"""The official Python SDK's Agent Mesh client (``AxmeClient.mesh``, axme 0.2.0, unchanged) walked against the
runtime: every public method of ``MeshClient`` is called as an agent and an operator use it, each answer checked
for what the SDK's callers read, and the walk holds the set of methods it called equal to the client's public
methods (a method a new SDK adds fails it). The background heartbeat thread runs on the real clock, a few
milliseconds apart.

SQLite only, as tests/sdk/test_sdk_walk.py: the routes' behaviour is tested on both backends in test_mesh.py."""

from __future__ import annotations

import inspect
from typing import Any

import httpx
import pytest
from axme_sdk import AxmeClient, AxmeClientConfig
from axme_sdk.exceptions import AxmeAuthError, AxmeHttpError
from axme_sdk.mesh import MeshClient

from tests.conftest import make_agent, new_intent, unique
from tests.receiver import poll
from tests.runtime_proc import RuntimeProcess

pytestmark = pytest.mark.backends("sqlite")


class Recorder:
    """A MeshClient whose public methods are recorded by name as they are called."""

    def __init__(self, mesh: MeshClient, called: set[str]) -> None:
        self._mesh, self._called = mesh, called

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._mesh, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self._called.add(name)
            return attr(*args, **kwargs)

        return call


def mesh_of(rt: RuntimeProcess, key: str, called: set[str]) -> Any:
    return Recorder(AxmeClient(AxmeClientConfig(base_url=rt.url, api_key=key, max_retries=0)).mesh, called)


def test_every_method_of_the_sdk_mesh_client_gets_a_real_answer(runtime: RuntimeProcess, admin: httpx.Client) -> None:
    called: set[str] = set()
    address, key = make_agent(admin, unique("sdk-mesh"))
    agent, admin = mesh_of(runtime, key, called), mesh_of(runtime, runtime.api_key, called)

    beat = agent.heartbeat(metrics={"intents_total": 2, "avg_latency_ms": 40.0})
    assert beat["ok"] is True and beat["address"] == address and beat["health"] == "healthy"

    # what an agent's process does: buffer metrics, heartbeat in the background, stop at exit
    agent.report_metric(success=True, latency_ms=10.0, cost_usd=0.002)
    agent.report_metric(success=False, latency_ms=30.0)
    agent.start_heartbeat(interval_seconds=0.02)
    try:
        view = poll(lambda: admin.get_agent(address)["agent"], lambda a: a["metrics"].get("intents_total") == 2
                    and "intents_failed" in a["metrics"])
    finally:
        agent.stop_heartbeat()
    assert view["metrics"] == {"intents_total": 2, "intents_succeeded": 1, "intents_failed": 1,
                               "avg_latency_ms": 20.0, "cost_usd": 0.002}
    assert view["heartbeats"] >= 2 and view["health"] == "healthy" and view["status"] == "active"

    listed = admin.list_agents(limit=1000)
    assert address in [a["address"] for a in listed["agents"]] and listed["summary"]["healthy"] >= 1
    assert [a["address"] for a in agent.list_agents(health="healthy")["agents"]] == [address]
    detail = agent.get_agent(address)
    assert detail["agent"]["address_id"] == detail["agent"]["service_account_id"]
    assert detail["events"][0]["event_type"] == "agent.health_changed"

    killed = admin.kill(detail["agent"]["address_id"])
    assert killed["changed"] is True and killed["agent"]["status"] == "killed"
    with pytest.raises(AxmeAuthError, match="is killed"):  # its sends are refused (403 agent_killed)
        body = {k: v for k, v in new_intent("someone").items() if k != "correlation_id"}
        AxmeClient(AxmeClientConfig(base_url=runtime.url, api_key=key, max_retries=0)).send_intent(body)
    with pytest.raises(AxmeAuthError, match="not an agent key"):  # and it may not resume itself
        agent.resume(address)
    resumed = admin.resume(address)
    assert resumed["changed"] is True and resumed["agent"]["status"] == "active"
    with pytest.raises(AxmeHttpError) as unknown:
        admin.kill("nobody-" + unique("x"))
    assert unknown.value.status_code == 404

    recent = admin.list_events(limit=10, event_type="agent.killed")["events"]
    assert recent[0]["event_type"] == "agent.killed" and recent[0]["address"] == address
    mine = agent.list_events()["events"]
    assert {e["address"] for e in mine} == {address}
    assert [e["event_type"] for e in mine][:2] == ["agent.resumed", "agent.killed"]

    public = {name for name, _ in inspect.getmembers(MeshClient) if not name.startswith("_")}
    assert called == public, f"not called: {sorted(public - called)}"

"""The workflow engine end to end: scenarios/apply, step sub-intents on agent feeds, retries, timeouts,
compensation. Real runtime, agents over HTTP; the runtime runs on a test clock, moved past each retry delay, step
deadline and redelivery as the workflow arms it (``Clockwork``, ``tick``), so no test waits for a timer."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from axme_cli.runtime.clock import ManualClock
from tests.agents_helper import FeedAgent, agent_key
from tests.runtime_proc import RuntimeProcess
from tests.runtime_thread import Clockwork, RuntimeThread, tick

ROOT = Path(__file__).resolve().parents[3]


def saga(suffix: str) -> dict[str, Any]:
    """The order saga with agent names unique to one test."""
    bundle = json.loads((ROOT / "scenarios" / "order-saga.json").read_text())
    for agent in bundle["agents"]:
        agent["address"] = f"{agent['address']}-{suffix}"
    for step in bundle["workflow"]["steps"]:
        step["retry"]["retry_delay_seconds"] = 0.2
        if "compensate" in step:
            step["compensate"]["retry"]["retry_delay_seconds"] = 0.2
    return bundle


def eventually(check: Any, timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.02)
    return found


def wait_terminal(admin: httpx.Client, intent_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in admin.get(f"/v1/intents/{intent_id}/events").json()["events"]:
            if event["status"] in ("COMPLETED", "FAILED", "CANCELED", "TIMED_OUT"):
                return admin.get(f"/v1/intents/{intent_id}").json()["intent"]
        with admin.stream("GET", f"/v1/intents/{intent_id}/events/stream",
                          params={"since": 0, "wait_seconds": 2}) as r:
            for _ in r.iter_lines():
                pass
    events = admin.get(f"/v1/intents/{intent_id}/events").json()["events"]
    steps = [(e["event_type"], e["details"].get("step_id"), e["details"].get("reason")) for e in events]
    raise AssertionError(f"{intent_id} did not end in {timeout}s: {steps}")


def answer_manual_undo(admin: httpx.Client, intent_id: str, timeout: float = 30) -> None:
    """A compensation that failed for good leaves a manual_action task on the parent: confirm it was undone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        intent = admin.get(f"/v1/intents/{intent_id}").json()["intent"]
        if intent.get("waiting_reason") == "WAITING_FOR_HUMAN" and \
                (intent.get("human_task") or {}).get("task_type") == "manual_action":
            r = admin.post(f"/v1/intents/{intent_id}/resume", json={"task_result": {"outcome": "completed"}})
            assert r.status_code == 200, r.text
            return
        time.sleep(0.1)
    raise AssertionError(f"{intent_id} did not open a manual_action task in {timeout}s")


class Services:
    """inventory, payment and shipping agents; ``fail`` maps a step id to how many times it fails. ``work``: test
    clock seconds each answer takes (the agent moves the clock that much before it answers)."""

    def __init__(self, rt: RuntimeProcess, admin: httpx.Client, apply: dict[str, Any],
                 fail: dict[str, int] | None = None, fail_compensation: set[str] | None = None,
                 silent: set[str] | None = None, work: float = 0.0) -> None:
        self.rt, self.work = rt, work
        self.calls: list[tuple[str, str, bool]] = []  # (role, step_id, compensation)
        self.fail = dict(fail or {})
        self.fail_compensation = fail_compensation or set()
        self.silent = silent or set()
        self.threads = []
        for agent in apply["agents"]:
            name = agent["address"].rsplit("/", 1)[1]
            token = agent_key(admin, agent["address"])
            self.threads.append(FeedAgent(rt.url, token, name, self._handler(agent["role"])))
        for t in self.threads:
            t.start()

    def _handler(self, role: str):  # type: ignore[no-untyped-def]
        def handle(frame: dict[str, Any]) -> dict[str, Any] | None:
            payload = frame["payload"]
            step, comp = payload["step_id"], bool(payload.get("compensation"))
            self.calls.append((role, step, comp))
            assert payload["parent_payload"]["order_id"] == "ord_98765"
            if self.work:
                self.rt.advance_clock(self.work)
            if step in self.silent and not comp:
                return None
            if comp:
                if step in self.fail_compensation:
                    return {"action": "fail", "reason": f"cannot undo {step}"}
                return {"action": "complete", "undone": step, "of": payload["step_result"]}
            if self.fail.get(step, 0) > 0:
                self.fail[step] -= 1
                return {"action": "fail", "reason": f"{step} failed"}
            return {"action": "complete", "step": step, "ref": f"{step}-{payload['attempt']}"}
        return handle

    def stop(self, wait: bool = False) -> None:
        """Each agent ends within its feed's wait (1 s); ``wait`` for that (the workflow is over, so nothing more
        comes to them: a test need not wait)."""
        for t in self.threads:
            t.stop_event.set()
        if wait:
            for t in self.threads:
                t.stop()


REDELIVERY = 5.0  # (test clock) seconds; step deadlines are 60


@pytest.fixture(scope="module")
def wf_runtime(backend: str, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    rt = RuntimeThread(tmp_path_factory.mktemp("wf"), extra_args=["--redelivery-seconds", str(REDELIVERY)],
                       clock=ManualClock(), backend=backend).start()
    yield rt
    rt.retire()


def run_saga(rt: RuntimeThread, **behaviour: Any) -> tuple[dict[str, Any], Services, list[dict[str, Any]]]:
    with rt.client() as admin:
        r = admin.post("/v1/scenarios/apply", json=saga(uuid.uuid4().hex[:8]))
        assert r.status_code == 200, r.text
        applied = r.json()
        assert applied["compile_id"] and [a["created"] for a in applied["agents"]] == [True, True, True]
        services = Services(rt, admin, applied, **behaviour)
        try:
            with Clockwork(rt, applied["intent_id"]):
                if behaviour.get("fail_compensation"):
                    answer_manual_undo(admin, applied["intent_id"])
                intent = wait_terminal(admin, applied["intent_id"])
        finally:
            services.stop()
        events = admin.get(f"/v1/intents/{applied['intent_id']}/events").json()["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    return intent, services, events


def test_applying_one_scenario_again_checks_each_intent(wf_runtime: RuntimeProcess) -> None:
    """The runtime validates a scenario it has seen once only in its intent and idempotency key (the rest is
    remembered): each apply still gets its own payload, and a bad intent or key is still named."""
    bundle = saga(uuid.uuid4().hex[:8])
    with wf_runtime.client() as admin:
        firsts = []
        for n in range(3):
            body = {**bundle, "idempotency_key": f"k-{n}-{uuid.uuid4().hex}",
                    "intent": {**bundle["intent"], "payload": {"order_id": f"o-{n}"}}}
            r = admin.post("/v1/scenarios/apply", json=body)
            assert r.status_code == 200, r.text
            firsts.append(r.json()["intent_id"])
        payloads = [admin.get(f"/v1/intents/{i}").json()["intent"]["payload"] for i in firsts]
        assert payloads == [{"order_id": "o-0"}, {"order_id": "o-1"}, {"order_id": "o-2"}]
        bad_type = admin.post("/v1/scenarios/apply", json={**bundle, "intent": {**bundle["intent"], "type": "Bad"}})
        assert bad_type.status_code == 422 and bad_type.json()["error"]["code"] == "scenario_invalid"
        assert any(e.startswith("intent.type") for e in bad_type.json()["error"]["details"]["errors"]), bad_type.text
        bad_key = admin.post("/v1/scenarios/apply", json={**bundle, "idempotency_key": "k" * 300})
        assert bad_key.status_code == 422 and "idempotency_key" in bad_key.text
        unknown = admin.post("/v1/scenarios/apply", json={**bundle, "intent": {**bundle["intent"], "extra": 1}})
        assert unknown.status_code == 422 and "intent.extra" in unknown.text


def test_happy_path(wf_runtime: RuntimeProcess) -> None:
    intent, services, events = run_saga(wf_runtime)
    assert intent["status"] == "COMPLETED"
    assert [c[1] for c in services.calls] == ["reserve", "charge", "ship"]
    assert set(intent["result"]["results"]) == {"reserve", "charge", "ship"}
    waits = [e for e in events if e["event_type"] == "intent.waiting"]
    assert [e["details"]["step_id"] for e in waits] == ["reserve", "charge", "ship"]
    assert all(e["status"] == "WAITING" and e["waiting_reason"] == "WAITING_FOR_AGENT" for e in waits)
    assert waits[1]["pending_with"]["ref"].split("/")[-1].startswith("payment-")
    assert intent["workflow"]["phase"] == "done"


@pytest.mark.parametrize("failing, undone", [
    ("reserve", []),
    ("charge", ["reserve"]),
    ("ship", ["charge", "reserve"]),
])
def test_failure_compensates_completed_steps_newest_first(wf_runtime: RuntimeProcess, failing: str,
                                                          undone: list[str]) -> None:
    intent, services, events = run_saga(wf_runtime, fail={failing: 99})
    assert intent["status"] == "FAILED"
    assert intent["error"]["failed_step"] == failing
    assert intent["error"]["compensated"] == undone
    assert [c[1] for c in services.calls if c[2]] == undone  # compensations ran in this order, once each
    assert [e["details"]["step_id"] for e in events if e["event_type"] == "intent.compensated"] == undone
    retries = [e for e in events if e["event_type"] == "intent.step_failed"]
    max_retries = {"reserve": 2, "charge": 2, "ship": 1}[failing]
    assert len(retries) == max_retries + 1 and retries[-1]["details"].get("final") is True


def test_retry_then_success(wf_runtime: RuntimeProcess) -> None:
    intent, services, _ = run_saga(wf_runtime, fail={"charge": 1})
    assert intent["status"] == "COMPLETED"
    assert [c[1] for c in services.calls] == ["reserve", "charge", "charge", "ship"]


def test_a_compensation_that_fails(wf_runtime: RuntimeProcess) -> None:
    intent, services, events = run_saga(wf_runtime, fail={"ship": 99}, fail_compensation={"charge"})
    assert intent["status"] == "FAILED"
    assert intent["error"]["compensated"] == ["reserve"]
    assert intent["error"]["compensation_failed"] == ["charge"]
    assert intent["error"]["manual_undo"]["outcome"] == "completed"
    assert [c[1] for c in services.calls if c[2]] == ["charge"] * 4 + ["reserve"]  # 1 + 3 retries


def test_step_timeout_then_compensation(wf_runtime: RuntimeThread) -> None:
    bundle = saga(uuid.uuid4().hex[:8])
    deadline = bundle["workflow"]["steps"][2]["step_deadline_seconds"]
    with wf_runtime.client() as admin:
        applied = admin.post("/v1/scenarios/apply", json=bundle).json()
        services = Services(wf_runtime, admin, applied, silent={"ship"})
        try:  # each attempt of ship waits out its deadline
            with Clockwork(wf_runtime, applied["intent_id"], deadlines={"ship": deadline}):
                intent = wait_terminal(admin, applied["intent_id"])
        finally:
            services.stop()
        events = admin.get(f"/v1/intents/{applied['intent_id']}/events").json()["events"]
    assert intent["status"] == "FAILED"
    assert intent["error"]["reason"] == "step_timeout"
    assert intent["error"]["compensated"] == ["charge", "reserve"]
    assert [e["details"]["reason"] for e in events if e["event_type"] == "intent.step_failed"] == ["step_timeout"] * 2


def ship_intent(admin: httpx.Client, parent_id: str) -> str | None:
    """The id of the ship step's sub-intent, once the workflow started it."""
    for e in admin.get(f"/v1/intents/{parent_id}/events").json()["events"]:
        if e["event_type"] == "intent.waiting" and e["details"].get("step_id") == "ship":
            return str(e["details"]["step_intent_id"])
    return None


def test_agent_not_running_exhausts_delivery(wf_runtime: RuntimeThread) -> None:
    bundle = saga(uuid.uuid4().hex[:8])
    bundle["workflow"]["steps"][2]["retry"]["max_retries"] = 0
    with wf_runtime.client() as admin:
        applied = admin.post("/v1/scenarios/apply", json=bundle).json()
        services = Services(wf_runtime, admin, {"agents": applied["agents"][:2]})  # no shipping agent
        try:
            ship_id = eventually(lambda: ship_intent(admin, applied["intent_id"]), what="the ship step")

            def ship() -> tuple[int, str]:
                i = admin.get(f"/v1/intents/{ship_id}").json()["intent"]
                return i["delivery_attempt"], i["status"]

            # each redelivery interval passes with nobody there, until the attempts run out
            assert [tick(wf_runtime, REDELIVERY, ship) for _ in range(3)] == [
                (2, "SUBMITTED"), (3, "SUBMITTED"), (3, "FAILED")]
            intent = wait_terminal(admin, applied["intent_id"])
        finally:
            services.stop()
        ship = intent["workflow"]["history"][2]
        step_intent = admin.get(f"/v1/intents/{ship['intent_id']}").json()["intent"]
    assert intent["error"]["reason"] == "delivery_failed" and intent["error"]["failed_step"] == "ship"
    assert step_intent["status"] == "FAILED" and step_intent["delivery_attempt"] == 3
    assert intent["error"]["compensated"] == ["charge", "reserve"]


# name: (how the bundle changes, how the services behave, final status, reason or None, compensated steps)
CRASH_CASES: dict[str, tuple[Any, dict[str, Any], str, str | None, list[str]]] = {
    "happy": (None, {}, "COMPLETED", None, []),
    "ship fails": (None, {"fail": {"ship": 99}}, "FAILED", None, ["charge", "reserve"]),
    "charge retried": (None, {"fail": {"charge": 1}}, "COMPLETED", None, []),
    "ship times out": (lambda b: b["workflow"]["steps"][2].update(step_deadline_seconds=2, retry={"max_retries": 0}),
                       {"silent": {"ship"}}, "FAILED", "step_timeout", ["charge", "reserve"]),
    "no shipping agent": (lambda b: b["workflow"]["steps"][2].update(retry={"max_retries": 0}),
                          {"agents": 2}, "FAILED", "delivery_failed", ["charge", "reserve"]),
    "a compensation fails": (None, {"fail": {"ship": 99}, "fail_compensation": {"reserve"}}, "FAILED", None,
                             ["charge"]),
}


@pytest.mark.slow
@pytest.mark.backends("sqlite")  # kill -9 on each backend under a saga load: tests/reliability/test_crash_matrix.py
def test_kill_9_during_each_kind_of_saga(backend: str, tmp_path: Path) -> None:
    """Sagas of every kind keep going across kill -9 restarts: each ends as it would have without the crashes,
    no step completes twice and no compensation runs twice to completion. Two kills while the six sagas run (each
    restart is a process start, the bulk of this test's time)."""
    rt = RuntimeProcess(tmp_path, extra_args=["--redelivery-seconds", "1"], backend=backend).start()
    services: list[Services] = []
    try:
        with rt.client() as admin:
            runs = []
            for i, (name, (change, behaviour, *expected)) in enumerate(CRASH_CASES.items()):
                bundle = saga(f"k{i}")
                if change is not None:
                    change(bundle)
                r = admin.post("/v1/scenarios/apply", json=bundle)
                assert r.status_code == 200, r.text
                applied = r.json()
                behaviour = dict(behaviour)
                agents = applied["agents"][: behaviour.pop("agents", 3)]
                services.append(Services(rt, admin, {"agents": agents}, **behaviour))
                runs.append((name, applied, expected))
        for delay in (0.2, 0.4):
            time.sleep(delay)
            rt.kill()
            rt.start()
        with rt.client() as admin:
            for (name, applied, (status, reason, undone)), svc in zip(runs, services, strict=True):
                if name == "a compensation fails":
                    answer_manual_undo(admin, applied["intent_id"], timeout=90)
                intent = wait_terminal(admin, applied["intent_id"], timeout=90)
                events = admin.get(f"/v1/intents/{applied['intent_id']}/events").json()["events"]
                assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), name
                done = [e["details"]["step_id"] for e in events if e["event_type"] == "intent.compensated"]
                agents = [(t.name, t.is_alive(), t.errors[-3:], len(t.seen)) for t in svc.threads]
                assert intent["status"] == status, (name, intent.get("error"), agents)
                assert done == undone, (name, intent.get("error"), agents)
                if reason:
                    assert intent["error"]["reason"] == reason, (name, intent["error"])
                completed = [h["step_id"] for h in intent["workflow"]["history"] if h["status"] == "COMPLETED"]
                assert len(completed) == len(set(completed)), name  # no step completed twice
    finally:
        for svc in services:
            svc.stop()
        rt.stop()


def test_a_scenario_applied_again_is_compiled_with_its_own_intent_and_workspace() -> None:
    """The compiled roles and steps of a bundle are kept for the next apply of the same validated bundle with
    another intent (what /apply sends on): each apply still gets its own intent, and a workspace its own addresses."""
    from dataclasses import replace

    from axme_cli.protocol.scenario import IntentSpec, ScenarioBundle
    from axme_cli.runtime.engine.workflows import compile_bundle
    from axme_cli.runtime.settings import Settings

    raw = saga("compiled")
    bundle = ScenarioBundle.model_validate(raw)
    again = bundle.model_copy(update={"intent": IntentSpec.model_validate({**raw["intent"], "payload": {"n": 2}})})
    here, there = Settings(), replace(Settings(), org="acme", workspace="ops")
    first, second, elsewhere = compile_bundle(here, bundle), compile_bundle(here, again), compile_bundle(there, again)
    assert first["intent"]["payload"] == raw["intent"]["payload"] and second["intent"]["payload"] == {"n": 2}
    assert second["steps"] == first["steps"] and second["roles"] == first["roles"]
    addresses = {role["address"] for role in first["roles"].values() if role["kind"] == "agent"}
    assert addresses and all(a.startswith(f"agent://{here.org}/{here.workspace}/") for a in addresses)
    assert all(role["address"].startswith("agent://acme/ops/") for role in elsewhere["roles"].values()
               if role["kind"] == "agent")
    fresh = ScenarioBundle.model_validate(raw)  # validated again: new objects, compiled again, the same result
    assert compile_bundle(here, fresh) == first

"""The runtime's clock: a test moves it and what became due fires at once, with no real wait.

A deadline, a redelivery, a workflow step's retry delay, a task's reminders and a key's expiry, each an hour or
more away, happen as soon as the clock is moved past them (the runtime's background loops wake on the jump);
`axme dev --test-clock` and POST /dev/clock/advance do the same for a runtime in a process of its own."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from axme_cli.runtime.clock import SYSTEM, ManualClock, iso, parse_iso
from tests.agents_helper import agent_key
from tests.conftest import make_agent, new_intent, unique
from tests.runtime.api.test_intents import events_of, get
from tests.runtime.api.test_streams import eventually, feed_path, iter_frames
from tests.runtime.api.test_tasks import task_intent
from tests.runtime_proc import RuntimeProcess
from tests.runtime_thread import RuntimeThread

ROOT = Path(__file__).resolve().parents[2]
HOUR = 3600.0


@pytest.fixture(scope="module")
def clocked(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeThread]:
    """A runtime on a ManualClock (redelivery an hour away), shared by the tests of this module."""
    work = tmp_path_factory.mktemp("clocked")
    rt = RuntimeThread(work, clock=ManualClock(), backend=backend,
                       extra_args=["--redelivery-seconds", str(HOUR), "--mail-dir", str(work / "mail")])
    rt.start()
    yield rt
    rt.retire()


@pytest.fixture
def api(clocked: RuntimeThread) -> Iterator[httpx.Client]:
    with clocked.client() as client:
        yield client


def later(rt: RuntimeThread, seconds: float) -> str:
    """The runtime's now plus ``seconds``, as RFC 3339."""
    return iso(rt.clock.time() + seconds)


def status(api: httpx.Client, intent_id: str, wanted: str) -> dict[str, Any] | None:
    intent = get(api, intent_id)
    return intent if intent["status"] == wanted else None


# ---------------------------------------------------------------------------------------------
# the clock itself


def test_a_manual_clock_stands_still_until_moved_and_tells_who_listens() -> None:
    clock = ManualClock(start=1_000.0)
    heard: list[float] = []
    undo = clock.on_change(lambda: heard.append(clock.time()))
    mono = clock.monotonic()
    assert (clock.time(), clock.monotonic()) == (1_000.0, mono)
    clock.advance(2.5)  # (and a microsecond: see ManualClock.PAST)
    assert clock.time() == pytest.approx(1_002.5 + 1e-6, abs=1e-9)
    assert clock.monotonic() - mono == pytest.approx(2.5 + 1e-6, abs=1e-9)
    clock.set(1_010.0)
    assert clock.time() == pytest.approx(1_010.0 + 1e-6, abs=1e-9)
    assert clock.monotonic() - mono == pytest.approx(10.0 + 1e-6, abs=1e-8)
    assert heard == pytest.approx([1_002.5, 1_010.0], abs=1e-5)
    for bad in (-1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="forward"):
            clock.advance(bad)
    with pytest.raises(ValueError, match="forward"):
        clock.set(1_000.0)  # back in time
    assert clock.time() == pytest.approx(1_010.0 + 1e-6, abs=1e-9)
    undo()
    clock.advance(1)
    assert len(heard) == 2
    assert ManualClock().time() == pytest.approx(SYSTEM.time(), abs=60)  # starts at the real time
    assert SYSTEM.manual is False and clock.manual is True


# ---------------------------------------------------------------------------------------------
# timers fire when the clock passes them


def test_a_deadline_fires_when_the_clock_passes_it(clocked: RuntimeThread, api: httpx.Client) -> None:
    r = api.post("/v1/intents", json=new_intent(unique("slow"), deadline_at=later(clocked, HOUR / 2),
                                                max_delivery_attempts=5))
    assert r.status_code == 200, r.text
    intent_id = r.json()["intent_id"]
    clocked.advance_clock(HOUR / 2 - 60)  # a minute before
    assert get(api, intent_id)["status"] == "SUBMITTED"
    clocked.advance_clock(61)
    intent = eventually(lambda: status(api, intent_id, "TIMED_OUT"), timeout=5, what="the deadline fires")
    assert intent["lifecycle_status"] == "TIMED_OUT"
    last = events_of(api, intent_id)[-1]
    assert (last["event_type"], last["status"]) == ("intent.timed_out", "TIMED_OUT")
    # the event's time is the runtime's clock, past the deadline, not the real time
    assert parse_iso(last["at"]) >= parse_iso(intent["deadline_at"])


def test_redelivery_and_delivery_failure_follow_the_clock(clocked: RuntimeThread, api: httpx.Client) -> None:
    name = unique("deaf")
    _, token = make_agent(api, name)
    r = api.post("/v1/intents", json=new_intent(name, max_delivery_attempts=2))
    assert r.status_code == 200, r.text
    intent_id = r.json()["intent_id"]
    with clocked.client(token) as bot, bot.stream("GET", feed_path(name), params={"since": 0, "wait_seconds": 1}) as s:
        first = [f.json for f in iter_frames(s) if f.event and f.event.startswith("intent.")]
    assert [(f["intent_id"], f["delivery_attempt"]) for f in first] == [(intent_id, 1)]
    clocked.advance_clock(HOUR + 1)  # no answer within the redelivery interval: delivered again
    eventually(lambda: get(api, intent_id)["delivery_attempt"] == 2, timeout=5, what="the second attempt")
    assert get(api, intent_id)["status"] in ("SUBMITTED", "DELIVERED")
    clocked.advance_clock(HOUR + 1)  # the last attempt runs out too
    failed = eventually(lambda: status(api, intent_id, "FAILED"), timeout=5, what="delivery_failed")
    assert failed["error"]["code"] == "delivery_failed" and failed["delivery_attempt"] == 2


def one_step_saga(delay: float) -> dict[str, Any]:
    bundle = json.loads((ROOT / "scenarios" / "order-saga.json").read_text())
    step = bundle["workflow"]["steps"][0]
    step.pop("compensate")
    step["retry"] = {"max_retries": 1, "retry_delay_seconds": delay}
    bundle["workflow"]["steps"] = [step]
    bundle["agents"] = [dict(bundle["agents"][0], address=f"inventory-{uuid.uuid4().hex[:8]}")]
    return bundle


def next_step_intent(rt: RuntimeThread, token: str, name: str, since: int) -> dict[str, Any]:
    def read() -> dict[str, Any] | None:
        with rt.client(token) as bot, bot.stream("GET", feed_path(name), params={"since": since,
                                                                                 "wait_seconds": 1}) as s:
            frames = [f.json for f in iter_frames(s) if f.event and f.event.startswith("intent.")]
        return frames[0] if frames else None

    return eventually(read, timeout=5, what=f"a step intent on {name}'s feed after {since}")


def test_a_step_is_retried_when_the_clock_passes_its_retry_delay(clocked: RuntimeThread,
                                                                 api: httpx.Client) -> None:
    r = api.post("/v1/scenarios/apply", json=one_step_saga(HOUR))
    assert r.status_code == 200, r.text
    applied = r.json()
    address = applied["agents"][0]["address"]
    name = address.rsplit("/", 1)[1]
    token = agent_key(api, address)
    first = next_step_intent(clocked, token, name, 0)
    assert first["payload"]["attempt"] == 1
    with clocked.client(token) as bot:
        r = bot.post(f"/v1/intents/{first['intent_id']}/resume", json={"action": "fail", "reason": "busy"})
        assert r.status_code == 200, r.text
    eventually(lambda: status(api, first["intent_id"], "FAILED"), timeout=5, what="the first attempt failed")
    clocked.advance_clock(HOUR - 60)
    # a minute before the delay ends the workflow still waits for it
    assert get(api, applied["intent_id"])["status"] not in ("COMPLETED", "FAILED")
    clocked.advance_clock(61)
    second = next_step_intent(clocked, token, name, first["seq"])
    assert second["payload"]["attempt"] == 2 and second["payload"]["step_id"] == first["payload"]["step_id"]
    with clocked.client(token) as bot:
        r = bot.post(f"/v1/intents/{second['intent_id']}/resume", json={"action": "complete", "ok": True})
        assert r.status_code == 200, r.text
    eventually(lambda: status(api, applied["intent_id"], "COMPLETED"), timeout=5, what="the workflow completes")


def test_reminders_and_escalation_follow_the_clock(clocked: RuntimeThread, api: httpx.Client) -> None:
    body = task_intent(notify_email="ops@example.com") | {
        "remind_after_seconds": HOUR, "remind_interval_seconds": HOUR, "max_reminders": 2,
        "escalate_to": "boss@example.com"}
    r = api.post("/v1/intents", json=body)
    assert r.status_code == 200, r.text
    intent_id = r.json()["intent_id"]

    def kinds() -> list[str]:
        return [e["event_type"] for e in events_of(api, intent_id)
                if e["event_type"] in ("intent.reminder", "intent.escalated")]

    mails = clocked.workdir / "mail"

    def sent(count: int) -> bool:
        return len(list(mails.glob(f"*-task-{intent_id}-*.eml"))) == count

    eventually(lambda: sent(1), timeout=5, what="the task's mail")
    assert kinds() == []
    clocked.advance_clock(HOUR + 1)
    eventually(lambda: kinds() == ["intent.reminder"], timeout=5, what="the first reminder")
    eventually(lambda: sent(2), timeout=5, what="the reminder's mail")  # (an escalation drops unsent ones)
    clocked.advance_clock(HOUR + 1)  # the last reminder escalates at once
    eventually(lambda: kinds() == ["intent.reminder", "intent.reminder", "intent.escalated"], timeout=5,
               what="the second reminder and the escalation")
    eventually(lambda: sent(3), timeout=5, what="the escalation's mail")
    r = api.post(f"/v1/intents/{intent_id}/resume", json={"task_result": {"outcome": "approved"}})
    assert r.status_code == 200, r.text
    clocked.advance_clock(10 * HOUR)  # nothing is due after the answer
    r = api.post("/v1/intents", json=new_intent(unique("sentinel"), deadline_at=later(clocked, 1)))
    sentinel = r.json()["intent_id"]
    clocked.advance_clock(2)
    eventually(lambda: status(api, sentinel, "TIMED_OUT"), timeout=5, what="a later timer fired")
    assert kinds() == ["intent.reminder", "intent.reminder", "intent.escalated"]
    assert events_of(api, intent_id)[-1]["event_type"] == "intent.completed"


def test_an_expiring_key_stops_working_when_the_clock_passes_its_expiry(clocked: RuntimeThread,
                                                                        api: httpx.Client) -> None:
    r = api.post("/v1/service-accounts", json={"name": unique("brief")})
    sa_id = r.json()["service_account"]["service_account_id"]
    r = api.post(f"/v1/service-accounts/{sa_id}/keys", json={"expires_at": later(clocked, HOUR)})
    assert r.status_code == 200, r.text
    token = r.json()["key"]["token"]
    with clocked.client(token) as bot:
        assert bot.get("/v1/intents").status_code == 200  # and now it is in the key cache
        clocked.advance_clock(HOUR + 1)
        r = bot.get("/v1/intents")
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "token_expired"


# ---------------------------------------------------------------------------------------------
# POST /dev/clock/advance


@pytest.mark.backends("sqlite")
def test_the_admin_key_moves_the_clock_over_http(clocked: RuntimeThread, api: httpx.Client) -> None:
    before = clocked.clock.time()
    r = api.post("/dev/clock/advance", json={"seconds": 90.5})
    assert r.status_code == 200, r.text
    now = clocked.clock.time()
    assert now - before == pytest.approx(90.5, abs=1e-5)
    assert r.json() == {"ok": True, "now": iso(now)}
    assert api.get("/health").json()["server_time"] == now
    assert api.post("/dev/clock/advance", json={"seconds": 0}).status_code == 200


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("body", [{}, {"seconds": -1}, {"seconds": "5"}, {"seconds": True}, {"seconds": None},
                                  {"seconds": 1e300}, {"seconds": 1, "extra": 1}, [], "5"])
def test_bad_seconds_are_422_naming_the_field(clocked: RuntimeThread, api: httpx.Client, body: Any) -> None:
    before = clocked.clock.time()
    r = api.post("/dev/clock/advance", json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] and error["message"] and "detail" in r.json()
    if isinstance(body, dict) and body.get("extra") is None:
        assert "seconds" in json.dumps(error), error
    assert clocked.clock.time() == before


@pytest.mark.backends("sqlite")
def test_only_the_admin_key_moves_it_and_only_a_test_clock_moves(clocked: RuntimeThread, api: httpx.Client,
                                                                 runtime: RuntimeProcess) -> None:
    before = clocked.clock.time()
    _, token = make_agent(api, unique("agent"))
    with clocked.client(token) as bot:
        r = bot.post("/dev/clock/advance", json={"seconds": 5})
    assert r.status_code == 403 and r.json()["error"]["code"] == "policy_denied", r.text
    r = httpx.post(f"{clocked.url}/dev/clock/advance", json={"seconds": 5})
    assert r.status_code == 401, r.text
    assert clocked.clock.time() == before
    with runtime.client() as real:  # the shared runtime runs on the real clock
        r = real.post("/dev/clock/advance", json={"seconds": 5})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", r.text


# ---------------------------------------------------------------------------------------------
# the flag


@pytest.mark.backends("sqlite")
def test_axme_dev_test_clock_serves_the_route_and_axme_server_refuses_it(backend: str, tmp_path: Path) -> None:
    rt = RuntimeProcess(tmp_path, extra_args=["--test-clock"], backend=backend).start()
    try:
        with rt.client() as api:
            start = api.get("/health").json()["server_time"]
            r = api.post("/v1/intents", json=new_intent(unique("slow"), deadline_at=iso(start + 7 * 86400)))
            intent_id = r.json()["intent_id"]
            rt.advance_clock(7 * 86400 + 1)
            intent = eventually(lambda: status(api, intent_id, "TIMED_OUT"), timeout=5, what="a week-long deadline")
            assert intent["status"] == "TIMED_OUT"
            assert api.get("/health").json()["server_time"] == pytest.approx(start + 7 * 86400 + 1, abs=1e-5)
    finally:
        assert rt.stop() == 0
    assert "test clock" in rt.log.read_text()  # the banner says so
    out = subprocess.run([sys.executable, "-m", "axme_cli", "server", "--test-clock", "--database-url",
                          "postgresql://nobody@127.0.0.1:1/none", "--api-key", "k" * 20],
                         capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, AXME_CONFIG_DIR=str(tmp_path / "cfg"), NO_COLOR="1"))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "--test-clock" in out.stderr and "axme dev --test-clock" in out.stderr, out.stderr

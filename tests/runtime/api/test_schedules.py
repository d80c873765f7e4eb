"""/v1/schedules against the real runtime, on both backends: create, list, get, trigger (an ordinary intent with the
schedule's id in its events), the overlap policy, pause, resume, delete, who may, bad input (422 naming the field),
and firing: occurrences due while the runtime was stopped fire when it starts again (on time, missed with either
policy, overlapping, a run that cannot start), and on PostgreSQL two replicas on one database fire each occurrence
once.

Firing at the cron time without waiting for it: the runtime runs on a test clock (``ManualClock``) the tests move,
also while it is stopped (the downtime the missed-run policy is about). When and what a cron expression fires is
tested without a database in tests/runtime/engine/test_schedule_times.py."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from axme_cli.runtime.clock import ManualClock, iso
from tests.auth_helpers import bearer, login
from tests.conftest import NO_LOGIN_LIMITS, intent, make_agent, unique
from tests.receiver import poll
from tests.runtime.api.test_intents import assert_error
from tests.runtime.api.test_metrics import scrape, value
from tests.runtime_proc import TLS, RuntimeProcess
from tests.runtime_thread import RuntimeThread

STORAGE_FREE = pytest.mark.backends("sqlite")  # refused before anything is read or written


def intent_body(to: str = "nightly-reporter", **extra: Any) -> dict[str, Any]:
    return {"intent_type": "report.nightly.v1", "to_agent": to, "payload": {"report": "sales"}, **extra}


def bundle(agent: str) -> dict[str, Any]:
    """One agent step (no workflow: the intent goes to the first agent)."""
    return {"scenario_id": "nightly.report", "title": "Nightly report",
            "agents": [{"role": "reporter", "address": agent}],
            "intent": {"type": "report.nightly.v1", "payload": {"report": "sales", "format": "pdf"}}}


def create(client: httpx.Client, **body: Any) -> dict[str, Any]:
    body.setdefault("cron", "0 3 * * *")
    if "scenario" not in body:
        body.setdefault("intent", intent_body())
    r = client.post("/v1/schedules", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True
    return dict(r.json()["schedule"])


def get(client: httpx.Client, schedule_id: str) -> dict[str, Any]:
    r = client.get(f"/v1/schedules/{schedule_id}")
    assert r.status_code == 200, r.text
    return dict(r.json()["schedule"])


def trigger(client: httpx.Client, schedule_id: str, **body: Any) -> dict[str, Any]:
    r = client.post(f"/v1/schedules/{schedule_id}/trigger", json=body or None)
    assert r.status_code == 200, r.text
    return dict(r.json())


def created_event(client: httpx.Client, intent_id: str) -> dict[str, Any]:
    events = client.get(f"/v1/intents/{intent_id}/events").json()["events"]
    assert events[0]["event_type"] == "intent.created"
    return dict(events[0])



# ---------------------------------------------------------------------------------------------
# create, list, get


def test_create_get_and_list_pages(api: httpx.Client) -> None:
    first = create(api, cron="0 2 * * *", timezone="Europe/Berlin", payload={"day": "today"},
                   description="nightly sales report")
    assert first["kind"] == "intent" and first["status"] == "active" and first["paused"] is False
    assert (first["cron"], first["timezone"], first["description"]) == ("0 2 * * *", "Europe/Berlin",
                                                                         "nightly sales report")
    assert first["intent_type"] == "report.nightly.v1" and first["to_agent"].endswith("/nightly-reporter")
    assert (first["missed_run_policy"], first["overlap_policy"]) == ("skip", "skip")
    assert (first["runs"], first["skipped_overlap"], first["skipped_missed"], first["failures"]) == (0, 0, 0, 0)
    # 02:00 in Berlin is 00:00 or 01:00 UTC, within the next day
    nxt = first["next_fire_at"]
    assert nxt[11:19] in ("00:00:00", "01:00:00") and iso(time.time()) < nxt <= iso(time.time() + 86400)
    assert first["intent"]["payload"] == {"report": "sales"} and first["payload"] == {"day": "today"}
    assert "correlation_id" not in first["intent"]  # each run gets a new one
    agent = unique("reporter")
    second = create(api, cron="@hourly", scenario=bundle(agent), overlap_policy="allow",
                    missed_run_policy="catch_up_one")
    assert (second["kind"], second["scenario_id"], second["intent_type"]) == ("scenario", "nightly.report",
                                                                               "report.nightly.v1")
    assert second["next_fire_at"][14:19] == "00:00" and second["scenario"]["agents"][0]["address"] == agent
    assert get(api, second["schedule_id"]) == second

    page = api.get("/v1/schedules", params={"limit": 1}).json()
    assert [s["schedule_id"] for s in page["schedules"]] == [second["schedule_id"]]  # newest first
    assert "scenario" not in page["schedules"][0]  # lists leave out what runs
    page = api.get("/v1/schedules", params={"limit": 1, "cursor": page["next_cursor"]}).json()
    assert [s["schedule_id"] for s in page["schedules"]] == [first["schedule_id"]]
    everything, cursor = [], None
    while True:
        page = api.get("/v1/schedules", params={"limit": 200, **({"cursor": cursor} if cursor else {})}).json()
        everything += page["schedules"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert {first["schedule_id"], second["schedule_id"]} <= {s["schedule_id"] for s in everything}


def test_an_idempotency_key_creates_one_schedule(api: httpx.Client) -> None:
    key = uuid.uuid4().hex
    body = {"cron": "0 4 * * *", "intent": intent_body(unique("idem"))}
    one = api.post("/v1/schedules", json=body, headers={"Idempotency-Key": key})
    two = api.post("/v1/schedules", json=body, headers={"Idempotency-Key": key})
    assert one.status_code == two.status_code == 200
    assert one.json()["schedule"]["schedule_id"] == two.json()["schedule"]["schedule_id"]
    assert_error(api.post("/v1/schedules", json={**body, "cron": "0 5 * * *"}, headers={"Idempotency-Key": key}),
                 409, code="idempotency_conflict")


# ---------------------------------------------------------------------------------------------
# runs: trigger, the overlap policy, metrics


def test_trigger_runs_an_ordinary_intent_that_names_the_schedule(api: httpx.Client) -> None:
    before, _ = scrape(api)
    target = unique("reporter")
    s = create(api, intent=intent_body(target, correlation_id=str(uuid.uuid4())), payload={"day": "mon"})
    answer = trigger(api, s["schedule_id"])
    run = answer["run"]
    assert run["started"] is True and answer["schedule"]["runs"] == 1
    assert answer["schedule"]["last_intent_id"] == run["intent_id"] and answer["schedule"]["last_outcome"] == "run"
    assert answer["schedule"]["next_fire_at"] == s["next_fire_at"]  # a trigger leaves the next occurrence be
    sent = intent(api, run["intent_id"])
    assert sent["schedule_id"] == s["schedule_id"] and sent["status"] == "SUBMITTED"
    assert sent["to_agent"].endswith("/" + target) and sent["payload"] == {"report": "sales", "day": "mon"}
    assert sent["from_agent"] == s["created_by"]
    details = created_event(api, run["intent_id"])["details"]
    assert details["schedule_id"] == s["schedule_id"] and details["trigger"] == "manual"
    # it travels the agent's feed like any intent
    listed = [i["intent_id"] for i in api.get("/v1/intents", params={"limit": 20}).json()["intents"]]
    assert run["intent_id"] in listed

    agent = unique("reporter")
    make_agent(api, agent)
    workflow = create(api, scenario=bundle(agent), payload={"format": "csv"})
    parent_id = trigger(api, workflow["schedule_id"])["run"]["intent_id"]
    parent = intent(api, parent_id)
    assert parent["schedule_id"] == workflow["schedule_id"] and parent["workflow"]["scenario_id"] == "nightly.report"
    assert parent["payload"] == {"report": "sales", "format": "csv"}
    assert created_event(api, parent_id)["details"]["schedule_id"] == workflow["schedule_id"]

    assert "schedules" in api.get("/v1/capabilities").json()["capabilities"]
    after, families = scrape(api)
    assert {"axme_schedule_runs", "axme_schedule_skips", "axme_schedule_failures"} <= families
    runs = value(after, "axme_schedule_runs_total", trigger="manual") - value(before, "axme_schedule_runs_total",
                                                                              trigger="manual")
    assert runs >= 2  # other tests of this module may trigger too


def test_overlap_skip_waits_for_the_previous_run_to_end(api: httpx.Client) -> None:
    s = create(api, intent=intent_body(unique("slow")))
    first = trigger(api, s["schedule_id"])["run"]["intent_id"]
    skipped = trigger(api, s["schedule_id"])
    assert skipped["run"] == {"started": False, "skipped": "overlap", "previous_intent_id": first,
                              "previous_status": "SUBMITTED"}
    assert skipped["schedule"]["skipped_overlap"] == 1 and skipped["schedule"]["last_outcome"] == "skipped_overlap"
    forced = trigger(api, s["schedule_id"], overlap_policy="allow")["run"]
    assert forced["started"] is True  # allowed for this run, and it is now the one the next waits for
    r = api.post(f"/v1/intents/{forced['intent_id']}/resolve", json={"status": "COMPLETED", "result": {}})
    assert r.status_code == 200, r.text
    again = trigger(api, s["schedule_id"])["run"]
    assert again["started"] is True
    assert get(api, s["schedule_id"])["runs"] == 3

    allow = create(api, intent=intent_body(unique("parallel")), overlap_policy="allow")
    ids = {trigger(api, allow["schedule_id"])["run"]["intent_id"] for _ in range(3)}
    assert len(ids) == 3


def test_pause_resume_and_delete(api: httpx.Client) -> None:
    s = create(api, cron="*/5 * * * *", paused=True)
    assert s["status"] == "paused" and s["next_fire_at"] is None
    resumed = api.post(f"/v1/schedules/{s['schedule_id']}/resume").json()["schedule"]
    assert resumed["status"] == "active" and resumed["next_fire_at"] > iso(time.time())
    assert resumed["next_fire_at"][15:19] in ("0:00", "5:00")
    paused = api.post(f"/v1/schedules/{s['schedule_id']}/pause").json()["schedule"]
    assert paused["status"] == "paused" and paused["next_fire_at"] is None
    again = api.post(f"/v1/schedules/{s['schedule_id']}/pause")  # nothing to do, no error
    assert again.status_code == 200 and again.json()["schedule"]["updated_at"] == paused["updated_at"]
    run = trigger(api, s["schedule_id"])["run"]  # a paused schedule may still be run by hand
    assert run["started"] is True
    r = api.delete(f"/v1/schedules/{s['schedule_id']}")
    assert r.status_code == 200 and r.json() == {"ok": True, "schedule_id": s["schedule_id"], "deleted": True}
    for method, path in (("GET", ""), ("DELETE", ""), ("POST", "/pause"), ("POST", "/resume"), ("POST", "/trigger")):
        assert_error(api.request(method, f"/v1/schedules/{s['schedule_id']}{path}"), 404, code="schedule_not_found")
    assert intent(api, run["intent_id"])["status"] == "SUBMITTED"  # the run goes on
    actions = [e["action"] for e in api.get("/v1/audit/events", params={"action_prefix": "schedule."}).json()["events"]
               if e["target_id"] == s["schedule_id"]]
    assert actions == ["schedule.deleted", "schedule.triggered", "schedule.paused", "schedule.resumed",
                       "schedule.created"]


# ---------------------------------------------------------------------------------------------
# who may


def test_agent_keys_may_not_and_people_may_only_read(quiet: RuntimeProcess, api: httpx.Client) -> None:
    s = create(api)
    _, key = make_agent(api, unique("scheduler-agent"))
    with httpx.Client(verify=TLS, base_url=quiet.url, headers={"x-api-key": key}, timeout=30) as agent:
        for method, path, body in (("GET", "", None), ("POST", "", {"cron": "0 1 * * *", "intent": intent_body()}),
                                   ("GET", f"/{s['schedule_id']}", None), ("DELETE", f"/{s['schedule_id']}", None),
                                   ("POST", f"/{s['schedule_id']}/pause", None),
                                   ("POST", f"/{s['schedule_id']}/resume", None),
                                   ("POST", f"/{s['schedule_id']}/trigger", None)):
            assert_error(agent.request(method, "/v1/schedules" + path, json=body), 403, code="policy_denied")
    person = login(api, quiet.mail_dir, f"{unique('planner')}@example.com")
    with httpx.Client(verify=TLS, base_url=quiet.url, headers=bearer(person["access_token"]), timeout=30) as people:
        assert people.get(f"/v1/schedules/{s['schedule_id']}").json()["schedule"]["schedule_id"] == s["schedule_id"]
        assert people.get("/v1/schedules").status_code == 200
        assert_error(people.post("/v1/schedules", json={"cron": "0 1 * * *", "intent": intent_body()}), 403)
        assert_error(people.post(f"/v1/schedules/{s['schedule_id']}/trigger"), 403, code="policy_denied")
    assert get(api, s["schedule_id"])["runs"] == 0 and get(api, s["schedule_id"])["status"] == "active"


# ---------------------------------------------------------------------------------------------
# bad input: 422 naming the field, before anything is written

BAD = [
    # (body, code, the field named)
    ({"cron": "61 * * * *"}, "invalid_cron", "cron"),
    ({"cron": "* * * *"}, "invalid_cron", "cron"),
    ({"cron": "0 0 30 2 *"}, "invalid_cron", "cron"),
    ({"cron": "@often"}, "invalid_cron", "cron"),
    ({"cron": "0 0 * * * *"}, "invalid_cron", "cron"),
    ({"cron": "0 2 * * *\u0000"}, "invalid_cron", "cron"),
    ({"timezone": "Mars/Olympus"}, "invalid_timezone", "timezone"),
    ({"timezone": "../../../etc/passwd"}, "invalid_timezone", "timezone"),
    ({"cron": 5}, "schema_invalid", "cron"),
    ({"cron": ""}, "schema_invalid", "cron"),
    ({"missed_run_policy": "catch_up_all"}, "schema_invalid", "missed_run_policy"),
    ({"overlap_policy": "queue"}, "schema_invalid", "overlap_policy"),
    ({"paused": "yes"}, "schema_invalid", "paused"),
    ({"payload": [1]}, "schema_invalid", "payload"),
    ({"every": "day"}, "schema_invalid", "every"),
    ({"intent": None}, "schema_invalid", "scenario"),  # neither
    ({"scenario": {"scenario_id": "x.y.z", "intent": {"type": "a.b.v1"}}}, "schema_invalid", "scenario"),  # both
    ({"intent": {"intent_type": "Bad", "to_agent": "reporter", "payload": {}}}, "schema_invalid", "intent.intent_type"),
    ({"intent": {"intent_type": "a.b.v1", "to_agent": "a b", "payload": {}}}, "invalid_agent_address",
     "intent.to_agent"),
    ({"intent": {"intent_type": "a.b.v1", "to_agent": "reporter", "payload": {},
                 "deadline_at": "2030-01-01T00:00:00Z"}}, "schema_invalid", "intent.deadline_at"),
    ({"intent": None, "scenario": {"scenario_id": "x", "intent": {"type": "a.b.v1"}}}, "scenario_invalid",
     "scenario.scenario_id"),
    ({"intent": None, "scenario": {"scenario_id": "nightly", "agents": [{"role": "r", "address": "x"}],
                                   "intent": {"type": "a.b.v1", "deadline_at": "2030-01-01T00:00:00Z"}}},
     "schema_invalid", "scenario.intent.deadline_at"),
    ({"intent": None, "scenario": {"scenario_id": "nightly", "agents": [
        {"role": "r", "address": "x", "delivery_mode": "http", "callback_url": "http://169.254.169.254/x"}],
        "intent": {"type": "a.b.v1"}}}, "callback_url_refused", "scenario.agents[0].callback_url"),
]


@STORAGE_FREE
@pytest.mark.parametrize("case", range(len(BAD)))
def test_bad_input_is_422_naming_the_field(api: httpx.Client, case: int) -> None:
    change, code, field = BAD[case]
    body = {"cron": "0 2 * * *", "intent": intent_body(), **change}
    body = {k: v for k, v in body.items() if not (k == "intent" and v is None)}
    before = len(api.get("/v1/schedules", params={"limit": 200}).json()["schedules"])
    err = assert_error(api.post("/v1/schedules", json=body), 422, code=code)["error"]
    assert field in err["message"], err
    if code in ("invalid_cron", "invalid_timezone"):
        assert err["details"]["field"] == field and err["details"]["fix"] in err["message"]
    assert len(api.get("/v1/schedules", params={"limit": 200}).json()["schedules"]) == before


def test_an_intent_whose_payload_its_registered_schema_refuses_is_422(api: httpx.Client) -> None:
    stype = f"t{uuid.uuid4().hex[:10]}.report.v1"
    schema = {"type": "object", "required": ["report"], "properties": {"report": {"enum": ["sales", "stock"]}}}
    r = api.post("/v1/schemas", json={"semantic_type": stype, "schema_json": schema, "compatibility_mode": "strict",
                                      "scope": "core"})
    assert r.status_code == 200, r.text
    body = {"cron": "0 2 * * *", "intent": {**intent_body(), "intent_type": stype}}
    err = assert_error(api.post("/v1/schedules", json={**body, "payload": {"report": "hr"}}), 422,
                       code="schema_validation_failed")["error"]
    assert err["details"]["field"] == "payload.report"
    assert api.post("/v1/schedules", json={**body, "payload": {"report": "stock"}}).status_code == 200
    attached = {**intent_body(), "attachments": [{"upload_id": str(uuid.uuid4())}]}
    err = assert_error(api.post("/v1/schedules", json={"cron": "0 2 * * *", "intent": attached}), 422)["error"]
    assert err["details"]["field"] == "intent.attachments" and err["message"].startswith("intent.attachments: ")


@STORAGE_FREE
def test_bad_trigger_bodies_and_cursors(api: httpx.Client) -> None:
    s = create(api)
    for body in ({"overlap_policy": "never"}, {"overlap_policy": 1}, {"other": True}):
        assert_error(api.post(f"/v1/schedules/{s['schedule_id']}/trigger", json=body), 422)
    for cursor in ("x", "9" * 300, "' OR 1=1 --"):
        assert_error(api.get("/v1/schedules", params={"cursor": cursor}), 422, code="invalid_parameter",
                     names="cursor")
    assert get(api, s["schedule_id"])["runs"] == 0


# ---------------------------------------------------------------------------------------------
# firing, on a test clock: at the cron time, across DST, overlapping, missed, across a restart, on two replicas


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.fixture(scope="module")
def clocked(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeThread]:
    """A runtime of this module on a test clock that stands still until a test moves it (forward only: each test
    moves it to its own times)."""
    rt = RuntimeThread(tmp_path_factory.mktemp("clocked"), backend=backend, clock=ManualClock(at("2026-03-07T12:00Z")),
                       extra_args=["--redelivery-seconds", "600", *NO_LOGIN_LIMITS])
    rt.start()
    yield rt
    rt.retire()


def clock_of(rt: RuntimeThread) -> ManualClock:
    assert isinstance(rt.clock, ManualClock)
    return rt.clock


def set_row(rt: RuntimeProcess, schedule_id: str, **fields: Any) -> None:
    """Change a schedule's row in the database of a stopped runtime."""
    sql = f"UPDATE schedules SET {', '.join(f'{k} = ?' for k in fields)} WHERE schedule_id = ?"
    args = (*fields.values(), schedule_id)
    if rt.database_url is None:
        conn = sqlite3.connect(rt.db)
        with conn:
            assert conn.execute(sql, args).rowcount == 1
        conn.close()
        return
    import psycopg

    with psycopg.connect(rt.database_url) as pg:
        assert pg.execute(sql.replace("?", "%s").encode(), args).rowcount == 1


def open_intent(to: str) -> dict[str, Any]:
    """An intent nobody answers that stays open however far the clock moves (redelivered, never given up)."""
    return intent_body(to, max_delivery_attempts=1_000_000)


def test_occurrences_fire_at_their_time_on_the_test_clock(clocked: RuntimeThread) -> None:
    clock = clock_of(clocked)
    clock.set(at("2027-03-13T17:00Z"))  # Saturday noon in New York; the clocks spring forward on Sunday at 02:00
    with clocked.client() as c:
        s = create(c, cron="30 2 * * *", timezone="America/New_York", intent=open_intent(unique("dst")))
        schedule_id = s["schedule_id"]
        assert s["next_fire_at"] == "2027-03-14T07:00:00.000000Z"  # 02:30 does not exist that day: 03:00 EDT

        clock.set(at("2027-03-14T07:00:00.5Z"))
        s = poll(lambda: get(c, schedule_id), lambda v: v["runs"] == 1)
        assert (s["last_outcome"], s["next_fire_at"]) == ("run", "2027-03-15T06:30:00.000000Z")  # 02:30 EDT again
        first = s["last_intent_id"]
        details = created_event(c, first)["details"]
        assert (details["trigger"], details["scheduled_for"]) == ("cron", "2027-03-14T07:00:00.000000Z")
        assert intent(c, first)["schedule_id"] == schedule_id

        clock.set(at("2027-03-15T06:30:01Z"))  # the first run has not ended: overlap skip
        s = poll(lambda: get(c, schedule_id), lambda v: v["skipped_overlap"] == 1)
        assert (s["runs"], s["last_intent_id"], s["next_fire_at"]) == (1, first, "2027-03-16T06:30:00.000000Z")

        r = c.post(f"/v1/intents/{first}/resolve", json={"status": "CANCELED", "reason": "done by hand"})
        assert r.status_code == 200, r.text
        clock.set(at("2027-03-16T06:30:01Z"))
        s = poll(lambda: get(c, schedule_id), lambda v: v["runs"] == 2)
        second = s["last_intent_id"]
        assert second != first and s["next_fire_at"] == "2027-03-17T06:30:00.000000Z"

        clock.set(at("2027-03-19T12:00Z"))  # two days late (the second run still open): missed, skip
        s = poll(lambda: get(c, schedule_id), lambda v: v["skipped_missed"] == 1)
        assert (s["runs"], s["last_outcome"], s["next_fire_at"]) == (2, "skipped_missed", "2027-03-20T06:30:00.000000Z")

        paused = c.post(f"/v1/schedules/{schedule_id}/pause").json()["schedule"]
        assert paused["next_fire_at"] is None
        clock.set(at("2027-03-25T12:00Z"))
        resumed = c.post(f"/v1/schedules/{schedule_id}/resume").json()["schedule"]
        assert resumed["next_fire_at"] == "2027-03-26T06:30:00.000000Z"  # nothing of the paused days runs
        assert (resumed["runs"], resumed["skipped_missed"], resumed["skipped_overlap"]) == (2, 1, 1)


def test_schedules_survive_a_restart_and_fire_what_came_due(clocked: RuntimeThread) -> None:
    """The runtime stops at noon and starts again the next day one second after 03:00: what was due at 03:00 is on
    time, what was due at 02:00 was missed."""
    rt, clock = clocked, clock_of(clocked)
    noon = (int(clock.time()) // 86400 + 1) * 86400 + 12 * 3600
    clock.set(noon)
    with rt.client() as c:
        on_time = create(c, cron="0 3 * * *", intent=open_intent(unique("on-time")), payload={"n": 1})
        missed_skip = create(c, cron="0 2 * * *", intent=open_intent(unique("missed")))
        catch_up = create(c, cron="0 2 * * *", scenario=bundle(unique("catch-up")), missed_run_policy="catch_up_one")
        busy = create(c, cron="0 3 * * *", intent=open_intent(unique("busy")))
        busy_run = trigger(c, busy["schedule_id"])["run"]["intent_id"]  # never answered: still running later
        paused = create(c, cron="0 3 * * *", paused=True)
        broken = create(c, cron="0 3 * * *", scenario=bundle(unique("broken")))
        kept = c.get("/v1/schedules", params={"limit": 200}).json()["schedules"]
    rt.stop()
    # a bundle this runtime now refuses (as after an upgrade): the run fails, the schedule says why and goes on
    set_row(rt, broken["schedule_id"], spec=json.dumps({"scenario_id": "gone"}))
    three, two = noon + 15 * 3600, noon + 14 * 3600
    assert on_time["next_fire_at"] == iso(three) and missed_skip["next_fire_at"] == iso(two)
    clock.set(three + 1)  # the downtime
    rt.start()
    fired = [on_time, missed_skip, catch_up, busy, broken]
    with rt.client() as c:
        after = {s["schedule_id"]: poll(lambda s=s: get(c, s["schedule_id"]),
                                        lambda v: v["next_fire_at"] is not None and v["next_fire_at"] > iso(three))
                 for s in fired}
        listed = c.get("/v1/schedules", params={"limit": 200}).json()["schedules"]
        assert [s["schedule_id"] for s in listed] == [s["schedule_id"] for s in kept]
        same = ("cron", "timezone", "kind", "payload", "missed_run_policy", "overlap_policy", "created_at")
        for s in listed:  # what the schedules are survived the restart as they were
            old = next(k for k in kept if k["schedule_id"] == s["schedule_id"])
            assert {k: s[k] for k in same} == {k: old[k] for k in same}

        s = after[on_time["schedule_id"]]
        assert (s["last_outcome"], s["runs"], s["next_fire_at"]) == ("run", 1, iso(three + 86400))
        run = intent(c, s["last_intent_id"])
        assert run["schedule_id"] == on_time["schedule_id"] and run["payload"] == {"report": "sales", "n": 1}
        details = created_event(c, run["intent_id"])["details"]
        assert details["trigger"] == "cron" and details["scheduled_for"] == iso(three) and "catch_up" not in details

        s = after[missed_skip["schedule_id"]]  # an hour late, skip: no run, on from the next occurrence
        assert (s["last_outcome"], s["runs"], s["skipped_missed"], s["last_intent_id"]) == ("skipped_missed", 0, 1,
                                                                                             None)
        assert s["next_fire_at"] == iso(two + 86400)

        s = after[catch_up["schedule_id"]]  # catch_up_one: one run for what was missed, then the next occurrence
        assert (s["last_outcome"], s["runs"], s["skipped_missed"]) == ("run", 1, 0)
        parent = intent(c, s["last_intent_id"])
        assert parent["schedule_id"] == catch_up["schedule_id"]
        assert parent["workflow"]["scenario_id"] == "nightly.report"
        details = created_event(c, parent["intent_id"])["details"]
        assert details["catch_up"] is True and details["scheduled_for"] == iso(two)

        s = after[busy["schedule_id"]]  # the run triggered before the restart goes on: this occurrence is skipped
        assert (s["last_outcome"], s["runs"], s["skipped_overlap"], s["last_intent_id"]) == ("skipped_overlap", 1, 1,
                                                                                             busy_run)

        s = after[broken["schedule_id"]]
        assert (s["last_outcome"], s["runs"], s["failures"]) == ("failed", 0, 1)
        assert "no longer valid" in s["last_error"] and "intent" in s["last_error"]
        refused = c.post(f"/v1/schedules/{broken['schedule_id']}/trigger")  # by hand: the caller hears why
        assert_error(refused, 422, code="scenario_invalid", names="no longer valid")
        assert get(c, broken["schedule_id"]) == {**s, "scenario": {"scenario_id": "gone"}}  # and nothing changed

        p = get(c, paused["schedule_id"])
        assert (p["status"], p["next_fire_at"], p["runs"], p["last_outcome"]) == ("paused", None, 0, None)

        samples, _ = scrape(c)  # this process's counters, since the restart
        assert value(samples, "axme_schedule_runs_total", trigger="cron") == 2
        assert value(samples, "axme_schedule_skips_total", reason="overlap") == 1
        assert value(samples, "axme_schedule_skips_total", reason="missed") == 1
        assert value(samples, "axme_schedule_failures_total") == 1


@pytest.mark.backends("postgres")
def test_two_replicas_fire_each_occurrence_once(clocked: RuntimeThread, tmp_path: Path) -> None:
    """The module's runtime and a second replica on its database and clock: each of 20 occurrences runs once."""
    clock = clock_of(clocked)
    clock.set((int(clock.time()) // 86400 + 1) * 86400 + 12 * 3600)  # noon
    other = RuntimeThread(tmp_path, extra_args=["--redelivery-seconds", "600"], backend="postgres",
                          database_url=clocked.database_url, clock=clock).start()
    try:
        with clocked.client() as a, other.client() as b:
            made = [create(a if i % 2 else b, cron="0 3 * * *", intent=open_intent(unique("replicated")),
                           overlap_policy="allow") for i in range(20)]
            ids = {s["schedule_id"] for s in made}
            due = at(made[0]["next_fire_at"])
            clock.set(due + 0.5)  # both replicas wake and race for the 20 due schedules
            ran = [poll(lambda s=s: get(a, s["schedule_id"]), lambda v: v["runs"] >= 1) for s in made]
            assert all(s["runs"] == 1 and s["last_outcome"] == "run" for s in ran)
            runs = [i for i in b.get("/v1/intents", params={"limit": 500}).json()["intents"]
                    if i.get("schedule_id") in ids]
            assert sorted(i["schedule_id"] for i in runs) == sorted(ids)  # one run each, whichever replica fired
            assert {i["intent_id"] for i in runs} == {s["last_intent_id"] for s in ran}
            for i in runs:
                assert created_event(a, i["intent_id"])["details"]["scheduled_for"] == iso(due)
    finally:
        other.stop()

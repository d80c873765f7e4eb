"""The dashboard in a workspace other than the runtime's default one, over HTTP against a real runtime on both
backends: the header says which workspace a session acts in; a person switches among the workspaces they are a
member of (a POST with the session's CSRF token, kept on the dashboard session; one without membership is refused);
a workspace's admin key stays in its own workspace (no switcher). Every page (intents, one intent, tasks,
scenarios, schedules, agents, mesh, the live feeds) shows the session's workspace's rows only, counts included;
another workspace's id is as not found as a missing one, and the actions (answer a task, cancel, kill an agent)
act in the session's workspace only."""

from __future__ import annotations

import contextlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.auth_helpers import read_code
from tests.conftest import make_agent, new_intent, unique
from tests.runtime.ui.test_ui import create, csrf, login, saga_bundle, status_of, task_body, ui_client
from tests.runtime_proc import RuntimeProcess
from tests.runtime_thread import RuntimeThread

ANN = "ann@ui-ws.example"


@pytest.fixture(scope="module")
def rt(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    proc = RuntimeThread(tmp_path_factory.mktemp("ui-ws"), extra_args=[
        "--redelivery-seconds", "600", "--allow-email", "@ui-ws.example", "--login-rate-limit", "0"],
        backend=backend)
    proc.start()
    yield proc
    proc.stop()


def _rows_of(api: httpx.Client) -> dict[str, Any]:
    """One workspace's rows, made through the API with its admin key: an agent with intents, a human task, a
    schedule that ran once and a saga run (its agents made there too)."""
    agent, agent_key = make_agent(api, unique("agent"))
    intent = create(api, new_intent(agent, intent_type="ui.ws.v1"))
    task = create(api, task_body())
    schedule = api.post("/v1/schedules", json={"cron": "0 3 * * *", "intent": {
        "intent_type": "report.nightly.v1", "to_agent": agent, "payload": {}}}).json()["schedule"]["schedule_id"]
    run = api.post(f"/v1/schedules/{schedule}/trigger")
    assert run.status_code == 200, run.text
    names = {role: make_agent(api, unique(role))[0] for role in ("inventory", "payment", "shipping")}
    applied = api.post("/v1/scenarios/apply", json=saga_bundle(names))
    assert applied.status_code == 200, applied.text
    saga = applied.json()["intent_id"]
    workflow = api.get(f"/v1/intents/{saga}").json()["intent"]["workflow"]["workflow_id"]
    sa_id = next(sa["service_account_id"] for sa in api.get("/v1/service-accounts").json()["service_accounts"]
                 if sa["agent_address"] == agent)
    listed = api.get("/v1/intents", params={"limit": 500}).json()["intents"]
    return {"agent": agent, "agent_key": agent_key, "agent_id": sa_id, "intent": intent, "task": task,
            "schedule": schedule, "saga": saga, "workflow": workflow, "total": len(listed),
            "ids": {i["intent_id"] for i in listed}}


@pytest.fixture(scope="module")
def world(rt: RuntimeProcess) -> dict[str, Any]:
    """The default workspace with an agent, and two workspaces of a new org: blue (ann is a member, an agent) and
    green (ann is not); the default workspace (A) and blue (B) each with intents, a task, a schedule, a saga run."""
    with rt.client() as api:
        org_id = api.post("/v1/organizations", json={"name": "Acme UI", "requested_by_actor_id": "boss@ui-ws.example"}
                          ).json()["organization"]["org_id"]
        made = {name: api.post(f"/v1/organizations/{org_id}/workspaces",
                               json={"name": name, "environment": "sandbox"}).json() for name in ("blue", "green")}
        blue = made["blue"]["workspace"]["workspace_id"]
        assert api.post(f"/v1/workspaces/{blue}/members/include", json={"actor_id": ANN}).status_code == 200
        a_agent = unique("a-agent")
        assert api.post("/v1/service-accounts", json={"name": a_agent}).status_code == 200
        a_rows = _rows_of(api)
    b_agent = unique("b-agent")
    with rt.client(made["blue"]["key"]["token"]) as as_blue:
        sa = as_blue.post("/v1/service-accounts", json={"name": b_agent}).json()["service_account"]
        b_key = as_blue.post(f"/v1/service-accounts/{sa['service_account_id']}/keys", json={}).json()["key"]["token"]
        b_rows = _rows_of(as_blue)
    assert not a_rows["ids"] & b_rows["ids"]
    return {"org_id": org_id, "blue": blue, "green": made["green"]["workspace"]["workspace_id"],
            "blue_key": made["blue"]["key"]["token"], "a_agent": a_agent, "b_agent": b_agent, "b_agent_key": b_key,
            "a": a_rows, "b": b_rows}


@contextlib.contextmanager
def person(rt: RuntimeProcess, email: str) -> Iterator[httpx.Client]:
    """A browser logged in to the dashboard with the email code."""
    with ui_client(rt) as c:
        c.get("/ui/login")
        token = c.cookies["axme_ui_login"]
        r = c.post("/ui/login/email", data={"csrf": token, "email": email, "next": "/ui/agents"})
        login_intent = re.search(r'name="login_intent" value="([^"]+)"', r.text)
        assert login_intent, r.text
        r = c.post("/ui/login/code", data={"csrf": token, "email": email, "login_intent": login_intent.group(1),
                                           "next": "/ui/agents", "code": read_code(rt.mail_dir, email)})
        assert r.status_code == 303 and r.headers["location"] == "/ui/agents", r.text
        yield c


def acting_in(page: str) -> str:
    found = re.search(r'class="who"[^>]* data-workspace="([^"]+)"', page)
    assert found, page[:2000]
    return found.group(1)


def test_a_person_switches_among_their_workspaces(rt: RuntimeProcess, world: dict[str, Any]) -> None:
    blue = f"{world['org_id']}/{world['blue']}"
    with person(rt, ANN) as c:
        page = c.get("/ui/agents").text
        assert acting_in(page) == "local/dev" and f"{ANN} · local / dev" in page
        options = re.findall(r'<option value="([^"]+)"', page)
        assert options == ["local/dev", blue]  # the default workspace and her membership's, not green
        assert world["a_agent"] in page and world["b_agent"] not in page

        token = csrf(c, "/ui/agents")
        r = c.post("/ui/workspace", data={"workspace": blue, "next": "/ui/agents"})
        assert r.status_code == 403 and "CSRF" in r.text
        r = c.post("/ui/workspace", data={"workspace": blue, "next": "/ui/agents", "csrf": token},
                   headers={"origin": "https://evil.example"})
        assert r.status_code == 403 and "another site" in r.text
        for value, status, says in ((f"{world['org_id']}/{world['green']}", 404, "not found"),
                                    ("no-org/dev", 404, "not found"), ("nothing", 422, "Pick a workspace")):
            r = c.post("/ui/workspace", data={"workspace": value, "csrf": token})
            assert r.status_code == status and says in r.text, r.text
            assert acting_in(c.get("/ui/agents").text) == "local/dev"

        r = c.post("/ui/workspace", data={"workspace": blue, "next": "/ui/agents", "csrf": token})
        assert r.status_code == 303 and r.headers["location"] == "/ui/agents"
        page = c.get("/ui/agents").text
        assert acting_in(page) == blue and f"{ANN} · Acme UI / blue" in page
        assert world["b_agent"] in page and world["a_agent"] not in page
        assert c.get("/ui/").headers["location"] == "/ui/intents"

        # back to the default workspace
        r = c.post("/ui/workspace", data={"workspace": "local/dev", "next": "/ui/intents", "csrf": token})
        assert r.status_code == 303 and r.headers["location"] == "/ui/intents"
        assert c.get("/ui/intents").status_code == 200 and c.get("/ui/").headers["location"] == "/ui/intents"


def test_the_switch_is_the_sessions_own(rt: RuntimeProcess, world: dict[str, Any]) -> None:
    """Two dashboard sessions of one person: switching one leaves the other where it was."""
    blue = f"{world['org_id']}/{world['blue']}"
    with person(rt, ANN) as first, person(rt, ANN) as second:
        r = first.post("/ui/workspace", data={"workspace": blue, "csrf": csrf(first, "/ui/agents")})
        assert r.status_code == 303
        assert acting_in(first.get("/ui/agents").text) == blue
        assert acting_in(second.get("/ui/agents").text) == "local/dev"


def test_a_workspace_key_stays_in_its_workspace(rt: RuntimeProcess, world: dict[str, Any]) -> None:
    blue = f"{world['org_id']}/{world['blue']}"
    with login(rt, world["blue_key"]) as c:
        page = c.get("/ui/agents").text
        assert acting_in(page) == blue and f"workspace key · {blue}" in page
        assert 'action="/ui/workspace"' not in page  # no switcher
        assert world["b_agent"] in page and world["a_agent"] not in page
        r = c.post("/ui/workspace", data={"workspace": "local/dev", "csrf": csrf(c, "/ui/agents")})
        assert r.status_code == 403 and "own workspace" in r.text
        assert acting_in(c.get("/ui/agents").text) == blue
    with login(rt, world["b_agent_key"]) as c:  # an agent key of blue sees itself only
        page = c.get("/ui/agents").text
        assert world["b_agent"] in page and world["a_agent"] not in page
        mesh = c.get("/ui/mesh")
        assert mesh.status_code == 200 and world["b_agent"] in mesh.text and world["b"]["agent"] not in mesh.text
        assert "/kill" not in mesh.text  # an agent key may not kill


def total(page: str) -> int:
    found = re.search(r'data-count="total">(\d+)<', page)
    assert found, page[:2000]
    return int(found.group(1))


def api_counts(rt: RuntimeProcess, key: str | None = None) -> dict[str, int]:
    """How many intents of each status the API lists to the workspace of ``key`` (the runtime's admin key: the
    default one)."""
    with rt.client(key) if key else rt.client() as api:
        listed = api.get("/v1/intents", params={"limit": 500}).json()["intents"]
    return dict(Counter(i["status"] for i in listed))


def live_counts(c: httpx.Client) -> dict[str, int]:
    with c.stream("GET", "/ui/live/counts") as s:
        assert s.status_code == 200
        for line in s.iter_lines():
            if line.startswith("data:"):
                frame = json.loads(line[5:])
                assert frame["total"] == sum(frame["counts"].values())
                return dict(frame["counts"])
    raise AssertionError("no counts frame")


def sees_only(c: httpx.Client, mine: dict[str, Any], theirs: dict[str, Any], expected: dict[str, int]) -> None:
    """Every page of the session shows ``mine``'s rows and none of ``theirs``; their ids are not found."""
    listed = c.get("/ui/intents")
    assert listed.status_code == 200, listed.text[:500]
    assert total(listed.text) == sum(expected.values()) and live_counts(c) == expected
    assert mine["intent"] in listed.text and mine["saga"] in listed.text
    assert not [i for i in theirs["ids"] if i in listed.text]
    assert c.get(f"/ui/intents?q={mine['intent']}").headers["location"] == f"/ui/intents/{mine['intent']}"
    assert c.get(f"/ui/intents?q={theirs['intent']}").status_code == 200  # no redirect to another workspace's
    assert theirs["intent"] not in c.get(f"/ui/intents?q={theirs['intent'][:13]}").text
    for path in (f"/ui/intents/{mine['intent']}", f"/ui/intents/{mine['intent']}/parts",
                 f"/ui/intents/{mine['saga']}", f"/ui/scenarios/{mine['workflow']}"):
        assert c.get(path).status_code == 200, path
    with c.stream("GET", f"/ui/intents/{mine['intent']}/events?since=0") as s:
        assert s.status_code == 200
        assert next(line for line in s.iter_lines() if line.startswith("data:"))
    for path in (f"/ui/intents/{theirs['intent']}", f"/ui/intents/{theirs['intent']}/parts",
                 f"/ui/intents/{theirs['intent']}/cancel", f"/ui/intents/{theirs['intent']}/events",
                 f"/ui/intents/{theirs['saga']}", f"/ui/scenarios/{theirs['workflow']}",
                 f"/ui/mesh/{theirs['agent_id']}/kill"):
        r = c.get(path)
        assert r.status_code == 404 and theirs["agent"] not in r.text, path
    tasks = c.get("/ui/tasks").text
    assert f'action="/ui/tasks/{mine["task"]}"' in tasks and theirs["task"] not in tasks
    scenarios = c.get("/ui/scenarios").text
    assert mine["saga"] in scenarios and theirs["saga"] not in scenarios
    schedules = c.get("/ui/schedules").text
    assert f'data-schedule="{mine["schedule"]}"' in schedules and theirs["schedule"] not in schedules
    for path in ("/ui/mesh", "/ui/agents"):
        text = c.get(path).text
        assert mine["agent"] in text and theirs["agent"] not in text, path


def test_every_page_shows_the_sessions_workspace_only(rt: RuntimeProcess, world: dict[str, Any]) -> None:
    a, b = world["a"], world["b"]
    blue = f"{world['org_id']}/{world['blue']}"
    with person(rt, ANN) as c:
        sees_only(c, a, b, api_counts(rt))  # the default workspace's counts leave out blue's intents
        r = c.post("/ui/workspace", data={"workspace": blue, "next": "/ui/intents", "csrf": csrf(c, "/ui/agents")})
        assert r.status_code == 303
        sees_only(c, b, a, api_counts(rt, world["blue_key"]))
    with login(rt) as c:  # the runtime's admin key
        sees_only(c, a, b, api_counts(rt))
    with login(rt, world["blue_key"]) as c:  # blue's admin key
        sees_only(c, b, a, api_counts(rt, world["blue_key"]))


def test_actions_act_in_the_sessions_workspace_only(rt: RuntimeProcess, world: dict[str, Any]) -> None:
    a, b = world["a"], world["b"]
    blue = f"{world['org_id']}/{world['blue']}"
    with rt.client() as as_a, rt.client(world["blue_key"]) as as_b, person(rt, ANN) as c:
        token = csrf(c, "/ui/agents")
        assert c.post("/ui/workspace", data={"workspace": blue, "csrf": token}).status_code == 303
        # another workspace's task, intent and agent: as unknown as missing ones, and unchanged
        r = c.post(f"/ui/tasks/{a['task']}", data={"csrf": token, "outcome": "approved"})
        assert r.status_code == 409 and status_of(as_a, a["task"]) == "WAITING"
        r = c.post(f"/ui/intents/{a['intent']}/cancel", data={"csrf": token, "confirm": "yes"})
        assert r.status_code == 404 and status_of(as_a, a["intent"]) == "SUBMITTED"
        r = c.post(f"/ui/mesh/{a['agent_id']}/kill", data={"csrf": token, "confirm": "yes"})
        assert r.status_code == 404
        assert as_a.get(f"/v1/mesh/agents/{a['agent_id']}").json()["agent"]["killed"] is False

        # blue's own: done in blue, the default workspace's rows untouched
        r = c.post(f"/ui/tasks/{b['task']}", data={"csrf": token, "outcome": "approved"})
        assert r.status_code == 303 and "answered=" in r.headers["location"]
        done = as_b.get(f"/v1/intents/{b['task']}").json()["intent"]
        assert done["status"] == "COMPLETED" and done["result"]["answered_by"] == f"actor://{blue}/{ANN}"
        assert status_of(as_a, a["task"]) == "WAITING"
        r = c.post(f"/ui/mesh/{b['agent_id']}/kill", data={"csrf": token, "confirm": "yes", "reason": "test"})
        assert r.status_code == 303, r.text
        assert as_b.get(f"/v1/mesh/agents/{b['agent_id']}").json()["agent"]["killed"] is True
        assert as_a.get(f"/v1/mesh/agents/{a['agent_id']}").json()["agent"]["killed"] is False
        assert f'data-address="{b["agent"]}"' in (page := c.get("/ui/mesh").text) and 'data-status="killed"' in page
        r = c.post(f"/ui/mesh/{b['agent_id']}/resume", data={"csrf": token, "confirm": "yes"})
        assert r.status_code == 303
        assert as_b.get(f"/v1/mesh/agents/{b['agent_id']}").json()["agent"]["killed"] is False
        r = c.post(f"/ui/intents/{b['intent']}/cancel", data={"csrf": token, "confirm": "yes"})
        assert r.status_code == 303 and status_of(as_b, b["intent"]) == "CANCELED"
        assert status_of(as_a, a["intent"]) == "SUBMITTED"

"""The dashboard in a workspace other than the runtime's default one, over HTTP against a real runtime on both
backends: the header says which workspace a session acts in; a person switches among the workspaces they are a
member of (a POST with the session's CSRF token, kept on the dashboard session; one without membership is refused);
a workspace's admin key stays in its own workspace (no switcher); the pages whose data is scoped (agents) show that
workspace's only, and the others say plainly that they are served only in the default workspace so far."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.auth_helpers import read_code
from tests.conftest import unique
from tests.runtime.ui.test_ui import csrf, login, ui_client
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


@pytest.fixture(scope="module")
def world(rt: RuntimeProcess) -> dict[str, Any]:
    """The default workspace with an agent, and two workspaces of a new org: blue (ann is a member, an agent) and
    green (ann is not)."""
    with rt.client() as api:
        org_id = api.post("/v1/organizations", json={"name": "Acme UI", "requested_by_actor_id": "boss@ui-ws.example"}
                          ).json()["organization"]["org_id"]
        made = {name: api.post(f"/v1/organizations/{org_id}/workspaces",
                               json={"name": name, "environment": "sandbox"}).json() for name in ("blue", "green")}
        blue = made["blue"]["workspace"]["workspace_id"]
        assert api.post(f"/v1/workspaces/{blue}/members/include", json={"actor_id": ANN}).status_code == 200
        a_agent = unique("a-agent")
        assert api.post("/v1/service-accounts", json={"name": a_agent}).status_code == 200
    b_agent = unique("b-agent")
    with rt.client(made["blue"]["key"]["token"]) as as_blue:
        sa = as_blue.post("/v1/service-accounts", json={"name": b_agent}).json()["service_account"]
        b_key = as_blue.post(f"/v1/service-accounts/{sa['service_account_id']}/keys", json={}).json()["key"]["token"]
    return {"org_id": org_id, "blue": blue, "green": made["green"]["workspace"]["workspace_id"],
            "blue_key": made["blue"]["key"]["token"], "a_agent": a_agent, "b_agent": b_agent, "b_agent_key": b_key}


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
        # the families not served in other workspaces yet: a plain page, never the default workspace's data
        for path in ("/ui/intents", "/ui/tasks", "/ui/scenarios", "/ui/schedules", "/ui/mesh"):
            refused = c.get(path)
            assert refused.status_code == 403 and "Not served in this workspace yet" in refused.text, path
            assert world["a_agent"] not in refused.text and 'action="/ui/workspace"' in refused.text
        assert c.get("/ui/live/counts").status_code == 403
        assert c.get("/ui/").headers["location"] == "/ui/agents"

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
        refused = c.get("/ui/intents")
        assert refused.status_code == 403 and "Not served in this workspace yet" in refused.text
        r = c.post("/ui/workspace", data={"workspace": "local/dev", "csrf": csrf(c, "/ui/agents")})
        assert r.status_code == 403 and "own workspace" in r.text
        assert acting_in(c.get("/ui/agents").text) == blue
    with login(rt, world["b_agent_key"]) as c:  # an agent key of blue sees itself only
        page = c.get("/ui/agents").text
        assert world["b_agent"] in page and world["a_agent"] not in page
        assert c.get("/ui/mesh").status_code == 403

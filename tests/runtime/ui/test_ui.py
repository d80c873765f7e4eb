"""The dashboard at /ui (issue 9), over HTTP against a real runtime on both backends, and in a real browser
(Debian's chromium, headless, driven by Playwright) for the live parts."""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agents_helper import FeedAgent
from tests.auth_helpers import read_code
from tests.cli.helpers import cli_invoke
from tests.conftest import ADMIN_KEY, make_agent, new_intent, unique
from tests.runtime_proc import TLS, RuntimeProcess

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = os.environ.get("AXME_UI_SCREENSHOTS")  # a folder: the browser test saves a PNG of each page there
XSS = "<script>alert('x')</script>"


def ui_client(rt: RuntimeProcess, **kwargs: Any) -> httpx.Client:
    return httpx.Client(verify=TLS, base_url=rt.url, timeout=30.0, follow_redirects=False, **kwargs)


@contextlib.contextmanager
def login(rt: RuntimeProcess, key: str = ADMIN_KEY) -> Iterator[httpx.Client]:
    """A browser-like client logged in to the dashboard with ``key`` (the cookie jar holds the session)."""
    with ui_client(rt) as c:
        r = c.get("/ui/login")
        assert r.status_code == 200 and "axme_ui_login" in c.cookies
        r = c.post("/ui/login", data={"csrf": c.cookies["axme_ui_login"], "api_key": key, "next": "/ui/agents"})
        assert r.status_code == 303, r.text
        assert r.headers["location"] == "/ui/agents" and "axme_ui" in c.cookies
        yield c


def csrf(c: httpx.Client, path: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', c.get(path).text)
    assert found, path
    return found.group(1)


def create(api: httpx.Client, body: dict[str, Any]) -> str:
    r = api.post("/v1/intents", json=body)
    assert r.status_code == 200, r.text
    return str(r.json()["intent_id"])


def status_of(api: httpx.Client, intent_id: str) -> str:
    return str(api.get(f"/v1/intents/{intent_id}").json()["intent"]["status"])


def task_body(**task: Any) -> dict[str, Any]:
    return {"intent_type": "ops.approve.v1", "correlation_id": str(uuid.uuid4()), "to_agent": "agent://agent_core",
            "payload": {"change": "CHG-1"}, "human_task": {"title": "Approve CHG-1", **task}}


def saga_bundle(names: dict[str, str]) -> dict[str, Any]:
    """The order saga of `axme examples run order-saga`, its agents renamed (they exist already)."""
    from axme_cli.examples import load

    bundle: dict[str, Any] = load("order-saga")
    for agent in bundle["agents"]:
        agent["address"] = names[agent["role"]]
        agent["create_if_missing"] = False
    return bundle


# ---------------------------------------------------------------------------------------------
# login, cookie, CSRF


def test_login_with_the_key_sets_a_strict_httponly_session_cookie(quiet: RuntimeProcess) -> None:
    with ui_client(quiet) as anon:
        r = anon.get("/ui/tasks?x=1")
        assert r.status_code == 303 and r.headers["location"] == "/ui/login?next=%2Fui%2Ftasks%3Fx%3D1"
        assert anon.get("/ui/live/counts").status_code == 401
        r = anon.get("/ui/login")
        r = anon.post("/ui/login", data={"csrf": anon.cookies["axme_ui_login"], "api_key": "wrong-key"})
        assert r.status_code == 401 and "invalid or revoked API key" in r.text and "axme_ui" not in anon.cookies
    c = ui_client(quiet)
    c.get("/ui/login")
    r = c.post("/ui/login", data={"csrf": c.cookies["axme_ui_login"], "api_key": ADMIN_KEY, "next": "//evil.example"})
    assert r.status_code == 303 and r.headers["location"] == "/ui/"  # only paths inside the dashboard
    cookie = next(v for v in r.headers.get_list("set-cookie") if v.startswith("axme_ui="))
    flags = [f.strip().lower() for f in cookie.split(";")]
    assert "httponly" in flags and "samesite=strict" in flags and "path=/ui" in flags and "secure" not in flags
    value = cookie.split(";")[0].split("=", 1)[1]
    assert ADMIN_KEY not in value and len(value) > 60  # a session reference, never the key
    assert ADMIN_KEY.encode() not in quiet.stored_bytes()
    page = c.get("/ui/intents")
    assert page.status_code == 200 and "workspace key · local/dev" in page.text and "Log out" in page.text
    for header in ("content-security-policy", "x-frame-options", "referrer-policy"):
        assert header in page.headers
    assert "script-src 'self'" in page.headers["content-security-policy"]
    # behind an https proxy (X-Forwarded-Proto from loopback, which uvicorn trusts) the cookie is Secure
    with ui_client(quiet, headers={"x-forwarded-proto": "https"}) as tls:
        r = tls.get("/ui/login")
        assert "secure" in [f.strip().lower() for f in r.headers["set-cookie"].split(";")]
        token = tls.cookies["axme_ui_login"]  # httpx keeps a Secure cookie from going out over http: send it
        r = tls.post("/ui/login", data={"csrf": token, "api_key": ADMIN_KEY},
                     headers={"cookie": f"axme_ui_login={token}"})
        cookie = next(v for v in r.headers.get_list("set-cookie") if v.startswith("axme_ui="))
        assert "secure" in [f.strip().lower() for f in cookie.split(";")]
    c.close()


def test_forms_without_the_csrf_token_or_from_another_site_are_refused(quiet: RuntimeProcess,
                                                                      api: httpx.Client) -> None:
    intent_id = create(api, new_intent(unique("nobody")))
    with login(quiet) as c:
        token = csrf(c, f"/ui/intents/{intent_id}/cancel")
        r = c.post(f"/ui/intents/{intent_id}/cancel", data={"confirm": "yes"})
        assert r.status_code == 403 and "CSRF" in r.text
        r = c.post(f"/ui/intents/{intent_id}/cancel", data={"confirm": "yes", "csrf": "x" * 64})
        assert r.status_code == 403
        r = c.post(f"/ui/intents/{intent_id}/cancel", data={"confirm": "yes", "csrf": token},
                   headers={"origin": "https://evil.example"})
        assert r.status_code == 403 and "another site" in r.text
        r = c.post(f"/ui/intents/{intent_id}/cancel", data={"confirm": "yes", "csrf": token},
                   headers={"sec-fetch-site": "cross-site"})
        assert r.status_code == 403
        assert status_of(api, intent_id) != "CANCELED"
        # the token of one session is worthless in another
        with login(quiet) as other:
            r = other.post(f"/ui/intents/{intent_id}/cancel", data={"confirm": "yes", "csrf": token})
            assert r.status_code == 403
        r = c.post("/ui/logout", data={"confirm": "yes"})
        assert r.status_code == 403  # logout is a form too
    with ui_client(quiet) as anon:  # the login form's double-submit token
        anon.get("/ui/login")
        r = anon.post("/ui/login", data={"csrf": "forged-" * 8, "api_key": ADMIN_KEY})
        assert r.status_code == 403 and "axme_ui" not in anon.cookies
    assert status_of(api, intent_id) != "CANCELED"


def test_logout_and_a_revoked_key_end_the_session(quiet: RuntimeProcess, api: httpx.Client) -> None:
    address, key = make_agent(api, unique("ui-revoked"))
    with login(quiet, key) as agent:
        assert agent.get("/ui/intents").status_code == 200
        sa = next(s for s in api.get("/v1/service-accounts").json()["service_accounts"]
                  if s["agent_address"] == address)
        key_id = api.get(f"/v1/service-accounts/{sa['service_account_id']}").json()["keys"][0]["key_id"]
        r = api.post(f"/v1/service-accounts/{sa['service_account_id']}/keys/{key_id}/revoke")
        assert r.status_code == 200, r.text
        assert agent.get("/ui/intents").status_code == 303  # back to the login page
    with login(quiet) as c:
        stolen = c.cookies["axme_ui"]
        r = c.post("/ui/logout", data={"csrf": csrf(c, "/ui/intents")})
        assert r.status_code == 303 and r.headers["location"] == "/ui/login"
    with ui_client(quiet, cookies={"axme_ui": stolen}) as replay:
        assert replay.get("/ui/intents").status_code == 303  # the session is gone server-side


def test_login_with_the_email_code(quiet: RuntimeProcess) -> None:
    email = f"{unique('ui')}@example.com"
    with ui_client(quiet) as c:
        c.get("/ui/login")
        token = c.cookies["axme_ui_login"]
        r = c.post("/ui/login/email", data={"csrf": token, "email": email, "next": "/ui/tasks"})
        assert r.status_code == 200 and "Enter the code" in r.text
        login_intent = re.search(r'name="login_intent" value="([^"]+)"', r.text)
        assert login_intent
        form = {"csrf": token, "email": email, "login_intent": login_intent.group(1), "next": "/ui/tasks"}
        r = c.post("/ui/login/code", data={**form, "code": "000000" if read_code(quiet.mail_dir, email) != "000000"
                                           else "111111"})
        assert r.status_code == 422 and "wrong code" in r.text
        r = c.post("/ui/login/code", data={**form, "code": read_code(quiet.mail_dir, email)})
        assert r.status_code == 303 and r.headers["location"] == "/ui/tasks"
        page = c.get("/ui/tasks")
        assert page.status_code == 200 and email in page.text
        r = c.post("/ui/logout", data={"csrf": csrf(c, "/ui/tasks")})
        assert r.status_code == 303 and c.get("/ui/tasks").status_code == 303


# ---------------------------------------------------------------------------------------------
# pages


def test_every_page_renders_with_escaped_content_and_masked_secrets(quiet: RuntimeProcess, api: httpx.Client) -> None:
    payload = {"note": XSS, "password": "hunter2-secret", "auth": {"api_key": "sk-live-123", "Authorization": "B x"},
               "items": [{"token": "tok-999", "sku": "A-1"}]}
    intent_id = create(api, new_intent(unique("xss-agent"), payload=payload, intent_type="xss.test.v1"))
    task_id = create(api, task_body(title=f"Approve {XSS}", description=XSS))
    names = {role: unique(role) for role in ("inventory", "payment", "shipping")}
    for name in names.values():
        make_agent(api, name)
    applied = api.post("/v1/scenarios/apply", json=saga_bundle(names)).json()
    workflow_id = api.get(f"/v1/intents/{applied['intent_id']}").json()["intent"]["workflow"]["workflow_id"]
    with login(quiet) as c:
        pages = ["/ui/intents", "/ui/intents?status=open&type=xss.test.v1&age=1h&agent=" + names["inventory"],
                 f"/ui/intents?q={intent_id[:13]}", f"/ui/intents/{intent_id}", f"/ui/intents/{intent_id}/cancel",
                 f"/ui/intents/{intent_id}/resume", f"/ui/intents/{applied['intent_id']}", "/ui/tasks",
                 "/ui/scenarios", f"/ui/scenarios/{workflow_id}", "/ui/agents", f"/ui/intents/{task_id}"]
        for path in pages:
            r = c.get(path)
            assert r.status_code == 200, (path, r.text[:500])
            assert "<script>alert" not in r.text, path
            assert r.text.count("<script") == 1, path  # only the dashboard's own script tag
        page = c.get(f"/ui/intents/{intent_id}").text
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
        for secret in ("hunter2-secret", "sk-live-123", "tok-999", "B x"):
            assert secret not in page
        assert page.count("•••") >= 4 and "A-1" in page
        assert "Held by" in page and "Cancel…" in page
        assert c.get(f"/ui/intents?q={intent_id}").headers["location"] == f"/ui/intents/{intent_id}"
        listed = c.get("/ui/intents?type=xss.test.v1").text
        assert intent_id in listed and task_id not in listed
        assert "xss.test.v1" in c.get(f"/ui/intents?q={intent_id[:20]}").text
        assert "unknown status" in c.get("/ui/intents?status=bogus").text
        tasks = c.get("/ui/tasks").text
        assert "Approve &lt;script&gt;" in tasks and f'action="/ui/tasks/{task_id}"' in tasks
        graph = c.get(f"/ui/scenarios/{workflow_id}").text
        assert 'class="edge ok"' in graph and 'class="edge undo"' in graph and "undo: order.payment.refund.v1" in graph
        assert "on_success → charge" in graph and "compensation → payment" in graph
        parent = c.get(f"/ui/intents/{applied['intent_id']}").text
        assert "order.saga.v1" in parent and 'class="waterfall"' in parent
        parts = c.get(f"/ui/intents/{intent_id}/parts").json()
        assert set(parts["parts"]) >= {"header", "holder", "actions", "workflow", "data"}
        assert "hunter2" not in json.dumps(parts)
        agents = c.get("/ui/agents").text
        assert names["shipping"] in agents and "not connected" in agents
        assert c.get(f"/ui/intents/{uuid.uuid4()}").status_code == 404
        assert c.get("/ui/static/ui.js").headers["content-type"].startswith("text/javascript")
        assert c.get("/ui/static/../app.py").status_code == 404


def test_an_agent_key_sees_only_what_the_api_shows_it(quiet: RuntimeProcess, api: httpx.Client) -> None:
    address, key = make_agent(api, unique("ui-scoped"))
    mine = create(api, new_intent(address, payload={"mine": True}))
    other = create(api, new_intent(unique("someone-else")))
    task_id = create(api, task_body())
    with login(quiet, key) as c:
        listed = c.get("/ui/intents").text
        assert mine in listed and other not in listed and task_id not in listed
        assert c.get(f"/ui/intents/{mine}").status_code == 200
        for path in (f"/ui/intents/{other}", f"/ui/intents/{other}/cancel", f"/ui/intents/{other}/parts",
                     f"/ui/intents/{other}/events"):
            assert c.get(path).status_code == 404, path
        assert c.get(f"/ui/intents?q={other}").status_code == 200  # no redirect to what it may not see
        assert c.get("/ui/tasks").status_code == 403
        r = c.post(f"/ui/tasks/{task_id}", data={"csrf": csrf(c, "/ui/intents"), "outcome": "approved"})
        assert r.status_code == 403 and status_of(api, task_id) == "WAITING"
        agents = c.get("/ui/agents").text
        assert address in agents and "someone-else" not in agents
        counts = re.search(r'data-count="total">(\d+)<', listed)
        assert counts and int(counts.group(1)) == 1
        assert "No scenario has run yet" in c.get("/ui/scenarios").text  # the saga runs of others are not shown


def test_the_schedules_page_lists_schedules_to_members(quiet: RuntimeProcess, api: httpx.Client) -> None:
    body = {"cron": "*/15 * * * *", "timezone": "America/New_York", "description": f"nightly {XSS}",
            "intent": {"intent_type": "report.nightly.v1", "to_agent": unique("reporter"), "payload": {}}}
    r = api.post("/v1/schedules", json=body)
    assert r.status_code == 200, r.text
    schedule = r.json()["schedule"]
    run = api.post(f"/v1/schedules/{schedule['schedule_id']}/trigger").json()["run"]["intent_id"]
    with login(quiet) as c:
        page = c.get("/ui/schedules")
        assert page.status_code == 200, page.text[:500]
        text = page.text
        assert '<a href="/ui/schedules" class="on">Schedules</a>' in text  # in the nav bar, as the current page
        assert f'data-schedule="{schedule["schedule_id"]}"' in text and "<code>*/15 * * * *</code>" in text
        assert "America/New_York" in text and "report.nightly.v1 → agent://" in text
        assert f'href="/ui/intents/{run}"' in text and schedule["next_fire_at"] in text
        assert "<script>alert" not in text and "nightly &lt;script&gt;" in text
        assert text.count("<script") == 1
        assert 'href="/ui/schedules"' in c.get("/ui/intents").text  # every page links to it
    _, key = make_agent(api, unique("ui-scheduler"))
    with login(quiet, key) as c:
        refused = c.get("/ui/schedules")
        assert refused.status_code == 403 and schedule["schedule_id"] not in refused.text


def test_cancel_needs_its_confirmation(quiet: RuntimeProcess, api: httpx.Client) -> None:
    intent_id = create(api, new_intent(unique("to-cancel")))
    with login(quiet) as c:
        page = c.get(f"/ui/intents/{intent_id}").text
        assert f'href="/ui/intents/{intent_id}/cancel"' in page
        confirm = c.get(f"/ui/intents/{intent_id}/cancel")
        assert confirm.status_code == 200 and "Cancel this intent?" in confirm.text and 'value="yes"' in confirm.text
        assert status_of(api, intent_id) == "SUBMITTED"  # a GET changes nothing
        token = csrf(c, f"/ui/intents/{intent_id}/cancel")
        r = c.post(f"/ui/intents/{intent_id}/cancel", data={"csrf": token, "reason": "no"})
        assert r.status_code == 400 and "confirm" in r.text and status_of(api, intent_id) == "SUBMITTED"
        r = c.post(f"/ui/intents/{intent_id}/cancel", data={"csrf": token, "reason": "not needed", "confirm": "yes"})
        assert r.status_code == 303 and r.headers["location"] == f"/ui/intents/{intent_id}"
        intent = api.get(f"/v1/intents/{intent_id}").json()["intent"]
        assert intent["status"] == "CANCELED" and intent["error"]["reason"] == "not needed"
        # a canceled intent is sent again with Retry (as `axme intents retry`)
        r = c.post(f"/ui/intents/{intent_id}/retry", data={"csrf": token, "confirm": "yes"})
        assert r.status_code == 303
        new_id = r.headers["location"].rsplit("/", 1)[1]
        assert new_id != intent_id and status_of(api, new_id) == "SUBMITTED"
        r = c.post(f"/ui/intents/{intent_id}/cancel", data={"csrf": token, "confirm": "yes"})
        assert r.status_code == 409 and "already CANCELED" in r.text
        # resume as the workspace key, with result fields
        r = c.post(f"/ui/intents/{new_id}/resume", data={"csrf": token, "confirm": "yes", "action": "complete",
                                                         "data": '{"done": 1}'})
        assert r.status_code == 303
        assert api.get(f"/v1/intents/{new_id}").json()["intent"]["result"] == {"done": 1}


def test_a_task_is_answered_in_place_with_the_api_rules(quiet: RuntimeProcess, api: httpx.Client) -> None:
    schema = {"type": "object", "required": ["ticket"], "properties": {"ticket": {"type": "integer"}}}
    task_id = create(api, task_body(title="Deploy?", form_schema=schema, required_comment=True))
    with login(quiet) as c:
        token = csrf(c, "/ui/tasks")
        form = {"csrf": token, "outcome": "approved", "comment": "ok"}
        r = c.post(f"/ui/tasks/{task_id}", data={**form, "comment": ""})
        assert r.status_code == 422 and "requires a comment" in r.text
        r = c.post(f"/ui/tasks/{task_id}", data=form)
        assert r.status_code == 422 and "ticket" in r.text and status_of(api, task_id) == "WAITING"
        r = c.post(f"/ui/tasks/{task_id}", data={**form, "outcome": "maybe", "f.ticket": "7"})
        assert r.status_code == 422 and "not one of" in r.text
        r = c.post(f"/ui/tasks/{task_id}", data={**form, "f.ticket": "7"})
        assert r.status_code == 303 and "answered=" in r.headers["location"]
        assert "Answered" in c.get(r.headers["location"]).text
        intent = api.get(f"/v1/intents/{task_id}").json()["intent"]
        assert intent["status"] == "COMPLETED" and intent["result"]["ticket"] == 7
        assert intent["result"]["answered_by"].startswith("initiator://")
        r = c.post(f"/ui/tasks/{task_id}", data={**form, "f.ticket": "7"})
        assert r.status_code == 409


def test_the_live_streams_send_masked_events_and_counts(quiet: RuntimeProcess, api: httpx.Client) -> None:
    intent_id = create(api, new_intent(unique("live"), payload={"secret": "s3cr3t"}))
    r = api.post(f"/v1/intents/{intent_id}/resolve", json={"status": "COMPLETED", "result": {"token": "t0k3n",
                                                                                              "ok": True}})
    assert r.status_code == 200
    with login(quiet) as c:
        with c.stream("GET", f"/ui/intents/{intent_id}/events?since=0") as s:
            assert s.status_code == 200 and s.headers["content-type"].startswith("text/event-stream")
            text = "".join(s.iter_text())
        data = [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]
        assert [d["event_type"] for d in data][-1] == "intent.completed"
        assert "event:" not in text  # unnamed frames: the page's onmessage gets them
        assert "t0k3n" not in text and "s3cr3t" not in text
        with c.stream("GET", "/ui/live/counts") as s:
            for line in s.iter_lines():
                if line.startswith("data:"):
                    counts = json.loads(line[5:])
                    break
        assert counts["counts"]["COMPLETED"] >= 1 and counts["total"] == sum(counts["counts"].values())


def test_axme_ui_prints_the_dashboard_url(tmp_path: Path) -> None:
    env = {"AXME_CONFIG_DIR": str(tmp_path / "cfg"), "NO_COLOR": "1", "AXME_BASE_URL": None}
    out = cli_invoke(["ui", "--print", "--base-url", "http://127.0.0.1:9"], env=env)
    assert out.exit_code == 0 and out.stdout.strip() == "http://127.0.0.1:9/ui/", out.output
    out = cli_invoke(["ui", "--json", "--base-url", "http://127.0.0.1:9/"], env=env)
    assert out.exit_code == 0 and json.loads(out.stdout)["url"] == "http://127.0.0.1:9/ui/", out.output


def test_axme_dev_prints_the_dashboard_link(tmp_path: Path) -> None:
    rt = RuntimeProcess(tmp_path).start()  # the banner is the process's own output
    try:
        log = rt.log.read_text()
    finally:
        rt.stop()
    assert f"Dashboard  {rt.url}/ui/" in log


# ---------------------------------------------------------------------------------------------
# a real browser


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"{CHROMIUM} is missing: the dashboard's browser test needs Debian's chromium "
                    "(`apt-get install -y chromium`; ./test.sh installs it when it runs as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def _shot(page: Any, name: str, *, full: bool = True, selector: str | None = None) -> None:
    """A PNG of the page (or of one element) into $AXME_UI_SCREENSHOTS, for docs/screenshots."""
    if not SCREENSHOTS:
        return
    Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
    path = Path(SCREENSHOTS) / f"{name}.png"
    if selector:
        page.locator(selector).screenshot(path=str(path))
    else:
        page.screenshot(path=str(path), full_page=full)
    assert path.stat().st_size < 300_000, f"{path} is {path.stat().st_size} bytes"


def _demo(delivery: dict[str, Any]) -> dict[str, Any]:
    """The demo services' handler (axme_cli/agents/demo.py), answered as `axme agents run --handler` answers."""
    from axme_cli.agents import demo

    try:
        return {**demo.handle(delivery), "action": "complete"}
    except RuntimeError as exc:
        return {"action": "fail", "reason": str(exc)}


def _demo_agents(rt: RuntimeProcess, names: dict[str, str], keys: dict[str, tuple[str, str]]) -> list[FeedAgent]:
    """The demo services of `axme examples run order-saga --fail-at shipping` (AXME_DEMO_* in the environment), as
    threads of this process: what the page shows comes from the runtime, however the agents run."""
    agents = [FeedAgent(rt.url, keys[role][1], names[role], _demo) for role in keys]
    for agent in agents:
        agent.start()
    return agents


@pytest.mark.slow(seconds=11)
@pytest.mark.backends("sqlite")  # the page and its live parts; the API under it is tested on both backends
def test_in_a_browser_compensations_appear_live_and_a_task_is_approved(
        quiet: RuntimeProcess, api: httpx.Client, browser: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AXME_DEMO_DELAY", "0.2")
    monkeypatch.setenv("AXME_DEMO_FAIL_AT", "shipping")
    names = {role: unique(role) for role in ("inventory", "payment", "shipping")}
    keys = {role: make_agent(api, name) for role, name in names.items()}
    applied = api.post("/v1/scenarios/apply", json=saga_bundle(names))
    assert applied.status_code == 200, applied.text
    parent = applied.json()["intent_id"]
    refund = {"type": "object", "properties": {"refund_cents": {"type": "integer", "title": "Refund (cents)"}}}
    task_id = create(api, task_body(title="Refund order ord_98765?", description="The shipment failed; refund?",
                                    form_schema=refund))
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    agents: list[FeedAgent] = []
    try:
        page.goto(f"{quiet.url}/ui/intents/{parent}")
        assert "/ui/login" in page.url
        _shot(page, "login")
        page.fill("#api_key", ADMIN_KEY)
        page.click("form[action='/ui/login'] button[type=submit]")
        page.wait_for_url(f"**/ui/intents/{parent}")
        page.evaluate("window.__notReloaded = true")
        compensated = "#timeline tr[data-event='intent.compensated']"
        assert page.locator(compensated).count() == 0  # nothing has run: the agents are not started yet
        agents = _demo_agents(quiet, names, keys)
        page.locator(compensated).nth(1).wait_for(timeout=30_000)
        page.wait_for_selector("#timeline tr[data-event='intent.failed']", timeout=15_000)
        assert page.evaluate("window.__notReloaded") is True  # the rows came live, without a reload
        undone = page.locator(f"{compensated} td.details").all_inner_texts()
        assert any('"step_id":"charge"' in t for t in undone) and any('"step_id":"reserve"' in t for t in undone)
        page.wait_for_selector("#part-workflow g.bar[data-kind='undo'][data-status='UNDONE']", timeout=10_000)
        page.wait_for_selector("#part-header [data-status='FAILED']", timeout=10_000)
        assert status_of(api, parent) == "FAILED"
        _shot(page, "intent", full=False)
        _shot(page, "timeline", selector="#timeline")
        page.goto(f"{quiet.url}/ui/agents")
        assert page.locator(f"tr[data-address$='/{names['payment']}'] .conn.on").count() == 1
        _shot(page, "agents")
        page.goto(f"{quiet.url}/ui/intents")
        page.wait_for_selector("#counts [data-count='FAILED']")
        _shot(page, "intents")
        page.click(f"a[href='/ui/intents/{parent}']")
        page.click("a[href^='/ui/scenarios/']")
        page.wait_for_selector("svg.graph")
        _shot(page, "scenario")
        page.goto(f"{quiet.url}/ui/tasks")
        card = page.locator(f"#task-{task_id}")
        assert card.count() == 1
        _shot(page, "tasks")
        card.locator("textarea[name=comment]").fill("refund it")
        card.locator("input[name='f.refund_cents']").fill("135898")
        card.locator("button[value=approved]").click()
        page.wait_for_selector(".done")
        assert "approved" in page.inner_text(".done")
        intent = api.get(f"/v1/intents/{task_id}").json()["intent"]
        assert intent["status"] == "COMPLETED" and intent["result"]["comment"] == "refund it"
        assert intent["result"]["refund_cents"] == 135898
        # the mesh page's kill switch, through its confirmation (tests/runtime/ui/test_mesh_ui.py has the rest)
        page.goto(f"{quiet.url}/ui/mesh")
        row = f"tr[data-address$='/{names['shipping']}']"
        _shot(page, "mesh")
        page.click(f"{row} a.button.danger")
        page.wait_for_selector("form.confirm")
        assert api.get(f"/v1/mesh/agents/{names['shipping']}").json()["agent"]["status"] == "active"
        page.fill("#reason", "fails every shipment")
        page.click("button[value=yes]")
        page.wait_for_selector(f"{row} [data-status='killed']")
        assert api.get(f"/v1/mesh/agents/{names['shipping']}").json()["agent"]["kill_reason"] == "fails every shipment"
    finally:
        for agent in agents:
            agent.stop_event.set()
        for agent in agents:
            agent.stop()
        context.close()


def test_axme_server_serves_the_dashboard_too(tmp_path: Path) -> None:
    rt = RuntimeProcess(tmp_path, command="server", database_url=f"sqlite:///{tmp_path / 'server.db'}").start()
    try:
        assert f"Dashboard  {rt.url}/ui/" in rt.log.read_text()
        with login(rt) as c:
            assert c.get("/ui/intents").status_code == 200
    finally:
        rt.stop()

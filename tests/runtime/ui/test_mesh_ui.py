"""The dashboard's mesh page (/ui/mesh) over HTTP on both backends: agents with their health, status and metrics,
the latest events, the kill switch behind a confirmation page (a GET changes nothing, a POST without the
confirmation or the CSRF token is refused), an agent key seeing only itself and killing nothing. In a real
browser, the kill switch is clicked through its confirmation at the end of tests/runtime/ui/test_ui.py's browser
test (one browser start for the dashboard's tests)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import make_agent, new_intent, unique
from tests.runtime.ui.test_ui import XSS, csrf, login
from tests.runtime_proc import RuntimeProcess


def mesh_agent(admin: httpx.Client, address: str) -> dict[str, Any]:
    return dict(admin.get(f"/v1/mesh/agents/{address}").json()["agent"])


def test_the_mesh_page_shows_health_and_kills_behind_a_confirmation(runtime: RuntimeProcess,
                                                                   admin: httpx.Client) -> None:
    r = admin.post("/v1/service-accounts", json={"name": unique("ui-mesh"), "display_name": f"Mesh {XSS}"})
    sa = r.json()["service_account"]
    address, sa_id = sa["agent_address"], sa["service_account_id"]
    key = admin.post(f"/v1/service-accounts/{sa_id}/keys", json={}).json()["key"]["token"]
    beat = httpx.post(f"{runtime.url}/v1/mesh/heartbeat", headers={"x-api-key": key},
                      json={"metrics": {"queue": 7, "note": XSS}})
    assert beat.status_code == 200, beat.text
    with login(runtime) as c:
        page = c.get("/ui/mesh")
        assert page.status_code == 200, page.text[:500]
        text = page.text
        assert '<a href="/ui/mesh" class="on">Mesh</a>' in text  # in the nav bar, as the current page
        row = text[text.index(f'<tr data-address="{address}">'):]
        row = row[:row.index("</tr>")]
        assert 'data-health="healthy"' in row and 'data-status="active"' in row and "queue" in row
        assert f'href="/ui/mesh/{sa_id}/kill"' in row
        assert "<script>alert" not in text and "Mesh &lt;script&gt;" in text and text.count("<script") == 1
        assert 'href="/ui/mesh"' in c.get("/ui/intents").text  # every page links to it

        confirm = c.get(f"/ui/mesh/{sa_id}/kill")
        assert confirm.status_code == 200 and "Kill this agent?" in confirm.text and 'value="yes"' in confirm.text
        assert mesh_agent(admin, address)["status"] == "active"  # a GET changes nothing
        token = csrf(c, f"/ui/mesh/{sa_id}/kill")
        r = c.post(f"/ui/mesh/{sa_id}/kill", data={"csrf": token, "reason": "no"})
        assert r.status_code == 400 and "confirm" in r.text and mesh_agent(admin, address)["status"] == "active"
        r = c.post(f"/ui/mesh/{sa_id}/kill", data={"reason": "x", "confirm": "yes"})
        assert r.status_code == 403 and mesh_agent(admin, address)["status"] == "active"
        r = c.post(f"/ui/mesh/{sa_id}/kill", data={"csrf": token, "reason": "runaway", "confirm": "yes"})
        assert r.status_code == 303 and r.headers["location"] == "/ui/mesh"
        killed = mesh_agent(admin, address)
        assert killed["status"] == "killed" and killed["kill_reason"] == "runaway"
        assert admin.post("/v1/intents", json=new_intent(unique("x"), from_agent=address)).status_code == 403
        text = c.get("/ui/mesh").text
        assert f'href="/ui/mesh/{sa_id}/resume"' in text and 'data-event="agent.killed"' in text
        r = c.post(f"/ui/mesh/{sa_id}/resume", data={"csrf": token, "confirm": "yes"})
        assert r.status_code == 303 and mesh_agent(admin, address)["status"] == "active"
        assert c.get("/ui/mesh/not-an-id/kill").status_code == 404
        assert c.get(f"/ui/mesh/{sa_id}/explode").status_code == 404

    other, _ = make_agent(admin, unique("ui-mesh-other"))
    with login(runtime, key) as c:  # an agent key: itself only, no kill switch
        text = c.get("/ui/mesh").text
        assert f'data-address="{address}"' in text and other not in text and "/kill" not in text
        assert c.get(f"/ui/mesh/{sa_id}/kill").status_code == 403
        r = c.post(f"/ui/mesh/{sa_id}/kill", data={"csrf": csrf(c, "/ui/mesh"), "confirm": "yes"})
        assert r.status_code == 403 and mesh_agent(admin, address)["status"] == "active"

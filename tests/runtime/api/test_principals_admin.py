"""/v1/principals over a real runtime: registered principals (an address of their own, or an agent's), agents with a
service account answering as principals by address or name, who may register and read them, another workspace's
ids and addresses as 404, and bad input refused naming the field."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.auth_helpers import bearer, login
from tests.conftest import make_agent, unique
from tests.runtime_proc import RuntimeProcess


def test_a_principal_gets_an_address_of_its_own_or_an_agents(quiet: RuntimeProcess, api: httpx.Client) -> None:
    r = api.post("/v1/principals", json={"org_id": "local", "workspace_id": "dev", "principal_type": "user",
                                         "display_name": "Dana", "metadata": {"team": "ops"}})
    assert r.status_code == 200, r.text
    dana = r.json()["principal"]
    uuid.UUID(dana["principal_id"])
    assert dana["address"] == "agent://local/dev/principal-" + dana["principal_id"].replace("-", "")
    assert (dana["principal_type"], dana["display_name"], dana["status"], dana["metadata"]) == (
        "user", "Dana", "active", {"team": "ops"})
    assert (dana["org_id"], dana["workspace_id"]) == ("local", "dev")
    assert api.get(f"/v1/principals/{dana['principal_id']}").json()["principal"] == dana

    # an agent may be registered as a principal; then its address names that principal
    name = unique("pr-agent")
    address, _ = make_agent(api, name)
    made = api.post("/v1/principals", json={"principal_type": "service_agent", "address": name}).json()["principal"]
    assert made["address"] == address
    for ref in (name, address, made["principal_id"]):
        assert api.get(f"/v1/principals/{ref}").json()["principal"] == made, ref
    r = api.post("/v1/principals", json={"principal_type": "service_agent", "address": address})
    assert r.status_code == 409 and r.json()["error"]["code"] == "principal_exists", r.text
    assert r.json()["error"]["details"]["principal_id"] == made["principal_id"]


def test_an_agent_answers_as_a_principal_without_registering(api: httpx.Client) -> None:
    name = unique("pr-plain")
    address, _ = make_agent(api, name)
    view = api.get(f"/v1/principals/{name}").json()["principal"]
    assert (view["principal_id"], view["address"], view["principal_type"], view["status"]) == (
        address, address, "service_account", "active")
    assert api.get(f"/v1/principals/{address}").json()["principal"] == view  # the address, unencoded, in the path
    assert view["metadata"]["service_account_id"]


def test_who_may_register_and_read(quiet: RuntimeProcess, api: httpx.Client) -> None:
    name = unique("pr-own")
    address, token = make_agent(api, name)
    other, _ = make_agent(api, unique("pr-other"))
    with quiet.client(token) as agent:
        r = agent.post("/v1/principals", json={"principal_type": "user"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "policy_denied", r.text
        assert agent.get(f"/v1/principals/{name}").json()["principal"]["address"] == address
        r = agent.get(f"/v1/principals/{other}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "principal_not_found", r.text
    person = login(api, quiet.mail_dir, f"{unique('registrar')}@example.com")
    r = api.post("/v1/principals", json={"principal_type": "service_account"},
                 headers=bearer(person["access_token"]))
    assert r.status_code == 200, r.text
    assert api.get(f"/v1/principals/{r.json()['principal']['principal_id']}").status_code == 200


def test_an_idempotency_key_registers_once(api: httpx.Client) -> None:
    body = {"principal_type": "user", "display_name": "Once"}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = api.post("/v1/principals", json=body, headers=key).json()["principal"]
    assert api.post("/v1/principals", json=body, headers=key).json()["principal"] == first
    r = api.post("/v1/principals", json={**body, "display_name": "Twice"}, headers=key)
    assert r.status_code == 409 and r.json()["error"]["code"] == "idempotency_conflict", r.text


def test_another_workspace_is_not_found(api: httpx.Client) -> None:
    for field in ("org_id", "workspace_id"):
        r = api.post("/v1/principals", json={"principal_type": "user", field: "elsewhere"})
        assert r.status_code == 404 and r.json()["error"]["details"]["field"] == field, r.text
    for ref in ("agent://elsewhere/dev/inventory", "agent://local/prod/inventory", str(uuid.uuid4()), "nobody-here"):
        r = api.get(f"/v1/principals/{ref}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "principal_not_found", (ref, r.text)


@pytest.mark.parametrize(("body", "field"), [
    pytest.param({"principal_type": "robot"}, "principal_type", marks=pytest.mark.backends("sqlite")),
    pytest.param({}, "principal_type", marks=pytest.mark.backends("sqlite")),
    pytest.param({"principal_type": "user", "display_name": ""}, "display_name", marks=pytest.mark.backends("sqlite")),
    pytest.param({"principal_type": "user", "metadata": []}, "metadata", marks=pytest.mark.backends("sqlite")),
    pytest.param({"principal_type": "user", "nickname": "x"}, "nickname", marks=pytest.mark.backends("sqlite")),
    ({"principal_type": "user", "address": "agent://elsewhere/dev/x"}, "address"),
    ({"principal_type": "user", "address": "Not A Name"}, "address"),
    ({"principal_type": "user", "address": "agent_core"}, "address"),
])
def test_bad_input_names_the_field(api: httpx.Client, body: dict[str, object], field: str) -> None:
    r = api.post("/v1/principals", json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    named = error["details"].get("field") or error["details"]["errors"][0]["field"]
    assert named == field, error

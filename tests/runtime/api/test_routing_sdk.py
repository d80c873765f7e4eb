"""The official Python SDK (`axme` 0.2.0, unchanged) through the principals, aliases, routing and transports
families against the runtime: each method called as a client calls it, each answer checked for what the SDK's
callers read and against AXME's JSON Schema (axp-spec public_api), and an intent sent to the alias it bound
delivered where routing/resolve said it would go. Every public method of these families is called (the walk of
the other families is tests/sdk/test_sdk_walk.py)."""

from __future__ import annotations

import inspect
import json
import uuid
from functools import cache
from typing import Any

import pytest
from axme_sdk import AxmeClient, AxmeClientConfig
from axme_sdk.exceptions import AxmeHttpError
from jsonschema import Draft202012Validator

from tests.conftest import ADMIN_KEY, SHARED, make_agent, unique
from tests.receiver import Receiver, poll
from tests.runtime_proc import RuntimeProcess
from tests.sdk.test_sdk_walk import Recorder

FAMILIES = {
    "principals": {"create_principal", "get_principal"},
    "aliases": {"bind_alias", "list_aliases", "revoke_alias", "resolve_alias"},
    "routing": {"register_routing_endpoint", "list_routing_endpoints", "update_routing_endpoint",
                "remove_routing_endpoint", "resolve_routing"},
    "transports": {"upsert_transport_binding", "list_transport_bindings", "remove_transport_binding"},
}


@cache
def _schema(name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((SHARED / "axp-spec" / "schemas" / "public_api" / f"api.{name}.v1.json")
                                           .read_text()))


def spec(name: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` against axp-spec's schema: every required field, of its type and values. Fields beyond the schema's
    (``address``, ``source``, ``signing_secret``) and formats (``org_id`` is this runtime's name) are let through,
    as in tests/sdk/test_sdk_walk.py."""
    problems = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                for e in _schema(name).iter_errors(body) if e.validator != "additionalProperties"]
    assert not problems, f"{name}:\n  " + "\n  ".join(problems)
    return body


@pytest.mark.backends("sqlite")
def test_the_sdk_names_routes_and_reaches_a_principal(quiet: RuntimeProcess) -> None:
    called: set[str] = set()
    sdk = Recorder(AxmeClient(AxmeClientConfig(base_url=quiet.url, api_key=ADMIN_KEY, max_retries=0)), called)
    org, workspace = "local", "dev"
    with quiet.client() as api:
        agent_name = unique("sdk-desk")
        agent_address, _ = make_agent(api, agent_name)

    # principals: a registered one, and an agent answering as one
    made = spec("principals.create.response", sdk.create_principal(
        {"org_id": org, "workspace_id": workspace, "principal_type": "service_agent", "display_name": "Billing",
         "metadata": {"cost_center": "42"}}, idempotency_key=uuid.uuid4().hex))
    billing = made["principal"]
    assert billing["display_name"] == "Billing" and billing["metadata"] == {"cost_center": "42"}
    got = spec("principals.get.response", sdk.get_principal(billing["principal_id"]))
    assert got["principal"] == billing
    agent = spec("principals.get.response", sdk.get_principal(agent_name))["principal"]
    assert agent["principal_id"] == agent_address and agent["principal_type"] == "service_account"

    # aliases
    spoken = f"billing-{uuid.uuid4().hex[:6]}@corp.example"
    bound = spec("aliases.bind.response", sdk.bind_alias(
        {"principal_id": billing["principal_id"], "alias": spoken, "alias_type": "communication"}))["alias"]
    assert bound["principal_id"] == billing["principal_id"] and bound["status"] == "active"
    listed = spec("aliases.list.response", sdk.list_aliases(org_id=org, workspace_id=workspace))
    assert bound["alias_id"] in {a["alias_id"] for a in listed["aliases"]}
    resolved = spec("aliases.resolve.response", sdk.resolve_alias(org_id=org, workspace_id=workspace, alias=spoken))
    assert resolved["resolution"]["principal"]["principal_id"] == billing["principal_id"]

    with Receiver() as receiver:
        # routing: a route for the principal; resolve says where intents go, and they go there
        route = spec("routing.endpoints.register.response", sdk.register_routing_endpoint(
            {"principal_id": billing["principal_id"], "transport_type": "http", "endpoint_url": receiver.url,
             "auth_mode": "signed_key", "region": "eu-1", "priority": 10}, idempotency_key=uuid.uuid4().hex))
        receiver.secret = route["signing_secret"]
        route_id = route["route"]["route_id"]
        routes = spec("routing.endpoints.list.response", sdk.list_routing_endpoints(org_id=org, workspace_id=workspace))
        assert route_id in {r["route_id"] for r in routes["routes"]}
        updated = spec("routing.endpoints.update.response", sdk.update_routing_endpoint(
            route_id, {"health_status": "healthy", "metadata": {"tier": "gold"}}))
        assert updated["route"]["health_status"] == "healthy" and updated["route"]["metadata"] == {"tier": "gold"}
        resolution = spec("routing.resolve.response", sdk.resolve_routing(
            {"org_id": org, "workspace_id": workspace, "alias": spoken}))["resolution"]
        assert resolution["selected_route"]["route_id"] == route_id
        assert resolution["principal"]["principal_id"] == billing["principal_id"]
        intent_id = sdk.send_intent({"intent_type": "invoice.send.v1", "to_agent": spoken, "payload": {"n": 1}})
        [post] = receiver.wait_posts(1)
        assert post["signed"] and post["json"]["intent_id"] == intent_id
        assert post["json"]["to_alias"] == {"alias_id": bound["alias_id"], "alias": spoken}
        poll(lambda: sdk.get_intent(intent_id)["intent"]["status"], lambda status: status == "DELIVERED")
        removed = spec("routing.endpoints.remove.response", sdk.remove_routing_endpoint(route_id))
        assert removed["route"] == {"route_id": route_id, "removed": True}

        # transports: the agent bound to the receiver as a webhook
        binding = spec("transports.bindings.upsert.response", sdk.upsert_transport_binding(
            {"principal_id": agent_address, "transport_type": "webhook", "transport_handle": receiver.url,
             "priority": 5}))["binding"]
        assert binding["principal_id"] == agent_address and binding["status"] == "active"
        bindings = spec("transports.bindings.list.response", sdk.list_transport_bindings(
            org_id=org, workspace_id=workspace))
        assert binding["binding_id"] in {b["binding_id"] for b in bindings["bindings"]}
        resolution = spec("routing.resolve.response", sdk.resolve_routing(
            {"org_id": org, "workspace_id": workspace, "principal_id": agent_address}))["resolution"]
        assert resolution["selected_route"]["route_id"] == binding["binding_id"]
        gone = spec("transports.bindings.remove.response", sdk.remove_transport_binding(binding["binding_id"]))
        assert gone["binding"] == {"binding_id": binding["binding_id"], "removed": True}

    revoked = spec("aliases.revoke.response", sdk.revoke_alias(bound["alias_id"]))
    assert revoked["alias"]["status"] == "revoked" and revoked["alias"]["revoked_at"]
    with pytest.raises(AxmeHttpError) as missing:
        sdk.resolve_alias(org_id=org, workspace_id=workspace, alias=spoken)
    assert missing.value.status_code == 404

    public = {name for name, _ in inspect.getmembers(AxmeClient) if not name.startswith("_")}
    family = set().union(*FAMILIES.values())
    assert public >= family, family - public
    assert called >= family, f"not called: {sorted(family - called)}"

"""The official Python SDK (`axme` 0.2.0, unchanged) through the organizations, workspaces and members families
against the runtime: each method called as a client calls it, each answer checked for what the SDK's callers read
and against AXME's JSON Schema (axp-spec public_api). Every public method of these families is called (the walk of
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

from tests.conftest import ADMIN_KEY, SHARED
from tests.runtime_proc import RuntimeProcess
from tests.sdk.test_sdk_walk import Recorder

FAMILIES = {
    "organizations": {"create_organization", "get_organization", "update_organization"},
    "workspaces": {"create_workspace", "list_workspaces", "update_workspace"},
    "members": {"list_organization_members", "add_organization_member", "update_organization_member",
                "remove_organization_member"},
}


@cache
def _schema(name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((SHARED / "axp-spec" / "schemas" / "public_api" / f"api.{name}.v1.json")
                                           .read_text()))


def spec(name: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` against axp-spec's schema (the ids of created organizations, workspaces and members are UUIDs, as
    the schema says); fields beyond the schema's are let through (a created workspace's admin ``key``), as in
    tests/sdk/test_sdk_walk.py."""
    problems = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                for e in _schema(name).iter_errors(body) if e.validator != "additionalProperties"]
    assert not problems, f"{name}:\n  " + "\n  ".join(problems)
    return body


def is_uuid(value: str) -> bool:
    return str(uuid.UUID(value)) == value


@pytest.mark.backends("sqlite")
def test_the_sdk_manages_organizations_workspaces_and_members(quiet: RuntimeProcess) -> None:
    called: set[str] = set()
    sdk = Recorder(AxmeClient(AxmeClientConfig(base_url=quiet.url, api_key=ADMIN_KEY, max_retries=0)), called)

    made = spec("organizations.create.response", sdk.create_organization(
        {"name": "Globex", "requested_by_actor_id": "hank@globex.example", "primary_domain": "globex.example",
         "metadata": {"tier": "gold"}}, idempotency_key=uuid.uuid4().hex))["organization"]
    org_id = made["org_id"]
    assert is_uuid(org_id) and made["status"] == "active" and made["metadata"] == {"tier": "gold"}
    got = spec("organizations.get.response", sdk.get_organization(org_id))["organization"]
    assert got == {**made, "workspaces_count": 0, "members_count": 1}
    changed = spec("organizations.update.response", sdk.update_organization(
        org_id, {"legal_name": "Globex Corporation"}))["organization"]
    assert changed["legal_name"] == "Globex Corporation" and changed["primary_domain"] == "globex.example"

    workspace = spec("organizations.workspaces.create.response", sdk.create_workspace(
        org_id, {"org_id": org_id, "name": "staging", "environment": "staging", "region": "eu-west"},
        idempotency_key=uuid.uuid4().hex))["workspace"]
    workspace_id = workspace["workspace_id"]
    assert is_uuid(workspace_id) and workspace["org_id"] == org_id and workspace["environment"] == "staging"
    listed = spec("organizations.workspaces.list.response", sdk.list_workspaces(org_id))["workspaces"]
    assert listed == [workspace]
    moved = spec("organizations.workspaces.update.response", sdk.update_workspace(
        org_id, workspace_id, {"environment": "production", "name": "prod"}))["workspace"]
    assert (moved["environment"], moved["name"], moved["region"]) == ("production", "prod", "eu-west")

    owner = spec("organizations.members.list.response", sdk.list_organization_members(org_id))["members"]
    assert [(m["actor_id"], m["role"]) for m in owner] == [("hank@globex.example", "org_owner")]
    member = spec("organizations.members.add.response", sdk.add_organization_member(
        org_id, {"actor_id": "homer@globex.example", "role": "member", "workspace_id": workspace_id},
        idempotency_key=uuid.uuid4().hex))["member"]
    assert is_uuid(member["member_id"]) and member["workspace_id"] == workspace_id and member["status"] == "active"
    in_workspace = spec("organizations.members.list.response", sdk.list_organization_members(
        org_id, workspace_id=workspace_id))["members"]
    assert [m["member_id"] for m in in_workspace] == [member["member_id"]]
    promoted = spec("organizations.members.update.response", sdk.update_organization_member(
        org_id, member["member_id"], {"role": "workspace_admin"}))["member"]
    assert promoted["role"] == "workspace_admin"
    removed = spec("organizations.members.remove.response", sdk.remove_organization_member(
        org_id, member["member_id"]))
    assert removed["member_id"] == member["member_id"] and removed["org_id"] == org_id
    assert [m["member_id"] for m in sdk.list_organization_members(org_id)["members"]] == [owner[0]["member_id"]]
    counted = sdk.get_organization(org_id)["organization"]
    assert (counted["workspaces_count"], counted["members_count"]) == (1, 1)

    with pytest.raises(AxmeHttpError) as missing:
        sdk.get_organization(str(uuid.uuid4()))
    assert missing.value.status_code == 404

    public = {name for name, _ in inspect.getmembers(AxmeClient) if not name.startswith("_")}
    family = set().union(*FAMILIES.values())
    assert public >= family, family - public
    assert called >= family, f"not called: {sorted(family - called)}"

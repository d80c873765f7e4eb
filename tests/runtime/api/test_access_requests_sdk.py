"""The official Python SDK (`axme` 0.2.0, unchanged) through the access-requests family against the runtime: ask,
list, get and review, each answer checked against AXME's JSON Schema (axp-spec public_api) and for what the SDK's
callers read; an approved join lets the person log in. Every public method of the family is called."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Iterator

import httpx
import pytest
from axme_sdk import AxmeClient, AxmeClientConfig
from axme_sdk.exceptions import AxmeHttpError

from tests.conftest import ADMIN_KEY, unique
from tests.runtime.api.test_routing_sdk import spec
from tests.runtime_proc import RuntimeProcess
from tests.runtime_thread import RuntimeThread
from tests.sdk.test_sdk_walk import Recorder

FAMILY = {"create_access_request", "list_access_requests", "get_access_request", "review_access_request"}


@pytest.fixture(scope="module")
def closed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    """A runtime where nobody may log in by email until a join request lets them."""
    proc = RuntimeThread(tmp_path_factory.mktemp("access-sdk"), extra_args=[
        "--allow-email", "nobody@invalid.example", "--login-rate-limit", "0"])
    proc.start()
    yield proc
    proc.stop()


def test_the_sdk_asks_lists_reviews_and_the_grant_holds(closed: RuntimeProcess) -> None:
    called: set[str] = set()
    sdk = Recorder(AxmeClient(AxmeClientConfig(base_url=closed.url, api_key=ADMIN_KEY, max_retries=0)), called)
    org, workspace = "local", "dev"
    person = f"{unique('joiner')}@corp.example"
    assert httpx.post(f"{closed.url}/v1/auth/login-intent", json={"email": person}).status_code == 403

    asked = spec("access_requests.create.response", sdk.create_access_request(
        {"request_type": "join_organization", "requester_actor_id": person, "org_id": org, "workspace_id": workspace,
         "justification": "on-call rota"}, idempotency_key=uuid.uuid4().hex))["access_request"]
    assert asked["state"] == "pending" and asked["requester_actor_id"] == person
    pending = spec("access_requests.list.response", sdk.list_access_requests(org_id=org, workspace_id=workspace,
                                                                             state="pending"))
    assert asked["access_request_id"] in {a["access_request_id"] for a in pending["access_requests"]}
    got = spec("access_requests.get.response", sdk.get_access_request(asked["access_request_id"]))
    assert got["access_request"] == asked
    reviewed = spec("access_requests.review.response", sdk.review_access_request(
        asked["access_request_id"], {"decision": "approve", "reviewer_actor_id": "ops-admin",
                                     "review_comment": "welcome"}, idempotency_key=uuid.uuid4().hex))
    assert reviewed["access_request"]["state"] == "approved"
    assert reviewed["access_request"]["reviewer_actor_id"] == "ops-admin"
    assert httpx.post(f"{closed.url}/v1/auth/login-intent", json={"email": person}).status_code == 200
    assert [a["state"] for a in sdk.list_access_requests()["access_requests"]
            if a["access_request_id"] == asked["access_request_id"]] == ["approved"]

    # AXME CLI's quota upgrade-request body, through the SDK
    tier = sdk.create_access_request({"request_type": "quota_upgrade", "requester_actor_id": "ops",
                                      "requested_tier": "business", "company_name": "Corp",
                                      "justification": "launch week", "org_id": org, "workspace_id": workspace})
    assert tier["access_request"]["requested_tier"] == "business" and tier["access_request"]["state"] == "pending"
    with pytest.raises(AxmeHttpError) as refused:
        sdk.create_access_request({"request_type": "create_organization", "requester_actor_id": person})
    assert refused.value.status_code == 422

    public = {name for name, _ in inspect.getmembers(AxmeClient) if not name.startswith("_")}
    assert public >= FAMILY, FAMILY - public
    assert called >= FAMILY, f"not called: {sorted(FAMILY - called)}"

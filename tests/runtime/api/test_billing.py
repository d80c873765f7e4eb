"""Billing (/v1/billing/plan, /v1/billing/invoices[/{id}]) is AXME's hosted service's: the runtime answers each
route with 501 not_available_locally in the AXP error shape, never a 404 "no route", to the official SDK's billing
methods as to any client; without a valid key it is 401 first, like every route."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from axme_sdk import AxmeClient, AxmeClientConfig, AxmeHttpError

from tests.conftest import ADMIN_KEY, make_agent, unique
from tests.runtime_proc import TLS, RuntimeProcess

ROUTES = [("PATCH", "/v1/billing/plan"), ("GET", "/v1/billing/plan"), ("GET", "/v1/billing/invoices"),
          ("GET", "/v1/billing/invoices/inv_1")]


def _not_available(status: int, body: Any) -> None:
    assert status == 501, body
    assert body["error"]["code"] == "not_available_locally", body
    assert "not available on a local runtime" in body["error"]["message"] and body["detail"] == body["error"]["message"]
    assert body["error"]["details"]["retryable"] is False


def test_every_billing_route_is_501_in_the_axp_shape(quiet: RuntimeProcess, api: httpx.Client) -> None:
    _, agent_key = make_agent(api, unique("payer"))
    operations = set()
    with quiet.client(agent_key) as agent:
        for method, url in ROUTES:
            for client in (api, agent):
                r = client.request(method, url, json={"plan": "business"} if method == "PATCH" else None)
                _not_available(r.status_code, r.json())
                operations.add(r.json()["error"]["details"]["operation"])
    assert operations == {"billing.plan.update", "billing.plan.get", "billing.invoices.list", "billing.invoices.get"}
    with httpx.Client(verify=TLS, base_url=quiet.url, timeout=10) as anon:
        for method, url in ROUTES:
            assert anon.request(method, url).status_code == 401


SDK_CALLS: list[tuple[str, Callable[[AxmeClient], Any]]] = [
    ("update_billing_plan", lambda c: c.update_billing_plan(
        {"org_id": "local", "workspace_id": "dev", "plan_code": "business"}, idempotency_key=unique("plan"))),
    ("get_billing_plan", lambda c: c.get_billing_plan(org_id="local", workspace_id="dev")),
    ("list_billing_invoices", lambda c: c.list_billing_invoices(org_id="local", workspace_id="dev", status="open")),
    ("get_billing_invoice", lambda c: c.get_billing_invoice("inv_1")),
]


@pytest.mark.parametrize("name, call", SDK_CALLS, ids=[name for name, _ in SDK_CALLS])
def test_the_official_sdks_billing_methods_get_the_error(quiet: RuntimeProcess, name: str,
                                                          call: Callable[[AxmeClient], Any]) -> None:
    """The SDK retries a 5xx of a call it may repeat (its reads, a write with an idempotency key): with its
    retries off, one request, and the error it raises carries the runtime's answer."""
    client = AxmeClient(AxmeClientConfig(base_url=quiet.url, api_key=ADMIN_KEY, max_retries=0))
    with pytest.raises(AxmeHttpError) as raised:
        call(client)
    _not_available(raised.value.status_code, raised.value.body)

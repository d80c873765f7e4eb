"""The official Python SDK's quota and usage methods (``get_quota``, ``update_quota``, ``get_usage_summary``,
``get_usage_timeseries``) against the runtime, on both backends, checked against axp-spec's response schemas.

One deliberate difference: the dimensions. AXME's gateway and CLI use intents_per_day, rate_limit_per_minute,
payload_max_bytes, storage_bytes, actors_total, service_accounts_per_workspace and sse_streams_max, which the runtime
enforces; axp-spec's quota schemas list an older set. So the answers are held to those schemas everywhere except
under ``dimensions`` (whose names are AXME's, checked here one by one), and a request naming one of the older
dimensions the runtime has no quota for is refused (422) rather than stored and never enforced."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
from axme_sdk import AxmeClient, AxmeClientConfig
from axme_sdk.exceptions import AxmeHttpError, AxmeRateLimitError
from jsonschema import Draft202012Validator

from axme_cli.protocol.quotas import DIMENSIONS
from axme_cli.runtime.clock import ManualClock
from tests.conftest import SHARED, new_intent
from tests.runtime.api.test_quotas import at, new_day
from tests.runtime_thread import RuntimeThread


@cache
def _schema(name: str) -> Draft202012Validator:
    path = SHARED / "axp-spec" / "schemas" / "public_api" / f"api.{name}.v1.json"
    return Draft202012Validator(json.loads(path.read_text()))


def spec(name: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` against axp-spec's ``api.<name>.v1.json``, except under ``dimensions`` (AXME's names, see above),
    extra fields and formats (org_id is the runtime's name, ``local``)."""
    problems = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                for e in _schema(name).iter_errors(body)
                if e.validator not in ("additionalProperties", "format") and "dimensions" not in e.absolute_path]
    assert not problems, f"{name}:\n  " + "\n  ".join(problems)
    return body


@pytest.fixture(scope="module")
def sdk_runtime(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeThread]:
    rt = RuntimeThread(tmp_path_factory.mktemp("quota-sdk"), backend=backend,
                       clock=ManualClock(at("2026-08-03T09:00Z")))
    rt.start()
    yield rt
    rt.stop()


def test_the_sdk_reads_and_changes_quotas_and_reads_usage(sdk_runtime: RuntimeThread) -> None:
    new_day(sdk_runtime)
    client = AxmeClient(AxmeClientConfig(base_url=sdk_runtime.url, api_key=sdk_runtime.api_key, max_retries=0))
    health = client.health()
    org, workspace = health["org_id"], health["workspace_id"]

    policy = spec("quotas.get.response", client.get_quota(org_id=org, workspace_id=workspace))["quota_policy"]
    assert policy["dimensions"] == {d: None for d in DIMENSIONS} and policy["org_id"] == org

    # the request as axp-spec writes it: every field; requests_per_minute is AXME's rate_limit_per_minute
    changed = spec("quotas.update.response", client.update_quota({
        "org_id": org, "workspace_id": workspace, "overage_mode": "block", "soft_threshold_percent": 90,
        "hard_enforcement": True, "updated_by_actor_id": "ops@example.com",
        "dimensions": {"intents_per_day": 2, "requests_per_minute": 600}}))["quota_policy"]
    assert changed["dimensions"]["intents_per_day"] == 2 and changed["dimensions"]["rate_limit_per_minute"] == 600
    assert (changed["soft_threshold_percent"], changed["updated_by_actor_id"]) == (90, "ops@example.com")
    assert client.get_quota(org_id=org, workspace_id=workspace)["quota_policy"] == changed

    with pytest.raises(AxmeHttpError) as refused:  # an older dimension the runtime has no quota for
        client.update_quota({"org_id": org, "workspace_id": workspace, "overage_mode": "block",
                             "updated_by_actor_id": "ops", "dimensions": {"schema_writes_per_day": 5}})
    assert refused.value.status_code == 422 and "dimensions.schema_writes_per_day" in refused.value.message

    def send() -> dict[str, Any]:
        body = new_intent()
        return dict(client.create_intent(body, correlation_id=str(body["correlation_id"])))

    assert all(send()["ok"] for _ in range(2))
    with pytest.raises(AxmeRateLimitError) as over:  # the quota's 429, as the SDK raises it
        send()
    assert over.value.retry_after is not None and over.value.retry_after >= 1
    assert over.value.body["error"]["code"] == "quota_exceeded"
    assert over.value.body["error"]["details"]["dimension"] == "intents_per_day"

    summary = spec("usage.summary.get.response",
                   client.get_usage_summary(org_id=org, workspace_id=workspace, window="day"))["summary"]
    assert summary["dimensions"]["intents_per_day"].items() >= {"used": 2, "limit": 2, "remaining": 0,
                                                                "refused": 1}.items()
    assert set(summary["dimensions"]) == set(DIMENSIONS)
    week = client.get_usage_summary(org_id=org, workspace_id=workspace, window="week")["summary"]
    assert week["window_start"] <= summary["window_start"] and week["counters"]["intents_created"] >= 2

    series = spec("usage.timeseries.get.response",
                  client.get_usage_timeseries(org_id=org, workspace_id=workspace, window_days=3))["series"]
    assert [p["dimensions"]["intents_per_day"] for p in series["points"]] == [0, 0, 2]
    assert series["granularity"] == "day"

    client.update_quota({"org_id": org, "workspace_id": workspace, "overage_mode": "block",
                         "updated_by_actor_id": "ops", "dimensions": {"intents_per_day": None,
                                                                      "rate_limit_per_minute": None}})

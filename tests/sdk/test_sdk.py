"""The unchanged official SDK (`axme==0.2.0` from PyPI) against the real runtime."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from axme_sdk import AxmeClient, AxmeClientConfig, AxmeValidationError

from tests.conftest import ADMIN_KEY, make_agent
from tests.runtime_proc import RuntimeProcess
from tests.runtime_thread import RuntimeThread

ACTIONABLE = {"CREATED", "SUBMITTED", "DELIVERED", "ACKNOWLEDGED", "IN_PROGRESS", "WAITING"}


def sdk(runtime: RuntimeProcess, key: str = ADMIN_KEY) -> AxmeClient:
    return AxmeClient(AxmeClientConfig(base_url=runtime.url, api_key=key))


class AgentThread(threading.Thread):
    """An agent written like the seed page's: listen, get_intent, read payload, resume_intent."""

    def __init__(
        self, client: AxmeClient, name: str, handle: Callable[[dict[str, Any]], dict[str, Any]], count: int = 1
    ) -> None:
        super().__init__(daemon=True)
        self.client, self.name_, self.handle, self.count = client, name, handle, count
        self.handled: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for delivery in self.client.listen(self.name_, wait_seconds=2, timeout_seconds=30):
                intent = self.client.get_intent(delivery["intent_id"])["intent"]
                if intent["status"] not in ACTIONABLE or intent["intent_id"] in self.handled:
                    continue
                payload = intent["payload"].get("parent_payload") or intent["payload"]
                self.client.resume_intent(intent["intent_id"], self.handle(payload))
                self.handled.append(intent["intent_id"])
                if len(self.handled) >= self.count:
                    return
        except BaseException as exc:  # surfaced by the test
            self.error = exc


@pytest.fixture
def seed_runtime(backend: str, tmp_path) -> Iterator[RuntimeProcess]:
    """A runtime that serves agent://myorg/production/... as the seed page addresses it."""
    rt = RuntimeThread(tmp_path, extra_args=["--org", "myorg", "--workspace", "production"],
                       backend=backend).start()
    yield rt
    rt.retire()


def test_seed_page_flow(seed_runtime: RuntimeProcess) -> None:
    admin = sdk(seed_runtime)
    with seed_runtime.client() as http:
        address, token = make_agent(http, "order-service")
    assert address == "agent://myorg/production/order-service"
    agent = AgentThread(
        sdk(seed_runtime, token),
        "order-service",
        lambda p: {"action": "complete", "order_id": p["order_id"], "reserved": True},
    )
    agent.start()
    intent_id = admin.send_intent(
        {
            "intent_type": "order.place.v1",
            "to_agent": "agent://myorg/production/order-service",
            "payload": {
                "order_id": "ord_98765",
                "items": [{"sku": "LAPTOP-001", "quantity": 1, "price_cents": 129900}],
                "shipping_address": {"city": "San Francisco", "state": "CA"},
            },
        }
    )
    events = list(admin.observe(intent_id, wait_seconds=5, timeout_seconds=30))
    agent.join(10)
    assert agent.error is None, agent.error
    assert agent.handled == [intent_id]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["status"] for e in events] == ["CREATED", "SUBMITTED", "DELIVERED", "COMPLETED"]
    assert events[-1]["event_type"] == "intent.completed"
    got = admin.get_intent(intent_id)
    assert got["intent"]["lifecycle_status"] == "COMPLETED"
    assert got["intent"]["result"] == {"order_id": "ord_98765", "reserved": True}
    # wait_for on a finished intent returns its terminal event at once
    assert admin.wait_for(intent_id, timeout_seconds=10)["status"] == "COMPLETED"
    assert [e["seq"] for e in admin.list_intent_events(intent_id)["events"]] == [1, 2, 3, 4]


def test_wait_for_and_fail(runtime: RuntimeProcess) -> None:
    name = f"payment-{uuid.uuid4().hex[:8]}"
    with runtime.client() as http:
        _, token = make_agent(http, name)
    agent = AgentThread(sdk(runtime, token), name, lambda p: {"action": "fail", "reason": "card declined"})
    agent.start()
    admin = sdk(runtime)
    intent_id = admin.send_intent(
        {"intent_type": "payment.charge.v1", "to_agent": name, "payload": {"amount_cents": 1000}}
    )
    final = admin.wait_for(intent_id, wait_seconds=5, timeout_seconds=30)
    agent.join(10)
    assert agent.error is None
    assert final["status"] == "FAILED"
    assert admin.get_intent(intent_id)["intent"]["error"] == {"reason": "card declined"}


def test_resolve_intent(runtime: RuntimeProcess) -> None:
    admin = sdk(runtime)
    intent_id = admin.send_intent({"intent_type": "ops.approve.v1", "to_agent": "nobody-listens", "payload": {}})
    out = admin.resolve_intent(intent_id, {"status": "COMPLETED", "result": {"approved": True}})
    assert out["ok"] is True
    assert out["intent"]["status"] == "COMPLETED"
    assert out["event"]["event_type"] == "intent.completed"
    assert out["completion_delivery"]["delivered"] is False
    with pytest.raises(AxmeValidationError) as info:
        admin.resolve_intent(intent_id, {"status": "CANCELED", "reason": "too late"})
    assert info.value.status_code == 409


def test_idempotent_create_replays(runtime: RuntimeProcess) -> None:
    admin = sdk(runtime)
    body = {"intent_type": "order.place.v1", "to_agent": "inventory", "payload": {"n": 1}}
    correlation = str(uuid.uuid4())
    key = f"idem-{uuid.uuid4()}"
    first = admin.create_intent(body, correlation_id=correlation, idempotency_key=key)
    second = admin.create_intent(body, correlation_id=correlation, idempotency_key=key)
    assert first["intent_id"] == second["intent_id"]
    with pytest.raises(AxmeValidationError) as info:
        admin.create_intent({**body, "payload": {"n": 2}}, correlation_id=correlation, idempotency_key=key)
    assert info.value.status_code == 409

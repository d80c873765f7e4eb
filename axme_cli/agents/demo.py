"""The demo services of `axme examples run order-saga`: inventory, payment and shipping.

Each is a plain function taking the delivery (``payload`` holds ``parent_payload``, ``step_id``,
``input``, ``results`` and, for an undo, ``compensation`` and ``step_result``). Environment:
``AXME_DEMO_FAIL_AT`` (a step id or role) makes that step fail; ``AXME_DEMO_DELAY`` (seconds,
default 0.3) makes each step take a little time, so the live view can be followed.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

ROLE_OF_STEP = {"reserve": "inventory", "charge": "payment", "ship": "shipping"}


def _ref(prefix: str, *parts: Any) -> str:
    return prefix + "_" + hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:10]


def handle(delivery: dict[str, Any]) -> dict[str, Any]:
    payload = delivery.get("payload") or {}
    order = payload.get("parent_payload") or payload
    step = payload.get("step_id") or ""
    delay = float(os.environ.get("AXME_DEMO_DELAY", "0.3"))
    if delay > 0:
        time.sleep(delay)
    order_id = order.get("order_id", "?")
    if payload.get("compensation"):
        previous = payload.get("step_result") or {}
        if step == "reserve":
            return {"released": previous.get("reservation_id"), "order_id": order_id}
        if step == "charge":
            return {"refunded": previous.get("charge_id"), "amount_cents": previous.get("amount_cents")}
        return {"undone": step}
    fail_at = os.environ.get("AXME_DEMO_FAIL_AT", "")
    if fail_at and fail_at in (step, ROLE_OF_STEP.get(step)):
        raise RuntimeError(f"{ROLE_OF_STEP.get(step, step)} refused {step} for order {order_id} (--fail-at)")
    if step == "reserve":
        return {"reservation_id": _ref("res", order_id), "items": len(order.get("items") or [])}
    if step == "charge":
        total = order.get("total_cents") or sum(i.get("price_cents", 0) * i.get("quantity", 1)
                                                for i in order.get("items") or [])
        return {"charge_id": _ref("ch", order_id), "amount_cents": total, "currency": order.get("currency", "USD")}
    if step == "ship":
        return {"shipment_id": _ref("shp", order_id), "carrier": (payload.get("input") or {}).get("carrier", "UPS")}
    return {"handled": step}

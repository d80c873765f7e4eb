"""The three order services of bench/saga.py, as one ``--handler`` for ``axme agents run``.

Each step is trivial (a small dict back); ``ship`` raises when the order's payload says ``"fail": true``, so the
runtime compensates: refund the charge, then release the reservation. Imported by the agent processes as
``saga_handlers:handle`` with bench/ on PYTHONPATH.
"""

from __future__ import annotations

from typing import Any


async def handle(delivery: dict[str, Any]) -> dict[str, Any]:
    payload = delivery.get("payload") or {}
    order = payload.get("parent_payload") or {}
    step = payload.get("step_id") or ""
    order_id = order.get("order_id", "?")
    if payload.get("compensation"):
        return {"undone": step, "order_id": order_id}
    if step == "ship" and order.get("fail"):
        raise RuntimeError(f"shipping refused order {order_id}")
    return {"done": step, "order_id": order_id}

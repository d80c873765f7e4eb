"""The sender's claim (engine/outbound.py ``op_claim``) against a real store: a killed agent's due deliveries are held,
and the sender's view of the kill switch, taken when it queued the claim, is checked against the database, so a
resume that committed in between is not undone by holding what it released for another ``HOLD_SECONDS``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from axme_cli.runtime.engine.mesh import HOLD_SECONDS, scope
from axme_cli.runtime.engine.outbound import op_claim
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store import open_store
from tests.runtime_proc import new_database

NOW = 1_000_000.0
ADDRESS = "agent://local/dev/hooked"


def _delivery(delivery_id: str) -> dict[str, Any]:
    return {"delivery_id": delivery_id, "kind": "webhook", "owner_agent": ADDRESS, "callback_url": "http://127.0.0.1:9/",
            "subscription_id": "sub_gone", "event_id": "evt_gone", "event_type": "inbox.thread_created",
            "intent_id": None, "intent_attempt": None, "status": "pending", "attempts": 0, "max_attempts": 3,
            "next_ts": NOW - 1, "lease_until_ts": None, "last_status_code": None, "last_error": None,
            "created_at": "t", "updated_at": "t", "delivered_at": None}


@pytest.mark.parametrize("killed", [True, False], ids=["still-killed", "resumed-since"])
def test_a_claim_holds_only_what_the_database_says_is_killed(backend: str, tmp_path: Path, killed: bool) -> None:
    s = Settings()
    url = new_database(backend, tmp_path, migrated=True)

    async def main() -> dict[str, Any] | None:
        store = open_store(url)
        await store.open()
        try:
            await store.write(lambda tx: tx.mesh_update(scope(s), ADDRESS, {"killed": int(killed)}, "t"))
            await store.write(lambda tx: tx.insert_outbound(_delivery("dlv_1")))
            # the sender still counts the agent as killed (its view of the switch is older than the resume)
            jobs = await store.write(lambda tx: op_claim(tx, s, NOW, 10, held=frozenset({ADDRESS})))
            assert jobs == []  # held, or closed: its subscription is gone
            return await store.write(lambda tx: tx.get_outbound("dlv_1"))
        finally:
            await store.close()

    row = asyncio.run(main())
    assert row is not None
    if killed:
        assert row["status"] == "pending" and row["next_ts"] == NOW + HOLD_SECONDS and row["attempts"] == 0
    else:  # taken and worked on at once (no subscription: dead-lettered), not held another HOLD_SECONDS
        assert row["status"] == "dead_lettered" and row["next_ts"] < NOW + HOLD_SECONDS

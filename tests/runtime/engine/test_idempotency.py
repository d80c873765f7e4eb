"""The idempotency cache keeps operations' results, and answers rows written when it kept HTTP bodies."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from axme_cli.protocol.scenario import ScenarioBundle
from axme_cli.runtime.engine import intents, workflows
from axme_cli.runtime.engine.codec import dumps, loads
from axme_cli.runtime.errors import Conflict
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store import open_store
from tests.runtime_proc import new_database

ROOT = Path(__file__).resolve().parents[3]
ADMIN = Principal("workspace", "k1", "initiator://local/dev/admin")
S = Settings()
CREATE = {"intent_type": "order.place.v1", "correlation_id": "c-1", "to_agent": "agent://local/dev/inv",
          "from_agent": ADMIN.address, "payload": {"n": 1}}


def bundle() -> ScenarioBundle:
    return ScenarioBundle.model_validate(json.loads((ROOT / "scenarios" / "order-saga.json").read_text()))


def with_store(backend: str, tmp_path: Path, *ops: Any) -> list[Any]:
    """Run each op in its own transaction on a fresh store; what each returned (or raised)."""
    async def main() -> list[Any]:
        store = open_store(new_database(backend, tmp_path))
        await store.open()
        try:
            return [await store.write(op) for op in ops]
        finally:
            await store.close()

    return asyncio.run(main())


def stored(tx: Any, scope: str) -> dict[str, Any]:
    row = tx.idem_get(scope, "key-1")
    assert row is not None
    result: dict[str, Any] = loads(row["response"])
    return result


def test_a_repeat_gets_the_first_answer_and_the_cache_holds_results(backend: str, tmp_path: Path) -> None:
    idem = ("k1:POST /v1/intents", "key-1", "hash-a")
    apply_idem = ("k1:POST /v1/scenarios/apply", "key-1", "hash-b")
    first, again, cached, applied, reapplied, cached_apply = with_store(
        backend, tmp_path,
        lambda tx: intents.op_create(tx, S, ADMIN, CREATE, time.time(), idem),
        lambda tx: intents.op_create(tx, S, ADMIN, {**CREATE, "correlation_id": "other"}, time.time(), idem),
        lambda tx: stored(tx, idem[0]),
        lambda tx: workflows.op_apply(tx, S, ADMIN, bundle(), time.time(), apply_idem),
        lambda tx: workflows.op_apply(tx, S, ADMIN, bundle(), time.time(), apply_idem),
        lambda tx: stored(tx, apply_idem[0]),
    )
    assert again == first and first["ok"] is True
    assert cached == {k: first[k] for k in ("intent_id", "status", "created_at")}  # a result: no "ok", no status
    assert (applied["idempotent"], reapplied["idempotent"]) == (False, True)
    assert {**reapplied, "idempotent": False} == applied
    assert list(reapplied) == list(applied) == ["ok", "intent_id", "scenario_id", "compile_id", "workflow_compile_id",
                                                "status", "pending_with", "idempotent", "agents", "deadline_at",
                                                "created_at"]
    assert "idempotent" not in cached_apply and "ok" not in cached_apply
    assert cached_apply["workflow_id"] == applied["compile_id"] == applied["workflow_compile_id"]


def test_a_key_reused_with_another_body_is_a_conflict(backend: str, tmp_path: Path) -> None:
    idem = ("k1:POST /v1/intents", "key-1", "hash-a")

    def reused(tx: Any) -> None:
        with pytest.raises(Conflict) as refused:
            intents.op_create(tx, S, ADMIN, CREATE, time.time(), (*idem[:2], "hash-b"))
        assert refused.value.code == "idempotency_conflict"

    with_store(backend, tmp_path, lambda tx: intents.op_create(tx, S, ADMIN, CREATE, time.time(), idem), reused)


def test_rows_cached_as_http_bodies_still_answer(backend: str, tmp_path: Path) -> None:
    """Before the cache kept results it kept the answer's body (status 200): such rows answer as they did."""
    now = time.time()
    old_create = {"ok": True, "intent_id": "0190-old", "status": "SUBMITTED", "created_at": "2025-01-01T00:00:00Z"}
    old_apply = {"ok": True, "intent_id": "0190-parent", "scenario_id": "order-saga", "compile_id": "0190-wf",
                 "workflow_compile_id": "0190-wf", "status": "WAITING", "pending_with": "agent://local/dev/x",
                 "idempotent": False, "agents": [{"role": "r"}], "deadline_at": None,
                 "created_at": "2025-01-01T00:00:00Z"}

    def old_rows(tx: Any) -> None:
        tx.idem_put("k1:POST /v1/intents", "key-1", "hash-a", dumps(old_create), now)
        tx.idem_put("k1:POST /v1/scenarios/apply", "key-1", "hash-b", dumps(old_apply), now)

    _, created, applied = with_store(
        backend, tmp_path, old_rows,
        lambda tx: intents.op_create(tx, S, ADMIN, CREATE, now, ("k1:POST /v1/intents", "key-1", "hash-a")),
        lambda tx: workflows.op_apply(tx, S, ADMIN, bundle(), now, ("k1:POST /v1/scenarios/apply", "key-1",
                                                                    "hash-b")),
    )
    assert created == old_create
    assert applied == {**old_apply, "idempotent": True}

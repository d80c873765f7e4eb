"""Idempotency-Key: an operation runs once per key; a repeat gets the first result."""

from __future__ import annotations

from typing import Any

from axme_cli.runtime.engine.codec import loads
from axme_cli.runtime.errors import Conflict
from axme_cli.runtime.store.base import Tx


def idempotent_replay(tx: Tx, idem: tuple[str, str, str] | None) -> dict[str, Any] | None:
    """The stored answer for a repeated Idempotency-Key; 409 when the body differs."""
    if idem is None:
        return None
    scope, key, body_hash = idem
    previous = tx.idem_get(scope, key)
    if previous is None:
        return None
    if previous["body_hash"] != body_hash:
        raise Conflict("idempotency key reused with different payload", code="idempotency_conflict")
    answer: dict[str, Any] = loads(previous["response"])
    return answer

"""Idempotency-Key: an operation runs once per (caller, route, key); a repeat gets the first result.

The cache keeps what the operation returned (its result, as JSON), never an HTTP answer: the operation's view
(``intents.created_view``, ``workflows.applied_view``, or the result itself) shapes the answer from it the same way
for the first call and for a repeat, and only ``Outcome.replayed`` tells them apart. Only results are kept: an
operation that raises is rolled back together with its cache row, so a repeat after a refusal runs it again. A
key reused with a different body is a conflict (``idempotency_conflict``).

Rows written before held the HTTP body (``status_code`` 200): the same dict as the result, plus ``"ok": true``
everywhere and ``"idempotent": false`` on ``/v1/scenarios/apply``; the views read those rows as results.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from axme_cli.runtime.engine.codec import dumps, loads
from axme_cli.runtime.errors import Conflict
from axme_cli.runtime.store.base import Tx

Key = tuple[str, str, str]  # (scope: the caller's key id and the route, the Idempotency-Key, sha256 of the body)


class Outcome(NamedTuple):
    result: dict[str, Any]
    replayed: bool  # the result of an earlier call with the same key and body


def once(tx: Tx, idem: Key | None, now: float, op: Callable[[], dict[str, Any]]) -> Outcome:
    """Run ``op`` unless ``idem`` names an earlier call: then its result, and ``op`` does not run."""
    if idem is None:
        return Outcome(op(), False)
    scope, key, body_hash = idem
    previous = tx.idem_get(scope, key)
    if previous is not None:
        if previous["body_hash"] != body_hash:
            raise Conflict("idempotency key reused with different payload", code="idempotency_conflict")
        return Outcome(loads(previous["response"]), True)
    result = op()
    tx.idem_put(scope, key, body_hash, dumps(result), now)
    return Outcome(result, False)

"""An intent's controls and policy (``POST /v1/intents/{id}/controls`` and ``/policy``): its timers, and who else
may act on it.

Controls move what the scheduler does with the intent: its deadline (``deadline_ts``, so ``wake_ts``), how many
delivery attempts it gets (``max_delivery_attempts``, read when the redelivery timer fires) and how long the runtime
waits for its agent before delivering again (``retry_backoff_seconds`` in its doc; the redelivery timer armed now
moves by the difference). The policy's grants (``doc.grants``: ``{"delegate:<who>": {"allow": [...]}}``) let
someone other than the sender and the admin key resume the intent (``intents.check_may_end``), see it
(``Principal.may_see``) or change its controls or policy (``check_may_change``).

Who may change them (design.md §9): the intent's sender, a delegate granted ``update_controls`` /
``update_policy``, and the workspace admin key. Each change is compare-and-set on ``policy_generation`` (0, then
one more per change: ``expected_policy_generation`` must be it, else 409 with the current one), one event on the
intent (``intent.controls_updated`` / ``intent.policy_updated``, in its stream) and one audit event, in the same
transaction. A patch that changes nothing changes nothing: no event, the same generation, ``applied: false``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from axme_cli.protocol import lifecycle as lc
from axme_cli.protocol.controls import MAX_GRANTS
from axme_cli.runtime.clock import iso, parse_iso
from axme_cli.runtime.engine import audit, idempotency
from axme_cli.runtime.engine.changes import apply_event
from axme_cli.runtime.engine.codec import loads
from axme_cli.runtime.engine.intents import acting_as, check_generation, owned_row
from axme_cli.runtime.engine.views import intent_view
from axme_cli.runtime.errors import Conflict, Forbidden, Unprocessable
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Row, Tx

UPDATE_CONTROLS, UPDATE_POLICY = "update_controls", "update_policy"


def check_may_change(principal: Principal, row: Row, action: str) -> None:
    """The sender, a delegate granted ``action`` and the workspace admin key may change an intent's controls
    (``update_controls``) or policy (``update_policy``); anyone else who may see it gets 403."""
    if principal.is_admin or row["from_agent"] == principal.address or principal.granted(row, action):
        return
    what = "controls" if action == UPDATE_CONTROLS else "policy"
    raise Forbidden(f"only the intent's sender ({row['from_agent']}), a delegate its policy grants {action}, or the "
                    f"workspace admin key may change its {what}", code="policy_denied",
                    details={"allowed": [row["from_agent"]], "action": action})


def _ts(value: datetime) -> float:
    return value.timestamp()


def timer_patch(row: Row, now: float, controls: dict[str, Any] | None = None,
                envelope: dict[str, Any] | None = None) -> dict[str, Any]:
    """A controls_patch and an envelope_patch (validated: protocol/controls.py) as what they set: ``deadline``
    (epoch seconds, or None to remove it), ``max_delivery_attempts`` and ``retry_backoff_seconds``. A field sent as
    null changes nothing, except a deadline (``deadline_at`` / ``expires_at``), which it removes."""
    out: dict[str, Any] = {}
    for patch, names in ((controls or {}, ("timeout_seconds", "deadline_at", "max_retries")),
                         (envelope or {}, ("execution_timeout_seconds", "expires_at", "max_retry_count"))):
        relative, absolute, retries = names
        if patch.get(relative) is not None:
            out["deadline"] = now + float(patch[relative])
        if absolute in patch:
            out["deadline"] = None if patch[absolute] is None else _ts(patch[absolute])
        if patch.get(retries) is not None:
            out["max_delivery_attempts"] = int(patch[retries]) + 1
        if patch.get("max_delivery_attempts") is not None:
            out["max_delivery_attempts"] = int(patch["max_delivery_attempts"])
        if patch.get("retry_backoff_seconds") is not None:
            out["retry_backoff_seconds"] = float(patch["retry_backoff_seconds"])
    if envelope and envelope.get("ttl_seconds") is not None:
        out["deadline"] = parse_iso(row["created_at"]) + float(envelope["ttl_seconds"])
    return out


def _timer_changes(s: Settings, row: Row, doc: dict[str, Any], patch: dict[str, Any],
                   now: float) -> tuple[Row, dict[str, Any], dict[str, Any]]:
    """(row updates, doc updates, what changed as {field: {from, to}}) for ``patch`` (``timer_patch``)."""
    updates: Row = {}
    doc_updates: dict[str, Any] = {}
    changed: dict[str, Any] = {}
    if "deadline" in patch and patch["deadline"] != row["deadline_ts"]:
        deadline = patch["deadline"]
        updates["deadline_ts"] = deadline
        doc_updates["deadline_at"] = iso(deadline) if deadline is not None else None
        changed["deadline_at"] = {"from": doc.get("deadline_at"), "to": doc_updates["deadline_at"]}
    attempts = patch.get("max_delivery_attempts")
    if attempts is not None and attempts != row["max_delivery_attempts"]:
        updates["max_delivery_attempts"] = attempts
        changed["max_delivery_attempts"] = {"from": row["max_delivery_attempts"], "to": attempts}
    backoff = patch.get("retry_backoff_seconds")
    if backoff is not None and backoff != doc.get("retry_backoff_seconds"):
        old = float(doc.get("retry_backoff_seconds") or s.redelivery_seconds)
        doc_updates["retry_backoff_seconds"] = backoff
        if row["redeliver_ts"] is not None:  # the next delivery attempt moves by the difference
            updates["redeliver_ts"] = max(now, row["redeliver_ts"] - old + backoff)
        changed["retry_backoff_seconds"] = {"from": doc.get("retry_backoff_seconds"), "to": backoff}
    return updates, doc_updates, changed


def _open_row(tx: Tx, principal: Principal, intent_id: str, action: str) -> tuple[Row, dict[str, Any]]:
    row = owned_row(tx, principal, intent_id)
    check_may_change(principal, row, action)
    if row["status"] in lc.TERMINAL:
        raise Conflict(f"intent {intent_id} is already {row['status']}: its controls and policy no longer change "
                       "anything", code="intent_terminal", details={"status": row["status"]})
    return row, loads(row["doc"])


def _answer(row: Row, generation: int, event: dict[str, Any] | None) -> dict[str, Any]:
    return {"ok": True, "applied": event is not None, "policy_generation": generation, "intent": intent_view(row),
            "event": event}


def op_controls(tx: Tx, s: Settings, principal: Principal, intent_id: str, req: dict[str, Any], now: float,
                idem: idempotency.Key | None = None) -> dict[str, Any]:
    """Change the intent's timers (``req``: a validated ControlsRequest, ``controls_patch`` without unset fields)."""
    return idempotency.once(tx, idem, now, lambda: _controls(tx, s, principal, intent_id, req, now)).result


def _controls(tx: Tx, s: Settings, principal: Principal, intent_id: str, req: dict[str, Any],
              now: float) -> dict[str, Any]:
    row, doc = _open_row(tx, principal, intent_id, UPDATE_CONTROLS)
    actor, acted = acting_as(s, principal, req.get("actor"))
    generation = check_generation(doc, req.get("expected_policy_generation"))
    updates, doc_updates, changed = _timer_changes(s, row, doc, timer_patch(row, now, req["controls_patch"]), now)
    if not changed:
        return _answer(row, generation, None)
    generation += 1
    details = {"via": "controls", "changed": changed, "policy_generation": generation, **acted,
               **({"reason": req["reason"]} if req.get("reason") else {})}
    event = apply_event(tx, s, row, "intent.controls_updated", now, actor=actor, details=details, updates=updates,
                        doc_updates={**doc_updates, "policy_generation": generation})
    audit.by(tx, "intent.controls_updated", now, principal, owner_agent=row["to_agent"], target=("intent", intent_id),
             changed=sorted(changed), policy_generation=generation, reason=req.get("reason"),
             as_actor=actor if actor != principal.address else None)
    return _answer(row, generation, event)


def _grant_changes(doc: dict[str, Any], patch: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the intent's grants after ``patch``, what changed: {key: allow list, or None when taken back})."""
    grants = dict(doc.get("grants") or {})
    changed: dict[str, Any] = {}
    for key, grant in patch.items():
        allow = sorted(set(grant["allow"])) if grant else []
        before = (grants.get(key) or {}).get("allow")
        if allow and allow != before:
            grants[key] = {"allow": allow}
            changed[key] = allow
        elif not allow and key in grants:
            del grants[key]
            changed[key] = None
    if len(grants) > MAX_GRANTS:
        raise Unprocessable(f"grants_patch: an intent holds at most {MAX_GRANTS} grants", code="too_many_grants",
                            details={"field": "grants_patch", "limit": MAX_GRANTS})
    return grants, changed


def op_policy(tx: Tx, s: Settings, principal: Principal, intent_id: str, req: dict[str, Any], now: float,
              idem: idempotency.Key | None = None) -> dict[str, Any]:
    """Change who else may act on the intent (``grants_patch``, keys already ``delegate:<full address or email>``)
    and its envelope (``envelope_patch``: the same timers as controls, in the envelope's words)."""
    return idempotency.once(tx, idem, now, lambda: _policy(tx, s, principal, intent_id, req, now)).result


def _policy(tx: Tx, s: Settings, principal: Principal, intent_id: str, req: dict[str, Any],
            now: float) -> dict[str, Any]:
    row, doc = _open_row(tx, principal, intent_id, UPDATE_POLICY)
    actor, acted = acting_as(s, principal, req.get("actor"))
    generation = check_generation(doc, req.get("expected_policy_generation"))
    grants, granted = _grant_changes(doc, req.get("grants_patch") or {})
    updates, doc_updates, changed = _timer_changes(s, row, doc, timer_patch(row, now, None, req.get("envelope_patch")),
                                                   now)
    if not granted and not changed:
        return _answer(row, generation, None)
    generation += 1
    if granted:
        doc_updates["grants"] = grants or None
    details: dict[str, Any] = {"via": "policy", "policy_generation": generation, **acted,
                               **({"grants": granted} if granted else {}), **({"changed": changed} if changed else {}),
                               **({"reason": req["reason"]} if req.get("reason") else {})}
    event = apply_event(tx, s, row, "intent.policy_updated", now, actor=actor, details=details, updates=updates,
                        doc_updates={**doc_updates, "policy_generation": generation})
    audit.by(tx, "intent.policy_updated", now, principal, owner_agent=row["to_agent"], target=("intent", intent_id),
             grants=granted or None, changed=sorted(changed) or None, policy_generation=generation,
             reason=req.get("reason"), as_actor=actor if actor != principal.address else None)
    return _answer(row, generation, event)

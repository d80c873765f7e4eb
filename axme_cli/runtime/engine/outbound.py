"""Outbound HTTP: webhook subscriptions and events, and the ``http`` binding of agents.

Every delivery is a row (``outbound_deliveries``): ``pending`` until the sender (``runtime/sender.py``) gets a
2xx (``delivered``) or gives up (a webhook: ``dead_lettered`` after ``webhook_max_attempts`` tries with
exponential backoff; an intent: ``failed`` after its one try, the intent's own redelivery makes the next row;
``skipped`` when the intent moved on before it was sent; a ``direct`` delivery, submitted through
``POST /v1/deliveries`` to an http agent, is retried like a webhook). The operations here only read and write rows; the
sender claims due rows with a lease (``op_claim``), POSTs outside any transaction, and records the outcome
(``op_record``).
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from axme_cli.protocol import lifecycle as lc
from axme_cli.protocol.ids import uuid7
from axme_cli.runtime import principals as pr
from axme_cli.runtime import scope
from axme_cli.runtime.clock import iso
from axme_cli.runtime.engine import audit, mesh
from axme_cli.runtime.engine.codec import dumps, loads
from axme_cli.runtime.engine.delivery import DEAD_LETTERED, DELIVERED, FAILED, PENDING, SKIPPED, queue_delivery
from axme_cli.runtime.engine.intents import op_mark_delivered
from axme_cli.runtime.engine.views import intent_view
from axme_cli.runtime.errors import Conflict, NotFound, Unprocessable
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Row, Tx

MAX_RETRY_DELAY = 600.0
DIRECT = "direct"  # a payload submitted through POST /v1/deliveries to an http agent


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def backoff(s: Settings, failures: int) -> float:
    """Seconds to wait after the ``failures``-th failed try of a webhook delivery."""
    return min(MAX_RETRY_DELAY, s.webhook_retry_base_seconds * 4 ** (failures - 1))


def lease_seconds(s: Settings) -> float:
    """How long a claimed delivery stays with its sender: well past one POST's timeout."""
    return 2 * s.outbound_timeout_seconds + 5.0


def may_act_for(principal: Principal, owner_agent: str) -> bool:
    """Webhooks are owner-scoped: an agent key acts for its own address, members for any owner."""
    return principal.is_member or principal.address == owner_agent


# ---------------------------------------------------------------------------------------------
# views


def may_reach(principal: Principal, row: Row) -> bool:
    """A subscription, event or delivery of the caller's workspace (NULL: the default one) it may act for."""
    return scope.belongs(principal, row) and may_act_for(principal, row["owner_agent"])


def subscription_view(row: Row) -> dict[str, Any]:
    """``api.webhooks.subscriptions.response.v1``'s subscription (never the secret)."""
    return {
        "subscription_id": row["subscription_id"],
        "owner_agent": row["owner_agent"],
        "callback_url": row["callback_url"],
        "event_types": loads(row["event_types"]),
        "active": bool(row["active"]),
        "description": row["description"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "revoked_at": row["revoked_at"],
        "secret_hint": row["secret_hint"],
    }


def delivery_view(row: Row) -> dict[str, Any]:
    view = {
        "delivery_id": row["delivery_id"],
        "kind": row["kind"],
        "owner_agent": row["owner_agent"],
        "callback_url": row["callback_url"],
        "subscription_id": row["subscription_id"],
        "event_id": row["event_id"],
        "event_type": row["event_type"],
        "intent_id": row["intent_id"],
        "delivery_attempt": row["intent_attempt"],
        "status": row["status"],
        "attempts": row["attempts"],
        "max_attempts": row["max_attempts"],
        "next_attempt_at": iso(row["next_ts"]) if row["status"] == PENDING else None,
        "last_status_code": row["last_status_code"],
        "last_error": row["last_error"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "delivered_at": row["delivered_at"],
    }
    return {k: v for k, v in view.items() if v is not None}


# AXME's delivery statuses (api.deliveries.*): "submitted" is queued and not tried yet, "pending" tried and
# waiting for its next try; a delivery skipped because its intent moved on is "failed" (error_detail says why).
SPEC_STATUSES = ("submitted", "delivered", "failed", "pending", "dead_lettered")


def spec_status(row: Row) -> str:
    if row["status"] == PENDING:
        return "submitted" if row["attempts"] == 0 else "pending"
    return FAILED if row["status"] == SKIPPED else str(row["status"])


def _spec_payload(row: Row) -> dict[str, Any]:
    """What the delivery carries: a webhook's event payload, a submitted payload, or which intent attempt."""
    if row["kind"] == "webhook":
        return loads(row["event_payload"]) if row.get("event_payload") else {}
    if row["kind"] == DIRECT:
        return loads(row["payload"]) if row.get("payload") else {}
    return {"event_type": "intent.delivered", "intent_id": row["intent_id"], "delivery_attempt": row["intent_attempt"]}


def spec_delivery_view(s: Settings, row: Row) -> dict[str, Any]:
    """A delivery as ``api.deliveries.*.response.v1`` shows it. ``principal_id`` is the agent it belongs to (the
    webhook subscription's owner, the agent an intent or a submitted payload goes to); ``route_id`` the
    subscription, or the agent's http binding (its service account)."""
    return {
        "delivery_id": row["delivery_id"],
        "replay_of_delivery_id": row.get("replay_of_delivery_id"),
        "org_id": s.org,
        "workspace_id": s.workspace,
        "principal_id": row["owner_agent"],
        "alias": None,
        "transport_type": "webhook" if row["kind"] == "webhook" else "http",
        "route_id": row["subscription_id"] or row["owner_agent"],
        "status": spec_status(row),
        "correlation_id": row.get("correlation_id"),
        "idempotency_key": row.get("idempotency_key"),
        "payload": _spec_payload(row),
        "error_detail": row["last_error"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def counters(counts: dict[str, int]) -> dict[str, int]:
    """The spec's delivery counters of one event, from status -> number of its deliveries."""
    pending = counts.get(PENDING, 0)
    return {
        "processed_deliveries": sum(counts.values()) - pending,
        "delivered": counts.get(DELIVERED, 0),
        "pending": pending,
        "dead_lettered": counts.get(DEAD_LETTERED, 0),
    }


def delivery_config_view(sa: Row) -> dict[str, Any]:
    secret = sa.get("delivery_secret")
    return {
        "service_account_id": sa["service_account_id"],
        "agent_address": sa["address"],
        "delivery_mode": sa.get("delivery_mode") or "stream",
        "callback_url": sa.get("callback_url"),
        "secret_hint": pr.hint(secret) if secret else None,
    }


# ---------------------------------------------------------------------------------------------
# queueing


def _queue_event(tx: Tx, s: Settings, event: Row, now: float) -> int:
    """A delivery of ``event`` to every active subscription of its owner that names its type."""
    queued = 0
    for sub in tx.live_subscriptions(event["owner_agent"]):
        if sub["active"] and event["event_type"] in loads(sub["event_types"]):
            queue_delivery(tx, now, kind="webhook", owner_agent=event["owner_agent"], callback_url=sub["callback_url"],
                   subscription_id=sub["subscription_id"], event_id=event["event_id"],
                   event_type=event["event_type"], max_attempts=s.webhook_max_attempts, **scope.stamp_of(event))
            queued += 1
    return queued


def publish(tx: Tx, s: Settings, owner_agent: str, event_type: str, source: str, payload: dict[str, Any],
            now: float) -> tuple[Row, int]:
    """Record a webhook event and queue its deliveries; returns the event row and how many were queued.
    Any operation may call it, so an event goes out if and only if the change that caused it commits."""
    event: Row = {"event_id": uuid7(), "owner_agent": owner_agent, "event_type": event_type, "source": source,
                  "payload": dumps(payload), "accepted_at": iso(now), "replayed_at": None, **scope.stamp(s)}
    tx.insert_webhook_event(event)
    return event, _queue_event(tx, s, event, now)


# ---------------------------------------------------------------------------------------------
# operations behind the routes


def op_upsert_subscription(tx: Tx, principal: Principal, owner_agent: str, req: dict[str, Any],
                           now: float) -> dict[str, Any]:
    """Create a subscription, or update the owner's live one with the same callback_url. ``req`` holds only the
    fields the caller sent. A generated secret is answered once, as ``secret``; a given one is never echoed."""
    at = iso(now)
    existing = next((r for r in tx.live_subscriptions(owner_agent) if r["callback_url"] == req["callback_url"]),
                    None)
    fields: Row = {"event_types": dumps(req["event_types"]), "updated_at": at}
    if "active" in req:
        fields["active"] = 1 if req["active"] else 0
    if "description" in req:
        fields["description"] = req["description"]
    if req.get("secret"):
        fields.update(secret=req["secret"], secret_hint=pr.hint(req["secret"]))
    generated = None
    if existing is not None:
        tx.update_subscription(existing["subscription_id"], fields)
        row = {**existing, **fields}
    else:
        if not req.get("secret"):
            generated = new_secret()
            fields.update(secret=generated, secret_hint=pr.hint(generated))
        row = {"subscription_id": uuid7(), "owner_agent": owner_agent, "callback_url": req["callback_url"],
               "active": 1, "description": None, "created_at": at, "revoked_at": None, **fields}
        if principal.workspace_id is not None:  # the caller's workspace (NULL: the default one)
            row.update(org_id=principal.org_id, workspace_id=principal.workspace_id)
        tx.insert_subscription(row)
    audit.by(tx, "webhook.subscription." + ("updated" if existing is not None else "created"), now, principal,
             owner_agent=owner_agent, target=("webhook_subscription", row["subscription_id"]),
             callback_url=row["callback_url"], event_types=req["event_types"])
    answer: dict[str, Any] = {"ok": True, "subscription": subscription_view(row)}
    if generated is not None:
        answer["secret"] = generated
    return answer


def _subscription(tx: Tx, principal: Principal, subscription_id: str) -> Row:
    row = tx.get_subscription(subscription_id)
    if row is None or not may_reach(principal, row):
        raise NotFound(f"webhook subscription {subscription_id} not found", code="subscription_not_found")
    return row


def op_revoke_subscription(tx: Tx, principal: Principal, subscription_id: str, now: float) -> dict[str, Any]:
    """Revoke (idempotent: a second delete answers the first revoked_at). Its pending deliveries are
    dead-lettered when the sender reaches them."""
    row = _subscription(tx, principal, subscription_id)
    if row["revoked_at"] is None:
        at = iso(now)
        tx.update_subscription(subscription_id, {"revoked_at": at, "active": 0, "updated_at": at})
        row["revoked_at"] = at
        audit.by(tx, "webhook.subscription.revoked", now, principal, owner_agent=row["owner_agent"],
                 target=("webhook_subscription", subscription_id))
    return {"ok": True, "subscription_id": subscription_id, "revoked_at": row["revoked_at"]}


def op_publish(tx: Tx, s: Settings, owner_agent: str, req: dict[str, Any], now: float) -> dict[str, Any]:
    event, queued = publish(tx, s, owner_agent, req["event_type"], req["source"], req["payload"], now)
    return {"ok": True, "accepted_at": event["accepted_at"], "event_type": event["event_type"],
            "source": event["source"], "owner_agent": owner_agent, "event_id": event["event_id"],
            "queued_deliveries": queued, **counters(tx.delivery_counts(event["event_id"]))}


def visible_event(principal: Principal, event: Row | None, event_id: str) -> Row:
    if event is None or not may_reach(principal, event):
        raise NotFound(f"webhook event {event_id} not found", code="event_not_found")
    return event


def op_replay(tx: Tx, s: Settings, principal: Principal, event_id: str, now: float) -> dict[str, Any]:
    """Send the event again to every active subscription of its owner that names its type (new deliveries;
    the old ones stay as they ended). The counters cover all deliveries of the event."""
    event = visible_event(principal, tx.get_webhook_event(event_id), event_id)
    queued = _queue_event(tx, s, event, now)
    at = iso(now)
    tx.update_webhook_event(event_id, {"replayed_at": at})
    return {"ok": True, "event_id": event_id, "owner_agent": event["owner_agent"], "event_type": event["event_type"],
            "queued_deliveries": queued, **counters(tx.delivery_counts(event_id)), "replayed_at": at}


def op_set_delivery(tx: Tx, principal: Principal, sa_id: str, req: dict[str, Any], now: float) -> dict[str, Any]:
    """How an agent gets its intents: ``http`` (POSTed to callback_url, signed with the agent's delivery secret)
    or a feed mode. The workspace key or the agent's own key may set it. A generated secret is answered once."""
    sa = tx.get_service_account(sa_id)
    if sa is None or sa["status"] == "deleted" or not (principal.is_admin or principal.service_account_id == sa_id):
        raise NotFound(f"service account {sa_id} not found", code="service_account_not_found")
    mode = req["delivery_mode"]
    if mode == "http" and not req.get("callback_url"):
        raise Unprocessable("callback_url: required when delivery_mode is http", details={"field": "callback_url"})
    fields: Row = {"delivery_mode": mode, "callback_url": req.get("callback_url"), "updated_at": iso(now)}
    generated = None
    if req.get("delivery_secret"):
        fields["delivery_secret"] = req["delivery_secret"]
    elif mode == "http" and (req.get("rotate_secret") or not sa.get("delivery_secret")):
        generated = fields["delivery_secret"] = new_secret()
    tx.update_service_account(sa_id, fields)
    audit.by(tx, "service_account.delivery.updated", now, principal, owner_agent=sa["address"],
             target=("service_account", sa_id), delivery_mode=mode, callback_url=fields["callback_url"],
             secret_changed=True if "delivery_secret" in fields else None)
    answer: dict[str, Any] = {"ok": True, "delivery": delivery_config_view({**sa, **fields})}
    if generated is not None:
        answer["delivery_secret"] = generated
    return answer


# ---------------------------------------------------------------------------------------------
# /v1/deliveries: submit a payload to an http agent, replay any delivery


def op_submit_delivery(tx: Tx, s: Settings, principal: Principal, owner_agent: str, req: dict[str, Any],
                       now: float) -> tuple[Row, bool]:
    """Queue ``req["payload"]`` for the http agent at ``owner_agent`` (POSTed to its callback_url, signed with its
    delivery secret, retried like a webhook). Returns the row and whether it was queued by an earlier call with
    the same idempotency key (the same body answers that delivery; another body is a conflict)."""
    key = req.get("idempotency_key")
    if key is not None:
        earlier = tx.outbound_by_idempotency(owner_agent, key)
        if earlier is not None:
            if earlier["kind"] != DIRECT or loads(earlier["payload"]) != req["payload"] or \
                    earlier["correlation_id"] != req.get("correlation_id"):
                raise Conflict("idempotency key reused with a different delivery", code="idempotency_conflict",
                               details={"field": "idempotency_key"})
            return earlier, True
    binding = tx.http_binding(owner_agent)
    if binding is None:
        raise Conflict(f"{owner_agent} has no http delivery binding to deliver to; set one with PATCH "
                       "/v1/service-accounts/{id}/delivery (delivery_mode http, callback_url)",
                       code="delivery_binding_missing", details={"principal_id": owner_agent})
    row = queue_delivery(tx, now, kind=DIRECT, owner_agent=owner_agent, callback_url=binding["callback_url"],
                         **scope.stamp(s),
                         event_type="delivery.submitted", max_attempts=s.webhook_max_attempts,
                         payload=dumps(req["payload"]), correlation_id=req.get("correlation_id"),
                         idempotency_key=key, replay_of_delivery_id=None)
    audit.by(tx, "delivery.submitted", now, principal, owner_agent=owner_agent,
             target=("delivery", row["delivery_id"]), correlation_id=req.get("correlation_id"))
    return row, False


def op_replay_delivery(tx: Tx, s: Settings, principal: Principal, delivery_id: str, now: float) -> Row:
    """A new delivery of what ``delivery_id`` carried, to where it went (the old row stays as it ended). A
    webhook goes again to its subscription if still active; an intent only while it waits for pickup (at its
    current attempt); a delivery still pending is not doubled (409)."""
    old = tx.get_outbound(delivery_id)
    if old is None or not may_reach(principal, old):
        raise NotFound(f"delivery {delivery_id} not found", code="delivery_not_found")
    if old["status"] == PENDING:
        raise Conflict(f"delivery {delivery_id} is still pending; it is tried again by itself",
                       code="delivery_pending")
    fields: Row = {"kind": old["kind"], "owner_agent": old["owner_agent"], "replay_of_delivery_id": delivery_id,
                   "event_type": old["event_type"], "correlation_id": old.get("correlation_id"),
                   **scope.stamp_of(old)}
    if old["kind"] == "webhook":
        sub = tx.get_subscription(old["subscription_id"])
        if sub is None or sub["revoked_at"] is not None or not sub["active"]:
            raise Conflict(f"the subscription of delivery {delivery_id} was revoked or deactivated",
                           code="subscription_inactive")
        fields.update(callback_url=sub["callback_url"], subscription_id=sub["subscription_id"],
                      event_id=old["event_id"], max_attempts=s.webhook_max_attempts)
    else:
        binding = tx.http_binding(old["owner_agent"])
        if binding is None:
            raise Conflict(f"{old['owner_agent']} has no http delivery binding any more",
                           code="delivery_binding_missing")
        fields["callback_url"] = binding["callback_url"]
        if old["kind"] == DIRECT:
            fields.update(payload=old["payload"], max_attempts=s.webhook_max_attempts)
        else:
            intent = tx.get_intent(old["intent_id"])
            if intent is None or intent["status"] not in lc.AWAITING_PICKUP:
                status = intent["status"] if intent is not None else "gone"
                raise Conflict(f"intent {old['intent_id']} is {status}; only an intent waiting for its agent is "
                               "delivered again", code="intent_not_awaiting_delivery")
            fields.update(intent_id=old["intent_id"], intent_attempt=intent["delivery_attempt"], max_attempts=1)
    row = queue_delivery(tx, now, **fields)
    if old["kind"] == "webhook":
        event = tx.get_webhook_event(old["event_id"])
        row["event_payload"] = event["payload"] if event is not None else None
    audit.by(tx, "delivery.replayed", now, principal, owner_agent=old["owner_agent"],
             target=("delivery", row["delivery_id"]), replay_of_delivery_id=delivery_id)
    return row


# ---------------------------------------------------------------------------------------------
# the sender's operations


def op_claim(tx: Tx, s: Settings, now: float, limit: int, held: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """Lease up to ``limit`` due deliveries; for those still worth sending, what to send:
    ``{delivery_id, url, secret, event_type, body}`` (the body is signed as is). Those of a killed agent (``held``)
    wait, no try counted, until its resume makes them due (engine/mesh.py). ``held`` is the sender's view of the
    kill switch when it queued this operation; an agent in it is looked up again here, since a resume may have
    committed since then, and its released deliveries would be held another ``HOLD_SECONDS``."""
    rows = tx.claim_outbound(now, now + lease_seconds(s), limit)
    jobs = []
    killed: dict[str, bool] = {}
    for row in rows:
        owner = row["owner_agent"]
        if owner in held:
            if owner not in killed:
                agent = tx.mesh_agent(mesh.where(s, owner), owner)
                killed[owner] = agent is not None and bool(agent["killed"])
            if killed[owner]:
                tx.update_outbound(row["delivery_id"], {"next_ts": now + mesh.HOLD_SECONDS, "lease_until_ts": None})
                continue
        job = (_webhook_job(tx, row, now) if row["kind"] == "webhook" else
               _direct_job(tx, row, now) if row["kind"] == DIRECT else _intent_job(tx, row, now))
        if job is not None:
            jobs.append(job)
    return jobs


def _close(tx: Tx, row: Row, now: float, status: str, reason: str) -> None:
    tx.update_outbound(row["delivery_id"], {"status": status, "last_error": reason, "lease_until_ts": None,
                                            "updated_at": iso(now)})


def _webhook_job(tx: Tx, row: Row, now: float) -> dict[str, Any] | None:
    sub = tx.get_subscription(row["subscription_id"])
    event = tx.get_webhook_event(row["event_id"])
    if sub is None or event is None or sub["revoked_at"] is not None or not sub["active"]:
        _close(tx, row, now, DEAD_LETTERED, "the subscription was revoked or deactivated")
        return None
    body = {"event_id": event["event_id"], "event_type": event["event_type"], "source": event["source"],
            "owner_agent": event["owner_agent"], "accepted_at": event["accepted_at"],
            "payload": loads(event["payload"]), "subscription_id": sub["subscription_id"],
            "delivery_id": row["delivery_id"], "attempt": row["attempts"] + 1}
    return {"delivery_id": row["delivery_id"], "url": sub["callback_url"], "secret": sub["secret"],
            "event_type": event["event_type"], "body": orjson.dumps(body)}


def _intent_job(tx: Tx, row: Row, now: float) -> dict[str, Any] | None:
    intent = tx.get_intent(row["intent_id"])
    if intent is None or intent["delivery_attempt"] != row["intent_attempt"] or \
            intent["status"] not in lc.AWAITING_PICKUP:
        _close(tx, row, now, SKIPPED, "the intent moved on before this attempt was sent")
        return None
    binding = tx.http_binding(row["owner_agent"])
    if binding is None:
        _close(tx, row, now, FAILED, "the agent has no http binding any more")
        return None
    body = {"event_type": "intent.delivered", "delivery_id": row["delivery_id"],
            **intent_view(intent)}
    return {"delivery_id": row["delivery_id"], "url": binding["callback_url"], "secret": binding["delivery_secret"],
            "event_type": "intent.delivered", "body": orjson.dumps(body)}


def _direct_job(tx: Tx, row: Row, now: float) -> dict[str, Any] | None:
    binding = tx.http_binding(row["owner_agent"])
    if binding is None:
        _close(tx, row, now, DEAD_LETTERED, "the agent has no http binding any more")
        return None
    body = {"event_type": "delivery.submitted", "delivery_id": row["delivery_id"],
            "replay_of_delivery_id": row["replay_of_delivery_id"], "correlation_id": row["correlation_id"],
            "principal_id": row["owner_agent"], "payload": loads(row["payload"]), "attempt": row["attempts"] + 1}
    return {"delivery_id": row["delivery_id"], "url": binding["callback_url"], "secret": binding["delivery_secret"],
            "event_type": "delivery.submitted", "body": orjson.dumps(body)}


def op_record(tx: Tx, s: Settings, delivery_id: str, now: float, *, status_code: int | None,
              error: str | None) -> None:
    """The outcome of one POST (``error`` None: a 2xx). A delivered intent becomes DELIVERED; a failed webhook
    waits for its next try or is dead-lettered after the last."""
    row = tx.get_outbound(delivery_id)
    if row is None or row["status"] != PENDING:
        return
    attempts = row["attempts"] + 1
    at = iso(now)
    fields: Row = {"attempts": attempts, "last_status_code": status_code, "last_error": error,
                   "lease_until_ts": None, "updated_at": at}
    if error is None:
        fields.update(status=DELIVERED, delivered_at=at)
        if row["kind"] == "intent":
            op_mark_delivered(tx, s, row["intent_id"], row["intent_attempt"], row["owner_agent"], now)
    else:
        if row["kind"] != "intent":  # an intent's attempt counts when its redelivery timer gives it up
            mesh.note_delivery_failure(tx, s, row["owner_agent"], now)
        if attempts >= row["max_attempts"]:
            fields["status"] = FAILED if row["kind"] == "intent" else DEAD_LETTERED
        else:
            fields["next_ts"] = now + backoff(s, attempts)
            tx.notes.outbound = True
    tx.update_outbound(delivery_id, fields)

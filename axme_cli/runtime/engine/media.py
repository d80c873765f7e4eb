"""Media uploads: create (a pending upload and its capability URL), the parts a PUT writes, finalize (size and
sha256 checked), expiry, who may read an upload, and attaching uploads to intents and inbox messages.

Each ``op_*`` runs inside one store transaction. The bytes themselves are not here: the API streams them into a
part (``runtime/media_files.py``) between ``op_begin_part`` and ``op_part_done``, so that a part is durable
before the upload points at it, and a part that is replaced, fails or expires is marked dead in the same
transaction that makes it so, then deleted (``op_sweep`` finds those whose deletion a crash interrupted).

Who may read an upload (its metadata, its bytes, attach it): the workspace admin key and people (members, who see
every intent), its owner, the participants of an intent that attached it (sender, addressee, ``reply_to``), and
every owner holding an inbox thread in which a message attached it. Only the owner and the admin key finalize.
An upload belongs to the workspace it was created in (``org_id`` / ``workspace_id``, NULL for the default one):
nobody of another workspace reads, finalizes or attaches it (404, as for one that does not exist).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from axme_cli.protocol import media as wire
from axme_cli.protocol.ids import uuid7
from axme_cli.runtime import scope
from axme_cli.runtime.clock import iso
from axme_cli.runtime.engine import audit, idempotency, quotas
from axme_cli.runtime.engine.intents import acting_as
from axme_cli.runtime.errors import Conflict, Forbidden, Gone, NotFound, PayloadTooLarge, Unprocessable
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Row, Tx

WRITING, CURRENT, DEAD = "writing", "current", "dead"
SWEEP_LIMIT = 100


def not_found(upload_id: str) -> NotFound:
    return NotFound(f"upload {upload_id} not found", code="upload_not_found", details={"upload_id": upload_id})


def status_of(row: Row, now: float) -> str:
    """pending, ready or expired (a pending upload whose URL ran out is expired before the sweep says so)."""
    if row["status"] == wire.PENDING and row["expires_ts"] <= now:
        return wire.EXPIRED
    return str(row["status"])


def owns(principal: Principal, row: Row) -> bool:
    return principal.is_admin or row["owner_agent"] == principal.address


def tx_may_read(tx: Tx, principal: Principal, row: Row) -> bool:
    return scope.belongs(principal, row) and (principal.is_member or row["owner_agent"] == principal.address
                                              or tx.media_readable(row["upload_id"], principal.address))


# ---------------------------------------------------------------------------------------------
# views


def object_path(row: Row) -> str:
    return f"uploads/{row['upload_id']}"


def created_view(row: Row, upload_url: str) -> dict[str, Any]:
    """``api.media.create_upload.response.v1``."""
    return {"ok": True, "upload_id": row["upload_id"], "owner_agent": row["owner_agent"], "bucket": wire.BUCKET,
            "object_path": object_path(row), "upload_url": upload_url, "status": wire.PENDING,
            "expires_at": row["expires_at"], "max_size_bytes": row["size_bytes"]}


def finalized_view(row: Row) -> dict[str, Any]:
    """``api.media.finalize_upload.response.v1``."""
    return {"ok": True, "upload_id": row["upload_id"], "owner_agent": row["owner_agent"], "bucket": wire.BUCKET,
            "object_path": object_path(row), "mime_type": row["mime_type"], "size_bytes": row["received_bytes"],
            "sha256": row["sha256"], "status": wire.READY, "finalized_at": row["finalized_at"]}


def upload_view(row: Row, base_url: str, now: float) -> dict[str, Any]:
    """``upload`` of ``api.media.get.response.v1``; the links are this runtime's own routes (they need a key)."""
    status = status_of(row, now)
    ready = status == wire.READY
    return {
        "upload_id": row["upload_id"], "owner_agent": row["owner_agent"], "bucket": wire.BUCKET,
        "object_path": object_path(row), "mime_type": row["mime_type"], "filename": row["filename"],
        "size_bytes": row["received_bytes"] if ready else row["size_bytes"], "sha256": row["sha256"],
        "status": status, "created_at": row["created_at"], "expires_at": row["expires_at"],
        "finalized_at": row["finalized_at"],
        "download_url": f"{base_url}/v1/media/download/{row['upload_id']}" if ready else None,
        "preview_url": (f"{base_url}/v1/media/preview/{row['upload_id']}"
                        if ready and wire.previewable(row["mime_type"]) else None),
    }


def attachment_view(row: Row) -> dict[str, Any]:
    """What an intent or a message keeps of an attached upload."""
    return {"upload_id": row["upload_id"], "filename": row["filename"], "mime_type": row["mime_type"],
            "size_bytes": row["received_bytes"], "sha256": row["sha256"]}


# ---------------------------------------------------------------------------------------------
# create, PUT, finalize


def op_create(tx: Tx, s: Settings, principal: Principal, req: dict[str, Any], token_hash: str, now: float,
              idem: idempotency.Key | None = None) -> Row:
    """A pending upload whose URL carries the token hashed as ``token_hash``. Repeated with the same
    Idempotency-Key it answers the same upload, whose URL then takes the new token only (the first answer's
    URL was lost with it, and a token is never kept in clear, so it cannot be answered again)."""
    outcome = idempotency.once(tx, idem, now, lambda: _create(tx, s, principal, req, token_hash, now))
    row = tx.get_media_upload(outcome.result["upload_id"])
    assert row is not None
    if outcome.replayed:
        if status_of(row, now) != wire.PENDING:
            raise Conflict(f"upload {row['upload_id']} made with this Idempotency-Key is {status_of(row, now)}; "
                           "its URL cannot be answered again", code="upload_not_pending",
                           details={"upload_id": row["upload_id"], "status": status_of(row, now)})
        tx.update_media_upload(row["upload_id"], {"token_hash": token_hash})
        row["token_hash"] = token_hash
    return row


def _create(tx: Tx, s: Settings, principal: Principal, req: dict[str, Any], token_hash: str,
            now: float) -> dict[str, Any]:
    owner, acted = acting_as(s, principal, req.get("owner_agent"), "owner_agent")
    size = req["size_bytes"]
    if size > s.media_max_bytes:
        raise PayloadTooLarge(f"size_bytes: {size} is more than this runtime takes ({s.media_max_bytes} bytes)",
                              code="media_too_large", details={"field": "size_bytes", "limit_bytes": s.media_max_bytes})
    quotas.admit_upload(tx, size, now, s)  # within the workspace's storage_bytes (no query without that limit)
    upload_id = uuid7()
    expires_ts = now + (req.get("ttl_seconds") or s.media_ttl_seconds)
    tx.insert_media_upload({
        "upload_id": upload_id, "owner_agent": owner, "created_by": principal.address, "filename": req["filename"],
        "mime_type": req["mime_type"], "size_bytes": size, "sha256": req.get("sha256"), "status": wire.PENDING,
        "token_hash": token_hash, "created_at": iso(now), "expires_at": iso(expires_ts), "expires_ts": expires_ts,
        "finalized_at": None, "part_id": None, "received_bytes": None, "received_sha256": None, **scope.stamp(s),
    })
    audit.by(tx, "media.upload.created", now, principal, owner_agent=owner, target=("media_upload", upload_id),
             size_bytes=size, mime_type=req["mime_type"], **acted)
    return {"upload_id": upload_id}


def check_pending(row: Row, now: float) -> None:
    """409 once it is ready, 410 once its URL ran out."""
    status = status_of(row, now)
    if status == wire.EXPIRED:
        raise Gone(f"upload {row['upload_id']} expired at {row['expires_at']}; create a new one",
                   code="upload_expired", details={"upload_id": row["upload_id"], "expires_at": row["expires_at"]})
    if status != wire.PENDING:
        raise Conflict(f"upload {row['upload_id']} is {status}: its bytes cannot change any more",
                       code="upload_not_pending", details={"upload_id": row["upload_id"], "status": status})


def token_matches(row: Row, token_hash: str) -> bool:
    return hmac.compare_digest(row["token_hash"].encode(), token_hash.encode())


def op_begin_part(tx: Tx, upload_id: str, token_hash: str, part_id: str, now: float) -> Row:
    """A PUT with the upload URL's token starts a part (``writing``)."""
    row = tx.get_media_upload(upload_id)
    if row is None or not token_matches(row, token_hash):
        raise not_found(upload_id)
    check_pending(row, now)
    tx.insert_media_part({"part_id": part_id, "upload_id": upload_id, "state": WRITING, "created_ts": now})
    return row


def op_part_done(tx: Tx, upload_id: str, part_id: str, size: int, sha256: str, now: float) -> tuple[Row, list[str]]:
    """The part's bytes are durable: the upload points at it, the part it replaces is dead. Returns the upload and
    the dead parts to delete."""
    row = tx.get_media_upload(upload_id)
    part = tx.get_media_part(part_id)
    if row is None or part is None:
        raise not_found(upload_id)
    check_pending(row, now)
    if part["state"] != WRITING:
        raise Conflict(f"upload {upload_id} changed while these bytes arrived; PUT them again",
                       code="upload_not_pending", details={"upload_id": upload_id})
    dead = [row["part_id"]] if row["part_id"] else []
    fields = {"part_id": part_id, "received_bytes": size, "received_sha256": sha256}
    tx.update_media_upload(upload_id, fields)
    row.update(fields)
    tx.set_media_part_state([part_id], CURRENT)
    tx.set_media_part_state(dead, DEAD)
    return row, dead


def op_forget_parts(tx: Tx, part_ids: list[str]) -> None:
    """Their bytes are deleted (or were never kept)."""
    tx.delete_media_parts(part_ids)


def op_finalize(tx: Tx, principal: Principal, req: dict[str, Any], now: float) -> dict[str, Any]:
    """Ready, if the bytes PUT last have the size (and sha256) the caller states and declared at create. A
    mismatch changes nothing: the upload stays pending (a new PUT may fix it) and unusable."""
    upload_id = req["upload_id"].lower()
    row = tx.get_media_upload(upload_id)
    if row is None or not tx_may_read(tx, principal, row):
        raise not_found(upload_id)
    if not owns(principal, row):
        raise Forbidden(f"only {row['owner_agent']} (the upload's owner) or the workspace admin key may finalize it",
                        code="policy_denied", details={"allowed": [row["owner_agent"]]})
    if status_of(row, now) == wire.READY:
        if req["size_bytes"] == row["received_bytes"] and req.get("sha256") in (None, row["sha256"]):
            return finalized_view(row)  # finalized again with the same facts: the same answer
        raise Conflict(f"upload {upload_id} is already finalized with other contents", code="upload_not_pending",
                       details={"upload_id": upload_id, "status": wire.READY})
    check_pending(row, now)
    if row["part_id"] is None:
        raise Conflict(f"upload {upload_id} has no bytes yet: PUT them to its upload_url first",
                       code="upload_incomplete", details={"upload_id": upload_id})
    got, digest = row["received_bytes"], row["received_sha256"]
    if req["size_bytes"] != got or got != row["size_bytes"]:
        stated = req["size_bytes"] if req["size_bytes"] != got else row["size_bytes"]
        raise Unprocessable(f"size_bytes: {stated} was stated but the upload received {got} bytes; PUT the whole "
                            "file again", code="size_mismatch",
                            details={"field": "size_bytes", "received_bytes": got, "declared_bytes": row["size_bytes"]})
    for stated_sha in (req.get("sha256"), row["sha256"]):
        if stated_sha is not None and stated_sha != digest:
            raise Unprocessable(f"sha256: {stated_sha} was stated but the bytes received hash to {digest}; PUT the "
                                "file again", code="sha256_mismatch",
                                details={"field": "sha256", "received_sha256": digest})
    fields = {"status": wire.READY, "finalized_at": iso(now), "sha256": digest}
    tx.update_media_upload(upload_id, fields)
    # usage: the bytes now stored, in the upload's workspace (engine/usage.py)
    tx.notes.see(("stored", got, (row["org_id"], row["workspace_id"]) if row.get("workspace_id") else None))
    row.update(fields)
    others = [p["part_id"] for p in tx.media_parts_of(upload_id) if p["part_id"] != row["part_id"]]
    tx.set_media_part_state(others, DEAD)  # a PUT still streaming fails at its end
    audit.by(tx, "media.upload.finalized", now, principal, owner_agent=row["owner_agent"],
             target=("media_upload", upload_id), size_bytes=got, sha256=digest)
    return finalized_view(row)


def op_sweep(tx: Tx, now: float) -> list[str]:
    """Pending uploads whose URL ran out become expired (their parts dead); returns dead parts to delete."""
    for upload_id in tx.expired_media_uploads(now, SWEEP_LIMIT):
        tx.update_media_upload(upload_id, {"status": wire.EXPIRED, "part_id": None})
        tx.set_media_part_state([p["part_id"] for p in tx.media_parts_of(upload_id)], DEAD)
    return tx.dead_media_parts(SWEEP_LIMIT)


# ---------------------------------------------------------------------------------------------
# attachments


def attach(tx: Tx, principal: Principal, attachments: list[dict[str, Any]], now: float,
           field: str = "attachments") -> list[dict[str, Any]]:
    """The uploads a sender attaches, as the intent or message keeps them: each a finalized upload the sender may
    read (422 naming ``attachments[i].upload_id`` otherwise, whether or not it exists)."""
    kept: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, item in enumerate(attachments):
        upload_id = str(item["upload_id"]).lower()
        if upload_id in seen:
            continue
        seen.add(upload_id)
        row = tx.get_media_upload(upload_id)
        if row is None or not tx_may_read(tx, principal, row) or status_of(row, now) != wire.READY:
            name = f"{field}[{i}].upload_id"
            raise Unprocessable(f"{name}: {upload_id} is not a finalized upload this caller may read",
                                code="invalid_attachment", details={"field": name})
        kept.append(attachment_view(row))
    return kept


def grant(tx: Tx, attached: list[dict[str, Any]], intent_id: str, addresses: list[str | None]) -> None:
    """The intent's participants may read what it attached."""
    for item in attached:
        for address in dict.fromkeys(a for a in addresses if a):
            tx.grant_media(item["upload_id"], address, intent_id)


def link_thread(tx: Tx, attached: list[dict[str, Any]], thread_id: str) -> None:
    for item in attached:
        tx.link_media_thread(item["upload_id"], thread_id)


def with_attachments(tx: Tx, principal: Principal, attachments: list[dict[str, Any]], req: dict[str, Any],
                     now: float, create: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """``create`` (an intent create operation) for a request that attaches uploads: checked, kept in the intent,
    and readable by its sender, addressee and ``reply_to`` from then on (same transaction)."""
    attached = attach(tx, principal, attachments, now)
    body = create({**req, "attachments": attached})
    grant(tx, attached, body["intent_id"], [req["to_agent"], req["from_agent"], req.get("reply_to")])
    return body


def reply_with_attachments(tx: Tx, principal: Principal, attachments: list[dict[str, Any]] | None, thread_id: str,
                           now: float, reply: Callable[[list[dict[str, Any]] | None], dict[str, Any]]
                           ) -> dict[str, Any]:
    """``reply`` (an inbox reply operation) with uploads attached to its message: every owner holding the thread
    (delegates added later too) may read them."""
    if not attachments:
        return reply(None)
    attached = attach(tx, principal, attachments, now)
    body = reply(attached)
    link_thread(tx, attached, thread_id)
    return body

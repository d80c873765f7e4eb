"""/v1/media routes (axme-docs d4): create an upload, PUT its bytes to the upload URL, finalize it, read it.

- ``POST /v1/media/create-upload`` answers ``upload_url``: this runtime's ``PUT /v1/media/upload/{id}?token=...``.
  The token is the capability (256 bits; only its sha256 is kept; it ends with the upload's ``expires_at``), so the
  PUT needs no API key, and whoever holds the URL may upload until the upload is finalized.
- The PUT streams the body into a part (``runtime/media_files.py``): never more than a chunk in memory, refused
  with 413 before anything is stored when its Content-Length is more than the upload's ``size_bytes``, cut with
  413 as soon as a body without one goes past it, and answered only once the bytes are durable. Its body may take
  longer than the plain body deadline while it keeps arriving (``http1.Connection.long_body``).
- Finalize checks size and sha256 (422 and nothing changes when they differ); then ``GET /v1/media/{id}``, the
  download (``Content-Disposition: attachment``, a type no browser runs) and the preview (raster images inline)
  are open to whoever may read the upload (``engine/media.py``).
- Pending uploads past their ``expires_at`` and replaced or failed parts are swept after a create or a finalize, at
  most once a minute per process (``Settings.media_sweep_seconds``, ``engine.media.op_sweep``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from axme_cli.protocol import media as wire
from axme_cli.protocol.models import UUID_PATTERN
from axme_cli.runtime import scope
from axme_cli.runtime.api.common import (
    authenticate,
    echo_headers,
    idempotency_key,
    parse_object,
    read_body,
    respond,
    runtime,
)
from axme_cli.runtime.api.errors import error_response
from axme_cli.runtime.api.intents import check_address, resolve_target, validation_failed
from axme_cli.runtime.core import Runtime
from axme_cli.runtime.engine import idempotency
from axme_cli.runtime.engine import media as engine
from axme_cli.runtime.errors import BadRequest, Conflict, DomainError, PayloadTooLarge
from axme_cli.runtime.http1 import CONNECTION
from axme_cli.runtime.media_files import Blobs, blobs_for, new_part_id
from axme_cli.runtime.principals import Principal, hash_token
from axme_cli.runtime.store.base import Row

log = logging.getLogger("axme.media")

TOKEN_PREFIX = "axme_up_"
_UUID = re.compile(UUID_PATTERN)
_last_sweep: weakref.WeakKeyDictionary[Runtime, float] = weakref.WeakKeyDictionary()
_sweeps: set[asyncio.Task[None]] = set()


def _model(raw: bytes, model: type[BaseModel]) -> dict[str, Any]:
    try:
        return model.model_validate(parse_object(raw)).model_dump()
    except ValidationError as exc:
        raise validation_failed(exc) from None


def _idem(request: Request, principal: Principal, raw: bytes) -> idempotency.Key | None:
    key = idempotency_key(request)
    if not key:
        return None
    return f"{principal.key_id}:POST {request.url.path}", key, hashlib.sha256(raw).hexdigest()


def _upload_id(request: Request) -> str:
    upload_id = request.path_params["upload_id"]
    if not _UUID.match(upload_id):
        raise engine.not_found(upload_id[:64])
    return str(upload_id).lower()


async def _readable(rt: Runtime, principal: Principal, upload_id: str) -> Row:
    """The upload if this caller may read it; 404 alike for one that does not exist and one it may not see (of
    another workspace too)."""
    row = await rt.reads.get_media_upload(upload_id)
    if row is None or not scope.belongs(principal, row) or not (
            principal.is_member or row["owner_agent"] == principal.address
            or await rt.reads.media_readable(upload_id, principal.address)):
        raise engine.not_found(upload_id)
    return row


# ---------------------------------------------------------------------------------------------
# create, PUT, finalize


async def create_upload(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    s = scope.settings_for(rt.settings, principal)
    raw = await read_body(request)
    req = _model(raw, wire.CreateUploadRequest)
    owner = req.get("owner_agent")
    if owner and owner != principal.address and not (principal.email and owner.strip().lower() == principal.email):
        req["owner_agent"] = await check_address(rt, s, resolve_target(s, owner, "owner_agent"), "owner_agent")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    idem = _idem(request, principal, raw)
    row = await rt.write(lambda tx: engine.op_create(tx, s, principal, req, hash_token(token), rt.clock.time(), idem))
    _sweep_soon(rt)
    url = f"{rt.public_url}/v1/media/upload/{row['upload_id']}?token={token}"
    return respond(engine.created_view(row, url), request=request)


def _content_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    if not raw.isascii() or not raw.strip().isdigit():
        raise BadRequest("invalid Content-Length header")
    return int(raw)


def _closing(exc: DomainError, request: Request) -> Response:
    """A refusal sent while the body may still be arriving: the connection closes after it, so nobody has to read
    (or wait for) the rest."""
    response = error_response(exc, request)
    response.headers["connection"] = "close"
    return response


async def put_bytes(request: Request) -> Response:
    rt = runtime(request)
    upload_id = _upload_id(request)
    token = request.query_params.get("token") or ""
    token_hash = hash_token(token)
    part_id = new_part_id()
    try:
        row = await rt.reads.get_media_upload(upload_id)
        if row is None or not token or not engine.token_matches(row, token_hash):
            # a wrong token counts as a guess of a secret, as an unknown task-link token does
            rt.throttle.guess(request.client.host if request.client else None)
            raise engine.not_found(upload_id)
        limit = int(row["size_bytes"])
        engine.check_pending(row, rt.clock.time())
        length = _content_length(request)
        if length is not None and length > limit:
            raise _too_large(limit)
        await rt.write(lambda tx: engine.op_begin_part(tx, upload_id, token_hash, part_id, rt.clock.time()))
    except DomainError as exc:
        return _closing(exc, request)  # nothing read, nothing stored
    connection = request.scope.get("extensions", {}).get(CONNECTION)
    if connection is not None:
        connection.long_body()
    blobs = blobs_for(rt.store)
    part = blobs.part(part_id)
    try:
        async for chunk in request.stream():
            if part.size + len(chunk) > limit:
                raise _too_large(limit)
            await part.write(chunk)
        digest = await part.close()
        size = part.size
        done, dead = await rt.write(
            lambda tx: engine.op_part_done(tx, upload_id, part_id, size, digest, rt.clock.time()))
    except BaseException as exc:
        part.release()
        if isinstance(exc, Exception):
            await _forget(rt, blobs, [part_id])
        if isinstance(exc, DomainError):
            return _closing(exc, request)
        raise
    await _forget(rt, blobs, dead)
    return respond({"ok": True, "upload_id": upload_id, "status": wire.PENDING,
                    "received_bytes": done["received_bytes"], "sha256": done["received_sha256"],
                    "size_bytes": done["size_bytes"]}, request=request)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the body is larger than this upload's size_bytes ({limit} bytes); create an upload "
                           "for the size of the file", code="media_too_large", details={"limit_bytes": limit})


async def _forget(rt: Runtime, blobs: Blobs, part_ids: list[str]) -> None:
    """Delete these parts' bytes, then their rows (a crash in between leaves dead rows for the next sweep)."""
    if not part_ids:
        return
    try:
        for part_id in part_ids:
            await blobs.delete(part_id)
        await rt.write(lambda tx: engine.op_forget_parts(tx, part_ids))
    except Exception as exc:  # the sweep tries again
        log.warning("could not delete %d media part(s) yet: %s", len(part_ids), exc)


async def finalize_upload(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    raw = await read_body(request)
    req = _model(raw, wire.FinalizeUploadRequest)
    idem = _idem(request, principal, raw)
    now = rt.clock.time()
    result = await rt.write(
        lambda tx: idempotency.once(tx, idem, now, lambda: engine.op_finalize(tx, principal, req, now)).result)
    _sweep_soon(rt)
    return respond(result, request=request)


# ---------------------------------------------------------------------------------------------
# reads


async def get_upload(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    row = await _readable(rt, principal, _upload_id(request))
    return respond({"ok": True, "upload": engine.upload_view(row, rt.public_url, rt.clock.time())}, request=request)


def _disposition(kind: str, filename: str) -> str:
    """``attachment`` / ``inline`` with the name as plain ASCII and as UTF-8 (RFC 6266); never a path."""
    ascii_name = re.sub(r"[^A-Za-z0-9._() -]", "_", filename).strip() or "download"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


async def _serve(request: Request, *, preview: bool) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    row = await _readable(rt, principal, _upload_id(request))
    if engine.status_of(row, rt.clock.time()) != wire.READY:
        raise Conflict(f"upload {row['upload_id']} is not finalized", code="upload_not_ready",
                       details={"upload_id": row["upload_id"], "status": engine.status_of(row, rt.clock.time())})
    inline = preview and wire.previewable(row["mime_type"])
    media_type = wire.bare_type(row["mime_type"]) if inline else wire.download_type(row["mime_type"])
    headers = {
        "content-type": media_type,  # as is: Starlette would add a charset to text/* that the file may not have
        "content-length": str(row["received_bytes"]),
        "content-disposition": _disposition("inline" if inline else "attachment", row["filename"]),
        "x-content-type-options": "nosniff",
        "content-security-policy": "default-src 'none'; sandbox",
        "cross-origin-resource-policy": "same-origin",
        "cache-control": "private, no-store",
        **(echo_headers(request) or {}),
    }
    return StreamingResponse(_bytes(blobs_for(rt.store), row["part_id"]), headers=headers)


async def _bytes(blobs: Blobs, part_id: str) -> AsyncIterator[bytes]:
    async for data in blobs.read(part_id):
        yield data


async def download(request: Request) -> Response:
    return await _serve(request, preview=False)


async def preview(request: Request) -> Response:
    return await _serve(request, preview=True)


# ---------------------------------------------------------------------------------------------
# the sweep


def _sweep_soon(rt: Runtime) -> None:
    now = time.monotonic()
    if now - _last_sweep.get(rt, float("-inf")) < rt.settings.media_sweep_seconds:
        return
    _last_sweep[rt] = now
    task = asyncio.get_running_loop().create_task(sweep(rt))
    _sweeps.add(task)
    task.add_done_callback(_sweeps.discard)


async def sweep(rt: Runtime) -> None:
    """Expire pending uploads past their URL's end and delete the bytes of dead parts."""
    try:
        dead = await rt.write(lambda tx: engine.op_sweep(tx, rt.clock.time()))
        await _forget(rt, blobs_for(rt.store), dead)
    except Exception as exc:
        log.warning("media sweep failed (it runs again later): %s", exc)


routes = [
    Route("/v1/media/create-upload", create_upload, methods=["POST"]),
    Route("/v1/media/finalize-upload", finalize_upload, methods=["POST"]),
    Route("/v1/media/upload/{upload_id}", put_bytes, methods=["PUT"]),
    Route("/v1/media/download/{upload_id}", download, methods=["GET"]),
    Route("/v1/media/preview/{upload_id}", preview, methods=["GET"]),
    Route("/v1/media/{upload_id}", get_upload, methods=["GET"]),
]

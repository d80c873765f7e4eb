"""Media uploads on the wire (axp-spec api.media.*; axme-docs d4) and what a file's type lets a browser do with it.

An upload's filename and MIME type are metadata a caller chose: the runtime never builds a path from them, and
serves the bytes with a type from ``download_type`` (a type no browser executes, else application/octet-stream).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

from axme_cli.protocol.models import JsonInt, Uuid, _Strict

BUCKET = "axme-media"
MAX_BYTES = 2**31  # the spec's bound on size_bytes (2 GiB)
TTL_MIN, TTL_MAX = 60, 7 * 24 * 3600
PENDING, READY, EXPIRED = "pending", "ready", "expired"

# type/subtype (RFC 6838 names), optionally ;parameters
_MIME = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}"
                   r"(\s*;\s*[a-z0-9!#$&^_.+-]+=(\"[\x20-\x21\x23-\x7e]*\"|[a-z0-9!#$&^_.+-]+))*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# Types served as themselves on download: none of them is run by a browser (no HTML, SVG, XML, script, CSS).
_INERT = frozenset({
    "application/pdf", "application/json", "application/zip", "application/gzip", "application/x-tar",
    "application/octet-stream", "text/plain", "text/csv", "image/png", "image/jpeg", "image/gif", "image/webp",
    "image/avif", "image/bmp", "image/tiff",
})
# Shown inline by the preview: raster images only (an SVG may carry script).
PREVIEWABLE = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp"})


def check_mime_type(value: str) -> str:
    """The type lower-cased (ValueError if it is no MIME type)."""
    lowered = value.strip().lower()
    if not _MIME.match(lowered):
        raise ValueError("must be a MIME type such as application/pdf or image/png")
    return lowered


def check_filename(value: str) -> str:
    """The name as given (ValueError if it has control characters or path separators)."""
    if _CONTROL.search(value) or "/" in value or "\\" in value or value.strip() in ("", ".", ".."):
        raise ValueError("must be a file name without control characters or path separators, e.g. contract.pdf")
    return value


def bare_type(mime_type: str) -> str:
    return mime_type.split(";", 1)[0].strip()


def download_type(mime_type: str) -> str:
    """The Content-Type a download is served with."""
    bare = bare_type(mime_type)
    return bare if bare in _INERT or bare.startswith(("audio/", "video/")) else "application/octet-stream"


def previewable(mime_type: str) -> bool:
    return bare_type(mime_type) in PREVIEWABLE


MimeType = Annotated[str, StringConstraints(min_length=3, max_length=255), AfterValidator(check_mime_type)]
Filename = Annotated[str, StringConstraints(min_length=1, max_length=255), AfterValidator(check_filename)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[a-f0-9]{64}$")]
SizeBytes = Annotated[JsonInt, Field(ge=1, le=MAX_BYTES)]


class CreateUploadRequest(_Strict):
    """``api.media.create_upload.request.v1``; ``owner_agent`` may be left out here (the caller's own address)."""

    owner_agent: Annotated[str, StringConstraints(min_length=3, max_length=383)] | None = None
    filename: Filename
    mime_type: MimeType
    size_bytes: SizeBytes
    sha256: Sha256 | None = None
    ttl_seconds: Annotated[JsonInt, Field(ge=TTL_MIN, le=TTL_MAX)] | None = None


class FinalizeUploadRequest(_Strict):
    """``api.media.finalize_upload.request.v1``."""

    upload_id: Uuid
    size_bytes: SizeBytes
    sha256: Sha256 | None = None

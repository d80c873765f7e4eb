"""Request parsing and response shaping shared by every route."""

from __future__ import annotations

import os
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from axme_cli.runtime.core import Runtime
from axme_cli.runtime.errors import ApiError, BadRequest, PayloadTooLarge, Unprocessable
from axme_cli.runtime.principals import Principal, parse_session_token

JSON = "application/json"


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def _echo_headers(request: Request | None) -> dict[str, str] | None:
    """``x-trace-id`` echoed; ``x-request-id`` propagated, or made up when the caller sent none."""
    if request is None:
        return None
    headers = {"x-request-id": request.headers.get("x-request-id") or os.urandom(8).hex()}
    trace = request.headers.get("x-trace-id")
    if trace:
        headers["x-trace-id"] = trace
    return headers


def respond(body: Any, status: int = 200, request: Request | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON, headers=_echo_headers(request))


def respond_raw(body: bytes, request: Request | None = None) -> Response:
    return Response(body, media_type=JSON, headers=_echo_headers(request))


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}, "detail": message}


def error_response(exc: ApiError, request: Request | None = None) -> Response:
    headers = dict(exc.headers)
    headers.update(_echo_headers(request) or {})
    return Response(
        orjson.dumps(error_body(exc.code, exc.message, exc.details)),
        status_code=exc.status_code,
        media_type=JSON,
        headers=headers,
    )


def api_key_of(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    auth = request.headers.get("authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return None


def credential_of(request: Request) -> str | None:
    """A person's access token sent as ``Authorization: Bearer axme_at_...`` wins over an API key sent with it."""
    auth = request.headers.get("authorization")
    if auth and auth[:7].lower() == "bearer ":
        bearer = auth[7:].strip()
        if parse_session_token(bearer) is not None:
            return bearer
    return api_key_of(request)


async def authenticate(request: Request) -> Principal:
    return await runtime(request).authenticate(credential_of(request))


async def read_body(request: Request) -> bytes:
    limit = runtime(request).settings.max_body_bytes
    length = request.headers.get("content-length")
    if length is not None:
        try:
            if int(length) > limit:
                raise PayloadTooLarge(f"request body is larger than {limit} bytes", details={"limit_bytes": limit})
        except ValueError:
            raise BadRequest("invalid Content-Length header") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is larger than {limit} bytes", details={"limit_bytes": limit})
        chunks.append(chunk)
    return b"".join(chunks)


# Deepest JSON nesting a body may have: what the runtime parses it must also be able to store and write
# back (orjson writes at most 255 levels; pydantic's JSON parser, used for POST /v1/intents, about 200).
MAX_DEPTH = 128


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests arrays and objects more than ``limit`` levels deep (no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def parse_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise BadRequest("request body is empty; send a JSON object", code="invalid_json")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(value, dict):
        raise Unprocessable("request body must be a JSON object", details={"field": "(body)"})
    refuse_deep(raw, value)
    return value


def refuse_deep(raw: bytes, value: Any = None) -> None:
    """422 for a body nested deeper than MAX_DEPTH (``value``: the body already parsed, else it is parsed here;
    only bodies with that many brackets are looked at)."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return
    if too_deep(orjson.loads(raw) if value is None else value):
        raise Unprocessable(f"request body nests arrays and objects more than {MAX_DEPTH} levels deep",
                            code="too_deeply_nested", details={"field": "(body)", "max_depth": MAX_DEPTH})


async def read_object(request: Request) -> dict[str, Any]:
    return parse_object(await read_body(request))


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Unprocessable(
            f"{name}: must be an integer from {low} to {high}, got {raw!r}",
            code="invalid_parameter",
            details={"field": name},
        ) from None
    if not low <= value <= high:
        raise Unprocessable(
            f"{name}: must be from {low} to {high}, got {value}", code="invalid_parameter", details={"field": name}
        )
    return value

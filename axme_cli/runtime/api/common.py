"""Request parsing and response shaping shared by every route."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from axme_cli.protocol.ids import random_bytes
from axme_cli.runtime.core import Runtime
from axme_cli.runtime.engine import answers
from axme_cli.runtime.errors import BadRequest, PayloadTooLarge, Unprocessable
from axme_cli.runtime.http1 import VOUCHED
from axme_cli.runtime.principals import Principal, parse_session_token
from axme_cli.runtime.scope import settings_for
from axme_cli.runtime.store.base import Tx

T = TypeVar("T")

JSON = "application/json"


def runtime(request: Request) -> Runtime:
    # the app's own attribute (api/app.py), not app.state's: State looks a name up through a __getattr__ in Python
    return request.scope["app"].runtime


# What a caller's request or trace id may be for the runtime to send it back: short printable ASCII, so an
# echoed header can carry no control characters, markup or kilobytes of someone else's text into logs. A hot
# route's answer goes to the wire without uvicorn's checks of its header values (http1.VOUCHED): this pattern is
# what keeps a request's bytes out of them, so it must never admit a control character.
_ECHOABLE = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def _echoed(request: Request) -> list[tuple[bytes, bytes]]:
    """``x-trace-id`` echoed and ``x-request-id`` propagated when they look like ids (``_ECHOABLE``); a request id
    is made up when the caller sent none (or one that does not), a trace id is then left out. As raw headers."""
    # One pass over the raw headers (the first of each name, as ``request.headers.get`` gives): every answer
    # comes through here, and the mapping's lookups raise and catch a KeyError for each header that is absent.
    request_id = trace_id = None
    for name, value in request.scope["headers"]:
        if name == b"x-request-id":
            if request_id is None:
                request_id = value
        elif name == b"x-trace-id" and trace_id is None:
            trace_id = value
    if request_id is None or not _ECHOABLE.fullmatch(request_id):
        request_id = random_bytes(8).hex().encode()
    if trace_id is None or not _ECHOABLE.fullmatch(trace_id):
        return [(b"x-request-id", request_id)]
    return [(b"x-request-id", request_id), (b"x-trace-id", trace_id)]


def echo_headers(request: Request | None) -> dict[str, str] | None:
    """``_echoed`` as a mapping, for a response that has more headers of its own."""
    return None if request is None else {k.decode(): v.decode() for k, v in _echoed(request)}


# A scope key set by api/app.py ``_HotPaths`` on the requests it serves itself: their responses reach the server
# with no middleware in between, so one whose headers the runtime's code built may say so (http1.VOUCHED).
DIRECT = "axme.direct"


class _Json(Response):
    """A JSON answer, with the raw headers Starlette's Response makes from ``echo_headers`` (the ids, then
    content-length and content-type, in that order), made without its general ``init_headers``."""

    media_type = JSON

    def __init__(self, body: bytes, status_code: int, request: Request | None) -> None:
        self.status_code = status_code
        self.background = None
        self.body = body
        raw = [] if request is None else _echoed(request)
        if not (status_code < 200 or status_code in (204, 304)):
            raw.append((b"content-length", str(len(body)).encode()))
        raw.append((b"content-type", b"application/json"))
        self.raw_headers = raw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if DIRECT not in scope:
            await super().__call__(scope, receive, send)
            return
        # Starlette's messages (no background task: there is none), the head marked: its headers are the ids
        # (_ECHOABLE), the body's length and a constant type, all with lower-case names
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers,
                    VOUCHED: True})
        await send({"type": "http.response.body", "body": self.body})


def respond(body: Any, status: int = 200, request: Request | None = None) -> Response:
    return _Json(orjson.dumps(body), status, request)


def respond_raw(body: bytes, request: Request | None = None) -> Response:
    return _Json(body, 200, request)


def header(request: Request, name: bytes) -> str | None:
    """``request.headers.get(name)`` (``name`` in lower case) in one pass over the raw headers: the mapping's
    lookup raises and catches a KeyError for a header that is absent, and every request of an agent asks for some
    that are (``authorization`` beside its ``x-api-key``, ``x-owner-agent``)."""
    for key, value in request.scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def api_key_of(request: Request) -> str | None:
    key = header(request, b"x-api-key")
    if key:
        return key.strip()
    auth = header(request, b"authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return None


def credential_of(request: Request) -> str | None:
    """A person's access token sent as ``Authorization: Bearer axme_at_...`` wins over an API key sent with it."""
    auth = header(request, b"authorization")
    if auth and auth[:7].lower() == "bearer ":
        bearer = auth[7:].strip()
        if parse_session_token(bearer) is not None:
            return bearer
    return api_key_of(request)


async def authenticate(request: Request, *, refusable: bool = True, elsewhere_ok: bool = False,
                       person_anywhere: bool = False) -> Principal:
    """Who calls, within the per-key rate limit; the request counts against its workspace's
    ``rate_limit_per_minute`` quota (engine/quotas.py), which refuses it past the limit unless not ``refusable``
    (the quota routes: an operator can always change a quota). ``elsewhere_ok``: a key of another workspace than
    the runtime's default one may call this route; ``person_anywhere``: a person acting in any workspace may
    (``Authenticator.authenticate``)."""
    rt = runtime(request)
    principal = await rt.auth.authenticate(credential_of(request), elsewhere_ok=elsewhere_ok,
                                           person_anywhere=person_anywhere)
    shared = rt.quotas.request(settings_for(rt.settings, principal), refusable=refusable)
    if shared is not None:  # the count replicas share: a write
        await shared
    return principal


async def read_body(request: Request) -> bytes:
    limit = runtime(request).settings.max_body_bytes
    length = header(request, b"content-length")
    if length is not None:
        try:
            if int(length) > limit:
                raise PayloadTooLarge(f"request body is larger than {limit} bytes", details={"limit_bytes": limit})
        except ValueError:
            raise BadRequest("invalid Content-Length header") from None
    # The ASGI messages read as Request.stream() reads them, without its async generator: one made for every body,
    # registered in the loop's weak set of generators by the first-iteration hook and finalized after.
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is larger than {limit} bytes", details={"limit_bytes": limit})
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


# Deepest JSON nesting a body may have: what the runtime parses it must also be able to store and write
# back (orjson writes at most 255 levels; the json module, which reads a body again in _refuse_long_integers,
# recurses).
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


# A run of 19 digits or more somewhere in a body: maybe an integer beyond 64 bits (orjson reads those as a
# double, losing digits), so only then is the body read again to find out (``_refuse_long_integers``).
# 19 digits in a row, looked for in the body with every digit made "0" and every other byte ".": 1.5 us for an
# apply's 2 kB body, where a regular expression took 23 us (more than orjson's whole parse).
_DIGITS_ONLY = bytes(0x30 if 0x30 <= b <= 0x39 else 0x2E for b in range(256))
_LONG_DIGITS = b"0" * 19
_INT_RANGE = (-(2**63), 2**64 - 1)  # what orjson reads and writes as an integer


def _exact_int(text: str) -> int:
    value = int(text)
    if not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
        raise Unprocessable("a number in the request body is an integer beyond 64 bits, which the runtime cannot "
                            "keep exactly; send it as a string", code="invalid_value", details={"field": "(body)"})
    return value


def _refuse_long_integers(raw: bytes) -> None:
    if _LONG_DIGITS in raw.translate(_DIGITS_ONLY):
        json.loads(raw, parse_int=_exact_int)


def parse_json(raw: bytes) -> Any:
    """The one reading of a JSON request body: strict JSON (no NaN or Infinity, and a number must fit a double:
    400 ``invalid_json``), at most MAX_DEPTH deep and with no integer beyond 64 bits (422)."""
    if not raw.strip():
        raise BadRequest("request body is empty; send a JSON object", code="invalid_json")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}", code="invalid_json") from None
    refuse_deep(raw, value)
    _refuse_long_integers(raw)  # after refuse_deep: the json module recurses
    return value


def parse_object(raw: bytes) -> dict[str, Any]:
    value = parse_json(raw)
    if not isinstance(value, dict):
        raise Unprocessable("request body must be a JSON object", details={"field": "(body)"})
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


def query_param(request: Request, name: str) -> str | None:
    """``request.query_params.get(name)``: the last value given for ``name``. A query string without ``%`` or
    ``+`` (nothing to unquote) is looked through as it is: Starlette's QueryParams (parse_qsl, a multi-dict, a
    lookup through Mapping.get) cost more than the rest of a stream request's parameters together."""
    raw = request.scope["query_string"]
    if not raw:
        return None
    if b"%" in raw or b"+" in raw:
        return request.query_params.get(name)
    key = name.encode()
    value = None
    for part in raw.split(b"&"):
        field, _, given = part.partition(b"=")
        if field == key:
            value = given
    return None if value is None else value.decode("latin-1")


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = query_param(request, name)
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


def bool_param(request: Request, name: str) -> bool:
    raw = (query_param(request, name) or "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise Unprocessable(f"{name}: must be true or false, got {raw!r}", code="invalid_parameter",
                        details={"field": name})


IDEMPOTENCY_KEY_MAX = 255


def idempotency_key(request: Request) -> str | None:
    """The ``Idempotency-Key`` header, at most IDEMPOTENCY_KEY_MAX characters (422 otherwise)."""
    key = header(request, b"idempotency-key")
    if key and len(key) > IDEMPOTENCY_KEY_MAX:
        raise Unprocessable(f"Idempotency-Key: at most {IDEMPOTENCY_KEY_MAX} characters",
                            details={"field": "Idempotency-Key"})
    return key or None


# Answers validated against form_schemas at once, each on a worker thread: the event loop goes on serving.
_FORM_THREADS = anyio.CapacityLimiter(2)


async def write_answer(rt: Runtime, op: Callable[[Tx], T]) -> T:
    """``rt.write(op)`` for an operation that may answer a human task. The operation only reads the verdict on
    the answer's form (engine.answers.check_task_result); when there is none yet it stops (FormUnjudged, before
    changing anything, after checking who may answer), the form is validated against the task's form_schema
    here, on a worker thread outside any transaction, and the operation runs again."""
    try:
        return await rt.write(op)
    except answers.FormUnjudged as unjudged:
        await anyio.to_thread.run_sync(answers.judge_form, unjudged.schema, unjudged.form,
                                       limiter=_FORM_THREADS)
    return await rt.write(op)

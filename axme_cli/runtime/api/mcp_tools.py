"""The MCP tools (``POST /mcp``'s ``tools/list`` and ``tools/call``, and `axme mcp` through it): each a name, a
description, an input schema, and what it does in terms of the runtime's own REST routes.

A tool calls its routes in-process, through this same ASGI application and with the caller's own credentials
(``Call.route``): no socket, and the tool behaves exactly like its routes (authentication, scoping, validation,
refusals, idempotency, audit). A tool whose routes this runtime does not serve answers ``not_implemented``.
AXME's tool names and arguments (docs/mcp-reference.md) come first; then the tools for what this runtime is
for: send an intent and wait for it, read an intent and its events, answer human tasks, validate and apply a
scenario.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import orjson
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Scope

from axme_cli.protocol import addresses
from axme_cli.protocol import lifecycle as lc
from axme_cli.protocol.models import INTENT_TYPE_PATTERN, UUID_PATTERN
from axme_cli.runtime.api.errors import status_of
from axme_cli.runtime.api.intents import resolve_target
from axme_cli.runtime.core import Runtime
from axme_cli.runtime.engine.quotas import count_refusal
from axme_cli.runtime.errors import DomainError
from axme_cli.runtime.notify import wait
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.scope import settings_for
from axme_cli.runtime.settings import Settings

Schema = dict[str, Any]

# JSON-RPC error codes (docs/mcp-reference.md; AXME's server answers -32600 for a body it cannot parse as well)
PARSE_ERROR = INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
AUTH_REQUIRED = -32001
OWNER_REQUIRED = -32002
OWNER_MISMATCH = -32003
RATE_LIMITED = -32004
GATEWAY_ERROR = -32010
RESOLUTION_ERROR = -32011

# The HTTP status of a POST /mcp carrying one request that failed so (a batch is 200 with each answer in it).
HTTP_STATUS = {INVALID_REQUEST: 400, AUTH_REQUIRED: 401, OWNER_MISMATCH: 403, RATE_LIMITED: 429,
               INTERNAL_ERROR: 500}

# The longest a tool waits for an intent to end, and what all the waits of one POST /mcp may take together.
MAX_WAIT_SECONDS = 60


class RpcError(Exception):
    """A JSON-RPC error: its code, a sentence, data; the HTTP status a lone request gets (else HTTP_STATUS's)."""

    def __init__(self, code: int, message: str, data: dict[str, Any] | None = None, *, http_status: int | None = None,
                 retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data or {}
        self.http_status = http_status if http_status is not None else HTTP_STATUS.get(code, 200)
        self.retry_after = retry_after


def invalid(field: str, message: str, **data: Any) -> RpcError:
    return RpcError(INVALID_PARAMS, f"{field}: {message}", {"field": field, **data})


def from_domain(exc: DomainError) -> RpcError:
    """A refusal met before any route ran (authentication, the per-key limit, the store)."""
    count_refusal(exc)
    status = status_of(exc)
    data = {"error": {"code": exc.code, "message": exc.message, "details": exc.details}, "http_status": status}
    code = {401: AUTH_REQUIRED, 403: OWNER_MISMATCH, 429: RATE_LIMITED, 400: INVALID_PARAMS,
            422: INVALID_PARAMS}.get(status, GATEWAY_ERROR)
    http = status if code == GATEWAY_ERROR else None
    return RpcError(code, exc.message, data, http_status=http, retry_after=exc.retry_after)


class RouteError(Exception):
    """A route answered 4xx/5xx: its status, its AXP error body, its Retry-After."""

    def __init__(self, status: int, body: Any, retry_after: int | None) -> None:
        super().__init__(status)
        self.status = status
        error = body.get("error") if isinstance(body, dict) else None
        self.error: dict[str, Any] = error if isinstance(error, dict) else {
            "code": f"http_{status}", "message": f"the route answered HTTP {status}", "details": {}}
        self.retry_after = retry_after

    @property
    def code(self) -> str:
        return str(self.error.get("code"))

    def rpc(self, rename: dict[str, str] | None = None) -> RpcError:
        """The JSON-RPC error for this refusal; ``rename``: route field -> the tool argument it came from."""
        message = str(self.error.get("message") or f"HTTP {self.status}")
        raw_details = self.error.get("details")
        details: dict[str, Any] = raw_details if isinstance(raw_details, dict) else {}
        data: dict[str, Any] = {"http_status": self.status, "error": self.error}
        routed = details.get("field")
        if isinstance(routed, str):
            names = rename or {}
            head, _, rest = routed.partition(".")
            renamed = names.get(routed) or (names[head] + ("." + rest if rest else "") if head in names else None)
            data["field"] = renamed or routed
            if renamed:
                message = message.replace(f"{routed}:", f"{renamed}:", 1)
        if self.status == 401:
            return RpcError(AUTH_REQUIRED, message, data)
        if self.status == 403:  # the credential may not do this (AXME's -32003; which refusal: data.error.code)
            return RpcError(OWNER_MISMATCH, message, data)
        if self.status == 429:
            return RpcError(RATE_LIMITED, message, data, retry_after=self.retry_after)
        if self.status in (400, 413, 422):
            return RpcError(INVALID_PARAMS, message, data)
        return RpcError(GATEWAY_ERROR, message, data)


@dataclass
class Outcome:
    """What a tool did: the envelope's ``status`` and ``data``, whether it worked (``ok``; a failure is also
    ``isError``), and fields the envelope carries beside ``data`` (a send's ``intent_id``)."""

    status: str
    data: dict[str, Any]
    ok: bool = True
    top: dict[str, Any] = field(default_factory=dict)


# Forwarded to the routes a tool calls: who calls (the credential), and the ids that tie the calls together.
FORWARDED = (b"x-api-key", b"authorization", b"x-request-id", b"x-trace-id", b"traceparent", b"tracestate",
             b"user-agent", b"x-axme-client")
# A path parameter a tool puts in a route's URL: quoting leaves it as it is, and it never holds a '/'.
_SEGMENT = re.compile(r"^[A-Za-z0-9._~-]{1,256}$")


@dataclass
class Call:
    """One tools/call: the application to call routes on, the caller, the owner it acts for, its arguments."""

    app: ASGIApp
    scope: Scope  # the POST /mcp's: client address, server, lifespan state
    runtime: Runtime
    principal: Principal | None
    owner: str | None  # the agent address the call acts for (None: a call without a credential)
    owner_named: bool  # the caller named it (owner_agent), rather than its credential implying it
    args: dict[str, Any]
    deadline: float  # time.monotonic() by which every wait of this POST /mcp ends

    async def route(self, method: str, path: str, *, params: dict[str, str] | None = None,
                    query: dict[str, Any] | None = None, body: Any = None, raw: bytes | None = None,
                    content_type: str = "application/json", idempotency_key: str | None = None,
                    rename: dict[str, str] | None = None) -> Any:
        """Call a route of this runtime in-process as the caller; its JSON on 2xx, else RouteError's RpcError."""
        status, payload, retry = await self.send(method, path, params=params, query=query, body=body, raw=raw,
                                                 content_type=content_type, idempotency_key=idempotency_key)
        if status >= 400:
            raise RouteError(status, payload, retry).rpc(rename)
        return payload

    async def send(self, method: str, path: str, *, params: dict[str, str] | None = None,
                   query: dict[str, Any] | None = None, body: Any = None, raw: bytes | None = None,
                   content_type: str = "application/json",
                   idempotency_key: str | None = None) -> tuple[int, Any, int | None]:
        """(status, JSON body or None, Retry-After) of a route called in-process as the caller."""
        for name, value in (params or {}).items():
            if not isinstance(value, str) or not _SEGMENT.match(value):
                raise invalid(name, f"{value!r} is not an id this runtime uses")
            path = path.replace("{" + name + "}", value)
        assert "{" not in path, path
        headers = [(k, v) for k, v in self.scope["headers"] if k in FORWARDED]
        content = raw if raw is not None else (orjson.dumps(body) if body is not None else b"")
        if body is not None or raw is not None:
            headers += [(b"content-type", content_type.encode()), (b"content-length", str(len(content)).encode())]
        if idempotency_key:
            headers.append((b"idempotency-key", idempotency_key.encode()))
        pairs = {k: v for k, v in (query or {}).items() if v is not None}
        status, answer, retry = await asgi_call(self.app, self.scope, method, path, urlencode(pairs), headers,
                                                content)
        try:
            return status, (orjson.loads(answer) if answer else None), retry
        except orjson.JSONDecodeError:
            return status, None, retry

    @property
    def settings(self) -> Settings:
        """The settings of the caller's workspace (``scope.settings_for``): a bare name is one of its agents."""
        if self.principal is None:
            return self.runtime.settings
        return settings_for(self.runtime.settings, self.principal)

    def for_owner(self) -> dict[str, str]:
        """``owner_agent`` as an owner-scoped route takes it, when the caller named one."""
        return {"owner_agent": self.owner} if self.owner and self.owner_named else {}

    def serves(self, method: str, path: str) -> bool:
        """Whether this runtime has the route (some families may not be served)."""
        return not unserved(((method, path),), list(getattr(self.app, "routes", [])))


async def asgi_call(app: ASGIApp, outer: Scope, method: str, path: str, query: str,
                    headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, bytes, int | None]:
    """One request to ``app`` in this process: (status, body, Retry-After)."""
    scope: Scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": method, "scheme": outer.get("scheme", "http"), "path": path,
        "raw_path": quote(path).encode(), "query_string": query.encode(), "root_path": "", "headers": headers,
        "client": outer.get("client"), "server": outer.get("server"),
    }
    if "state" in outer:
        scope["state"] = dict(outer["state"])
    answered = asyncio.Event()
    delivered = False
    status, retry = 500, None
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status, retry
        if message["type"] == "http.response.start":
            status = message["status"]
            for name, value in message.get("headers", []):
                if name.lower() == b"retry-after" and value.isdigit():
                    retry = int(value)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                answered.set()

    try:
        await app(scope, receive, send)
    finally:
        answered.set()
    return status, b"".join(chunks), retry


# ---------------------------------------------------------------------------------------------
# the table


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    input_schema: Schema
    run: Callable[[Call], Awaitable[Outcome]]
    routes: tuple[tuple[str, str], ...] = ()  # (method, path) it calls; one this runtime lacks: not_implemented
    public: bool = False  # callable without a credential
    read_only: bool = False

    def listed(self) -> dict[str, Any]:
        """The tool as tools/list shows it."""
        hints = {"readOnlyHint": self.read_only, "destructiveHint": self.name == "axme.delete_messages",
                 "openWorldHint": False}
        return {"name": self.name, "description": self.description, "inputSchema": self.input_schema,
                "annotations": hints}


TOOLS: dict[str, Tool] = {}

STR = {"type": "string"}
BOOL = {"type": "boolean"}
UUID_ARG = {"type": "string", "pattern": UUID_PATTERN}
OWNER = {"type": "string", "minLength": 1, "maxLength": 383,
         "description": "The agent to act for (an address or a bare name). Default: the caller's own address; an "
                        "agent key may name only itself."}
IDEMPOTENCY = {"type": "string", "minLength": 1, "maxLength": 255,
               "description": "The same key (and arguments) does it once and answers the first result again."}
WAIT = {"type": "number", "minimum": 0, "maximum": MAX_WAIT_SECONDS, "default": 0,
        "description": f"Wait up to this many seconds (at most {MAX_WAIT_SECONDS}) for the intent to end; 0: do "
                       "not wait. It goes on after the wait either way."}
ATTACHMENTS = {"type": "array", "maxItems": 64, "items": {
    "type": "object", "additionalProperties": False, "required": ["upload_id"],
    "properties": {"upload_id": UUID_ARG, "mime_type": {"type": "string", "minLength": 3, "maxLength": 255}}},
    "description": "Files uploaded with the media tools, by upload_id."}
NICK = {"type": "string", "minLength": 1, "maxLength": 64,
        "description": "A nick: @name or name (3-32 of a-z 0-9 _ . -)."}
DISPLAY = {"type": "string", "minLength": 1, "maxLength": 120}
PHONE = {"type": "string", "minLength": 3, "maxLength": 32}
EMAIL = {"type": "string", "minLength": 3, "maxLength": 255}
SHA256 = {"type": "string", "pattern": "^[a-f0-9]{64}$"}
SIZE = {"type": "integer", "minimum": 1, "maximum": 2**31}
PROFILE = {"display_name": DISPLAY, "phone": PHONE, "email": EMAIL}


def tool(name: str, description: str, properties: dict[str, Schema], required: tuple[str, ...] = (), *,
         routes: tuple[tuple[str, str], ...] = (), public: bool = False, read_only: bool = False,
         idempotent: bool = False) -> Callable[[Callable[[Call], Awaitable[Outcome]]], Callable[[Call],
                                                                                              Awaitable[Outcome]]]:
    """Register ``run`` as the tool ``name``: its arguments (plus ``owner_agent`` on every tool, as AXME's SDK
    sends it, and ``idempotency_key`` on the writes that take one); no other argument is accepted."""

    def register(run: Callable[[Call], Awaitable[Outcome]]) -> Callable[[Call], Awaitable[Outcome]]:
        props = {**properties, "owner_agent": OWNER}
        if idempotent:
            props["idempotency_key"] = IDEMPOTENCY
        schema: Schema = {"type": "object", "properties": props, "additionalProperties": False}
        if required:
            schema["required"] = list(required)
        TOOLS[name] = Tool(name, description, schema, run, routes, public, read_only)
        return run

    return register


def alias(name: str, of: str) -> None:
    original = TOOLS[of]
    TOOLS[name] = Tool(name, f"Same as {of}. " + original.description, original.input_schema, original.run,
                       original.routes, original.public, original.read_only)


_VALIDATORS: dict[str, Any] = {}  # tool name -> its input schema's validator, made on the first call
_PATTERN_TEXT = {UUID_PATTERN: "an id (a UUID)", INTENT_TYPE_PATTERN: "an intent type such as order.reserve.v1",
                 "^[a-f0-9]{64}$": "a sha256 in lowercase hex (64 characters)"}


def validator(t: Tool) -> Any:
    found = _VALIDATORS.get(t.name)
    if found is None:
        from jsonschema import Draft202012Validator  # the runtime starts without it; only tool calls need it

        found = _VALIDATORS[t.name] = Draft202012Validator(t.input_schema)
    return found


def check_arguments(t: Tool, args: dict[str, Any]) -> None:
    """-32602 naming the first argument that does not fit the tool's input schema."""
    errors = list(validator(t).iter_errors(args))
    if not errors:
        return
    first = min(errors, key=lambda e: (len(e.absolute_path), [str(p) for p in e.absolute_path], str(e.validator)))
    where = ".".join(str(p) for p in first.absolute_path)
    if first.validator == "pattern":
        what = _PATTERN_TEXT.get(first.validator_value, f"text of the form {first.validator_value}")
        raise invalid(where, f"must be {what}, got {_shown(first.instance)}", tool=t.name)
    if first.validator == "type":
        raise invalid(where or "arguments", f"must be of type {first.validator_value}, got {_shown(first.instance)}",
                      tool=t.name)
    if first.validator == "required":
        missing = [k for k in first.validator_value if k not in (first.instance or {})]
        where = ".".join(filter(None, [where, missing[0] if missing else ""]))
        raise invalid(where, "required", tool=t.name)
    if first.validator == "additionalProperties":
        extra = sorted(set(first.instance) - set(first.schema.get("properties", {})))
        name = ".".join(filter(None, [where, extra[0] if extra else ""]))
        known = ", ".join(sorted(first.schema.get("properties", {})))
        raise invalid(name, f"unknown argument; {t.name} takes {known}", tool=t.name)
    message = first.message if len(first.message) <= 300 else first.message[:300] + "..."
    raise invalid(where or "arguments", message, tool=t.name)


_ROUTE_PARAM = re.compile(r"\{[^}]*\}")


def unserved(wanted: tuple[tuple[str, str], ...], routes: list[BaseRoute]) -> list[str]:
    """Those of ``wanted`` (method, path) this application does not serve (parameter names do not matter)."""
    served = {(m, _ROUTE_PARAM.sub("{}", r.path)) for r in routes if isinstance(r, Route) for m in r.methods or ()}
    return [f"{m} {p}" for m, p in wanted if (m, _ROUTE_PARAM.sub("{}", p)) not in served]


def _shown(value: Any) -> str:
    text = orjson.dumps(value).decode() if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:80] + "..."


def text_of(value: Any) -> str:
    return orjson.dumps(value).decode()


def _drop_ok(body: Any) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "ok"} if isinstance(body, dict) else {}


# ---------------------------------------------------------------------------------------------
# account (the users family)

U_REGISTER, U_CHECK, U_RESOLVE = ("POST", "/v1/users/register-nick"), ("GET", "/v1/users/check-nick"), \
    ("GET", "/v1/users/resolve-nick")
U_RENAME, U_PROFILE, U_UPDATE = ("POST", "/v1/users/rename-nick"), ("GET", "/v1/users/profile"), \
    ("POST", "/v1/users/profile/update")


def _given(call: Call, *names: str) -> dict[str, Any]:
    return {n: call.args[n] for n in names if call.args.get(n) is not None}


@tool("axme.register_nick", "Register a nick (a public name people and agents can be reached by) with an optional "
      "display name, phone and email. Works without a credential.", {"nick": NICK, **PROFILE}, ("nick",),
      routes=(U_REGISTER,), public=True)
async def register_nick(call: Call) -> Outcome:
    body = await call.route(*U_REGISTER, body=_given(call, "nick", "display_name", "phone", "email"))
    return Outcome("completed", _drop_ok(body))


@tool("axme.check_nick", "Whether a nick is free to register, and its normalized form and public address. Works "
      "without a credential.", {"nick": NICK}, ("nick",), routes=(U_CHECK,), public=True, read_only=True)
async def check_nick(call: Call) -> Outcome:
    return Outcome("completed", _drop_ok(await call.route(*U_CHECK, query={"nick": call.args["nick"]})))


@tool("axme.rename_nick", "Give the owner a new nick (and, given, a new display name, phone or email).",
      {"nick": NICK, **PROFILE}, ("nick",), routes=(U_RENAME,))
async def rename_nick(call: Call) -> Outcome:
    body = {"owner_agent": call.owner, **_given(call, "nick", "display_name", "phone", "email")}
    return Outcome("completed", _drop_ok(await call.route(*U_RENAME, body=body)))


@tool("axme.get_profile", "The owner's profile: nick, public address, display name, phone, email.", {},
      routes=(U_PROFILE,), read_only=True)
async def get_profile(call: Call) -> Outcome:
    return Outcome("completed", _drop_ok(await call.route(*U_PROFILE, query={"owner_agent": call.owner})))


@tool("axme.update_profile", "Change the owner's profile: the fields given change, the others stay.",
      {"nick": NICK, **PROFILE}, routes=(U_UPDATE,))
async def update_profile(call: Call) -> Outcome:
    body = {"owner_agent": call.owner, **_given(call, "nick", "display_name", "phone", "email")}
    return Outcome("completed", _drop_ok(await call.route(*U_UPDATE, body=body)))


# ---------------------------------------------------------------------------------------------
# contacts and recipients

_NICK_WRITTEN = re.compile(r"^@[A-Za-z0-9_.-]{1,64}$|^[A-Za-z0-9_.-]{1,64}@ax$")
_ADDRESS = re.compile(rf"^agent://({addresses._SLUG})/({addresses._SLUG})/({addresses._NAME})$")


async def _agent_exists(call: Call, address: str) -> bool | None:
    """Whether a service account has ``address``; None when the caller cannot tell (an agent key sees only
    itself) or the address is not one the agents route looks up."""
    if call.principal is None or (not call.principal.is_member and call.principal.address != address):
        return None
    if addresses.is_core(address, call.settings.org, call.settings.workspace):
        return True  # the runtime itself (human tasks)
    if not _ADDRESS.match(address):
        return None
    # The whole address, encoded: in the path form a name could end in /intents/stream, another route.
    status, body, _ = await call.send("GET", "/v1/agents/" + quote(address, safe=""))
    if status == 200:
        return True
    if status == 404:
        return False
    raise RouteError(status, body, None).rpc()


async def resolve(call: Call, query: str, field_name: str) -> tuple[str | None, dict[str, Any]]:
    """The agent address ``query`` names (a nick, an agent address or a bare agent name) and how it was found;
    None when nothing has that nick or, as far as the caller can see, that address."""
    q = query.strip()
    resolution: dict[str, Any] = {"query": query}
    if _NICK_WRITTEN.match(q):
        if not call.serves(*U_RESOLVE):
            raise RpcError(RESOLUTION_ERROR, f"{field_name}: {query!r} is a nick, and this runtime does not resolve "
                                             "nicks; use an agent address", {"field": field_name, "query": query})
        nick = q[:-3] if q.endswith("@ax") else q
        status, body, _ = await call.send(*U_RESOLVE, query={"nick": nick})
        if status == 200 and isinstance(body, dict) and body.get("resolved") and body.get("owner_agent"):
            return str(body["owner_agent"]), {**resolution, "method": "nick", "nick": body.get("nick"),
                                              "public_address": body.get("public_address"),
                                              "agent_address": body["owner_agent"]}
        if status in (200, 404):
            return None, {**resolution, "method": "nick"}
        raise RouteError(status, body, None).rpc({"nick": field_name})
    if "@" in q:
        raise RpcError(RESOLUTION_ERROR, f"{field_name}: {query!r} looks like an email; this runtime reaches people "
                                         "by nick (@name) and agents by address (agent://org/workspace/name or a "
                                         "bare name)", {"field": field_name, "query": query})
    try:
        address = resolve_target(call.settings, q, field_name)
    except DomainError as exc:
        raise RpcError(RESOLUTION_ERROR, exc.message, {"field": field_name, "query": query}) from None
    exists = await _agent_exists(call, address)
    if exists is False:
        return None, {**resolution, "method": "address", "agent_address": address}
    return address, {**resolution, "method": "address", "agent_address": address, "verified": exists is True}


def not_found(query: str, resolution: dict[str, Any]) -> Outcome:
    return Outcome("contact_not_found", {"query": query, "resolution": resolution,
                                         "hint": "check the nick or address (axme.resolve_contact), or ask who it is"},
                   ok=False)


@tool("axme.resolve_contact", "Find the canonical agent address of a contact, given a nick (@name), an agent "
      "address or a bare agent name.", {"query": {"type": "string", "minLength": 1, "maxLength": 383}}, ("query",),
      read_only=True)
async def resolve_contact(call: Call) -> Outcome:
    address, how = await resolve(call, call.args["query"], "query")
    if address is None:
        return not_found(call.args["query"], how)
    return Outcome("completed", {"agent_address": address, "resolution": how})


# ---------------------------------------------------------------------------------------------
# messaging: a message is an intent to the recipient, whose outcome comes back to the sender's inbox


MESSAGE_TEXT = {"type": "string", "minLength": 1, "maxLength": 5000}
CREATE = ("POST", "/v1/intents")


async def _send_intent(call: Call, to: str, intent_type: str, payload: dict[str, Any],
                       rename: dict[str, str], **extra: Any) -> dict[str, Any]:
    key = call.args.get("idempotency_key")
    # With an idempotency key the same call must make the same body: its correlation id comes from the key.
    correlation = uuid.uuid5(uuid.NAMESPACE_URL, f"axme-mcp:{call.owner}:{key}") if key else uuid.uuid4()
    body: dict[str, Any] = {"intent_type": intent_type, "correlation_id": str(correlation), "to_agent": to,
                            "payload": payload, **{k: v for k, v in extra.items() if v is not None}}
    if call.owner_named:
        body["from_agent"] = call.owner
    return dict(await call.route(*CREATE, body=body, idempotency_key=key, rename=rename))


async def _message(call: Call, recipient_field: str, content: dict[str, Any], intent_type: str,
                   intent_extra: dict[str, Any], rename: dict[str, str]) -> Outcome:
    query = call.args[recipient_field]
    address, how = await resolve(call, query, recipient_field)
    if address is None:
        return not_found(query, how)
    # The outcome comes back to the sender's inbox, when the sender has one an intent may name (not a person's).
    reply_to = call.owner if call.owner and call.owner.startswith((addresses.SCHEME, "initiator://")) else None
    # Attachments travel as the intent's own (the runtime checks the sender may read each and lets the recipient).
    created = await _send_intent(call, address, intent_type, content, {"to_agent": recipient_field, **rename},
                                 reply_to=reply_to, attachments=call.args.get("attachments") or None,
                                 **intent_extra)
    delivery = {"intent_id": created["intent_id"], "status": created.get("status"),
                "created_at": created.get("created_at"), "reply_to": reply_to}
    return Outcome("accepted", {"delivery": delivery, "resolution": how, "recipient_agent": address},
                   top={"intent_id": created["intent_id"]})


def _text_arg(call: Call) -> str | None:
    message, text = call.args.get("message"), call.args.get("text")
    if message is not None and text is not None and message != text:
        raise invalid("text", "give message or text, not both")
    return message if message is not None else text


@tool("axme.send_message", "Send a text message (and attachments) to a person or agent, by nick, agent address or "
      "bare name. It travels as an intent (message.text.v1); the recipient's answer comes back to the sender's "
      "inbox (axme.list_threads).",
      {"recipient": {"type": "string", "minLength": 1, "maxLength": 383}, "message": MESSAGE_TEXT,
       "text": {**MESSAGE_TEXT, "description": "Same as message."}, "attachments": ATTACHMENTS},
      ("recipient",), routes=(CREATE,), idempotent=True)
async def send_message(call: Call) -> Outcome:
    text = _text_arg(call)
    if text is None:
        raise invalid("message", "required (the text to send)")
    content: dict[str, Any] = {"content_kind": "text", "text": text}
    return await _message(call, "recipient", content, "message.text.v1", {},
                          {"payload": "message" if call.args.get("message") is not None else "text"})


@tool("axme.send", "Send to a person or agent: text, an intent of its own type and payload (content_kind intent), "
      "media or a system message. Answers the intent_id it travels as.",
      {"to": {"type": "string", "minLength": 1, "maxLength": 383}, "message": MESSAGE_TEXT,
       "content_kind": {"type": "string", "enum": ["text", "intent", "media", "system"]},
       "intent": {"type": "object", "description": "content_kind intent: {intent_type, payload, deadline_at}.",
                  "properties": {"intent_type": {"type": "string", "pattern": INTENT_TYPE_PATTERN},
                                 "payload": {"type": "object"}, "deadline_at": STR}},
       "semantic_type": {"type": "string", "pattern": INTENT_TYPE_PATTERN,
                         "description": "The intent type it travels as (default message.<content_kind>.v1)."},
       "schema_ref": {"type": "string", "maxLength": 1000},
       "schema_mode": {"type": "string", "enum": ["none", "warn", "enforce"]},
       "chat_file": {"type": "object", "additionalProperties": False, "properties": {
           "download_url": {"type": "string", "maxLength": 2000}, "file_id": {"type": "string", "maxLength": 255},
           "filename": {"type": "string", "maxLength": 255}, "mime_type": {"type": "string", "maxLength": 255}}},
       "ack": {"type": "string", "enum": ["accepted", "delivered", "read", "processed"]},
       "attachments": ATTACHMENTS},
      ("to",), routes=(CREATE,), idempotent=True)
async def send(call: Call) -> Outcome:
    a = call.args
    intent = a.get("intent") or {}
    kind = a.get("content_kind") or ("intent" if intent else "text")
    # schema_mode: how strictly the payload is checked against a schema registered for its type (the route's)
    extra: dict[str, Any] = {"schema_mode": a.get("schema_mode")}
    if kind == "intent":
        if not intent:
            raise invalid("intent", "required when content_kind is intent ({intent_type, payload})")
        content = dict(intent.get("payload") or {})
        intent_type = intent.get("intent_type") or a.get("semantic_type")
        if not intent_type:
            raise invalid("intent.intent_type", "required (or semantic_type)")
        extra["deadline_at"] = intent.get("deadline_at")
        rename = {"payload": "intent.payload", "deadline_at": "intent.deadline_at",
                  "intent_type": "intent.intent_type" if intent.get("intent_type") else "semantic_type"}
    else:
        if a.get("message") is None and kind == "text":
            raise invalid("message", "required for a text message")
        content = {"content_kind": kind, **({"text": a["message"]} if a.get("message") is not None else {})}
        for name in ("chat_file", "schema_ref", "ack"):
            if a.get(name) is not None:
                content[name] = a[name]
        intent_type = a.get("semantic_type") or f"message.{kind}.v1"
        rename = {"payload": "message", "intent_type": "semantic_type"}
    return await _message(call, "to", content, intent_type, extra, rename)


@tool("axme.confirm_send", "Confirm a send that asked for confirmation. Not implemented (nor by AXME's own "
      "server): sends here never wait for a confirmation.",
      {"intent_id": UUID_ARG, "confirm": BOOL}, ("intent_id", "confirm"))
async def confirm_send(call: Call) -> Outcome:
    return Outcome("not_implemented", {"reason": "sends never wait for a confirmation on this runtime"}, ok=False)


# ---------------------------------------------------------------------------------------------
# dialogs and threads: the owner's inbox

INBOX, THREAD = ("GET", "/v1/inbox"), ("GET", "/v1/inbox/{thread_id}")
READ, REPLY, DELETE = ("POST", "/v1/inbox/{thread_id}/read"), ("POST", "/v1/inbox/{thread_id}/reply"), \
    ("POST", "/v1/inbox/{thread_id}/messages/delete")


def _dialog(thread: dict[str, Any], owner: str | None) -> dict[str, Any]:
    counterpart = thread.get("to_agent") if thread.get("from_agent") == owner else thread.get("from_agent")
    messages = thread.get("messages") or []
    return {"dialog_id": thread["thread_id"], "with": counterpart, "subject": thread.get("subject"),
            "status": thread.get("status"), "unread": not thread.get("read"), "updated_at": thread.get("updated_at"),
            "last_message": messages[-1] if messages else None}


async def _threads(call: Call, limit: int = 500) -> list[dict[str, Any]]:
    body = await call.route(*INBOX, query={"limit": limit, **call.for_owner()})
    return list(body.get("threads", []))


@tool("axme.list_dialogs", "The owner's dialogs (inbox threads), most recently changed first: with whom, subject, "
      "status, unread, the last message.",
      {"unread_only": {**BOOL, "default": False}, "limit": {"type": "integer", "minimum": 1, "maximum": 100,
                                                              "default": 20}},
      routes=(INBOX,), read_only=True)
async def list_dialogs(call: Call) -> Outcome:
    threads = await _threads(call)
    if call.args.get("unread_only"):
        threads = [t for t in threads if not t.get("read")]
    dialogs = [_dialog(t, call.owner) for t in threads[: call.args.get("limit", 20)]]
    return Outcome("completed", {"dialogs": dialogs})


@tool("axme.open_dialog", "Open a dialog (by dialog_id, or the latest with a contact) and read its messages; marks "
      "it read unless mark_read is false.",
      {"dialog_id": UUID_ARG, "with": {"type": "string", "minLength": 1, "maxLength": 383},
       "limit": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10},
       "before_message_id": {"type": "string", "minLength": 1, "maxLength": 64},
       "mark_read": {**BOOL, "default": True}},
      routes=(INBOX, THREAD, READ), read_only=False)
async def open_dialog(call: Call) -> Outcome:
    a = call.args
    thread_id = a.get("dialog_id")
    if thread_id is None:
        if a.get("with") is None:
            raise invalid("dialog_id", "required (or with: the contact)")
        address, how = await resolve(call, a["with"], "with")
        if address is None:
            return not_found(a["with"], how)
        found = [t for t in await _threads(call) if address in (t.get("from_agent"), t.get("to_agent"))]
        if not found:
            return Outcome("completed", {"dialog": None, "messages": [], "with": address,
                                         "note": "no dialog with this contact yet; axme.send_message starts one"})
        thread_id = found[0]["thread_id"]
    if a.get("mark_read", True):
        thread = (await call.route(*READ, params={"thread_id": thread_id}, query=call.for_owner()))["thread"]
    else:
        thread = (await call.route(*THREAD, params={"thread_id": thread_id}, query=call.for_owner()))["thread"]
    messages = list(thread.get("messages") or [])
    before = a.get("before_message_id")
    if before is not None:
        ids = [m.get("message_id") for m in messages]
        if before not in ids:
            raise invalid("before_message_id", f"no message {before!r} in dialog {thread_id}")
        messages = messages[: ids.index(before)]
    limit = a.get("limit", 10)
    return Outcome("completed", {"dialog": _dialog(thread, call.owner), "messages": messages[-limit:],
                                 "has_more": len(messages) > limit})


@tool("axme.list_threads", "The owner's inbox threads (an intent's outcome delivered to its reply_to owner, with "
      "its messages), optionally by status: unread, read, pending, active or done.",
      {"status": {"type": "string", "enum": ["unread", "read", "pending", "active", "done"]},
       "limit": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}},
      routes=(INBOX,), read_only=True)
async def list_threads(call: Call) -> Outcome:
    status = call.args.get("status")
    query: dict[str, Any] = {"limit": call.args.get("limit", 100), **call.for_owner()}
    if status in ("pending", "active", "done"):
        query["status"] = status
    threads = list((await call.route(*INBOX, query=query)).get("threads", []))
    if status in ("read", "unread"):
        threads = [t for t in threads if bool(t.get("read")) == (status == "read")]
    return Outcome("completed", {"threads": threads})


alias("axme.list_inbox", "axme.list_threads")


@tool("axme.get_thread", "A thread of the owner's inbox: its outcome, messages and timeline.",
      {"thread_id": UUID_ARG}, ("thread_id",), routes=(THREAD,), read_only=True)
async def get_thread(call: Call) -> Outcome:
    body = await call.route(*THREAD, params={"thread_id": call.args["thread_id"]}, query=call.for_owner())
    return Outcome("completed", {"thread": body["thread"]})


@tool("axme.reply", "Reply in a thread of the owner's inbox.", {"thread_id": UUID_ARG, "message": MESSAGE_TEXT},
      ("thread_id", "message"), routes=(REPLY,), idempotent=True)
async def reply(call: Call) -> Outcome:
    body = await call.route(*REPLY, params={"thread_id": call.args["thread_id"]}, query=call.for_owner(),
                            body={"message": call.args["message"]}, idempotency_key=call.args.get("idempotency_key"))
    return Outcome("completed", _drop_ok(body))


@tool("axme.mark_read", "Mark a thread of the owner's inbox read.", {"thread_id": UUID_ARG}, ("thread_id",),
      routes=(READ,))
async def mark_read(call: Call) -> Outcome:
    body = await call.route(*READ, params={"thread_id": call.args["thread_id"]}, query=call.for_owner())
    return Outcome("completed", _drop_ok(body))


@tool("axme.delete_messages", "Delete messages of a thread: for the owner only (mode self) or, the owner's own "
      "messages, for everyone (mode both); name them (message_ids) or take the newest last_n.",
      {"thread_id": UUID_ARG, "mode": {"type": "string", "enum": ["self", "both"], "default": "self"},
       "message_ids": {"type": "array", "minItems": 1, "maxItems": 100,
                       "items": {"type": "string", "minLength": 1, "maxLength": 64}},
       "last_n": {"type": "integer", "minimum": 1, "maximum": 100}},
      ("thread_id",), routes=(DELETE,), idempotent=True)
async def delete_messages(call: Call) -> Outcome:
    a = call.args
    if a.get("message_ids") is not None and a.get("last_n") is not None:
        raise invalid("last_n", "give message_ids or last_n, not both")
    body: dict[str, Any] = {"mode": a.get("mode", "self")}
    if a.get("message_ids") is not None:
        body["message_ids"] = a["message_ids"]
    if a.get("last_n") is not None:
        body["limit"] = a["last_n"]
    answer = await call.route(*DELETE, params={"thread_id": a["thread_id"]}, query=call.for_owner(), body=body,
                              idempotency_key=a.get("idempotency_key"), rename={"limit": "last_n"})
    return Outcome("completed", _drop_ok(answer))


# ---------------------------------------------------------------------------------------------
# invites and media

I_CREATE, I_GET = ("POST", "/v1/invites/create"), ("GET", "/v1/invites/{token}")
M_CREATE, M_FINALIZE, M_GET = ("POST", "/v1/media/create-upload"), ("POST", "/v1/media/finalize-upload"), \
    ("GET", "/v1/media/{upload_id}")
M_PUT = ("PUT", "/v1/media/upload/{upload_id}")
TOKEN_ARG = {"type": "string", "pattern": "^[A-Za-z0-9._~-]{1,256}$"}


@tool("axme.generate_invite_link", "Make an invite link for someone to join as a contact of the owner.",
      {"recipient_hint": {"type": "string", "minLength": 1, "maxLength": 255},
       "ttl_seconds": {"type": "integer", "minimum": 60, "maximum": 1_209_600}}, routes=(I_CREATE,))
async def generate_invite_link(call: Call) -> Outcome:
    body = {"owner_agent": call.owner, **_given(call, "recipient_hint", "ttl_seconds")}
    answer = _drop_ok(await call.route(*I_CREATE, body=body))
    token, link = answer.pop("token", None), answer.pop("invite_url", None)
    return Outcome("completed", {"invite_token": token, "link": link, **answer})


@tool("axme.check_invite_status", "Whether an invite is pending, accepted or expired. Works without a credential.",
      {"token": TOKEN_ARG}, ("token",), routes=(I_GET,), public=True, read_only=True)
async def check_invite_status(call: Call) -> Outcome:
    return Outcome("completed", _drop_ok(await call.route(*I_GET, params={"token": call.args["token"]})))


FILE = {"filename": {"type": "string", "minLength": 1, "maxLength": 255},
        "mime_type": {"type": "string", "minLength": 3, "maxLength": 255}}


@tool("axme.media_create_upload", "Start an upload: answers upload_url, where to PUT the bytes, then call "
      "axme.media_finalize_upload.",
      {**FILE, "size_bytes": SIZE, "sha256": SHA256, "ttl_seconds": {"type": "integer", "minimum": 60,
                                                                      "maximum": 604_800}},
      ("filename", "mime_type", "size_bytes"), routes=(M_CREATE,))
async def media_create_upload(call: Call) -> Outcome:
    body = {"owner_agent": call.owner, **_given(call, "filename", "mime_type", "size_bytes", "sha256", "ttl_seconds")}
    return Outcome("pending_upload", _drop_ok(await call.route(*M_CREATE, body=body)))


@tool("axme.media_upload_inline", "Upload a small file given as base64 in one call (create, upload, finalize).",
      {**FILE, "content_base64": {"type": "string", "minLength": 1}}, ("filename", "mime_type", "content_base64"),
      routes=(M_CREATE, M_PUT, M_FINALIZE))
async def media_upload_inline(call: Call) -> Outcome:
    try:
        content = base64.b64decode(call.args["content_base64"], validate=True)
    except (binascii.Error, ValueError):
        raise invalid("content_base64", "not base64") from None
    if not content:
        raise invalid("content_base64", "the file is empty")
    digest = hashlib.sha256(content).hexdigest()
    created = await call.route(*M_CREATE, body={"owner_agent": call.owner, "filename": call.args["filename"],
                                                "mime_type": call.args["mime_type"], "size_bytes": len(content),
                                                "sha256": digest})
    upload_id = str(created["upload_id"])
    url = urlsplit(str(created.get("upload_url") or ""))
    path = url.path or f"/v1/media/upload/{upload_id}"
    if not path.startswith("/v1/media/upload/") or path.count("/") != 4 or not _SEGMENT.match(path.rsplit("/", 1)[1]):
        raise RpcError(GATEWAY_ERROR, f"the upload URL {created.get('upload_url')!r} is not this runtime's")
    status, answer, retry = await call.send("PUT", path, raw=content, content_type=call.args["mime_type"],
                                            query=dict(_query_pairs(url.query)))
    if status >= 400:
        raise RouteError(status, answer, retry).rpc()
    done = await call.route(*M_FINALIZE, body={"upload_id": upload_id, "size_bytes": len(content), "sha256": digest})
    return Outcome("ready", _drop_ok(done))


def _query_pairs(query: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(query, keep_blank_values=True)


@tool("axme.media_finalize_upload", "Finish an upload once its bytes are PUT: checks size (and sha256).",
      {"upload_id": UUID_ARG, "size_bytes": SIZE, "sha256": SHA256}, ("upload_id", "size_bytes"),
      routes=(M_FINALIZE,))
async def media_finalize_upload(call: Call) -> Outcome:
    body = _given(call, "upload_id", "size_bytes", "sha256")
    return Outcome("ready", _drop_ok(await call.route(*M_FINALIZE, body=body)))


@tool("axme.media_get_upload", "An upload: its file name, type, size, status and where to download it.",
      {"upload_id": UUID_ARG}, ("upload_id",), routes=(M_GET,), read_only=True)
async def media_get_upload(call: Call) -> Outcome:
    return Outcome("completed", _drop_ok(await call.route(*M_GET, params={"upload_id": call.args["upload_id"]})))


# ---------------------------------------------------------------------------------------------
# intents, human tasks, scenarios: what this runtime is for

GET_INTENT, EVENTS, LIST = ("GET", "/v1/intents/{intent_id}"), ("GET", "/v1/intents/{intent_id}/events"), \
    ("GET", "/v1/intents")
RESUME, TASKS = ("POST", "/v1/intents/{intent_id}/resume"), ("GET", "/v1/me/tasks")
VALIDATE, APPLY = ("POST", "/v1/scenarios/validate"), ("POST", "/v1/scenarios/apply")


async def wait_for(call: Call, intent_id: str, seconds: float) -> tuple[dict[str, Any], bool]:
    """The intent (GET /v1/intents/{id} as the caller) once it has ended or ``seconds`` passed (bounded by the
    POST's deadline), and whether it has ended. Woken by the commits that touch it, never polling."""
    rt = call.runtime
    until = min(time.monotonic() + seconds, call.deadline)
    with rt.hub.watch_intent(intent_id) as changed:
        while True:
            changed.clear()
            changed.take()  # what the commits handed over is not needed: the intent is read as the caller
            intent = (await call.route(*GET_INTENT, params={"intent_id": intent_id}))["intent"]
            left = until - time.monotonic()
            if intent["status"] in lc.TERMINAL or left <= 0:
                break
            await wait(changed, left)
    return intent, intent["status"] in lc.TERMINAL


def _waited(intent: dict[str, Any], ended: bool, waited: float) -> dict[str, Any]:
    return {"intent": intent, "finished": ended, "waited_seconds": round(waited, 3),
            **({} if ended else {"note": "still running; axme.wait_intent waits again, axme.get_intent reads it"})}


@tool("axme.send_intent", "Send an intent to an agent (or a human task to agent_core) and, with wait_seconds, wait "
      "for it to end (bounded: at most 60 s; it goes on after that). Status completed when it ended within the "
      "wait (intent.status says how), accepted otherwise.",
      {"to": {"type": "string", "minLength": 1, "maxLength": 383,
              "description": "Agent address, bare agent name, or agent_core for a human task."},
       "intent_type": {"type": "string", "pattern": INTENT_TYPE_PATTERN, "maxLength": 255,
                       "description": "e.g. order.reserve.v1"},
       "payload": {"type": "object", "default": {}},
       "reply_to": {"type": "string", "minLength": 1, "maxLength": 383,
                    "description": "Deliver the outcome to this owner's inbox."},
       "deadline_at": {"type": "string", "description": "RFC 3339 with a zone."},
       "human_task": {"type": "object", "description": "A task for people (to agent_core): title, task_type, "
                                                       "allowed_outcomes, form_schema, assignees ..."},
       "wait_seconds": WAIT},
      ("to", "intent_type"), routes=(CREATE, GET_INTENT), idempotent=True)
async def send_intent(call: Call) -> Outcome:
    a = call.args
    started = time.monotonic()
    to = a["to"]
    created = await _send_intent(call, to, a["intent_type"], a.get("payload") or {},
                                 {"to_agent": "to"}, reply_to=a.get("reply_to"), deadline_at=a.get("deadline_at"),
                                 human_task=a.get("human_task"))
    intent_id = created["intent_id"]
    if not a.get("wait_seconds"):
        return Outcome("accepted", {"intent_id": intent_id, "status": created.get("status"),
                                    "created_at": created.get("created_at")}, top={"intent_id": intent_id})
    intent, ended = await wait_for(call, intent_id, a["wait_seconds"])
    return Outcome("completed" if ended else "accepted", _waited(intent, ended, time.monotonic() - started),
                   top={"intent_id": intent_id})


@tool("axme.wait_intent", "Wait (at most 60 s) for an intent to end; answers it as it is then.",
      {"intent_id": UUID_ARG, "wait_seconds": {**WAIT, "default": 30}}, ("intent_id",),
      routes=(GET_INTENT,), read_only=True)
async def wait_intent(call: Call) -> Outcome:
    started = time.monotonic()
    intent, ended = await wait_for(call, call.args["intent_id"], call.args.get("wait_seconds", 30))
    return Outcome("completed" if ended else "accepted", _waited(intent, ended, time.monotonic() - started),
                   top={"intent_id": call.args["intent_id"]})


@tool("axme.get_intent", "An intent (status, payload, result or error, who it waits for, its workflow) and its "
      "events in order.",
      {"intent_id": UUID_ARG, "include_events": {**BOOL, "default": True},
       "since": {"type": "integer", "minimum": 0, "default": 0, "description": "Only events after this seq."}},
      ("intent_id",), routes=(GET_INTENT, EVENTS), read_only=True)
async def get_intent(call: Call) -> Outcome:
    params = {"intent_id": call.args["intent_id"]}
    data: dict[str, Any] = {"intent": (await call.route(*GET_INTENT, params=params))["intent"]}
    if call.args.get("include_events", True):
        events = await call.route(*EVENTS, params=params, query={"since": call.args.get("since", 0)})
        data["events"] = events["events"]
    return Outcome("completed", data)


@tool("axme.list_intents", "Intents the caller may see, newest first; status filters (e.g. WAITING or "
      "FAILED,TIMED_OUT); before pages.",
      {"status": {"type": "string", "maxLength": 200, "description": f"Comma-separated: {', '.join(lc.STATUSES)}."},
       "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
       "before": {**UUID_ARG, "description": "next_cursor of the previous page."}},
      routes=(LIST,), read_only=True)
async def list_intents(call: Call) -> Outcome:
    body = await call.route(*LIST, query={"status": call.args.get("status"), "limit": call.args.get("limit", 20),
                                          "before": call.args.get("before")})
    return Outcome("completed", {"intents": body["intents"], "next_cursor": body.get("next_cursor")})


@tool("axme.list_tasks", "Human tasks waiting for an answer (people and the workspace key; not agent keys): what "
      "each asks, its allowed outcomes and form.",
      {"limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}}, routes=(TASKS,), read_only=True)
async def list_tasks(call: Call) -> Outcome:
    body = await call.route(*TASKS, query={"limit": call.args.get("limit", 20)})
    return Outcome("completed", {"tasks": body["tasks"]})


@tool("axme.answer_task", "Answer a human task: an allowed outcome, a comment when the task requires one, and the "
      "form fields its form_schema asks for (the API's rules; a wrong answer names the field).",
      {"intent_id": UUID_ARG, "outcome": {"type": "string", "minLength": 1, "maxLength": 64},
       "comment": {"type": "string", "maxLength": 2000},
       "form": {"type": "object", "description": "The answer's fields (the task's form_schema), e.g. evidence."}},
      ("intent_id", "outcome"), routes=(GET_INTENT, RESUME))
async def answer_task(call: Call) -> Outcome:
    a = call.args
    form = dict(a.get("form") or {})
    for reserved in ("outcome", "comment"):
        if reserved in form:
            raise invalid(f"form.{reserved}", f"give {reserved} as its own argument")
    result: dict[str, Any] = {"outcome": a["outcome"], **form}
    if a.get("comment") is not None:
        result["comment"] = a["comment"]
    intent = (await call.route(*GET_INTENT, params={"intent_id": a["intent_id"]}))["intent"]
    if intent["status"] not in lc.TERMINAL and intent.get("waiting_reason") != "WAITING_FOR_HUMAN":
        # resume would answer an agent's intent as its agent: this tool answers people's tasks only
        raise invalid("intent_id", f"intent {a['intent_id']} does not wait for a person (status {intent['status']}); "
                      "axme.list_tasks shows the open tasks")
    body = await call.route(*RESUME, params={"intent_id": a["intent_id"]}, body={"task_result": result},
                            rename={"task_result.outcome": "outcome", "task_result": "form"})
    return Outcome("completed", _drop_ok(body))


BUNDLE = {"type": "object", "description": "A ScenarioBundle: scenario_id, agents, workflow steps, intent."}


@tool("axme.validate_scenario", "Check a ScenarioBundle without running it: errors (each naming the field and the "
      "fix) and warnings.", {"bundle": BUNDLE}, ("bundle",), routes=(VALIDATE,), read_only=True)
async def validate_scenario(call: Call) -> Outcome:
    body = await call.route(*VALIDATE, body=call.args["bundle"])
    return Outcome("completed", _drop_ok(body))


@tool("axme.apply_scenario", "Run a ScenarioBundle: provision its agents, start its workflow; with wait_seconds, "
      "wait (at most 60 s) for the workflow to end.", {"bundle": BUNDLE, "wait_seconds": WAIT}, ("bundle",),
      routes=(APPLY, GET_INTENT), idempotent=True)
async def apply_scenario(call: Call) -> Outcome:
    started = time.monotonic()
    body = _drop_ok(await call.route(*APPLY, body=call.args["bundle"],
                                     idempotency_key=call.args.get("idempotency_key")))
    for agent in body.get("agents") or []:  # answered once, to whoever applied; not into an assistant's context
        if isinstance(agent, dict) and "delivery_secret" in agent:
            agent["delivery_secret"] = "(withheld from MCP; `axme scenarios apply` or the REST API shows it once)"
    intent_id = body["intent_id"]
    if not call.args.get("wait_seconds"):
        return Outcome("accepted", body, top={"intent_id": intent_id})
    intent, ended = await wait_for(call, intent_id, call.args["wait_seconds"])
    return Outcome("completed" if ended else "accepted",
                   {**body, **_waited(intent, ended, time.monotonic() - started)}, top={"intent_id": intent_id})

"""POST /mcp: AXME's MCP surface, JSON-RPC 2.0 over HTTP (docs/mcp-reference.md), stateless.

One JSON-RPC message or a batch (an array) per POST; the answers come back as ``application/json`` (a batch: an
array, notifications get none; nothing to answer: 202 with no body). Methods: ``initialize`` (protocol version
negotiation as MCP specifies; ``2024-11-05`` is AXME's), ``ping``, ``tools/list``, ``tools/call``,
``resources/list`` and ``prompts/list`` (empty). No session (no ``Mcp-Session-Id``), no server-sent stream: GET
/mcp is 405, which MCP's Streamable HTTP allows.

Credentials are the REST API's. Without one only ``initialize``, ``ping``, ``tools/list`` and the public tools
(``axme.check_nick``, ``axme.register_nick``, ``axme.check_invite_status``) answer; anything else is -32001. A
tool acts for an owner: ``owner_agent`` (in ``params`` or ``arguments``) or the credential's own address; an
agent key may name only itself (-32003). Each (owner, tool) may be called ``mcp_tool_calls_per_minute`` times a
minute (bursts of as many), past that -32004 (HTTP 429 with Retry-After for a lone request). The tools live in
``mcp_tools.py``.

Everything that is not JSON-RPC is answered with a JSON-RPC error, never an HTML page or a 500: a body that is no
JSON or no JSON-RPC message (-32600, HTTP 400), too large (413), not ``application/json`` (415) or sent by a page
of another origin (403).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from axme_cli import __version__
from axme_cli.runtime.api import mcp_tools as tools
from axme_cli.runtime.api.common import credential_of, echo_headers, parse_json, read_body, runtime
from axme_cli.runtime.api.intents import resolve_target
from axme_cli.runtime.errors import DomainError, PayloadTooLarge
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.ratelimit import RateLimiter
from axme_cli.runtime.scope import settings_for
from axme_cli.runtime.settings import Settings

log = logging.getLogger("axme.mcp")

# AXME's protocol version, first; the later revisions an initialize may ask for (their messages are the same for
# what this server does). An unknown one gets the latest (MCP: the server answers a version it supports).
PROTOCOL_VERSION = "2024-11-05"
PROTOCOL_VERSIONS = (PROTOCOL_VERSION, "2025-03-26", "2025-06-18", "2025-11-25")
PUBLIC_METHODS = ("initialize", "ping", "tools/list")
MAX_BATCH = 100  # messages in one POST
INSTRUCTIONS = ("AXME runtime tools. Send intents to agents and wait for them (axme.send_intent, axme.wait_intent, "
                "axme.get_intent), answer human tasks (axme.list_tasks, axme.answer_task), run scenarios "
                "(axme.validate_scenario, axme.apply_scenario), and message people and agents (axme.send_message, "
                "axme.list_threads, axme.reply). Every result is {ok, tool, status, owner_agent, data}.")


def _error(id_: Any, err: tools.RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "error": {"code": err.code, "message": err.message, "data": err.data}}


def _result(id_: Any, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "result": result}


def _answer(body: Any, status: int = 200, request: Request | None = None,
            retry_after: int | None = None) -> Response:
    headers = echo_headers(request) or {}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _refuse(request: Request, err: tools.RpcError, status: int) -> Response:
    return _answer(_error(None, err), status, request)


def _limiter(request: Request) -> RateLimiter | None:
    """The (owner, tool) buckets of this process: ``mcp_tool_calls_per_minute`` a minute, bursts of as many."""
    state = request.app.state
    limiter: RateLimiter | None = getattr(state, "mcp_limiter", None)
    per_minute = runtime(request).settings.mcp_tool_calls_per_minute
    if limiter is None and per_minute > 0:
        limiter = state.mcp_limiter = RateLimiter(per_minute / 60.0, burst=per_minute)
    return limiter


def _transport_problem(request: Request) -> Response | None:
    """A POST that is no JSON-RPC call of an MCP client: another site's page, or not JSON."""
    origin = request.headers.get("origin")
    site = request.headers.get("sec-fetch-site")
    if (origin is not None and (origin == "null" or _netloc(origin) != request.headers.get("host", "").lower())) or (
            site is not None and site not in ("same-origin", "none")):
        err = tools.RpcError(tools.INVALID_REQUEST, "a page of another origin may not call /mcp",
                             {"origin": origin if origin is None or len(origin) <= 200 else origin[:200]})
        return _refuse(request, err, 403)
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        err = tools.RpcError(tools.INVALID_REQUEST, "send the JSON-RPC message as Content-Type: application/json",
                             {"content_type": media[:100]})
        return _refuse(request, err, 415)
    version = request.headers.get("mcp-protocol-version")
    if version is not None and version not in PROTOCOL_VERSIONS:
        err = tools.RpcError(tools.INVALID_REQUEST, f"MCP-Protocol-Version {version[:40]!r} is not one this server "
                             f"speaks ({', '.join(PROTOCOL_VERSIONS)})", {"supported": list(PROTOCOL_VERSIONS)})
        return _refuse(request, err, 400)
    return None


def _netloc(origin: str) -> str:
    from urllib.parse import urlsplit

    try:
        return urlsplit(origin).netloc.lower()
    except ValueError:
        return ""


async def mcp_endpoint(request: Request) -> Response:
    refused = _transport_problem(request)
    if refused is not None:
        return refused
    try:
        value = parse_json(await read_body(request))
    except PayloadTooLarge as exc:
        return _refuse(request, tools.RpcError(tools.INVALID_REQUEST, exc.message, exc.details), 413)
    except DomainError as exc:  # no JSON, or JSON the runtime refuses (too deep, integers beyond 64 bits)
        return _refuse(request, tools.RpcError(tools.PARSE_ERROR, f"parse error: {exc.message}",
                                               {"code": exc.code}), 400)
    batch = isinstance(value, list)
    if batch and not 1 <= len(value) <= MAX_BATCH:
        what = "an empty batch" if not value else f"a batch of {len(value)} messages (at most {MAX_BATCH})"
        return _refuse(request, tools.RpcError(tools.INVALID_REQUEST, f"invalid request: {what}"), 400)
    session = Session(request)
    answers: list[tuple[dict[str, Any], tools.RpcError | None]] = []
    for message in value if batch else [value]:
        answered = await session.handle(message)
        if answered is not None:
            answers.append(answered)
    if not answers:
        return Response(status_code=202, headers=echo_headers(request))
    if batch:
        return _answer([a for a, _ in answers], 200, request)
    body, err = answers[0]
    status = err.http_status if err is not None else 200
    return _answer(body, status, request, retry_after=err.retry_after if err is not None and status == 429 else None)


class Session:
    """The messages of one POST: who calls (authenticated once, when a method needs it), and the deadline every
    wait of them ends by."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.rt = runtime(request)
        self.credential = credential_of(request)
        self._principal: Principal | None = None
        self.deadline = time.monotonic() + tools.MAX_WAIT_SECONDS

    async def principal(self) -> Principal:
        if self._principal is None:
            if not self.credential:
                raise tools.RpcError(tools.AUTH_REQUIRED, "authentication required: send the API key as x-api-key "
                                     "or Authorization: Bearer <key>", {"code": "missing_api_key"})
            try:
                self._principal = await self.rt.auth.authenticate(self.credential, elsewhere_ok=True)
            except DomainError as exc:
                raise tools.from_domain(exc) from None
        return self._principal

    async def handle(self, message: Any) -> tuple[dict[str, Any], tools.RpcError | None] | None:
        """The answer to one message and its error, or None (a notification, or a client's response)."""
        if not isinstance(message, dict):
            err = tools.RpcError(tools.INVALID_REQUEST, "invalid request: a JSON-RPC message is an object")
            return _error(None, err), err
        id_ = message.get("id")
        if not (id_ is None or isinstance(id_, str) or (isinstance(id_, int) and not isinstance(id_, bool))):
            err = tools.RpcError(tools.INVALID_REQUEST, "invalid request: id must be a string, a number or null")
            return _error(None, err), err
        method = message.get("method")
        if message.get("jsonrpc") != "2.0" or not isinstance(method, str):
            if "method" not in message and ("result" in message or "error" in message) and "id" in message:
                return None  # a client's answer to a request this server never makes
            err = tools.RpcError(tools.INVALID_REQUEST, 'invalid request: send {"jsonrpc": "2.0", "method": ..., '
                                 '"id": ...}')
            return _error(id_, err), err
        if "id" not in message:
            return None  # a notification (notifications/initialized, notifications/cancelled, ...): nothing to do
        params = message.get("params", {})
        try:
            if params is not None and not isinstance(params, dict):
                raise tools.invalid("params", "must be an object")
            return _result(id_, await self.dispatch(method, params or {})), None
        except tools.RpcError as refused:
            return _error(id_, refused), refused
        except Exception:
            log.exception("unexpected error in MCP method %s", method[:100])
            failed = tools.RpcError(tools.INTERNAL_ERROR, "internal error; the runtime logged the details")
            return _error(id_, failed), failed

    async def dispatch(self, method: str, params: dict[str, Any]) -> Any:
        if method not in PUBLIC_METHODS and method != "tools/call":
            await self.principal()
        if method == "initialize":
            asked = params.get("protocolVersion")
            version = asked if asked in PROTOCOL_VERSIONS else (
                PROTOCOL_VERSION if asked is None else PROTOCOL_VERSIONS[-1])
            return {"protocolVersion": version, "capabilities": {"tools": {"listChanged": False}},
                    "serverInfo": {"name": "axme", "version": __version__}, "instructions": INSTRUCTIONS}
        if method == "ping":
            return {"pong": True}
        if method == "tools/list":
            return {"tools": [t.listed() for t in tools.TOOLS.values()]}
        if method == "resources/list":
            return {"resources": []}
        if method == "prompts/list":
            return {"prompts": []}
        if method == "tools/call":
            return await self.call_tool(params)
        raise tools.RpcError(tools.METHOD_NOT_FOUND, f"method not found: {method[:100]!r}",
                             {"methods": [*PUBLIC_METHODS, "tools/call", "resources/list", "prompts/list"]})

    async def call_tool(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params.get("name")
        if not isinstance(name, str):
            raise tools.invalid("name", "required: the tool to call (tools/list names them)")
        tool = tools.TOOLS.get(name)
        if tool is None:
            raise tools.invalid("name", f"unknown tool {name[:100]!r}; tools/list names them")
        args = params.get("arguments")
        args = {} if args is None else args
        if not isinstance(args, dict):
            raise tools.invalid("arguments", "must be an object")
        principal = await self.principal() if self.credential or not tool.public else None
        owner, named = self.owner_of(principal, params.get("owner_agent"), args.get("owner_agent"))
        self.take(owner, tool.name)
        tools.check_arguments(tool, args)
        call = tools.Call(self.request.app, self.request.scope, self.rt, principal, owner, named, args, self.deadline)
        missing = tools.unserved(tool.routes, list(self.request.app.routes))
        if missing:
            outcome = tools.Outcome("not_implemented", {"reason": "this runtime does not serve the routes this tool "
                                                                  "needs yet", "missing_routes": missing}, ok=False)
        else:
            outcome = await tool.run(call)
        return envelope(tool.name, owner, outcome)

    def owner_of(self, principal: Principal | None, in_params: Any, in_args: Any) -> tuple[str | None, bool]:
        """The owner a call acts for, and whether the caller named it."""
        s: Settings = self.rt.settings if principal is None else settings_for(self.rt.settings, principal)
        named = [v for v in (in_params, in_args) if v is not None]
        for value in named:
            if not isinstance(value, str) or not value.strip():
                raise tools.RpcError(tools.OWNER_REQUIRED, "owner_agent: must name an agent (an address or a bare "
                                     "name), or be left out to act as the credential's own address",
                                     {"field": "owner_agent"})
        if not named:
            return (principal.address if principal is not None else None), False
        if principal is None:
            raise tools.RpcError(tools.AUTH_REQUIRED, "owner_agent: acting for an owner needs its credential",
                                 {"field": "owner_agent"})
        try:
            owners = {resolve_target(s, str(v).strip(), "owner_agent") for v in named}
        except DomainError as exc:
            raise tools.RpcError(tools.INVALID_PARAMS, exc.message, {"field": "owner_agent"}) from None
        if len(owners) > 1:
            raise tools.RpcError(tools.OWNER_MISMATCH, "params.owner_agent and arguments.owner_agent name different "
                                 "owners", {"field": "owner_agent", "owners": sorted(owners)})
        owner = owners.pop()
        if not principal.is_member and owner != principal.address:
            raise tools.RpcError(tools.OWNER_MISMATCH, f"owner_agent: this key acts only as {principal.address}, "
                                 f"not as {owner[:200]}", {"field": "owner_agent", "allowed": [principal.address]})
        return owner, owner != principal.address

    def take(self, owner: str | None, tool: str) -> None:
        """One call of ``tool`` for ``owner`` (a call without a credential: for its client address)."""
        limiter = _limiter(self.request)
        if limiter is None:
            return
        client = self.request.client.host if self.request.client else "unknown"
        key = f"{owner or 'anonymous:' + client} {tool}"
        wait_s = limiter.wait_for(key)
        if wait_s <= 0:
            return
        retry = max(1, math.ceil(wait_s))
        per_minute = self.rt.settings.mcp_tool_calls_per_minute
        raise tools.RpcError(tools.RATE_LIMITED, f"rate limited: {tool} for {owner or 'this address'} at most "
                             f"{per_minute:g} calls a minute; retry in {retry} s",
                             {"tool": tool, "owner_agent": owner, "limit_per_minute": per_minute,
                              "retry_after_seconds": retry, "retryable": True}, retry_after=retry)


def envelope(name: str, owner: str | None, outcome: tools.Outcome) -> dict[str, Any]:
    """A tool call's result: AXME's ``{ok, tool, status, owner_agent, data}`` (and what a send adds beside data),
    also as MCP's ``content`` (its JSON text) and ``structuredContent``, with ``isError`` when it did not work."""
    shown = {"ok": outcome.ok, "tool": name, "status": outcome.status, "owner_agent": owner, **outcome.top,
             "data": outcome.data}
    return {**shown, "content": [{"type": "text", "text": tools.text_of(shown)}], "structuredContent": shown,
            "isError": not outcome.ok}


"""Sender policies: ``/v1/agents/{address}/policy``, ``/v1/agents/{address}/receive-override`` (each with
``/entries`` and ``/entries/{entry_id}``) and ``/v1/organizations/{org_id}/receive-policy`` (the same). What they
mean and who may set them: engine/policies.py.

``{address}`` is read as on ``GET /v1/agents/{address}`` (a bare name, ``org/ws/name`` or ``agent://...``). These
routes stand ahead of that one in the route table; a GET of an agent that is itself named ``policy`` or
``receive-override`` (``/v1/agents/org/ws/policy``) still answers the agent.

Every workspace's keys act in their own workspace (``runtime/scope.py``): an agent policy or override is set on an
agent of the caller's workspace (another workspace's agent is 404), and the org receive policy on the caller's
organization (shared by its workspaces; another org is 404).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from axme_cli.protocol import policies as wire
from axme_cli.protocol.models import describe_validation_error
from axme_cli.runtime.api import agents
from axme_cli.runtime.api.common import authenticate, read_object, respond, runtime
from axme_cli.runtime.engine import policies as engine
from axme_cli.runtime.errors import Unprocessable
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.scope import settings_for
from axme_cli.runtime.settings import Settings

_SUFFIX = {engine.AGENT_SEND: "policy", engine.AGENT_RECEIVE: "receive-override"}
_SET_MODEL: dict[str, type[BaseModel]] = {engine.AGENT_SEND: wire.SendPolicyRequest,
                                          engine.AGENT_RECEIVE: wire.ReceiveOverrideRequest,
                                          engine.ORG_RECEIVE: wire.ReceivePolicyRequest}


def _invalid(exc: ValidationError) -> Unprocessable:
    message, details = describe_validation_error(exc)
    return Unprocessable(message, details={"field": details[0]["field"] if details else "(body)", "errors": details})


async def _body(request: Request, model: type[BaseModel]) -> dict[str, Any]:
    try:
        return model.model_validate(await read_object(request)).model_dump()
    except ValidationError as exc:
        raise _invalid(exc) from None


async def _scoped(request: Request) -> tuple[Principal, Settings]:
    principal = await authenticate(request, elsewhere_ok=True)
    return principal, settings_for(runtime(request).settings, principal)


async def _subject(request: Request, s: Settings, principal: Principal, kind: str) -> str:
    """The policy's subject: the agent the path names (422 when it names none; 404 when the caller may not see it
    or it does not exist), or '' for the org (404 for any org but the caller's)."""
    rt = runtime(request)
    if kind == engine.ORG_RECEIVE:
        engine.check_org(s, principal, request.path_params["org_id"])
        return engine.ORG_WIDE
    address = agents.address_from_path(rt, request.path_params["address"], s)
    engine.check_may_read(s, principal, kind, address)
    return address


async def _check_exists(request: Request, s: Settings, principal: Principal, kind: str, subject: str) -> None:
    if kind == engine.ORG_RECEIVE:
        return
    accounts = await runtime(request).reads.list_service_accounts(s.org, s.workspace)
    exists = any(r["address"] == subject for r in accounts)
    engine.check_agent(s, principal, subject, exists)


def _names_an_agent(raw: str, suffix: str) -> str | None:
    """``org/ws`` (the path of ``/v1/agents/org/ws/policy``): the agent named ``suffix`` is meant; else None."""
    value = unquote(raw).strip().strip("/")
    if value.startswith("agent:/"):
        value = value[len("agent:/"):].lstrip("/")
    parts = value.split("/")
    return f"{value}/{suffix}" if len(parts) == 2 and all(parts) and "://" not in value else None


def _reader(kind: str) -> Any:
    async def get(request: Request) -> Response:
        if kind in _SUFFIX:
            agent = _names_an_agent(request.path_params["address"], _SUFFIX[kind])
            if agent is not None:
                request.scope["path_params"] = {**request.path_params, "address": agent}
                return await agents.get_agent(request)
        principal, s = await _scoped(request)
        rt = runtime(request)
        subject = await _subject(request, s, principal, kind)
        await _check_exists(request, s, principal, kind, subject)
        org, workspace = engine.scope_of(s, principal)
        row, entries = await rt.reads.read_sender_policy(
            org, engine.ORG_WIDE if kind == engine.ORG_RECEIVE else workspace, kind, subject)
        return respond(engine.answer(s, kind, subject, row, entries), request=request)

    get.__name__ = f"get_{kind}"
    return get


def _setter(kind: str) -> Any:
    async def put(request: Request) -> Response:
        principal, s = await _scoped(request)
        rt = runtime(request)
        body = await _body(request, _SET_MODEL[kind])  # first: a bad body is 400/422 whatever the path names
        subject = await _subject(request, s, principal, kind)
        policy_type = body["override_type" if kind == engine.AGENT_RECEIVE else "policy_type"]
        now = rt.clock.time()
        result = await rt.write(lambda tx: engine.op_set(tx, s, principal, kind, subject, policy_type, now))
        return respond(result, request=request)

    put.__name__ = f"set_{kind}"
    return put


def _adder(kind: str) -> Any:
    async def post(request: Request) -> Response:
        principal, s = await _scoped(request)
        rt = runtime(request)
        pattern = (await _body(request, wire.PolicyEntryRequest))["sender_pattern"]
        org, workspace = engine.scope_of(s, principal)
        engine.canonical_pattern(pattern, org, workspace)  # 422 before anything is looked up
        subject = await _subject(request, s, principal, kind)
        now = rt.clock.time()
        result = await rt.write(lambda tx: engine.op_add_entry(tx, s, principal, kind, subject, pattern,
                                                               now))
        return respond(result, request=request)

    post.__name__ = f"add_{kind}_entry"
    return post


def _remover(kind: str) -> Any:
    async def delete(request: Request) -> Response:
        principal, s = await _scoped(request)
        rt = runtime(request)
        subject = await _subject(request, s, principal, kind)
        entry_id = request.path_params["entry_id"]
        now = rt.clock.time()
        result = await rt.write(lambda tx: engine.op_remove_entry(tx, s, principal, kind, subject,
                                                                  entry_id, now))
        return respond(result, request=request)

    delete.__name__ = f"remove_{kind}_entry"
    return delete


def _routes(base: str, kind: str) -> list[Route]:
    return [
        Route(base, _reader(kind), methods=["GET"]),
        Route(base, _setter(kind), methods=["PUT"]),
        Route(f"{base}/entries", _adder(kind), methods=["POST"]),
        Route(f"{base}/entries/{{entry_id}}", _remover(kind), methods=["DELETE"]),
    ]


# Ahead of agents.routes in the route table: GET /v1/agents/{address:path} would take these paths otherwise.
routes = [
    *_routes("/v1/agents/{address:path}/policy", engine.AGENT_SEND),
    *_routes("/v1/agents/{address:path}/receive-override", engine.AGENT_RECEIVE),
    *_routes("/v1/organizations/{org_id}/receive-policy", engine.ORG_RECEIVE),
]

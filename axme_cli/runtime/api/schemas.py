"""/v1/schemas: the schema registry (AXME family d5; engine/schemas.py).

Owner-scoped like webhooks: a tenant schema belongs to one agent (an agent key registers and reads its own; the
workspace key and people name the agent with ``owner_agent`` / ``x-owner-agent``); the workspace's schemas
(``scope: core``) are registered by the workspace key only and read by anyone. The registry is per workspace: a
tenant schema is its agent's (an agent of the caller's workspace), and each workspace has its own core schemas
(``engine.core_key``). A schema_json the runtime will not
evaluate (protocol/schemas.py: remote ``$ref``, non-RE2 patterns, over the bounds, not a JSON Schema) is 400
``schema_invalid`` naming where in it, as AXME answers.
"""

from __future__ import annotations

import hashlib
import re

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from axme_cli.protocol.models import INTENT_TYPE_MAX
from axme_cli.protocol.semantic_schemas import SEMANTIC_TYPE_PATTERN, SchemaUpsertRequest
from axme_cli.runtime import scope
from axme_cli.runtime.api.common import authenticate, idempotency_key, read_body, respond, runtime
from axme_cli.runtime.api.intents import parse_model
from axme_cli.runtime.api.webhooks import owner_scope
from axme_cli.runtime.engine import schemas as engine
from axme_cli.runtime.errors import BadRequest, NotFound, Unprocessable

_SEMANTIC_TYPE = re.compile(SEMANTIC_TYPE_PATTERN)
# Registered schemas are checked against the metaschema and the inert-schema rules on a worker thread.
_CHECK_THREADS = anyio.CapacityLimiter(2)


def _check_schema(schema: dict[str, object]) -> None:
    from axme_cli.protocol import schemas

    try:
        schemas.check(schema)
    except schemas.SchemaRefused as exc:
        field = f"schema_json.{exc.where}" if exc.where else "schema_json"
        raise BadRequest(f"{field}: {exc.message}", code="schema_invalid", details={"field": field}) from None


async def upsert_schema(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    core = engine.core_key(scope.settings_for(rt.settings, principal))
    owner = await owner_scope(request, principal)
    raw = await read_body(request)
    req = parse_model(raw, SchemaUpsertRequest)
    req.setdefault("scope", "tenant")
    if req["scope"] == "tenant" and owner is None:
        if principal.kind != "service_account":
            raise BadRequest("owner_agent: a tenant schema belongs to one agent; name it (owner_agent or "
                             "x-owner-agent), or register the workspace's with scope core",
                             code="owner_agent_required", details={"field": "owner_agent"})
        owner = principal.address
    await anyio.to_thread.run_sync(_check_schema, req["schema_json"], limiter=_CHECK_THREADS)
    key = idempotency_key(request)
    idem = (f"{principal.key_id}:POST /v1/schemas", key, hashlib.sha256(raw).hexdigest()) if key else None
    now = rt.clock.time()
    result = await rt.write(lambda tx: engine.op_upsert(tx, principal, req, owner, now, idem, core))
    return respond(result, request=request)


async def get_schema(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    semantic_type = request.path_params["semantic_type"]
    if len(semantic_type) > INTENT_TYPE_MAX or not _SEMANTIC_TYPE.match(semantic_type):
        raise Unprocessable(f"semantic_type: {semantic_type[:100]!r} is not a semantic type (lower-case dotted parts "
                            "and a version, e.g. order.place.v1)", code="invalid_parameter",
                            details={"field": "semantic_type"})
    owner = await owner_scope(request, principal)
    if owner is None and principal.kind == "service_account":
        owner = principal.address
    rt = runtime(request)
    core = engine.core_key(scope.settings_for(rt.settings, principal))
    rows = await rt.reads.schema_records(semantic_type, [owner, core] if owner else [core])
    row = engine.applicable(rows, owner, core)
    if row is None:
        whose = f"{owner} or the workspace" if owner else "the workspace"
        raise NotFound(f"no active schema for {semantic_type} ({whose})", code="schema_not_found",
                       details={"semantic_type": semantic_type})
    return respond({"ok": True, "schema": engine.record_view(row, with_json=True)}, request=request)


routes = [
    Route("/v1/schemas", upsert_schema, methods=["POST"]),
    Route("/v1/schemas/{semantic_type}", get_schema, methods=["GET"]),
]

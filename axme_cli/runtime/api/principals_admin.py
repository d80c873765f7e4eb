"""/v1/principals: register a principal (the workspace key or a person), read one (members any; an agent key only
itself). ``principal_id`` may also be an agent's address or name (engine/principals_admin.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from axme_cli.protocol.routing import PrincipalCreateRequest
from axme_cli.runtime.api.common import authenticate, parse_object, read_body, respond, runtime
from axme_cli.runtime.api.inbox import idempotency_of
from axme_cli.runtime.api.intents import validation_failed
from axme_cli.runtime.engine import idempotency
from axme_cli.runtime.engine import principals_admin as engine
from axme_cli.runtime.scope import settings_for
from axme_cli.runtime.store.base import Tx


def parse(model: type[BaseModel], body: Any) -> dict[str, Any]:
    """``body`` validated by ``model``: the fields given (a null counts as not given); 422 naming the field."""
    try:
        return model.model_validate(body).model_dump(exclude_none=True)
    except ValidationError as exc:
        raise validation_failed(exc) from None


async def create_principal(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    s = settings_for(rt.settings, principal)
    raw = await read_body(request)
    req = parse(PrincipalCreateRequest, parse_object(raw))
    idem = idempotency_of(request, principal, raw)
    now = rt.clock.time()

    def create(tx: Tx) -> dict[str, Any]:
        return idempotency.once(tx, idem, now, lambda: engine.principal_view(
            engine.op_create_principal(tx, s, principal, req, now))).result

    return respond({"ok": True, "principal": await rt.write(create)}, request=request)


async def get_principal(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    s = settings_for(rt.settings, principal)
    raw = request.path_params["principal_id"]
    target = await engine.find_read(rt.reads, s, raw)
    if not principal.is_member and principal.address != target.address:
        raise engine.not_found(raw)
    return respond({"ok": True, "principal": target.view}, request=request)


routes = [
    Route("/v1/principals", create_principal, methods=["POST"]),
    Route("/v1/principals/{principal_id:path}", get_principal, methods=["GET"]),
]

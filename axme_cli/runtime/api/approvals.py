"""POST /v1/approvals/{approval_id}/decision and GET /v1/capabilities (axme-reference.md §2.5)."""

from __future__ import annotations

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from axme_cli.protocol import capabilities as caps
from axme_cli.protocol.inbox import ApprovalDecisionRequest
from axme_cli.runtime import scope
from axme_cli.runtime.api.common import authenticate, read_object, respond, runtime, write_answer
from axme_cli.runtime.api.inbox import idempotency_of
from axme_cli.runtime.api.intents import validation_failed
from axme_cli.runtime.engine import approvals as engine
from axme_cli.runtime.engine.idempotency import once


async def decide(request: Request) -> Response:
    """Approve or reject the intent ``approval_id`` that waits for a person (see engine/approvals.py)."""
    principal = await authenticate(request, elsewhere_ok=True)
    body = await read_object(request)
    try:
        req = ApprovalDecisionRequest.model_validate(body)
    except ValidationError as exc:
        raise validation_failed(exc) from None
    approval_id = request.path_params["approval_id"]
    idem = idempotency_of(request, principal, f"{req.decision}\n{req.comment or ''}".encode())
    rt = runtime(request)
    now = rt.clock.time()
    result = await write_answer(rt, lambda tx: once(tx, idem, now, lambda: engine.op_decide(
        tx, scope.settings_for(rt.settings, principal), principal, approval_id, req.decision, req.comment, now)).result)
    return respond(result, request=request)


async def capabilities(request: Request) -> Response:
    await authenticate(request, elsewhere_ok=True)
    return respond(caps.document(), request=request)


routes = [
    Route("/v1/approvals/{approval_id}/decision", decide, methods=["POST"]),
    Route("/v1/capabilities", capabilities, methods=["GET"]),
]

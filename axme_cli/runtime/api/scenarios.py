"""/v1/scenarios routes: validate and apply a ScenarioBundle."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from axme_cli.protocol.scenario import check
from axme_cli.runtime import tracing
from axme_cli.runtime.api.common import authenticate, parse_object, read_body, respond, runtime
from axme_cli.runtime.engine import workflows
from axme_cli.runtime.errors import Unprocessable


def _verdict(raw: Any) -> tuple[Any, list[str], list[str]]:
    bundle, errors, warnings = check(raw)
    return bundle, [str(e) for e in errors], [str(w) for w in warnings]


async def validate(request: Request) -> Response:
    await authenticate(request)
    body = parse_object(await read_body(request))
    _, errors, warnings = _verdict(body)
    return respond({"ok": True, "valid": not errors, "errors": errors, "warnings": warnings}, request=request)


async def apply(request: Request) -> Response:
    principal = await authenticate(request)
    raw = await read_body(request)
    body = parse_object(raw)
    bundle, errors, warnings = _verdict(body)
    if errors or bundle is None:
        raise Unprocessable(f"the scenario bundle is invalid: {errors[0]}" + (
            f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
            code="scenario_invalid", details={"errors": errors, "warnings": warnings})
    key = request.headers.get("idempotency-key") or bundle.idempotency_key
    idem = (f"{principal.key_id}:POST /v1/scenarios/apply", key, hashlib.sha256(raw).hexdigest()) if key else None
    rt = runtime(request)
    now = time.time()
    trace = tracing.context_from(request.headers) if rt.tracing is not None else None
    result = await rt.write(lambda tx: workflows.op_apply(tx, rt.settings, principal, bundle, now, idem, trace))
    return respond({**result, "warnings": warnings}, request=request)


routes = [
    Route("/v1/scenarios/validate", validate, methods=["POST"]),
    Route("/v1/scenarios/apply", apply, methods=["POST"]),
]

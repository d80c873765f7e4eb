"""/v1/scenarios routes: validate and apply a ScenarioBundle."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from axme_cli.protocol.scenario import IntentSpec, ScenarioBundle, check
from axme_cli.runtime import scope, tracing
from axme_cli.runtime.api.common import authenticate, idempotency_key, parse_object, read_body, respond, runtime
from axme_cli.runtime.egress_policy import Policy, check_callback_url
from axme_cli.runtime.engine import workflows
from axme_cli.runtime.errors import Unprocessable


def _verdict(raw: Any) -> tuple[Any, list[str], list[str]]:
    bundle, errors, warnings = check(raw)
    return bundle, [str(e) for e in errors], [str(w) for w in warnings]


# Valid bundles seen lately, without their ``intent`` and ``idempotency_key`` (what changes from one apply of a
# scenario to the next): the rest is not validated again. No check of a bundle looks at its intent.
_VALID: dict[bytes, tuple[ScenarioBundle, list[str]]] = {}
_VALID_MAX = 256


def _verdict_of_apply(raw: dict[str, Any]) -> tuple[Any, list[str], list[str]]:
    intent, key = raw.get("intent"), raw.get("idempotency_key")
    rest = orjson.dumps({k: v for k, v in raw.items() if k not in ("intent", "idempotency_key")})
    seen = _VALID.get(rest)
    if seen is not None and isinstance(intent, dict) and (key is None or isinstance(key, str) and len(key) <= 255):
        try:
            spec = IntentSpec.model_validate(intent)
        except ValidationError:
            return _verdict(raw)  # the whole check names the fields
        bundle, warnings = seen
        return bundle.model_copy(update={"intent": spec, "idempotency_key": key}), [], warnings
    bundle, errors, warnings = _verdict(raw)
    if bundle is not None and not errors:
        if len(_VALID) >= _VALID_MAX:
            _VALID.clear()
        _VALID[rest] = (bundle, warnings)
    return bundle, errors, warnings


async def validate(request: Request) -> Response:
    await authenticate(request, elsewhere_ok=True)
    body = parse_object(await read_body(request))
    _, errors, warnings = _verdict(body)
    return respond({"ok": True, "valid": not errors, "errors": errors, "warnings": warnings}, request=request)


async def apply(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    raw = await read_body(request)
    body = parse_object(raw)
    bundle, errors, warnings = _verdict_of_apply(body)
    if errors or bundle is None:
        raise Unprocessable(f"the scenario bundle is invalid: {errors[0]}" + (
            f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
            code="scenario_invalid", details={"errors": errors, "warnings": warnings})
    rt = runtime(request)
    rt.mesh.check_sender(principal.address)  # a killed agent may not start workflows either
    for i, agent in enumerate(bundle.agents):  # an http agent the apply provisions: the same rule as the PATCH
        if agent.delivery_mode == "http" and agent.callback_url:
            check_callback_url(Policy.of(rt.settings), agent.callback_url, field=f"agents[{i}].callback_url")
    key = idempotency_key(request) or bundle.idempotency_key
    idem = (f"{principal.key_id}:POST /v1/scenarios/apply", key, hashlib.sha256(raw).hexdigest()) if key else None
    now = rt.clock.time()
    trace = tracing.context_from(request.headers) if rt.tracing is not None else None
    s = scope.settings_for(rt.settings, principal)  # a workflow runs in the applier's workspace
    result = await rt.write(lambda tx: workflows.op_apply(tx, s, principal, bundle, now, idem, trace))
    return respond({**result, "warnings": warnings}, request=request)


routes = [
    Route("/v1/scenarios/validate", validate, methods=["POST"]),
    Route("/v1/scenarios/apply", apply, methods=["POST"]),
]

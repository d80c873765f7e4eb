"""/v1/schedules routes: create, list, get, delete, pause, resume and trigger a schedule (engine/schedules.py).

AXME's gateway has no schedules family; these follow its conventions (``{ok, schedule}``, ``{ok, schedules,
next_cursor}``, the AXP error shape, an Idempotency-Key on create). The cron expression and time zone are checked
here before anything is written (422 naming ``cron`` or ``timezone``, with the fix), and what runs is checked as
``/v1/scenarios/apply`` or ``/v1/intents`` would check it, its fields named under ``scenario.`` or ``intent.``.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from axme_cli.protocol.models import UUID_PATTERN, create_request_adapter, describe_validation_error
from axme_cli.protocol.scenario import check
from axme_cli.protocol.schedules import (
    ScheduleCreateRequest,
    ScheduleProblem,
    ScheduleTriggerRequest,
    cron_problem,
    next_after,
    timezone_problem,
)
from axme_cli.runtime.api.common import (
    authenticate,
    idempotency_key,
    int_param,
    parse_object,
    read_body,
    respond,
    runtime,
)
from axme_cli.runtime.api.intents import check_payload, create_request, validation_failed
from axme_cli.runtime.egress_policy import Policy, check_callback_url
from axme_cli.runtime.engine import schedules as engine
from axme_cli.runtime.errors import DomainError, NotFound, Unprocessable
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.scope import belongs, principal_pair, settings_for
from axme_cli.runtime.settings import Settings

_UUID = re.compile(UUID_PATTERN)
# Stands in for a correlation_id the intent leaves out while it is checked: each run then gets a new one.
_PLACEHOLDER = "00000000-0000-4000-8000-000000000000"


def _refused(problem: ScheduleProblem) -> Unprocessable:
    return Unprocessable(f"{problem}; {problem.fix}", code=f"invalid_{problem.field}",
                         details={"field": problem.field, "fix": problem.fix})


def _under(prefix: str, exc: DomainError) -> Unprocessable:
    """A refusal of the part of the body under ``prefix`` (``intent``), its field named from the top."""
    details = dict(exc.details) if isinstance(exc.details, dict) else {}
    if isinstance(details.get("field"), str):
        details["field"] = f"{prefix}.{details['field']}"
    return Unprocessable(f"{prefix}.{exc.message}", code=exc.code, details=details)


def _scenario_spec(s: Settings, raw: dict[str, Any]) -> dict[str, Any]:
    bundle, problems, _ = check(raw)
    errors = [f"scenario.{p}" for p in problems]
    if errors or bundle is None:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise Unprocessable(f"the scenario bundle is invalid: {errors[0] if errors else 'scenario'}{more}",
                            code="scenario_invalid", details={"field": "scenario", "errors": errors})
    if bundle.intent.deadline_at is not None:
        raise Unprocessable("scenario.intent.deadline_at: a fixed time would have passed for later runs; leave it "
                            "out (steps take step_deadline_seconds)", details={"field": "scenario.intent.deadline_at"})
    for i, agent in enumerate(bundle.agents):  # an http agent the runs provision: the rule of /apply
        if agent.delivery_mode == "http" and agent.callback_url:
            check_callback_url(Policy.of(s), agent.callback_url, field=f"scenario.agents[{i}].callback_url")
    return raw


def _intent_spec(s: Settings, principal: Principal, raw: dict[str, Any]) -> dict[str, Any]:
    given = "correlation_id" in raw
    try:
        model = create_request_adapter.validate_python(raw if given else {**raw, "correlation_id": _PLACEHOLDER})
    except ValidationError as exc:
        message, details = describe_validation_error(exc)
        for d in details:
            d["field"] = f"intent.{d['field']}"
        raise Unprocessable(f"intent.{message}", details={"errors": details, "field": details[0]["field"]}) from None
    if model.deadline_at is not None:
        raise Unprocessable("intent.deadline_at: a fixed time would have passed for later runs; leave it out",
                            details={"field": "intent.deadline_at"})
    if model.attachments:
        raise Unprocessable("intent.attachments: a schedule's runs carry no uploads; put what they need in the "
                            "payload", details={"field": "intent.attachments"})
    try:
        req = create_request(s, principal, model)
    except DomainError as exc:
        raise _under("intent", exc) from None
    if not given:
        del req["correlation_id"]
    return {k: v for k, v in req.items() if v is not None}


async def _scoped(request: Request) -> tuple[Principal, Settings]:
    """The caller and the settings of its workspace: every workspace's keys act on their own schedules."""
    principal = await authenticate(request, elsewhere_ok=True)
    return principal, settings_for(runtime(request).settings, principal)


async def create_schedule(request: Request) -> Response:
    principal, s = await _scoped(request)
    engine.check_may_change(principal)
    rt = runtime(request)
    raw = await read_body(request)
    try:
        model = ScheduleCreateRequest.model_validate(parse_object(raw))
    except ValidationError as exc:
        raise validation_failed(exc) from None
    for problem in (cron_problem(model.cron), timezone_problem(model.timezone)):
        if problem is not None:
            raise _refused(problem)
    now = rt.clock.time()
    if next_after(model.cron, model.timezone, now) is None:
        fix = "name a date that exists (e.g. not 30 February)"
        raise Unprocessable(f"cron {model.cron!r}: matches no time in the next 50 years; {fix}", code="invalid_cron",
                            details={"field": "cron", "fix": fix})
    if (model.scenario is None) == (model.intent is None):
        raise Unprocessable("scenario or intent: give exactly one (a ScenarioBundle to apply, or an intent body as "
                            "POST /v1/intents takes)", details={"field": "scenario"})
    if model.scenario is not None:
        kind, spec = "scenario", _scenario_spec(s, model.scenario)
    else:
        assert model.intent is not None
        to = model.intent.get("to_agent")
        alias = await rt.aliases.lookup(rt.reads, s, to) if isinstance(to, str) else None
        # an alias, as POST /v1/intents takes it; each run resolves it again (engine/schedules.py)
        kind, spec = "intent", _intent_spec(s, principal, model.intent if alias is None else
                                            {**model.intent, "to_agent": alias.address})
        if alias is not None:
            spec["to_alias"] = alias.recorded()
        # the payload the runs send, against the schema registered for it now (as POST /v1/intents checks it)
        await check_payload(rt, {**spec, "payload": {**spec["payload"], **(model.payload or {})}}, s)
    req = {"cron": model.cron, "timezone": model.timezone, "kind": kind, "spec": spec, "payload": model.payload,
           "missed_run_policy": model.missed_run_policy, "overlap_policy": model.overlap_policy,
           "paused": model.paused, "description": model.description}
    key = idempotency_key(request)
    idem = (f"{principal.key_id}:POST /v1/schedules", key, hashlib.sha256(raw).hexdigest()) if key else None
    result = await rt.write(lambda tx: engine.op_create(tx, s, principal, req, now, idem))
    return respond(result, request=request)


async def list_schedules(request: Request) -> Response:
    principal, _ = await _scoped(request)
    engine.check_may_read(principal)
    limit = int_param(request, "limit", 50, 1, 200)
    cursor = request.query_params.get("cursor") or None
    if cursor is not None and not _UUID.match(cursor):
        raise Unprocessable("cursor: not a cursor this list gave (next_cursor of the previous page)",
                            code="invalid_parameter", details={"field": "cursor"})
    rows = await runtime(request).reads.list_schedules(*principal_pair(principal), before=cursor, limit=limit)
    next_cursor = rows[-1]["schedule_id"] if len(rows) == limit else None
    return respond({"ok": True, "schedules": [engine.schedule_view(r) for r in rows], "next_cursor": next_cursor},
                   request=request)


async def get_schedule(request: Request) -> Response:
    principal, _ = await _scoped(request)
    engine.check_may_read(principal)
    schedule_id = request.path_params["schedule_id"]
    row = await runtime(request).reads.get_schedule(schedule_id)
    if row is None or not belongs(principal, row):  # another workspace's is as missing
        raise NotFound(f"schedule {schedule_id} not found", code="schedule_not_found")
    return respond({"ok": True, "schedule": engine.schedule_view(row, full=True)}, request=request)


def _by_id(op: Any) -> Any:
    """The route of an operation on one schedule by its id (delete, pause, resume): its answer as it is."""

    async def route(request: Request) -> Response:
        principal, _ = await _scoped(request)
        schedule_id = request.path_params["schedule_id"]
        rt = runtime(request)
        now = rt.clock.time()
        return respond(await rt.write(lambda tx: op(tx, principal, schedule_id, now)), request=request)

    return route


delete_schedule = _by_id(engine.op_delete)
pause_schedule = _by_id(engine.op_pause)
resume_schedule = _by_id(engine.op_resume)


async def trigger_schedule(request: Request) -> Response:
    principal, s = await _scoped(request)
    rt = runtime(request)
    raw = await read_body(request)
    overlap = None
    if raw.strip():
        try:
            overlap = ScheduleTriggerRequest.model_validate(parse_object(raw)).overlap_policy
        except ValidationError as exc:
            raise validation_failed(exc) from None
    schedule_id = request.path_params["schedule_id"]
    now = rt.clock.time()
    result = await rt.write(lambda tx: engine.op_trigger(tx, s, principal, schedule_id, now, overlap))
    return respond(result, request=request)


routes = [
    Route("/v1/schedules", create_schedule, methods=["POST"]),
    Route("/v1/schedules", list_schedules, methods=["GET"]),
    Route("/v1/schedules/{schedule_id}", get_schedule, methods=["GET"]),
    Route("/v1/schedules/{schedule_id}", delete_schedule, methods=["DELETE"]),
    Route("/v1/schedules/{schedule_id}/pause", pause_schedule, methods=["POST"]),
    Route("/v1/schedules/{schedule_id}/resume", resume_schedule, methods=["POST"]),
    Route("/v1/schedules/{schedule_id}/trigger", trigger_schedule, methods=["POST"]),
]

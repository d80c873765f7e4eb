"""/v1/intents routes."""

from __future__ import annotations

import functools
import hashlib
import re
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

import anyio
import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from axme_cli.protocol import addresses, nicks, semantic_schemas
from axme_cli.protocol import lifecycle as lc
from axme_cli.protocol.controls import GRANT_PREFIX, ControlsRequest, PolicyRequest
from axme_cli.protocol.models import (
    BulkCancelRequest,
    ResolveRequest,
    create_request_adapter,
    describe_validation_error,
)
from axme_cli.runtime import clock, scope, tracing
from axme_cli.runtime.api.common import (
    authenticate,
    header,
    idempotency_key,
    int_param,
    parse_json,
    parse_object,
    query_param,
    read_body,
    read_object,
    respond,
    respond_raw,
    runtime,
    write_answer,
)
from axme_cli.runtime.api.sse import LINGER_SECONDS, EventStream, Last, reads_incrementally
from axme_cli.runtime.clock import to_iso
from axme_cli.runtime.core import Runtime
from axme_cli.runtime.engine import controls, media, schemas
from axme_cli.runtime.engine import intents as engine
from axme_cli.runtime.engine.codec import shared
from axme_cli.runtime.engine.workflows import workflow_view
from axme_cli.runtime.errors import BadRequest, NotFound, Unprocessable
from axme_cli.runtime.notify import handed_over
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Row, Tx


def resolve_target(s: Settings, raw: str, field: str = "to_agent") -> str:
    value = raw.strip()
    bad = Unprocessable(
        f"{field}: {raw!r} is not an agent address; use agent://org/workspace/name, a bare agent name or @nick",
        code="invalid_agent_address",
        details={"field": field},
    )
    if any(ch.isspace() for ch in value):
        raise bad
    if value.startswith(addresses.SCHEME):
        if len(value) <= len(addresses.SCHEME):
            raise bad
        return value
    if "://" in value:
        return value if value.startswith("initiator://") else _raise(bad)
    parts = value.split("/")
    if not all(parts) or len(parts) > 3 or not addresses.is_valid_name(parts[-1]):
        raise bad
    return addresses.qualify(value, s.org, s.workspace)


def _raise(exc: Exception) -> str:
    raise exc


async def resolve_recipient(rt: Runtime, raw: str, field: str = "to_agent", s: Settings | None = None) -> str:
    """``resolve_target`` (in the workspace of ``s``, the runtime's default one if None), and a user's nick
    (``@name`` or ``name@ax``) as the address it is bound to, looked up when the request is served (a later rename
    does not move what was already sent); 404 ``nick_not_found``."""
    nick = nicks.of_recipient(raw) if "@" in raw else None
    if nick is None:
        return resolve_target(s or rt.settings, raw, field)
    row = await rt.reads.read_user("nick", nick)
    if row is None:
        raise NotFound(f"{field}: no user has the nick @{nick}", code="nick_not_found", details={"field": field})
    return str(row["owner_agent"])


async def elsewhere_here(rt: Runtime, s: Settings, address: str) -> bool:
    """Whether ``address`` names a workspace of this runtime other than the one of ``s`` (an address naming
    none of its workspaces is another deployment's, as before workspaces)."""
    named = scope.segments(address)
    if named is None or named == (s.org, s.workspace):
        return False
    if named == (rt.settings.org, rt.settings.workspace):
        return True
    return await rt.reads.get_workspace(*named) is not None


async def check_address(rt: Runtime, s: Settings, address: str, field: str) -> str:
    """``address``, unless it names another workspace of this runtime than the one of ``s``: 404
    ``agent_not_found``, as for a missing agent (a workspace sends nothing to another's agents, acts for none of
    them, and learns nothing of which exist there)."""
    if await elsewhere_here(rt, s, address):
        raise NotFound(f"{field}: no agent {address} in this workspace", code="agent_not_found",
                       details={"field": field})
    return address


async def check_in_workspace(rt: Runtime, s: Settings, req: dict[str, Any],
                             fields: tuple[str, ...] = ("to_agent", "reply_to", "from_agent")) -> None:
    """``check_address`` for each address of a create request."""
    for field in fields:
        address = req.get(field)
        if isinstance(address, str):
            await check_address(rt, s, address, field)


def validation_failed(exc: ValidationError) -> Exception:
    errors = exc.errors(include_url=False, include_input=False)
    if errors and errors[0].get("type") == "model_type":
        return Unprocessable("request body must be a JSON object", details={"field": "(body)"})
    message, details = describe_validation_error(exc)
    return Unprocessable(message, details={"errors": details})


async def create_intent(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    s = scope.settings_for(rt.settings, principal)
    raw = await read_body(request)
    try:
        model = create_request_adapter.validate_python(parse_json(raw))
    except ValidationError as exc:
        raise validation_failed(exc) from None
    alias = await rt.aliases.lookup(rt.reads, s, model.to_agent)  # memory only (engine/aliases.py)
    if alias is not None:  # an alias: the address of its principal
        model = model.model_copy(update={"to_agent": alias.address})
    if "@" in model.to_agent or (model.reply_to and "@" in model.reply_to):  # a nick: the user's address
        model = model.model_copy(update={
            "to_agent": await resolve_recipient(rt, model.to_agent, s=s),
            "reply_to": await resolve_recipient(rt, model.reply_to, "reply_to", s) if model.reply_to else None})
    req = create_request(s, principal, model)
    await check_in_workspace(rt, s, req)
    if alias is not None:
        req["to_alias"] = alias.recorded()
    rt.mesh.check_sender(req["from_agent"])  # a killed agent may not send (a set lookup: engine/mesh.py)
    if rt.tracing is not None:
        req["trace"] = tracing.context_from(request.headers)
    key = idempotency_key(request)
    idem = (f"{principal.key_id}:POST /v1/intents", key, hashlib.sha256(raw).hexdigest()) if key else None
    attachments = [a.model_dump() for a in model.attachments] if model.attachments else None
    body = await create_checked(rt, principal, req, rt.clock.time(), idem, attachments, s)
    return respond(body, request=request)


# Payloads validated against their type's registered schema at once, each on a worker thread: the event loop (and
# on SQLite the writer, which runs on it) goes on meanwhile.
_SCHEMA_THREADS = anyio.CapacityLimiter(2)


async def check_payload(rt: Runtime, req: dict[str, Any], s: Settings | None = None) -> schemas.Check | None:
    """The payload of a create judged against the schema registered for its type and target (engine/schemas.py),
    outside any transaction: None when none applies (asked of memory only) or its schema_mode is none; 422 naming
    the payload's field when it does not fit and the mode is enforce; else the verdict, for the create to record
    (warn: the problem goes to ``intent.created``'s details). ``s``: the sender's workspace's settings, whose
    schemas (scope core) apply (the runtime's default workspace's if None)."""
    core = schemas.core_key(s or rt.settings)
    for _ in range(2):
        head = await rt.schemas.head(rt.reads, req["intent_type"], req["to_agent"], core)
        if head is None:
            return None
        mode = semantic_schemas.schema_mode(head.compatibility_mode, req.get("schema_mode"))
        if mode == "none":
            return None
        key = schemas.verdict_key(head, req["payload"])
        problem = schemas.known_verdict(key)  # the same payload under the same schema: judged already
        if problem is schemas.UNKNOWN:
            schema = await rt.schemas.schema(rt.reads, head)
            if schema is None:  # replaced since the index was read
                rt.schemas.invalidate()
                continue
            problem = await anyio.to_thread.run_sync(schemas.judge_and_keep, key, schema, req["payload"],
                                                     limiter=_SCHEMA_THREADS)
        check = schemas.Check(head, req["to_agent"], mode, problem, core)
        if problem is not None and mode == "enforce":
            raise check.refusal()
        return check
    raise schemas.SchemaChanged()


async def create_checked(rt: Runtime, principal: Principal, req: dict[str, Any], now: float,
                         idem: Any = None, attachments: list[dict[str, Any]] | None = None,
                         s: Settings | None = None) -> dict[str, Any]:
    """``engine.op_create`` with the payload checked against its schema first (``check_payload``); when the schema
    changed between the check and the write, once more. ``attachments``: uploads the sender attaches, checked and
    recorded in the same transaction (engine/media.py). ``s``: the caller's workspace's settings
    (``scope.settings_for``; the runtime's own if None), through which aliases, quotas and policies are read."""
    s = s or scope.settings_for(rt.settings, principal)
    for attempt in (1, 2):
        checked = await check_payload(rt, req, s)

        def create(tx: Tx, checked: schemas.Check | None = checked) -> dict[str, Any]:
            def make(r: dict[str, Any]) -> dict[str, Any]:
                return engine.op_create(tx, s, principal, r, now, idem, checked)

            if attachments:
                return media.with_attachments(tx, principal, attachments, req, now, make)
            return make(req)

        try:
            return await rt.write(create)
        except schemas.SchemaChanged:
            rt.schemas.invalidate()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def create_request(s: Settings, principal: Principal, model: Any) -> dict[str, Any]:
    """What ``engine.op_create`` takes, from a validated create request (also the dashboard's retry)."""
    req: dict[str, Any] = {
        "intent_type": model.intent_type,
        "correlation_id": str(model.correlation_id),
        "to_agent": resolve_target(s, model.to_agent),
        "payload": model.payload,
        "max_delivery_attempts": model.max_delivery_attempts,
        "reply_to": resolve_target(s, model.reply_to, "reply_to") if model.reply_to else None,
        "deadline_at": to_iso(model.deadline_at) if model.deadline_at else None,
        "remind_after_seconds": model.remind_after_seconds,
        "remind_interval_seconds": model.remind_interval_seconds,
        "max_reminders": model.max_reminders,
        "escalate_to": model.escalate_to,
        "human_task": model.human_task.model_dump(exclude_none=True) if model.human_task else None,
        "schema_mode": model.schema_mode,
    }
    named = model.from_agent
    if named and named != principal.address:
        named = resolve_target(s, named, "from_agent")
    req["from_agent"], acted = engine.acting_as(s, principal, named, "from_agent")
    req.update(acted)
    return req


async def _visible(request: Request, principal: Principal, intent_id: str) -> dict[str, Any]:
    rt = runtime(request)
    await rt.settled(intent_id)  # a delivery just streamed to an agent is visible to it (Runtime.deliver_behind)
    return _seen(principal, intent_id, await rt.reads.get_intent(intent_id))


def _seen(principal: Principal, intent_id: str, row: Row | None) -> Row:
    """``row`` if the caller may see the intent, else 404 (one answer for "not there" and "not yours")."""
    if row is None or not principal.may_see(row):
        raise NotFound(f"intent {intent_id} not found", code="intent_not_found")
    return row


async def get_intent(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    row = await _visible(request, principal, request.path_params["intent_id"])
    view = engine.intent_view(row)
    doc = engine.loads(row["doc"])
    if doc.get("workflow_parent"):
        wf = await runtime(request).reads.get_workflow(doc["workflow_id"])
        view["workflow"] = workflow_view(wf) if wf is not None else None
    elif doc.get("workflow_id"):
        view["workflow_step"] = {"workflow_id": doc["workflow_id"], "parent_intent_id": doc.get("parent_intent_id"),
                                 "step_id": doc.get("step_id"), "attempt": doc.get("step_attempt"),
                                 "compensation": bool(doc.get("compensation"))}
    return respond({"ok": True, "intent": view, **view}, request=request)


def _statuses(raw: str | None) -> list[str] | None:
    if not raw:
        return None
    statuses = [s.strip().upper() for s in raw.split(",") if s.strip()]
    unknown = [s for s in statuses if s not in lc.STATUSES]
    if unknown:
        raise Unprocessable(
            f"status: unknown status {', '.join(unknown)}; use one of {', '.join(lc.STATUSES)}",
            code="invalid_parameter",
            details={"field": "status"},
        )
    return statuses


_TYPE_FILTER = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
_ID_PREFIX = re.compile(r"^[0-9a-f-]{1,36}$")


def _time_param(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name) or None
    if raw is None:
        return None
    try:
        return clock.iso(clock.parse_iso(raw))
    except (ValueError, OverflowError, OSError):
        raise Unprocessable(f"{name}: {raw!r} is not an RFC 3339 time, e.g. 2026-12-06T14:00:00Z",
                            code="invalid_parameter", details={"field": name}) from None


def _matching(request: Request, name: str, pattern: re.Pattern[str], what: str) -> str | None:
    raw = request.query_params.get(name) or None
    if raw is not None and not pattern.match(raw):
        raise Unprocessable(f"{name}: {what}", code="invalid_parameter", details={"field": name})
    return raw


async def list_intents(request: Request) -> Response:
    """Newest first, a page at a time (``before``: the ``next_cursor`` of the previous page), filtered by status,
    type, an agent they are to or from, when they were created and the start of their id. An agent key sees only
    its own intents, whatever the filters say."""
    principal = await authenticate(request, elsewhere_ok=True)
    limit = int_param(request, "limit", 50, 1, 500)
    statuses = _statuses(request.query_params.get("status"))
    before = _matching(request, "before", _ID_PREFIX, "the next_cursor of the previous page (an intent id)")
    agent = request.query_params.get("agent") or None
    rows = await runtime(request).reads.list_intents(
        statuses=statuses,
        agent=resolve_target(scope.settings_for(runtime(request).settings, principal), agent, "agent")
        if agent else None,
        workspace=scope.principal_pair(principal),
        scope=None if principal.is_member else principal.address,
        limit=limit,
        before=before,
        intent_type=_matching(request, "intent_type", _TYPE_FILTER, "1-200 letters, digits, '_', '.', ':' or '-'"),
        created_after=_time_param(request, "created_after"),
        created_before=_time_param(request, "created_before"),
        id_prefix=_matching(request, "id_prefix", _ID_PREFIX, "the start of an intent id: 0-9, a-f and '-'"),
    )
    intents = [engine.intent_view(r) for r in rows]
    next_cursor = intents[-1]["intent_id"] if len(intents) == limit else None
    return respond({"ok": True, "intents": intents, "next_cursor": next_cursor}, request=request)


async def list_events(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    intent_id = request.path_params["intent_id"]
    since = int_param(request, "since", 0, 0, 2**53)
    await _visible(request, principal, intent_id)
    rows = await runtime(request).reads.list_events(intent_id, since, 10_000)
    return respond_raw(b'{"ok":true,"events":[' + ",".join(rows).encode() + b"]}", request=request)


def _timeout_frame(next_seq: int, status: str | None) -> dict[str, str]:
    body = {"ok": True, "next_seq": next_seq, "status": status}
    return {"event": "stream.timeout", "data": orjson.dumps(body).decode()}


async def stream_events(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    intent_id = request.path_params["intent_id"]
    since = int_param(request, "since", 0, 0, 2**53)
    wait_seconds = int_param(request, "wait_seconds", 15, 1, 60)
    hold = reads_incrementally(request)
    rt = runtime(request)
    await rt.settled(intent_id)  # as in _visible
    # Its first item (prompt) comes from the stream's first read, the intent with its events: a 404 from here.
    frames = event_frames(rt, intent_id, since, wait_seconds, hold=hold,
                          visible=functools.partial(_seen, principal, intent_id))
    first = await anext(frames)
    try:
        # within the sse_streams_max of the caller's workspace, where the intent is (engine/quotas.py)
        closed = await rt.quotas.open_stream(scope.settings_for(rt.settings, principal))
    except BaseException:
        await frames.aclose()
        raise
    return EventStream(_Primed(first, frames), on_close=closed, prompt=True)


class _Primed:
    """A stream's frames whose first item was taken already; closing it closes the stream's generator (also when
    it never ran: a HEAD request)."""

    __slots__ = ("_first", "_rest")

    def __init__(self, first: list[dict[str, Any]], rest: AsyncGenerator[list[dict[str, Any]], None]) -> None:
        self._first: list[dict[str, Any]] | None = first
        self._rest = rest

    def __aiter__(self) -> _Primed:
        return self

    async def __anext__(self) -> list[dict[str, Any]]:
        first, self._first = self._first, None
        return first if first is not None else await anext(self._rest)

    async def aclose(self) -> None:
        await self._rest.aclose()


def _seq_of(event: tuple[int, str]) -> int:
    return event[0]


async def event_frames(rt: Runtime, intent_id: str, since: int, wait_seconds: float, *, hold: bool = True,
                       visible: Callable[[Row | None], Any] | None = None,
                       ) -> AsyncGenerator[list[dict[str, Any]], None]:
    """The SSE frames of an intent's events after ``since`` (the caller checked that it may see the intent), a
    list per read (sent as one message): they end after a terminal event, or with a ``stream.timeout`` frame
    after ``wait_seconds`` without one, or, unless ``hold`` (the client reads incrementally, api/sse.py),
    ``LINGER_SECONDS`` after the first frames went out. Also the dashboard's live timeline (runtime/ui).

    The stream reads the events once, then sends what later commits appended as the hub hands them over
    (``Watch.pending``: this process's commits, and on PostgreSQL other replicas' from their notifications), reading
    again only when those do not follow on from what it sent (a gap), or when a wake-up handed nothing over (an
    event too big for a notification). Its first item comes without waiting, an empty list when there is nothing
    yet (``EventStream(prompt=True)``: the stream's head leaves with it)."""
    cursor = since
    deadline = time.monotonic() + wait_seconds
    limit = 500
    with rt.hub.watch_intent(intent_id) as changed:
        if visible is not None:  # the intent, checked, with its events: one read (one round trip on PostgreSQL)
            row, rows = await rt.reads.intent_events(intent_id, cursor, limit)
            visible(row)
        else:
            rows = await rt.reads.list_events(intent_id, cursor, limit)
            row = None if rows else await rt.reads.get_intent(intent_id)
        if not rows and row is not None and row["status"] in lc.TERMINAL and row["last_seq"] <= cursor:
            yield Last([_timeout_frame(cursor, row["status"])])
            return
        while True:
            batch: list[dict[str, Any]] = []
            for data in rows:
                event = shared(data)  # kept when the engine wrote it (codec.kept): no parse
                cursor = event["seq"]
                batch.append({"id": str(cursor), "event": event["event_type"], "data": data})
                if event["status"] in lc.TERMINAL:
                    yield Last(batch)
                    return
            if batch:
                yield batch
                if not hold:
                    deadline = min(deadline, time.monotonic() + LINGER_SECONDS)
            elif cursor == since:
                yield []  # nothing sent yet: the head leaves now, before the wait
            if len(rows) >= limit:
                rows = await rt.reads.list_events(intent_id, cursor, limit)
                continue
            if not await changed.until(deadline):
                row = await rt.reads.get_intent(intent_id)
                yield Last([_timeout_frame(cursor, row["status"] if row else None)])
                return
            changed.clear()
            handed = await handed_over(changed, cursor, _seq_of)
            rows = [data for _, data in handed] if handed is not None else await rt.reads.list_events(
                intent_id, cursor, limit)


async def resume_intent(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    _check_owner(request, principal)
    body = await read_object(request)
    intent_id = request.path_params["intent_id"]
    rt = runtime(request)
    s = scope.settings_for(rt.settings, principal)
    now = rt.clock.time()
    result = await write_answer(rt, lambda tx: engine.op_resume(tx, s, principal, intent_id, body, now))
    return respond(result, request=request)


async def resolve_intent(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    _check_owner(request, principal)
    body = await read_object(request)
    try:
        model = ResolveRequest.model_validate(body)
    except ValidationError as exc:
        raise validation_failed(exc) from None
    if model.status == lc.COMPLETED and model.result is None:
        model.result = {}
    if model.status == lc.FAILED and model.error is None and not model.reason:
        raise Unprocessable(
            'error: required when status is FAILED (e.g. {"error": {"message": "..."}})', details={"field": "error"}
        )
    if model.status == lc.CANCELED and not model.reason:
        model.reason = "canceled"
    req = model.model_dump()
    intent_id = request.path_params["intent_id"]
    rt = runtime(request)
    s = scope.settings_for(rt.settings, principal)
    now = rt.clock.time()
    result = await rt.write(lambda tx: engine.op_resolve(tx, s, principal, intent_id, req, now))
    return respond(result, request=request)


async def bulk_cancel(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    raw = await read_body(request)
    body = parse_object(raw) if raw.strip() else {}
    try:
        model = BulkCancelRequest.model_validate(body)
    except ValidationError as exc:
        raise validation_failed(exc) from None
    req = model.model_dump()
    rt = runtime(request)
    s = scope.settings_for(rt.settings, principal)
    now = rt.clock.time()
    result = await rt.write(lambda tx: engine.op_bulk_cancel(tx, s, principal, req, now))
    return respond(result, request=request)


def parse_model(raw: bytes, model: Any) -> dict[str, Any]:
    """``raw`` validated by the pydantic ``model``, as a dict of the fields that were sent (422 naming a field)."""
    try:
        return dict(model.model_validate(parse_object(raw)).model_dump(exclude_unset=True, by_alias=True))
    except ValidationError as exc:
        raise validation_failed(exc) from None


def _idem(request: Request, principal: Principal, raw: bytes, what: str) -> Any:
    key = idempotency_key(request)
    if not key:
        return None
    return (f"{principal.key_id}:POST /v1/intents/{request.path_params['intent_id']}/{what}", key,
            hashlib.sha256(raw).hexdigest())


async def update_controls(request: Request) -> Response:
    """Move the intent's timers (engine/controls.py)."""
    principal = await authenticate(request, elsewhere_ok=True)
    _check_owner(request, principal)
    raw = await read_body(request)
    req = parse_model(raw, ControlsRequest)
    if not req.get("controls_patch"):
        raise Unprocessable("controls_patch: nothing to change; give timeout_seconds, deadline_at, "
                            "max_delivery_attempts, max_retries or retry_backoff_seconds",
                            details={"field": "controls_patch"})
    rt = runtime(request)
    s = scope.settings_for(rt.settings, principal)
    intent_id, now, idem = request.path_params["intent_id"], rt.clock.time(), _idem(request, principal, raw,
                                                                                  "controls")
    result = await rt.write(lambda tx: controls.op_controls(tx, s, principal, intent_id, req, now, idem))
    return respond(result, request=request)


def _grant_key(s: Settings, key: str) -> str:
    """``delegate:<who>`` with ``who`` a full agent address (a bare name or org/ws/name is qualified) or an email
    (lower-cased)."""
    field = f"grants_patch.{key[:100]}"
    if not key.startswith(GRANT_PREFIX):
        raise Unprocessable(f"{field}: a grant's key is delegate:<agent address or email>, e.g. "
                            "delegate:agent://org/ws/ops", details={"field": field})
    who = key[len(GRANT_PREFIX):].strip()
    if "@" in who and "://" not in who:
        if any(ch.isspace() for ch in who) or who.count("@") != 1 or not all(who.split("@")):
            raise Unprocessable(f"{field}: {who!r} is not an email address", details={"field": field})
        return GRANT_PREFIX + who.lower()
    if "://" in who and not who.startswith(addresses.SCHEME):
        raise Unprocessable(f"{field}: a delegate is an agent (agent://...) or a person (an email)",
                            code="invalid_agent_address", details={"field": field})
    return GRANT_PREFIX + resolve_target(s, who, field)


async def _grant_key_here(rt: Runtime, s: Settings, key: str) -> str:
    """``_grant_key``, refusing a delegate agent of another workspace of this runtime (404 ``agent_not_found``
    naming the grant, as a recipient of another workspace is on create)."""
    granted = _grant_key(s, key)
    who = granted[len(GRANT_PREFIX):]
    if who.startswith(addresses.SCHEME):
        await check_address(rt, s, who, f"grants_patch.{key[:100]}")
    return granted


async def update_policy(request: Request) -> Response:
    """Change who else may act on the intent, and its envelope's timers (engine/controls.py)."""
    principal = await authenticate(request, elsewhere_ok=True)
    _check_owner(request, principal)
    raw = await read_body(request)
    req = parse_model(raw, PolicyRequest)
    if not req.get("grants_patch") and not req.get("envelope_patch"):
        raise Unprocessable("grants_patch: nothing to change; give grants_patch or envelope_patch",
                            details={"field": "grants_patch"})
    rt = runtime(request)
    s = scope.settings_for(rt.settings, principal)
    if req.get("grants_patch"):
        req["grants_patch"] = {await _grant_key_here(rt, s, k): v for k, v in req["grants_patch"].items()}
    intent_id, now, idem = request.path_params["intent_id"], rt.clock.time(), _idem(request, principal, raw,
                                                                                  "policy")
    result = await rt.write(lambda tx: controls.op_policy(tx, s, principal, intent_id, req, now, idem))
    return respond(result, request=request)


def _check_owner_params(request: Request) -> str | None:
    """The ``owner_agent`` the request names (query parameter or ``x-owner-agent`` header), 400 when they differ."""
    query = query_param(request, "owner_agent")  # a resume has no query string: nothing parsed
    given = header(request, b"x-owner-agent")
    if query and given and query != given:
        raise BadRequest("owner_agent query parameter and x-owner-agent header disagree", code="owner_agent_mismatch")
    return query or given


def _check_owner(request: Request, principal: Principal) -> None:
    """An agent key names only itself as ``owner_agent`` (403 ``actor_mismatch``); people and the admin key act
    for the workspace, and their events record who they are."""
    owner = _check_owner_params(request)
    if owner and principal.kind == "service_account":
        engine.acting_as(scope.settings_for(runtime(request).settings, principal), principal, owner, "owner_agent")


routes = [
    Route("/v1/intents", create_intent, methods=["POST"]),
    Route("/v1/intents", list_intents, methods=["GET"]),
    Route("/v1/intents/bulk-cancel", bulk_cancel, methods=["POST"]),
    Route("/v1/intents/{intent_id}", get_intent, methods=["GET"]),
    Route("/v1/intents/{intent_id}/events", list_events, methods=["GET"]),
    Route("/v1/intents/{intent_id}/events/stream", stream_events, methods=["GET"]),
    Route("/v1/intents/{intent_id}/resume", resume_intent, methods=["POST"]),
    Route("/v1/intents/{intent_id}/resolve", resolve_intent, methods=["POST"]),
    Route("/v1/intents/{intent_id}/controls", update_controls, methods=["POST"]),
    Route("/v1/intents/{intent_id}/policy", update_policy, methods=["POST"]),
]

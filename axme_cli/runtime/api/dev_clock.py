"""POST /dev/clock/advance: move the test clock of `axme dev --test-clock` (tests only).

A runtime on the real clock answers a well-formed request 404 as if the route did not exist; `axme server`
never runs on a test clock. Only the workspace admin key may move it: a jump expires every token, code and deadline
due by then."""

from __future__ import annotations

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from axme_cli.protocol.models import ClockAdvanceRequest
from axme_cli.runtime.api.common import authenticate, read_object, respond, runtime
from axme_cli.runtime.api.intents import validation_failed
from axme_cli.runtime.clock import ManualClock, iso
from axme_cli.runtime.errors import Forbidden, NotFound


async def advance(request: Request) -> Response:
    """Like every JSON route: the key (401), then the body (400/413/422), then whether this may be done here."""
    principal = await authenticate(request)
    body = await read_object(request)
    try:
        req = ClockAdvanceRequest.model_validate(body)
    except ValidationError as exc:
        raise validation_failed(exc) from None
    clock = runtime(request).clock
    if not isinstance(clock, ManualClock):
        raise NotFound(f"no route {request.method} {request.url.path} (only `axme dev --test-clock` has one)")
    if not principal.is_admin:
        raise Forbidden("only the workspace admin key may move the test clock", code="policy_denied")
    clock.advance(req.seconds)
    return respond({"ok": True, "now": iso(clock.time())}, request=request)


routes = [Route("/dev/clock/advance", advance, methods=["POST"])]

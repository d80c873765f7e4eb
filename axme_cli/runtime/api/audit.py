"""GET /v1/audit/events: what the runtime recorded about logins, keys, service accounts, deliveries and intents
(``engine/audit.py``). The workspace admin key sees its workspace's events; an agent key or a person sees only the
events of its workspace it did or that are about it (an ``owner_agent`` naming anyone else is 403). Every key acts
in its own workspace (``runtime/scope.py``): the default workspace's admin key (the operator) sees the default
workspace's events, not other workspaces' (their admin keys see those)."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from axme_cli.runtime.api.common import authenticate, int_param, respond, runtime
from axme_cli.runtime.api.intents import resolve_target
from axme_cli.runtime.engine.audit import event_view
from axme_cli.runtime.errors import Forbidden, Unprocessable
from axme_cli.runtime.scope import principal_pair, settings_for

_ACTION_PREFIX = re.compile(r"^[a-z0-9_.]{1,128}$")
_EVENT_ID = re.compile(r"^[0-9a-f-]{36}$")


async def list_events(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    s = settings_for(rt.settings, principal)
    query = request.query_params
    owner = None
    if query.get("owner_agent"):
        raw = query["owner_agent"]
        owner = raw if raw.startswith(("actor://", "initiator://")) else resolve_target(s, raw, "owner_agent")
        if not principal.is_admin and owner != principal.address:
            raise Forbidden(f"owner_agent: this key sees only the events about {principal.address}",
                            code="policy_denied", details={"field": "owner_agent"})
    prefix = query.get("action_prefix") or None
    if prefix is not None and not _ACTION_PREFIX.match(prefix):
        raise Unprocessable("action_prefix: 1-128 characters of a-z, 0-9, '_' and '.' (e.g. auth.login)",
                            code="invalid_parameter", details={"field": "action_prefix"})
    before = query.get("before") or None
    if before is not None and not _EVENT_ID.match(before):
        raise Unprocessable("before: the event_id of the last event of the previous page (next_before)",
                            code="invalid_parameter", details={"field": "before"})
    limit = int_param(request, "limit", 100, 1, 1000)
    about = None if principal.is_admin else principal.address
    rows = await rt.reads.list_audit_events(*principal_pair(principal), about=about, owner_agent=owner,
                                            action_prefix=prefix, before=before, limit=limit)
    return respond({"ok": True, "events": [event_view(r) for r in rows],
                    "next_before": rows[-1]["event_id"] if len(rows) == limit else None}, request=request)


routes = [Route("/v1/audit/events", list_events, methods=["GET"])]

"""/v1/organizations, their /workspaces and /members (engine/orgs.py says who may do what). The receive policy of
an organization (/v1/organizations/{org_id}/receive-policy) is api/policies.py's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from axme_cli.protocol import organizations as wire
from axme_cli.runtime.api.common import authenticate, parse_object, read_body, respond, runtime
from axme_cli.runtime.api.inbox import idempotency_of
from axme_cli.runtime.api.principals_admin import parse
from axme_cli.runtime.engine import idempotency
from axme_cli.runtime.engine import orgs as engine
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Row, Tx


async def _write(request: Request, model: type | None, op: Callable[[Tx, Settings, Principal, dict[str, Any], float],
                                                                     dict[str, Any]]) -> dict[str, Any]:
    """``op(tx, settings, principal, req, now)`` once per Idempotency-Key, in one transaction."""
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    raw = await read_body(request) if model is not None else b""
    req = parse(model, parse_object(raw)) if model is not None else {}
    idem = idempotency_of(request, principal, request.method.encode() + b"\n" + raw)
    now = rt.clock.time()
    return await rt.write(lambda tx: idempotency.once(
        tx, idem, now, lambda: op(tx, rt.settings, principal, req, now)).result)


async def create_organization(request: Request) -> Response:
    def op(tx: Tx, s: Settings, p: Principal, req: dict[str, Any], now: float) -> dict[str, Any]:
        return {"ok": True, "organization": engine.org_view(engine.op_create_organization(tx, s, p, req, now))}

    return respond(await _write(request, wire.OrganizationCreateRequest, op), request=request)


async def get_organization(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    org, access = await engine.read_access(rt.reads, rt.settings, principal, request.path_params["org_id"])
    if not access.reads_org:
        raise engine.refused("reading the organization")
    counts = {"workspaces_count": len(await rt.reads.list_workspaces(org["org_id"])),
              "members_count": len(await rt.reads.list_members(org["org_id"], None))}
    return respond({"ok": True, "organization": {**engine.org_view(org), **counts}}, request=request)


async def update_organization(request: Request) -> Response:
    org_id = request.path_params["org_id"]

    def op(tx: Tx, s: Settings, p: Principal, req: dict[str, Any], now: float) -> dict[str, Any]:
        return {"ok": True, "organization": engine.org_view(engine.op_update_organization(tx, s, p, org_id, req, now))}

    return respond(await _write(request, wire.OrganizationUpdateRequest, op), request=request)


async def create_workspace(request: Request) -> Response:
    org_id = request.path_params["org_id"]

    def op(tx: Tx, s: Settings, p: Principal, req: dict[str, Any], now: float) -> dict[str, Any]:
        row = engine.op_create_workspace(tx, s, p, org_id, req, now)
        key = engine.op_workspace_key(tx, s, p, org_id, row["workspace_id"], now)
        return {"ok": True, "workspace": engine.workspace_view(row), "key": key}

    return respond(await _write(request, wire.WorkspaceCreateRequest, op), request=request)


async def create_workspace_key(request: Request) -> Response:
    org_id, workspace_id = request.path_params["org_id"], request.path_params["workspace_id"]

    def op(tx: Tx, s: Settings, p: Principal, req: dict[str, Any], now: float) -> dict[str, Any]:
        return {"ok": True, "key": engine.op_workspace_key(tx, s, p, org_id, workspace_id, now)}

    return respond(await _write(request, None, op), request=request)


async def list_workspaces(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    org_id = request.path_params["org_id"]
    _, access = await engine.read_access(rt.reads, rt.settings, principal, org_id)
    mine = access.administered()
    if not access.reads_org and not mine:
        raise engine.refused("listing workspaces")
    rows = [r for r in await rt.reads.list_workspaces(org_id) if access.reads_org or r["workspace_id"] in mine]
    return respond({"ok": True, "workspaces": [engine.workspace_view(r) for r in rows]}, request=request)


async def update_workspace(request: Request) -> Response:
    org_id, workspace_id = request.path_params["org_id"], request.path_params["workspace_id"]

    def op(tx: Tx, s: Settings, p: Principal, req: dict[str, Any], now: float) -> dict[str, Any]:
        row = engine.op_update_workspace(tx, s, p, org_id, workspace_id, req, now)
        return {"ok": True, "workspace": engine.workspace_view(row)}

    return respond(await _write(request, wire.WorkspaceUpdateRequest, op), request=request)


async def list_members(request: Request) -> Response:
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    org_id = request.path_params["org_id"]
    workspace_id = request.query_params.get("workspace_id") or None
    _, access = await engine.read_access(rt.reads, rt.settings, principal, org_id)
    mine = access.administered()
    if not access.reads_org and not mine:
        raise engine.refused("listing members")
    if workspace_id is not None and (
            (not access.reads_org and workspace_id not in mine)
            or await rt.reads.get_workspace(org_id, workspace_id) is None):
        raise engine.workspace_not_found(workspace_id)
    rows: list[Row] = await rt.reads.list_members(org_id, workspace_id)
    shown = [r for r in rows if access.reads_org or r["workspace_id"] in mine]
    return respond({"ok": True, "members": [engine.member_view(r) for r in shown]}, request=request)


async def add_member(request: Request) -> Response:
    org_id = request.path_params["org_id"]

    def op(tx: Tx, s: Settings, p: Principal, req: dict[str, Any], now: float) -> dict[str, Any]:
        return {"ok": True, "member": engine.member_view(engine.op_add_member(tx, s, p, org_id, req, now))}

    return respond(await _write(request, wire.MemberAddRequest, op), request=request)


async def update_member(request: Request) -> Response:
    org_id, member_id = request.path_params["org_id"], request.path_params["member_id"]

    def op(tx: Tx, s: Settings, p: Principal, req: dict[str, Any], now: float) -> dict[str, Any]:
        row = engine.op_update_member(tx, s, p, org_id, member_id, req, now)
        return {"ok": True, "member": engine.member_view(row)}

    return respond(await _write(request, wire.MemberUpdateRequest, op), request=request)


async def remove_member(request: Request) -> Response:
    org_id, member_id = request.path_params["org_id"], request.path_params["member_id"]

    def op(tx: Tx, s: Settings, p: Principal, req: dict[str, Any], now: float) -> dict[str, Any]:
        return engine.removal_view(engine.op_remove_member(tx, s, p, org_id, member_id, now))

    return respond(await _write(request, None, op), request=request)


async def personal_context(request: Request) -> Response:
    """AXME's ``/v1/portal/personal/context`` (engine/orgs.personal_context)."""
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    return respond({"ok": True, **await engine.personal_context(rt.reads, rt.settings, principal)}, request=request)


async def select_workspace(request: Request) -> Response:
    """AXME's ``POST /v1/portal/personal/workspace-selection``: the person's session acts in that workspace; the
    answer is the personal context as it is now."""
    principal = await authenticate(request, elsewhere_ok=True)
    rt = runtime(request)
    req = parse(wire.WorkspaceSelectionRequest, parse_object(await read_body(request)))
    now = rt.clock.time()
    await rt.write(lambda tx: engine.op_select_workspace(tx, rt.settings, principal, req, now))
    selected = await rt.auth.selected(principal, req["org_id"], req["workspace_id"])
    answer = await engine.personal_context(rt.reads, rt.settings, selected)
    return respond({"ok": True, "context": answer["context"], "selected_workspace": answer["selected_workspace"],
                    "selected_organization": answer["selected_organization"]}, request=request)


async def include_member(request: Request) -> Response:
    workspace_id = request.path_params["workspace_id"]

    def op(tx: Tx, s: Settings, p: Principal, req: dict[str, Any], now: float) -> dict[str, Any]:
        return engine.include_view(engine.op_include_member(tx, s, p, workspace_id, req, now))

    return respond(await _write(request, wire.MemberIncludeRequest, op), request=request)


async def exclude_member(request: Request) -> Response:
    workspace_id, member_id = request.path_params["workspace_id"], request.path_params["member_id"]

    def op(tx: Tx, s: Settings, p: Principal, req: dict[str, Any], now: float) -> dict[str, Any]:
        return engine.exclude_view(engine.op_exclude_member(tx, s, p, workspace_id, member_id, now))

    return respond(await _write(request, None, op), request=request)


routes = [
    Route("/v1/portal/personal/context", personal_context, methods=["GET"]),
    Route("/v1/portal/personal/workspace-selection", select_workspace, methods=["POST"]),
    Route("/v1/workspaces/{workspace_id}/members/include", include_member, methods=["POST"]),
    Route("/v1/workspaces/{workspace_id}/members/{member_id}/exclude", exclude_member, methods=["DELETE"]),
    Route("/v1/organizations", create_organization, methods=["POST"]),
    Route("/v1/organizations/{org_id}", get_organization, methods=["GET"]),
    Route("/v1/organizations/{org_id}", update_organization, methods=["PATCH"]),
    Route("/v1/organizations/{org_id}/workspaces", create_workspace, methods=["POST"]),
    Route("/v1/organizations/{org_id}/workspaces", list_workspaces, methods=["GET"]),
    Route("/v1/organizations/{org_id}/workspaces/{workspace_id}", update_workspace, methods=["PATCH"]),
    Route("/v1/organizations/{org_id}/workspaces/{workspace_id}/keys", create_workspace_key, methods=["POST"]),
    Route("/v1/organizations/{org_id}/members", list_members, methods=["GET"]),
    Route("/v1/organizations/{org_id}/members", add_member, methods=["POST"]),
    Route("/v1/organizations/{org_id}/members/{member_id}", update_member, methods=["PATCH"]),
    Route("/v1/organizations/{org_id}/members/{member_id}", remove_member, methods=["DELETE"]),
]

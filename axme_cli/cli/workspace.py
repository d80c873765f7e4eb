"""`axme workspace list|create|update|use`: the workspaces of an organization (AXME CLI §1.4). `list` shows those
the caller may see in every organization; `use` points the active context at one (its org_id and workspace_id)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from axme_cli.cli.common import ApiKeyOpt, BaseUrlOpt, ContextOpt
from axme_cli.cli.member import workspace_members
from axme_cli.cli.org import OrgIdOpt

app = typer.Typer(help="Workspaces: list, create, update, use; their members.", no_args_is_help=True,
                  rich_markup_mode=None)
app.add_typer(workspace_members, name="members")

ENVIRONMENTS = ("sandbox", "staging", "production")
STATUSES = ("active", "suspended", "archived")


def _text(ws: dict[str, Any]) -> list[str]:
    lines = [f"Workspace: {ws['name']} ({ws['workspace_id']})", f"Organization: {ws['org_id']}",
             f"Environment: {ws['environment']}", f"Status: {ws['status']}"]
    if ws.get("region"):
        lines.append(f"Region: {ws['region']}")
    return lines


@app.command("list")
def list_(base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None) -> None:
    """The workspaces you may see, in every organization, with your roles there."""
    from axme_cli.cli.common import client, output
    from axme_cli.render.tables import table

    with client(base_url, api_key, context) as c:
        answer = c.personal_context()
        mine = (c.target.org_id, c.target.workspace_id) if c.target else (None, None)
    selected = (answer.get("selected_workspace") or {}).get("workspace_id")
    if mine[1]:
        selected = mine[1]
    rows = [["*" if w["workspace_id"] == selected else "", w["workspace_id"], w["name"], w["org_id"],
             w["org_name"], w["environment"], w["status"], ",".join(w["roles"])] for w in answer["workspaces"]]
    output().result(answer, lambda: table(
        ["SELECTED", "WORKSPACE_ID", "NAME", "ORG_ID", "ORG_NAME", "ENV", "STATUS", "ROLES"], rows,
        empty="No workspaces."))


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(metavar="NAME", show_default=False, help="2-120 characters.")],
    environment: Annotated[str, typer.Option("--environment", "--env", help="sandbox, staging or production.")
                           ] = "sandbox",
    region: Annotated[str | None, typer.Option("--region", show_default=False)] = None,
    org_id: OrgIdOpt = None, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
    save_context: Annotated[str | None, typer.Option(
        "--save-context", metavar="NAME", show_default=False,
        help="Keep the workspace's admin key in a new CLI context NAME (its URL, org and workspace too).")] = None,
) -> None:
    """Create a workspace in the organization (an org_owner or org_admin, or the admin key). Its admin key is
    answered once: printed (and in --json), or kept in a context with --save-context."""
    from axme_cli.cli import policies as shared
    from axme_cli.cli.common import client, output
    from axme_cli.cli.contexts import check_name
    from axme_cli.cli.inputs import check_choice
    from axme_cli.config import contexts, secrets
    from axme_cli.errors import UsageError

    check_choice(environment, ENVIRONMENTS, "--environment")
    if not 2 <= len(name.strip()) <= 120:
        raise UsageError("NAME must be 2-120 characters", fix="e.g. axme workspace create staging --env staging")
    if save_context is not None:  # checked before the workspace exists: its key is answered only once
        check_name(save_context)
        if save_context in contexts.load()["contexts"]:
            raise UsageError(f"--save-context: context {save_context!r} already exists",
                             fix="pick a new name, or delete it first with `axme context delete`")
    body = {"name": name.strip(), "environment": environment, "region": region}
    with client(base_url, api_key, context) as c:
        answer = c.create_workspace(shared.org_id(c, org_id), {k: v for k, v in body.items() if v is not None})
        runtime_url = c.base_url
    ws, key = answer["workspace"], answer.get("key") or {}
    lines = ["✓ Workspace created.", *_text(ws)]
    if save_context is not None and key.get("token"):
        secrets.set_secret(save_context, "api_key", key["token"])  # the secret first, as `axme context create`
        contexts.upsert(save_context, {"base_url": runtime_url, "org_id": ws["org_id"],
                                       "workspace_id": ws["workspace_id"], "environment": ws["environment"]})
        answer = {**answer, "key": {k: v for k, v in key.items() if k != "token"}, "saved_context": save_context}
        lines += [f"Admin key: kept in context {save_context} (`axme context use {save_context}` acts in it)."]
    elif key.get("token"):
        lines += [f"Admin key: {key['token']}",
                  "The admin key is shown only this once: store it now (or create the workspace with "
                  "--save-context NAME)."]
    output().result(answer, lines)


@app.command("update")
def update(
    workspace_id: Annotated[str, typer.Argument(metavar="WORKSPACE_ID", show_default=False)],
    name: Annotated[str | None, typer.Option("--name", show_default=False)] = None,
    environment: Annotated[str | None, typer.Option("--environment", "--env", show_default=False)] = None,
    region: Annotated[str | None, typer.Option("--region", show_default=False)] = None,
    status: Annotated[str | None, typer.Option("--status", show_default=False,
                                               help="active, suspended or archived.")] = None,
    org_id: OrgIdOpt = None, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Change a workspace's name, environment, region or status."""
    from axme_cli.cli import policies as shared
    from axme_cli.cli.common import client, output
    from axme_cli.cli.inputs import changes, check_choice

    check_choice(environment, ENVIRONMENTS, "--environment")
    check_choice(status, STATUSES, "--status")
    body = changes(("--name", "name", name), ("--environment", "environment", environment),
                   ("--region", "region", region), ("--status", "status", status))
    with client(base_url, api_key, context) as c:
        answer = c.update_workspace(shared.org_id(c, org_id), workspace_id, body)
    output().result(answer, ["✓ Workspace updated.", *_text(answer["workspace"])])


@app.command("use")
def use(
    workspace: Annotated[str, typer.Argument(metavar="WORKSPACE", show_default=False,
                                             help="A workspace's id or name, as `axme workspace list` shows.")],
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Point the context at a workspace you may see: its org_id and workspace_id are saved in it, and a person's
    session (`axme login`) acts there from now on (the runtime's default workspace: back to it)."""
    from axme_cli.cli.common import client, output
    from axme_cli.config import contexts
    from axme_cli.errors import UsageError

    with client(base_url, api_key, context) as c:
        answer = c.personal_context()
        name = c.target.context if c.target else None
        found = [w for w in answer["workspaces"] if workspace in (w["workspace_id"], w["name"])]
        if len(found) != 1:
            known = ", ".join(f"{w['name']} ({w['workspace_id']})" for w in answer["workspaces"]) or "none"
            raise UsageError(f"WORKSPACE {workspace!r} " + ("names several workspaces" if found
                                                            else "is not one you see"),
                             fix=f"use an id from `axme workspace list`; yours: {known}")
        ws = found[0]
        if name is None:
            raise UsageError("no context to save the workspace in", fix="axme context set <name> ... first")
        # a person's session acts in the workspace the runtime has selected for it; an API key in its own one
        selected = c.select_workspace(ws["org_id"], ws["workspace_id"]) if c.actor_token else None
    contexts.upsert(name, {"org_id": ws["org_id"], "workspace_id": ws["workspace_id"]})
    result = {"ok": True, "context": name, "selected_workspace": ws, "session_selected": selected is not None,
              "selected_organization": {"org_id": ws["org_id"], "name": ws["org_name"]}}
    output().result(result, [f"✓ Switched to workspace: {ws['name']} ({ws['org_name']})"])

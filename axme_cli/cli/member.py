"""`axme member list|add|update|remove`: an organization's members (AXME CLI §1.4), a person by actor id or email
with a role in the whole organization or (--workspace-id) in one workspace.

`axme workspace members list|include|exclude`: one workspace's members (`POST /v1/workspaces/{ws}/members/include`,
`DELETE .../members/{member}/exclude`). The organization is --org-id, else the context's, else the runtime's own;
the workspace --workspace-id, else the context's, else the runtime's own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from axme_cli.cli.common import ApiKeyOpt, BaseUrlOpt, ContextOpt
from axme_cli.cli.org import OrgIdOpt

if TYPE_CHECKING:
    from axme_cli.client.http import Client

app = typer.Typer(help="An organization's members: list, add, update, remove.", no_args_is_help=True,
                  rich_markup_mode=None)
workspace_members = typer.Typer(help="A workspace's members: list, include, exclude.", no_args_is_help=True,
                                rich_markup_mode=None)

ROLES = ("org_owner", "org_admin", "workspace_admin", "member", "billing_viewer", "security_auditor")
WORKSPACE_ROLES = ("workspace_admin", "member")
STATUSES = ("active", "invited", "suspended", "removed")

WorkspaceIdOpt = Annotated[str | None, typer.Option("--workspace-id", show_default=False,
                                                    help="The workspace [default: the context's, else the "
                                                         "runtime's].")]
ActorArg = Annotated[str, typer.Argument(metavar="ACTOR", show_default=False,
                                         help="The person: their email or actor id.")]
MemberArg = Annotated[str, typer.Argument(metavar="MEMBER", show_default=False,
                                          help="The member's id, as `list` shows it.")]


def _text(member: dict[str, Any]) -> list[str]:
    where = f"workspace {member['workspace_id']}" if member.get("workspace_id") else "the whole organization"
    return [f"Member: {member['member_id']}", f"Actor: {member['actor_id']}", f"Role: {member['role']} in {where}",
            f"Status: {member['status']}"]


def _workspace_id(c: Client, given: str | None) -> str:
    if given:
        return given
    if c.target is not None and c.target.workspace_id:
        return c.target.workspace_id
    return str(c.health().get("workspace_id") or "")


def _table(answer: dict[str, Any], with_workspace: bool) -> None:
    from axme_cli.render.tables import table

    columns = ["MEMBER_ID", "ACTOR_ID", "ROLE", "STATUS", *(["WORKSPACE_ID"] if with_workspace else []),
               "UPDATED_AT"]
    rows = [[m["member_id"], m["actor_id"], m["role"], m["status"],
             *([m.get("workspace_id") or "-"] if with_workspace else []), m["updated_at"]]
            for m in answer["members"]]
    table(columns, rows, empty="No members.")


@app.command("list")
def list_(org_id: OrgIdOpt = None,
          workspace_id: Annotated[str | None, typer.Option("--workspace-id", show_default=False,
                                                           help="Only this workspace's members.")] = None,
          base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None) -> None:
    """The organization's members (not removed), oldest first."""
    from axme_cli.cli import policies as shared
    from axme_cli.cli.common import client, output

    with client(base_url, api_key, context) as c:
        answer = c.list_members(shared.org_id(c, org_id), workspace_id)
    output().result(answer, lambda: _table(answer, True))


@app.command("add")
def add(actor: ActorArg,
        role: Annotated[str, typer.Option("--role", help=f"One of {', '.join(ROLES)}.")] = "member",
        org_id: OrgIdOpt = None,
        workspace_id: Annotated[str | None, typer.Option(
            "--workspace-id", show_default=False,
            help="A member of this workspace (workspace_admin or member); without it, of the whole organization.")
        ] = None,
        base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None) -> None:
    """Make a person a member of the organization, or of one of its workspaces."""
    from axme_cli.cli import policies as shared
    from axme_cli.cli.common import client, output
    from axme_cli.cli.inputs import check_choice

    check_choice(role, ROLES, "--role", "member")
    body = {"actor_id": actor, "role": role, "workspace_id": workspace_id}
    with client(base_url, api_key, context) as c:
        answer = c.add_member(shared.org_id(c, org_id), {k: v for k, v in body.items() if v is not None})
    output().result(answer, ["✓ Member added.", *_text(answer["member"])])


@app.command("update")
def update(member_id: MemberArg,
           role: Annotated[str | None, typer.Option("--role", show_default=False,
                                                    help=f"One of {', '.join(ROLES)}.")] = None,
           status: Annotated[str | None, typer.Option("--status", show_default=False,
                                                      help=f"One of {', '.join(STATUSES)}.")] = None,
           org_id: OrgIdOpt = None, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
           context: ContextOpt = None) -> None:
    """Change a member's role or status."""
    from axme_cli.cli import policies as shared
    from axme_cli.cli.common import client, output
    from axme_cli.cli.inputs import changes, check_choice

    check_choice(role, ROLES, "--role", "member")
    check_choice(status, STATUSES, "--status", "suspended")
    body = changes(("--role", "role", role), ("--status", "status", status))
    with client(base_url, api_key, context) as c:
        answer = c.update_member(shared.org_id(c, org_id), member_id, body)
    output().result(answer, ["✓ Member updated.", *_text(answer["member"])])


@app.command("remove")
def remove(member_id: MemberArg, org_id: OrgIdOpt = None, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
           context: ContextOpt = None) -> None:
    """Remove a member (removing one already removed changes nothing)."""
    from axme_cli.cli import policies as shared
    from axme_cli.cli.common import client, output

    with client(base_url, api_key, context) as c:
        answer = c.remove_member(shared.org_id(c, org_id), member_id)
    output().result(answer, [f"✓ Member {answer['member_id']} removed."])


@workspace_members.command("list")
def workspace_list(org_id: OrgIdOpt = None, workspace_id: WorkspaceIdOpt = None, base_url: BaseUrlOpt = None,
                   api_key: ApiKeyOpt = None, context: ContextOpt = None) -> None:
    """The workspace's members (not removed), oldest first."""
    from axme_cli.cli import policies as shared
    from axme_cli.cli.common import client, output

    with client(base_url, api_key, context) as c:
        answer = c.list_members(shared.org_id(c, org_id), _workspace_id(c, workspace_id))
    output().result(answer, lambda: _table(answer, False))


@workspace_members.command("include")
def include(actor: ActorArg,
            role: Annotated[str, typer.Option("--role", help="member or workspace_admin.")] = "member",
            org_id: OrgIdOpt = None, workspace_id: WorkspaceIdOpt = None, base_url: BaseUrlOpt = None,
            api_key: ApiKeyOpt = None, context: ContextOpt = None) -> None:
    """Make a person a member of the workspace."""
    from axme_cli.cli import policies as shared
    from axme_cli.cli.common import client, output
    from axme_cli.cli.inputs import check_choice

    check_choice(role, WORKSPACE_ROLES, "--role", "member")
    with client(base_url, api_key, context) as c:
        workspace = _workspace_id(c, workspace_id)
        answer = c.include_member(workspace, {"actor_id": actor, "role": role, "org_id": shared.org_id(c, org_id),
                                              "workspace_id": workspace})
    output().result(answer, ["✓ Member included.", *_text(answer["member"])])


@workspace_members.command("exclude")
def exclude(member_id: MemberArg, workspace_id: WorkspaceIdOpt = None, base_url: BaseUrlOpt = None,
            api_key: ApiKeyOpt = None, context: ContextOpt = None) -> None:
    """Remove a member of the workspace (one already removed: the same answer)."""
    from axme_cli.cli.common import client, output

    with client(base_url, api_key, context) as c:
        answer = c.exclude_member(_workspace_id(c, workspace_id), member_id)
    result = answer["result"]
    output().result(answer, [f"✓ Member {result['member_id']} excluded from workspace {result['workspace_id']}."])

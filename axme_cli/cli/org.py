"""`axme org list|show|create|update`: the organizations the caller may see (the runtime's admin key: all; a person:
those they are a member of), one organization, a new one (the admin key), a change.

`axme org receive-policy get|set|add|remove`: the organization's receive policy, which agents of other
organizations may send intents to the org's agents (open, allowlist, closed). Agents of the org itself are never
judged by it; an agent's own receive override (`axme agents receive-override`) stands instead of it for that agent.
The org is --org-id, else the context's, else the runtime's own."""

from __future__ import annotations

from typing import Annotated

import typer

from axme_cli.cli.common import ApiKeyOpt, BaseUrlOpt, ContextOpt

app = typer.Typer(help="Organizations: list, show, create, update; the receive policy.", no_args_is_help=True,
                  rich_markup_mode=None)
receive_policy = typer.Typer(
    help="Which agents of other organizations may send to the org's agents: open (any), allowlist (those matching "
         "an entry) or closed (none). Set by the workspace key or a person.",
    no_args_is_help=True, rich_markup_mode=None)
app.add_typer(receive_policy, name="receive-policy")

OrgIdOpt = Annotated[str | None, typer.Option("--org-id", show_default=False,
                                              help="The organization [default: the context's, else the runtime's].")]
MODES = ("open", "allowlist", "closed")


def _run(action: str, value: str | None, org_id: str | None, base_url: str | None, api_key: str | None,
         context: str | None) -> None:
    from axme_cli.cli import policies as shared
    from axme_cli.cli.common import client, output

    if action == "set":
        assert value is not None
        shared.check_mode(value, MODES, "axme org receive-policy set allowlist")
    elif action == "add":
        assert value is not None
        shared.check_pattern(value)
    with client(base_url, api_key, context) as c:
        answer, heading = shared.act(c, c.policy_base(org_id=shared.org_id(c, org_id)), action, value,
                                     field="policy_type", name="receive policy")
    output().result(answer, lambda: shared.show(answer, heading=heading))


@receive_policy.command("get")
def get(org_id: OrgIdOpt = None, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
        context: ContextOpt = None) -> None:
    """Show the org's receive policy: its mode and entries."""
    _run("get", None, org_id, base_url, api_key, context)


@receive_policy.command("set")
def set_(mode: Annotated[str, typer.Argument(metavar="MODE", show_default=False,
                                             help="open, allowlist or closed (the entries stay).")],
         org_id: OrgIdOpt = None, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
         context: ContextOpt = None) -> None:
    """Set the org's receive policy mode."""
    _run("set", mode, org_id, base_url, api_key, context)


@receive_policy.command("add")
def add(pattern: Annotated[str, typer.Argument(metavar="PATTERN", show_default=False,
                                               help="Sender pattern: agent://org/ws/name, agent://org/ws/*, "
                                                    "agent://org/* or *.")],
        org_id: OrgIdOpt = None, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
        context: ContextOpt = None) -> None:
    """Add a sender pattern to the org's receive policy (the same one again changes nothing)."""
    _run("add", pattern, org_id, base_url, api_key, context)


@receive_policy.command("remove")
def remove(entry: Annotated[str, typer.Argument(metavar="ENTRY", show_default=False,
                                                help="The entry's id, or its pattern, as `get` shows them.")],
           org_id: OrgIdOpt = None, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
           context: ContextOpt = None) -> None:
    """Remove an entry (by id or pattern) from the org's receive policy."""
    _run("remove", entry, org_id, base_url, api_key, context)


def _org_text(org: dict[str, object]) -> list[str]:
    lines = [f"Organization: {org['name']} ({org['org_id']})", f"Status: {org['status']}"]
    for label, key in (("Legal name", "legal_name"), ("Domain", "primary_domain"),
                       ("Workspaces", "workspaces_count"), ("Members", "members_count")):
        if org.get(key) is not None:
            lines.append(f"{label}: {org[key]}")
    return lines


@app.command("list")
def list_(base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None) -> None:
    """The organizations you may see, with your roles and how many of their workspaces you see."""
    from axme_cli.cli.common import client, output
    from axme_cli.render.tables import table

    with client(base_url, api_key, context) as c:
        answer = c.personal_context()
    selected = (answer.get("selected_organization") or {}).get("org_id")
    rows = [["*" if o["org_id"] == selected else "", o["org_id"], o["name"], o["status"], ",".join(o["roles"]),
             len(o["workspaces"])] for o in answer["organizations"]]
    output().result(answer, lambda: table(["SELECTED", "ORG_ID", "NAME", "STATUS", "ROLES", "WORKSPACES"], rows,
                                          empty="No organizations."))


@app.command("show")
def show(org_id: OrgIdOpt = None, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
         context: ContextOpt = None) -> None:
    """One organization: its name, status and how many workspaces and members it has."""
    from axme_cli.cli import policies as shared
    from axme_cli.cli.common import client, output

    with client(base_url, api_key, context) as c:
        answer = c.get_organization(shared.org_id(c, org_id))
    output().result(answer, _org_text(answer["organization"]))


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(metavar="NAME", show_default=False, help="2-120 characters.")],
    owner: Annotated[str, typer.Option("--owner", show_default=False,
                                       help="Who becomes its org_owner: a person's email or actor id.")],
    legal_name: Annotated[str | None, typer.Option("--legal-name", show_default=False)] = None,
    domain: Annotated[str | None, typer.Option("--domain", show_default=False, help="Its primary domain.")] = None,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Create an organization (the runtime's admin key); --owner becomes its org_owner."""
    from axme_cli.cli.common import client, output
    from axme_cli.errors import UsageError

    if not 2 <= len(name.strip()) <= 120:
        raise UsageError("NAME must be 2-120 characters", fix='e.g. axme org create "Acme" --owner ann@acme.example')
    body = {"name": name.strip(), "requested_by_actor_id": owner, "legal_name": legal_name, "primary_domain": domain}
    with client(base_url, api_key, context) as c:
        answer = c.create_organization({k: v for k, v in body.items() if v is not None})
    output().result(answer, ["✓ Organization created.", *_org_text(answer["organization"])])


@app.command("update")
def update(
    org_id: OrgIdOpt = None,
    name: Annotated[str | None, typer.Option("--name", show_default=False)] = None,
    legal_name: Annotated[str | None, typer.Option("--legal-name", show_default=False)] = None,
    domain: Annotated[str | None, typer.Option("--domain", show_default=False)] = None,
    status: Annotated[str | None, typer.Option("--status", show_default=False,
                                               help="pending, active, suspended or archived.")] = None,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Change an organization's name, legal name, domain or status (an org_owner or org_admin, or the admin key)."""
    from axme_cli.cli import policies as shared
    from axme_cli.cli.common import client, output
    from axme_cli.cli.inputs import changes
    from axme_cli.errors import UsageError

    if status is not None and status not in ("pending", "active", "suspended", "archived"):
        raise UsageError(f"--status {status!r} is not pending, active, suspended or archived",
                         fix="e.g. --status suspended")
    body = changes(("--name", "name", name), ("--legal-name", "legal_name", legal_name),
                   ("--domain", "primary_domain", domain), ("--status", "status", status))
    with client(base_url, api_key, context) as c:
        answer = c.update_organization(shared.org_id(c, org_id), body)
    output().result(answer, ["✓ Organization updated.", *_org_text(answer["organization"])])

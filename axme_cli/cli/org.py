"""`axme org receive-policy get|set|add|remove`: the organization's receive policy, which agents of other
organizations may send intents to the org's agents (open, allowlist, closed). Agents of the org itself are never
judged by it; an agent's own receive override (`axme agents receive-override`) stands instead of it for that agent.
The org is --org-id, else the context's, else the runtime's own."""

from __future__ import annotations

from typing import Annotated

import typer

from axme_cli.cli.common import ApiKeyOpt, BaseUrlOpt, ContextOpt

app = typer.Typer(help="The organization: its receive policy.", no_args_is_help=True, rich_markup_mode=None)
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
        base = c.policy_base(org_id=shared.org_id(c, org_id))
        if action == "get":
            answer, heading = c.get_policy(base), None
        elif action == "set":
            answer = c.set_policy(base, {"policy_type": str(value)})
            heading = "✓ Receive policy set." if answer.get("changed") else "Receive policy unchanged."
        elif action == "add":
            answer = c.add_policy_entry(base, str(value))
            entry = answer["entry"]
            heading = (f"✓ Added {entry['sender_pattern']} (entry {entry['entry_id']})." if answer.get("created")
                       else f"{entry['sender_pattern']} is already an entry ({entry['entry_id']}).")
        else:
            workspace = c.target.workspace_id if c.target else None
            answer = c.remove_policy_entry(base, shared.entry_id_of(c, base, str(value), workspace))
            heading = f"✓ Removed entry {answer['entry_id']}."
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

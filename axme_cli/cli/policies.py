"""What `axme agents policy`, `axme agents receive-override` and `axme org receive-policy` share: the check of a
mode and a sender pattern before any request (exit 2 naming the argument and the fix), finding an entry by its id
or its pattern, each action's request and heading (`act`), and showing a policy (Agent / Mode / Entries, as AXME's
CLI does). The commands themselves live in their groups (cli/agents.py, cli/org.py); what the policies mean:
docs/cli.md and the runtime's engine/policies.py."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from axme_cli.client.http import Client

PATTERN_HELP = ("Sender pattern: agent://org/ws/name, agent://org/ws/* (a workspace), agent://org/* (an "
                "organization), * (anyone), or a bare agent name of the workspace.")
PATTERN_EXAMPLE = "e.g. agent://acme/prod/billing, agent://acme/prod/*, agent://acme/* or *"


def check_mode(value: str, allowed: tuple[str, ...], example: str) -> str:
    from axme_cli.cli.inputs import shown
    from axme_cli.errors import UsageError

    if value not in allowed:
        raise UsageError(f"MODE {shown(value)} is not one of {', '.join(allowed)}", fix=f"e.g. `{example}`")
    return value


def check_pattern(value: str) -> str:
    """The pattern as typed, once the runtime's own rules say some agent address could match it."""
    from axme_cli.cli.inputs import shown
    from axme_cli.errors import UsageError
    from axme_cli.protocol.policies import PatternError, parse_pattern

    try:
        parse_pattern(value, "org", "workspace")  # placeholders: a bare name is checked as a name
    except PatternError as exc:
        raise UsageError(f"PATTERN {shown(value)} can never match an agent address: {exc}",
                         fix=PATTERN_EXAMPLE) from None
    return value


def _view(answer: dict[str, Any]) -> dict[str, Any]:
    return dict(answer.get("policy") or answer.get("override") or {})


def entry_id_of(c: Client, base: str, ref: str, workspace: str | None) -> str:
    """``ref`` when it is an entry id of the policy; else the id of the entry whose pattern it is (as typed, or
    in the canonical form the runtime keeps); else a NotFoundError listing what there is."""
    from axme_cli.errors import NotFoundError
    from axme_cli.protocol.policies import PatternError, parse_pattern

    view = _view(c.get_policy(base))
    entries = view.get("entries") or []
    wanted = {ref.strip()}
    with contextlib.suppress(PatternError):  # no pattern: an id, or nothing the policy has
        wanted.add(parse_pattern(ref, str(view.get("org_id") or "org"),
                                 str(view.get("workspace_id") or workspace or "workspace")))
    for entry in entries:
        if entry.get("entry_id") == ref.strip() or entry.get("sender_pattern") in wanted:
            return str(entry["entry_id"])
    there = ", ".join(str(e.get("sender_pattern")) for e in entries) or "none"
    raise NotFoundError(f"no entry {ref!r} in this policy (its entries: {there})", code="entry_not_found",
                        fix="give an entry's id or its pattern as `get` shows them")


def show(answer: dict[str, Any], *, heading: str | None = None) -> None:
    """Agent (or Org) / Mode (or Override) / Entries, then one line per entry: its id and pattern."""
    from axme_cli.render.console import key_values, out

    view = _view(answer)
    if heading:
        out(heading)
    rows: list[tuple[str, Any]] = []
    if view.get("agent_address"):
        rows.append(("Agent:", view["agent_address"]))
    else:
        rows.append(("Org:", view.get("org_id")))
    if "override_type" in view:
        rows.append(("Override:", view["override_type"]))
    else:
        rows.append(("Mode:", view.get("policy_type")))
    entries = view.get("entries") or []
    rows.append(("Entries:", len(entries) or "none"))
    key_values(rows)
    for entry in entries:
        out(f"  {entry.get('entry_id')}  {entry.get('sender_pattern')}")


def org_id(c: Client, given: str | None) -> str:
    """--org-id, else the context's (or AXME_ORG_ID), else the runtime's own (GET /health)."""
    if given:
        return given
    if c.target is not None and c.target.org_id:
        return c.target.org_id
    return str(c.health().get("org_id") or "")


def act(c: Client, base: str, action: str, value: str | None, *, field: str, name: str) -> tuple[dict[str, Any],
                                                                                             str | None]:
    """get / set MODE / add PATTERN / remove ENTRY on the policy at ``base`` (value checked by the caller): the
    answer and the heading shown above it. ``field``: the body's mode field; ``name``: what the heading calls it."""
    if action == "get":
        return c.get_policy(base), None
    if action == "set":
        answer = c.set_policy(base, {field: str(value)})
        return answer, (f"✓ {name.capitalize()} set." if answer.get("changed") else f"{name.capitalize()} unchanged.")
    if action == "add":
        answer = c.add_policy_entry(base, str(value))
        entry = answer["entry"]
        return answer, (f"✓ Added {entry['sender_pattern']} (entry {entry['entry_id']})." if answer.get("created")
                        else f"{entry['sender_pattern']} is already an entry ({entry['entry_id']}).")
    workspace = c.target.workspace_id if c.target else None
    answer = c.remove_policy_entry(base, entry_id_of(c, base, str(value), workspace))
    return answer, f"✓ Removed entry {answer['entry_id']}."

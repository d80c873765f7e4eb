"""Whether anything in the workspace serves an address, asked before `axme intents send`: an intent to an address
no one serves is accepted and waits until it fails, minutes later, far from the typo that caused it."""

from __future__ import annotations

from typing import Any


def unserved(c: Any, address: str) -> str | None:
    """The address as the runtime names it when nothing serves it; None when something does or when this caller
    cannot tell. Served are the runtime itself (agent_core in any form) and every service account's address:
    agents registered or run, a scenario's agents, http bindings (a binding belongs to a service account)."""
    from urllib.parse import quote

    from axme_cli.errors import CliError, NotFoundError
    from axme_cli.protocol import nicks
    from axme_cli.protocol.addresses import is_core, qualify

    who = c.whoami()
    if (who.get("principal") or {}).get("kind") not in ("workspace", "actor"):
        return None  # an agent's key sees no other agent: a 404 would say nothing
    nick = nicks.of_recipient(address) if "@" in address else None
    if nick is not None:  # @nick or nick@ax: the address of its user is what must be served
        try:
            address = str(c.resolve_nick(nicks.shown(nick))["owner_agent"])
        except CliError:  # nobody has it: the send itself is refused (404), naming it
            return None
    address = qualify(address, who.get("org_id") or "", who.get("workspace_id") or "")
    if is_core(address, who.get("org_id") or "", who.get("workspace_id") or ""):
        return None
    try:
        # The whole address, encoded: the path form (org/ws/name) cannot name every address a send accepts.
        c.get_agent(quote(address, safe=""))
        return None
    except NotFoundError:
        return address
    except CliError:  # e.g. not an address at all: the send itself says what is wrong
        return None


def warning(address: str) -> tuple[str, str]:
    """The sentence and the fix for an address nothing serves."""
    name = address.rstrip("/").rsplit("/", 1)[-1]
    return (f"nothing serves {address} in this workspace (no agent, scenario agent or http binding): the intent "
            "will wait until its delivery attempts run out",
            f"check --to against `axme agents list`, or start the agent: "
            f"`axme agents register --name {name} --with-key`, then `axme agents run {name} -- <command>`")

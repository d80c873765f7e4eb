"""What the shell completes for values people type often: context names, agent addresses and recent intent ids.

A completer runs on every Tab press, so it reads local files first, asks the runtime only for intent ids (one
request, a one-second timeout) and never fails: any problem completes nothing. (`axme completion` itself is
cli/complete.py.)"""

from __future__ import annotations


def context_names(incomplete: str) -> list[str]:
    try:
        from axme_cli.config import contexts

        return sorted(n for n in contexts.load()["contexts"] if n.startswith(incomplete))
    except Exception:
        return []


def agent_addresses(incomplete: str) -> list[str]:
    """Agents this machine holds keys for (scenario-agents.json), by bare name and by address."""
    try:
        from axme_cli.config import agents_file

        names: set[str] = set()
        for entry in agents_file.load():
            address = str(entry.get("address") or "")
            names.update({address, address.rsplit("/", 1)[-1]})
        return sorted(n for n in names if n and n.startswith(incomplete))
    except Exception:
        return []


def intent_ids(incomplete: str) -> list[str]:
    """The newest intents of the active context whose id starts with what is typed."""
    try:
        from axme_cli.client.http import Client
        from axme_cli.config.resolve import effective

        t = effective()  # flags are not parsed while a shell asks: env and the active context
        if not (t.api_key or t.actor_token):
            return []
        prefix = incomplete.lower() if all(c in "0123456789abcdef-" for c in incomplete.lower()) else None
        if incomplete and prefix is None:
            return []
        with Client.for_target(t, timeout=1.0) as c:
            rows, _ = c.list_intents(limit=20, id_prefix=prefix or None)
        return [str(r["intent_id"]) for r in rows]
    except Exception:
        return []

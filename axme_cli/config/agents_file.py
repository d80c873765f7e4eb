"""scenario-agents.json: the keys of agents provisioned by `axme scenarios apply` (0600).

``{"agents": [{"address", "service_account_id", "key_id", "api_key", "created_at", "base_url"}]}``,
one entry per (address, base_url). Keys are written with sorted keys, so
``grep -A2 <agent name> scenario-agents.json`` shows the address, then its api_key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from axme_cli.config import paths
from axme_cli.config.files import ConfigFileError, read_json, write_json


def path() -> Path:
    return paths.config_dir() / "scenario-agents.json"


def load() -> list[dict[str, Any]]:
    data = read_json(path(), {})
    agents = data.get("agents", [])
    if not isinstance(agents, list) or not all(isinstance(a, dict) for a in agents):
        raise ConfigFileError(f'{path()}: "agents" must be a list of objects; fix it or move it away')
    return agents


def find(address: str, base_url: str) -> dict[str, Any] | None:
    base = base_url.rstrip("/")
    for entry in load():
        if entry.get("address") == address and str(entry.get("base_url", "")).rstrip("/") == base:
            return entry
    return None


def lookup(name: str, base_url: str) -> dict[str, Any] | None:
    """The entry for a bare name or an address: same base URL first, else any."""
    base = base_url.rstrip("/")
    entries = load()
    def matches(e: dict[str, Any]) -> bool:
        address = str(e.get("address", ""))
        return address == name or address.rsplit("/", 1)[-1] == name
    for entry in entries:
        if matches(entry) and str(entry.get("base_url", "")).rstrip("/") == base:
            return entry
    return None


def upsert(entry: dict[str, Any]) -> None:
    agents = [a for a in load() if not (a.get("address") == entry["address"] and
                                         str(a.get("base_url", "")).rstrip("/") == entry["base_url"].rstrip("/"))]
    agents.append(entry)
    write_json(path(), {"agents": agents}, mode=0o600)

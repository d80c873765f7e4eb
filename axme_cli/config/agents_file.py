"""scenario-agents.json: the keys of agents provisioned by `axme scenarios apply` (0600).

``{"agents": [{"address", "service_account_id", "key_id", "api_key", "created_at", "base_url"}]}``,
one entry per (address, base_url). Keys are written with sorted keys, so
``grep -A2 <agent name> scenario-agents.json`` shows the address, then its api_key.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from axme_cli.config import paths
from axme_cli.config.files import read_json, write_json
from axme_cli.errors import ConfigFileError


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


def remove(address: str, base_url: str) -> int:
    """Drop the entries of ``address`` for ``base_url``; returns how many went (the file is left alone if none)."""
    base = base_url.rstrip("/")
    agents = load()
    kept = [a for a in agents if not (a.get("address") == address and str(a.get("base_url", "")).rstrip("/") == base)]
    if len(kept) != len(agents):
        write_json(path(), {"agents": kept}, mode=0o600)
    return len(agents) - len(kept)


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """Hold an exclusive lock on the file while reading and rewriting it, so that two `axme` processes saving keys
    at once do not lose one (a lost entry is a lost token). POSIX only; elsewhere this is a no-op."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    lock = path().with_name(".scenario-agents.json.lock")
    lock.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock

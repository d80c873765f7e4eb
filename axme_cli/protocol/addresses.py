"""Agent address rules (axme-reference.md §2.1)."""

from __future__ import annotations

import re

SCHEME = "agent://"
# The runtime's own address: human tasks and workflow parents go to it, never to an agent's feed. Callers write it
# as the SDK docs do, in any of three forms (see ``is_core``).
CORE = "agent://agent_core"
CORE_NAME = "agent_core"
_SLUG = r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]"
_NAME = r"[a-z0-9](?:[a-z0-9._-]{0,61}[a-z0-9])?"
NAME_RE = re.compile(rf"^{_NAME}$")
SLUG_RE = re.compile(rf"^{_SLUG}$")


def is_valid_name(name: str) -> bool:
    return bool(NAME_RE.match(name))


def is_valid_slug(slug: str) -> bool:
    return bool(SLUG_RE.match(slug))


def qualify(address: str, org: str, workspace: str) -> str:
    """Turn a bare name or ``org/ws/name`` path into a full ``agent://`` address."""
    address = address.strip()
    if "://" in address:
        return address
    parts = [p for p in address.split("/") if p]
    if len(parts) == 1:
        return f"{SCHEME}{org}/{workspace}/{parts[0]}"
    return SCHEME + "/".join(parts)


def agent_address(org: str, workspace: str, name: str) -> str:
    return f"{SCHEME}{org}/{workspace}/{name}"



def is_core(address: str, org: str, workspace: str) -> bool:
    """``agent://agent_core``, the runtime's ``agent://<org>/<workspace>/agent_core`` or the bare ``agent_core``:
    all three name the runtime itself (another workspace's ``agent_core`` is not this runtime)."""
    return address in (CORE, CORE_NAME, agent_address(org, workspace, CORE_NAME))

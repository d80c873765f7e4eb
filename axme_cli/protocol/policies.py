"""Sender policies on the wire: an agent's send policy, the org's receive policy and an agent's receive override
(axme-reference.md §1.4 and §1.8), their request bodies, and the sender patterns their entries hold.

A pattern names senders: ``agent://org/ws/name`` (one agent), ``agent://org/ws/*`` (every agent of a workspace),
``agent://org/*`` (of an organization), ``agent://*`` or ``*`` (any agent). ``*`` stands only alone or as the
whole last part. A pattern is never a regular expression: ``parse_pattern`` splits it on ``/`` and checks each part
against the address rules, and ``Matcher`` finds the entry a sender matches with at most four dictionary lookups,
however many entries there are. A pattern that no address could ever match (an upper-case slug, ``*`` inside a
part, two parts where an address has three) is refused with the reason, so a typo never becomes a rule that
silently matches nothing.

Pure: imports nothing of ours but the address rules, so the CLI checks a pattern before it sends it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, StringConstraints

from axme_cli.protocol.addresses import NAME_RE, SCHEME, SLUG_RE

SEND_TYPES = ("open", "allowlist", "denylist")  # an agent's send policy: who may send to it
RECEIVE_TYPES = ("open", "allowlist", "closed")  # the org's receive policy: which agents of other orgs may send in
OVERRIDE_TYPES = (*RECEIVE_TYPES, "use_org_default")  # an agent's receive override of the org's policy
ANY = "*"
PATTERN_MAX = 255
ENTRIES_MAX = 1000  # entries of one policy


class PatternError(ValueError):
    """A sender pattern that cannot match an agent address; the message says why."""


def parse_pattern(text: str, org: str, workspace: str) -> str:
    """The canonical form of a sender pattern, or PatternError. A bare name is an agent of ``org``/``workspace``
    and ``org/ws/name`` (or ``org/*``) is read as if it began with ``agent://``, as recipients are."""
    value = text.strip()
    if not value:
        raise PatternError("a pattern names senders: agent://org/ws/name, agent://org/ws/*, agent://org/* or *")
    if len(value) > PATTERN_MAX:
        raise PatternError(f"a pattern is at most {PATTERN_MAX} characters")
    if value == ANY:
        return ANY
    if "://" in value:
        if not value.startswith(SCHEME):
            raise PatternError(f"only agent addresses ({SCHEME}...) are judged by sender policies; the workspace key "
                               "and people (initiator://, actor://) send past them")
        rest = value[len(SCHEME):]
    elif "/" in value:
        rest = value
    else:
        rest = f"{org}/{workspace}/{value}"
    parts = rest.split("/")
    if len(parts) > 3:
        raise PatternError("an agent address has three parts after agent:// (org/workspace/name)")
    if any(not p for p in parts):
        raise PatternError("a pattern has no empty part (no '//' and no '/' at the end)")
    for i, part in enumerate(parts):
        if ANY not in part:
            continue
        if part != ANY or i != len(parts) - 1:
            raise PatternError("'*' stands only alone or as the whole last part (agent://org/ws/*, agent://org/*)")
    wild = parts[-1] == ANY
    fixed = parts[:-1] if wild else parts
    if not wild and len(parts) < 3:
        hint = "/".join(parts)
        raise PatternError(f"an agent address has three parts (org/workspace/name); use agent://{hint}/* for every "
                           "agent under it")
    for i, part in enumerate(fixed):
        if i < 2 and not SLUG_RE.match(part):
            what = "organization" if i == 0 else "workspace"
            raise PatternError(f"{part!r} is no {what} slug: 3-63 lower-case letters, digits and '-', starting and "
                               "ending with a letter or digit")
        if i == 2 and not NAME_RE.match(part):
            raise PatternError(f"{part!r} is no agent name: up to 63 lower-case letters, digits, '.', '_' and '-', "
                               "starting and ending with a letter or digit")
    return SCHEME + "/".join(parts)


def _key(pattern: str) -> tuple[int, str]:
    """Where a canonical pattern is kept in a Matcher: (parts before the ``*`` or 3 for an exact address, the
    text they make); ``*`` and ``agent://*`` are (0, '')."""
    if pattern == ANY:
        return 0, ""
    parts = pattern[len(SCHEME):].split("/")
    if parts[-1] == ANY:
        return len(parts) - 1, "/".join(parts[:-1])
    return 3, "/".join(parts)


E = TypeVar("E")


class Matcher(Generic[E]):
    """The entries of one policy, by what their pattern fixes: an exact address, a workspace, an org, anything.
    ``match`` answers the most specific entry a sender matches (at most four lookups), whatever their number."""

    __slots__ = ("_by", "size")

    def __init__(self, entries: Iterable[tuple[str, E]]) -> None:
        self._by: tuple[dict[str, E], dict[str, E], dict[str, E], dict[str, E]] = ({}, {}, {}, {})
        self.size = 0
        for pattern, entry in entries:
            depth, text = _key(pattern)
            self._by[depth].setdefault(text, entry)
            self.size += 1

    def match(self, address: str) -> E | None:
        """The entry whose pattern ``address`` matches (the most specific one), if any. Only agent addresses
        (``agent://org/ws/name``) match; anything else matches ``*`` alone."""
        by = self._by
        if not address.startswith(SCHEME):
            return by[0].get("") if address and by[0] else None
        parts = address[len(SCHEME):].split("/")
        if len(parts) == 3 and all(parts):
            found = by[3].get(address[len(SCHEME):]) if by[3] else None
            if found is None and by[2]:
                found = by[2].get(f"{parts[0]}/{parts[1]}")
            if found is None and by[1]:
                found = by[1].get(parts[0])
            if found is not None:
                return found
        return by[0].get("") if by[0] else None


def matches(pattern: str, address: str) -> bool:
    """Whether ``address`` matches the canonical ``pattern`` (one entry's Matcher)."""
    return Matcher([(pattern, True)]).match(address) is not None


# ---------------------------------------------------------------------------------------------
# request bodies

Pattern = Annotated[str, StringConstraints(min_length=1, max_length=PATTERN_MAX)]


class SendPolicyRequest(BaseModel):
    """``PUT /v1/agents/{address}/policy``: who may send to the agent."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    policy_type: Literal["open", "allowlist", "denylist"]


class ReceivePolicyRequest(BaseModel):
    """``PUT /v1/organizations/{org_id}/receive-policy``: which agents of other organizations may send to the org's
    agents."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    policy_type: Literal["open", "allowlist", "closed"]


class ReceiveOverrideRequest(BaseModel):
    """``PUT /v1/agents/{address}/receive-override``: the agent's own receive policy instead of the org's
    (``use_org_default``: none)."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    override_type: Literal["open", "allowlist", "closed", "use_org_default"]


class PolicyEntryRequest(BaseModel):
    """``POST .../entries``: one sender pattern."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    sender_pattern: Pattern

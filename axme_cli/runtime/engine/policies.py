"""Sender policies: who may send intents to whom, set per agent and per organization and enforced when an intent
is created (axme-reference.md §1.4, §1.8).

Three policies, each a type and a list of sender patterns (``protocol/policies.py``):

- an agent's **send policy** (``/v1/agents/{address}/policy``): who may send to it. ``open`` (the default: anyone),
  ``allowlist`` (only senders matching an entry), ``denylist`` (anyone but senders matching an entry);
- the organization's **receive policy** (``/v1/organizations/{org_id}/receive-policy``): which agents of *other*
  organizations may send to the org's agents (and to its people, through human tasks). ``open`` (the default),
  ``allowlist`` (those matching an entry), ``closed`` (none). Agents of the org itself are never judged by it;
- an agent's **receive override** (``/v1/agents/{address}/receive-override``): the same as the org's receive
  policy, for that agent instead of the org's (``use_org_default``, the default: no override).

What is judged is the intent's sender as recorded (``from_agent``) when it is an agent: the workspace key and
people sending as themselves are not judged (they are the ones who set the policies), but the workspace key
sending *as* an agent (``from_agent``) is judged as that agent. A sender the agent's send policy refuses, or an
agent of another org the receive policy refuses, gets 403 ``policy_denied`` naming the policy, its type and the
entry that refused it (or that no entry admitted it). Every way an intent is created passes here: ``POST
/v1/intents`` (and MCP's send tools, which call it), the dashboard, schedules firing (``intents.op_create``), and a
scenario's apply (``workflows.op_apply``), which checks every agent its steps and compensations send to, as the
applier, before anything is created; the steps of a workflow already running are not judged again.

Who may set them: an agent's send policy, the workspace key, a person (a member) or the agent's own key (an agent
decides who may talk to it); a receive override or the org's receive policy, the workspace key or a person (they
open or close the org to other organizations). Another agent's key gets 404, as for anything not its own; an
agent reads its own override and its org's receive policy.

Cost when nothing restricts: ``check_send`` asks the database nothing. Every policy and entry of the workspace is
kept in memory (``Rules``, in the store's ``memo``), read once inside a transaction when first needed and dropped
when a commit changed a policy (``Notes.policies``: here at once, on other replicas through LISTEN/NOTIFY; a
reconnect drops it too, and ``TTL`` bounds a notification lost anyway). A policy change takes effect for intents
created after it; intents already created are not touched.

Every row carries the org and workspace it belongs to, taken from ``scope_of`` (the caller's workspace: its scoped
settings); the org's receive policy is the org's (workspace_id ''), shared by its workspaces. Every read filters on
them; the rules in memory are kept per workspace, and a send is judged by the recipient's workspace's rules.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from axme_cli.protocol import addresses
from axme_cli.protocol import policies as wire
from axme_cli.protocol.ids import uuid7
from axme_cli.runtime.clock import iso
from axme_cli.runtime.engine import audit
from axme_cli.runtime.errors import Conflict, Forbidden, NotFound, Unprocessable
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.scope import segments
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Row, Tx

AGENT_SEND = "agent_send"
ORG_RECEIVE = "org_receive"
AGENT_RECEIVE = "agent_receive"
KINDS = (AGENT_SEND, ORG_RECEIVE, AGENT_RECEIVE)
DEFAULT = {AGENT_SEND: "open", ORG_RECEIVE: "open", AGENT_RECEIVE: "use_org_default"}
TYPES = {AGENT_SEND: wire.SEND_TYPES, ORG_RECEIVE: wire.RECEIVE_TYPES, AGENT_RECEIVE: wire.OVERRIDE_TYPES}
ORG_WIDE = ""  # the workspace_id and subject of the org's own policy
NAMES = {AGENT_SEND: "send policy", ORG_RECEIVE: "receive policy", AGENT_RECEIVE: "receive override"}
WIRE_POLICY = {AGENT_SEND: "agent_send_policy", ORG_RECEIVE: "org_receive_policy",
               AGENT_RECEIVE: "agent_receive_override"}  # details.policy of a refusal


def scope_of(s: Settings, principal: Principal | None = None) -> tuple[str, str]:
    """The org and workspace the caller acts in, which every row it writes carries and every read filters on
    (``s``: the caller's scoped settings, ``scope.settings_for``)."""
    return s.org, s.workspace


def _row_scope(s: Settings, principal: Principal | None, kind: str) -> tuple[str, str]:
    org, workspace = scope_of(s, principal)
    return (org, ORG_WIDE) if kind == ORG_RECEIVE else (org, workspace)


# ---------------------------------------------------------------------------------------------
# who may


def check_may_read(s: Settings, principal: Principal, kind: str, subject: str) -> None:
    """Members read every policy; an agent its own send policy and override, and its org's receive policy;
    another agent's: 404 (as anything not its own)."""
    if principal.is_member or kind == ORG_RECEIVE or principal.address == subject:
        return
    raise NotFound(f"agent {subject} not found", code="agent_not_found")


def check_may_change(s: Settings, principal: Principal, kind: str, subject: str) -> None:
    check_may_read(s, principal, kind, subject)
    if principal.is_member or kind == AGENT_SEND:
        return
    what = "the org's receive policy" if kind == ORG_RECEIVE else "a receive override"
    raise Forbidden(f"{what} is set by the workspace key or a person, not by an agent key (it opens or closes "
                    "agents to other organizations)", code="policy_denied",
                    details={"allowed": ["workspace key", "person"]})


def check_agent(s: Settings, principal: Principal | None, address: str, exists: bool) -> None:
    """A policy is set on an agent of the caller's workspace that exists (an active service account): 404
    otherwise, as for an agent of another workspace."""
    org, workspace = scope_of(s, principal)
    if not exists or not address.startswith(addresses.agent_address(org, workspace, "")):
        raise NotFound(f"agent {address} not found", code="agent_not_found",
                       details={"agent_address": address})


def check_org(s: Settings, principal: Principal | None, org_id: str) -> None:
    """The org a path names must be the caller's: 404 otherwise (never 403: another org's existence is not told)."""
    if org_id != scope_of(s, principal)[0]:
        raise NotFound(f"organization {org_id} not found", code="organization_not_found",
                       details={"org_id": org_id})


# ---------------------------------------------------------------------------------------------
# views


def entry_view(row: Row) -> dict[str, Any]:
    return {"entry_id": row["entry_id"], "sender_pattern": row["sender_pattern"], "created_at": row["created_at"],
            "created_by": row["created_by"]}


def view(s: Settings, kind: str, subject: str, row: Row | None, entries: list[Row]) -> dict[str, Any]:
    """A policy as answered: ``policy`` of the send and receive policies, ``override`` of a receive override."""
    org, workspace = scope_of(s)
    out: dict[str, Any] = {"org_id": org}
    if kind != ORG_RECEIVE:
        out.update(agent_address=subject, workspace_id=workspace)
    out["override_type" if kind == AGENT_RECEIVE else "policy_type"] = (
        row["policy_type"] if row is not None else DEFAULT[kind])
    out["entries"] = [entry_view(e) for e in entries]
    out["updated_at"] = row["updated_at"] if row is not None else None
    out["updated_by"] = row["updated_by"] if row is not None else None
    return out


def answer(s: Settings, kind: str, subject: str, row: Row | None, entries: list[Row],
           **extra: Any) -> dict[str, Any]:
    return {"ok": True, ("override" if kind == AGENT_RECEIVE else "policy"): view(s, kind, subject, row, entries),
            **extra}


# ---------------------------------------------------------------------------------------------
# changing them


def _changed(tx: Tx) -> None:
    """A policy changed in this transaction: every replica drops its rules after the commit, and this process at
    once (a later operation of the same SQLite batch must see the change)."""
    tx.notes.policies = True
    invalidate(tx.memo)


def _policy_row(tx: Tx, s: Settings, principal: Principal, kind: str, subject: str, now: float) -> Row:
    """The policy's row, locked; made with the default type when it has none yet (entries need their policy)."""
    org, workspace = _row_scope(s, principal, kind)
    row = tx.get_sender_policy(org, workspace, kind, subject)
    if row is None:
        at = iso(now)
        row = {"org_id": org, "workspace_id": workspace, "kind": kind, "subject": subject,
               "policy_type": DEFAULT[kind], "created_at": at, "updated_at": at, "updated_by": principal.address}
        tx.insert_sender_policy(row)
        row = tx.get_sender_policy(org, workspace, kind, subject) or row  # locked from here (PostgreSQL)
    return row


def _target(s: Settings, kind: str, subject: str) -> tuple[str, str]:
    return ("sender_policy", f"{kind}:{subject or scope_of(s)[0]}")


def op_set(tx: Tx, s: Settings, principal: Principal, kind: str, subject: str, policy_type: str,
           now: float) -> dict[str, Any]:
    """Set the policy's type (its entries stay). The same type again changes nothing."""
    check_may_change(s, principal, kind, subject)
    if kind != ORG_RECEIVE:
        check_agent(s, principal, subject, tx.active_service_account_by_address(subject) is not None)
    assert policy_type in TYPES[kind], policy_type  # the request model allows only these
    org, workspace = _row_scope(s, principal, kind)
    row = _policy_row(tx, s, principal, kind, subject, now)
    previous = row["policy_type"]
    if previous != policy_type:
        fields = {"policy_type": policy_type, "updated_at": iso(now), "updated_by": principal.address}
        tx.update_sender_policy(org, workspace, kind, subject, fields)
        row = {**row, **fields}
        _changed(tx)
        audit.by(tx, "sender_policy.set", now, principal, owner_agent=subject or None,
                 target=_target(s, kind, subject), kind=kind, policy_type=policy_type, previous=previous)
    return answer(s, kind, subject, row, tx.sender_policy_entries(org, workspace, kind, subject),
                  changed=previous != policy_type)


def op_add_entry(tx: Tx, s: Settings, principal: Principal, kind: str, subject: str, raw_pattern: str,
                 now: float) -> dict[str, Any]:
    """Add a sender pattern (checked: 422 naming it when no address could match it). A pattern the policy has
    already answers its entry again (``created: false``)."""
    check_may_change(s, principal, kind, subject)
    if kind != ORG_RECEIVE:
        check_agent(s, principal, subject, tx.active_service_account_by_address(subject) is not None)
    org, workspace = scope_of(s, principal)
    pattern = canonical_pattern(raw_pattern, org, workspace)
    row = _policy_row(tx, s, principal, kind, subject, now)
    org, workspace = _row_scope(s, principal, kind)
    entries = tx.sender_policy_entries(org, workspace, kind, subject)
    same = next((e for e in entries if e["sender_pattern"] == pattern), None)
    if same is not None:
        return answer(s, kind, subject, row, entries, entry=entry_view(same), created=False)
    if len(entries) >= wire.ENTRIES_MAX:
        raise Conflict(f"the {NAMES[kind]} has {len(entries)} entries, the most one may have; remove some, or "
                       "use a wider pattern (agent://org/ws/*)", code="too_many_entries",
                       details={"field": "sender_pattern", "limit": wire.ENTRIES_MAX})
    entry = {"entry_id": uuid7(), "org_id": org, "workspace_id": workspace, "kind": kind, "subject": subject,
             "sender_pattern": pattern, "created_at": iso(now), "created_by": principal.address}
    tx.insert_sender_policy_entry(entry)
    _changed(tx)
    audit.by(tx, "sender_policy.entry_added", now, principal, owner_agent=subject or None,
             target=_target(s, kind, subject), kind=kind, entry_id=entry["entry_id"], sender_pattern=pattern)
    return answer(s, kind, subject, row, [*entries, entry], entry=entry_view(entry), created=True)


def op_remove_entry(tx: Tx, s: Settings, principal: Principal, kind: str, subject: str, entry_id: str,
                    now: float) -> dict[str, Any]:
    check_may_change(s, principal, kind, subject)
    if kind != ORG_RECEIVE:
        check_agent(s, principal, subject, tx.active_service_account_by_address(subject) is not None)
    org, workspace = _row_scope(s, principal, kind)
    entries = tx.sender_policy_entries(org, workspace, kind, subject)
    gone = next((e for e in entries if e["entry_id"] == entry_id), None)
    if gone is None or not tx.delete_sender_policy_entry(org, workspace, kind, subject, entry_id):
        raise NotFound(f"the {NAMES[kind]} has no entry {entry_id}", code="entry_not_found",
                       details={"entry_id": entry_id})
    _changed(tx)
    audit.by(tx, "sender_policy.entry_removed", now, principal, owner_agent=subject or None,
             target=_target(s, kind, subject), kind=kind, entry_id=entry_id, sender_pattern=gone["sender_pattern"])
    rest = [e for e in entries if e["entry_id"] != entry_id]
    return answer(s, kind, subject, tx.get_sender_policy(org, workspace, kind, subject), rest,
                  deleted=True, entry_id=entry_id)


def canonical_pattern(raw: str, org: str, workspace: str) -> str:
    """``protocol.policies.parse_pattern``, its refusal a 422 naming the field and the pattern."""
    try:
        return wire.parse_pattern(raw, org, workspace)
    except wire.PatternError as exc:
        shown = raw if len(raw) <= 100 else raw[:100] + "..."
        raise Unprocessable(f"sender_pattern: {shown!r} can never match an agent address: {exc}",
                            code="invalid_sender_pattern",
                            details={"field": "sender_pattern", "sender_pattern": shown, "reason": str(exc)}) from None


# ---------------------------------------------------------------------------------------------
# judging a send


@dataclass(frozen=True)
class Rule:
    kind: str
    subject: str
    policy_type: str
    entries: wire.Matcher[dict[str, str]]


@dataclass(frozen=True)
class Rules:
    """Every policy of one workspace that can refuse something, as ``check_send`` reads them."""

    send: dict[str, Rule] = field(default_factory=dict)  # recipient -> its send policy (allowlist, denylist)
    overrides: dict[str, Rule] = field(default_factory=dict)  # recipient -> its receive override (not the default)
    org: Rule | None = None  # the org's receive policy unless open
    empty: bool = True  # nothing here can refuse a send


def build_rules(policies: list[Row], entries: list[Row]) -> Rules:
    by_policy: dict[tuple[str, str], list[tuple[str, dict[str, str]]]] = {}
    for e in entries:
        by_policy.setdefault((e["kind"], e["subject"]), []).append(
            (e["sender_pattern"], {"entry_id": e["entry_id"], "sender_pattern": e["sender_pattern"]}))
    send: dict[str, Rule] = {}
    overrides: dict[str, Rule] = {}
    org: Rule | None = None
    for p in policies:
        kind, subject, policy_type = p["kind"], p["subject"], p["policy_type"]
        if policy_type == "use_org_default" or (policy_type == "open" and kind != AGENT_RECEIVE):
            continue  # refuses nothing (an open override is kept: it opens its agent when the org's is not)
        rule = Rule(kind, subject, policy_type, wire.Matcher(by_policy.get((kind, subject), ())))
        if kind == AGENT_SEND:
            send[subject] = rule
        elif kind == AGENT_RECEIVE:
            overrides[subject] = rule
        elif kind == ORG_RECEIVE:
            org = rule
    empty = not send and org is None and all(o.policy_type == "open" for o in overrides.values())
    return Rules(send, overrides, org, empty)


class RulesCache:
    """``Rules`` per (org, workspace), kept between transactions (in the store's ``memo``) until a policy changes
    (``invalidate``) or ``TTL`` seconds pass. Transactions run on several threads (PostgreSQL): a load that raced
    an invalidation is used once and not kept."""

    TTL = 30.0

    def __init__(self) -> None:
        self._kept: dict[tuple[str, str], tuple[float, Rules]] = {}
        self._generation = 0
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        with self._lock:
            self._kept = {}
            self._generation += 1

    def rules(self, tx: Tx, org: str, workspace: str) -> Rules:
        kept = self._kept.get((org, workspace))
        now = time.monotonic()
        if kept is not None and kept[0] > now:
            return kept[1]
        generation = self._generation
        rules = build_rules(*tx.sender_rules(org, [workspace, ORG_WIDE]))
        with self._lock:
            if generation == self._generation:
                self._kept = {**self._kept, (org, workspace): (now + self.TTL, rules)}
        return rules


MEMO = "policies.rules"


def cache_of(memo: dict[str, Any]) -> RulesCache:
    cache = memo.get(MEMO)
    if cache is None:
        cache = memo.setdefault(MEMO, RulesCache())
    return cache


def invalidate(memo: dict[str, Any]) -> None:
    """Drop the kept rules (a policy changed): what ``Runtime`` calls for a commit with ``Notes.policies``."""
    cache = memo.get(MEMO)
    if cache is not None:
        cache.invalidate()


def _org_of(address: str) -> str | None:
    """The org of an ``agent://org/ws/name`` address (None for anything else)."""
    if not address.startswith(addresses.SCHEME):
        return None
    org, _, rest = address[len(addresses.SCHEME):].partition("/")
    return org if rest else None


def check_send(tx: Tx, s: Settings, sender: str, recipient: str, **context: Any) -> None:
    """403 ``policy_denied`` when a policy refuses ``sender`` sending to ``recipient`` (the one to judge an intent
    by, in every way one is created); nothing, and no query, when no policy restricts anything. ``context`` goes
    into the refusal's details (a workflow's step). The policies judged are those of the recipient's workspace
    and org (an agent's policy lives where the agent does), whatever workspace ``s`` is of."""
    if not sender.startswith(addresses.SCHEME):
        return  # the workspace key or a person, as themselves
    org, workspace = segments(recipient) or scope_of(s)
    rules = cache_of(tx.memo).rules(tx, org, workspace)
    if rules.empty:
        return
    rule = rules.send.get(recipient)
    if rule is not None:
        hit = rule.entries.match(sender)
        if rule.policy_type == "allowlist" and hit is None:
            _deny(rule, sender, recipient, None, context,
                  f"{recipient}'s send policy is an allowlist and none of its {rule.entries.size} entries matches "
                  f"{sender}")
        if rule.policy_type == "denylist" and hit is not None:
            _deny(rule, sender, recipient, hit, context,
                  f"{recipient}'s send policy (denylist) refuses it: entry {hit['entry_id']} "
                  f"({hit['sender_pattern']})")
    if _org_of(sender) == org:
        return
    if not (_org_of(recipient) == org or addresses.is_core(recipient, org, workspace)):
        return  # another org's agent: its own org's policies, not ours
    rule = rules.overrides.get(recipient) or rules.org
    if rule is None or rule.policy_type == "open":
        return
    whose = f"{recipient}'s receive override" if rule.kind == AGENT_RECEIVE else f"organization {org}'s receive policy"
    context = {**context, "org_id": org}
    if rule.policy_type == "closed":
        _deny(rule, sender, recipient, None, context,
              f"{whose} is closed: agents of other organizations may not send to it")
    if rule.entries.match(sender) is None:
        _deny(rule, sender, recipient, None, context,
              f"{whose} is an allowlist and none of its {rule.entries.size} entries matches {sender}, an agent of "
              "another organization")


def _deny(rule: Rule, sender: str, recipient: str, entry: dict[str, str] | None, context: dict[str, Any],
          why: str) -> None:
    details: dict[str, Any] = {"policy": WIRE_POLICY[rule.kind], "policy_type": rule.policy_type,
                               "from_agent": sender, "to_agent": recipient}
    if rule.kind != ORG_RECEIVE:
        details["agent_address"] = rule.subject
    if entry is not None:
        details.update(entry_id=entry["entry_id"], sender_pattern=entry["sender_pattern"])
    details.update(context)
    raise Forbidden(f"{sender} may not send to {recipient}: {why}", code="policy_denied", details=details)

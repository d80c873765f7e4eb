"""The agent mesh: heartbeats, the health derived from them and from delivery failures, the kill switch, and the
mesh's events (AXME's ``client.mesh``; the wire rules and the health table are in ``protocol/mesh.py``).

- A heartbeat is one UPSERT of the agent's row (last heartbeat, metrics); only when that changes the health last
  recorded (an agent that comes back) does it write the change and its event too.
- Delivery failures are counted where they happen (the redelivery timer in ``engine/intents.py``, a failed POST in
  ``engine/outbound.py``), never on the path of a delivery that works.
- Health changes that come with time alone (no heartbeat for a while, a failure window running out) are recorded
  by the runtime's mesh loop (``runtime/mesh_watch.py``, ``op_sweep``), at the moment they happen.
- The kill switch: a killed agent gets nothing (its feed holds what it would send, the outbound sender holds its
  POSTs, its intents' redelivery timer does not count attempts) and may not send (403 ``agent_killed``) until it is
  resumed; what is addressed to it meanwhile waits and goes out on resume. The killed addresses are kept in memory
  (``KillSwitch``) so that a create or a feed costs no query: a kill or resume commits ``Notes.killed``, which this
  process applies at once and other replicas hear of through LISTEN/NOTIFY (a replica that lost its notification
  connection reads the whole set again when it is back).

Every row belongs to the org and workspace of its agent: ``where(s, address)``, the address's own segments, so
the runtime's loops (the mesh loop, the redelivery timer, the outbound sender), which act for every workspace,
record and read an agent's row in its workspace. A caller's lists name its workspace: ``scope(s)`` with the
caller's scoped settings (``runtime/scope.py``). The killed set holds the addresses of every workspace (an address
names its workspace, so a kill in one never touches a same-named agent of another).
"""

from __future__ import annotations

from typing import Any

from axme_cli.protocol import mesh as wire
from axme_cli.protocol.ids import uuid7
from axme_cli.runtime.clock import iso
from axme_cli.runtime.engine import audit
from axme_cli.runtime.engine.codec import dumps, loads
from axme_cli.runtime.errors import Forbidden, NotFound
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.scope import segments
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store.base import Reads, Row, Tx

MESH = "agent://axme.runtime/mesh"  # the actor of the health changes time alone makes
# How long a killed agent's intent waits before its redelivery timer looks again (no attempt is counted), and a
# held outbound delivery before the sender does: a resume makes both due at once.
HOLD_SECONDS = 300.0


def scope(s: Settings) -> tuple[str, str]:
    """The org and workspace of the caller (``s``: its scoped settings, ``scope.settings_for``)."""
    return (s.org, s.workspace)


def where(s: Settings, address: str) -> tuple[str, str]:
    """The org and workspace of the agent at ``address`` (``agent://<org>/<workspace>/<name>``); else those of
    ``s``."""
    return segments(address) or scope(s)


# ---------------------------------------------------------------------------------------------
# health (pure)


def recent_failures(row: Row | None, now: float) -> int:
    """Delivery failures in the agent's current window (0 once the window ran out)."""
    if row is None:
        return 0
    since = row["failures_since_ts"]
    if since is None or now >= since + wire.FAILURE_WINDOW_SECONDS:
        return 0
    return int(row["failures_recent"])


def health(row: Row | None, now: float) -> tuple[str, str]:
    """The agent's health at ``now`` and why (protocol/mesh.py has the rules)."""
    if row is None:
        return wire.UNKNOWN, "no heartbeat yet"
    failures = recent_failures(row, now)
    beat = row["last_heartbeat_ts"]
    age = None if beat is None else max(0.0, now - beat)
    window = f"in the last {wire.FAILURE_WINDOW_SECONDS:.0f} s"
    if age is not None and age >= wire.HEARTBEAT_STALE_SECONDS:
        return wire.UNHEALTHY, f"no heartbeat for {age:.0f} s"
    if failures >= wire.FAILURES_UNHEALTHY:
        return wire.UNHEALTHY, f"{failures} delivery failures {window}"
    if failures:
        return wire.DEGRADED, f"{failures} delivery failure{'s' if failures > 1 else ''} {window}"
    if age is None:
        return wire.UNKNOWN, "no heartbeat yet"
    if age >= wire.HEARTBEAT_FRESH_SECONDS:
        return wire.DEGRADED, f"last heartbeat {age:.0f} s ago"
    return wire.HEALTHY, f"last heartbeat {age:.0f} s ago"


def next_change(row: Row, now: float) -> float | None:
    """When the agent's health may next change with time alone (after ``now``), if ever."""
    times = []
    beat, since = row["last_heartbeat_ts"], row["failures_since_ts"]
    if beat is not None:
        times += [beat + wire.HEARTBEAT_FRESH_SECONDS, beat + wire.HEARTBEAT_STALE_SECONDS]
    if since is not None:
        times.append(since + wire.FAILURE_WINDOW_SECONDS)
    return min((t for t in times if t > now), default=None)


# ---------------------------------------------------------------------------------------------
# views


RULES = {"heartbeat_interval_seconds": wire.HEARTBEAT_INTERVAL_SECONDS,
         "heartbeat_fresh_seconds": wire.HEARTBEAT_FRESH_SECONDS,
         "heartbeat_stale_seconds": wire.HEARTBEAT_STALE_SECONDS,
         "failure_window_seconds": wire.FAILURE_WINDOW_SECONDS, "failures_unhealthy": wire.FAILURES_UNHEALTHY}


def _at(ts: float | None) -> str | None:
    return None if ts is None else iso(ts)


def agent_view(sa: Row, row: Row | None, now: float) -> dict[str, Any]:
    """An agent (its service account) as the mesh shows it: health, heartbeat, metrics, failures, kill switch."""
    state, why = health(row, now)
    r: Row = row or {}
    beat = r.get("last_heartbeat_ts")
    killed = bool(r.get("killed"))
    return {
        "address_id": sa["service_account_id"], "address": sa["address"],
        "service_account_id": sa["service_account_id"], "name": sa["name"],
        "display_name": sa["display_name"] or sa["name"],
        "status": "killed" if killed else "active", "killed": killed,
        "health": state, "health_reason": why,
        "last_heartbeat_at": _at(beat), "heartbeat_age_seconds": None if beat is None else round(now - beat, 3),
        "heartbeats": int(r.get("heartbeats") or 0),
        "metrics": loads(r["metrics"]) if r.get("metrics") else {}, "metrics_at": _at(r.get("metrics_ts")),
        "delivery_failures": {"recent": recent_failures(row, now),
                              "window_seconds": wire.FAILURE_WINDOW_SECONDS,
                              "total": int(r.get("failures_total") or 0), "last_at": _at(r.get("last_failure_ts"))},
        "killed_at": r.get("killed_at"), "killed_by": r.get("killed_by"), "kill_reason": r.get("kill_reason"),
        "resumed_at": r.get("resumed_at"), "resumed_by": r.get("resumed_by"),
    }


def event_view(row: Row) -> dict[str, Any]:
    return {"event_id": row["event_id"], "event_type": row["event_type"], "address": row["address"],
            "actor": row["actor"], "details": loads(row["details"]), "created_at": row["created_at"]}


async def list_agents(reads: Reads, s: Settings, accounts: list[Row], now: float) -> list[dict[str, Any]]:
    """The views of ``accounts`` (service account rows), with their mesh rows read at once."""
    rows = {r["address"]: r for r in await reads.mesh_agents(scope(s))}
    return [agent_view(sa, rows.get(sa["address"]), now) for sa in accounts]


# ---------------------------------------------------------------------------------------------
# operations


def _event(tx: Tx, s: Settings, address: str, event_type: str, actor: str, now: float, **details: Any) -> None:
    org, workspace = where(s, address)
    tx.insert_mesh_event({"event_id": uuid7(), "org_id": org, "workspace_id": workspace, "address": address,
                          "event_type": event_type, "actor": actor,
                          "details": dumps({k: v for k, v in details.items() if v is not None}),
                          "created_at": iso(now)})


def _record_health(tx: Tx, s: Settings, row: Row, now: float, actor: str) -> str:
    """The agent's health at ``now``; when it differs from the one last recorded, record it and its event (once,
    whichever replica or transaction sees it first)."""
    state, why = health(row, now)
    was = row["health"]
    if state != was and tx.mesh_set_health(where(s, row["address"]), row["address"], was, state, iso(now)):
        _event(tx, s, row["address"], wire.HEALTH_CHANGED, actor, now, previous=was, health=state, reason=why)
    return state


def op_heartbeat(tx: Tx, s: Settings, address: str, metrics: dict[str, Any] | None, now: float) -> dict[str, Any]:
    """The agent at ``address`` is alive (the route decided the caller may say so); one UPSERT, plus the health
    change and its event when it comes back (or for the first time)."""
    at = iso(now)
    row = tx.mesh_heartbeat(where(s, address), address, now, at, dumps(metrics) if metrics is not None else None)
    state = _record_health(tx, s, row, now, actor=address)
    killed = bool(row["killed"])
    return {"ok": True, "address": address, "received_at": at, "health": state,
            "status": "killed" if killed else "active", "killed": killed, "heartbeats": int(row["heartbeats"]),
            "heartbeat_interval_seconds": wire.HEARTBEAT_INTERVAL_SECONDS}


def note_delivery_failure(tx: Tx, s: Settings, address: str, now: float) -> None:
    """A delivery attempt to the agent at ``address`` failed (not taken in time, or its POST failed). Only agents
    (service accounts) are counted."""
    if tx.active_service_account_by_address(address) is None:
        return
    row = tx.mesh_delivery_failure(where(s, address), address, now, iso(now), wire.FAILURE_WINDOW_SECONDS)
    _record_health(tx, s, row, now, actor=MESH)


def held(tx: Tx, s: Settings, address: str) -> bool:
    """Whether the agent at ``address`` is killed, as this transaction sees it (the redelivery timer asks)."""
    return tx.mesh_killed(where(s, address), address)


def op_sweep(tx: Tx, s: Settings, addresses: list[str], now: float) -> int:
    """Record the health changes time made (the mesh loop found these agents' health changed); how many."""
    changed = 0
    for address in addresses:
        row = tx.mesh_agent(where(s, address), address)
        if row is not None and _record_health(tx, s, row, now, actor=MESH) != row["health"]:
            changed += 1
    return changed


def may_switch(principal: Principal) -> str:
    """Who kills or resumes (their email, or the key's address): the workspace key or a person, never an agent key."""
    if not principal.is_member:
        raise Forbidden("killing and resuming agents is for the workspace key or a person's login, not an agent key",
                        code="kill_switch_forbidden")
    return principal.email or principal.address


def _agent(tx: Tx, address: str) -> Row:
    sa = tx.active_service_account_by_address(address)
    if sa is None:
        raise NotFound(f"agent {address} not found", code="agent_not_found")
    return sa


def op_kill(tx: Tx, s: Settings, principal: Principal, address: str, reason: str | None,
            now: float) -> dict[str, Any]:
    """Kill the agent: from the commit on (within a second on every replica) it gets no deliveries and its sends
    are refused; what is addressed to it waits. Killing a killed agent changes nothing (``changed`` false)."""
    who = may_switch(principal)
    sa = _agent(tx, address)
    row = tx.mesh_agent(where(s, address), address)
    if row is not None and row["killed"]:
        return {"ok": True, "changed": False, "agent": agent_view(sa, row, now)}
    at = iso(now)
    fields: Row = {"killed": 1, "killed_at": at, "killed_by": who, "kill_reason": reason, "updated_at": at}
    row = tx.mesh_update(where(s, address), address, fields, at)
    _event(tx, s, address, wire.KILLED, who, now, reason=reason)
    audit.by(tx, "agent.killed", now, principal, owner_agent=address, target=("agent", address), reason=reason)
    tx.notes.kill_switch(address, True)
    return {"ok": True, "changed": True, "agent": agent_view(sa, row, now)}


def op_resume(tx: Tx, s: Settings, principal: Principal, address: str, reason: str | None,
              now: float) -> dict[str, Any]:
    """Resume a killed agent: what waited for it goes out now (its feed, its held POSTs). Resuming an agent that
    is not killed changes nothing (``changed`` false)."""
    who = may_switch(principal)
    sa = _agent(tx, address)
    row = tx.mesh_agent(where(s, address), address)
    if row is None or not row["killed"]:
        return {"ok": True, "changed": False, "agent": agent_view(sa, row, now)}
    at = iso(now)
    fields: Row = {"killed": 0, "resumed_at": at, "resumed_by": who, "updated_at": at}
    row = tx.mesh_update(where(s, address), address, fields, at)
    _event(tx, s, address, wire.RESUMED, who, now, reason=reason, killed_at=row["killed_at"])
    audit.by(tx, "agent.resumed", now, principal, owner_agent=address, target=("agent", address), reason=reason)
    tx.notes.kill_switch(address, False)
    tx.notes.feeds.add(address)  # its feed streams, here and on other replicas, send what they held
    if tx.release_held_outbound(address, now):
        tx.notes.outbound = True
    return {"ok": True, "changed": True, "agent": agent_view(sa, row, now)}


# ---------------------------------------------------------------------------------------------
# the kill switch in memory


class KillSwitch:
    """The killed addresses of every workspace of this runtime, in memory: asking costs a set lookup, no query. Read at
    start (``load``), then kept by the commits' ``Notes.killed`` (this process's at once, other replicas' through
    LISTEN/NOTIFY), and read again after a replica's notification connection was lost (``Notes.everything``)."""

    def __init__(self) -> None:
        self.killed: frozenset[str] = frozenset()
        self._logs: list[list[dict[str, bool]]] = []  # one per load under way: the changes heard meanwhile

    async def load(self, reads: Reads, s: Settings | None = None) -> None:
        """Read the set again (every workspace's); changes heard while reading are applied on top, in order."""
        log: list[dict[str, bool]] = []
        self._logs.append(log)
        try:
            found = set(await reads.mesh_killed_addresses(None))
        finally:
            self._logs.remove(log)
        for changes in log:
            _update(found, changes)
        self.killed = frozenset(found)

    def apply(self, changes: dict[str, bool]) -> None:
        for log in self._logs:
            log.append(changes)
        found = set(self.killed)
        _update(found, changes)
        self.killed = frozenset(found)

    def is_killed(self, address: str) -> bool:
        return address in self.killed

    def check_sender(self, address: str) -> None:
        """403 ``agent_killed`` when the agent at ``address`` is killed (a create, an apply)."""
        if address in self.killed:
            raise Forbidden(f"agent {address} is killed: it may not send until it is resumed "
                            f"(`axme mesh resume {address}`)", code="agent_killed",
                            details={"address": address, "status": "killed"})


def _update(found: set[str], changes: dict[str, bool]) -> None:
    for address, killed in changes.items():
        if killed:
            found.add(address)
        else:
            found.discard(address)

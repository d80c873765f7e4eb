"""The store interface: what the engine may ask of a database, and nothing about SQL.

Writes are *operations*: a plain function ``op(tx) -> result`` that the store runs inside a
transaction. The SQLite store runs many operations in one transaction (group commit) and
answers each caller only after that transaction is durable; a PostgreSQL store runs each in
its own transaction with row locks. Either way, an operation sees a consistent view and its
effects become visible all at once.
"""

from __future__ import annotations

import abc
import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

Row = dict[str, Any]
# The organization and workspace a row of a scoped family stores: NULLs for the runtime's default pair
# (runtime/scope.py).
Pair = tuple[str | None, str | None]


@dataclass
class Notes:
    """What a committed transaction changed, for waking streams and the scheduler."""

    intents: set[str] = field(default_factory=set)
    feeds: set[str] = field(default_factory=set)
    wake_at: float | None = None  # the earliest timer this transaction set
    keys_changed: bool = False
    # Wake every stream and the scheduler: changes may have been missed (a replica's notification
    # connection was down for a while), so everyone looks again.
    everything: bool = False
    outbound: bool = False  # a delivery was queued or is due again: wake the outbound sender
    mail: bool = False  # a task mail was queued: wake the task-mail sender
    schemas: bool = False  # the schema registry changed: every replica drops its in-memory index
    policies: bool = False  # a sender policy changed: every replica drops its in-memory rules (engine/policies.py)
    # agent address -> killed (True) or resumed (False): every replica's kill switch follows (engine/mesh.py)
    killed: dict[str, bool] | None = None
    quotas: bool = False  # a quota policy changed: every replica reads the limits again (engine/quotas.py)
    # What happened, for metrics and traces: facts an operation noted with ``see``. They reach
    # ``on_commit`` only if the transaction commits (a rerun starts from a fresh Tx), so nothing is counted
    # twice; they stay in this process (never sent to other replicas).
    seen: list[tuple[Any, ...]] | None = None
    # The events the transaction appended, per intent in ``seq`` order, as stored: the streams of those intents
    # send them without reading them back. SQLite only: the PostgreSQL store does not collect them.
    events: dict[str, list[tuple[int, str]]] | None = None

    # Intents put on an agent's feed, per address in cursor order, as the row the feed reads (intent columns plus
    # ``cursor``, ``attempt``, ``fed_at``): the feed sends them without reading them back. SQLite only (as ``events``).
    fed: dict[str, list[Row]] | None = None

    def feed_row(self, address: str, row: Row) -> None:
        self.fed = _added(self.fed, address, row)

    def event(self, intent_id: str, seq: int, data: str) -> None:
        self.events = _added(self.events, intent_id, (seq, data))

    def see(self, fact: tuple[Any, ...]) -> None:
        if self.seen is None:
            self.seen = [fact]
        else:
            self.seen.append(fact)

    def kill_switch(self, address: str, killed: bool) -> None:
        self.killed = {**(self.killed or {}), address: killed}

    def timer(self, ts: float | None) -> None:
        """A timer is now due at ``ts`` (None: a timer went away; the scheduler finds that out by itself)."""
        if ts is not None and (self.wake_at is None or ts < self.wake_at):
            self.wake_at = ts

    def merge(self, other: Notes) -> None:
        if other.intents:
            self.intents |= other.intents
        if other.feeds:
            self.feeds |= other.feeds
        if other.wake_at is not None:
            self.timer(other.wake_at)
        self.keys_changed = self.keys_changed or other.keys_changed
        self.everything = self.everything or other.everything
        self.outbound = self.outbound or other.outbound
        self.mail = self.mail or other.mail
        self.schemas = self.schemas or other.schemas
        self.policies = self.policies or other.policies
        if other.killed:
            self.killed = {**(self.killed or {}), **other.killed}
        self.quotas = self.quotas or other.quotas
        if other.fed:
            self.fed = _joined(self.fed, other.fed)
        if other.events:
            self.events = _joined(self.events, other.events)
        if other.seen:
            if self.seen is None:
                self.seen = list(other.seen)
            else:
                self.seen.extend(other.seen)


def _added(mine: dict[str, list[Any]] | None, key: str, item: Any) -> dict[str, list[Any]]:
    """``mine`` with ``item`` appended to the list of ``key`` (``mine`` is changed; None starts a new dict)."""
    if mine is None:
        return {key: [item]}
    items = mine.get(key)
    if items is None:
        mine[key] = [item]
    else:
        items.append(item)
    return mine


K = TypeVar("K")
V = TypeVar("V")


def drop_oldest(table: dict[K, V], size: int) -> list[tuple[K, V]]:
    """A full cache of ``size`` entries (oldest first, as a dict keeps them) with its oldest eighth taken out in one
    pass; what was taken out. One entry out at each put (``del table[next(iter(table))]``) cost ~5 us a put in a
    full table of 8,192 instead of ~0.4: a dict keeps its deleted entries' slots until it resizes, and each
    ``next(iter(...))`` walked again over all those at its front."""
    return [(key, table.pop(key)) for key in list(itertools.islice(table, max(1, size // 8)))]


def _joined(mine: dict[str, list[Any]] | None, more: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """``mine`` with the lists of ``more`` appended, key by key (``mine`` is changed; None starts a new dict)."""
    if mine is None:
        return {key: list(items) for key, items in more.items()}
    for key, items in more.items():
        if key in mine:
            mine[key].extend(items)
        else:
            mine[key] = list(items)
    return mine


class Tx(abc.ABC):
    """The view of one write transaction."""

    # The quota limits in force when the transaction began, of every workspace (engine/quotas.LimitBook, set by the
    # store from ``Store.limits``); None: no limit is set anywhere, and an operation that would count against one
    # asks nothing.
    limits: Any = None

    def __init__(self) -> None:
        self.notes = Notes()
        # What operations keep in memory between transactions (engine/policies.py's rules): the store hands every
        # Tx its own ``Store.memo``; a Tx made without a store gets an empty one (nothing kept, nothing wrong).
        self.memo: dict[str, Any] = {}

    @abc.abstractmethod
    def exclusive(self, name: str) -> None:
        """Let one transaction at a time past this point for ``name`` until it ends (a check-then-insert that
        several replicas may run at once)."""

    # intents and events
    @abc.abstractmethod
    def get_intent(self, intent_id: str) -> Row | None: ...

    def will_read_intents(self, intent_ids: list[str]) -> None:
        """The operation is about to read these intents one after the other: a store whose reads are round trips
        may fetch them together (PostgreSQL). Nothing to do where a read costs no more alone."""
        return None

    @abc.abstractmethod
    def insert_intent(self, row: Row) -> None: ...

    @abc.abstractmethod
    def update_intent(self, intent_id: str, fields: Row) -> None: ...

    @abc.abstractmethod
    def insert_event(self, intent_id: str, seq: int, data: str) -> None: ...

    @abc.abstractmethod
    def append_feed(self, address: str, intent_id: str, attempt: int, at: str) -> int:
        """Put the intent on ``address``'s feed; returns the new per-agent cursor."""

    @abc.abstractmethod
    def due_intents(self, now: float, limit: int) -> list[str]: ...

    @abc.abstractmethod
    def intents_for_cleanup(self, created_before: str, statuses: list[str], limit: int,
                            workspace: Pair = (None, None)) -> list[Row]:
        """Intents of one workspace (``scope.pair``) in ``statuses`` created before ``created_before``."""

    # idempotency
    @abc.abstractmethod
    def idem_get(self, scope: str, key: str) -> Row | None:
        """The row of an earlier call: ``body_hash`` and ``response``, the JSON of its result."""

    @abc.abstractmethod
    def idem_put(self, scope: str, key: str, body_hash: str, response: str, created_ts: float) -> None: ...

    @abc.abstractmethod
    def idem_expire(self, before_ts: float) -> int: ...

    # principals
    @abc.abstractmethod
    def get_service_account(self, sa_id: str) -> Row | None: ...

    @abc.abstractmethod
    def active_service_account_by_address(self, address: str) -> Row | None: ...

    @abc.abstractmethod
    def insert_service_account(self, row: Row) -> None: ...

    @abc.abstractmethod
    def update_service_account(self, sa_id: str, fields: Row) -> None: ...

    @abc.abstractmethod
    def get_key(self, key_id: str) -> Row | None: ...

    @abc.abstractmethod
    def insert_key(self, row: Row) -> None: ...

    @abc.abstractmethod
    def update_keys(self, fields: Row, *, key_id: str | None = None, sa_id: str | None = None) -> None: ...

    @abc.abstractmethod
    def keys_by_lookup(self, lookups: list[str]) -> list[Row]: ...

    # human login: login intents (email + code), actors, sessions, session tokens
    @abc.abstractmethod
    def open_login_intents(self, email: str, now: float, max_tries: int) -> list[Row]:
        """Login intents of ``email`` that are neither used, expired nor out of tries, oldest first."""

    @abc.abstractmethod
    def insert_login_intent(self, row: Row) -> None: ...

    @abc.abstractmethod
    def get_login_intent(self, intent_id: str) -> Row | None: ...

    @abc.abstractmethod
    def update_login_intent(self, intent_id: str, fields: Row) -> None: ...

    @abc.abstractmethod
    def actor_by_email(self, email: str) -> Row | None: ...

    @abc.abstractmethod
    def insert_actor(self, row: Row) -> None: ...

    @abc.abstractmethod
    def insert_session(self, row: Row) -> None: ...

    @abc.abstractmethod
    def get_session(self, session_id: str) -> Row | None: ...

    @abc.abstractmethod
    def update_session(self, session_id: str, fields: Row) -> None:
        """Also marks ``notes.keys_changed`` (a revoked session must stop working at once)."""

    @abc.abstractmethod
    def insert_session_token(self, row: Row) -> None: ...

    @abc.abstractmethod
    def get_session_token(self, token_id: str) -> Row | None: ...

    @abc.abstractmethod
    def update_session_token(self, token_id: str, fields: Row) -> None: ...

    @abc.abstractmethod
    def prune_auth(self, before_ts: float) -> int:
        """Forget login intents and sessions (with their tokens) that ended before ``before_ts``."""

    # workflows
    @abc.abstractmethod
    def insert_workflow(self, row: Row) -> None: ...

    @abc.abstractmethod
    def get_workflow(self, workflow_id: str) -> Row | None: ...

    @abc.abstractmethod
    def update_workflow(self, workflow_id: str, fields: Row) -> None: ...

    # settings
    @abc.abstractmethod
    def get_meta(self, key: str) -> str | None: ...

    @abc.abstractmethod
    def set_meta(self, key: str, value: str) -> None: ...

    # outbound: webhook subscriptions and events, deliveries, the http binding
    @abc.abstractmethod
    def http_binding(self, address: str) -> Row | None:
        """The active service account at ``address`` if its delivery_mode is http (callback_url, delivery_secret)."""

    @abc.abstractmethod
    def insert_outbound(self, row: Row) -> None: ...

    @abc.abstractmethod
    def get_outbound(self, delivery_id: str) -> Row | None: ...

    @abc.abstractmethod
    def update_outbound(self, delivery_id: str, fields: Row) -> None: ...

    @abc.abstractmethod
    def claim_outbound(self, now: float, lease_until_ts: float, limit: int) -> list[Row]:
        """Lease pending deliveries due at ``now`` until ``lease_until_ts``; returns the leased rows."""

    @abc.abstractmethod
    def delivery_counts(self, event_id: str) -> dict[str, int]:
        """status -> number of deliveries of a webhook event."""

    @abc.abstractmethod
    def outbound_by_idempotency(self, owner_agent: str, idempotency_key: str) -> Row | None:
        """The delivery submitted for ``owner_agent`` with this idempotency key, if any."""

    # the audit log
    @abc.abstractmethod
    def insert_audit_event(self, row: Row) -> None: ...

    @abc.abstractmethod
    def insert_subscription(self, row: Row) -> None: ...

    @abc.abstractmethod
    def get_subscription(self, subscription_id: str) -> Row | None: ...

    @abc.abstractmethod
    def update_subscription(self, subscription_id: str, fields: Row) -> None: ...

    @abc.abstractmethod
    def live_subscriptions(self, owner_agent: str) -> list[Row]: ...

    @abc.abstractmethod
    def insert_webhook_event(self, row: Row) -> None: ...

    @abc.abstractmethod
    def get_webhook_event(self, event_id: str) -> Row | None: ...

    @abc.abstractmethod
    def update_webhook_event(self, event_id: str, fields: Row) -> None: ...
    # inbox
    @abc.abstractmethod
    def inbox_thread(self, thread_id: str) -> Row | None:
        """The thread row, read to be changed in this transaction (a PostgreSQL store locks it)."""

    @abc.abstractmethod
    def insert_inbox_thread(self, row: Row) -> None: ...

    @abc.abstractmethod
    def update_inbox_thread(self, thread_id: str, fields: Row) -> None: ...

    @abc.abstractmethod
    def inbox_entry(self, owner_agent: str, thread_id: str) -> Row | None: ...

    @abc.abstractmethod
    def inbox_entries_of(self, thread_id: str) -> list[Row]:
        """Every owner's entry of the thread (the reply_to owner first, then delegates)."""

    @abc.abstractmethod
    def insert_inbox_entry(self, row: Row) -> None: ...

    @abc.abstractmethod
    def update_inbox_entry(self, owner_agent: str, thread_id: str, fields: Row) -> None: ...

    @abc.abstractmethod
    def next_inbox_seq(self, owner_agent: str) -> int:
        """The owner's next change number (dense, starting at 1; its order is the commit order per owner)."""
    # media uploads (store/media_sql.py)
    @abc.abstractmethod
    def get_media_upload(self, upload_id: str) -> Row | None:
        """The upload, read to be changed in this transaction (a PostgreSQL store locks it)."""

    @abc.abstractmethod
    def insert_media_upload(self, row: Row) -> None: ...

    @abc.abstractmethod
    def update_media_upload(self, upload_id: str, fields: Row) -> None: ...

    @abc.abstractmethod
    def expired_media_uploads(self, now: float, limit: int) -> list[str]:
        """Ids of pending uploads whose upload URL ran out by ``now``."""

    @abc.abstractmethod
    def insert_media_part(self, row: Row) -> None: ...

    @abc.abstractmethod
    def get_media_part(self, part_id: str) -> Row | None: ...

    @abc.abstractmethod
    def media_parts_of(self, upload_id: str) -> list[Row]: ...

    @abc.abstractmethod
    def set_media_part_state(self, part_ids: list[str], state: str) -> None: ...

    @abc.abstractmethod
    def dead_media_parts(self, limit: int) -> list[str]: ...

    @abc.abstractmethod
    def delete_media_parts(self, part_ids: list[str]) -> None: ...

    @abc.abstractmethod
    def grant_media(self, upload_id: str, address: str, intent_id: str) -> None:
        """``address`` may read the upload (an intent attached it); a second grant changes nothing."""

    @abc.abstractmethod
    def link_media_thread(self, upload_id: str, thread_id: str) -> None:
        """Every owner holding the thread may read the upload (a message in it attached it)."""

    @abc.abstractmethod
    def media_readable(self, upload_id: str, address: str) -> bool:
        """Whether a grant or a thread link lets ``address`` read the upload (owners and members aside)."""

    @abc.abstractmethod
    def insert_media_chunk(self, part_id: str, n: int, data: bytes) -> None:
        """PostgreSQL only: chunk ``n`` of a part's bytes."""

    @abc.abstractmethod
    def delete_media_chunks(self, part_id: str) -> None:
        """PostgreSQL only."""

    # task links: the task-mail outbox and single-use answer links (store/task_links_sql.py)
    @abc.abstractmethod
    def insert_task_mail(self, row: Row) -> None: ...

    @abc.abstractmethod
    def get_task_mail(self, mail_id: str) -> Row | None: ...

    @abc.abstractmethod
    def claim_task_mail(self, mail_id: str, now: float, lease_until: float) -> bool:
        """Lease a pending, due mail to this sender; False when it is not due (another sender has it)."""

    @abc.abstractmethod
    def update_task_mail(self, mail_id: str, fields: Row) -> None: ...

    @abc.abstractmethod
    def insert_task_link(self, row: Row) -> None: ...

    @abc.abstractmethod
    def task_link_by_hash(self, token_hash: str) -> Row | None: ...

    @abc.abstractmethod
    def update_task_link(self, link_id: str, fields: Row) -> None: ...

    # dashboard: its sessions (store/ui_sql.py)
    @abc.abstractmethod
    def insert_ui_session(self, row: Row) -> None: ...

    @abc.abstractmethod
    def revoke_ui_session(self, session_id: str, now: float) -> bool:
        """Mark the session revoked; False when it was already."""

    @abc.abstractmethod
    def prune_ui_sessions(self, before_ts: float) -> int: ...

    @abc.abstractmethod
    def select_ui_workspace(self, session_id: str, org_id: str | None, workspace_id: str | None) -> None:
        """The workspace the dashboard session acts in (None, None: the runtime's default one)."""

    # users and invites (store/users_sql.py)
    @abc.abstractmethod
    def user_by(self, column: str, value: str) -> Row | None:
        """The user whose ``column`` (``user_id``, ``owner_agent``, ``nick`` or ``holder``) is ``value``, read to
        be changed in this transaction (a PostgreSQL store locks it)."""

    @abc.abstractmethod
    def insert_user(self, row: Row) -> None: ...

    @abc.abstractmethod
    def update_user(self, user_id: str, fields: Row) -> None: ...

    @abc.abstractmethod
    def insert_invite(self, row: Row) -> None: ...

    @abc.abstractmethod
    def invite_by(self, column: str, value: str) -> Row | None:
        """The invite whose ``column`` (``invite_id`` or ``token_hash``) is ``value``, locked as ``user_by``."""

    @abc.abstractmethod
    def update_invite(self, invite_id: str, fields: Row) -> None: ...
    # the schema registry (store/schemas_sql.py); owner_key '' is the workspace's schema
    @abc.abstractmethod
    def get_schema_record(self, semantic_type: str, owner_key: str) -> Row | None: ...

    @abc.abstractmethod
    def insert_schema_record(self, row: Row) -> None: ...

    @abc.abstractmethod
    def update_schema_record(self, semantic_type: str, owner_key: str, fields: Row) -> None: ...

    @abc.abstractmethod
    def active_schema_heads(self, semantic_type: str, owner_keys: list[str]) -> list[Row]:
        """The active schemas of ``semantic_type`` owned by any of ``owner_keys`` (no schema_json)."""

    # schedules (store/schedules_sql.py)
    @abc.abstractmethod
    def insert_schedule(self, row: Row) -> None: ...

    @abc.abstractmethod
    def get_schedule(self, schedule_id: str) -> Row | None:
        """The schedule, read to be changed in this transaction (a PostgreSQL store locks it)."""

    @abc.abstractmethod
    def claim_due_schedule(self, schedule_id: str, now: float) -> Row | None:
        """The schedule if it is due at ``now`` and no other transaction holds it (PostgreSQL: SKIP LOCKED)."""

    @abc.abstractmethod
    def update_schedule(self, schedule_id: str, fields: Row) -> None: ...

    @abc.abstractmethod
    def delete_schedule(self, schedule_id: str) -> None: ...

    # principals, aliases, routing endpoints, transport bindings, access requests (store/principals_sql.py,
    # routing_sql.py, access_requests_sql.py); every read names the org and workspace
    @abc.abstractmethod
    def insert_principal(self, row: Row) -> None: ...

    @abc.abstractmethod
    def get_principal(self, org: str, workspace: str, principal_id: str) -> Row | None: ...

    @abc.abstractmethod
    def principal_by_address(self, org: str, workspace: str, address: str) -> Row | None: ...

    @abc.abstractmethod
    def insert_alias(self, row: Row) -> None: ...

    @abc.abstractmethod
    def get_alias(self, org: str, workspace: str, alias_id: str) -> Row | None:
        """The alias, read to be changed in this transaction (a PostgreSQL store locks it)."""

    @abc.abstractmethod
    def active_alias(self, org: str, workspace: str, alias_key: str) -> Row | None: ...

    @abc.abstractmethod
    def update_alias(self, alias_id: str, fields: Row) -> None: ...

    @abc.abstractmethod
    def insert_route(self, row: Row) -> None: ...

    @abc.abstractmethod
    def get_route(self, org: str, workspace: str, route_id: str) -> Row | None: ...

    @abc.abstractmethod
    def update_route(self, route_id: str, fields: Row) -> None: ...

    @abc.abstractmethod
    def delete_route(self, route_id: str) -> None: ...

    @abc.abstractmethod
    def insert_binding(self, row: Row) -> None: ...

    @abc.abstractmethod
    def get_binding(self, org: str, workspace: str, binding_id: str) -> Row | None: ...

    @abc.abstractmethod
    def binding_for(self, org: str, workspace: str, address: str, transport_type: str) -> Row | None: ...

    @abc.abstractmethod
    def update_binding(self, binding_id: str, fields: Row) -> None: ...

    @abc.abstractmethod
    def delete_binding(self, binding_id: str) -> None: ...

    @abc.abstractmethod
    def insert_access_request(self, row: Row) -> None: ...

    @abc.abstractmethod
    def get_access_request(self, org: str, workspace: str, access_request_id: str) -> Row | None: ...

    @abc.abstractmethod
    def update_access_request(self, access_request_id: str, fields: Row) -> None: ...

    @abc.abstractmethod
    def insert_access_grant(self, row: Row) -> None: ...

    # sender policies (store/policies_sql.py): kind agent_send | org_receive | agent_receive, subject an address
    @abc.abstractmethod
    def get_sender_policy(self, org_id: str, workspace_id: str, kind: str, subject: str) -> Row | None:
        """The policy, read to be changed in this transaction (a PostgreSQL store locks it)."""

    @abc.abstractmethod
    def insert_sender_policy(self, row: Row) -> None: ...

    @abc.abstractmethod
    def update_sender_policy(self, org_id: str, workspace_id: str, kind: str, subject: str, fields: Row) -> None: ...

    @abc.abstractmethod
    def sender_policy_entries(self, org_id: str, workspace_id: str, kind: str, subject: str) -> list[Row]: ...

    @abc.abstractmethod
    def insert_sender_policy_entry(self, row: Row) -> None: ...

    @abc.abstractmethod
    def delete_sender_policy_entry(self, org_id: str, workspace_id: str, kind: str, subject: str,
                                   entry_id: str) -> bool:
        """False when the policy has no such entry."""

    @abc.abstractmethod
    def sender_rules(self, org_id: str, workspace_ids: list[str]) -> tuple[list[Row], list[Row]]:
        """(policies, entries) of the org in any of ``workspace_ids``: kind, subject and policy_type; kind,
        subject, entry_id and sender_pattern."""

    # the agent mesh (store/mesh_sql.py); scope: (org_id, workspace_id)
    @abc.abstractmethod
    def mesh_heartbeat(self, scope: tuple[str, str], address: str, now: float, at: str,
                       metrics: str | None) -> Row:
        """One UPSERT: the agent's last heartbeat (and metrics, if given); returns its row."""

    @abc.abstractmethod
    def mesh_delivery_failure(self, scope: tuple[str, str], address: str, now: float, at: str,
                              window: float) -> Row:
        """Count a delivery failure in the agent's current window (a new one after ``window`` seconds)."""

    @abc.abstractmethod
    def mesh_agent(self, scope: tuple[str, str], address: str) -> Row | None:
        """The agent's row, read to be changed in this transaction (a PostgreSQL store locks it)."""

    @abc.abstractmethod
    def mesh_update(self, scope: tuple[str, str], address: str, fields: Row, at: str) -> Row: ...

    @abc.abstractmethod
    def mesh_set_health(self, scope: tuple[str, str], address: str, was: str, health: str, at: str) -> bool:
        """Record ``health`` if the row still has ``was``; whether it did."""

    @abc.abstractmethod
    def mesh_killed(self, scope: tuple[str, str], address: str) -> bool: ...

    @abc.abstractmethod
    def insert_mesh_event(self, row: Row) -> None: ...

    @abc.abstractmethod
    def prune_mesh_events(self, before_id: str) -> int:
        """Drop the mesh events with an id below ``before_id`` (older: UUIDv7); how many."""

    @abc.abstractmethod
    def release_held_outbound(self, owner_agent: str, now: float) -> int:
        """Pending deliveries of ``owner_agent`` held while it was killed become due at ``now``."""

    # quotas and usage (store/quotas_sql.py)
    @abc.abstractmethod
    def get_quota_policy(self, org_id: str, workspace_id: str) -> Row | None:
        """The workspace's policy row, locked until the transaction ends (PostgreSQL)."""

    @abc.abstractmethod
    def put_quota_policy(self, row: Row) -> None: ...

    @abc.abstractmethod
    def usage_value(self, org_id: str, workspace_id: str, counter: str, period: str) -> int: ...

    @abc.abstractmethod
    def take_usage(self, org_id: str, workspace_id: str, counter: str, period: str, n: int,
                   limit: int | None) -> int | None:
        """Add ``n`` if the counter stays within ``limit``: its new value, else None (nothing added)."""

    @abc.abstractmethod
    def add_usage(self, org_id: str, workspace_id: str, counter: str, period: str, n: int,
                  how: str = "sum") -> None: ...

    @abc.abstractmethod
    def add_usages(self, org_id: str, workspace_id: str, counts: list[tuple[str, str, int]],
                   how: str = "sum") -> None:
        """``add_usage`` of each (counter, period, n), in as few statements as the store can (a flush's)."""

    @abc.abstractmethod
    def set_usage(self, org_id: str, workspace_id: str, counter: str, period: str, n: int) -> None: ...

    @abc.abstractmethod
    def has_usage(self, org_id: str, workspace_id: str, counter: str, period: str) -> bool: ...

    @abc.abstractmethod
    def minute_peaks(self, org_id: str, workspace_id: str, counter: str, before: str) -> list[Row]: ...

    @abc.abstractmethod
    def minute_workspaces(self, counter: str, before: str) -> list[tuple[str, str]]: ...

    @abc.abstractmethod
    def drop_minutes(self, org_id: str, workspace_id: str, counter: str, before: str) -> None: ...

    @abc.abstractmethod
    def lazy_commit(self) -> None:
        """This transaction's commit need not wait for the disk (a counter a crash may lose)."""

    @abc.abstractmethod
    def stored_bytes(self, org_id: str | None, workspace_id: str | None) -> int: ...

    @abc.abstractmethod
    def intents_by_day(self, org_id: str | None, workspace_id: str | None, since: str, before: str) -> list[Row]: ...

    @abc.abstractmethod
    def count_service_accounts(self, org_id: str, workspace_id: str) -> int: ...

    @abc.abstractmethod
    def count_actors(self) -> int: ...

    @abc.abstractmethod
    def streams_elsewhere(self, org_id: str, workspace_id: str, replica_id: str, seen_after: float) -> int: ...

    @abc.abstractmethod
    def set_streams(self, org_id: str, workspace_id: str, replica_id: str, open_streams: int,
                    now: float) -> None: ...

    # organizations, workspaces, members (store/orgs_sql.py)
    @abc.abstractmethod
    def insert_organization(self, row: Row) -> None: ...

    @abc.abstractmethod
    def get_organization(self, org_id: str) -> Row | None:
        """The organization, read to be changed in this transaction (a PostgreSQL store locks it)."""

    @abc.abstractmethod
    def update_organization(self, org_id: str, fields: Row) -> None: ...

    @abc.abstractmethod
    def insert_workspace(self, row: Row) -> None: ...

    @abc.abstractmethod
    def get_workspace(self, org_id: str, workspace_id: str) -> Row | None: ...

    @abc.abstractmethod
    def workspace_named(self, org_id: str, name: str) -> Row | None: ...

    @abc.abstractmethod
    def find_workspace(self, workspace_id: str) -> Row | None:
        """The workspace of this id in whichever organization (ids are unique across them)."""

    @abc.abstractmethod
    def update_workspace(self, workspace_id: str, fields: Row) -> None: ...

    @abc.abstractmethod
    def insert_member(self, row: Row) -> None: ...

    @abc.abstractmethod
    def get_member(self, org_id: str, member_id: str) -> Row | None: ...

    @abc.abstractmethod
    def live_members(self, org_id: str) -> list[Row]: ...

    @abc.abstractmethod
    def update_member(self, member_id: str, fields: Row) -> None:
        """Also marks ``notes.keys_changed``: a person's selected workspace lapses with their membership there."""

    @abc.abstractmethod
    def actor_memberships(self, keys: tuple[str, ...], org_id: str) -> list[Row]: ...


class Reads(abc.ABC):
    """Everything the runtime reads outside a write operation: the API's and the dashboard's queries, the key
    lookups of authentication, and what the background services look at to know when to wake. Both stores
    implement it with the same SQL (``sql.SqlReads``); each read sees committed data only."""

    @abc.abstractmethod
    async def get_intent(self, intent_id: str) -> Row | None: ...

    @abc.abstractmethod
    async def list_events(self, intent_id: str, since: int, limit: int = 1000) -> list[str]:
        """Event JSON documents with seq > since, in order."""

    async def intent_events(self, intent_id: str, since: int, limit: int) -> tuple[Row | None, list[str]]:
        """The intent and its events after ``since`` (``list_events``) as of one moment: where an intent's stream
        starts."""
        return await self.get_intent(intent_id), await self.list_events(intent_id, since, limit)

    @abc.abstractmethod
    async def list_intents(
        self, *, statuses: list[str] | None, agent: str | None, limit: int, before: str | None = None,
        intent_type: str | None = None, scope: str | None = None, created_after: str | None = None,
        created_before: str | None = None, id_prefix: str | None = None,
        workspace: Pair = (None, None),
    ) -> list[Row]:
        """Intents of one ``workspace`` (``scope.pair``: NULLs for the runtime's default one) newest first.
        ``agent`` and ``scope`` (an agent key's own address) each keep those to or from that address;
        ``id_prefix`` matches the start of the id."""

    @abc.abstractmethod
    async def feed_entries(self, address: str, since: int, limit: int) -> list[Row]:
        """Feed rows with cursor > since joined with their intent (only the newest attempt)."""

    @abc.abstractmethod
    async def next_wake(self) -> float | None: ...

    @abc.abstractmethod
    async def keys_by_lookup(self, lookups: list[str]) -> list[Row]: ...

    @abc.abstractmethod
    async def get_service_account(self, sa_id: str) -> Row | None: ...

    @abc.abstractmethod
    async def list_service_accounts(
        self, org_id: str, workspace_id: str, *, include_deleted: bool = False
    ) -> list[Row]:
        """The service accounts of one workspace, oldest first."""

    @abc.abstractmethod
    async def list_keys(self, sa_id: str) -> list[Row]: ...

    @abc.abstractmethod
    async def session_token(self, token_id: str) -> Row | None:
        """A session token with its session (``session_*`` columns, and ``org_id`` / ``workspace_id``: the workspace
        selected for it, NULL for the default one) and the actor's email and id."""

    @abc.abstractmethod
    async def list_sessions(self, actor_id: str | None, *, include_revoked: bool) -> list[Row]:
        """Sessions of one actor (all actors with None), newest first, with the actor's email."""

    @abc.abstractmethod
    async def get_workflow(self, workflow_id: str) -> Row | None: ...

    @abc.abstractmethod
    async def get_meta(self, key: str) -> str | None: ...

    # outbound
    @abc.abstractmethod
    async def list_subscriptions(self, owner_agent: str | None, workspace: Pair = (None, None)) -> list[Row]:
        """The subscriptions of one workspace (``scope.pair``), of ``owner_agent`` if given."""

    @abc.abstractmethod
    async def get_subscription(self, subscription_id: str) -> Row | None: ...

    @abc.abstractmethod
    async def get_webhook_event(self, event_id: str) -> Row | None: ...

    @abc.abstractmethod
    async def delivery_counts(self, event_id: str) -> dict[str, int]: ...

    @abc.abstractmethod
    async def list_deliveries(self, filters: dict[str, str], limit: int, workspace: Pair = (None, None)) -> list[Row]:
        """Deliveries of one workspace (``scope.pair``) newest first, filtered by owner_agent, subscription_id,
        event_id, intent_id, status, kind."""

    @abc.abstractmethod
    async def next_outbound_due(self) -> float | None:
        """When the earliest pending delivery may be taken (its next try, or the end of its lease)."""

    @abc.abstractmethod
    async def find_deliveries(self, *, delivery_id: str | None = None, owner_agent: str | None = None,
                              status: str | None = None, limit: int = 1, workspace: Pair = (None, None)) -> list[Row]:
        """Deliveries of one workspace (``scope.pair``) newest first with their webhook event's payload
        (``event_payload``); ``status`` is one of AXME's delivery statuses (``engine.outbound.SPEC_STATUSES``)."""

    # the audit log
    @abc.abstractmethod
    async def list_audit_events(self, org_id: str | None = None, workspace_id: str | None = None, *,
                                about: str | None, owner_agent: str | None, action_prefix: str | None,
                                before: str | None, limit: int) -> list[Row]:
        """The events of one workspace (None: the default one) newest first; ``about``: only events whose actor
        or owner_agent it is."""
    # inbox
    @abc.abstractmethod
    async def list_inbox(self, owner_agent: str, statuses: list[str] | None, limit: int) -> list[Row]:
        """The owner's threads (thread columns with the entry's), most recently changed first."""

    @abc.abstractmethod
    async def get_inbox_thread(self, owner_agent: str, thread_id: str) -> Row | None: ...

    @abc.abstractmethod
    async def inbox_changes(self, owner_agent: str, after_seq: int, limit: int) -> list[Row]:
        """The owner's threads with ``change_seq > after_seq``, in change order."""
    # media uploads
    @abc.abstractmethod
    async def get_media_upload(self, upload_id: str) -> Row | None: ...

    @abc.abstractmethod
    async def media_readable(self, upload_id: str, address: str) -> bool: ...

    @abc.abstractmethod
    async def media_chunk(self, part_id: str, n: int) -> bytes | None:
        """PostgreSQL only: chunk ``n`` of a part's bytes (None past the last)."""

    # task links
    @abc.abstractmethod
    async def due_task_mail(self, now: float, limit: int) -> list[str]:
        """Ids of the task mails a sender should take now, oldest due first."""

    @abc.abstractmethod
    async def next_task_mail_due(self) -> float | None: ...

    @abc.abstractmethod
    async def task_link(self, token_hash: str) -> Row | None: ...

    # dashboard
    @abc.abstractmethod
    async def ui_session(self, session_id: str) -> Row | None:
        """The session with the API key (``key_*``) or the person's login session (``actor_*``) it stands for."""

    @abc.abstractmethod
    async def intent_counts(self, scope: str | None, workspace: Pair = (None, None)) -> dict[str, int]:
        """status -> number of one workspace's intents (``scope.pair``), an agent key's own with ``scope``."""

    @abc.abstractmethod
    async def agent_intent_stats(self, workspace: Pair = (None, None)) -> list[Row]:
        """Rows (address, status, n, last_at, redelivered) over one workspace's intents grouped by target and
        status."""

    @abc.abstractmethod
    async def ui_workflows(self, scope: str | None, limit: int, workspace: Pair = (None, None)) -> list[Row]: ...

    # users and invites
    @abc.abstractmethod
    async def read_user(self, column: str, value: str) -> Row | None:
        """The user whose ``column`` (``owner_agent``, ``nick`` or ``holder``) is ``value``."""

    @abc.abstractmethod
    async def read_invite(self, token_hash: str) -> Row | None: ...
    # the schema registry
    @abc.abstractmethod
    async def active_schema_index(self) -> list[Row]:
        """Every active schema's head (semantic_type, owner_key, schema_hash, schema_ref, compatibility_mode)."""

    @abc.abstractmethod
    async def schema_records(self, semantic_type: str, owner_keys: list[str]) -> list[Row]:
        """The rows of ``semantic_type`` owned by any of ``owner_keys``, schema_json included."""

    # schedules
    @abc.abstractmethod
    async def list_schedules(self, org_id: str | None = None, workspace_id: str | None = None, *,
                             before: str | None, limit: int) -> list[Row]:
        """The schedules of one workspace (None: the default one), newest first; ``before``: the previous page's
        last schedule id."""

    @abc.abstractmethod
    async def get_schedule(self, schedule_id: str) -> Row | None: ...

    @abc.abstractmethod
    async def due_schedules(self, now: float, limit: int) -> list[str]:
        """Ids of the schedules whose next occurrence is due at ``now``, earliest first."""

    @abc.abstractmethod
    async def next_schedule_fire(self) -> float | None:
        """The earliest next occurrence of any active schedule (the scheduler sleeps until then at most)."""

    # principals, aliases, routing endpoints, transport bindings, access requests
    @abc.abstractmethod
    async def get_principal(self, org: str, workspace: str, principal_id: str) -> Row | None: ...

    @abc.abstractmethod
    async def principal_by_address(self, org: str, workspace: str, address: str) -> Row | None: ...

    @abc.abstractmethod
    async def active_service_account_at(self, address: str) -> Row | None: ...

    @abc.abstractmethod
    async def get_alias(self, org: str, workspace: str, alias_id: str) -> Row | None: ...

    @abc.abstractmethod
    async def active_alias(self, org: str, workspace: str, alias_key: str) -> Row | None: ...

    @abc.abstractmethod
    async def active_alias_index(self, org: str, workspace: str) -> list[Row]:
        """Every active alias: ``alias_id``, ``alias_key``, ``alias``, ``address``."""

    @abc.abstractmethod
    async def list_aliases(self, org: str, workspace: str, *, address: str | None, status: str | None,
                           limit: int) -> list[Row]: ...

    @abc.abstractmethod
    async def list_routes(self, org: str, workspace: str, *, address: str | None, limit: int) -> list[Row]: ...

    @abc.abstractmethod
    async def get_route(self, org: str, workspace: str, route_id: str) -> Row | None: ...

    @abc.abstractmethod
    async def list_bindings(self, org: str, workspace: str, *, address: str | None, limit: int) -> list[Row]: ...

    @abc.abstractmethod
    async def delivery_targets(self, address: str) -> list[Row]:
        """Where ``address``'s intents could be POSTed, best first (the first is where they go)."""

    @abc.abstractmethod
    async def list_access_requests(self, org: str, workspace: str, *, created_by: str | None,
                                   limit: int) -> list[Row]: ...

    @abc.abstractmethod
    async def get_access_request(self, org: str, workspace: str, access_request_id: str) -> Row | None: ...

    @abc.abstractmethod
    async def access_grants_anywhere(self, grant_type: str, subject: str) -> list[Row]:
        """Grants in force of one type to one subject, whichever workspace approved them."""

    @abc.abstractmethod
    async def access_grants(self, org: str, workspace: str, grant_type: str, subject: str | None = None) -> list[Row]:
        """Grants in force that approved access requests made (engine/access_requests.py says what each means)."""

    # sender policies
    @abc.abstractmethod
    async def read_sender_policy(self, org_id: str, workspace_id: str, kind: str,
                                 subject: str) -> tuple[Row | None, list[Row]]:
        """The policy's row (None: never set) and its entries, oldest first."""

    # the agent mesh; scope: (org_id, workspace_id)
    @abc.abstractmethod
    async def mesh_killed_addresses(self, scope: tuple[str, str] | None) -> list[str]: ...

    @abc.abstractmethod
    async def mesh_agents(self, scope: tuple[str, str] | None) -> list[Row]: ...

    @abc.abstractmethod
    async def mesh_agent_row(self, scope: tuple[str, str], address: str) -> Row | None: ...

    @abc.abstractmethod
    async def mesh_events(self, scope: tuple[str, str], *, address: str | None, event_type: str | None,
                          before: str | None, limit: int) -> list[Row]:
        """Newest first; ``before``: the previous page's last event id."""

    # quotas and usage
    @abc.abstractmethod
    async def read_quota_policy(self, org_id: str, workspace_id: str) -> Row | None: ...

    @abc.abstractmethod
    async def read_quota_policies(self) -> list[Row]: ...

    @abc.abstractmethod
    async def usage_rows(self, org_id: str, workspace_id: str, counters: list[str], since: str,
                         until: str) -> list[Row]: ...

    @abc.abstractmethod
    async def usage_counts(self, org_id: str, workspace_id: str, replica_id: str, seen_after: float) -> Row: ...

    @abc.abstractmethod
    async def service_account_days(self, org_id: str, workspace_id: str) -> list[Row]: ...

    @abc.abstractmethod
    async def actor_days(self) -> list[str]: ...

    # organizations, workspaces, members
    @abc.abstractmethod
    async def get_organization(self, org_id: str) -> Row | None: ...

    @abc.abstractmethod
    async def list_organizations(self) -> list[Row]: ...

    @abc.abstractmethod
    async def list_workspaces(self, org_id: str) -> list[Row]: ...

    @abc.abstractmethod
    async def get_workspace(self, org_id: str, workspace_id: str) -> Row | None: ...

    @abc.abstractmethod
    async def list_members(self, org_id: str, workspace_id: str | None) -> list[Row]: ...

    @abc.abstractmethod
    async def actor_memberships(self, keys: tuple[str, ...], org_id: str) -> list[Row]: ...

    @abc.abstractmethod
    async def actor_organizations(self, keys: tuple[str, ...]) -> list[Row]: ...


class Store(Reads):
    """A database behind the runtime: its reads (``Reads``), and writes as operations through ``write``."""

    kind = "abstract"
    location = ""

    on_commit: Callable[[Notes], None] | None = None
    limits: Any = None  # the quota limits each new transaction gets (``Tx.limits``); set by the runtime
    # SQL statements sent to the database (reads and writes, BEGIN/COMMIT/savepoints/notifications included) and
    # write transactions committed, since the store was made (GET /metrics: axme_store_statements_total and
    # axme_store_commits_total).
    statements = 0
    commits = 0
    # Called by the writer after each commit with (operations in the transaction, seconds it took); metrics.
    on_batch: Callable[[int, float], None] | None = None

    def _finish(self, outcomes: list[tuple[Any, bool, Any]], notes: Notes) -> None:
        """On the loop, after a batch committed or failed: answer each caller still waiting (a future with its
        result or exception), then hand the batch's notes to ``on_commit``, which wakes what it changed."""
        for fut, ok, value in outcomes:
            if fut.done():
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)
        if self.on_commit is not None:
            self.on_commit(notes)

    @functools.cached_property
    def memo(self) -> dict[str, Any]:
        """What operations keep in memory between this store's transactions (``Tx.memo``)."""
        return {}

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def write(self, op: Callable[[Tx], T]) -> T:
        """Run ``op`` in a transaction; return its result once the transaction is durable."""

    async def write_behind(self, op: Callable[[Tx], T]) -> T:
        """``write``, for an operation nobody waits on (a delivery's mark, ``Runtime.deliver_behind``): a store may
        hold it back a little for the writes that follow, to commit them together. ``hurry`` ends the wait."""
        return await self.write(op)

    def hurry(self) -> None:
        """Someone waits on what ``write_behind`` queued (a read of it): run it now."""

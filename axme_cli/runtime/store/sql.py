"""The SQL both backends share: one text per query, run on SQLite and on PostgreSQL.

Queries use ``?`` placeholders (the PostgreSQL connection adapter turns them into ``%s``), read columns by
name only, and stay inside what SQLite and PostgreSQL 15 both accept (``ON CONFLICT``, ``RETURNING``,
partial indexes). What differs between the backends is a class attribute here, set by the backend:

- ``LOCK``: appended to the reads of a row an operation is about to change. Empty on SQLite (one writer
  at a time); ``FOR UPDATE`` on PostgreSQL, so two replicas changing one intent take turns and its event
  ``seq`` stays dense.
- ``CLAIM``: appended to the query for due timers. ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so replicas
  firing timers at the same moment split the work instead of waiting for each other.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib import resources
from typing import Any, TypeVar

from axme_cli.runtime.store.access_requests_sql import AccessRequestsReadSql, AccessRequestsTxSql
from axme_cli.runtime.store.audit_sql import AuditReadSql, AuditTxSql
from axme_cli.runtime.store.base import Pair, Reads, Row, Tx
from axme_cli.runtime.store.inbox_sql import InboxReadSql, InboxTxSql
from axme_cli.runtime.store.media_sql import MediaReadSql, MediaTxSql
from axme_cli.runtime.store.mesh_sql import MeshReadSql, MeshTxSql
from axme_cli.runtime.store.multirow import insert_rows
from axme_cli.runtime.store.orgs_sql import OrgsReadSql, OrgsTxSql
from axme_cli.runtime.store.outbound_sql import OutboundReadSql, OutboundTxSql
from axme_cli.runtime.store.policies_sql import PoliciesReadSql, PoliciesTxSql
from axme_cli.runtime.store.principals_sql import PrincipalsReadSql, PrincipalsTxSql
from axme_cli.runtime.store.quotas_sql import QuotasReadSql, QuotasTxSql
from axme_cli.runtime.store.routing_sql import RoutingReadSql, RoutingTxSql
from axme_cli.runtime.store.schedules_sql import SchedulesReadSql, SchedulesTxSql
from axme_cli.runtime.store.schemas_sql import SchemasReadSql, SchemasTxSql
from axme_cli.runtime.store.scope_sql import pair_clause
from axme_cli.runtime.store.task_links_sql import TaskLinksReadSql, TaskLinksTxSql
from axme_cli.runtime.store.ui_sql import UiReadSql, UiTxSql
from axme_cli.runtime.store.users_sql import UsersReadSql, UsersTxSql

T = TypeVar("T")

INTENT_COLUMNS = (
    "intent_id",
    "intent_type",
    "correlation_id",
    "from_agent",
    "to_agent",
    "status",
    "waiting_reason",
    "last_seq",
    "delivery_attempt",
    "delivered_attempt",
    "max_delivery_attempts",
    "created_at",
    "updated_at",
    "deadline_ts",
    "redeliver_ts",
    "timer_ts",
    "wake_ts",
    "payload",
    "doc",
    "org_id",  # NULL: the runtime's default workspace (runtime/scope.py)
    "workspace_id",
)
WORKFLOW_COLUMNS = frozenset(
    {"workflow_id", "parent_intent_id", "scenario_id", "compiled", "state", "created_at", "updated_at"})
_INSERT_INTENT = (
    f"INSERT INTO intents ({', '.join(INTENT_COLUMNS)}) VALUES ({', '.join('?' for _ in INTENT_COLUMNS)})"
)


def write_events(conn: Any, values: list[Any]) -> None:
    """Insert events given flat (intent_id, seq, data, intent_id, ...), up to 64 rows a statement."""
    insert_rows(conn, "INSERT INTO events (intent_id, seq, data) VALUES", 3, values, 64)


@functools.lru_cache(maxsize=1024)
def _update_sql(table: str, id_column: str, *columns: str) -> str:
    """``UPDATE table SET c1 = ?, ... WHERE id_column = ?``: a step updates intents with a handful of column
    sets, each made into text once (column names come from the code, never from a request)."""
    return f"UPDATE {table} SET {', '.join(f'{c} = ?' for c in columns)} WHERE {id_column} = ?"


@functools.lru_cache(maxsize=1024)
def _insert_sql(table: str, *columns: str) -> str:
    """``INSERT INTO table (c1, ...) VALUES (?, ...)``, made into text once per column list (as ``_update_sql``)."""
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({_marks(columns)})"


def _marks(values: list[Any] | tuple[Any, ...]) -> str:
    return ", ".join("?" for _ in values)


class SqlTx(OutboundTxSql, AuditTxSql, InboxTxSql, MediaTxSql, TaskLinksTxSql, UiTxSql, UsersTxSql, SchemasTxSql,
            SchedulesTxSql, PrincipalsTxSql, RoutingTxSql, AccessRequestsTxSql, PoliciesTxSql, MeshTxSql,
            QuotasTxSql, OrgsTxSql, Tx):
    """A write transaction on a DB-API-like connection whose ``execute(sql, params)`` takes ``?``."""

    LOCK = ""
    CLAIM = ""

    def __init__(self, conn: Any) -> None:
        super().__init__()
        self._c = conn
        self._events: list[Any] = []  # intent_id, seq, data, intent_id, ...: written by finish() in one INSERT

    def finish(self) -> None:
        """Write what the operation left buffered: its events, in one statement (a step's are 2-4 rows, one round
        trip on PostgreSQL). Both stores call this after the operation, inside its transaction, so a failure here
        fails the operation."""
        write_events(self._c, self._events)
        self._events = []

    def _one(self, sql: str, args: tuple[Any, ...]) -> Row | None:
        row = self._c.execute(sql, args).fetchone()
        return dict(row) if row is not None else None

    def exclusive(self, name: str) -> None:
        """Nothing to do with one writer at a time (SQLite); PostgreSQL takes an advisory lock."""

    def _all(self, sql: str, args: tuple[Any, ...] | list[Any]) -> list[Row]:
        return [dict(r) for r in self._c.execute(sql, args).fetchall()]

    def _insert(self, table: str, row: Row) -> None:
        self._c.execute(_insert_sql(table, *row), tuple(row.values()))

    def _update(self, table: str, id_column: str, id_value: str, fields: Row) -> None:
        self._c.execute(_update_sql(table, id_column, *fields), (*fields.values(), id_value))

    # intents and events
    def get_intent(self, intent_id: str) -> Row | None:
        return self._one("SELECT * FROM intents WHERE intent_id = ?" + self.LOCK, (intent_id,))

    def insert_intent(self, row: Row) -> None:
        self._c.execute(_INSERT_INTENT, tuple(row.get(c) for c in INTENT_COLUMNS))

    def update_intent(self, intent_id: str, fields: Row) -> None:
        self._update("intents", "intent_id", intent_id, fields)

    def insert_event(self, intent_id: str, seq: int, data: str) -> None:
        self._events += (intent_id, seq, data)
        self.notes.event(intent_id, seq, data)

    def append_feed(self, address: str, intent_id: str, attempt: int, at: str) -> int:
        # The upsert locks the head row until commit, so cursors of one address are dense in commit order.
        row = self._c.execute(
            "INSERT INTO feed_heads (address, last_cursor) VALUES (?, 1) ON CONFLICT (address) "
            "DO UPDATE SET last_cursor = feed_heads.last_cursor + 1 RETURNING last_cursor",
            (address,),
        ).fetchone()
        cursor = int(row["last_cursor"])
        self._c.execute(
            "INSERT INTO feed (address, cursor, intent_id, attempt, at) VALUES (?, ?, ?, ?, ?)",
            (address, cursor, intent_id, attempt, at),
        )
        return cursor

    def due_intents(self, now: float, limit: int) -> list[str]:
        rows = self._all(
            "SELECT intent_id FROM intents WHERE wake_ts IS NOT NULL AND wake_ts <= ? ORDER BY wake_ts LIMIT ?"
            + self.CLAIM,
            (now, limit),
        )
        return [r["intent_id"] for r in rows]

    def intents_for_cleanup(self, created_before: str, statuses: list[str], limit: int,
                            workspace: Pair = (None, None)) -> list[Row]:
        mine, args = pair_clause(*workspace)
        return self._all(
            f"SELECT * FROM intents WHERE status IN ({_marks(statuses)}) AND created_at < ? AND {mine} "
            "ORDER BY intent_id LIMIT ?",
            (*statuses, created_before, *args, limit),
        )

    # idempotency
    def idem_get(self, scope: str, key: str) -> Row | None:
        return self._one("SELECT * FROM idempotency WHERE scope = ? AND key = ?", (scope, key))

    def idem_put(self, scope: str, key: str, body_hash: str, response: str, created_ts: float) -> None:
        # status_code: 200 in rows from when the cache held HTTP answers; 0 since it holds results (read by no one,
        # kept so that existing databases need no migration)
        self._c.execute(
            "INSERT INTO idempotency (scope, key, body_hash, status_code, response, created_ts) "
            "VALUES (?, ?, ?, 0, ?, ?)",
            (scope, key, body_hash, response, created_ts),
        )

    def idem_expire(self, before_ts: float) -> int:
        return int(self._c.execute("DELETE FROM idempotency WHERE created_ts < ?", (before_ts,)).rowcount)

    # principals
    def get_service_account(self, sa_id: str) -> Row | None:
        return self._one("SELECT * FROM service_accounts WHERE service_account_id = ?" + self.LOCK, (sa_id,))

    def active_service_account_by_address(self, address: str) -> Row | None:
        return self._one("SELECT * FROM service_accounts WHERE address = ? AND status = 'active'", (address,))

    def insert_service_account(self, row: Row) -> None:
        self._insert("service_accounts", row)

    def update_service_account(self, sa_id: str, fields: Row) -> None:
        self._update("service_accounts", "service_account_id", sa_id, fields)

    def get_key(self, key_id: str) -> Row | None:
        return self._one("SELECT * FROM api_keys WHERE key_id = ?" + self.LOCK, (key_id,))

    def insert_key(self, row: Row) -> None:
        self._insert("api_keys", row)
        self.notes.keys_changed = True

    def update_keys(self, fields: Row, *, key_id: str | None = None, sa_id: str | None = None) -> None:
        cols = ", ".join(f"{k} = ?" for k in fields)
        if key_id is not None:
            self._c.execute(f"UPDATE api_keys SET {cols} WHERE key_id = ?", (*fields.values(), key_id))
        elif sa_id is not None:
            self._c.execute(
                f"UPDATE api_keys SET {cols} WHERE service_account_id = ? AND status = 'active'",
                (*fields.values(), sa_id),
            )
        self.notes.keys_changed = True

    def keys_by_lookup(self, lookups: list[str]) -> list[Row]:
        return self._all(f"SELECT * FROM api_keys WHERE lookup IN ({_marks(lookups)})", tuple(lookups))

    # human login
    def open_login_intents(self, email: str, now: float, max_tries: int) -> list[Row]:
        return self._all(
            "SELECT * FROM login_intents WHERE email = ? AND expires_ts > ? AND used_ts IS NULL AND tries < ? "
            "ORDER BY created_ts",
            (email, now, max_tries),
        )

    def insert_login_intent(self, row: Row) -> None:
        self._insert("login_intents", row)

    def get_login_intent(self, intent_id: str) -> Row | None:
        return self._one("SELECT * FROM login_intents WHERE intent_id = ?" + self.LOCK, (intent_id,))

    def update_login_intent(self, intent_id: str, fields: Row) -> None:
        self._update("login_intents", "intent_id", intent_id, fields)

    def actor_by_email(self, email: str) -> Row | None:
        return self._one("SELECT * FROM actors WHERE email = ?", (email,))

    def insert_actor(self, row: Row) -> None:
        self._insert("actors", row)

    def insert_session(self, row: Row) -> None:
        self._insert("sessions", row)

    def get_session(self, session_id: str) -> Row | None:
        return self._one("SELECT * FROM sessions WHERE session_id = ?" + self.LOCK, (session_id,))

    def update_session(self, session_id: str, fields: Row) -> None:
        self._update("sessions", "session_id", session_id, fields)
        self.notes.keys_changed = True

    def insert_session_token(self, row: Row) -> None:
        self._insert("session_tokens", row)

    def get_session_token(self, token_id: str) -> Row | None:
        return self._one("SELECT * FROM session_tokens WHERE token_id = ?" + self.LOCK, (token_id,))

    def update_session_token(self, token_id: str, fields: Row) -> None:
        self._update("session_tokens", "token_id", token_id, fields)

    def prune_auth(self, before_ts: float) -> int:
        n = int(self._c.execute("DELETE FROM login_intents WHERE expires_ts < ?", (before_ts,)).rowcount)
        n += int(
            self._c.execute(
                "DELETE FROM session_tokens WHERE expires_ts < ? OR session_id IN "
                "(SELECT session_id FROM sessions WHERE revoked_at IS NOT NULL OR expires_ts < ?)",
                (before_ts, before_ts),
            ).rowcount
        )
        n += int(self._c.execute("DELETE FROM sessions WHERE expires_ts < ?", (before_ts,)).rowcount)
        return n

    # workflows
    def insert_workflow(self, row: Row) -> None:
        self._insert("workflows", row)

    def get_workflow(self, workflow_id: str) -> Row | None:
        return self._one("SELECT * FROM workflows WHERE workflow_id = ?" + self.LOCK, (workflow_id,))

    def update_workflow(self, workflow_id: str, fields: Row) -> None:
        self._update("workflows", "workflow_id", workflow_id, fields)

    # settings
    def get_meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str) -> None:
        self._c.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


def _one(c: Any, sql: str, args: tuple[Any, ...] | list[Any]) -> Row | None:
    row = c.execute(sql, args).fetchone()
    return dict(row) if row is not None else None


def _all(c: Any, sql: str, args: tuple[Any, ...] | list[Any]) -> list[Row]:
    return [dict(r) for r in c.execute(sql, args).fetchall()]


class SqlReads(OutboundReadSql, AuditReadSql, InboxReadSql, MediaReadSql, TaskLinksReadSql, UiReadSql,
               UsersReadSql, SchemasReadSql, SchedulesReadSql, PrincipalsReadSql, RoutingReadSql,
               AccessRequestsReadSql, PoliciesReadSql, MeshReadSql, QuotasReadSql, OrgsReadSql, Reads):
    """The store's reads (``base.Reads``). A backend provides ``_read(fn)``, which runs ``fn(connection)``
    somewhere safe."""

    async def _read(self, fn: Callable[[Any], T]) -> T:
        raise NotImplementedError

    async def get_intent(self, intent_id: str) -> Row | None:
        return await self._read(lambda c: _one(c, "SELECT * FROM intents WHERE intent_id = ?", (intent_id,)))

    async def list_events(self, intent_id: str, since: int, limit: int = 1000) -> list[str]:
        rows = await self._read(
            lambda c: _all(
                c,
                "SELECT data FROM events WHERE intent_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (intent_id, since, limit),
            )
        )
        return [r["data"] for r in rows]

    async def list_intents(
        self, *, statuses: list[str] | None, agent: str | None, limit: int, before: str | None = None,
        intent_type: str | None = None, scope: str | None = None, created_after: str | None = None,
        created_before: str | None = None, id_prefix: str | None = None,
        workspace: Pair = (None, None),
    ) -> list[Row]:
        mine, args = pair_clause(*workspace)
        where = [mine]
        if statuses:
            where.append(f"status IN ({_marks(statuses)})")
            args.extend(statuses)
        if intent_type:
            where.append("intent_type = ?")
            args.append(intent_type)
        for address in (agent, scope):
            if address is not None:
                where.append("(to_agent = ? OR from_agent = ?)")
                args.extend([address, address])
        if created_after:
            where.append("created_at >= ?")
            args.append(created_after)
        if created_before:
            where.append("created_at < ?")
            args.append(created_before)
        if id_prefix:
            where.append("intent_id LIKE ?")
            args.append(id_prefix + "%")
        if before is not None:
            where.append("intent_id < ?")
            args.append(before)
        sql = "SELECT * FROM intents"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY intent_id DESC LIMIT ?"
        args.append(limit)
        return await self._read(lambda c: _all(c, sql, args))

    async def feed_entries(self, address: str, since: int, limit: int) -> list[Row]:
        return await self._read(
            lambda c: _all(
                c,
                "SELECT f.cursor, f.attempt, f.at AS fed_at, i.* FROM feed f "
                "JOIN intents i ON i.intent_id = f.intent_id "
                "WHERE f.address = ? AND f.cursor > ? AND f.attempt = i.delivery_attempt "
                "ORDER BY f.cursor LIMIT ?",
                (address, since, limit),
            )
        )

    async def next_wake(self) -> float | None:
        row = await self._read(lambda c: _one(c, "SELECT min(wake_ts) AS w FROM intents WHERE wake_ts IS NOT NULL", ()))
        return None if row is None or row["w"] is None else float(row["w"])

    async def keys_by_lookup(self, lookups: list[str]) -> list[Row]:
        return await self._read(
            lambda c: _all(c, f"SELECT * FROM api_keys WHERE lookup IN ({_marks(lookups)})", tuple(lookups))
        )

    async def get_service_account(self, sa_id: str) -> Row | None:
        return await self._read(
            lambda c: _one(c, "SELECT * FROM service_accounts WHERE service_account_id = ?", (sa_id,))
        )

    async def list_service_accounts(
        self, org_id: str, workspace_id: str, *, include_deleted: bool = False
    ) -> list[Row]:
        sql = "SELECT * FROM service_accounts WHERE org_id = ? AND workspace_id = ?"
        if not include_deleted:
            sql += " AND status != 'deleted'"
        return await self._read(lambda c: _all(c, sql + " ORDER BY created_at", (org_id, workspace_id)))

    async def list_keys(self, sa_id: str) -> list[Row]:
        return await self._read(
            lambda c: _all(c, "SELECT * FROM api_keys WHERE service_account_id = ? ORDER BY created_at", (sa_id,))
        )

    async def session_token(self, token_id: str) -> Row | None:
        return await self._read(
            lambda c: _one(
                c,
                "SELECT t.*, s.actor_id, s.revoked_at AS session_revoked_at, s.expires_ts AS session_expires_ts, "
                "s.org_id, s.workspace_id, "
                "a.email FROM session_tokens t JOIN sessions s ON s.session_id = t.session_id "
                "JOIN actors a ON a.actor_id = s.actor_id WHERE t.token_id = ?",
                (token_id,),
            )
        )

    async def list_sessions(self, actor_id: str | None, *, include_revoked: bool) -> list[Row]:
        sql = "SELECT s.*, a.email FROM sessions s JOIN actors a ON a.actor_id = s.actor_id"
        where: list[str] = []
        args: list[Any] = []
        if actor_id is not None:
            where.append("s.actor_id = ?")
            args.append(actor_id)
        if not include_revoked:
            where.append("s.revoked_at IS NULL")
        if where:
            sql += " WHERE " + " AND ".join(where)
        return await self._read(lambda c: _all(c, sql + " ORDER BY s.created_at DESC", args))

    async def get_workflow(self, workflow_id: str) -> Row | None:
        return await self._read(lambda c: _one(c, "SELECT * FROM workflows WHERE workflow_id = ?", (workflow_id,)))

    async def get_meta(self, key: str) -> str | None:
        row = await self._read(lambda c: _one(c, "SELECT value FROM meta WHERE key = ?", (key,)))
        return None if row is None else str(row["value"])


def load_migrations(dialect: str) -> list[tuple[int, str]]:
    """``(version, script)`` of every migration of ``dialect`` ("sqlite" or "postgres"), in order.

    Each dialect has its own folder, ``migrations/<dialect>/NNNN_name.sql``, with a file for every number: the
    same tables in each dialect's own types (PostgreSQL: BIGINT, DOUBLE PRECISION, no WITHOUT ROWID), so what a
    database runs is the text in the file."""
    folder = resources.files("axme_cli.runtime.store") / "migrations" / dialect
    scripts = [(int(entry.name[:4]), entry.read_text(encoding="utf-8")) for entry in folder.iterdir()
               if entry.name.endswith(".sql") and entry.name[:4].isdigit()]
    return sorted(scripts)


def split_sql(script: str) -> list[str]:
    """Split a migration file into statements (our SQL has no '--' or ';' inside literals)."""
    lines = [ln.split("--", 1)[0] for ln in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]

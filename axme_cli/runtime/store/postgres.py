"""PostgreSQL store: several runtime replicas on one database.

- Writes: group commit, as on SQLite. Operations are queued to one writer thread per replica, with a connection
  of its own; it takes everything queued (up to ``MAX_BATCH``) and runs the operations one after the other in one
  transaction, then answers the callers after it committed. A batch whose operations read only intents and
  workflows (a saga's) is at most two statements and two round trips whatever its size: the rows its operations
  read first (``_probe``), fetched outside any transaction and without locks, unless this replica's writer keeps
  them from its last batches (``_Rows``); then one statement for the writes it held back, its events, its feed
  rows and its notification (``_write_statement``, ``_END``), a transaction of its own, which first checks that
  every row read or kept without a lock is still at its version (its ``xmin``) and locks it (``_CHECK``). If one
  changed (another replica wrote it), the batch runs again with BEGIN and a locking read, its end sent with the
  COMMIT in pipeline mode. Rows an operation reads later are read
  ``FOR UPDATE`` (``SqlTx.LOCK``), after the check of what it used so far, so two replicas changing one intent take
  turns and its event ``seq`` stays dense. Reading an intent also reads its workflow parent and workflow row (a
  step's resume needs all three); rows read or written by the batch are kept for its other reads and their writes
  held back (``_Batch``), and agents' service accounts by address are kept for every batch (``_Accounts``). Writes
  nobody waits on (``write_behind``: delivery marks) alone in the queue wait up to ``BEHIND_HOLD`` for one that
  somebody does, and go with it.
  An operation that refuses before writing anything is answered alone; one that refuses after writing, or a
  database error, rolls the batch back and runs each operation in a transaction of its own (so each caller gets
  its own outcome). A deadlock, a serialization failure or a unique-key race (two replicas answering one
  idempotency key) rolls the batch back and runs it again (operations are pure functions of the transaction);
  after ``BATCH_TRIES``, each operation alone.
- Feed cursors: an agent's cursors must be dense in commit order. The feed head row of each address a batch feeds
  is bumped once, in the batch's last round trip (addresses in order, so batches of two replicas never deadlock on
  them), so it is locked only while the batch commits, not while its operations run.
- Timers are claimed with ``FOR UPDATE SKIP LOCKED`` (``SqlTx.CLAIM``) inside the transaction that fires
  them: the row lock is the lease. A replica that dies loses its connection, PostgreSQL rolls its
  transaction back and releases the rows, and the next replica whose scheduler looks takes them.
- Wake-ups across replicas: a batch that changed something also sends ``pg_notify('axme', ...)`` with its
  ``Notes`` (delivered only if it commits), the events and feed rows it wrote included, so that streams on other
  replicas send them without reading them back (``encode_notes``; what does not fit is left out and those streams
  read). One LISTEN connection per replica, on the event loop, turns other replicas' notifications into
  ``on_commit`` calls on this replica, which wake its streams and scheduler. If that connection drops, the replica
  reconnects and wakes everything once (it may have missed some).
- Reads run on the event loop, on a pool of async connections in autocommit mode (``_read``, ``_Replay``).
- An outage fails fast: a read waits at most ``POOL_TIMEOUT`` for a connection (``DOWN_TIMEOUT`` once one has
  failed, until one succeeds), a batch whose connection is lost is answered 503 ``storage_unavailable`` and the
  writer connects again for the next one (at most every ``DOWN_TIMEOUT`` while it fails); TCP keepalives and
  ``tcp_user_timeout`` bound a query on a connection whose peer vanished, so writes resume within about a second
  of the database coming back. A read that finds its pooled connection dead is tried once more.
- Migrations run under an advisory lock, so replicas starting together apply each one once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
import psycopg
import psycopg_pool
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from axme_cli.runtime.errors import BadRequest, StoreUnavailable
from axme_cli.runtime.store.base import Notes, Row, Store, Tx, drop_oldest
from axme_cli.runtime.store.quotas_sql import USAGE_ADD
from axme_cli.runtime.store.sql import INTENT_COLUMNS, WORKFLOW_COLUMNS, SqlReads, SqlTx, load_migrations, split_sql
from axme_cli.runtime.store.urls import redact

T = TypeVar("T")
log = logging.getLogger("axme.store")

CHANNEL = "axme"
MIGRATION_LOCK = 0x6178_6D65  # "axme": pg_advisory_lock key held while migrating
# The writer's end statement returns pg_current_xact_id(), new in PostgreSQL 13: an older server would fail every
# batch; it is refused at start instead, by name.
OLDEST_SERVER = 130000
MAX_TRIES = 8
MAX_BATCH = 256  # operations per write transaction
BATCH_TRIES = 3  # a batch that keeps conflicting runs its operations one transaction each (MAX_TRIES each)
_NOTIFY_LIMIT = 7000  # bytes per notification payload (PostgreSQL allows < 8000)
# What a stream sends of a feed row (api/agents.py): the part of it a notification carries to other replicas.
_FED_FIELDS = ("intent_id", "cursor", "attempt", "fed_at", "status", "delivered_attempt", "intent_type",
               "correlation_id", "from_agent", "to_agent", "max_delivery_attempts", "created_at", "payload")
_RETRY = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure, pg_errors.UniqueViolation,
          pg_errors.LockNotAvailable)
_DOWN = (psycopg.OperationalError, psycopg.InterfaceError, psycopg_pool.PoolTimeout)
POOL_TIMEOUT = 1.0  # seconds a request waits for a pooled connection before its 503
DOWN_TIMEOUT = 0.1  # the same while the database is known to be down (the last request found it so)
# How long a batch of writes nobody waits on (``write_behind``: delivery marks) waits for company. The agent's answer
# to the intent just sent usually comes within it: one batch and one commit instead of two, and the answer does not
# wait behind the marks' commit. A read of a marked intent ends the wait (``hurry``).
BEHIND_HOLD = 0.01
RECONNECT_TIMEOUT = 2.0  # a pool gives up a reconnect attempt after this; the next request starts a new one
# libpq settings unless the URL sets them: connect attempts, and the connection whose peer vanished without a
# word (a query waits at most tcp_user_timeout ms for its bytes to be acknowledged; an idle one is probed).
NETWORK_DEFAULTS = {"connect_timeout": "2", "keepalives": "1", "keepalives_idle": "5", "keepalives_interval": "1",
                    "keepalives_count": "3", "tcp_user_timeout": "2000"}


def server_too_old(version: int) -> str | None:
    """What is wrong with a server of ``server_version_num`` ``version``, or None."""
    if version >= OLDEST_SERVER:
        return None
    return f"PostgreSQL {version // 10000} is too old: axme server needs PostgreSQL 13 or newer"


@functools.lru_cache(maxsize=4096)
def _pg_sql(sql: str) -> bytes:
    return sql.replace("?", "%s").encode()


class _Ask(BaseException):  # noqa: N818 - not an error: a read asks for its next statement's answer
    def __init__(self, sql: bytes, params: tuple[Any, ...]) -> None:
        self.sql = sql
        self.params = params


class _Answer:
    """What a statement of a read answered, as its cursor would give it."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return self._rows

    def __iter__(self) -> Any:
        return iter(self._rows)


class _Replay:
    """A read's connection (``PostgresStore._read``): the answers of the statements it ran so far, in order; the
    next statement raises ``_Ask``, the store runs it and runs the read again."""

    __slots__ = ("_answers", "_at")

    def __init__(self, answers: list[tuple[list[Any], int]]) -> None:
        self._answers = answers
        self._at = 0

    def execute(self, sql: str, params: Any = ()) -> _Answer:
        if self._at < len(self._answers):
            rows, rowcount = self._answers[self._at]
            self._at += 1
            return _Answer(rows, rowcount)
        raise _Ask(_pg_sql(sql), tuple(params))


class _Conn:
    """The connection as the shared SQL sees it: ``execute(sql, params)`` with ``?`` placeholders. Counts the
    statements in ``store.statements``; ``wrote``: whether the operation changed anything (a statement other than a
    SELECT, or a write held back in ``batch``). In a write batch, the intent and workflow writes the batch holds back
    go out before any other statement (``_Batch.flush``), so every statement sees what came before it."""

    __slots__ = ("_c", "_store", "_batch", "wrote")

    def __init__(self, conn: psycopg.Connection[Any], store: Store, batch: _Batch | None = None) -> None:
        self._c = conn
        self._store = store
        self._batch = batch
        self.wrote = False

    def execute(self, sql: str, params: Any = ()) -> Any:
        if not sql.startswith("SELECT"):
            self.wrote = True
            if self._batch is not None and ("intents" in sql or "workflows" in sql):
                self._batch.raw_rows = True  # a row the batch keeps may have changed behind it: nothing is cached
        if self._batch is not None and self._batch.held:
            self._batch.flush(self)
        return self.raw(_pg_sql(sql), tuple(params))

    def raw(self, sql: bytes, params: Any = None, prepare: bool | None = None) -> Any:
        """A statement as it is (``%s``/``%b`` placeholders), without sending the held-back writes first. The
        batch's first statement takes its BEGIN along, in the same round trip."""
        self._store.statements += 1
        batch = self._batch
        if batch is not None and (not batch.begun or batch.checks):
            # the cached rows the operations used so far are checked (and locked) before anything else goes out:
            # a held-back write of one of them must not reach the table first
            checking = bool(batch.checks)
            try:
                with self._c.pipeline():
                    if not batch.begun:
                        batch.begun = True
                        self._store.statements += 1
                        self._c.execute(b"BEGIN", prepare=False)
                    if checking:
                        self._store.statements += 1
                        self._c.execute(_CHECK, (batch.check(),))
                    return self._c.execute(sql, params, prepare=prepare)
            except pg_errors.DivisionByZero as exc:
                if checking:
                    raise _Stale from exc
                raise
        return self._c.execute(sql, params, prepare=prepare)


class _Stale(BaseException):  # noqa: N818 - not an error: the batch runs again, reading what it took from the cache
    """A cached row a batch used had changed (``_Batch.check``). A BaseException, so that no ``except Exception``
    of an operation takes it for a refusal."""


class _Rows:
    """The intents and workflows this replica's writer last committed or locked, with the version of each (the
    row's ``xmin``: the transaction that wrote it), kept across batches. A batch takes the rows it needs from here
    instead of reading them (a step's resume needs the intent, its parent and the workflow, which the batch that
    dispatched the step wrote), and checks them in the first statement it sends after using them, at the latest its
    end (``_Batch.check``), which locks them as a read FOR UPDATE would: if one changed since (another replica wrote
    it), the batch is rolled back and runs again reading the table. Entries older than ``AGE`` are not used (a
    version is a 32-bit transaction id, which comes round again after four billion transactions); other replicas'
    notifications drop the intents they name, and the workflows of those intents. Written by the writer thread,
    dropped from the event loop too: a lock keeps the two apart."""

    SIZE = 8192
    AGE = 60.0

    def __init__(self) -> None:
        self._by_table: dict[str, dict[str, tuple[Row, str, float]]] = {"intents": {}, "workflows": {}}
        self._workflow_of: dict[str, str] = {}  # parent intent -> its workflow
        self._lock = threading.Lock()
        self.stale = 0  # batches run again because a cached row had changed (for tests)

    def get(self, table: str, key: str) -> tuple[Row, str] | None:
        found = self._by_table[table].get(key)
        if found is None or time.monotonic() - found[2] > self.AGE:
            return None
        return dict(found[0]), found[1]

    def put(self, table: str, key: str, row: Row, version: str | None) -> None:
        rows = self._by_table[table]
        with self._lock:
            if version is None:
                rows.pop(key, None)
                self._unmap(table, key, row)
                return
            rows.pop(key, None)  # to the end of the order: the oldest go first
            rows[key] = (row, version, time.monotonic())
            if table == "workflows" and row.get("parent_intent_id"):
                self._workflow_of[row["parent_intent_id"]] = key
            if len(rows) > self.SIZE:
                for oldest, (old, _, _) in drop_oldest(rows, self.SIZE):
                    self._unmap(table, oldest, old)

    def _unmap(self, table: str, key: str, row: Row) -> None:
        """A workflow no longer kept: its parent no longer names it."""
        parent = str(row.get("parent_intent_id"))
        if table == "workflows" and self._workflow_of.get(parent) == key:
            del self._workflow_of[parent]

    def drop(self, intent_ids: set[str]) -> None:
        with self._lock:
            for intent_id in intent_ids:
                self._by_table["intents"].pop(intent_id, None)
                workflow_id = self._workflow_of.pop(intent_id, None)
                if workflow_id is not None:
                    self._by_table["workflows"].pop(workflow_id, None)

    def clear(self) -> None:
        with self._lock:
            self._by_table["intents"].clear()
            self._by_table["workflows"].clear()
            self._workflow_of.clear()


class _Accounts:
    """Agents' service accounts by address (``active_service_account_by_address``, ``http_binding``), kept across
    batches: every create and every step's dispatch looks one up, and they seldom change. A batch that changes one
    empties this and reads the database for the rest of the batch; other replicas empty theirs when its notes
    arrive (``Notes.keys_changed``), like the key cache. ``generation`` keeps a read that raced an emptying from
    putting back what it read."""

    SIZE = 4096

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Row | None] = {}
        self.generation = 0

    def clear(self) -> None:
        self.generation += 1
        self.rows.clear()


class _Batch:
    """What the operations of one write transaction share: the intents and workflows it locked (read FOR UPDATE)
    or wrote, as they are now in the transaction. No other transaction can change a row this one holds locked or
    has inserted, so a second read of it needs no round trip, and its writes can wait: inserts and updates of these
    rows are held back and go out together (``flush``), at the end of the batch or before any other statement."""

    __slots__ = ("intents", "workflows", "accounts_changed", "held", "begun", "_new", "_dirty", "_types", "_bases",
                 "cache", "versions", "checks", "written", "raw_rows")

    def __init__(self, types: dict[str, dict[str, str]] | None = None, bases: dict[str, str] | None = None,
                 cache: _Rows | None = None) -> None:
        self.intents: dict[str, Row] = {}
        self.workflows: dict[str, Row] = {}
        # The rows kept across batches (None: not used), each kept row's version (its xmin when read or taken from
        # the cache), the cached rows used and not yet checked against the table, the rows written by held-back
        # writes, and whether a statement other than those wrote to intents or workflows.
        self.cache = cache
        self.versions: dict[tuple[str, str], str] = {}
        self.checks: dict[tuple[str, str], str] = {}
        self.written: set[tuple[str, str]] = set()
        self.raw_rows = False
        self.accounts_changed = False  # a service account changed: _Accounts is not used for the rest of the batch
        self.held = False  # writes are held back
        self.begun = True  # BEGIN was sent (``_Conn.raw`` sends it with the first statement when it was not)
        # per table: ids inserted in this batch, and ids of rows changed (the columns changed)
        self._new: dict[str, dict[str, None]] = {"intents": {}, "workflows": {}}
        self._dirty: dict[str, dict[str, set[str]]] = {"intents": {}, "workflows": {}}
        self._types = types or {}  # table -> column -> its PostgreSQL type (integers go as JSON)
        self._bases = bases or {}  # table -> what a changed row's unsent columns read as (``_bases``)

    def keep(self, found: list[Row], checked: bool = False) -> None:
        """Rows of ``_FAMILY``/``_families``: intents, each with its workflow as JSON, and their versions (rows kept
        already win). ``checked``: read without a lock, they are checked as cached rows are."""
        for each in found:
            row = dict(each)
            workflow = row.pop("family_workflow")
            version = row.pop("row_version")
            self.kept("intents", row["intent_id"], row, version, checked)
            if workflow is not None:
                wf = orjson.loads(workflow)
                self.kept("workflows", wf["workflow_id"], wf, wf.pop("row_version"), checked)

    def kept(self, table: str, key: str, row: Row, version: str, checked: bool = False) -> None:
        """A row read from the table, unless the batch keeps it already."""
        rows = self.rows(table)
        if key not in rows:
            rows[key] = row
            self.versions[table, key] = version
            if checked:
                self.checks[table, key] = version

    def cached(self, table: str, key: str) -> Row | None:
        """The row as this replica's writer last committed or read it (``_Rows``), kept for the batch and checked
        before its next statement or its end (``check``); None if the cache has none."""
        if self.cache is None:
            return None
        found = self.cache.get(table, key)
        if found is None:
            return None
        row, version = found
        self.rows(table)[key] = row
        self.versions[table, key] = self.checks[table, key] = version
        return row

    def check(self) -> str | None:
        """The parameter of ``_CHECK``, which locks the rows used since the last check that were taken from the cache
        or read without a lock, and fails (division by zero) unless each is still at its version: another replica,
        or a statement of this one outside the batches' held-back writes, changed it since. None: nothing to check."""
        if not self.checks:
            return None
        pairs = [(key, version, table[0]) for (table, key), version in self.checks.items()]
        self.checks.clear()
        return orjson.dumps(pairs).decode()

    def rows(self, table: str) -> dict[str, Row]:
        return self.intents if table == "intents" else self.workflows

    def inserted(self, table: str, key: str, row: Row) -> None:
        self.rows(table)[key] = row
        self._new[table][key] = None
        self.held = True

    def updated(self, table: str, key: str, fields: Row) -> bool:
        """Apply ``fields`` to the kept row and hold the write back; False if the row is not kept here."""
        row = self.rows(table).get(key)
        if row is None:
            return False
        row.update(fields)
        if key not in self._new[table]:
            self._dirty[table].setdefault(key, set()).update(fields)
        self.held = True
        return True

    def parts(self) -> tuple[tuple[_Part, ...], list[str]]:
        """The held-back writes as the row parts of ``_write_statement`` and their parameters (each part's rows as
        one JSON text), and no longer held: per table, the new rows, then the changed ones (their keys and the
        columns any of them changed, the others read from the table's base; whole rows where it has none); rows
        grouped by the columns they have (one group, but for a row read before a column was added and one made
        after)."""
        self.held = False
        parts: list[_Part] = []
        params: list[str] = []
        for table in ("intents", "workflows"):
            rows, new, dirty = self.rows(table), self._new[table], self._dirty[table]
            groups: dict[tuple[tuple[str, ...], bool], list[Row]] = {}
            changed: dict[tuple[str, ...], set[str]] = {}
            for key in new:
                groups.setdefault((tuple(rows[key]), False), []).append(rows[key])
            integers = [c for c, t in self._types.get(table, {}).items() if t == "bigint"]
            for key, fields in dirty.items():
                row = rows[key]
                for c in integers:  # JSON 1.0 is no bigint to PostgreSQL
                    if isinstance(row.get(c), float):
                        row[c] = int(row[c])
                columns = tuple(row)
                groups.setdefault((columns, True), []).append(row)
                changed.setdefault(columns, set()).update(fields)
            base = self._bases.get(table, "")
            for (columns, existing), found in groups.items():
                if not existing or changed[columns]:
                    self.written.update((table, row[_KEYS[table]]) for row in found)
                if not existing:
                    parts.append((table, columns, (), ""))
                    params.append(orjson.dumps(found).decode())
                    continue
                if not changed[columns]:  # updated with no fields: nothing to write
                    continue
                sets = tuple(sorted(changed[columns]))
                if base:  # the key and what changed: a workflow's compiled plan, a doc, a payload stay behind
                    sent = (_KEYS[table], *sets)
                    found = [{c: row[c] for c in sent} for row in found]
                parts.append((table, columns, sets, base))
                params.append(orjson.dumps(found).decode())
            new.clear()
            dirty.clear()
        return tuple(parts), params

    def flush(self, conn: _Conn) -> None:
        """Send the held-back writes, in one statement (before a statement that may read them)."""
        parts, params = self.parts()
        if parts:
            conn.raw(_write_statement(parts, False), params)


_KEYS = {"intents": "intent_id", "workflows": "workflow_id"}
# Locks the rows a batch took from the cache or read without locking them (``_Batch.check``: [key, version, "i" or
# "w"] as one JSON text), in key order as a locking read does, and divides by zero unless every one is at its version.
# Alone (``_CHECK``), or first in the batch's end statement (``_write_statement``), whose writes of those rows run after
# it: data-modifying CTEs the main query does not read run once it is done.
_CHECK_CTES = (
    b"kc AS (SELECT r->>0 AS k, r->>1 AS v, r->>2 AS t FROM jsonb_array_elements(%s::jsonb) AS r), "
    b"ki AS MATERIALIZED (SELECT intent_id AS k, xmin::text AS v FROM intents "
    b"WHERE intent_id = ANY(ARRAY(SELECT k FROM kc WHERE t = 'i')) ORDER BY intent_id FOR UPDATE), "
    b"kw AS MATERIALIZED (SELECT workflow_id AS k, xmin::text AS v FROM workflows "
    b"WHERE workflow_id = ANY(ARRAY(SELECT k FROM kc WHERE t = 'w')) ORDER BY workflow_id FOR UPDATE), "
    b"k AS (SELECT 1 / ((SELECT count(*) FROM (SELECT k, v FROM ki UNION ALL SELECT k, v FROM kw) AS s "
    b"JOIN kc USING (k, v)) = (SELECT count(*) FROM kc))::int AS fresh)")
_CHECK = b"WITH " + _CHECK_CTES + b" SELECT fresh FROM k"
# A part of a batch's held-back rows: table, columns, columns changed (none: new rows), the base of unsent columns
_Part = tuple[str, tuple[str, ...], tuple[str, ...], str]


def _bases(columns: list[Row]) -> dict[str, str]:
    """Per table (``information_schema.columns`` rows), a JSON object of a placeholder for each NOT NULL column
    (empty text, zero): the base of ``jsonb_populate_recordset`` for changed rows, which are sent as their key and
    the columns that changed. The row ``INSERT ... ON CONFLICT`` proposes must pass the NOT NULL checks, which come
    before the conflict, and is never written: the row exists (``_write_statement``). No base for a table with a
    NOT NULL column of another type: its changed rows go whole."""
    placeholders: dict[str, dict[str, Any]] = {}
    odd: set[str] = set()
    for column in columns:
        table, kind = column["table_name"], column["data_type"]
        if column["is_nullable"] == "YES":
            continue
        if kind == "text":
            placeholders.setdefault(table, {})[column["column_name"]] = ""
        elif kind in ("bigint", "integer", "smallint", "double precision", "real", "numeric"):
            placeholders.setdefault(table, {})[column["column_name"]] = 0
        else:
            odd.add(table)
    return {table: orjson.dumps(values).decode() for table, values in placeholders.items() if table not in odd}


@functools.lru_cache(maxsize=256)
def _write_statement(parts: tuple[_Part, ...], end: bool, check: bool = False) -> bytes:
    """One statement of data-modifying CTEs for a batch's rows (``_Batch.parts``) and, with ``end``, everything else
    its end writes (``_END``). New rows are inserted from a JSON text (read as jsonb); changed rows, which exist
    (the batch locked or inserted them, and intents and workflows are never deleted), are written by ``INSERT ...
    ON CONFLICT DO UPDATE`` on their primary key: its plan is the key's index whatever the table's size when it
    was prepared, where an ``UPDATE ... FROM`` a list of keys may be planned as a scan and keep that plan. They are
    sent as their key and the columns that changed, read onto the table's base (``_bases``), whose placeholders are
    never written. With ``check``, the end starts with the check of ``_CHECK_CTES`` (its parameter first)."""
    ctes = [_CHECK_CTES.decode()] if check else []
    for n, (table, columns, changed, base) in enumerate(parts):
        names = ", ".join(columns)
        start = f"jsonb_populate_record(NULL::{table}, '{base}')" if base else f"NULL::{table}"
        cte = (f"w{n} AS (INSERT INTO {table} ({names}) SELECT {names} "
               f"FROM jsonb_populate_recordset({start}, %s::jsonb)")
        if changed:
            sets = ", ".join(f"{c} = excluded.{c}" for c in changed)
            cte += f" ON CONFLICT ({_KEYS[table]}) DO UPDATE SET {sets}"
        ctes.append(cte + ")")
    if not end:
        return ("WITH " + ", ".join(ctes) + " SELECT 1").encode()
    return b"WITH " + "".join(c + ", " for c in ctes).encode() + (_END_CHECKED if check else _END)


# An intent read to be changed, with its workflow parent and its workflow row: locked together, in one statement
# (the workflow as JSON in a column of the intent's row: its columns are all text). Each a lookup by primary key,
# whatever plan PostgreSQL keeps for the prepared statement: with "intent_id = %s OR intent_id = (...)", the plan
# made while the table was small, a sequential scan, was kept as it grew.
_FAMILY = (b"WITH i AS (SELECT *, xmin::text AS row_version FROM intents WHERE intent_id = %s FOR UPDATE), "
           b"p AS (SELECT *, xmin::text AS row_version FROM intents "
           b"WHERE intent_id = (SELECT doc::jsonb ->> 'parent_intent_id' FROM i) FOR UPDATE), "
           b"w AS (SELECT *, xmin::text AS row_version FROM workflows "
           b"WHERE workflow_id = (SELECT doc::jsonb ->> 'workflow_id' FROM i) FOR UPDATE) "
           b"SELECT i.*, (SELECT row_to_json(w)::text FROM w) AS family_workflow FROM i "
           b"UNION ALL SELECT p.*, NULL FROM p")
# The same without locks: a batch's first read, outside a transaction, of rows it checks with its end (``_attempt``).
_FAMILY_READ = _FAMILY.replace(b" FOR UPDATE", b"")
# The same for every intent the operations of a batch read first (``_probe``), in one statement, each row locked in
# key order. A list of placeholders, not an array: PostgreSQL estimates an array parameter at 10 elements, so its
# generic plan never looked cheaper than a custom one and the statement was planned on every call (~0.3 ms of the
# server's CPU); with the count known, it keeps one plan per size. Sizes go by powers of two (the last key repeated),
# so a handful of prepared statements serve every batch; past ``_FAMILIES_MAX`` keys, planned for the keys given.
# Parents and workflows are looked up by an array of keys, not joined: a join's plan made while the table was small
# (a merge or hash join over the whole of it) would be kept as it grew.
_FAMILIES_MAX = 64


@functools.lru_cache(maxsize=32)
def _families_sql(size: int, lock: bool = True) -> bytes:
    sql = _families_locked(size)
    return sql if lock else sql.replace(b" FOR UPDATE", b"")


def _families_locked(size: int) -> bytes:
    keys = b"ANY(%b::text[])" if size > _FAMILIES_MAX else b"ANY(ARRAY[" + b", ".join([b"%s"] * size) + b"])"
    return (b"WITH i AS MATERIALIZED (SELECT *, xmin::text AS row_version FROM intents WHERE intent_id = " + keys +
            b" ORDER BY intent_id FOR UPDATE), "
            b"p AS MATERIALIZED (SELECT *, xmin::text AS row_version FROM intents WHERE intent_id = "
            b"ANY(ARRAY(SELECT doc::jsonb ->> 'parent_intent_id' FROM i)) AND NOT intent_id = " + keys + b" "
            b"ORDER BY intent_id FOR UPDATE), "
            b"w AS MATERIALIZED (SELECT *, xmin::text AS row_version FROM workflows WHERE workflow_id = "
            b"ANY(ARRAY(SELECT doc::jsonb ->> 'workflow_id' FROM i)) ORDER BY workflow_id FOR UPDATE) "
            b"SELECT i.*, (SELECT row_to_json(w)::text FROM w WHERE w.workflow_id = i.doc::jsonb ->> 'workflow_id') "
            b"AS family_workflow FROM i UNION ALL SELECT p.*, NULL FROM p")


def _families(ids: list[str], lock: bool = True) -> tuple[bytes, tuple[Any, ...], bool]:
    """The batch's first reads for ``ids`` (two or more): the statement, its parameters, and whether to prepare it."""
    if len(ids) > _FAMILIES_MAX:
        return _families_sql(len(ids), lock), (ids, ids), False
    size = 2
    while size < len(ids):
        size *= 2
    keys = (*ids, *[ids[-1]] * (size - len(ids)))
    return _families_sql(size, lock), keys + keys, True


# A flush's counters of one workspace (``add_usages``), in the order given (sorted: replicas lock rows alike).
_ADD_USAGES = {how: ("INSERT INTO usage_counters (org_id, workspace_id, counter, period, value) "
                     "SELECT ?, ?, r->>0, r->>1, (r->>2)::bigint FROM jsonb_array_elements(?::jsonb) AS r "
                     "ON CONFLICT (org_id, workspace_id, counter, period) DO UPDATE SET " + sql)
                for how, sql in USAGE_ADD.items()}
# An intent and its events after a seq (``intent_events``), as of one snapshot.
_INTENT_EVENTS = ("SELECT i.*, ARRAY(SELECT data FROM events WHERE intent_id = ? AND seq > ? ORDER BY seq LIMIT ?) "
                  "AS stream_events FROM intents i WHERE i.intent_id = ?")
_GET_WORKFLOW = b"SELECT *, xmin::text AS row_version FROM workflows WHERE workflow_id = %s FOR UPDATE"
class _Stop(BaseException):  # noqa: N818 - not an error: the probe of an operation ends here
    """Raised in a probed operation at the first thing it would read from or write to the database. A
    BaseException, so that no ``except Exception`` of an operation takes it for a refusal."""


class _ProbeConn:
    """The probe's connection: no statement goes out."""

    wrote = False

    def execute(self, sql: str, params: Any = ()) -> Any:
        raise _Stop

    def raw(self, sql: bytes, params: Any = None, prepare: bool | None = None) -> Any:
        raise _Stop


class _ProbeBatch(_Batch):
    """The batch as the probe sees it: its kept rows, read only."""

    def __init__(self, shared: _Batch) -> None:
        super().__init__(cache=shared.cache)
        self.intents, self.workflows, self.accounts_changed = shared.intents, shared.workflows, shared.accounts_changed
        self.versions, self.checks = shared.versions, shared.checks  # what it takes from the cache, the batch keeps

    def inserted(self, table: str, key: str, row: Row) -> None:
        raise _Stop

    def updated(self, table: str, key: str, fields: Row) -> bool:
        raise _Stop


class PostgresTx(SqlTx):
    LOCK = " FOR UPDATE"
    CLAIM = " FOR UPDATE SKIP LOCKED"
    OCTETS = "octet_length({})"

    def __init__(self, conn: Any, batch: _Batch | None = None, accounts: _Accounts | None = None,
                 misses: list[str] | None = None) -> None:
        super().__init__(conn)
        self._batch = batch if batch is not None else _Batch()
        self._accounts = accounts if accounts is not None else _Accounts()
        self.fed: list[tuple[str, str, int, str]] = []  # feed rows (address, intent_id, attempt, at): at the end
        self._misses = misses  # a probe: the intent it reads first and the batch does not keep goes here
        self.lazy = False  # its commit need not wait for the disk (``lazy_commit``)
        self.read_intent = False  # it asked for an intent (``PostgresStore._probe``)
        self.locked_family = False  # it read an intent from the database or the cache itself: its probe had not

    def lazy_commit(self) -> None:
        """Noted, not sent: a batch commits without waiting for the disk only if all its operations asked so (a
        ``SET LOCAL`` from one would take the others' durability with it)."""
        self.lazy = True

    def changed_anything(self) -> bool:
        return bool(self._c.wrote or self._events or self.fed)

    def _held(self, table: str, key: str, fields: Row) -> bool:
        if self._batch.updated(table, key, fields):
            self._c.wrote = True
            return True
        return False

    def exclusive(self, name: str) -> None:
        self._c.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (name,))

    def finish(self) -> None:
        """The events are written with the rest of the batch's (``PostgresStore._end``)."""

    # intents and workflows: kept in the batch once locked
    def get_intent(self, intent_id: str) -> Row | None:
        self.read_intent = True
        row = self._batch.intents.get(intent_id)
        if row is None:
            row = self._batch.cached("intents", intent_id)
            if row is not None:
                self.locked_family = True  # a probe would have found it: its like is probed again
        if row is None:
            if self._misses is not None:
                self._misses.append(intent_id)
                raise _Stop
            self._lock_family(intent_id)
            row = self._batch.intents.get(intent_id)
            if row is None:
                return None
        return dict(row)

    def add_usages(self, org_id: str, workspace_id: str, counts: list[tuple[str, str, int]],
                   how: str = "sum") -> None:
        """One statement whatever the number of counters (the rows as one JSON text): one prepared statement."""
        self._c.execute(_ADD_USAGES[how], (org_id, workspace_id, orjson.dumps(counts).decode()))

    def will_read_intents(self, intent_ids: list[str]) -> None:
        """Those the batch does not keep are fetched (and locked) together: by the probe, with the batch's first
        read; else here, in one statement instead of one per intent (a feed's marks for several intents)."""
        batch = self._batch
        missing = sorted({i for i in intent_ids if i not in batch.intents and batch.cached("intents", i) is None})
        if not missing:
            return
        if self._misses is not None:
            self.read_intent = True
            self._misses.extend(missing)
            raise _Stop
        if len(missing) > 1:
            self.locked_family = True
            sql, params, prepare = _families(missing)
            self._batch.keep(self._c.raw(sql, params, prepare=prepare).fetchall())

    def _lock_family(self, intent_id: str) -> None:
        # A row the batch keeps is never read here, nor is one it inserted: the batch's held-back writes need not go
        # out first (the parent, if kept, is read again from the database and the kept one wins).
        self.locked_family = True
        self._batch.keep(self._c.raw(_FAMILY, (intent_id,)).fetchall())

    def insert_intent(self, row: Row) -> None:
        self._batch.inserted("intents", row["intent_id"], {c: row.get(c) for c in INTENT_COLUMNS})
        self._c.wrote = True

    def update_intent(self, intent_id: str, fields: Row) -> None:
        if not self._held("intents", intent_id, fields):
            super().update_intent(intent_id, fields)

    def get_workflow(self, workflow_id: str) -> Row | None:
        row = self._batch.workflows.get(workflow_id) or self._batch.cached("workflows", workflow_id)
        if row is None:
            found = self._c.raw(_GET_WORKFLOW, (workflow_id,)).fetchone()
            if found is None:
                return None
            row = dict(found)
            self._batch.kept("workflows", workflow_id, row, row.pop("row_version"))
        return dict(row)

    def insert_workflow(self, row: Row) -> None:
        if set(row) == WORKFLOW_COLUMNS:
            self._batch.inserted("workflows", row["workflow_id"], dict(row))
            self._c.wrote = True
        else:
            super().insert_workflow(row)

    def update_workflow(self, workflow_id: str, fields: Row) -> None:
        if not self._held("workflows", workflow_id, fields):
            super().update_workflow(workflow_id, fields)

    def append_feed(self, address: str, intent_id: str, attempt: int, at: str) -> int:
        """Held to the end of the batch, which gives it its cursor (and sets it on the row handed to the notes)."""
        self.fed.append((address, intent_id, attempt, at))
        return 0

    # service accounts by address: kept across batches
    def active_service_account_by_address(self, address: str) -> Row | None:
        return self._account("active", address, super().active_service_account_by_address)

    def http_binding(self, address: str) -> Row | None:
        return self._account("http", address, super().http_binding)

    def _account(self, kind: str, address: str, read: Callable[[str], Row | None]) -> Row | None:
        accounts = self._accounts
        if self._batch.accounts_changed:
            return read(address)
        key = (kind, address)
        if key in accounts.rows:
            row = accounts.rows[key]
        else:
            generation = accounts.generation
            row = read(address)
            if generation == accounts.generation:
                if len(accounts.rows) >= _Accounts.SIZE:
                    accounts.rows.clear()
                accounts.rows[key] = row
        return dict(row) if row is not None else None

    def insert_service_account(self, row: Row) -> None:
        super().insert_service_account(row)
        self._accounts_changed()

    def update_service_account(self, sa_id: str, fields: Row) -> None:
        super().update_service_account(sa_id, fields)
        self._accounts_changed()

    # Routes and transport bindings decide ``http_binding`` too (store/routing_sql.DELIVERY_TARGETS).
    def insert_route(self, row: Row) -> None:
        super().insert_route(row)
        self._accounts_changed()

    def update_route(self, route_id: str, fields: Row) -> None:
        super().update_route(route_id, fields)
        self._accounts_changed()

    def delete_route(self, route_id: str) -> None:
        super().delete_route(route_id)
        self._accounts_changed()

    def insert_binding(self, row: Row) -> None:
        super().insert_binding(row)
        self._accounts_changed()

    def update_binding(self, binding_id: str, fields: Row) -> None:
        super().update_binding(binding_id, fields)
        self._accounts_changed()

    def delete_binding(self, binding_id: str) -> None:
        super().delete_binding(binding_id)
        self._accounts_changed()

    def _accounts_changed(self) -> None:
        self._batch.accounts_changed = True
        self._accounts.clear()
        self.notes.keys_changed = True  # other replicas empty their _Accounts (and key caches) too


def encode_notes(replica: str, notes: Notes, *, from_heads: int = 0) -> list[str]:
    """``notes`` as notification payloads of at most ~7 kB each (a big batch sends several). The events and feed
    rows of an intent or address go in the payload that names it; those of one that do not fit in a payload alone
    are left out, and its streams read instead. ``from_heads``: the number of addresses the batch fed, whose feed
    rows' cursors are counted back from their address's new head (0 for the last row); PostgreSQL puts the heads in
    the payload at ``"fc"`` when it sends it (``_END``), so room is kept for them."""
    if not (notes.intents or notes.feeds or notes.wake_at is not None or notes.keys_changed or notes.everything
            or notes.outbound or notes.mail or notes.schemas or notes.policies or notes.killed or notes.quotas):
        return []
    base: dict[str, Any] = {"r": replica}
    if notes.wake_at is not None:
        base["w"] = notes.wake_at
    if notes.keys_changed:
        base["k"] = 1
    if notes.everything:
        base["e"] = 1
    if notes.outbound:
        base["o"] = 1
    if notes.mail:
        base["m"] = 1
    if notes.schemas:
        base["s"] = 1
    if notes.policies:
        base["p"] = 1
    if notes.killed:
        base["x"] = {address: int(killed) for address, killed in notes.killed.items()}
    if notes.quotas:
        base["q"] = 1
    events, fed = notes.events or {}, notes.fed or {}
    units: list[tuple[str, str, Any]] = []  # (kind, key, what it hands over or None)
    for intent_id in sorted(notes.intents):
        units.append(("i", intent_id, events.get(intent_id)))
    for address in sorted(notes.feeds):
        rows = fed.get(address)
        units.append(("f", address, None if rows is None else [{k: r.get(k) for k in _FED_FIELDS} for r in rows]))
    limit = _NOTIFY_LIMIT - 64 * from_heads
    payloads: list[str] = []
    current: dict[str, Any] = dict(base)
    size = len(orjson.dumps(current))
    for kind, key, items in units:
        handed = b"" if items is None else orjson.dumps(items)
        if len(handed) + len(key) + 64 > limit - 64:
            handed = b""  # too big for any payload: the key alone, and its streams read
        need = len(key) + 8 + (len(handed) + len(key) + 8 if handed else 0)
        if size + need > limit and len(current) > 1:
            payloads.append(orjson.dumps(current).decode())
            current = {"r": replica}
            size = len(orjson.dumps(current))
        current.setdefault(kind, []).append(key)
        if handed:
            current.setdefault("h" + kind, {})[key] = orjson.Fragment(handed)
            if kind == "f" and from_heads:
                current["fc"] = "\x01"  # the heads, put here by PostgreSQL
        size += need
    payloads.append(orjson.dumps(current).decode())
    return payloads


def decode_notes(payload: str) -> tuple[str, Notes]:
    data = orjson.loads(payload)
    notes = Notes(intents=set(data.get("i", ())), feeds=set(data.get("f", ())),
                  keys_changed=bool(data.get("k")), everything=bool(data.get("e")), outbound=bool(data.get("o")),
                  mail=bool(data.get("m")), schemas=bool(data.get("s")), policies=bool(data.get("p")),
                  killed={str(a): bool(k) for a, k in data["x"].items()} if data.get("x") else None,
                  quotas=bool(data.get("q")))
    notes.timer(data.get("w"))
    handed_events = data.get("hi")
    if handed_events:
        notes.events = {intent_id: [(int(seq), text) for seq, text in items]
                        for intent_id, items in handed_events.items()}
    handed_rows = data.get("hf")
    if handed_rows:
        heads = data.get("fc")
        if isinstance(heads, dict):  # cursors counted back from the heads
            for address, rows in handed_rows.items():
                for row in rows:
                    row["cursor"] = int(heads[address]) + int(row["cursor"])
        notes.fed = handed_rows
    return str(data.get("r", "")), notes


_Job = tuple[Callable[[Tx], Any], "asyncio.Future[Any]"]
_Outcome = tuple["asyncio.Future[Any]", bool, Any]

# The end of a batch, after its rows (``_write_statement``): its events, its feed rows with their cursors, after the
# heads of their addresses (``back``: a row's place counted back from its address's new head), and its notification,
# whose payloads get those heads where they say ``"\u0001"`` (other replicas work the rows' cursors out from them).
# One statement whatever the batch's size (empty lists where it has none), sent with the COMMIT; every table is
# reached by a key or an insert, so its plan cannot turn into a scan. The heads are bumped in address order, so two
# replicas' batches take their locks in the same order. Each list goes as one JSON text of rows: psycopg's
# adaptation of a Python list into an array parameter (each element looked at, and a text array's elements
# escaped) cost more than the statement's planning and running did. The lists (and the rows of
# ``_write_statement``) are jsonb, parsed once: a json parameter is parsed by its input function and again by what
# reads it, and each ``->>`` on a json value parses that value once more (an event's data three times, once per
# column); together about a sixth of the writer backend's CPU. The notification payloads go as one text, separated
# by a record separator (chr(30)), which no payload holds (orjson escapes control characters): no JSON to parse.
_END = (
    b"e AS (INSERT INTO events (intent_id, seq, data) SELECT r->>0, (r->>1)::bigint, r->>2 "
    b"FROM jsonb_array_elements(%s::jsonb) AS r), "
    b"h AS (INSERT INTO feed_heads (address, last_cursor) SELECT r->>0, (r->>1)::bigint "
    b"FROM jsonb_array_elements(%s::jsonb) AS r "
    b"ON CONFLICT (address) DO UPDATE SET last_cursor = feed_heads.last_cursor + excluded.last_cursor "
    b"RETURNING address, last_cursor), "
    b"f AS (INSERT INTO feed (address, cursor, intent_id, attempt, at) "
    b"SELECT h.address, h.last_cursor + (r->>1)::bigint, r->>2, (r->>3)::bigint, r->>4 "
    b"FROM jsonb_array_elements(%s::jsonb) AS r JOIN h ON h.address = r->>0), "
    b"j AS (SELECT coalesce((SELECT json_object_agg(address, last_cursor) FROM h)::text, '{}') AS heads), "
    b"n AS (SELECT pg_notify('" + CHANNEL.encode() + b"', replace(p, '\"\\u0001\"', (SELECT heads FROM j))) "
    b"FROM unnest(string_to_array(%s, chr(30))) AS p) "
    b"SELECT (SELECT heads FROM j) AS heads, (SELECT count(*) FROM n) AS notified, "
    b"pg_current_xact_id()::xid::text AS xid")
# The same after the check (``_CHECK_CTES``), which the main query runs first, before the rows are written.
_END_CHECKED = _END.replace(b"SELECT (SELECT heads", b"SELECT (SELECT fresh FROM k) AS fresh, (SELECT heads")
# A batch whose every operation may lose its writes to a crash of the database (``PostgresTx.lazy_commit``: what
# its work redoes, a delivery's mark) commits without waiting for the disk: visible to every replica at once, and
# made durable by the next commit that waits (the log is written in order), or by the WAL writer within a second.
_LAZY = b"SET LOCAL synchronous_commit = off"
_HEADS_IN_PAYLOAD = 16  # addresses whose heads a payload has room for (64 bytes each); past that, feeds read


def _kind(op: Callable[..., Any]) -> Any:
    """What operations alike share: the code of the function (a lambda made per request, a partial's function)."""
    fn = getattr(op, "func", op)
    return getattr(fn, "__code__", fn)


class _Fallback(Exception):
    """An operation of a batch refused after it had written: the batch is rolled back and each of its operations
    runs in a transaction of its own."""


class PostgresStore(SqlReads, Store):
    kind = "postgresql"

    def __init__(self, url: str, *, replica_id: str | None = None, readers: int = 8) -> None:
        self.url = url
        self.location = redact(url)
        self.replica_id = replica_id or uuid.uuid4().hex[:12]
        self.readers = readers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._rpool: psycopg_pool.AsyncConnectionPool[Any] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._closing = threading.Event()
        self._listening = asyncio.Event()
        self._app_name = f"axme-{self.replica_id}"[:63]
        self._conninfo = url  # the URL with the NETWORK_DEFAULTS it does not set itself
        self._down = False  # the last request found the database unreachable: the next ones wait less
        self.retries = 0  # operations run again after a deadlock or race (for tests and metrics)
        # the writer: a thread with a connection of its own, taking what write() queued
        self._writer: threading.Thread | None = None
        self._wconn: psycopg.Connection[Any] | None = None
        self._pending: collections.deque[_Job] = collections.deque()
        self._signal = threading.Event()  # set when something was queued
        self._behind: set[asyncio.Future[Any]] = set()  # the queued jobs of write_behind
        self._hurried = False  # hurry() was called: the writer holds nothing back (_hold_behind)
        self._connect_failed = float("-inf")  # monotonic time of the writer's last failed connect
        self._accounts = _Accounts()
        self._cache = _Rows()
        self._types: dict[str, dict[str, str]] = {}  # table -> column -> type, of the tables a batch writes late
        self._bases: dict[str, str] = {}  # table -> the base its changed rows are read onto (``_bases``)
        self._own = orjson.dumps({"r": self.replica_id})[:-1].decode()  # how this replica's payloads start
        # Operations (by their code, ``_kind``) whose probe reached the database without reading an intent: an apply
        # is probed up to its first insert, most of its work, for nothing to fetch. Not probed again, until one
        # reads an intent from the database itself.
        self._unprobed: set[Any] = set()

    # lifecycle
    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._closing.clear()
        await self._loop.run_in_executor(None, self._open_sync)
        # Reads run on the event loop, on connections of their own: no thread and no GIL hand-over per read.
        # No check of a connection when it is taken (a round trip per read): a read that finds it dead is tried
        # again (_read), and the pool replaces what came back broken.
        kwargs = {"autocommit": True, "row_factory": dict_row, "application_name": self._app_name}
        self._rpool = psycopg_pool.AsyncConnectionPool(
            self._conninfo, min_size=1, max_size=self.readers, kwargs=kwargs, name="axme-read",
            timeout=POOL_TIMEOUT, open=False, reconnect_timeout=RECONNECT_TIMEOUT,
        )
        try:
            await self._rpool.open(wait=True, timeout=10.0)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            await self._rpool.close()
            self._rpool = None
            await self._loop.run_in_executor(None, self._close_pools)
            raise StoreUnavailable(f"cannot open the database {self.location}: {exc}") from exc
        self._writer = threading.Thread(target=self._write_loop, name="axme-pg-write", daemon=True)
        self._writer.start()
        self._listening = asyncio.Event()
        self._listener = asyncio.create_task(self._listen(), name="axme-pg-listen")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), 10.0)

    def _open_sync(self) -> None:
        try:
            given = conninfo_to_dict(self.url)
            self._conninfo = make_conninfo(self.url, **{k: v for k, v in NETWORK_DEFAULTS.items() if k not in given})
            with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10) as conn:
                if (old := server_too_old(conn.info.server_version)) is not None:
                    raise StoreUnavailable(f"{old} ({self.location})")
                self._migrate(conn)
            self._wconn = self._connect_writer()
            columns = self._wconn.execute(
                "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name IN ('intents', 'workflows')").fetchall()
            self._types = {table: {c["column_name"]: c["data_type"] for c in columns if c["table_name"] == table}
                           for table in ("intents", "workflows")}
            self._bases = _bases(columns)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            self._close_pools()
            raise StoreUnavailable(f"cannot open the database {self.location}: {exc}") from exc

    def _connect_writer(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self._conninfo, autocommit=True, row_factory=dict_row,
                               application_name=self._app_name)
        # the writer runs the same few dozen statements all day: prepare them at once (not BEGIN and COMMIT, sent as
        # they are: nothing to plan, and the COMMIT stays visible on the wire, as tests/runtime/store/test_durability
        # looks for it)
        conn.prepare_threshold = 1
        conn.prepared_max = 512
        # Its statements reach every row by a key. PostgreSQL keeps a prepared statement's generic plan until the
        # table is analyzed again (autovacuum: a minute apart at best), and one made while a table was a page or two
        # scans it: on a new database filling at a thousand intents a second, each read of a batch scanned the table
        # for up to a minute (an intent by key: 29 ms at 200,000 rows against 0.4). Without sequential scans the plan
        # is an index lookup whatever the size it was made at (a table with no usable index is still scanned).
        # Without JIT: a scan that must stay (a sum over a table with no index for it, such as the storage counts
        # at start) is costed past jit_above_cost once scans are "off", and each run of it compiled for ~100 ms.
        conn.execute("SET enable_seqscan = off")
        conn.execute("SET jit = off")
        return conn

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY, applied_at TEXT)")
            applied = {row[0] for row in conn.execute("SELECT version FROM schema_version").fetchall()}
            for version, script in load_migrations("postgres"):
                if version in applied:
                    continue
                with conn.transaction():
                    for statement in split_sql(script):
                        conn.execute(statement.encode())
                    conn.execute(
                        "INSERT INTO schema_version (version, applied_at) VALUES (%s, now()::text)", (version,)
                    )
                log.info("database migrated to version %d", version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))

    def _close_pools(self) -> None:
        if self._wconn is not None:
            self._wconn.close()
        self._wconn = None

    async def close(self) -> None:
        self._closing.set()
        self._signal.set()
        loop = asyncio.get_running_loop()
        if self._writer is not None:  # it answers what is queued first
            await loop.run_in_executor(None, self._writer.join, 10.0)
            self._writer = None
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if self._rpool is not None:
            await self._rpool.close()
            self._rpool = None
        await loop.run_in_executor(None, self._close_pools)

    # writes
    async def write(self, op: Callable[[Tx], T]) -> T:
        return await self._queue(op, False)

    async def write_behind(self, op: Callable[[Tx], T]) -> T:
        return await self._queue(op, True)

    def hurry(self) -> None:
        self._hurried = True
        self._signal.set()

    async def _queue(self, op: Callable[[Tx], T], behind: bool) -> T:
        if self._writer is None or self._loop is None or self._closing.is_set():
            raise StoreUnavailable("the store is closed")
        fut: asyncio.Future[T] = self._loop.create_future()
        if behind:
            self._behind.add(fut)
        self._pending.append((op, fut))
        if not self._signal.is_set():  # the writer clears it before it looks at what is queued
            self._signal.set()
        return await fut

    def _write_loop(self) -> None:
        """The writer thread: one batch at a time; what is queued while one commits makes the next."""
        while True:
            self._signal.wait()
            self._signal.clear()
            while self._pending:
                self._hold_behind()
                batch: list[_Job] = []
                while self._pending and len(batch) < MAX_BATCH:
                    batch.append(self._pending.popleft())
                    self._behind.discard(batch[-1][1])
                try:
                    outcomes, notes = self._run_batch(batch)
                except Exception as exc:  # a bug here must not stop every later write
                    log.exception("write batch of %d failed", len(batch))
                    failure = StoreUnavailable(f"the write failed ({type(exc).__name__}); retry shortly")
                    outcomes, notes = [(fut, False, failure) for _, fut in batch], Notes()
                self._answer(outcomes, notes)
            if self._closing.is_set() and not self._pending:
                return

    def _hold_behind(self) -> None:
        """While everything queued is ``write_behind``'s, wait up to BEHIND_HOLD for a write that someone waits on,
        unless ``hurry`` was called. Checked before every batch: a job queued while the last batch committed finds
        the signal already set, and would otherwise go at once, alone."""
        deadline = time.monotonic() + BEHIND_HOLD
        while not self._hurried and self._only_behind():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._signal.wait(left)
            self._signal.clear()
        self._hurried = False

    def _only_behind(self) -> bool:
        """Everything queued was queued by ``write_behind`` (a copy of the queue: the loop appends meanwhile)."""
        queued = list(self._pending)
        return bool(queued) and not self._closing.is_set() and all(fut in self._behind for _, fut in queued)

    def _answer(self, outcomes: list[_Outcome], notes: Notes) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(self._finish, outcomes, notes)

    def _writer_conn(self) -> psycopg.Connection[Any] | None:
        """The writer's connection, connecting again if it was lost (at most every ``DOWN_TIMEOUT`` while that
        fails); None: the database is unreachable."""
        conn = self._wconn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()
            self._wconn = None
        if time.monotonic() - self._connect_failed < DOWN_TIMEOUT:
            return None
        try:
            self._wconn = self._connect_writer()
        except psycopg.Error as exc:
            self._connect_failed = time.monotonic()
            self._down = True
            log.warning("cannot connect to the database (%s)", str(exc).strip())
            return None
        return self._wconn

    def _run_batch(self, batch: list[_Job]) -> tuple[list[_Outcome], Notes]:
        """Run ``batch`` in one transaction, answering each operation; if that cannot be (an operation refused after
        writing, a database error), each operation in a transaction of its own."""
        if len(batch) > 1:
            for attempt in range(1, BATCH_TRIES + 1):
                conn = self._writer_conn()
                if conn is None:
                    return self._unavailable(batch, "the database is unavailable; retry shortly"), Notes()
                try:
                    return self._transaction(conn, batch, together=True)
                except _RETRY:
                    self.retries += len(batch)
                    self._accounts.clear()
                    time.sleep(random.uniform(0.001, 0.004 * attempt))
                except _DOWN as exc:
                    self._lost(conn)
                    return self._unavailable(batch, f"the database is unavailable ({exc}); retry shortly"), Notes()
                except (_Fallback, psycopg.Error):
                    break
        outcomes: list[_Outcome] = []
        notes = Notes()
        for job in batch:
            done, more = self._run_alone(job)
            outcomes += done
            notes.merge(more)
        return outcomes, notes

    def _run_alone(self, job: _Job) -> tuple[list[_Outcome], Notes]:
        for attempt in range(1, MAX_TRIES + 1):
            conn = self._writer_conn()
            if conn is None:
                return self._unavailable([job], "the database is unavailable; retry shortly"), Notes()
            try:
                return self._transaction(conn, [job], together=False)
            except _RETRY as exc:
                self.retries += 1
                self._accounts.clear()
                if attempt == MAX_TRIES:
                    failure = StoreUnavailable(f"the write kept conflicting with others ({exc}); retry shortly")
                    return [(job[1], False, failure)], Notes()
                time.sleep(random.uniform(0.001, 0.004 * attempt))
            except _DOWN as exc:
                self._lost(conn)
                return self._unavailable([job], f"the database is unavailable ({exc}); retry shortly"), Notes()
            except psycopg.DataError as exc:
                return [(job[1], False, _unstorable(exc))], Notes()
            except psycopg.Error as exc:
                log.error("write failed: %s", exc)
                failure = StoreUnavailable(f"the database refused the write ({exc}); retry shortly")
                return [(job[1], False, failure)], Notes()
        raise AssertionError("unreachable")

    def _unavailable(self, batch: list[_Job], message: str) -> list[_Outcome]:
        self._down = True
        return [(fut, False, StoreUnavailable(message)) for _, fut in batch]

    def _lost(self, conn: psycopg.Connection[Any]) -> None:
        with contextlib.suppress(psycopg.Error):
            conn.close()
        if self._wconn is conn:
            self._wconn = None

    def _exec(self, conn: psycopg.Connection[Any], sql: bytes, params: Any = None,
              prepare: bool | None = None) -> psycopg.Cursor[Any]:
        self.statements += 1
        return conn.execute(sql, params, prepare=prepare)

    def _probe(self, batch: list[_Job], shared: _Batch) -> list[str]:
        """The intents the batch's operations read first, found by running each until it first asks the database
        for anything (operations are pure functions of the transaction, so this changes nothing): a resume, a
        delivery, a timer start by reading the intent they change. Fetched together, with their parents and
        workflows, they cost one round trip for the whole batch instead of one per operation."""
        misses: list[str] = []
        probe = _ProbeBatch(shared)
        for op, _ in batch:
            kind = _kind(op)
            if kind in self._unprobed:
                continue
            tx = PostgresTx(_ProbeConn(), probe, self._accounts, misses)
            tx.memo, tx.limits = self.memo, self.limits  # kept rules let the probe reach the intent it reads
            try:
                op(tx)
            except _Stop:
                if not tx.read_intent:  # it starts elsewhere (an apply, a create): no use probing its like
                    if len(self._unprobed) >= 1024:
                        self._unprobed.clear()
                    self._unprobed.add(kind)
            except Exception:  # the operation refuses: it will again, in the transaction
                pass
        return sorted(set(misses))

    def _transaction(self, conn: psycopg.Connection[Any], batch: list[_Job],
                     together: bool) -> tuple[list[_Outcome], Notes]:
        """One transaction for ``batch``, with the rows of ``_Rows``; if one of those it used had changed, once more
        without them."""
        try:
            return self._attempt(conn, batch, together, self._cache)
        except _Stale:
            self._cache.stale += 1
            self._cache.clear()
            return self._attempt(conn, batch, together, None)

    def _attempt(self, conn: psycopg.Connection[Any], batch: list[_Job], together: bool,
                 cache: _Rows | None) -> tuple[list[_Outcome], Notes]:
        """One transaction for ``batch``. ``together``: an operation that refuses after writing raises
        ``_Fallback``; else (one operation) it rolls the transaction back and is its answer."""
        shared = _Batch(self._types, self._bases, cache)
        outcomes: list[_Outcome] = []
        done: list[PostgresTx] = []
        started = time.perf_counter()
        try:
            misses = self._probe(batch, shared)
            if misses and cache is not None:
                # Outside a transaction and without locks (a lock would be written, and its transaction flushed):
                # the rows are checked with the end as cached ones are, and the batch is its end alone.
                if len(misses) == 1:
                    found = self._exec(conn, _FAMILY_READ, (misses[0],))
                else:
                    sql, params, prepare = _families(misses, lock=False)
                    found = self._exec(conn, sql, params, prepare=prepare)
                shared.keep(found.fetchall(), checked=True)
                shared.begun = False
            elif misses:  # BEGIN and the rows the operations will read first, in one round trip
                with conn.pipeline():
                    self._exec(conn, b"BEGIN", prepare=False)
                    if len(misses) == 1:
                        found = self._exec(conn, _FAMILY, (misses[0],))
                    else:
                        sql, params, prepare = _families(misses)
                        found = self._exec(conn, sql, params, prepare=prepare)
                # read once the pipeline is closed: a fetch inside it waits for the rows, and closing it is a second
                # round trip (its Sync)
                shared.keep(found.fetchall())
            else:  # BEGIN goes with the first statement: with the end, if the operations read nothing
                shared.begun = False
            for op, fut in batch:
                tx = PostgresTx(_Conn(conn, self, shared), shared, self._accounts)
                tx.memo = self.memo
                tx.limits = self.limits
                try:
                    result = op(tx)
                except psycopg.Error:
                    raise
                except Exception as exc:  # the operation refused
                    if not tx.changed_anything():
                        outcomes.append((fut, False, exc))
                        continue
                    if together:
                        raise _Fallback from exc
                    self._rollback(conn)
                    self.memo.clear()  # what the operation kept may have come from its writes, now undone
                    return [(fut, False, exc)], Notes()
                outcomes.append((fut, True, result))
                done.append(tx)
                if tx.locked_family and self._unprobed:  # it did start by reading an intent: probe its like again
                    self._unprobed.discard(_kind(op))
            notes, xid = self._end(conn, done, shared)
        except BaseException:
            self._rollback(conn)
            self.memo.clear()  # what operations kept may have come from this batch's writes, now undone
            if shared.accounts_changed:
                self._accounts.clear()
            raise
        if shared.accounts_changed:
            self._accounts.clear()
        self._remember(shared, xid)
        self.commits += 1
        self._down = False
        if self.on_batch is not None:
            self.on_batch(len(batch), time.perf_counter() - started)
        return outcomes, notes

    def _remember(self, shared: _Batch, xid: str | None) -> None:
        """Keep the rows of a committed batch (``_Rows``): those it wrote at its transaction's id (``xid``; None
        when unknown, and then they are dropped), the others at the version they were read or taken at."""
        if shared.raw_rows:
            self._cache.clear()
            return
        for table in ("intents", "workflows"):
            for key, row in shared.rows(table).items():
                version = xid if (table, key) in shared.written else shared.versions.get((table, key))
                self._cache.put(table, key, row, version)

    def _rollback(self, conn: psycopg.Connection[Any]) -> None:
        if conn.closed or conn.broken:
            return
        with contextlib.suppress(psycopg.Error):
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                self._exec(conn, b"ROLLBACK", prepare=False)

    def _end(self, conn: psycopg.Connection[Any], done: list[PostgresTx], shared: _Batch) -> tuple[Notes, str | None]:
        """What the batch's operations held back, and COMMIT, in one round trip (pipeline mode): one statement
        (``_write_statement``, ``_END``) writes the intents and workflows, the events, the feed rows with their heads
        (bumped once per address, in address order) and sends the notification. Before it, the check of the cached
        rows used since the last statement (``_Batch.check``). Also the transaction's id, if the end was sent."""
        notes = Notes()
        events: list[Any] = []
        fed: list[tuple[str, str, int, str]] = []
        for tx in done:
            notes.merge(tx.notes)
            events += tx._events
            fed += tx.fed
        counts: dict[str, int] = {}
        feed_rows: list[tuple[str, int, str, int, str]] = []
        backs: dict[tuple[str, str, int], int] = {}
        for address, _, _, _ in fed:
            counts[address] = counts.get(address, 0) + 1
        seen: dict[str, int] = {}
        for address, intent_id, attempt, at in fed:  # each row's place counted back from its address's new head
            back = seen.get(address, 0) - counts[address] + 1
            seen[address] = seen.get(address, 0) + 1
            backs[address, intent_id, attempt] = back
            feed_rows.append((address, back, intent_id, attempt, at))
        handed = [(address, row) for address, rows in (notes.fed or {}).items() for row in rows]
        for address, row in handed:  # until the heads are known (the payloads carry it so)
            row["cursor"] = backs.get((address, row["intent_id"], row["attempt"]), 0)
        if len(counts) <= _HEADS_IN_PAYLOAD:
            payloads = encode_notes(self.replica_id, notes, from_heads=len(counts))
        else:  # the heads would not fit: the feeds are named alone and their streams read
            payloads = encode_notes(self.replica_id, dataclasses.replace(notes, fed=None))
        parts, params = shared.parts() if shared.held else ((), [])
        checks = shared.check()
        lazy = all(tx.lazy for tx in done)
        try:
            if not (parts or events or fed or payloads):  # it only read: its locks go with the COMMIT
                if not shared.begun:
                    if checks is not None:  # what it read must still be so, its refusals included
                        self._exec(conn, _CHECK, (checks,))
                    return notes, None  # else nothing was read or written: no transaction to end
                with conn.pipeline():
                    if checks is not None:
                        self._exec(conn, _CHECK, (checks,))
                    self._exec(conn, b"COMMIT", prepare=False)
                return notes, None
            sql = _write_statement(parts, True, checks is not None)
            args = (*([checks] if checks is not None else []), *params,
                    orjson.dumps([events[n:n + 3] for n in range(0, len(events), 3)]).decode(),
                    orjson.dumps(sorted(counts.items())).decode(), orjson.dumps(feed_rows).decode(),
                    "\x1e".join(payloads))
            if not shared.begun and not lazy:
                # one statement, a transaction of its own (committed, the disk waited for, before its reply): no BEGIN,
                # COMMIT or pipeline, which cost the writer three times the CPU of the statement alone
                end = self._exec(conn, sql, args)
            else:
                with conn.pipeline():
                    if not shared.begun:
                        self._exec(conn, b"BEGIN", prepare=False)
                    end = self._exec(conn, sql, args)
                    if lazy:
                        self._exec(conn, _LAZY, prepare=False)
                    self._exec(conn, b"COMMIT", prepare=False)
        except pg_errors.DivisionByZero as exc:
            if checks is not None:
                raise _Stale from exc
            raise
        answer = end.fetchone()
        if handed:
            last = orjson.loads(answer["heads"]) if answer is not None else {}
            for address, row in handed:
                row["cursor"] += int(last.get(address, 0))
        return notes, answer["xid"] if answer is not None else None

    # notifications from other replicas
    async def _listen(self) -> None:
        """On the event loop: other replicas' notes, as they commit (no thread, no hand-over between threads)."""
        missed = False
        while not self._closing.is_set():
            try:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True,
                                                             application_name=self._app_name)
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    if missed:  # changes made while we were not listening: everyone looks again
                        self._deliver(Notes(everything=True))
                        missed = False
                    async for note in conn.notifies():
                        if note.payload.startswith(self._own):  # this replica's: on_commit had them
                            continue
                        replica, notes = decode_notes(note.payload)
                        if replica != self.replica_id:
                            self._deliver(notes)
            except psycopg.Error as exc:
                if self._closing.is_set():
                    return
                log.warning("notification connection lost (%s); reconnecting", exc)
                missed = True
                self._listening.set()  # do not hold up start-up; the reconnect wakes everyone
                await asyncio.sleep(0.5)

    def _deliver(self, notes: Notes) -> None:
        if notes.keys_changed or notes.everything:  # a service account may have changed
            self._accounts.clear()
        if notes.everything:
            self._cache.clear()
        elif notes.intents:  # another replica changed them: a batch here would find them stale and run again
            self._cache.drop(notes.intents)
        if self.on_commit is not None:
            self.on_commit(notes)

    # reads
    async def _read(self, fn: Callable[[Any], T]) -> T:
        """``fn(connection)`` as ``SqlReads`` writes it (sync ``execute``, ``fetchone``/``fetchall``), run on the
        event loop: each statement it runs goes out on an async connection, and ``fn`` (a read: no side effects)
        runs again with the answers so far until it asks for no more (``_Replay``)."""
        for attempt in range(1, 4):
            pool = self._rpool
            if pool is None or self._loop is None:
                raise StoreUnavailable("the store is closed")
            try:
                async with pool.connection(self._wait()) as conn:
                    answers: list[tuple[list[Any], int]] = []
                    while True:
                        try:
                            result = fn(_Replay(answers))
                        except _Ask as ask:
                            self.statements += 1
                            cur = await conn.execute(ask.sql, ask.params)
                            rows = await cur.fetchall() if cur.description is not None else []
                            answers.append((rows, cur.rowcount))
                            continue
                        break
            except psycopg_pool.PoolTimeout as exc:
                self._down = True
                raise StoreUnavailable(f"the database could not be read ({exc}); retry shortly") from exc
            except _DOWN as exc:  # a pooled connection the server closed: the pool drops it; try another
                if attempt < 3:
                    continue
                self._down = True
                raise StoreUnavailable(f"the database could not be read ({exc}); retry shortly") from exc
            except psycopg.DataError as exc:
                raise _unstorable(exc) from exc
            self._down = False
            return result
        raise AssertionError("unreachable")

    async def intent_events(self, intent_id: str, since: int, limit: int) -> tuple[Row | None, list[str]]:
        """One statement, one round trip: every stream of an intent starts with it."""
        row = await self._read(lambda c: c.execute(_INTENT_EVENTS, (intent_id, since, limit, intent_id)).fetchone())
        if row is None:
            return None, []
        row = dict(row)
        return row, row.pop("stream_events")

    def _wait(self) -> float:
        """How long a read waits for a pooled connection: the pool keeps trying to connect in the background,
        so once the database is known to be down a read only looks for one it may have made meanwhile."""
        return DOWN_TIMEOUT if self._down else POOL_TIMEOUT


def _unstorable(exc: psycopg.DataError) -> BadRequest:
    """A value PostgreSQL cannot hold (a NUL character in text, a number out of range): the caller's input."""
    return BadRequest(f"a value in this request cannot be stored: {str(exc).splitlines()[0]}", code="invalid_value")

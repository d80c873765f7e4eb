"""PostgreSQL store: several runtime replicas on one database.

- Writes: each operation runs in its own transaction on a pooled connection, on a small thread pool.
  PostgreSQL groups concurrent commits itself. Rows an operation is about to change are read
  ``FOR UPDATE`` (``SqlTx.LOCK``), so two replicas changing one intent take turns and its event ``seq``
  stays dense; the feed head upsert locks the head row, so an agent's cursors stay dense in commit order.
  A deadlock, a serialization failure or a unique-key race (two replicas answering one idempotency key)
  rolls the operation back and runs it again (operations are pure functions of the transaction).
- Timers are claimed with ``FOR UPDATE SKIP LOCKED`` (``SqlTx.CLAIM``) inside the transaction that fires
  them: the row lock is the lease. A replica that dies loses its connection, PostgreSQL rolls its
  transaction back and releases the rows, and the next replica whose scheduler looks takes them.
- Wake-ups across replicas: a transaction that changed something also sends ``pg_notify('axme', ...)``
  with its ``Notes`` (delivered only if it commits). One LISTEN connection per replica turns other
  replicas' notifications into ``on_commit`` calls on this replica, which wake its streams and scheduler.
  If that connection drops, the replica reconnects and wakes everything once (it may have missed some).
- Reads run on a second pool, on their own threads, in autocommit mode.
- An outage fails fast: a request waits at most ``POOL_TIMEOUT`` for a connection (``DOWN_TIMEOUT`` once one
  has failed, until one succeeds) and gets 503 ``storage_unavailable``; TCP keepalives and ``tcp_user_timeout``
  bound a query on a connection whose peer vanished; the pools retry connecting at least every second, so
  writes resume within about a second of the database coming back.
- Migrations run under an advisory lock, so replicas starting together apply each one once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg
import psycopg_pool
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from axme_cli.runtime.errors import BadRequest, StoreUnavailable
from axme_cli.runtime.store.base import Notes, Row, Store, Tx
from axme_cli.runtime.store.sql import SqlReads, SqlTx, load_migrations, split_sql
from axme_cli.runtime.store.urls import redact

T = TypeVar("T")
log = logging.getLogger("axme.store")

CHANNEL = "axme"
MIGRATION_LOCK = 0x6178_6D65  # "axme": pg_advisory_lock key held while migrating
MAX_TRIES = 8
_NOTIFY_LIMIT = 7000  # bytes per notification payload (PostgreSQL allows < 8000)
_RETRY = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure, pg_errors.UniqueViolation,
          pg_errors.LockNotAvailable)
_DOWN = (psycopg.OperationalError, psycopg.InterfaceError, psycopg_pool.PoolTimeout)
POOL_TIMEOUT = 1.0  # seconds a request waits for a pooled connection before its 503
DOWN_TIMEOUT = 0.1  # the same while the database is known to be down (the last request found it so)
RECONNECT_TIMEOUT = 2.0  # a pool gives up a reconnect attempt after this; the next request starts a new one
# libpq settings unless the URL sets them: connect attempts, and the connection whose peer vanished without a
# word (a query waits at most tcp_user_timeout ms for its bytes to be acknowledged; an idle one is probed).
NETWORK_DEFAULTS = {"connect_timeout": "2", "keepalives": "1", "keepalives_idle": "5", "keepalives_interval": "1",
                    "keepalives_count": "3", "tcp_user_timeout": "2000"}


@functools.lru_cache(maxsize=4096)
def _pg_sql(sql: str) -> bytes:
    return sql.replace("?", "%s").encode()


class _Conn:
    """The connection as the shared SQL sees it: ``execute(sql, params)`` with ``?`` placeholders."""

    __slots__ = ("_c",)

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._c = conn

    def execute(self, sql: str, params: Any = ()) -> psycopg.Cursor[Any]:
        return self._c.execute(_pg_sql(sql), tuple(params))


class _ReplicaNotes(Notes):
    """Notes of a PostgreSQL transaction, which collect no events or feed rows: on SQLite a stream sends those
    without reading them back, but with several replicas committing, a stream handed this replica's events was
    seen to miss a wake-up now and then, so here streams read what they send."""

    def feed_row(self, address: str, row: Row) -> None:
        pass

    def event(self, intent_id: str, seq: int, data: str) -> None:
        pass


class PostgresTx(SqlTx):
    LOCK = " FOR UPDATE"
    CLAIM = " FOR UPDATE SKIP LOCKED"
    OCTETS = "octet_length({})"
    LAZY_COMMIT = "SET LOCAL synchronous_commit = off"

    def __init__(self, conn: Any) -> None:
        super().__init__(conn)
        self.notes = _ReplicaNotes()

    def exclusive(self, name: str) -> None:
        self._c.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (name,))


def encode_notes(replica: str, notes: Notes) -> list[str]:
    """``notes`` as notification payloads of at most ~7 kB each (a big transaction sends several)."""
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
    items = [("i", x) for x in sorted(notes.intents)] + [("f", x) for x in sorted(notes.feeds)]
    payloads: list[str] = []
    current: dict[str, Any] = dict(base)
    size = len(json.dumps(current))
    for kind, value in items:
        if size + len(value) + 8 > _NOTIFY_LIMIT:
            payloads.append(json.dumps(current))
            current = {"r": replica}
            size = len(json.dumps(current))
        current.setdefault(kind, []).append(value)
        size += len(value) + 4
    payloads.append(json.dumps(current))
    return payloads


def decode_notes(payload: str) -> tuple[str, Notes]:
    data = json.loads(payload)
    notes = Notes(intents=set(data.get("i", ())), feeds=set(data.get("f", ())),
                  keys_changed=bool(data.get("k")), everything=bool(data.get("e")), outbound=bool(data.get("o")),
                  mail=bool(data.get("m")), schemas=bool(data.get("s")), policies=bool(data.get("p")),
                  killed={str(a): bool(k) for a, k in data["x"].items()} if data.get("x") else None,
                  quotas=bool(data.get("q")))
    notes.timer(data.get("w"))
    return str(data.get("r", "")), notes


class PostgresStore(SqlReads, Store):
    kind = "postgresql"

    def __init__(self, url: str, *, replica_id: str | None = None, writers: int = 8, readers: int = 8) -> None:
        self.url = url
        self.location = redact(url)
        self.replica_id = replica_id or uuid.uuid4().hex[:12]
        self.writers = writers
        self.readers = readers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wpool: psycopg_pool.ConnectionPool[Any] | None = None
        self._rpool: psycopg_pool.ConnectionPool[Any] | None = None
        self._wexec: ThreadPoolExecutor | None = None
        self._rexec: ThreadPoolExecutor | None = None
        self._listener: threading.Thread | None = None
        self._closing = threading.Event()
        self._listening = threading.Event()
        self._app_name = f"axme-{self.replica_id}"[:63]
        self._conninfo = url  # the URL with the NETWORK_DEFAULTS it does not set itself
        self._down = False  # the last request found the database unreachable: the next ones wait less
        self.retries = 0  # operations run again after a deadlock or race (for tests and metrics)

    # lifecycle
    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._closing.clear()
        await self._loop.run_in_executor(None, self._open_sync)
        self._listener = threading.Thread(target=self._listen, name="axme-pg-listen", daemon=True)
        self._listener.start()
        await self._loop.run_in_executor(None, self._listening.wait, 10.0)

    def _open_sync(self) -> None:
        try:
            given = conninfo_to_dict(self.url)
            self._conninfo = make_conninfo(self.url, **{k: v for k, v in NETWORK_DEFAULTS.items() if k not in given})
            with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10) as conn:
                self._migrate(conn)
            kwargs = {"autocommit": True, "row_factory": dict_row, "application_name": self._app_name}
            self._wpool = psycopg_pool.ConnectionPool(
                self._conninfo, min_size=1, max_size=self.writers, kwargs=kwargs, name="axme-write",
                check=psycopg_pool.ConnectionPool.check_connection, timeout=POOL_TIMEOUT, open=True,
                reconnect_timeout=RECONNECT_TIMEOUT,
            )
            self._rpool = psycopg_pool.ConnectionPool(
                self._conninfo, min_size=1, max_size=self.readers, kwargs=kwargs, name="axme-read",
                check=psycopg_pool.ConnectionPool.check_connection, timeout=POOL_TIMEOUT, open=True,
                reconnect_timeout=RECONNECT_TIMEOUT,
            )
            self._wpool.wait(10.0)
            self._rpool.wait(10.0)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            self._close_pools()
            raise StoreUnavailable(f"cannot open the database {self.location}: {exc}") from exc
        self._wexec = ThreadPoolExecutor(self.writers, thread_name_prefix="axme-pg-write")
        self._rexec = ThreadPoolExecutor(self.readers, thread_name_prefix="axme-pg-read")

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
        for pool in (self._wpool, self._rpool):
            if pool is not None:
                pool.close()
        self._wpool = self._rpool = None

    async def close(self) -> None:
        self._closing.set()
        loop = asyncio.get_running_loop()
        if self._listener is not None:
            await loop.run_in_executor(None, self._listener.join, 5.0)
            self._listener = None
        for ex in (self._wexec, self._rexec):
            if ex is not None:
                await loop.run_in_executor(None, functools.partial(ex.shutdown, wait=True))
        self._wexec = self._rexec = None
        await loop.run_in_executor(None, self._close_pools)

    # writes
    async def write(self, op: Callable[[Tx], T]) -> T:
        if self._wexec is None or self._loop is None:
            raise StoreUnavailable("the store is closed")
        return await self._loop.run_in_executor(self._wexec, self._run, op)

    def _run(self, op: Callable[[Tx], T]) -> T:
        pool = self._wpool
        if pool is None:
            raise StoreUnavailable("the store is closed")
        for attempt in range(1, MAX_TRIES + 1):
            try:
                with pool.connection(self._wait()) as conn:
                    started = time.perf_counter()
                    with conn.transaction():
                        tx = PostgresTx(_Conn(conn))
                        tx.memo = self.memo
                        tx.limits = self.limits
                        result = op(tx)
                        tx.finish()
                        for payload in encode_notes(self.replica_id, tx.notes):
                            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
                    took = time.perf_counter() - started
            except _RETRY as exc:
                self.retries += 1
                if attempt == MAX_TRIES:
                    raise StoreUnavailable(f"the write kept conflicting with others ({exc}); retry shortly") from exc
                time.sleep(random.uniform(0.001, 0.004 * attempt))
                continue
            except _DOWN as exc:
                self._down = True
                raise StoreUnavailable(f"the database is unavailable ({exc}); retry shortly") from exc
            except psycopg.DataError as exc:
                raise _unstorable(exc) from exc
            self._down = False
            assert self._loop is not None
            if self.on_batch is not None:  # one operation per transaction
                self.on_batch(1, took)
            if self.on_commit is not None:
                self._loop.call_soon_threadsafe(self.on_commit, tx.notes)
            return result
        raise AssertionError("unreachable")

    # notifications from other replicas
    def _listen(self) -> None:
        missed = False
        while not self._closing.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, application_name=self._app_name) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    if missed:  # changes made while we were not listening: everyone looks again
                        self._deliver(Notes(everything=True))
                        missed = False
                    while not self._closing.is_set():
                        for note in conn.notifies(timeout=0.5):
                            replica, notes = decode_notes(note.payload)
                            if replica != self.replica_id:
                                self._deliver(notes)
            except psycopg.Error as exc:
                if self._closing.is_set():
                    return
                log.warning("notification connection lost (%s); reconnecting", exc)
                missed = True
                self._listening.set()  # do not hold up start-up; the reconnect wakes everyone
                self._closing.wait(0.5)

    def _deliver(self, notes: Notes) -> None:
        loop, callback = self._loop, self.on_commit
        if loop is None or callback is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closing
            loop.call_soon_threadsafe(callback, notes)

    # reads
    async def _read(self, fn: Callable[[Any], T]) -> T:
        if self._rexec is None or self._loop is None:
            raise StoreUnavailable("the store is closed")
        return await self._loop.run_in_executor(self._rexec, self._read_sync, fn)

    def _read_sync(self, fn: Callable[[Any], T]) -> T:
        pool = self._rpool
        if pool is None:
            raise StoreUnavailable("the store is closed")
        try:
            with pool.connection(self._wait()) as conn:
                result = fn(_Conn(conn))
        except _DOWN as exc:
            self._down = True
            raise StoreUnavailable(f"the database could not be read ({exc}); retry shortly") from exc
        except psycopg.DataError as exc:
            raise _unstorable(exc) from exc
        self._down = False
        return result

    def _wait(self) -> float:
        """How long a request waits for a pooled connection: the pool keeps trying to connect in the background,
        so once the database is known to be down a request only looks for one it may have made meanwhile."""
        return DOWN_TIMEOUT if self._down else POOL_TIMEOUT


def _unstorable(exc: psycopg.DataError) -> BadRequest:
    """A value PostgreSQL cannot hold (a NUL character in text, a number out of range): the caller's input."""
    return BadRequest(f"a value in this request cannot be stored: {str(exc).splitlines()[0]}", code="invalid_value")

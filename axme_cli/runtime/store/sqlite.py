"""SQLite store: WAL, one writer thread with group commit, reads on the event loop.

Every write operation is queued to the writer thread. The thread takes everything queued
(up to ``MAX_BATCH``), runs each operation inside its own SAVEPOINT of one ``BEGIN IMMEDIATE``
transaction, commits once with ``synchronous=FULL``, and only then answers the callers. An
operation that raises rolls back to its savepoint alone; a database error (disk full, file
locked) fails the whole batch with ``StoreUnavailable`` and nothing of it is answered as done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any, TypeVar

from axme_cli.runtime.errors import StoreUnavailable
from axme_cli.runtime.store.base import Notes, Row, Store, Tx
from axme_cli.runtime.store.task_links_sql import TaskLinksReadSql, TaskLinksTxSql

T = TypeVar("T")
log = logging.getLogger("axme.store")

MAX_BATCH = 512
_INTENT_COLUMNS = (
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
)
_INSERT_INTENT = (
    f"INSERT INTO intents ({', '.join(_INTENT_COLUMNS)}) VALUES ({', '.join('?' for _ in _INTENT_COLUMNS)})"
)


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("axme_cli.runtime.store") / "migrations" / "sqlite"
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), entry.read_text(encoding="utf-8")))
    return sorted(found)


class SqliteTx(TaskLinksTxSql, Tx):
    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__()
        self._c = conn

    def _one(self, sql: str, args: tuple[Any, ...]) -> Row | None:
        row = self._c.execute(sql, args).fetchone()
        return dict(row) if row is not None else None

    def get_intent(self, intent_id: str) -> Row | None:
        return self._one("SELECT * FROM intents WHERE intent_id = ?", (intent_id,))

    def insert_intent(self, row: Row) -> None:
        self._c.execute(_INSERT_INTENT, tuple(row.get(c) for c in _INTENT_COLUMNS))

    def update_intent(self, intent_id: str, fields: Row) -> None:
        cols = ", ".join(f"{k} = ?" for k in fields)
        self._c.execute(f"UPDATE intents SET {cols} WHERE intent_id = ?", (*fields.values(), intent_id))

    def insert_event(self, intent_id: str, seq: int, data: str) -> None:
        self._c.execute("INSERT INTO events (intent_id, seq, data) VALUES (?, ?, ?)", (intent_id, seq, data))

    def append_feed(self, address: str, intent_id: str, attempt: int, at: str) -> int:
        row = self._c.execute(
            "INSERT INTO feed_heads (address, last_cursor) VALUES (?, 1) "
            "ON CONFLICT (address) DO UPDATE SET last_cursor = last_cursor + 1 RETURNING last_cursor",
            (address,),
        ).fetchone()
        cursor = int(row[0])
        self._c.execute(
            "INSERT INTO feed (address, cursor, intent_id, attempt, at) VALUES (?, ?, ?, ?, ?)",
            (address, cursor, intent_id, attempt, at),
        )
        return cursor

    def due_intents(self, now: float, limit: int) -> list[str]:
        rows = self._c.execute(
            "SELECT intent_id FROM intents WHERE wake_ts IS NOT NULL AND wake_ts <= ? ORDER BY wake_ts LIMIT ?",
            (now, limit),
        ).fetchall()
        return [r[0] for r in rows]

    def intents_for_cleanup(self, created_before: str, statuses: list[str], limit: int) -> list[Row]:
        marks = ", ".join("?" for _ in statuses)
        rows = self._c.execute(
            f"SELECT * FROM intents WHERE status IN ({marks}) AND created_at < ? ORDER BY intent_id LIMIT ?",
            (*statuses, created_before, limit),
        ).fetchall()
        return [dict(r) for r in rows]

    def idem_get(self, scope: str, key: str) -> Row | None:
        return self._one("SELECT * FROM idempotency WHERE scope = ? AND key = ?", (scope, key))

    def idem_put(
        self, scope: str, key: str, body_hash: str, status_code: int, response: str, created_ts: float
    ) -> None:
        self._c.execute(
            "INSERT INTO idempotency (scope, key, body_hash, status_code, response, created_ts) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (scope, key, body_hash, status_code, response, created_ts),
        )

    def idem_expire(self, before_ts: float) -> int:
        return self._c.execute("DELETE FROM idempotency WHERE created_ts < ?", (before_ts,)).rowcount

    def get_service_account(self, sa_id: str) -> Row | None:
        return self._one("SELECT * FROM service_accounts WHERE service_account_id = ?", (sa_id,))

    def active_service_account_by_address(self, address: str) -> Row | None:
        return self._one("SELECT * FROM service_accounts WHERE address = ? AND status = 'active'", (address,))

    def insert_service_account(self, row: Row) -> None:
        cols = list(row)
        self._c.execute(
            f"INSERT INTO service_accounts ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
            tuple(row.values()),
        )

    def update_service_account(self, sa_id: str, fields: Row) -> None:
        cols = ", ".join(f"{k} = ?" for k in fields)
        self._c.execute(f"UPDATE service_accounts SET {cols} WHERE service_account_id = ?", (*fields.values(), sa_id))

    def get_key(self, key_id: str) -> Row | None:
        return self._one("SELECT * FROM api_keys WHERE key_id = ?", (key_id,))

    def insert_key(self, row: Row) -> None:
        cols = list(row)
        self._c.execute(
            f"INSERT INTO api_keys ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
            tuple(row.values()),
        )
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
        marks = ", ".join("?" for _ in lookups)
        rows = self._c.execute(f"SELECT * FROM api_keys WHERE lookup IN ({marks})", tuple(lookups))
        return [dict(r) for r in rows.fetchall()]

    def _insert(self, table: str, row: Row) -> None:
        cols = list(row)
        self._c.execute(
            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})", tuple(row.values())
        )

    def _update(self, table: str, id_column: str, id_value: str, fields: Row) -> None:
        cols = ", ".join(f"{k} = ?" for k in fields)
        self._c.execute(f"UPDATE {table} SET {cols} WHERE {id_column} = ?", (*fields.values(), id_value))

    def open_login_intents(self, email: str, now: float, max_tries: int) -> list[Row]:
        rows = self._c.execute(
            "SELECT * FROM login_intents WHERE email = ? AND expires_ts > ? AND used_ts IS NULL AND tries < ? "
            "ORDER BY created_ts",
            (email, now, max_tries),
        ).fetchall()
        return [dict(r) for r in rows]

    def insert_login_intent(self, row: Row) -> None:
        self._insert("login_intents", row)

    def get_login_intent(self, intent_id: str) -> Row | None:
        return self._one("SELECT * FROM login_intents WHERE intent_id = ?", (intent_id,))

    def update_login_intent(self, intent_id: str, fields: Row) -> None:
        self._update("login_intents", "intent_id", intent_id, fields)

    def actor_by_email(self, email: str) -> Row | None:
        return self._one("SELECT * FROM actors WHERE email = ?", (email,))

    def insert_actor(self, row: Row) -> None:
        self._insert("actors", row)

    def insert_session(self, row: Row) -> None:
        self._insert("sessions", row)

    def get_session(self, session_id: str) -> Row | None:
        return self._one("SELECT * FROM sessions WHERE session_id = ?", (session_id,))

    def update_session(self, session_id: str, fields: Row) -> None:
        self._update("sessions", "session_id", session_id, fields)
        self.notes.keys_changed = True

    def insert_session_token(self, row: Row) -> None:
        self._insert("session_tokens", row)

    def get_session_token(self, token_id: str) -> Row | None:
        return self._one("SELECT * FROM session_tokens WHERE token_id = ?", (token_id,))

    def update_session_token(self, token_id: str, fields: Row) -> None:
        self._update("session_tokens", "token_id", token_id, fields)

    def prune_auth(self, before_ts: float) -> int:
        n = self._c.execute("DELETE FROM login_intents WHERE expires_ts < ?", (before_ts,)).rowcount
        n += self._c.execute(
            "DELETE FROM session_tokens WHERE expires_ts < ? OR session_id IN "
            "(SELECT session_id FROM sessions WHERE revoked_at IS NOT NULL OR expires_ts < ?)",
            (before_ts, before_ts),
        ).rowcount
        n += self._c.execute("DELETE FROM sessions WHERE expires_ts < ?", (before_ts,)).rowcount
        return n

    def insert_workflow(self, row: Row) -> None:
        cols = list(row)
        self._c.execute(
            f"INSERT INTO workflows ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})", tuple(row.values())
        )

    def get_workflow(self, workflow_id: str) -> Row | None:
        return self._one("SELECT * FROM workflows WHERE workflow_id = ?", (workflow_id,))

    def update_workflow(self, workflow_id: str, fields: Row) -> None:
        cols = ", ".join(f"{k} = ?" for k in fields)
        self._c.execute(f"UPDATE workflows SET {cols} WHERE workflow_id = ?", (*fields.values(), workflow_id))

    def get_meta(self, key: str) -> str | None:
        row = self._c.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._c.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


_Job = tuple[Callable[[Tx], Any], "asyncio.Future[Any]"]


class SqliteStore(TaskLinksReadSql, Store):
    kind = "sqlite"

    def __init__(self, path: str) -> None:
        self.location = os.path.abspath(os.path.expanduser(path))
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader: sqlite3.Connection | None = None
        self._write: sqlite3.Connection | None = None
        self.batches = 0
        self.ops = 0
        self._checkpointer: threading.Thread | None = None
        self._checkpoint_due = threading.Event()
        self._closing = threading.Event()

    # lifecycle
    async def open(self) -> None:
        folder = os.path.dirname(self.location)
        if folder:
            os.makedirs(folder, exist_ok=True)
        self._loop = asyncio.get_running_loop()
        try:
            self._write = _connect(self.location)
            self._migrate(self._write)
            # Checkpoints run on their own thread and connection (below), never inside a commit of the writer.
            self._write.execute("PRAGMA wal_autocheckpoint=0")
            self._reader = _connect(self.location)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open the database {self.location}: {exc}") from exc
        self._closing.clear()
        self._thread = threading.Thread(target=self._writer, name="axme-sqlite-writer", daemon=True)
        self._thread.start()
        self._checkpointer = threading.Thread(target=self._checkpoints, name="axme-sqlite-checkpoint", daemon=True)
        self._checkpointer.start()

    def _checkpoints(self) -> None:
        """PASSIVE checkpoints every 256 batches or second: the WAL stays small and commits stay short."""
        try:
            conn = _connect(self.location)
        except sqlite3.Error as exc:
            log.error("checkpoint connection failed: %s", exc)
            return
        with contextlib.closing(conn):
            while not self._closing.is_set():
                self._checkpoint_due.wait(1.0)
                self._checkpoint_due.clear()
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:
                    log.warning("checkpoint failed: %s", exc)

    async def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
            self._thread = None
        if self._checkpointer is not None:
            self._closing.set()
            self._checkpoint_due.set()
            await asyncio.get_running_loop().run_in_executor(None, self._checkpointer.join)
            self._checkpointer = None
        for conn in (self._reader, self._write):
            if conn is not None:
                conn.close()
        self._reader = self._write = None

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT)")
        applied = {r[0] for r in conn.execute("SELECT version FROM schema_version")}
        for version, sql in _migrations():
            if version in applied:
                continue
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _split_sql(sql):
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, datetime('now'))", (version,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    # writes
    async def write(self, op: Callable[[Tx], T]) -> T:
        if self._thread is None or self._loop is None:
            raise StoreUnavailable("the store is closed")
        fut: asyncio.Future[T] = self._loop.create_future()
        self._queue.put((op, fut))
        return await fut

    def _writer(self) -> None:
        conn = self._write
        assert conn is not None and self._loop is not None
        loop = self._loop
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch: list[_Job] = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            outcomes, notes = self._run_batch(conn, batch)
            self.batches += 1
            if self.batches % 256 == 0:
                self._checkpoint_due.set()
            self.ops += len(batch)
            with contextlib.suppress(RuntimeError):  # loop already closed at shutdown
                loop.call_soon_threadsafe(self._finish, outcomes, notes)
            if stop:
                return

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> tuple[list[Any], Notes]:
        notes = Notes()
        outcomes: list[tuple[asyncio.Future[Any], bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op, fut in batch:
                tx = SqliteTx(conn)
                conn.execute("SAVEPOINT op")
                try:
                    result = op(tx)
                except sqlite3.OperationalError:
                    raise
                except BaseException as exc:  # the operation refused: undo it alone
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    outcomes.append((fut, False, exc))
                    continue
                conn.execute("RELEASE op")
                notes.merge(tx.notes)
                outcomes.append((fut, True, result))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.error("write batch of %d failed: %s", len(batch), exc)
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            failure = StoreUnavailable(f"the database refused the write ({exc}); retry shortly")
            return [(fut, False, failure) for _, fut in batch], Notes()
        return outcomes, notes

    def _finish(self, outcomes: list[tuple[asyncio.Future[Any], bool, Any]], notes: Notes) -> None:
        for fut, ok, value in outcomes:
            if fut.done():
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)
        if self.on_commit is not None:
            self.on_commit(notes)

    # reads (on the event loop thread; WAL readers never block the writer)
    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        if self._reader is None:
            raise StoreUnavailable("the store is closed")
        try:
            yield self._reader
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"the database could not be read ({exc}); retry shortly") from exc

    async def _read(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(connection)`` as a read. ``connection.execute(sql, params)`` takes ``?`` placeholders and
        gives rows that ``dict(row)`` turns into column -> value (read columns by name, never by index)."""
        with self._reading() as c:
            return fn(c)

    async def get_intent(self, intent_id: str) -> Row | None:
        with self._reading() as c:
            row = c.execute("SELECT * FROM intents WHERE intent_id = ?", (intent_id,)).fetchone()
            return dict(row) if row is not None else None

    async def list_events(self, intent_id: str, since: int, limit: int = 1000) -> list[str]:
        with self._reading() as c:
            rows = c.execute(
                "SELECT data FROM events WHERE intent_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (intent_id, since, limit),
            ).fetchall()
            return [r[0] for r in rows]

    async def list_intents(
        self, *, statuses: list[str] | None, agent: str | None, limit: int, before: str | None = None
    ) -> list[Row]:
        where: list[str] = []
        args: list[Any] = []
        if statuses:
            where.append(f"status IN ({', '.join('?' for _ in statuses)})")
            args.extend(statuses)
        if agent is not None:
            where.append("(to_agent = ? OR from_agent = ?)")
            args.extend([agent, agent])
        if before is not None:
            where.append("intent_id < ?")
            args.append(before)
        sql = "SELECT * FROM intents"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY intent_id DESC LIMIT ?"
        args.append(limit)
        with self._reading() as c:
            return [dict(r) for r in c.execute(sql, args).fetchall()]

    async def feed_entries(self, address: str, since: int, limit: int) -> list[Row]:
        with self._reading() as c:
            rows = c.execute(
                "SELECT f.cursor, f.attempt, f.at AS fed_at, i.* FROM feed f "
                "JOIN intents i ON i.intent_id = f.intent_id "
                "WHERE f.address = ? AND f.cursor > ? AND f.attempt = i.delivery_attempt "
                "ORDER BY f.cursor LIMIT ?",
                (address, since, limit),
            ).fetchall()
            return [dict(r) for r in rows]

    async def feed_head(self, address: str) -> int:
        with self._reading() as c:
            row = c.execute("SELECT last_cursor FROM feed_heads WHERE address = ?", (address,)).fetchone()
            return int(row[0]) if row is not None else 0

    async def next_wake(self) -> float | None:
        with self._reading() as c:
            row = c.execute("SELECT min(wake_ts) FROM intents WHERE wake_ts IS NOT NULL").fetchone()
            return None if row is None or row[0] is None else float(row[0])

    async def keys_by_lookup(self, lookups: list[str]) -> list[Row]:
        with self._reading() as c:
            marks = ", ".join("?" for _ in lookups)
            rows = c.execute(f"SELECT * FROM api_keys WHERE lookup IN ({marks})", tuple(lookups))
            return [dict(r) for r in rows.fetchall()]

    async def get_service_account(self, sa_id: str) -> Row | None:
        with self._reading() as c:
            row = c.execute("SELECT * FROM service_accounts WHERE service_account_id = ?", (sa_id,)).fetchone()
            return dict(row) if row is not None else None

    async def list_service_accounts(self, *, include_deleted: bool = False) -> list[Row]:
        sql = "SELECT * FROM service_accounts"
        if not include_deleted:
            sql += " WHERE status != 'deleted'"
        with self._reading() as c:
            return [dict(r) for r in c.execute(sql + " ORDER BY created_at").fetchall()]

    async def list_keys(self, sa_id: str) -> list[Row]:
        with self._reading() as c:
            rows = c.execute(
                "SELECT * FROM api_keys WHERE service_account_id = ? ORDER BY created_at", (sa_id,)
            ).fetchall()
            return [dict(r) for r in rows]

    async def session_token(self, token_id: str) -> Row | None:
        with self._reading() as c:
            row = c.execute(
                "SELECT t.*, s.actor_id, s.revoked_at AS session_revoked_at, s.expires_ts AS session_expires_ts, "
                "a.email FROM session_tokens t JOIN sessions s ON s.session_id = t.session_id "
                "JOIN actors a ON a.actor_id = s.actor_id WHERE t.token_id = ?",
                (token_id,),
            ).fetchone()
            return dict(row) if row is not None else None

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
        with self._reading() as c:
            return [dict(r) for r in c.execute(sql + " ORDER BY s.created_at DESC", args).fetchall()]

    async def get_workflow(self, workflow_id: str) -> Row | None:
        with self._reading() as c:
            row = c.execute("SELECT * FROM workflows WHERE workflow_id = ?", (workflow_id,)).fetchone()
            return dict(row) if row is not None else None

    async def get_meta(self, key: str) -> str | None:
        with self._reading() as c:
            row = c.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return None if row is None else str(row[0])


def _split_sql(script: str) -> list[str]:
    """Split a migration file into statements (our SQL has no '--' or ';' inside literals)."""
    lines = [ln.split("--", 1)[0] for ln in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]

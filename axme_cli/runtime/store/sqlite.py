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
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from axme_cli.runtime.errors import StoreUnavailable
from axme_cli.runtime.store.base import Notes, Store, Tx
from axme_cli.runtime.store.sql import SqlReads, SqlTx, load_migrations, split_sql

T = TypeVar("T")
log = logging.getLogger("axme.store")

MAX_BATCH = 512


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0, cached_statements=512)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


class SqliteTx(SqlTx):
    """One operation inside the writer's transaction (one writer at a time: no row locks needed)."""


_Job = tuple[Callable[[Tx], Any], "asyncio.Future[Any]"]


class SqliteStore(SqlReads, Store):
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
        for version, sql in load_migrations("sqlite"):
            if version in applied:
                continue
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in split_sql(sql):
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
        started = time.perf_counter()
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
        if self.on_batch is not None:
            self.on_batch(len(batch), time.perf_counter() - started)
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

"""SQLite store: WAL, one writer with group commit, reads on the event loop.

Every write operation is queued to the writer, a task on the event loop. It takes everything queued (up to
``MAX_BATCH``), runs the operations one after the other in one ``BEGIN IMMEDIATE`` transaction, right there on
the loop, then commits (``synchronous=FULL``) in the committer thread, whose fsync lets the loop go on, and only
then answers the callers. An operation that raises is undone alone: one that had written nothing yet needs no
undo; one that had (rare) makes the writer roll the transaction back and run the batch again with each operation
inside a SAVEPOINT of its own (operations are pure functions of the transaction; a SAVEPOINT around every one
cost two statements per operation, a fifth of a workflow's). A database error (disk full, file locked) fails the
whole batch with ``StoreUnavailable`` and nothing of it is answered as done.

The write-ahead log stays small. PASSIVE checkpoints alone never reset a WAL that is written to all the time (41k
creates in 20 s left a 1.1 GB WAL beside a 63 MB database), so a checkpoint task looks at its size every 50 ms:
past ``WAL_SOFT`` it runs a RESTART checkpoint between two batches (the writer waits for it, ~5-10 ms; the next
commit then writes the WAL from its start, in place, and trims it to ``WAL_SOFT``); after a second of quiet, or
when the WAL is larger than the space left on the disk, a TRUNCATE gives the space back. A write that fails for
lack of space (or any I/O error) holds the writes until a checkpoint has emptied the WAL: otherwise the WAL takes
every byte freed on the disk, and the checkpoint, which needs room to grow the database, never succeeds again.
Past ``WAL_CAP`` (checkpoints failing, e.g. another process holding a read transaction) writes are held too.

Why the operations run on the loop and not on a writer thread of their own: each statement releases
the GIL and takes it back, and a writer thread doing that some 60 times per workflow waited behind the event
loop's thread each time. Measured with ``bench/saga.py`` (32 clients): the writer thread was busy 98% of the
time at about 1.1 ms per operation, against 0.3 ms for the same operations in a process doing nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any, TypeVar

from axme_cli.runtime.errors import StoreUnavailable
from axme_cli.runtime.store.base import Notes, Row, Store, Tx, drop_oldest
from axme_cli.runtime.store.multirow import insert_rows, values_sql
from axme_cli.runtime.store.sql import (
    INTENT_COLUMNS,
    WORKFLOW_COLUMNS,
    SqlReads,
    SqlTx,
    _update_sql,
    load_migrations,
    split_sql,
    write_events,
)

T = TypeVar("T")
log = logging.getLogger("axme.store")

MAX_BATCH = 512
# (the defaults of SqliteStore's wal_soft and wal_cap)
WAL_SOFT = 16 * 2**20  # bytes of WAL past which the checkpoint task empties it, holding the writer a moment
WAL_CAP = 64 * 2**20  # bytes of WAL past which nothing more is written until a checkpoint has emptied it
_POLL = 0.05  # seconds between two looks at the WAL's size
_ROOM_WAIT = 0.25  # seconds a batch waits for the WAL to be emptied before its callers get 503
_NEED_EMPTY_WAL = (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR)  # a write failed like this: empty the WAL first
BUSY_TIMEOUT = 5.0  # seconds a write waits for another process's lock on the file before its callers get 503


class _Counted(sqlite3.Connection):
    """A connection that counts the statements it runs in its store's ``statements`` (GET /metrics)."""

    store: Store | None = None

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        if self.store is not None:
            self.store.statements += 1
        return super().execute(sql, parameters)


def _connect(path: str, busy_timeout: float, store: Store | None = None) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout,
                           cached_statements=512, factory=_Counted)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=OFF")
    # Each operation runs in a SAVEPOINT, whose undo copies (the sub-journal) spill past 64 KiB into a temporary
    # file: an open, an unlink and dozens of writes for most operations. In memory they cost no system call; they
    # only ever undo one operation inside the open transaction (crash recovery is the WAL's).
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.store = store  # counted from here on (the writer's and the reader's statements, not the checkpoints')
    return conn


def _begin_now(conn: sqlite3.Connection) -> bool:
    """BEGIN IMMEDIATE without waiting (the write connection's busy timeout is 0); False if the file is locked."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return False
        raise
    return True


def _begin_waiting(conn: sqlite3.Connection, busy_timeout: float) -> None:
    """BEGIN IMMEDIATE waiting up to ``busy_timeout`` s for another process's lock (on the committer thread, off
    the loop)."""
    conn.execute(f"PRAGMA busy_timeout={round(busy_timeout * 1000)}")
    try:
        conn.execute("BEGIN IMMEDIATE")
    finally:
        conn.execute("PRAGMA busy_timeout=0")


class _Committer:
    """The writer's one thread for what may wait (a COMMIT's fsync, a BEGIN that waits for another process's lock):
    a job goes over a queue and its outcome comes back to the loop with one ``call_soon_threadsafe``.
    ``loop.run_in_executor`` on a ThreadPoolExecutor did the same through a concurrent Future, a work item, the
    executor's locks and the asyncio Future chained to it: ~2-6 % of the event loop's samples (py-spy ``--gil``)
    under ``bench/saga.py``, for one job per batch."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._jobs: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future[Any]] | None] = (
            queue.SimpleQueue())
        self._thread = threading.Thread(target=self._work, name="axme-sqlite-commit", daemon=True)
        self._thread.start()

    def run(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        fut: asyncio.Future[T] = self._loop.create_future()
        self._jobs.put((fn, args, fut))
        return fut

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, args, fut = job
            settle: Callable[[asyncio.Future[Any], Any], None] = _succeed
            try:
                outcome = fn(*args)
            except BaseException as exc:  # handed to the caller on the loop
                settle, outcome = _fail, exc
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                self._loop.call_soon_threadsafe(settle, fut, outcome)

    def shutdown(self) -> None:
        """After the jobs queued so far (the writer has ended: nothing more comes)."""
        self._jobs.put(None)
        self._thread.join()


def _succeed(fut: asyncio.Future[Any], result: Any) -> None:
    if not fut.done():
        fut.set_result(result)


def _fail(fut: asyncio.Future[Any], exc: Any) -> None:
    if not fut.done():
        fut.set_exception(exc)


def _checkpoint(conn: sqlite3.Connection, mode: str) -> tuple[int, int, int]:
    """``PRAGMA wal_checkpoint(mode)``: (1 if it could not finish, frames in the WAL, frames copied)."""
    busy, frames, copied = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
    return busy, frames, copied


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _free_bytes(folder: str) -> int:
    """Space left on the filesystem of ``folder``: a checkpoint may need as much as the WAL holds to grow the
    database, so a WAL that outgrows it is emptied at once."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return 2**63
    return st.f_bavail * st.f_frsize


def _hold(path: str) -> IO[str] | None:
    """Hold ``path`` locked while the runtime runs (released by the kernel if the process dies): a second runtime
    on the same database stops at start instead of writing beside this one, whose writer trusts its RowCache."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        return None
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        handle = open(fd, "a+", encoding="utf-8")  # noqa: SIM115 - kept open while the store is
    except OSError as exc:
        raise StoreUnavailable(f"cannot open the lock file {path}: {exc.strerror}") from None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        raise StoreUnavailable(f"another axme runtime{f' (pid {holder})' if holder else ''} is using the database "
                               f"{path.removesuffix('.lock')}; stop it, or give this one another --db") from None
    with contextlib.suppress(OSError):  # the pid is for the message above; a full disk must not stop the start
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
    return handle


def _private_files(database: str) -> None:
    """The database and the files beside it readable by this user only. A new database is made 0600 here, and
    SQLite gives the -wal and -shm files it creates the database file's mode (whatever the umask); files an older
    version left looser are made 0600, with a warning each."""
    from axme_cli.config.files import make_private

    with contextlib.suppress(FileExistsError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for path in (database, database + "-wal", database + "-shm", database + ".lock"):
        make_private(path, 0o600)


class RowCache:
    """The rows the one writer lately wrote or read: intents, workflows, and agents' service accounts by address.

    Only the writer uses it, and it holds the database alone (``<database>.lock``), so a cached row is what
    the database holds: every write of these tables goes through ``SqliteTx`` and updates it. An operation that is
    undone after it wrote, or a batch that fails, empties it. Saves the writer a third of its reads.

    ``heads`` are the feeds' last cursors by address as the open transaction sees them; those in ``dirty_heads``
    are not yet in ``feed_heads``: the writer writes them once per batch, just before its commit, instead of an
    upsert per intent fed (three per workflow of the saga).

    ``intents_due`` are the intents' writes the open batch has not sent yet: a whole row for those in
    ``inserted``, else the columns changed; ``events_due`` and ``feed_due`` its events and feed rows not yet
    inserted, flat (``SqliteTx`` defers them all: see ``_Deferring``)."""

    SIZE = 8192

    def __init__(self) -> None:
        self.intents: dict[str, Row] = {}
        self.workflows: dict[str, Row] = {}
        self.accounts: dict[tuple[str, str], Row | None] = {}
        self.heads: dict[str, int] = {}
        self.dirty_heads: set[str] = set()
        self.intents_due: dict[str, Row] = {}
        self.inserted: set[str] = set()
        self.events_due: list[Any] = []
        self.feed_due: list[Any] = []  # address, cursor, intent_id, attempt, at, address, ...
        self.collided: sqlite3.IntegrityError | None = None  # _write_due broke a constraint: run the batch again
        self.deferred_changes = 0  # rows written by _write_due: not the changes of the operation running then

    def put(self, table: dict[str, Row], key: str, row: Row) -> None:
        if len(table) >= self.SIZE:
            drop_oldest(table, self.SIZE)
        table[key] = row

    def clear(self) -> None:
        """After the transaction was rolled back: nothing cached may be trusted, no head is left to write."""
        self.drop_rows()
        self.heads.clear()
        self.dirty_heads.clear()
        self.intents_due.clear()
        self.inserted.clear()
        self.events_due.clear()
        self.feed_due.clear()
        self.collided = None

    def drop_rows(self) -> None:
        """After one operation was undone inside the open transaction (its feed heads are put back by its
        ``SqliteTx.undo_heads``; the other operations' are still to be written)."""
        self.intents.clear()
        self.workflows.clear()
        self.accounts.clear()

    def set_head(self, address: str, cursor: int) -> None:
        if address not in self.heads and len(self.heads) >= self.SIZE:
            for stale in [a for a in self.heads if a not in self.dirty_heads]:
                del self.heads[stale]
        self.heads[address] = cursor
        self.dirty_heads.add(address)


_INTENT_SET = frozenset(INTENT_COLUMNS)
_INTENTS_HEAD = f"INSERT INTO intents ({', '.join(INTENT_COLUMNS)}) VALUES"
_FEED_HEAD = "INSERT INTO feed (address, cursor, intent_id, attempt, at) VALUES"


@functools.lru_cache(maxsize=256)
def _update_rows(columns: tuple[str, ...], rows: int) -> str:
    """One UPDATE of ``columns`` for ``rows`` intents, each given as (intent_id, its values of ``columns``)."""
    sets = ", ".join(f"{c} = v.column{n}" for n, c in enumerate(columns, 2))
    row = "(" + ", ".join(["?"] * (len(columns) + 1)) + ")"
    return f"UPDATE intents SET {sets} FROM (VALUES {', '.join([row] * rows)}) AS v WHERE intents.intent_id = v.column1"


def _write_due(conn: sqlite3.Connection, cache: RowCache) -> None:
    """The writes deferred so far: the intents inserted in one INSERT (up to 32 rows); the others changed in one
    UPDATE (up to 32 rows) that sets every column any of them changed, from the cached rows, which hold what the
    intents are now (an intent no longer cached: an UPDATE of its own); the events and the feed rows of all those
    operations in one INSERT each (up to 64 rows)."""
    due, inserted, events, feed = cache.intents_due, cache.inserted, cache.events_due, cache.feed_due
    cache.intents_due, cache.inserted, cache.events_due, cache.feed_due = {}, set(), [], []
    before = conn.total_changes
    rows: list[Any] = []
    changed: dict[str, None] = {}
    updated: list[Row] = []
    for intent_id, fields in due.items():
        if intent_id in inserted:
            rows += map(fields.get, INTENT_COLUMNS)
        elif intent_id in cache.intents and fields.keys() <= _INTENT_SET:
            changed.update(dict.fromkeys(fields))
            updated.append(cache.intents[intent_id])
        else:
            conn.execute(_update_sql("intents", "intent_id", *fields), (*fields.values(), intent_id))
    insert_rows(conn, _INTENTS_HEAD, len(INTENT_COLUMNS), rows, 32)
    columns = tuple(c for c in INTENT_COLUMNS if c in changed)
    for start in range(0, len(updated), 32):
        chunk = updated[start:start + 32]
        args: list[Any] = []
        for row in chunk:
            args.append(row["intent_id"])
            args += [row[c] for c in columns]
        conn.execute(_update_rows(columns, len(chunk)), args)
    write_events(conn, events)
    insert_rows(conn, _FEED_HEAD, 5, feed, 64)
    cache.deferred_changes += conn.total_changes - before


# Statements that touch neither intents, events nor feed: the deferred writes need not go in first.
_NO_INTENTS = ("SELECT last_cursor FROM feed_heads ",
               "UPDATE workflows ", "INSERT INTO workflows ", "SELECT * FROM workflows ",
               "SELECT * FROM idempotency ", "INSERT INTO idempotency ")


class _Deferring:
    """The write connection as a batch's operations see it when their intent, event and feed writes are deferred. A
    workflow's intents are written by several operations of one batch (an intent inserted then fed, a step's
    intent delivered then completed, the parent moved on by each step): about a third of the saga's intent writes
    were of a row the same batch had already written; and each operation inserted its events and feed rows on its
    own (7 of a workflow's 31 statements). Deferred, each intent is written once per batch, the new ones together,
    and the batch's events and feed rows together, before the commit, or sooner: before any statement that is not
    known to leave intents, events and feed alone (``_NO_INTENTS``), which therefore sees them as the batch left
    them."""

    __slots__ = ("_conn", "_cache")

    def __init__(self, conn: sqlite3.Connection, cache: RowCache) -> None:
        self._conn, self._cache = conn, cache

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        cache = self._cache
        if (cache.intents_due or cache.events_due or cache.feed_due) and not sql.startswith(_NO_INTENTS):
            try:
                _write_due(self._conn, self._cache)
            except sqlite3.IntegrityError as exc:  # not this operation's fault: kept even if it catches it
                self._cache.collided = exc
                raise
        return self._conn.execute(sql, parameters)


class SqliteTx(SqlTx):
    """One operation inside the writer's transaction (one writer at a time: no row locks needed). Reads of intents,
    workflows and service accounts by address come from the writer's ``RowCache`` when they can; they are copies,
    so a caller may change them."""

    def __init__(self, conn: Any, cache: RowCache, defer: bool = False) -> None:
        super().__init__(_Deferring(conn, cache) if defer else conn)
        self._defer = defer  # intent, event and feed writes wait in the cache (undone by rolling the batch back)
        self._cache = cache
        self.wrote = False  # whether this operation changed a cached table (undoing it must empty the cache)
        self._heads_before: dict[str, tuple[int | None, bool]] = {}  # address: (cached head, dirty) before it

    def _cached(self, table: dict[str, Row], key: str, read: Callable[[str], Row | None]) -> Row | None:
        """A copy of the cached row, read (and kept) if it is not there."""
        row = table.get(key)
        if row is None:
            row = read(key)
            if row is None:
                return None
            self._cache.put(table, key, row)
        return dict(row)

    def _changed(self, table: dict[str, Row], key: str, fields: Row) -> None:
        self.wrote = True
        cached = table.get(key)
        if cached is not None:
            cached.update(fields)

    def append_feed(self, address: str, intent_id: str, attempt: int, at: str) -> int:
        heads = self._cache.heads
        last = heads.get(address)
        if address not in self._heads_before:
            self._heads_before[address] = last, address in self._cache.dirty_heads
        if last is None:
            row = self._c.execute("SELECT last_cursor FROM feed_heads WHERE address = ?", (address,)).fetchone()
            last = int(row[0]) if row is not None else 0
        cursor = last + 1
        if self._defer:
            self._cache.feed_due += (address, cursor, intent_id, attempt, at)
        else:
            self._c.execute(values_sql(_FEED_HEAD, 5, 1), (address, cursor, intent_id, attempt, at))
        self.wrote = True
        self._cache.set_head(address, cursor)
        return cursor

    def undo_heads(self) -> None:
        """This operation was rolled back to its SAVEPOINT: the heads it moved go back to where they were."""
        heads, dirty = self._cache.heads, self._cache.dirty_heads
        for address, (last, was_dirty) in self._heads_before.items():
            if last is None:
                heads.pop(address, None)
            else:
                heads[address] = last
            if not was_dirty:
                dirty.discard(address)
        self._heads_before.clear()

    def finish(self) -> None:
        if self._defer:  # the operation's events join the batch's, inserted together
            if self._events:
                self._cache.events_due += self._events
                self._events = []
                self.wrote = True
            return
        super().finish()

    def get_intent(self, intent_id: str) -> Row | None:
        return self._cached(self._cache.intents, intent_id, super().get_intent)

    def insert_intent(self, row: Row) -> None:
        full = dict(zip(INTENT_COLUMNS, map(row.get, INTENT_COLUMNS), strict=True))
        if self._defer:
            self._cache.intents_due[row["intent_id"]] = dict(full)
            self._cache.inserted.add(row["intent_id"])
        else:
            super().insert_intent(row)
        self.wrote = True
        self._cache.put(self._cache.intents, row["intent_id"], full)

    def update_intent(self, intent_id: str, fields: Row) -> None:
        if self._defer:
            due = self._cache.intents_due.get(intent_id)
            if due is None:
                self._cache.intents_due[intent_id] = dict(fields)
            else:
                due.update(fields)
        else:
            super().update_intent(intent_id, fields)
        self._changed(self._cache.intents, intent_id, fields)

    def get_workflow(self, workflow_id: str) -> Row | None:
        return self._cached(self._cache.workflows, workflow_id, super().get_workflow)

    def insert_workflow(self, row: Row) -> None:
        super().insert_workflow(row)
        self.wrote = True
        if set(row) == WORKFLOW_COLUMNS:  # cached only when it is the row as a read would give it
            self._cache.put(self._cache.workflows, row["workflow_id"], dict(row))

    def update_workflow(self, workflow_id: str, fields: Row) -> None:
        super().update_workflow(workflow_id, fields)
        self._changed(self._cache.workflows, workflow_id, fields)

    def active_service_account_by_address(self, address: str) -> Row | None:
        return self._account("active", address, super().active_service_account_by_address)

    def http_binding(self, address: str) -> Row | None:
        return self._account("http", address, super().http_binding)

    def _account(self, kind: str, address: str, read: Callable[[str], Row | None]) -> Row | None:
        key = (kind, address)
        if key in self._cache.accounts:
            row = self._cache.accounts[key]
        else:
            row = read(address)
            if len(self._cache.accounts) >= RowCache.SIZE:
                self._cache.accounts.clear()
            self._cache.accounts[key] = row
        return dict(row) if row is not None else None

    def insert_service_account(self, row: Row) -> None:
        super().insert_service_account(row)
        self.wrote = True
        self._cache.accounts.clear()

    def update_service_account(self, sa_id: str, fields: Row) -> None:
        super().update_service_account(sa_id, fields)
        self.wrote = True
        self._cache.accounts.clear()

    def routes_changed(self) -> None:
        """A routing endpoint or transport binding changed: the cached ``http_binding`` answers may be wrong."""
        self.wrote = True
        self._cache.accounts.clear()


_Job = tuple[Callable[[Tx], Any], "asyncio.Future[Any]"]


@dataclass
class _WroteThenRefused:
    """An operation of a batch run without SAVEPOINTs refused after it had written (``SqliteStore._run_ops``);
    ``fut`` None: the batch's deferred writes broke a constraint (``RowCache.collided``), whose operation is not
    known."""

    fut: asyncio.Future[Any] | None
    exc: Exception | None


class SqliteStore(SqlReads, Store):
    kind = "sqlite"

    def __init__(self, path: str, *, busy_timeout: float = BUSY_TIMEOUT, wal_soft: int = WAL_SOFT,
                 wal_cap: int = WAL_CAP) -> None:
        self.location = os.path.abspath(os.path.expanduser(path))
        self.busy_timeout = busy_timeout
        self.wal_soft, self.wal_cap = wal_soft, wal_cap
        self._pending: list[_Job] = []  # written, not yet in a batch
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._stopping = False
        self._committer: _Committer | None = None  # one thread: BEGIN that must wait, COMMIT
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader: sqlite3.Connection | None = None
        self._write: sqlite3.Connection | None = None
        self.batches = 0
        self.ops = 0
        self._cache = RowCache()
        self._lock: IO[str] | None = None
        self._checkpointer: asyncio.Task[None] | None = None
        self._checkpoint_thread: ThreadPoolExecutor | None = None
        self._checkpoint_conn: sqlite3.Connection | None = None
        self._checkpoint_problem = ""  # the last failure logged (logged again only when it changes)
        self._gate = asyncio.Lock()  # held by the writer for a batch and by a TRUNCATE checkpoint
        self._wal_ok = asyncio.Event()  # clear: writes wait for a checkpoint to empty the WAL (disk full, cap)
        self._refusal = ""
        self.wal_emptied = 0  # RESTART and TRUNCATE checkpoints done

    # lifecycle
    async def open(self) -> None:
        folder = os.path.dirname(self.location)
        try:
            if folder:
                os.makedirs(folder, mode=0o700, exist_ok=True)  # a folder it makes is private; one given is not changed
            _private_files(self.location)
        except OSError as exc:
            raise StoreUnavailable(f"cannot open the database {self.location}: {exc}") from None
        self._loop = asyncio.get_running_loop()
        self._lock = _hold(self.location + ".lock")
        try:
            self._write = _connect(self.location, self.busy_timeout, self)
            self._migrate(self._write)
            # Checkpoints run on their own thread and connection (below), never inside a commit of the writer.
            self._write.execute("PRAGMA wal_autocheckpoint=0")
            # A commit that starts the WAL over trims the file to this (it is written over in place, not regrown).
            self._write.execute(f"PRAGMA journal_size_limit={self.wal_soft}")
            # The loop never waits for the file lock: a BEGIN that would is retried on the committer thread.
            self._write.execute("PRAGMA busy_timeout=0")
            self._reader = _connect(self.location, self.busy_timeout, self)
            # Checkpoints have a connection of their own. A RESTART or TRUNCATE holds the writer while it waits for
            # readers: ours read for a few ms at most; one that reads longer (another process) makes it fail soon.
            self._checkpoint_conn = _connect(self.location, self.busy_timeout)
            self._checkpoint_conn.execute("PRAGMA busy_timeout=200")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open the database {self.location}: {exc}") from exc
        self._stopping = False
        self._wake = asyncio.Event()
        self._gate = asyncio.Lock()
        self._wal_ok = asyncio.Event()
        self._wal_ok.set()
        self._committer = _Committer(self._loop)
        self._checkpoint_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="axme-sqlite-checkpoint")
        self._writer = asyncio.create_task(self._batches(), name="axme-sqlite-writer")
        self._checkpointer = asyncio.create_task(self._checkpoints(), name="axme-sqlite-checkpoints")

    async def _checkpoints(self) -> None:
        """Looks at the WAL every ``_POLL`` s (on the loop: one stat, no SQL); the SQL runs on the checkpoint
        thread. A PASSIVE checkpoint every 256 batches or second keeps what a TRUNCATE has left to copy small."""
        wal = self.location + "-wal"
        folder = os.path.dirname(self.location) or "."
        passive_at, passive_batches = time.monotonic(), self.batches
        seen_batches, quiet_since, retry_at = self.batches, float("-inf"), 0.0  # at start: empty a WAL left over
        restarted = -1  # the WAL's size at the last RESTART (until the next commit gives the file back its space)
        while True:
            await asyncio.sleep(_POLL)
            try:
                now = time.monotonic()
                if self.batches != seen_batches:
                    seen_batches, quiet_since = self.batches, now
                size = _size(wal)
                if size > self.wal_cap and self._wal_ok.is_set():
                    self._refuse(f"its write-ahead log reached {size // 2**20} MB and could not be checkpointed")
                if not size:
                    if not self._wal_ok.is_set():
                        self._resume()  # nothing to give back: the write found the disk full beside an empty WAL
                    continue
                mode = ""
                if not self._wal_ok.is_set() or now - quiet_since >= 1.0 or size > _free_bytes(folder):
                    mode = "TRUNCATE"  # the space back on the disk now
                elif size > self.wal_soft and size != restarted:
                    mode = "RESTART"  # the next commit writes from the WAL's start and trims it to wal_soft
                if mode and now >= retry_at:
                    emptied = await self._empty_wal(mode)
                    restarted = size if emptied and mode == "RESTART" else -1
                    retry_at = 0.0 if emptied else time.monotonic() + (1.0 if self._wal_ok.is_set() else 0.25)
                    passive_at, passive_batches = time.monotonic(), self.batches
                elif self.batches - passive_batches >= 256 or now - passive_at >= 1.0:
                    passive_at, passive_batches = now, self.batches
                    with contextlib.suppress(sqlite3.Error):  # a failure shows up again in the next TRUNCATE
                        await self._checkpoint("PASSIVE")
            except Exception:  # a bug here must not end the checkpoints
                log.exception("checkpoint of %s failed", self.location)

    async def _checkpoint(self, mode: str) -> bool:
        """One checkpoint on the checkpoint thread; False if a reader kept it from copying everything."""
        assert self._loop is not None and self._checkpoint_conn is not None
        row = await self._loop.run_in_executor(self._checkpoint_thread, _checkpoint, self._checkpoint_conn, mode)
        return not row[0]

    async def _empty_wal(self, mode: str) -> bool:
        """Copy the whole WAL into the database so that it starts over (RESTART) or is cut to 0 bytes (TRUNCATE):
        a PASSIVE checkpoint while the writer goes on, then ``mode`` between two of its batches (it needs the
        write lock, and waits for readers)."""
        try:
            await self._checkpoint("PASSIVE")
            async with self._gate:
                done = await self._checkpoint(mode)
        except sqlite3.Error as exc:
            problem = str(exc)
        else:
            problem = "" if done else "another connection was reading it"
        if not problem:
            self.wal_emptied += 1
            self._resume()
            return True
        if problem != self._checkpoint_problem:
            self._checkpoint_problem = problem
            log.warning("checkpoint of %s failed: %s", self.location, problem)
        return False

    def _refuse(self, why: str) -> None:
        """No more writes until a checkpoint has emptied the WAL."""
        if self._wal_ok.is_set():
            log.error("writes to %s wait for a checkpoint: %s", self.location, why)
        self._refusal = f"the database cannot take writes now: {why}; retry shortly"
        self._wal_ok.clear()

    def _resume(self) -> None:
        if not self._wal_ok.is_set():
            log.warning("writes to %s resume: the write-ahead log was checkpointed", self.location)
        self._wal_ok.set()
        self._checkpoint_problem = ""

    async def close(self) -> None:
        if self._writer is not None and self._wake is not None:
            self._stopping = True  # the writer answers what is queued, then ends
            self._wake.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        if self._committer is not None:
            self._committer.shutdown()
            self._committer = None
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
            self._checkpointer = None
        if self._checkpoint_thread is not None:  # a checkpoint under way ends before its connection closes
            await asyncio.get_running_loop().run_in_executor(
                None, functools.partial(self._checkpoint_thread.shutdown, wait=True))
            self._checkpoint_thread = None
        for conn in (self._reader, self._checkpoint_conn, self._write):
            if conn is not None:
                conn.close()
        self._reader = self._checkpoint_conn = self._write = None
        if self._lock is not None:
            self._lock.close()  # and with it the lock
            self._lock = None

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT)")
        applied = {r[0] for r in conn.execute("SELECT version FROM schema_version")}
        pending = [(version, sql) for version, sql in load_migrations("sqlite") if version not in applied]
        if not pending:
            return
        # All that is pending in one transaction, one commit (one fsync) instead of one per file: a new file
        # takes every migration at its first start. All or nothing, as each file was.
        conn.execute("BEGIN IMMEDIATE")
        try:
            for version, sql in pending:
                for statement in split_sql(sql):
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, datetime('now'))", (version,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # writes
    async def write(self, op: Callable[[Tx], T]) -> T:
        if self._writer is None or self._writer.done() or self._wake is None or self._loop is None:
            raise StoreUnavailable("the store is closed")
        fut: asyncio.Future[T] = self._loop.create_future()
        self._pending.append((op, fut))
        self._wake.set()
        return await fut

    async def _batches(self) -> None:
        """The writer: one batch at a time; what is written while one commits makes the next."""
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                if not self._wal_ok.is_set():  # back-pressure: the WAL is emptied before it grows any more
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wal_ok.wait(), _ROOM_WAIT)
                    if not self._wal_ok.is_set():
                        failure = StoreUnavailable(self._refusal)
                        refused = [(fut, False, failure) for _, fut in self._pending]
                        self._pending.clear()
                        self._finish(refused, Notes())
                        continue
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                async with self._gate:
                    try:
                        outcomes, notes = await self._run_batch(batch)
                    except Exception as exc:  # a bug here must not stop every later write
                        log.exception("write batch of %d failed", len(batch))
                        failure = StoreUnavailable(f"the write failed ({type(exc).__name__}); retry shortly")
                        outcomes, notes = [(fut, False, failure) for _, fut in batch], Notes()
                self.batches += 1
                self.ops += len(batch)
                self._finish(outcomes, notes)
            if self._stopping:
                return

    async def _run_batch(self, batch: list[_Job]) -> tuple[list[Any], Notes]:
        conn, committer = self._write, self._committer
        assert conn is not None and committer is not None
        started = time.perf_counter()
        try:
            if not _begin_now(conn):
                await committer.run(_begin_waiting, conn, self.busy_timeout)
            ran = self._run_ops(conn, batch, None)
            if not isinstance(ran, _WroteThenRefused):
                try:
                    _write_due(conn, self._cache)
                except sqlite3.IntegrityError as exc:
                    ran = _WroteThenRefused(None, exc)
            if isinstance(ran, _WroteThenRefused):  # the batch again, each operation in a SAVEPOINT
                refused = None if ran.fut is None else (ran.fut, False, ran.exc)
                conn.execute("ROLLBACK")
                self._cache.clear()
                self.memo.clear()  # what operations kept may have come from the writes just undone
                if not _begin_now(conn):
                    await committer.run(_begin_waiting, conn, self.busy_timeout)
                ran = self._run_ops(conn, batch, refused, guarded=True)
                assert not isinstance(ran, _WroteThenRefused)
            outcomes, notes = ran
            self._write_heads(conn)
            # The fsync, on the committer thread: the loop serves requests meanwhile (nothing else uses this
            # connection until the commit is done: the next batch waits for this one).
            await committer.run(conn.execute, "COMMIT")
            self.commits += 1
        except sqlite3.Error as exc:
            log.error("write batch of %d failed: %s", len(batch), exc)
            self._cache.clear()
            self.memo.clear()  # what operations kept may have come from this batch's writes, now undone
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF in _NEED_EMPTY_WAL:
                self._refuse(f"{exc} (writes resume once the write-ahead log is checkpointed)")
            failure = StoreUnavailable(f"the database refused the write ({exc}); retry shortly")
            return [(fut, False, failure) for _, fut in batch], Notes()
        if self.on_batch is not None:
            self.on_batch(len(batch), time.perf_counter() - started)
        return outcomes, notes

    def _run_ops(self, conn: sqlite3.Connection, batch: list[_Job],
                 refused: tuple[asyncio.Future[Any], bool, Any] | None, guarded: bool = False
                 ) -> tuple[list[tuple[asyncio.Future[Any], bool, Any]], Notes] | _WroteThenRefused:
        """Run the batch's operations in the open transaction. Not ``guarded``: with no SAVEPOINT each (two
        statements fewer per operation) and their intent, event and feed writes deferred: an operation that refuses
        before it wrote anything (``total_changes`` unchanged) needs no undo; one that refuses after it wrote, or
        deferred writes that break a constraint, stop the run (``_WroteThenRefused``), and the caller rolls the
        transaction back and runs the batch again ``guarded`` with ``refused`` (that operation's outcome, not run
        again), each operation inside a SAVEPOINT that undoes it alone if it refuses, nothing deferred."""
        notes = Notes()
        outcomes: list[tuple[asyncio.Future[Any], bool, Any]] = []
        for op, fut in batch:
            if refused is not None and fut is refused[0]:
                outcomes.append(refused)
                continue
            tx = SqliteTx(conn, self._cache, defer=not guarded)
            tx.memo = self.memo
            tx.limits = self.limits
            if guarded:
                conn.execute("SAVEPOINT op")
            changes = conn.total_changes - self._cache.deferred_changes
            try:
                result = op(tx)
                tx.finish()
            except sqlite3.OperationalError:
                raise
            except Exception as exc:  # the operation refused: undo it alone
                if self._cache.collided is not None:
                    return _WroteThenRefused(None, self._cache.collided)
                if guarded:
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    if tx.wrote:
                        self._cache.drop_rows()
                        tx.undo_heads()
                elif tx.wrote or conn.total_changes - self._cache.deferred_changes != changes:
                    return _WroteThenRefused(fut, exc)
                outcomes.append((fut, False, exc))
                continue
            if self._cache.collided is not None:  # the operation caught the IntegrityError and went on
                return _WroteThenRefused(None, self._cache.collided)
            if guarded:
                conn.execute("RELEASE op")
            notes.merge(tx.notes)
            outcomes.append((fut, True, result))
        return outcomes, notes

    def _write_heads(self, conn: sqlite3.Connection) -> None:
        """The feeds' heads the batch moved, in one statement per 256 addresses, inside its transaction."""
        args: list[Any] = []
        for address in sorted(self._cache.dirty_heads):
            args += (address, self._cache.heads[address])
        insert_rows(conn, "INSERT INTO feed_heads (address, last_cursor) VALUES", 2, args, 256,
                    " ON CONFLICT (address) DO UPDATE SET last_cursor = excluded.last_cursor")
        self._cache.dirty_heads.clear()

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

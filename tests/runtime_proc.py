"""Start the real runtime (`axme dev`) as a subprocess on a free loopback port, for tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ADMIN_KEY = "test-admin-key-0123456789abcdef"
BACKENDS = ("sqlite", "postgres")
# PostgreSQL of the machine (CI included); each test database is created here and dropped at the end.
PG_ADMIN_URL = os.environ.get("AXME_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
_created: list[str] = []
_template: list[str] = []  # the migrated PostgreSQL database new ones are copied from (one per test process)
_migrated: set[str] = set()  # the databases made copies of it, which alone may go back to the pool
# Retired runtimes' migrated databases, emptied back to what a new copy holds, handed out again before a new copy
# is made: a CREATE DATABASE and its DROP (with the checkpoint it forces) cost PostgreSQL 0.12 s of CPU and more,
# checking and emptying one ~0.02 s.
_pool: list[str] = []
_reset: list[Reset] = []  # how a database is checked against the template and emptied back to it
_sqlite_template: list[bytes] = []  # the file of a migrated SQLite database, checkpointed (one per test process)
# A new httpx client loads the CA bundle into an SSL context of its own: 20-70 ms, more than most tests' calls.
# The runtimes here speak plain HTTP; their clients share this one context (load it once).
TLS = httpx.create_ssl_context()


def _url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def new_database(backend: str, workdir: Path, *, migrated: bool = False) -> str:
    """A fresh database for one runtime (or several replicas): a file path or a PostgreSQL URL. Empty, or with
    ``migrated`` (PostgreSQL) a copy of one the runtime's migrations were applied to once in this test process:
    a runtime then starts in a tenth of the time (tests of the migrations themselves take an empty one)."""
    if backend == "sqlite":
        return str(workdir / "dev.db")
    if backend != "postgres":
        raise ValueError(f"unknown backend {backend!r}")
    import psycopg

    if migrated and not _template:
        _template.append(_migrated_template())
        _reset.append(Reset(_url(_template[0])))
    if migrated:
        with contextlib.suppress(IndexError):
            return _url(_pool.pop())
    name = f"axme_test_{uuid.uuid4().hex[:12]}"
    template = f" TEMPLATE {_template[0]}" if migrated else ""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}{template}".encode())
    _created.append(name)
    if migrated:
        _migrated.add(name)
    return _url(name)


def _migrated_template() -> str:
    """An empty database the store opened (applying every migration) and closed again: nothing is connected to it,
    so PostgreSQL may copy it."""
    import asyncio

    from axme_cli.runtime.store import open_store

    url = new_database("postgres", Path("."))

    async def migrate() -> None:
        store = open_store(url)
        await store.open()
        await store.close()

    asyncio.run(migrate())
    return url.rsplit("/", 1)[1]


def migrated_sqlite(path: Path) -> Path:
    """``path`` made a copy of a SQLite database the runtime's migrations were applied to once in this test process
    (a runtime on it starts in a third of the time it takes on an empty file); 0600 from its creation, as the
    store makes a new one. Refuses to write over a file that is there."""
    if not _sqlite_template:
        _sqlite_template.append(_migrated_sqlite_template())
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # as the store makes a folder that is not there
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "wb") as out:
        out.write(_sqlite_template[0])
    return path


def _migrated_sqlite_template() -> bytes:
    """The bytes of a database the store opened (applying every migration) and closed again, its WAL checkpointed
    into the file and emptied: the one file holds the whole database, so copying it alone copies it all (SQLite
    makes a new -wal and -shm beside the copy)."""
    import asyncio
    import shutil
    import sqlite3
    import tempfile

    from axme_cli.runtime.store import open_store

    folder = Path(tempfile.mkdtemp(prefix="axme-sqlite-template-"))
    try:
        db = folder / "template.db"

        async def migrate() -> None:
            store = open_store(str(db))
            await store.open()
            await store.close()

        asyncio.run(migrate())
        conn = sqlite3.connect(db, isolation_level=None)
        try:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            assert busy == 0, "the SQLite template's WAL could not be checkpointed"
        finally:
            conn.close()
        wal = Path(f"{db}-wal")
        assert not wal.exists() or wal.stat().st_size == 0, "the SQLite template's WAL is not empty"
        return db.read_bytes()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# What a copy of the template may differ from it in without a change to its rows: the schema (tables, columns,
# indexes, constraints, triggers, functions, the database's settings), the sequences' positions and the large
# objects. A test's runtime changes none of these; one that did makes the database unfit for the pool.
_SHAPE = b"""SELECT md5(string_agg(d, E'\\n' ORDER BY d)) FROM (
    SELECT format('rel %s %s %s %s', c.oid::regclass, c.relkind, c.relpersistence, c.relacl) AS d FROM pg_class c
        WHERE c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace,
                                     'pg_toast'::regnamespace)
    UNION ALL SELECT format('col %s.%s %s %s %s %s %s', a.attrelid::regclass, a.attname,
                            format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity, a.attgenerated,
                            pg_get_expr(ad.adbin, ad.adrelid))
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
        WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relnamespace = 'public'::regnamespace
    UNION ALL SELECT format('idx %s', pg_get_indexdef(i.indexrelid)) FROM pg_index i JOIN pg_class c
        ON c.oid = i.indrelid WHERE c.relnamespace = 'public'::regnamespace
    UNION ALL SELECT format('con %s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
        FROM pg_constraint WHERE connamespace = 'public'::regnamespace
    UNION ALL SELECT format('trg %s %s %s', tgrelid::regclass, tgname, tgenabled) FROM pg_trigger
        WHERE NOT tgisinternal
    UNION ALL SELECT format('fn %s', oid::regprocedure) FROM pg_proc
        WHERE pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
    UNION ALL SELECT format('set %s', setconfig) FROM pg_db_role_setting
        WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
    UNION ALL SELECT format('seq %s.%s %s', schemaname, sequencename, last_value) FROM pg_sequences
    UNION ALL SELECT format('lo %s', oid) FROM pg_largeobject_metadata
) shape"""
# A runtime that stopped closed its connections, but their server processes end a moment later: waited for so long.
SESSIONS_END_WITHIN = 2.0
# Anyone else on the database (a session, and with it a LISTEN, a prepared statement or an advisory lock), or a
# transaction prepared on it: the database is not the pool's to hand out.
_OTHERS = (b"SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
           b"AND pid <> pg_backend_pid()) "
           b"+ (SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database())")


class Reset:
    """Empties a copy of the template back to exactly what a new copy holds. Made from the template itself: its
    tables, the rows the migrations left in some (``schema_version``), and the shape above."""

    def __init__(self, template_url: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(template_url) as conn:
            tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                                 "ORDER BY tablename")]
            shape = conn.execute(_SHAPE).fetchone()
            self.rows: dict[str, bytes] = {}  # each table the template has rows in: them, as COPY writes them
            checks = []
            for table in tables:
                name = sql.Identifier(table)
                content = conn.execute(sql.SQL(_CONTENT).format(name)).fetchone()
                if content is None or content[0] is None:
                    checks.append(sql.SQL("SELECT {} WHERE EXISTS (SELECT FROM {})").format(table, name))
                    continue
                with conn.cursor().copy(sql.SQL("COPY {} TO STDOUT").format(name)) as copy:
                    self.rows[table] = b"".join(bytes(block) for block in copy)
                checks.append(sql.SQL("SELECT {} WHERE ({}) IS DISTINCT FROM {}").format(
                    table, sql.SQL(_CONTENT).format(name), content[0]))
            # One row per table whose rows are not the template's; the first check adds '' if the shape is not
            # (the rows are put back by DELETE and COPY alone, which change no shape: checked once).
            self.rows_differ = sql.SQL(" UNION ALL ").join(checks).as_bytes(conn)
            self.differs = sql.SQL("SELECT '' WHERE ({}) IS DISTINCT FROM {} UNION ALL ").format(
                sql.SQL(_SHAPE.decode()), shape[0] if shape else None).as_bytes(conn) + self.rows_differ

    def __call__(self, url: str) -> bool:
        """Empty the database at ``url`` back to the template's rows; False if it is not fit for the pool:
        someone else is on it, or its shape is not the template's."""
        import psycopg
        from psycopg import sql

        # autocommit: pg_stat_activity is read once per transaction, and the sessions are what is waited for
        with psycopg.connect(url, autocommit=True) as conn:
            deadline = time.monotonic() + SESSIONS_END_WITHIN
            while _count(conn, _OTHERS) and time.monotonic() < deadline:
                time.sleep(0.02)
            if _count(conn, _OTHERS):
                return False
            with conn.transaction():
                dirty = [r[0] for r in conn.execute(self.differs)]
                if "" in dirty:
                    return False  # dropped: whatever this transaction did no longer matters
                conn.execute(b"".join(sql.SQL("DELETE FROM {};").format(sql.Identifier(t)).as_bytes(conn)
                                      for t in dirty) or b"SELECT")
                for table in dirty:
                    if table in self.rows:
                        with conn.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(sql.Identifier(table))) as copy:
                            copy.write(self.rows[table])
                if list(conn.execute(self.rows_differ)):
                    return False
            return _count(conn, _OTHERS) == 0


# A table's rows as one value, equal for equal rows in any order (NULL for none).
_CONTENT = "SELECT md5(string_agg(r::text, E'\\n' ORDER BY r::text)) FROM {} r"


def _count(conn: Any, query: bytes) -> int:
    row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def _recycle(name: str) -> None:
    """A retired runtime's database: back into the pool if it is a copy of the template emptied back to it, else
    dropped. Any failure while emptying drops it (``_created`` still has it for ``drop_databases``)."""
    fit = False
    if name in _migrated and _reset:
        try:
            fit = _reset[0](_url(name))
        except Exception:  # noqa: BLE001 - whatever went wrong, the database is not handed out again
            fit = False
    if fit:
        _pool.append(name)
    else:
        _drop(name)


def _drop(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())
    with contextlib.suppress(ValueError):
        _created.remove(name)
    _migrated.discard(name)


def drop_databases() -> None:
    """Drop the databases this process made and still has. A DROP DATABASE waits for a checkpoint of the whole
    server (PostgreSQL 15): one after the other, the dozens a worker made took 0.5-0.7 s each at its end. Most are
    dropped before, by ``retire`` (a runtime's own, once it stopped); the rest go together, on connections of their
    own, and wait for the same few checkpoints."""
    _RETIRING.shutdown(wait=True)
    names = list(_created)
    if names:
        with ThreadPoolExecutor(max_workers=min(16, len(names))) as pool:
            list(pool.map(_drop, names))
    _template.clear()
    _pool.clear()
    _reset.clear()


# Retired runtimes are waited for here, one at a time, and then their own PostgreSQL databases pooled or dropped,
# while the tests go on; ``join_retired`` collects what went wrong.
_RETIRING = ThreadPoolExecutor(max_workers=1, thread_name_prefix="retiring")


def retire_later(finish: Callable[[], str | None], database: str | None) -> None:
    """Queue ``finish`` (waits for a retired runtime to stop and says what went wrong, if anything), then
    ``database`` back into the pool or dropped; ``join_retired`` gets the outcome."""
    def run() -> str | None:
        problem = finish()
        if database is not None and problem is None:
            _recycle(database)
        return problem

    RETIRED.append(_RETIRING.submit(run).result)


# What ``retire`` left stopping: each call waits for one runtime and says what went wrong, if anything.
RETIRED: list[Callable[[], str | None]] = []


def join_retired() -> list[str]:
    """Wait for every retired runtime; returns the problems (tests/conftest.py fails the session on any)."""
    problems = []
    while RETIRED:
        problem = RETIRED.pop()()
        if problem:
            problems.append(problem)
    return problems


class RuntimeProcess:
    def __init__(
        self,
        workdir: Path,
        *,
        db: Path | None = None,
        api_key: str | None = ADMIN_KEY,
        extra_args: list[str] | None = None,
        backend: str = "sqlite",
        database_url: str | None = None,
        command: str = "dev",
        wrapper: list[str] | None = None,
    ) -> None:
        """``backend`` "postgres" makes a new PostgreSQL database, migrated already (unless ``database_url`` names
        one, e.g. to start several replicas on one database, or an empty one); "sqlite" uses ``db``, or else
        ``workdir/dev.db``, made a migrated copy (``migrated_sqlite``) at the first start if it is not there yet
        (a test of start-up on an empty file names its ``db``). ``wrapper`` runs the runtime under another
        program (strace): signals then go to the runtime's own pid."""
        self.workdir = workdir
        self.db = db or workdir / "dev.db"
        self.backend = backend
        # copied at the first start (the test may make the folder after this), unless the file is there then
        self.migrated_copy = db is None and database_url is None and backend == "sqlite"
        # a database made here is this runtime's alone: pooled or dropped once it has stopped, if it is retired
        self.own_database: str | None = None
        if database_url is None and backend != "sqlite":
            database_url = new_database(backend, workdir, migrated=True)
            self.own_database = database_url.rsplit("/", 1)[1]
        self.database_url = database_url
        self.command = command
        self.wrapper = wrapper or []
        self.pid = 0
        self.api_key = api_key
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.env = dict(os.environ, AXME_CONFIG_DIR=str(workdir / "config"), AXME_DATA_DIR=str(workdir / "data"))
        self.log = workdir / "runtime.log"
        self.port = 0  # fixed after the first start, so agents reconnect to the same URL after a restart

    def first_start(self) -> None:
        """Before the first start: the default SQLite file made a migrated copy if it is not there."""
        if self.migrated_copy:
            self.migrated_copy = False
            if not self.db.exists():
                migrated_sqlite(self.db)

    def start(self, timeout: float = 20.0) -> RuntimeProcess:
        self.first_start()
        ready = self.workdir / f"ready-{time.monotonic_ns()}.json"
        self.pid = 0
        args = [
            *self.wrapper,
            sys.executable,
            "-m",
            "axme_cli",
            self.command,
            "--port",
            str(self.port),
            *(["--database-url", self.database_url] if self.database_url else ["--db", str(self.db)]),
            "--ready-file",
            str(ready),
            *self.extra_args,
        ]
        if self.api_key:
            args += ["--api-key", self.api_key]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"axme {self.command} exited with {self.proc.returncode}:\n{self.log.read_text()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"axme {self.command} did not become ready:\n{self.log.read_text()}")
            time.sleep(0.02)
        info = json.loads(ready.read_text())
        assert self.wrapper or info["pid"] == self.proc.pid
        self.pid = info["pid"]
        self.url = info["url"]
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    @property
    def mail_dir(self) -> Path:
        """Where the dev mailer of this runtime puts its .eml files (unless the test passed --mail-dir)."""
        if self.database_url is None:
            return Path(str(self.db) + ".mail")
        return self.workdir / "data" / f"{self.command}.mail"

    def stored_bytes(self) -> bytes:
        """Everything the database holds, for tests that look for secrets at rest: the SQLite files (WAL
        first, so a checkpoint between the reads still leaves every page in one of them), or every row of
        every table of the PostgreSQL database as text."""
        if self.database_url is None:
            return b"".join(p.read_bytes() for p in (Path(f"{self.db}-wal"), Path(f"{self.db}-shm"), self.db)
                            if p.exists())
        import psycopg

        with psycopg.connect(self.database_url) as conn:
            tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
            rows = [r[0] for t in tables for r in conn.execute(f"SELECT t::text FROM {t} t".encode())]
        return "\n".join(rows).encode()

    def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.pid or self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            os.kill(self.pid or self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def retire(self) -> None:
        """SIGTERM without waiting for the exit, for a fixture's teardown; a thread waits for it (and kills what did
        not stop in 15 s), then pools or drops its own database; ``join_retired`` collects the outcome at the end of
        the session. Not for a test that restarts on the database."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        pid = self.pid or proc.pid
        os.kill(pid, signal.SIGTERM)

        def finish() -> str | None:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                proc.wait(10)
                return f"runtime {pid} did not stop within 15 s of SIGTERM"
            return None

        retire_later(finish, self.own_database)

    def advance_clock(self, seconds: float) -> None:
        """Move the test clock of a runtime started with ``--test-clock`` (POST /dev/clock/advance)."""
        with self.client() as client:
            r = client.post("/dev/clock/advance", json={"seconds": seconds})
        assert r.status_code == 200, r.text

    def client(self, api_key: str | None = None) -> httpx.Client:
        key = api_key or self.api_key
        headers = {"x-api-key": key} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0, verify=TLS)

"""Each backend's migrations (``store/migrations/sqlite`` and ``store/migrations/postgres``, written out per
dialect) make the schema the old single-source migrations made: PostgreSQL's used to be translated from the
SQLite files by regular expressions at start-up. ``tests/runtime/store/schema/*.txt`` were dumped from
databases migrated by that old code; a database migrated by it must also open with today's code, which applies
nothing again."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from axme_cli.runtime.store import open_store
from axme_cli.runtime.store.sql import load_migrations, split_sql
from tests.runtime.store.test_store import run
from tests.runtime_proc import new_database

SNAPSHOTS = Path(__file__).parent / "schema"


def sqlite_schema(path: str) -> str:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
                            "ORDER BY type, name").fetchall()
    finally:
        conn.close()
    return "".join(f"{kind} {name} on {table}: {' '.join(str(sql).split())}\n" for kind, name, table, sql in rows)


def postgres_schema(url: str) -> str:
    import psycopg

    with psycopg.connect(url) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns "
            "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position").fetchall()
        indexes = conn.execute("SELECT tablename, indexname, indexdef FROM pg_indexes "
                               "WHERE schemaname = current_schema() ORDER BY tablename, indexname").fetchall()
    text = "".join(f"column {t}.{c}: {dt} nullable={n} default={d}\n" for t, c, dt, n, d in columns)
    return text + "".join(f"index {name} on {t}: {d}\n" for t, name, d in indexes)


async def _open_and_close(location: str) -> None:
    store = open_store(location)
    await store.open()
    await store.close()


def _versions(location: str, backend: str) -> list[int]:
    if backend == "sqlite":
        conn = sqlite3.connect(location)
        try:
            return [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")]
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(location) as conn:
        return [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")]


def test_each_backend_has_every_migration_number() -> None:
    assert [v for v, _ in load_migrations("sqlite")] == [v for v, _ in load_migrations("postgres")]


def _old_postgres_translation(script: str) -> str:
    """What the runtime ran on PostgreSQL before the PostgreSQL files were written out: the SQLite file with
    64-bit integers, double precision and no WITHOUT ROWID (kept here to build a database as it did)."""
    script = re.sub(r"\)\s*WITHOUT ROWID", ")", script)
    script = re.sub(r"\bINTEGER\b", "BIGINT", script)
    return re.sub(r"\bREAL\b", "DOUBLE PRECISION", script)


def _migrate_the_old_way(url: str) -> None:
    import psycopg

    sqlite_files = dict(load_migrations("sqlite"))
    own = {10, 14, 29}  # numbers with a PostgreSQL file of their own (14: media_chunks, a BYTEA table SQLite lacks;
    # 29: nothing, the change is SQLite's alone)
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY, applied_at TEXT)")
        for version, pg_script in load_migrations("postgres"):
            script = pg_script if version in own else _old_postgres_translation(sqlite_files[version])
            with conn.transaction():
                for statement in split_sql(script):
                    conn.execute(statement.encode())
                conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (%s, now()::text)", (version,))


def test_old_and_new_databases_have_one_schema(backend: str, tmp_path: Path) -> None:
    every = [v for v, _ in load_migrations(backend)]
    if backend == "sqlite":  # the SQLite files are the ones the old code ran
        path = new_database("sqlite", tmp_path)
        run(_open_and_close(path))
        assert sqlite_schema(path) == (SNAPSHOTS / "sqlite.txt").read_text()
        assert _versions(path, "sqlite") == every
        return
    old = new_database("postgres", tmp_path / "old")
    _migrate_the_old_way(old)
    before = postgres_schema(old)
    run(_open_and_close(old))  # today's code on a database the old code migrated: nothing to apply
    assert postgres_schema(old) == before
    fresh = new_database("postgres", tmp_path / "new")
    run(_open_and_close(fresh))
    assert postgres_schema(fresh) == before == (SNAPSHOTS / "postgres.txt").read_text()
    assert _versions(old, "postgres") == _versions(fresh, "postgres") == every

"""The suite's pool of PostgreSQL databases (tests/runtime_proc.py): a retired runtime's migrated database goes
back to exactly what a new copy of the template holds, or is dropped; never handed out otherwise."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests import runtime_proc
from tests.conftest import make_agent, new_intent
from tests.runtime_thread import RuntimeThread


def _everything(url: str) -> dict[str, object]:
    """Each table's rows (as text, sorted), and the schema, sequences and large objects the pool compares."""
    with psycopg.connect(url) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        found: dict[str, object] = {t: sorted(r[0] for r in conn.execute(f"SELECT r::text FROM {t} r".encode()))
                                    for t in tables}
        found[""] = conn.execute(runtime_proc._SHAPE).fetchone()
    return found


def _exists(name: str) -> bool:
    with psycopg.connect(runtime_proc.PG_ADMIN_URL) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def test_a_retired_runtimes_database_is_handed_out_again_as_a_new_copy(tmp_path: Path) -> None:
    rt = RuntimeThread(tmp_path, backend="postgres").start()
    name = rt.own_database
    assert name is not None
    with rt.client() as admin:
        make_agent(admin, "pool-sink")
        assert admin.post("/v1/intents", json=new_intent("pool-sink")).status_code == 200
    assert rt.stop() == 0
    with psycopg.connect(runtime_proc._url(name)) as conn:  # a table the template has rows in, changed too
        conn.execute("UPDATE schema_version SET applied_at = applied_at || ' again'")
    used = _everything(runtime_proc._url(name))
    template = _everything(runtime_proc._url(runtime_proc._template[0]))
    written = sorted(t for t, rows in used.items() if rows != template[t])
    assert {"intents", "schema_version"} <= set(written), written

    runtime_proc._recycle(name)

    assert name in runtime_proc._pool
    assert _everything(runtime_proc._url(name)) == template
    made = set(runtime_proc._created)  # the pool's among them (other retired runtimes' may join it meanwhile)
    assert runtime_proc.new_database("postgres", tmp_path, migrated=True).rsplit("/", 1)[1] in made
    assert runtime_proc.new_database("postgres", tmp_path).rsplit("/", 1)[1] not in made  # an empty one: made


def test_a_database_someone_is_still_on_is_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime_proc, "SESSIONS_END_WITHIN", 0.0)
    url = runtime_proc.new_database("postgres", tmp_path, migrated=True)
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url, autocommit=True) as listener:
        listener.execute("LISTEN axme_pool_test")
        runtime_proc._recycle(name)
        assert name not in runtime_proc._pool and not _exists(name)


def test_a_database_whose_schema_changed_is_dropped(tmp_path: Path) -> None:
    url = runtime_proc.new_database("postgres", tmp_path, migrated=True)
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url) as conn:
        conn.execute("ALTER TABLE meta ADD COLUMN extra integer")
    runtime_proc._recycle(name)
    assert name not in runtime_proc._pool and not _exists(name)


def test_an_empty_database_is_never_pooled(tmp_path: Path) -> None:
    url = runtime_proc.new_database("postgres", tmp_path)
    name = url.rsplit("/", 1)[1]
    runtime_proc._recycle(name)
    assert name not in runtime_proc._pool and not _exists(name)

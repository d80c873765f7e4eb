"""Engine operations on the real SQLite store, without HTTP."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from axme_cli.runtime.engine import intents as engine
from axme_cli.runtime.errors import Conflict, StoreUnavailable
from axme_cli.runtime.principals import Principal
from axme_cli.runtime.settings import Settings
from axme_cli.runtime.store import open_store
from axme_cli.runtime.store.base import Notes
from tests.runtime_proc import new_database

ADMIN = Principal("workspace", "k1", "initiator://local/dev/admin")
S = Settings(redelivery_seconds=10)


def request(n: int) -> dict:
    return {"intent_type": "order.place.v1", "correlation_id": f"c-{n}", "to_agent": "agent://local/dev/inv",
            "from_agent": ADMIN.address, "payload": {"n": n}}


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_group_commit_answers_every_caller_with_dense_cursors(backend: str, tmp_path: Path) -> None:
    async def main() -> None:
        store = open_store(new_database(backend, tmp_path))
        commits: list[Notes] = []
        store.on_commit = commits.append
        await store.open()
        now = time.time()
        results = await asyncio.gather(*[
            store.write(lambda tx, n=n: engine.op_create(tx, S, ADMIN, request(n), now)) for n in range(300)
        ])
        assert len({r["intent_id"] for r in results}) == 300
        assert len(commits) < 300 and store.commits == len(commits)  # many operations shared a commit
        feed = await store.feed_entries("agent://local/dev/inv", 0, 1000)
        assert [f["cursor"] for f in feed] == list(range(1, 301))
        events = await store.list_events(results[0]["intent_id"], 0)
        assert len(events) == 2
        await store.close()

    run(main())


def test_a_refused_operation_does_not_undo_its_batch(backend: str, tmp_path: Path) -> None:
    async def main() -> None:
        store = open_store(new_database(backend, tmp_path))
        await store.open()
        now = time.time()
        idem = ("scope", "key", "hash-1")
        first = await store.write(lambda tx: engine.op_create(tx, S, ADMIN, request(1), now, idem))

        def conflicting(tx):  # type: ignore[no-untyped-def]
            return engine.op_create(tx, S, ADMIN, request(2), now, ("scope", "key", "hash-2"))

        outcomes = await asyncio.gather(
            store.write(conflicting),
            store.write(lambda tx: engine.op_create(tx, S, ADMIN, request(3), now)),
            return_exceptions=True,
        )
        assert isinstance(outcomes[0], Conflict)
        assert await store.get_intent(outcomes[1]["intent_id"]) is not None
        replay = await store.write(lambda tx: engine.op_create(tx, S, ADMIN, request(1), now, idem))
        assert replay == first
        await store.close()

    run(main())


def test_an_operations_events_are_written_together_and_undone_with_it(backend: str, tmp_path: Path) -> None:
    """An operation's events go to the database in one INSERT per 64 when it ends (tx.finish): 150 deliveries in
    one operation keep every event, and an event that collides with a stored one fails that operation alone."""
    async def main() -> None:
        store = open_store(new_database(backend, tmp_path))
        await store.open()
        now = time.time()
        created = [await store.write(lambda tx, n=n: engine.op_create(tx, S, ADMIN, request(n), now))
                   for n in range(150)]
        deliveries = [(c["intent_id"], 1) for c in created]
        await store.write(lambda tx: engine.op_mark_delivered_many(tx, S, deliveries, "agent://x", now))
        for c in created:
            events = [engine.loads(e) for e in await store.list_events(c["intent_id"], 0)]
            assert [(e["seq"], e["event_type"]) for e in events] == [
                (1, "intent.created"), (2, "intent.submitted"), (3, "intent.delivered")]
        first = created[0]["intent_id"]

        def colliding(tx):  # type: ignore[no-untyped-def]
            engine.op_create(tx, S, ADMIN, request(999), now)
            tx.insert_event(first, 3, "{}")  # seq 3 of that intent is stored already

        outcomes = await asyncio.gather(
            store.write(colliding),
            store.write(lambda tx: engine.op_create(tx, S, ADMIN, request(1000), now)),
            return_exceptions=True,
        )
        assert isinstance(outcomes[0], Exception) and not isinstance(outcomes[1], Exception)
        assert await store.get_intent(outcomes[1]["intent_id"]) is not None
        assert len(await store.list_events(first, 0)) == 3
        stored = await store.list_intents(statuses=None, agent=None, limit=2000)
        assert len(stored) == 151  # the colliding operation's intent was undone with it
        await store.close()

    run(main())


def test_timers_fire_redelivery_then_delivery_failed(backend: str, tmp_path: Path) -> None:
    async def main() -> None:
        store = open_store(new_database(backend, tmp_path))
        await store.open()
        t0 = time.time()
        created = await store.write(lambda tx: engine.op_create(tx, S, ADMIN, {**request(1),
                                                                               "max_delivery_attempts": 2}, t0))
        intent_id = created["intent_id"]
        assert (await store.next_wake()) == pytest.approx(t0 + 10)
        await store.write(lambda tx: engine.op_fire_due(tx, S, t0 + 10.5))
        row = await store.get_intent(intent_id)
        assert row is not None and row["delivery_attempt"] == 2 and row["status"] == "SUBMITTED"
        assert [f["attempt"] for f in await store.feed_entries("agent://local/dev/inv", 0, 10)] == [2]
        await store.write(lambda tx: engine.op_fire_due(tx, S, t0 + 21))
        row = await store.get_intent(intent_id)
        assert row is not None and row["status"] == "FAILED" and row["wake_ts"] is None
        assert (await store.next_wake()) is None
        await store.close()

    run(main())


def test_locked_database_is_503_not_a_crash(tmp_path: Path) -> None:
    """A lock held past the busy timeout (here a short one: the lock is held until the write has failed) fails
    the write with the retryable StoreUnavailable; once the lock is gone, writes go through again."""
    async def main() -> None:
        path = tmp_path / "s.db"
        store = open_store(str(path), busy_timeout=0.2)
        await store.open()
        blocker = sqlite3.connect(path, isolation_level=None, timeout=0)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(StoreUnavailable) as info:
                await store.write(lambda tx: engine.op_create(tx, S, ADMIN, request(1), time.time()))
            assert info.value.retry_after == 1 and info.value.details == {"retryable": True}
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        ok = await store.write(lambda tx: engine.op_create(tx, S, ADMIN, request(2), time.time()))
        assert ok["ok"] is True
        await store.close()

    run(main())
    # what a runtime waits for a lock when nothing shortens it (ServeOptions.sqlite_busy_timeout, no flag)
    assert open_store(str(tmp_path / "default.db")).busy_timeout == 5.0  # type: ignore[attr-defined]


def test_migration_10_keeps_intents_and_workflows_in_rowid_tables(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A database made before migration 0010 (intents and workflows WITHOUT ROWID) keeps every row and index."""
    from axme_cli.runtime.store import sql
    from axme_cli.runtime.store import sqlite as sqlite_store

    path = str(tmp_path / "old.db")
    every = sql.load_migrations("sqlite")
    monkeypatch.setattr(sqlite_store, "load_migrations", lambda dialect: [m for m in every if m[0] < 10])

    async def make_old() -> list[str]:
        store = open_store(path)
        await store.open()
        made = [await store.write(lambda tx, n=n: engine.op_create(tx, S, ADMIN, request(n), time.time()))
                for n in range(5)]
        await store.close()
        return [m["intent_id"] for m in made]

    # whose http binding was a service account's only (no routes yet), and whose intents had no workspace (0022)
    before_0022 = [c for c in sql.INTENT_COLUMNS if c not in ("org_id", "workspace_id")]
    with monkeypatch.context() as old_build:
        old_build.setattr(sqlite_store.SqliteTx, "http_binding", lambda self, address: None)
        old_build.setattr(sqlite_store.SqliteTx, "insert_intent",
                          lambda self, row: self._insert("intents", {c: row.get(c) for c in before_0022}))
        ids = run(make_old())
    conn = sqlite3.connect(path)
    assert "WITHOUT ROWID" in conn.execute("SELECT sql FROM sqlite_master WHERE name = 'intents'").fetchone()[0]
    conn.close()
    monkeypatch.setattr(sqlite_store, "load_migrations", lambda dialect: every)

    async def reopen() -> None:
        store = open_store(path)
        await store.open()
        for intent_id in ids:
            row = await store.get_intent(intent_id)
            assert row is not None and row["status"] == "SUBMITTED" and row["timer_ts"] is None
            assert len(await store.list_events(intent_id, 0)) == 2
        assert [r["intent_id"] for r in await store.list_intents(statuses=["SUBMITTED"], agent=None, limit=10)] \
            == sorted(ids, reverse=True)
        await store.close()

    run(reopen())
    conn = sqlite3.connect(path)
    for table in ("intents", "workflows"):
        ddl = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
        assert "WITHOUT ROWID" not in ddl
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?",
                                          ("intents",))}
    assert {"intents_wake", "intents_to", "intents_from", "intents_status"} <= indexes
    conn.close()


def test_migration_29_keeps_every_event_in_its_order_and_each_seq_once(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A database made before migration 0029 (events WITHOUT ROWID, in their key's order) keeps every event, in
    each intent's seq order; events written after it are read in that order too, and an intent's seq is still
    taken once only."""
    from axme_cli.runtime.store import sql
    from axme_cli.runtime.store import sqlite as sqlite_store

    path = str(tmp_path / "old.db")
    every = sql.load_migrations("sqlite")
    monkeypatch.setattr(sqlite_store, "load_migrations", lambda dialect: [m for m in every if m[0] < 29])

    async def make(store_path: str, first: int) -> list[str]:
        store = open_store(store_path)
        await store.open()
        made = [await store.write(lambda tx, n=n: engine.op_create(tx, S, ADMIN, request(n), time.time()))
                for n in range(first, first + 4)]
        await store.close()
        return [m["intent_id"] for m in made]

    old_ids = run(make(path, 0))
    conn = sqlite3.connect(path)
    assert "WITHOUT ROWID" in conn.execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()[0]
    before = conn.execute("SELECT intent_id, seq, data FROM events ORDER BY intent_id, seq").fetchall()
    conn.close()
    monkeypatch.setattr(sqlite_store, "load_migrations", lambda dialect: every)
    new_ids = run(make(path, 10))

    async def reopen() -> None:
        store = open_store(path)
        await store.open()
        for intent_id in old_ids + new_ids:
            events = await store.list_events(intent_id, 0)
            assert [json.loads(e)["seq"] for e in events] == [1, 2]
            assert [json.loads(e)["seq"] for e in await store.list_events(intent_id, 1)] == [2]

        def again(tx: Any) -> None:
            tx.insert_event(old_ids[0], 2, "{}")

        with pytest.raises(sqlite3.IntegrityError):
            await store.write(again)
        await store.close()

    run(reopen())
    conn = sqlite3.connect(path)
    assert "WITHOUT ROWID" not in conn.execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()[0]
    kept = conn.execute("SELECT intent_id, seq, data FROM events ORDER BY intent_id, seq").fetchall()
    assert [r for r in kept if r[0] in old_ids] == before
    plan = " ".join(str(r) for r in conn.execute(
        "EXPLAIN QUERY PLAN SELECT data FROM events WHERE intent_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        ("x", 0, 10)))
    assert "events_key" in plan and "TEMP B-TREE" not in plan  # read by the key's index, in its order
    conn.close()


def test_the_writers_row_cache_always_matches_the_database(tmp_path: Path) -> None:
    """SQLite's writer answers reads of intents, workflows and service accounts from its RowCache: after a mix of
    operations (some refused after writing, so undone), every cached row equals the database's row."""
    from axme_cli.protocol.scenario import check
    from axme_cli.runtime.engine import workflows
    from axme_cli.runtime.store.sqlite import SqliteStore
    from tests.runtime.engine.test_workflows import saga

    agent = Principal("service_account", "k2", "agent://local/dev/inventory")

    async def main() -> None:
        store = open_store(str(tmp_path / "cache.db"))
        assert isinstance(store, SqliteStore)
        await store.open()
        bundle, errors, _ = check(saga("cache"))
        assert bundle is not None and not errors, errors
        applied = [await store.write(lambda tx: workflows.op_apply(tx, S, ADMIN, bundle, time.time(), None))
                   for _ in range(3)]
        created = [await store.write(lambda tx, n=n: engine.op_create(tx, S, ADMIN, request(n), time.time()))
                   for n in range(3)]

        def undone_after_writing(tx):  # type: ignore[no-untyped-def]
            engine.op_create(tx, S, ADMIN, request(99), time.time())
            raise Conflict("refused after it wrote")

        deliveries = [(c["intent_id"], 1) for c in created]
        await store.write(lambda tx: engine.op_mark_delivered_many(tx, S, deliveries, agent.address, time.time()))
        outcomes = await asyncio.gather(
            store.write(undone_after_writing),
            store.write(lambda tx: engine.op_resume(tx, S, ADMIN, created[0]["intent_id"], {"action": "complete"},
                                                    time.time())),
            store.write(lambda tx: engine.op_resume(tx, S, ADMIN, created[1]["intent_id"], {"action": "bogus"},
                                                    time.time())),
            return_exceptions=True,
        )
        assert isinstance(outcomes[0], Conflict) and isinstance(outcomes[2], Exception)
        # the workflows' first steps end (read through the cache), the next steps start
        for answer in applied:
            parent = await store.get_intent(answer["intent_id"])
            assert parent is not None
            wf = await store.get_workflow(engine.loads(parent["doc"])["workflow_id"])
            assert wf is not None
            child = engine.loads(wf["state"])["child"]
            await store.write(lambda tx, child=child: engine.op_resume(tx, S, ADMIN, child, {"action": "complete"},
                                                                      time.time()))
        applied.append(await store.write(lambda tx: workflows.op_apply(tx, S, ADMIN, bundle, time.time(), None)))
        cache = store._cache
        assert cache.intents and cache.workflows, "the operations above went through the cache"
        db = sqlite3.connect(store.location)
        db.row_factory = sqlite3.Row
        for table, key, rows in (("intents", "intent_id", cache.intents), ("workflows", "workflow_id",
                                                                           cache.workflows)):
            for ident, row in rows.items():
                stored = db.execute(f"SELECT * FROM {table} WHERE {key} = ?", (ident,)).fetchone()
                assert stored is not None and dict(stored) == row, (table, ident)
        assert {kind for kind, _ in cache.accounts} == {"active", "http"}
        for (kind, address), row in cache.accounts.items():
            sql = ("SELECT * FROM service_accounts WHERE address = ? AND status = 'active'" if kind == "active" else
                   "SELECT service_account_id, address, callback_url, delivery_secret FROM service_accounts "
                   "WHERE address = ? AND status = 'active' AND delivery_mode = 'http'")
            stored = db.execute(sql, (address,)).fetchone()
            assert (dict(stored) if stored is not None else None) == row, (kind, address)
        assert len(applied) == 4
        from axme_cli.runtime.store.sql import WORKFLOW_COLUMNS

        assert {r[1] for r in db.execute("PRAGMA table_info(workflows)")} == WORKFLOW_COLUMNS
        # the operation undone after it wrote left no intent and no event behind
        assert db.execute("SELECT count(*) FROM intents WHERE correlation_id = 'c-99'").fetchone()[0] == 0
        orphans = db.execute("SELECT count(*) FROM events WHERE intent_id NOT IN (SELECT intent_id FROM intents)")
        assert orphans.fetchone()[0] == 0
        db.close()
        await store.close()

    run(main())


def test_a_second_runtime_on_the_same_sqlite_database_is_refused(tmp_path: Path) -> None:
    async def main() -> None:
        path = str(tmp_path / "one.db")
        first = open_store(path)
        await first.open()
        second = open_store(path)
        with pytest.raises(StoreUnavailable, match="another axme runtime .pid \\d+. is using the database"):
            await second.open()
        await first.close()
        await second.open()  # free again once the first one closed
        await second.close()

    run(main())


def test_a_large_operation_undone_keeps_its_undo_copies_in_memory(tmp_path: Path) -> None:
    """An operation's SAVEPOINT keeps the pages it changes in a sub-journal; past 64 KiB SQLite spills that to a
    temporary file (an open, an unlink and a write per page) unless ``temp_store`` is memory. Undoing one that
    changed far more than that must still leave the batch's other operations alone."""
    async def main() -> None:
        store = open_store(str(tmp_path / "undo.db"))
        await store.open()
        now = time.time()
        assert store._write.execute("PRAGMA temp_store").fetchone()[0] == 2  # type: ignore[attr-defined]

        def large_then_refused(tx):  # type: ignore[no-untyped-def]
            for n in range(200):
                engine.op_create(tx, S, ADMIN, {**request(n), "payload": {"blob": "x" * 2000}}, now)
            raise Conflict("refused after writing")

        outcomes = await asyncio.gather(store.write(large_then_refused),
                                        store.write(lambda tx: engine.op_create(tx, S, ADMIN, request(999), now)),
                                        return_exceptions=True)
        assert isinstance(outcomes[0], Conflict)
        assert await store.get_intent(outcomes[1]["intent_id"]) is not None
        feed = await store.feed_entries("agent://local/dev/inv", 0, 1000)
        assert [f["intent_id"] for f in feed] == [outcomes[1]["intent_id"]]
        await store.close()

    run(main())


def test_savepoints_only_when_an_operation_refuses_after_it_wrote(tmp_path: Path) -> None:
    """The writer runs a batch without a SAVEPOINT per operation; one that refuses before writing needs no undo.
    One that refuses after writing makes it run the batch again, each operation in a SAVEPOINT: the others are
    written once, the refused one not at all, and its refusal is answered without running it again."""
    async def main() -> None:
        store = open_store(str(tmp_path / "sp.db"))
        await store.open()
        sent: list[str] = []
        store._write.set_trace_callback(sent.append)  # type: ignore[attr-defined]
        now = time.time()
        idem = ("scope", "key", "hash-1")
        await store.write(lambda tx: engine.op_create(tx, S, ADMIN, request(1), now, idem))
        refusing_first = await asyncio.gather(
            store.write(lambda tx: engine.op_create(tx, S, ADMIN, request(2), now)),
            store.write(lambda tx: engine.op_create(tx, S, ADMIN, request(3), now, ("scope", "key", "hash-2"))),
            store.write(lambda tx: engine.op_create(tx, S, ADMIN, request(4), now)),
            return_exceptions=True)
        assert isinstance(refusing_first[1], Conflict)
        assert not [t for t in sent if "SAVEPOINT" in t or "ROLLBACK" in t], sent

        runs = []

        def undone_after_writing(tx):  # type: ignore[no-untyped-def]
            runs.append(1)
            engine.op_create(tx, S, ADMIN, request(99), now)
            raise Conflict("refused after it wrote")

        sent.clear()
        outcomes = await asyncio.gather(
            store.write(lambda tx: engine.op_create(tx, S, ADMIN, request(5), now)),
            store.write(undone_after_writing),
            store.write(lambda tx: engine.op_create(tx, S, ADMIN, request(6), now)),
            return_exceptions=True)
        assert isinstance(outcomes[1], Conflict) and runs == [1]
        assert sum(t.startswith("SAVEPOINT") for t in sent) == 2 and "ROLLBACK" in sent, sent
        feed = await store.feed_entries("agent://local/dev/inv", 0, 1000)
        made = [r["intent_id"] for r in (refusing_first[0], refusing_first[2], outcomes[0], outcomes[2])]
        assert [f["intent_id"] for f in feed][1:] == made  # each once, in order, with dense cursors
        assert [f["cursor"] for f in feed] == list(range(1, 6))
        for intent_id in made:
            assert await store.get_intent(intent_id) is not None
        await store.close()

    run(main())


def test_the_sqlite_row_cache_drops_its_oldest_eighth_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    from axme_cli.runtime.store.sqlite import RowCache

    monkeypatch.setattr(RowCache, "SIZE", 16)
    cache = RowCache()
    for n in range(17):
        cache.put(cache.intents, f"i{n}", {"intent_id": f"i{n}"})
    assert list(cache.intents) == [f"i{n}" for n in range(2, 17)]  # i0 and i1 went together, the newest stay

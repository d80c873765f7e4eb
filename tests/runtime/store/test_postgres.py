"""PostgreSQL with several replicas on one database, at the store level: what two writers may not break."""

from __future__ import annotations

import asyncio
import functools
import json
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from axme_cli.runtime.engine import agents
from axme_cli.runtime.engine import intents as engine
from axme_cli.runtime.errors import Conflict, StoreUnavailable
from axme_cli.runtime.store import open_store, postgres
from axme_cli.runtime.store.base import Notes
from axme_cli.runtime.store.postgres import PostgresStore, decode_notes, encode_notes
from tests.runtime.store.test_store import ADMIN, S, request, run
from tests.runtime_proc import new_database

AGENT = "agent://local/dev/inv"


def _replicas(url: str, n: int) -> list[PostgresStore]:
    stores = [open_store(url, replica_id=f"r{i}") for i in range(n)]
    assert all(isinstance(s, PostgresStore) for s in stores)
    return stores  # type: ignore[return-value]


def test_replicas_starting_together_migrate_once(tmp_path: Path) -> None:
    url = new_database("postgres", tmp_path)

    async def main() -> None:
        stores = _replicas(url, 4)
        await asyncio.gather(*(s.open() for s in stores))
        await asyncio.gather(*(s.close() for s in stores))

    run(main())
    with psycopg.connect(url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == sorted(set(versions)) and versions[0] == 1


def test_two_replicas_keep_cursors_and_event_seq_dense(tmp_path: Path) -> None:
    url = new_database("postgres", tmp_path)

    async def main() -> None:
        a, b = _replicas(url, 2)
        await asyncio.gather(a.open(), b.open())
        now = time.time()
        created = await asyncio.gather(*[
            (a if n % 2 else b).write(lambda tx, n=n: engine.op_create(tx, S, ADMIN, request(n), now))
            for n in range(200)
        ])
        feed = await a.feed_entries(AGENT, 0, 1000)
        assert [f["cursor"] for f in feed] == list(range(1, 201))
        assert {f["intent_id"] for f in feed} == {c["intent_id"] for c in created}
        # Both replicas fire the same due redeliveries at once: each intent is redelivered exactly once.
        later = now + S.redelivery_seconds + 1
        fired = await asyncio.gather(*[
            s.write(lambda tx: engine.op_fire_due(tx, S, later)) for s in (a, b, a, b)
        ])
        assert fired is not None
        for c in created[:20]:
            row = await b.get_intent(c["intent_id"])
            assert row is not None and row["delivery_attempt"] == 2
            seqs = [json.loads(e)["seq"] for e in await b.list_events(c["intent_id"], 0)]
            assert seqs == list(range(1, len(seqs) + 1))
        feed = await b.feed_entries(AGENT, 0, 1000)  # only the newest attempt of each intent
        assert len(feed) == 200 and all(f["attempt"] == 2 for f in feed)
        assert [f["cursor"] for f in feed] == list(range(201, 401))
        await asyncio.gather(a.close(), b.close())

    run(main())


def test_a_commit_on_one_replica_wakes_the_other(tmp_path: Path) -> None:
    url = new_database("postgres", tmp_path)

    async def main() -> None:
        a, b = _replicas(url, 2)
        await asyncio.gather(a.open(), b.open())
        seen: list[Notes] = []
        woke = asyncio.Event()

        def on_commit(notes: Notes) -> None:
            seen.append(notes)
            if AGENT in notes.feeds:
                woke.set()

        b.on_commit = on_commit
        await a.write(lambda tx: engine.op_create(tx, S, ADMIN, request(1), time.time()))
        await asyncio.wait_for(woke.wait(), 10)
        assert any(n.intents for n in seen) and any(n.wake_at for n in seen)
        await asyncio.gather(a.close(), b.close())

    run(main())


def test_notes_split_into_payloads_postgres_accepts() -> None:
    notes = Notes(intents={f"{i:036d}" for i in range(600)}, feeds={AGENT}, keys_changed=True)
    notes.timer(123.5)
    notes.kill_switch(AGENT, True)
    notes.kill_switch("agent://o/w/back", False)
    payloads = encode_notes("r1", notes)
    assert len(payloads) > 1 and all(len(p) < 8000 for p in payloads)
    merged = Notes()
    for p in payloads:
        replica, part = decode_notes(p)
        assert replica == "r1"
        merged.merge(part)
    assert merged.intents == notes.intents and merged.feeds == notes.feeds
    assert merged.keys_changed and merged.wake_at == 123.5
    assert merged.killed == {AGENT: True, "agent://o/w/back": False}  # the kill switch's changes (engine/mesh.py)
    assert encode_notes("r1", Notes()) == []


def test_connections_cut_by_the_server_come_back(tmp_path: Path) -> None:
    """PostgreSQL restarted or a connection killed: the next operations work again (or fail with the
    retryable 503, never anything else), and the LISTEN connection reconnects and wakes everyone."""
    url = new_database("postgres", tmp_path)

    async def main() -> None:
        a, b = _replicas(url, 2)
        await asyncio.gather(a.open(), b.open())
        woke = asyncio.Event()
        b.on_commit = lambda notes: woke.set() if notes.everything else None
        await a.write(lambda tx: engine.op_create(tx, S, ADMIN, request(1), time.time()))
        with psycopg.connect(url, autocommit=True) as conn:
            killed = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
        assert killed is not None and killed[0] >= 4  # both replicas' pools and listeners
        await asyncio.wait_for(woke.wait(), 10)  # b's listener came back and woke its streams
        outcomes = []
        for n in range(2, 6):
            try:
                await a.write(lambda tx, n=n: engine.op_create(tx, S, ADMIN, request(n), time.time()))
                outcomes.append("ok")
            except StoreUnavailable as exc:
                assert exc.retry_after == 1 and exc.details == {"retryable": True}
                outcomes.append("503")
        assert outcomes[-1] == "ok", outcomes
        assert len(await b.feed_entries(AGENT, 0, 100)) >= 2
        await asyncio.gather(a.close(), b.close())

    run(main())


def test_notes_carry_events_and_feed_rows_and_leave_out_what_does_not_fit() -> None:
    """A notification hands other replicas' streams what the batch wrote (events, feed rows); an intent or feed
    whose items cannot fit in a payload is named alone, so its streams read instead."""
    notes = Notes(intents={"i1", "i2"}, feeds={AGENT})
    notes.event("i1", 3, '{"seq": 3}')
    notes.event("i2", 1, "x" * 9000)  # too big for any payload
    notes.feed_row(AGENT, {"intent_id": "i1", "cursor": 7, "attempt": 1, "fed_at": "t", "status": "SUBMITTED",
                           "payload": "{}", "doc": "not sent"})
    payloads = encode_notes("r1", notes)
    assert all(len(p) < 8000 for p in payloads)
    merged = Notes()
    for p in payloads:
        merged.merge(decode_notes(p)[1])
    assert merged.intents == {"i1", "i2"} and merged.feeds == {AGENT}
    assert merged.events == {"i1": [(3, '{"seq": 3}')]}  # i2 named without its events: its streams read
    assert merged.fed is not None and [(r["cursor"], r["intent_id"]) for r in merged.fed[AGENT]] == [(7, "i1")]
    assert "doc" not in merged.fed[AGENT][0]


def test_a_commit_hands_its_events_and_feed_rows_to_the_other_replica(tmp_path: Path) -> None:
    url = new_database("postgres", tmp_path)

    async def main() -> None:
        a, b = _replicas(url, 2)
        await asyncio.gather(a.open(), b.open())
        heard: asyncio.Queue[Notes] = asyncio.Queue()
        b.on_commit = heard.put_nowait
        local: list[Notes] = []
        a.on_commit = local.append
        created = await a.write(lambda tx: engine.op_create(tx, S, ADMIN, request(1), time.time()))
        notes = await asyncio.wait_for(heard.get(), 10)
        while created["intent_id"] not in notes.intents:
            notes = await asyncio.wait_for(heard.get(), 10)
        stored = await b.list_events(created["intent_id"], 0)
        assert notes.events == {created["intent_id"]: [(1, stored[0]), (2, stored[1])]}
        feed = await b.feed_entries(AGENT, 0, 10)
        assert notes.fed is not None and [r["cursor"] for r in notes.fed[AGENT]] == [feed[0]["cursor"]] == [1]
        assert local[-1].fed is not None and local[-1].fed[AGENT][0]["cursor"] == 1  # and to its own streams
        await asyncio.gather(a.close(), b.close())

    run(main())


def test_a_batch_commits_once_and_an_operation_that_refuses_after_writing_is_undone_alone(tmp_path: Path) -> None:
    """Operations queued together run in one transaction. One that refuses before writing anything is answered
    alone and the batch commits; one that refuses after writing makes each operation of its batch run in a
    transaction of its own, so its writes are undone and the others' kept."""
    url = new_database("postgres", tmp_path)

    async def main() -> None:
        (store,) = _replicas(url, 1)
        await store.open()
        now = time.time()
        gate, entered = threading.Event(), threading.Event()

        def hold(tx):  # type: ignore[no-untyped-def]  # keeps the writer busy while the next batch queues
            entered.set()
            gate.wait(10)

        async def batch(*ops):  # type: ignore[no-untyped-def]
            held = asyncio.ensure_future(store.write(hold))
            await asyncio.get_running_loop().run_in_executor(None, entered.wait, 10)
            futures = [asyncio.ensure_future(store.write(op)) for op in ops]
            await asyncio.sleep(0)  # queued behind hold
            commits = store.commits
            gate.set()
            await held
            outcomes = await asyncio.gather(*futures, return_exceptions=True)
            gate.clear()
            entered.clear()
            return outcomes, store.commits - commits

        def refuse_first(tx):  # type: ignore[no-untyped-def]
            raise Conflict("no")

        def refuse_after(tx):  # type: ignore[no-untyped-def]
            engine.op_create(tx, S, ADMIN, request(99), now)
            raise Conflict("changed my mind")

        create = [lambda tx, n=n: engine.op_create(tx, S, ADMIN, request(n), now) for n in range(4)]
        outcomes, commits = await batch(create[0], refuse_first, create[1])
        assert isinstance(outcomes[1], Conflict) and commits == 2  # hold's batch, then the three together
        outcomes2, _ = await batch(create[2], refuse_after, create[3])
        assert isinstance(outcomes2[1], Conflict)
        kept = {r["correlation_id"] for r in await store.list_intents(statuses=None, agent=None, limit=100)}
        assert kept == {"c-0", "c-1", "c-2", "c-3"}  # c-99 was undone
        assert [f["cursor"] for f in await store.feed_entries(AGENT, 0, 100)] == [1, 2, 3, 4]
        await store.close()

    run(main())


def test_a_service_account_changed_on_one_replica_is_not_served_stale_by_another(tmp_path: Path) -> None:
    """Replicas keep agents' service accounts by address across batches; a change on one empties the others'
    (its notes say keys changed)."""
    url = new_database("postgres", tmp_path)
    address = "agent://local/dev/kept"

    async def main() -> None:
        a, b = _replicas(url, 2)
        await asyncio.gather(a.open(), b.open())
        changed = asyncio.Event()
        b.on_commit = lambda notes: changed.set() if notes.keys_changed else None
        made = await a.write(lambda tx: agents.op_create_service_account(tx, S, ADMIN, {"name": address}, time.time()))
        sa_id = made["service_account"]["service_account_id"]
        await asyncio.wait_for(changed.wait(), 10)

        def lookup(tx):  # type: ignore[no-untyped-def]
            return tx.active_service_account_by_address(address)

        assert (await b.write(lookup))["service_account_id"] == sa_id  # now kept by b
        changed.clear()
        await a.write(lambda tx: agents.op_delete_service_account(tx, S, ADMIN, sa_id, time.time()))
        await asyncio.wait_for(changed.wait(), 10)
        assert await b.write(lookup) is None
        await asyncio.gather(a.close(), b.close())

    run(main())


def test_rows_are_found_by_key_whatever_plan_postgresql_keeps(tmp_path: Path) -> None:
    """The writer's prepared statements find an intent by primary key even when prepared while the table was small:
    a plan kept from then (a sequential scan) read the whole table for every operation as it grew."""
    url = new_database("postgres", tmp_path)

    async def main() -> None:
        (store,) = _replicas(url, 1)
        await store.open()
        now = time.time()

        def deliver(intent_id: str):  # type: ignore[no-untyped-def]
            return lambda tx: engine.op_mark_delivered(tx, S, intent_id, 1, AGENT, now)

        few = [await store.write(lambda tx, n=n: engine.op_create(tx, S, ADMIN, request(n), now)) for n in range(3)]
        for n in range(12):  # alone, on a table of three rows: the statements are prepared and their plans kept
            await store.write(deliver(few[n % 3]["intent_id"]))
        await asyncio.gather(*[store.write(lambda tx, n=n: engine.op_create(tx, S, ADMIN, request(n), now))
                               for n in range(3, 603)])  # inserts read nothing
        for n in range(3, 23):
            created = await store.write(lambda tx, n=n: engine.op_create(tx, S, ADMIN, request(1000 + n), now))
            await store.write(deliver(created["intent_id"]))
        await store.close()  # its sessions' statistics are flushed

    run(main())
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT seq_tup_read, idx_scan FROM pg_stat_user_tables WHERE relname = 'intents'").fetchone()
    assert row is not None and row[1] >= 20
    assert row[0] < 600, row  # not even one table's worth (20 scans of 600 rows before)


def test_a_batch_reading_several_intents_finds_them_by_key_after_the_table_was_analyzed_small(
        tmp_path: Path) -> None:
    """Autovacuum analyzes a new table after its first 50 rows; a generic plan made then (a sequential scan of a page
    or two) was kept until the next analyze, a minute later at best, as the table grew. The writer's reads, of one
    intent or of several in one statement (a feed's marks for several intents, prepared once per size), stay lookups
    by key."""
    url = new_database("postgres", tmp_path)

    async def main() -> None:
        (store,) = _replicas(url, 1)
        await store.open()
        now = time.time()

        def deliver(*intent_ids: str):  # type: ignore[no-untyped-def]
            deliveries = [(i, 1) for i in intent_ids]
            return functools.partial(engine.op_mark_delivered_many, s=S, deliveries=deliveries, actor=AGENT, now=now)

        few = [(await store.write(lambda tx, n=n: engine.op_create(tx, S, ADMIN, request(n), now)))["intent_id"]
               for n in range(6)]
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE intents, workflows")
        for n in range(12):  # the statements are prepared and, after five runs, their generic plans kept
            await store.write(deliver(few[n % 6]))
            await store.write(deliver(*few[:2]))
            await store.write(deliver(*few[:3]))
            await store.write(deliver(*few))
        await asyncio.gather(*[store.write(lambda tx, n=n: engine.op_create(tx, S, ADMIN, request(n), now))
                               for n in range(6, 606)])
        for n in range(606, 616):
            created = [await store.write(lambda tx, n=n, k=k: engine.op_create(tx, S, ADMIN, request(n * 8 + k), now))
                       for k in range(6)]
            ids = [c["intent_id"] for c in created]
            await store.write(deliver(ids[0]))
            await store.write(deliver(*ids[1:3]))
            await store.write(deliver(*ids[3:]))
            rows = [await store.get_intent(i) for i in ids]
            assert all(r is not None and r["status"] == "DELIVERED" for r in rows), rows
        await store.close()  # its sessions' statistics are flushed

    run(main())
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT seq_tup_read FROM pg_stat_user_tables WHERE relname = 'intents'").fetchone()
    assert row is not None and row[0] < 600, row  # not even one table's worth


def test_a_batch_is_its_reads_and_one_statement_with_its_commit(tmp_path: Path) -> None:
    """A batch's end is one statement (its rows, events, feed and notification), a transaction of its own; a batch
    that reads an intent its writer did not keep reads it first, without a transaction, and its end checks it; after
    a failed check, the batch runs again with BEGIN and a locking read, and its end goes with the COMMIT. Rows it
    changed are written whatever their values' Python types (a float where the column is an integer) and an update
    of no field writes nothing."""
    url = new_database("postgres", tmp_path)

    async def main() -> None:
        (store,) = _replicas(url, 1)
        await store.open()
        now = time.time()

        async def counted(op):  # type: ignore[no-untyped-def]
            before = store.statements, store.commits
            result = await store.write(op)
            return result, store.statements - before[0], store.commits - before[1]

        await store.write(lambda tx: engine.op_create(tx, S, ADMIN, request(0), now))  # its agent is kept now
        created, statements, commits = await counted(lambda tx: engine.op_create(tx, S, ADMIN, request(1), now))
        assert (statements, commits) == (1, 1)  # the end alone: one round trip
        intent_id = created["intent_id"]
        store._cache.clear()
        _, statements, _ = await counted(lambda tx: engine.op_mark_delivered(tx, S, intent_id, 1, AGENT, now))
        assert statements == 2  # the intent read, then the end with its check
        _, statements, _ = await counted(lambda tx: engine.op_mark_delivered(tx, S, intent_id, 2, AGENT, now))
        assert statements == 1  # the intent was kept: the end with its check

        def change(tx):  # type: ignore[no-untyped-def]
            row = tx.get_intent(intent_id)
            tx.update_intent(intent_id, {"delivery_attempt": float(row["delivery_attempt"] + 2), "waiting_reason": "x"})
            tx.update_intent(intent_id, {})

        with psycopg.connect(url, autocommit=True) as conn:  # changed behind the writer's back: its check fails
            conn.execute("UPDATE intents SET updated_at = updated_at WHERE intent_id = %s", (intent_id,))
        _, statements, _ = await counted(change)
        assert statements == 1 + 4 and store._cache.stale == 1  # the end, then BEGIN with the read, end, COMMIT
        # an update of no field, then a statement that sends what the batch held back first: nothing to send
        await store.write(lambda tx: (tx.get_intent(intent_id), tx.update_intent(intent_id, {}), tx.exclusive("t")))
        row = await store.get_intent(intent_id)
        assert row is not None and row["waiting_reason"] == "x" and row["delivery_attempt"] == 3
        assert len(await store.list_events(intent_id, 0)) == row["last_seq"]  # each event written once
        await store.close()

    run(main())


async def _opened(url: str) -> PostgresStore:
    (store,) = _replicas(url, 1)
    await store.open()
    return store


def test_a_batch_of_delivery_marks_alone_commits_without_waiting_for_the_disk(tmp_path: Path) -> None:
    """A feed's delivery marks (``Tx.lazy_commit``) commit without waiting for the disk when their batch holds
    nothing else; a batch with another operation waits for the disk, the marks with it."""
    url = new_database("postgres", tmp_path)

    async def main() -> None:
        store, now = await _opened(url), time.time()
        created = [await store.write(lambda tx, n=n: engine.op_create(tx, S, ADMIN, request(n), now)) for n in range(2)]
        conn = store._wconn
        assert conn is not None
        sent: list[bytes] = []
        execute = conn.execute

        def recording(sql, *args, **kwargs):  # type: ignore[no-untyped-def]
            sent.append(bytes(sql))
            return execute(sql, *args, **kwargs)

        conn.execute = recording  # type: ignore[method-assign]

        def lazy() -> int:
            return sum(b"synchronous_commit = off" in sql for sql in sent)

        def mark(n: int) -> Any:
            return functools.partial(engine.op_mark_delivered_many, s=S, deliveries=[(created[n]["intent_id"], 1)],
                                     actor=AGENT, now=now)

        await store.write(mark(0))
        assert lazy() == 1
        loop = asyncio.get_running_loop()
        together = [(mark(1), loop.create_future()),
                    (lambda tx: engine.op_create(tx, S, ADMIN, request(2), now), loop.create_future())]
        outcomes, _ = await asyncio.to_thread(store._run_batch, together)  # one batch, as the writer runs it
        assert [ok for _, ok, _ in outcomes] == [True, True] and lazy() == 1
        for n in (0, 1):
            row = await store.get_intent(created[n]["intent_id"])
            assert row is not None and row["delivered_attempt"] == 1
        await store.close()

    run(main())


def test_a_write_nobody_waits_on_waits_for_the_next_one_and_commits_with_it(tmp_path: Path, monkeypatch: Any) -> None:
    """A delivery's mark (``write_behind``) alone in the queue waits for company (``BEHIND_HOLD``, made long
    here): the next write someone waits on goes in the same transaction, the mark first; ``hurry`` (a read of the
    marked intent) ends the wait."""
    monkeypatch.setattr(postgres, "BEHIND_HOLD", 60.0)
    url = new_database("postgres", tmp_path)

    async def main() -> None:
        store, now = await _opened(url), time.time()
        created = [await store.write(lambda tx, n=n: engine.op_create(tx, S, ADMIN, request(n), now)) for n in range(2)]

        def mark(n: int) -> Any:
            return functools.partial(engine.op_mark_delivered_many, s=S, deliveries=[(created[n]["intent_id"], 1)],
                                     actor=AGENT, now=now)

        def complete(tx):  # type: ignore[no-untyped-def]  # sees the mark queued before it
            row = tx.get_intent(created[0]["intent_id"])
            assert row["status"] == "DELIVERED"
            return engine.op_resolve(tx, S, ADMIN, created[0]["intent_id"], {"status": "COMPLETED"}, now)

        commits = store.commits
        marked = asyncio.ensure_future(store.write_behind(mark(0)))
        await asyncio.sleep(0.05)
        assert not marked.done()  # held
        await store.write(complete)
        await marked
        assert store.commits - commits == 1
        events = [json.loads(e)["event_type"] for e in await store.list_events(created[0]["intent_id"], 0, 10)]
        assert events[-2:] == ["intent.delivered", "intent.completed"]
        marked = asyncio.ensure_future(store.write_behind(mark(1)))
        await asyncio.sleep(0.05)
        assert not marked.done()
        store.hurry()
        await asyncio.wait_for(marked, 30)
        row = await store.get_intent(created[1]["intent_id"])
        assert row is not None and row["status"] == "DELIVERED"
        await store.close()

    run(main())


def test_operations_whose_probe_reads_no_intent_are_not_probed_again(tmp_path: Path) -> None:
    """The probe runs an operation up to its first read to fetch the intent it starts from. One that starts
    elsewhere (a create) is not probed again; one of the same code that reads an intent from the database itself
    makes its like probed again."""
    url = new_database("postgres", tmp_path)

    async def main() -> None:
        store, now = await _opened(url), time.time()
        runs: list[int] = []

        def op(tx: Any, n: int, read: str | None = None) -> Any:
            runs.append(n)
            if read is not None:
                row = tx.get_intent(read)
                return engine.op_mark_delivered(tx, S, read, row["delivery_attempt"], AGENT, now)
            return engine.op_create(tx, S, ADMIN, request(n), now)

        first = await store.write(functools.partial(op, n=1))
        assert runs == [1, 1]  # probed, then run
        await store.write(functools.partial(op, n=2))
        assert runs == [1, 1, 2]  # run only
        await store.write(functools.partial(op, n=3, read=first["intent_id"]))  # reads the intent itself
        await store.write(functools.partial(op, n=4, read=first["intent_id"]))
        assert runs == [1, 1, 2, 3, 4, 4]  # probed again
        row = await store.get_intent(first["intent_id"])
        assert row is not None and row["delivered_attempt"] == row["delivery_attempt"]
        await store.close()

    run(main())


def test_a_changed_row_goes_out_as_its_key_and_what_changed(tmp_path: Path) -> None:
    """An intent the batch changed is sent as its key and the columns that changed, not whole (its document and
    payload stay behind, and stay as they were); a row it inserted goes whole."""
    url = new_database("postgres", tmp_path)

    async def main() -> None:
        store, now = await _opened(url), time.time()
        created = await store.write(lambda tx: engine.op_create(tx, S, ADMIN, request(0), now))
        intent_id = created["intent_id"]
        before = await store.get_intent(intent_id)
        conn = store._wconn
        assert conn is not None and before is not None
        sent: list[Any] = []
        execute = conn.execute

        def recording(sql, params=None, *args, **kwargs):  # type: ignore[no-untyped-def]
            sent.extend(p for p in params or () if isinstance(p, str) and intent_id in p)
            return execute(sql, params, *args, **kwargs)

        conn.execute = recording  # type: ignore[method-assign]
        await store.write(lambda tx: (tx.get_intent(intent_id), tx.update_intent(intent_id, {"waiting_reason": "x"})))
        assert [json.loads(p) for p in sent if '"waiting_reason"' in p] == [
            [{"intent_id": intent_id, "waiting_reason": "x"}]]
        after = await store.get_intent(intent_id)
        assert after == {**before, "waiting_reason": "x"}
        await store.close()

    run(main())


def test_intents_and_workflows_have_no_check_constraint_a_placeholder_row_would_fail(tmp_path: Path) -> None:
    """A changed row goes out as its key and what changed, onto a row of placeholders (``postgres._bases``) that
    ``INSERT ... ON CONFLICT`` checks before it finds the conflict: NOT NULL is met by the placeholders, a CHECK
    constraint might not be. A migration that adds one to these tables must give the base a value that passes it."""
    url = new_database("postgres", tmp_path, migrated=True)
    with psycopg.connect(url) as conn:
        checks = conn.execute("SELECT conrelid::regclass::text, conname FROM pg_constraint WHERE contype = 'c' "
                              "AND conrelid IN ('intents'::regclass, 'workflows'::regclass)").fetchall()
    assert checks == []


def test_a_scan_the_writer_must_make_is_not_compiled(tmp_path: Path) -> None:
    """The writer plans without sequential scans, so a scan that must stay (a sum over a table with no index for it,
    as the storage counts at start) is costed past jit_above_cost: with JIT on it was compiled on each run (80-170
    ms; `axme server` took 355-477 ms to start instead of ~95). The writer runs without JIT."""
    url = new_database("postgres", tmp_path)
    sql = ("EXPLAIN (ANALYZE, FORMAT JSON) SELECT coalesce(sum(octet_length(payload)), 0) AS n FROM intents "
           "WHERE org_id IS NULL AND workspace_id IS NULL")

    async def main() -> Any:
        (store,) = _replicas(url, 1)
        await store.open()
        try:
            return await store.write(lambda tx: tx._one(sql, ()))
        finally:
            await store.close()

    row = run(main())
    plan = row["QUERY PLAN"]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    assert plan[0]["Plan"]["Total Cost"] > 100_000  # the scan, costed as "off" (PostgreSQL's jit_above_cost)
    assert "JIT" not in plan[0], plan[0]["JIT"]


def test_a_batch_takes_the_rows_its_writer_committed_and_runs_again_if_they_changed(tmp_path: Path) -> None:
    """The intents a replica's writer committed are kept for its next batches, which send no read for them, only
    the check that locks them; a row changed since by another writer (here a statement on a connection of its own,
    which sends no notification) fails the check and the batch runs again on the table's row: nothing decided from
    the kept row is committed. An operation that only reads a kept row is checked as well."""
    url = new_database("postgres", tmp_path)

    async def main() -> None:
        store, now = await _opened(url), time.time()
        await store.write(lambda tx: engine.op_create(tx, S, ADMIN, request(0), now))  # its agent is kept now
        intent_id = (await store.write(lambda tx: engine.op_create(tx, S, ADMIN, request(1), now)))["intent_id"]
        seen: list[Any] = []

        def change(tx: Any, reason: str) -> int:
            row = tx.get_intent(intent_id)
            seen.append(row["waiting_reason"])
            tx.update_intent(intent_id, {"waiting_reason": reason, "delivery_attempt": row["delivery_attempt"] + 1})
            return int(row["delivery_attempt"])

        def outside(sql: str) -> None:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(sql.encode(), (intent_id,))

        before = store.statements
        assert await store.write(lambda tx: change(tx, "a")) == 1
        assert store.statements - before == 1  # the end, with the check: no read of the intent
        assert store._cache.stale == 0
        outside("UPDATE intents SET waiting_reason = 'outside', delivery_attempt = delivery_attempt + 10 "
                "WHERE intent_id = %s")
        assert await store.write(lambda tx: change(tx, "b")) == 12
        assert seen[-2:] == ["a", "outside"] and store._cache.stale == 1  # the kept row, then the table's
        row = await store.get_intent(intent_id)
        assert row is not None and row["waiting_reason"] == "b" and row["delivery_attempt"] == 13
        assert len(await store.list_events(intent_id, 0)) == row["last_seq"]
        outside("UPDATE intents SET waiting_reason = 'read' WHERE intent_id = %s")
        assert await store.write(lambda tx: tx.get_intent(intent_id)["waiting_reason"]) == "read"
        assert store._cache.stale == 2
        await store.close()

    run(main())


def test_a_replica_drops_the_rows_another_replica_changed(tmp_path: Path) -> None:
    """Another replica's notification names the intents it changed: this replica's writer no longer takes them from
    what it kept (their workflows neither), and reads them instead of failing a check and running its batch again."""
    url = new_database("postgres", tmp_path)

    async def main() -> None:
        a, b = _replicas(url, 2)
        await asyncio.gather(a.open(), b.open())
        now = time.time()
        await a.write(lambda tx: engine.op_create(tx, S, ADMIN, request(0), now))
        intent_id = (await a.write(lambda tx: engine.op_create(tx, S, ADMIN, request(1), now)))["intent_id"]
        assert a._cache.get("intents", intent_id) is not None
        heard = asyncio.Event()
        hub = a.on_commit
        a.on_commit = lambda notes: (hub(notes) if hub else None, heard.set())  # type: ignore[func-returns-value]
        await b.write(lambda tx: engine.op_mark_delivered(tx, S, intent_id, 1, AGENT, now))
        await asyncio.wait_for(heard.wait(), 10)
        assert a._cache.get("intents", intent_id) is None
        await a.write(lambda tx: engine.op_mark_delivered(tx, S, intent_id, 1, AGENT, now))
        assert a._cache.stale == 0
        await asyncio.gather(a.close(), b.close())

    run(main())


def test_a_row_read_without_a_lock_and_changed_before_the_end_runs_the_batch_again(tmp_path: Path) -> None:
    """A batch's first read takes no lock; a change another writer commits between that read and the batch's end
    fails the end's check, nothing of the batch is committed, and it runs again with a locking read."""
    url = new_database("postgres", tmp_path)

    async def main() -> None:
        store, now = await _opened(url), time.time()
        await store.write(lambda tx: engine.op_create(tx, S, ADMIN, request(0), now))
        intent_id = (await store.write(lambda tx: engine.op_create(tx, S, ADMIN, request(1), now)))["intent_id"]
        store._cache.clear()  # read from the table, not kept
        runs: list[Any] = []

        def change(tx: Any) -> None:
            row = tx.get_intent(intent_id)
            runs.append(row["delivery_attempt"])
            if len(runs) == 1:  # meanwhile another writer commits a change of the row (no lock holds it back)
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("UPDATE intents SET delivery_attempt = 10 WHERE intent_id = %s", (intent_id,))
            tx.update_intent(intent_id, {"delivery_attempt": row["delivery_attempt"] + 1})

        await store.write(change)
        assert runs == [1, 10] and store._cache.stale == 1
        row = await store.get_intent(intent_id)
        assert row is not None and row["delivery_attempt"] == 11
        await store.close()

    run(main())


def test_kept_rows_stay_within_their_size_and_go_with_their_intent(monkeypatch: Any) -> None:
    """``_Rows`` keeps at most SIZE rows a table, the oldest written going first, and an intent dropped takes its
    workflow with it (another replica changed both)."""
    monkeypatch.setattr(postgres._Rows, "SIZE", 2)
    rows = postgres._Rows()
    for n in range(3):
        rows.put("workflows", f"w{n}", {"workflow_id": f"w{n}", "parent_intent_id": f"i{n}"}, "7")
        rows.put("intents", f"i{n}", {"intent_id": f"i{n}"}, "7")
    assert rows.get("workflows", "w0") is None and rows.get("intents", "i0") is None
    assert rows.get("workflows", "w2") == ({"workflow_id": "w2", "parent_intent_id": "i2"}, "7")
    assert rows._workflow_of == {"i1": "w1", "i2": "w2"}
    rows.drop({"i1"})
    assert rows.get("intents", "i1") is None and rows.get("workflows", "w1") is None
    assert rows.get("intents", "i2") is not None and rows._workflow_of == {"i2": "w2"}
    rows.put("workflows", "w2", {"workflow_id": "w2", "parent_intent_id": "i2"}, None)  # its version unknown
    assert rows.get("workflows", "w2") is None and rows._workflow_of == {}

"""PostgreSQL with several replicas on one database, at the store level: what two writers may not break."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import psycopg

from axme_cli.runtime.engine import intents as engine
from axme_cli.runtime.errors import StoreUnavailable
from axme_cli.runtime.store import open_store
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

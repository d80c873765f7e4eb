"""Attacks on storage: a write flood that grows the SQLite WAL without end, a disk filled up (the WAL then kept every
byte freed and writes stayed refused, even after a restart), database files readable by other local users, and a
PostgreSQL outage that held every request for the pool's 5 s timeout.

Figures (WAL peak, recovery after the disk is freed, 503 latency with PostgreSQL cut) are printed and appended to
reliability-figures.json in pytest's base temp folder."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from axme_cli.runtime.store.sqlite import WAL_CAP
from tests.conftest import make_agent, new_intent
from tests.reliability.saga_load import record
from tests.reliability.test_storage_faults import Traffic, assert_503_or_ok, assert_all_kept, fill, small_filesystem
from tests.runtime_proc import PG_ADMIN_URL, TLS, RuntimeProcess, new_database
from tests.runtime_thread import RuntimeThread

# The WAL tests' runtimes run with a quarter of the store's limits (16 and 64 MB): the same mechanics reached with a
# quarter of the writes.
SMALL_SOFT, SMALL_CAP = 4 * 2**20, 16 * 2**20


def small_wal_runtime(tmp_path: Path) -> RuntimeThread:
    return RuntimeThread(tmp_path, extra_args=["--redelivery-seconds", "600", "--rate-limit", "0"],
                         serve={"sqlite_wal_limits": (SMALL_SOFT, SMALL_CAP)}).start()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------------------------------------------------------
# SQLite: the WAL under a write flood


class WalSampler(threading.Thread):
    """The size of ``<db>-wal`` every 20 ms: its peak, and how often the WAL started over. The WAL header's
    checkpoint sequence number (bytes 12-16, big-endian; sqlite.org/fileformat2.html#walformat) changes each time
    the WAL is reset after a complete checkpoint, which the file's size does not show when it is reused in place."""

    def __init__(self, db: Path) -> None:
        super().__init__(daemon=True)
        self.wal = Path(f"{db}-wal")
        self.peak = self.resets = 0
        self.stop_event = threading.Event()

    def size(self) -> int:
        try:
            return self.wal.stat().st_size
        except FileNotFoundError:
            return 0

    def sequence(self) -> int | None:
        try:
            with open(self.wal, "rb") as fh:
                header = fh.read(16)
        except FileNotFoundError:
            return None
        return int.from_bytes(header[12:16], "big") if len(header) == 16 else None

    def run(self) -> None:
        last = self.sequence()
        while not self.stop_event.wait(0.02):
            self.peak = max(self.peak, self.size())
            sequence = self.sequence()
            if sequence is not None:
                if last is not None and sequence != last:
                    self.resets += 1
                last = sequence


@pytest.mark.slow
def test_wal_stays_bounded_under_a_write_flood(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    rt = small_wal_runtime(tmp_path)
    sampler = WalSampler(rt.db)
    statuses: Counter[int] = Counter()

    filler = "x" * 4000  # the WAL fills sooner with bigger rows: fewer requests make the same point

    async def flood(until: float) -> None:
        async with httpx.AsyncClient(verify=TLS, base_url=rt.url, headers={"x-api-key": rt.api_key or ""},
                                     timeout=30) as c:
            while time.monotonic() < until and sampler.resets < 3:  # until the WAL started over three times
                body = new_intent("flood-sink", payload={"filler": filler})
                statuses[(await c.post("/v1/intents", json=body)).status_code] += 1

    async def clients(n: int, seconds: float) -> None:
        until = time.monotonic() + seconds
        await asyncio.gather(*(flood(until) for _ in range(n)))

    try:
        with rt.client() as admin:
            make_agent(admin, "flood-sink")
        sampler.start()
        started = time.monotonic()
        asyncio.run(clients(8, 60.0))
        took = time.monotonic() - started
        deadline = time.monotonic() + 30
        while sampler.size() > 2**20:  # given back once the flood ends
            assert time.monotonic() < deadline, f"the WAL stayed at {sampler.size()} bytes after the load"
            time.sleep(0.1)
        after = sampler.size()
    finally:
        sampler.stop_event.set()
        rt.stop()
    assert set(statuses) == {200}, statuses
    assert sampler.resets >= 2, f"the WAL started over {sampler.resets} times under load (peak {sampler.peak})"
    assert sampler.peak <= SMALL_CAP, sampler.peak
    record(tmp_path_factory.getbasetemp(), {
        "attack": "sqlite write flood, 8 clients", "creates": statuses[200], "seconds": round(took, 1),
        "creates_per_s": round(statuses[200] / took), "wal_peak_mb": round(sampler.peak / 2**20, 1),
        "wal_restarts": sampler.resets, "wal_after_mb": round(after / 2**20, 2),
        "db_mb": round(rt.db.stat().st_size / 2**20, 1)})


@pytest.mark.slow(seconds=8)
def test_wal_cap_holds_writes_while_another_process_keeps_a_snapshot(tmp_path: Path,
                                                                     tmp_path_factory: pytest.TempPathFactory) -> None:
    """A read transaction held open by another process (a backup, a forgotten `sqlite3` shell) keeps every
    checkpoint from finishing: the WAL grows to its cap, then writes get 503 instead of growing it further; once
    the reader lets go, writes resume and the WAL is given back."""
    rt = small_wal_runtime(tmp_path)
    code = ("import sqlite3, sys\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('BEGIN')\n"
            "c.execute('SELECT count(*) FROM intents').fetchone()\n"
            "print('reading', flush=True)\n"
            "sys.stdin.readline()\n"
            "c.execute('COMMIT')\n")
    reader = subprocess.Popen([sys.executable, "-c", code, str(rt.db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    sampler = WalSampler(rt.db)
    flows: list[Traffic] = []
    try:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "reading"
        with rt.client() as admin:
            make_agent(admin, "cap-sink")
        sampler.start()
        # big rows (100 kB, within the 128 kB body limit): the WAL reaches the cap after a hundred-odd writes
        flows = [Traffic(rt, "cap-sink", payload_bytes=100_000, pause=0) for _ in range(4)]
        for t in flows:
            t.start()
        deadline = time.monotonic() + 120
        while sum(1 for t in flows for k, s, _ in t.since(0) if k == "create" and s == 503) < 20:
            assert all(t.is_alive() for t in flows) and time.monotonic() < deadline, sampler.peak
            time.sleep(0.1)
        # writes stay held: 20 more writes refused, and the WAL has not grown past the cap meanwhile
        refused = sum(1 for t in flows for k, s, _ in t.since(0) if k == "create" and s == 503)
        while sum(1 for t in flows for k, s, _ in t.since(0) if k == "create" and s == 503) < refused + 20:
            assert all(t.is_alive() for t in flows) and time.monotonic() < deadline, sampler.peak
            time.sleep(0.05)
        held_peak = sampler.peak
        assert reader.stdin is not None
        reader.stdin.write("\n")
        reader.stdin.flush()
        assert reader.wait(30) == 0
        marks = [t.mark() for t in flows]
        let_go = time.monotonic()
        while sum(1 for t, m in zip(flows, marks, strict=True) for k, s, _ in t.since(m)
                  if k == "create" and s == 200) < 20:
            assert all(t.is_alive() for t in flows) and time.monotonic() < let_go + 30, "writes did not resume"
            time.sleep(0.05)
        resumed = time.monotonic() - let_go
        for t in flows:
            t.stop()
        deadline = time.monotonic() + 30
        while sampler.size() > 2**20:
            assert time.monotonic() < deadline, f"the WAL stayed at {sampler.size()} bytes"
            time.sleep(0.1)
        assert_503_or_ok([a for t in flows for a in t.since(0)])
        kept = assert_all_kept(rt, [i for t in flows for i in t.accepted])
    finally:
        reader.kill()
        sampler.stop_event.set()
        for t in flows:
            t.stop_event.set()
        rt.stop()
    # the cap, and what 50 ms of writes (between two looks at the WAL's size) may add to it
    assert SMALL_CAP < held_peak <= SMALL_CAP + 8 * 2**20, held_peak
    record(tmp_path_factory.getbasetemp(), {"attack": "sqlite WAL cap, a reader holding a snapshot", "accepted": kept,
                                            "wal_peak_mb": round(held_peak / 2**20, 1), "resumed_s": round(resumed, 2)})


# ---------------------------------------------------------------------------------------------------------------
# SQLite: the disk full, a crash and a restart while it is, then space freed


@pytest.mark.slow(seconds=6)
def test_disk_full_then_freed_writes_resume_without_restart(tmp_path: Path,
                                                           tmp_path_factory: pytest.TempPathFactory) -> None:
    # Larger than WAL_CAP: the traffic alone must not fill it before the test does (a WAL may grow to the cap
    # while checkpoints are starved on a busy machine; then there would be no filler to free).
    with small_filesystem(tmp_path / "fs", size="128m") as fs:
        rt = RuntimeProcess(tmp_path, db=fs / "dev.db", extra_args=["--redelivery-seconds", "600",
                                                                     "--rate-limit", "0"]).start()
        flows: list[Traffic] = []
        taken: list[str] = []  # accepted outside the traffic

        def traffic(n: int) -> list[Traffic]:
            started = [Traffic(rt, "full-sink", payload_bytes=2000, pause=0) for _ in range(n)]
            for t in started:
                t.start()
            flows.extend(started)
            return started

        def stop(group: list[Traffic]) -> None:
            for t in group:
                t.stop()

        def creates(group: list[Traffic], marks: list[int] | None = None) -> Counter[int]:
            """The statuses of the creates of ``group`` (since ``marks``)."""
            return Counter(s for t, m in zip(group, marks or [0] * len(group), strict=True)
                           for k, s, _ in t.since(m) if k == "create")

        try:
            with rt.client() as admin:
                make_agent(admin, "full-sink")
            first = traffic(4)
            first[0].wait_for(20)
            full = [t.mark() for t in first]
            filler = fill(fs)
            deadline = time.monotonic() + 60
            while creates(first)[503] < 5:
                assert time.monotonic() < deadline, creates(first)
                time.sleep(0.05)
            stop(first)
            # reads kept working while writes were refused
            reads_while_full = Counter(s for t, m in zip(first, full, strict=True) for k, s, _ in t.since(m)
                                       if k == "read")
            # A crash while the disk is full, and a start on the full disk: it serves reads, refuses writes.
            rt.kill()
            rt.start()
            with rt.client() as admin:
                assert admin.get(f"/v1/intents/{first[0].accepted[-1]}").status_code == 200
                # Refused, or taken where the WAL's file has room to be written over again (the start's
                # checkpoint copied what the crash left into the database): then it must be kept like the others.
                tried = admin.post("/v1/intents", json=new_intent("full-sink"))
                if tried.status_code == 200:
                    taken.append(tried.json()["intent_id"])
                else:
                    assert tried.status_code == 503, tried.text
                    assert tried.json()["error"]["code"] == "storage_unavailable"
            pid = rt.proc.pid if rt.proc else 0
            second = traffic(4)
            deadline = time.monotonic() + 60
            while creates(second)[503] < 8:  # the new writers meet the full disk too
                assert all(t.is_alive() for t in second) and time.monotonic() < deadline, creates(second)
                time.sleep(0.02)
            marks = [t.mark() for t in second]
            filler.unlink()
            freed = time.monotonic()
            while creates(second, marks)[200] < 20:
                assert all(t.is_alive() for t in second)
                assert time.monotonic() < freed + 30, f"writes did not resume: {creates(second, marks)}"
                time.sleep(0.02)
            recovered = time.monotonic() - freed
            # and they stay up: the next 400 writes (some 3 MB of WAL) all succeed; the WAL does not eat the freed
            # space again
            tail = [t.mark() for t in second]
            deadline = time.monotonic() + 60
            while sum(creates(second, tail).values()) < 400:
                assert all(t.is_alive() for t in second) and time.monotonic() < deadline, creates(second, tail)
                time.sleep(0.02)
            stop(second)
            last = creates(second, tail)
            assert_503_or_ok([a for t in flows for a in t.since(0)])
            assert rt.proc is not None and rt.proc.pid == pid and rt.proc.poll() is None  # no restart after the free
            wal = Path(f"{rt.db}-wal")
            wal_mb = wal.stat().st_size / 2**20 if wal.exists() else 0.0
            accepted = [i for t in flows for i in t.accepted] + taken
            rt.kill()  # and a crash after the fault keeps all of it (checked once, after it: what a restart
            rt.start()  # finds was there before it too)
            kept = assert_all_kept(rt, accepted)
        finally:
            for t in flows:
                t.stop_event.set()
            rt.stop()
    assert last[200] >= 400 and set(last) == {200}, last
    assert reads_while_full[200] >= 1 and set(reads_while_full) == {200}, reads_while_full
    assert wal_mb * 2**20 <= WAL_CAP, wal_mb
    record(tmp_path_factory.getbasetemp(), {"attack": "sqlite disk full, crash, restart, freed", "backend": "sqlite",
                                            "recovered_s": round(recovered, 2), "accepted": kept, "lost": 0,
                                            "wal_mb": round(wal_mb, 1)})


# ---------------------------------------------------------------------------------------------------------------
# Files readable by other local users


def private_files(rt: RuntimeProcess) -> dict[str, int]:
    mails = rt.mail_dir
    files = [rt.db, Path(f"{rt.db}-wal"), Path(f"{rt.db}-shm"), Path(f"{rt.db}.lock"), Path(f"{rt.db}.key"),
             *mails.glob("*.eml")]
    return {str(p): mode(p) for p in [rt.db.parent, mails, *files]}


def test_database_key_and_mail_files_are_private(tmp_path: Path) -> None:
    # The admin key is generated (kept in <db>.key); the umask lets everything through, so the modes are ours.
    rt = RuntimeProcess(tmp_path, db=tmp_path / "data" / "dev.db", api_key=None)
    previous = os.umask(0)
    try:
        rt.start()
    finally:
        os.umask(previous)
    try:
        key = Path(f"{rt.db}.key").read_text().strip()
        with rt.client(api_key=key) as admin:
            make_agent(admin, "private-sink")
            assert admin.post("/v1/auth/login-intent", json={"email": "ann@example.com"}).status_code == 200
        deadline = time.monotonic() + 30
        while not list(rt.mail_dir.glob("*.eml")):
            assert time.monotonic() < deadline, "no login mail was written"
            time.sleep(0.05)
        fresh = private_files(rt)
        # An older version left them readable by everyone: the next start fixes each and says so.
        rt.kill()  # so the -wal and -shm stay
        loose = private_files(rt)
        assert len(loose) == 8, sorted(loose)  # folder, mail folder, db, -wal, -shm, .lock, .key, one mail
        for name in loose:
            os.chmod(name, 0o755 if os.path.isdir(name) else 0o644)
        rt.start()
        fixed = private_files(rt)
    finally:
        rt.stop()
    expected = {name: 0o700 if os.path.isdir(name) else 0o600 for name in fresh}
    assert fresh == expected, fresh
    # the folder the database was put in (given with --db) is made private when the runtime creates it, and left
    # as it is when it exists (it may be the user's project folder); the data folder is made private by `paths`
    del expected[str(rt.db.parent)]
    assert {k: v for k, v in fixed.items() if k in expected} == expected, fixed
    warned = [line for line in rt.log.read_text().splitlines() if "was mode 0644" in line or "was mode 0755" in line]
    for name in expected:
        assert sum(1 for line in warned if line.startswith(f"{name} was mode")) == 1, (name, warned)


def test_the_data_folder_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    caplog: pytest.LogCaptureFixture) -> None:
    from axme_cli.config import paths

    monkeypatch.setenv("AXME_DATA_DIR", str(tmp_path / "new" / "axme"))
    assert mode(paths.data_dir()) == 0o700 and mode(paths.default_database().parent) == 0o700
    old = tmp_path / "old"
    old.mkdir(mode=0o755)
    os.chmod(old, 0o755)
    monkeypatch.setenv("AXME_DATA_DIR", str(old))
    with caplog.at_level(logging.WARNING, logger="axme.files"):
        assert paths.data_dir() == old and mode(old) == 0o700
        paths.data_dir()  # said once: the second look finds it private
    assert [r.getMessage() for r in caplog.records] == [f"{old} was mode 0755 (others could read it); it is 0700 now"]


# ---------------------------------------------------------------------------------------------------------------
# PostgreSQL: unreachable, then back


class CuttableProxy:
    """A TCP proxy in this process between the runtime and PostgreSQL. ``cut()`` resets every connection and
    refuses new ones (the server looks gone); ``restore()`` listens again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.lock = threading.Lock()
        self.sockets: set[socket.socket] = set()
        self.listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        assert self.listener is not None
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        self.listener.close()
        self.listener = None
        with self.lock:
            cut, self.sockets = self.sockets, set()
        for s in cut:
            with contextlib.suppress(OSError):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, not FIN
                s.shutdown(socket.SHUT_RDWR)
            s.close()


def timed(client: httpx.Client, method: str, url: str, **kw: Any) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    r = client.request(method, url, **kw)
    return time.monotonic() - started, r


@pytest.mark.slow(seconds=6)
def test_postgres_outage_answers_503_fast_and_writes_resume(tmp_path: Path,
                                                             tmp_path_factory: pytest.TempPathFactory) -> None:
    server = urlsplit(PG_ADMIN_URL)
    proxy = CuttableProxy((server.hostname or "127.0.0.1", server.port or 5432))
    direct = new_database("postgres", tmp_path)
    through = urlsplit(direct)._replace(netloc=f"{server.username or 'postgres'}@127.0.0.1:{proxy.port}").geturl()
    rt = RuntimeProcess(tmp_path, backend="postgres", database_url=through,
                        extra_args=["--redelivery-seconds", "600"]).start()
    latencies: list[float] = []
    try:
        with rt.client() as admin:
            make_agent(admin, "outage-sink")
            before = [admin.post("/v1/intents", json=new_intent("outage-sink")).json()["intent_id"] for _ in range(5)]
            proxy.cut()
            answers = []
            for n in range(6):
                took, r = timed(admin, "POST", "/v1/intents", json=new_intent("outage-sink"))
                answers.append(("create", r.status_code, r.json() | {"_retry_after": r.headers.get("retry-after")}))
                latencies.append(took)
                took, r = timed(admin, "GET", f"/v1/intents/{before[n % 5]}")
                answers.append(("read", r.status_code, r.json() | {"_retry_after": r.headers.get("retry-after")}))
                latencies.append(took)
            proxy.restore()
            restored = time.monotonic()
            while True:
                r = admin.post("/v1/intents", json=new_intent("outage-sink"))
                if r.status_code == 200:
                    break
                assert r.status_code == 503, r.text
                assert time.monotonic() < restored + 30, "writes did not resume after PostgreSQL came back"
                time.sleep(0.05)
            resumed = time.monotonic() - restored
            assert_all_kept(rt, [*before, r.json()["intent_id"]])
    finally:
        rt.stop()
    assert Counter(s for _, s, _ in answers) == {503: 12}, Counter(s for _, s, _ in answers)
    assert_503_or_ok(answers)
    assert max(latencies) < 3.0, latencies
    record(tmp_path_factory.getbasetemp(), {
        "attack": "postgres unreachable (connections reset, new ones refused)", "backend": "postgres",
        "first_503_s": round(latencies[0], 3), "median_503_s": round(statistics.median(latencies), 3),
        "max_503_s": round(max(latencies), 3), "resumed_s": round(resumed, 2)})

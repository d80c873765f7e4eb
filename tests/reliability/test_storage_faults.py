"""The database under stress while requests come in: the SQLite file locked by another process, PostgreSQL
connections cut by the server (the disk full: tests/security/test_storage.py). The API answers each request with success
or 503 ``storage_unavailable`` with ``retryable: true`` in the AXP error shape: never a 500, never a hang (every
request has a 20 s client timeout), nothing answered 200 is lost, and service comes back by itself (same process,
no restart)."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agents_helper import FeedAgent
from tests.conftest import make_agent, new_intent
from tests.reliability.saga_load import TERMINAL, dense_log, listed_intents, record
from tests.runtime_proc import RuntimeProcess
from tests.runtime_thread import RuntimeThread

pytestmark = pytest.mark.reliability


class Traffic(threading.Thread):
    """Creates intents (and reads the last one back) until stopped; keeps every answer."""

    def __init__(self, rt: RuntimeProcess, to_agent: str, payload_bytes: int = 0, pause: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.rt, self.to_agent, self.pause = rt, to_agent, pause
        self.filler = "x" * payload_bytes
        self.answers: list[tuple[str, int, Any]] = []  # (create | read, status, body)
        self.accepted: list[str] = []
        self.lock = threading.Lock()
        self.stop_event = threading.Event()

    def run(self) -> None:
        with self.rt.client() as client:
            client.timeout = httpx.Timeout(20.0)  # "never a hang": an answer within the busy timeout and more
            while not self.stop_event.is_set():
                body = new_intent(self.to_agent, payload={"n": str(uuid.uuid4()), "filler": self.filler})
                self._keep("create", client.post("/v1/intents", json=body))
                if self.accepted:
                    self._keep("read", client.get(f"/v1/intents/{self.accepted[-1]}"))
                self.stop_event.wait(self.pause)

    def _keep(self, kind: str, r: httpx.Response) -> None:
        body = r.json()
        if r.status_code == 503:
            body["_retry_after"] = r.headers.get("retry-after")
        with self.lock:
            self.answers.append((kind, r.status_code, body))
            if kind == "create" and r.status_code == 200:
                self.accepted.append(body["intent_id"])

    def mark(self) -> int:
        with self.lock:
            return len(self.answers)

    def since(self, mark: int) -> list[tuple[str, int, Any]]:
        with self.lock:
            return self.answers[mark:]

    def wait_for(self, creates_ok: int, after: int = 0, timeout: float = 60) -> None:
        """Until ``creates_ok`` creates answered 200 after answer number ``after``."""
        deadline = time.monotonic() + timeout
        while sum(1 for k, s, _ in self.since(after) if k == "create" and s == 200) < creates_ok:
            assert self.is_alive(), "the traffic thread died (a request failed or hung)"
            seen = Counter(s for _, s, _ in self.since(after))
            assert time.monotonic() < deadline, f"service did not come back: {seen}"
            time.sleep(0.05)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(30)
        assert not self.is_alive()


def assert_503_or_ok(answers: list[tuple[str, int, Any]]) -> Counter[int]:
    """Every answer is a success or the retryable 503 in the AXP error shape."""
    for kind, status, body in answers:
        assert status in (200, 503), (kind, status, body)
        if status == 503:
            assert body["error"]["code"] == "storage_unavailable", body
            assert body["error"]["details"]["retryable"] is True and isinstance(body["error"]["message"], str), body
            assert isinstance(body["detail"], str) and body["_retry_after"] == "1", body
    return Counter(status for _, status, _ in answers)


def assert_all_kept(rt: RuntimeProcess, accepted: list[str]) -> int:
    """Every intent answered 200 is there, its event log dense and in step with its row."""
    with rt.client() as admin:
        rows = listed_intents(admin)
        for intent_id in accepted:
            dense_log(admin, intent_id, rows.get(intent_id))
    return len(accepted)


# ---------------------------------------------------------------------------------------------------------------
# SQLite: the file locked by another process


def lock_from_another_process(db: Path, seconds: float) -> None:
    """``BEGIN EXCLUSIVE`` on ``db`` from another process for ``seconds``; returns when the lock is gone."""
    code = ("import sqlite3, sys, time\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n"
            "c.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "time.sleep(float(sys.argv[2]))\n"
            "c.execute('ROLLBACK')\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(db), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    assert proc.wait(seconds + 30) == 0


# The runtime's busy timeout, shortened (from 5 s) so that a lock held past it takes seconds, not six; the locks
# below are proportioned to it: well within it, then twice as long.
BUSY_TIMEOUT = 1.5


@pytest.mark.slow
def test_sqlite_file_locked_by_another_process(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    # In-process: the lock is another process's; "no crash, no restart" is the server thread still serving.
    rt = RuntimeThread(tmp_path, extra_args=["--redelivery-seconds", "600"],
                       serve={"sqlite_busy_timeout": BUSY_TIMEOUT}).start()
    traffic = Traffic(rt, "locked-sink")
    try:
        with rt.client() as admin:
            make_agent(admin, "locked-sink")
        traffic.start()
        traffic.wait_for(10)
        # A short lock is waited out inside the busy timeout: the writes are late, not refused.
        short = traffic.mark()
        lock_from_another_process(rt.db, BUSY_TIMEOUT / 5)
        traffic.wait_for(5, after=traffic.mark())
        short_answers = assert_503_or_ok(traffic.since(short))
        # A lock held past the busy timeout: the writes caught in it get the retryable 503, reads still work.
        long = traffic.mark()
        lock_from_another_process(rt.db, BUSY_TIMEOUT * 2)
        after = traffic.mark()
        traffic.wait_for(20, after=after)  # back by itself
        traffic.stop()
        long_answers = assert_503_or_ok(traffic.since(long))
        assert all(s == 200 for k, s, _ in traffic.since(after)[-10:]), traffic.since(after)[-10:]
        assert rt.serving()  # no crash, no restart
        kept = assert_all_kept(rt, traffic.accepted)
    finally:
        traffic.stop_event.set()
        rt.stop()
    assert short_answers[503] == 0, short_answers
    assert long_answers[503] >= 1 and long_answers[200] >= 20, long_answers
    reads = Counter(s for k, s, _ in traffic.since(long) if k == "read")
    assert reads[200] >= 1 and set(reads) == {200}, reads  # WAL readers are not blocked by the writer's lock
    record(tmp_path_factory.getbasetemp(), {
        "fault": f"sqlite locked {BUSY_TIMEOUT / 5:g} s + {BUSY_TIMEOUT * 2:g} s (busy timeout {BUSY_TIMEOUT:g} s)",
        "backend": "sqlite", "answered_503": long_answers[503], "accepted": kept, "lost": 0})


# ---------------------------------------------------------------------------------------------------------------
# SQLite: the disk full: tests/security/test_storage.py::test_disk_full_then_freed_writes_resume_without_restart
# (writes refused and reads answered while it is, a crash while it is and after, writes back once space is freed)


@contextlib.contextmanager
def small_filesystem(where: Path, size: str = "4m") -> Iterator[Path]:
    where.mkdir()
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True,
                         text=True)
    assert out.returncode == 0, f"this test mounts a small tmpfs and needs root: {out.stderr}"
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(folder: Path) -> Path:
    """Write zeros into ``folder`` until the filesystem says it is full."""
    filler = folder / "filler"
    chunk = b"\0" * 65536
    # Unbuffered: a buffered file would hold the chunk the disk refused and fail again, ENOSPC, when closed.
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


# ---------------------------------------------------------------------------------------------------------------
# PostgreSQL: connections cut by the server (the machine's server is shared: never restarted here)


@pytest.mark.slow(seconds=6)
def test_postgres_connections_cut(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    import psycopg

    rt = RuntimeProcess(tmp_path, extra_args=["--redelivery-seconds", "1"], backend="postgres").start()
    assert rt.database_url is not None
    pid = rt.proc.pid if rt.proc else 0
    completed: set[str] = set()

    def complete(frame: dict[str, Any]) -> dict[str, Any]:
        completed.add(frame["intent_id"])
        return {"action": "complete", "ok": True}

    traffic = Traffic(rt, "cut-sink")
    agent: FeedAgent | None = None
    try:
        with rt.client() as admin:
            _, token = make_agent(admin, "cut-sink")
        agent = FeedAgent(rt.url, token, "cut-sink", complete)
        agent.start()
        traffic.start()
        traffic.wait_for(10)
        storm = traffic.mark()
        name = rt.database_url.rsplit("/", 1)[1]
        cut = 0
        with psycopg.connect(os.environ.get("AXME_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
                             autocommit=True) as conn:
            end = time.monotonic() + 2.0
            while time.monotonic() < end:
                row = conn.execute("SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity "
                                   "WHERE datname = %s AND pid <> pg_backend_pid()", (name,)).fetchone()
                cut += int(row[0]) if row else 0
                time.sleep(0.05)
        after = traffic.mark()
        traffic.wait_for(20, after=after)  # back by itself
        traffic.stop()
        answers = assert_503_or_ok(traffic.since(storm))
        assert all(s == 200 for _, s, _ in traffic.since(after)[-10:]), traffic.since(after)[-10:]
        assert rt.proc is not None and rt.proc.pid == pid and rt.proc.poll() is None  # no restart
        kept = assert_all_kept(rt, traffic.accepted)
        # Deliveries came back too: every accepted intent reaches the agent and ends COMPLETED.
        with rt.client() as admin:
            deadline = time.monotonic() + 60
            pending = set(traffic.accepted)
            while pending:
                for intent_id in list(pending):
                    if admin.get(f"/v1/intents/{intent_id}").json()["intent"]["status"] in TERMINAL:
                        pending.discard(intent_id)
                assert time.monotonic() < deadline, f"{len(pending)} accepted intents never completed"
                time.sleep(0.2)
            statuses = Counter(admin.get(f"/v1/intents/{i}").json()["intent"]["status"] for i in traffic.accepted)
    finally:
        traffic.stop_event.set()
        if agent is not None:
            agent.stop()
        rt.stop()
    assert cut >= 10, cut  # pools, LISTEN connection and every reconnect, over and over
    assert answers[200] >= 20, answers
    assert statuses == Counter({"COMPLETED": len(traffic.accepted)}), statuses
    record(tmp_path_factory.getbasetemp(), {"fault": "postgres connections cut for 2 s", "backend": "postgres",
                                            "connections_cut": cut, "answered_503": answers[503], "accepted": kept,
                                            "lost": 0})

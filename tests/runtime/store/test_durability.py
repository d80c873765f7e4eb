"""A write is on disk before its answer leaves, on both backends.

kill -9 keeps the page cache, so no crash test can show this: the runtime's system calls are traced instead
(``strace -f``), and the order of three of them is checked for one created intent:

- SQLite: the WAL write that holds the new intent's row, then the fdatasync/fsync of that WAL file returning,
  then the write of the HTTP answer on the client's socket.
- PostgreSQL: the fsync is the server's, at commit (``synchronous_commit`` on, ``fsync`` on; the runtime changes
  neither but for a transaction of nothing else than counters or delivery marks, ``Tx.lazy_commit``): the INSERT
  carrying the intent, then the reply that ends its transaction arriving (a batch's end is a statement of its own,
  committed at its Sync, or goes with its COMMIT in pipeline mode), then the HTTP answer.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from tests.conftest import new_intent
from tests.runtime_proc import RuntimeProcess

SYSCALLS = "pwrite64,write,writev,sendto,sendmsg,recvfrom,fsync,fdatasync"
_LINE = re.compile(r"^(\d+)\s+(.*)$")


def strace() -> list[str]:
    path = shutil.which("strace")
    assert path, "strace is not installed (test.sh installs it: apt-get install strace)"
    return [path]


class Trace:
    """The lines of ``strace -f -yy`` output, as (pid, text), in the order strace saw them."""

    def __init__(self, path: Path) -> None:
        self.lines: list[tuple[str, str]] = []
        for raw in path.read_text(errors="replace").splitlines():
            m = _LINE.match(raw)
            if m:
                self.lines.append((m.group(1), m.group(2)))

    def first(self, pred: Callable[[str, str], bool], after: int = -1) -> int:
        """The index of the first line after ``after`` for which ``pred(pid, text)`` holds."""
        for i in range(after + 1, len(self.lines)):
            if pred(*self.lines[i]):
                return i
        raise AssertionError(f"no such system call after line {after}")

    def returned(self, start: int) -> int:
        """The line where the call begun at ``start`` returned: the same line, or its ``resumed`` line."""
        pid, text = self.lines[start]
        if "<unfinished ...>" not in text:
            return start
        name = text.split("(", 1)[0]
        return self.first(lambda p, t: p == pid and t.startswith(f"<... {name} resumed>"), start)


def _run(backend: str, tmp_path: Path) -> tuple[Trace, str, int, RuntimeProcess]:
    """Create one intent on a runtime traced by strace; the trace, the intent's correlation id and the line of
    its HTTP answer (the first write on a socket of the runtime's port that names the intent)."""
    out = tmp_path / "strace.txt"
    rt = RuntimeProcess(tmp_path, extra_args=["--redelivery-seconds", "600"], backend=backend,
                        wrapper=[*strace(), "-f", "-yy", "-s", "65536", "--seccomp-bpf", "-e", f"trace={SYSCALLS}",
                                 "-e", "signal=none", "-o", str(out)])
    rt.start(timeout=60)
    try:
        body = new_intent(f"disk-{uuid.uuid4().hex[:6]}")
        with rt.client() as client:
            r = client.post("/v1/intents", json=body)
            assert r.status_code == 200, r.text
        intent_id = r.json()["intent_id"]
    finally:
        assert rt.stop() == 0
    trace = Trace(out)
    served = f"TCP:[127.0.0.1:{rt.port}->"
    answered = trace.first(lambda pid, t: t.startswith(("write(", "writev(", "sendto(", "sendmsg("))
                           and served in t.split(",")[0] and intent_id in t)
    return trace, str(body["correlation_id"]), answered, rt


def test_a_write_is_on_disk_before_its_answer(backend: str, tmp_path: Path) -> None:
    trace, correlation, answered, rt = _run(backend, tmp_path)
    if backend == "sqlite":
        written = trace.first(lambda pid, t: t.startswith("pwrite64(") and "dev.db-wal>" in t.split(",")[0]
                              and correlation in t)
        synced = trace.first(lambda pid, t: t.startswith(("fdatasync(", "fsync(")) and "dev.db-wal>" in t, written)
        assert written < trace.returned(synced) < answered, (written, synced, answered)
        return
    import psycopg

    assert rt.database_url
    with psycopg.connect(rt.database_url) as conn:
        settings = {name: conn.execute(f"SHOW {name}".encode()).fetchone()[0]  # type: ignore[index]
                    for name in ("synchronous_commit", "fsync")}
    assert settings == {"synchronous_commit": "on", "fsync": "on"}, settings
    sent = [t for _, t in trace.lines if t.startswith("sendto(")]
    assert sent and not any("synchronous_commit" in t for t in sent), "the runtime changes synchronous_commit"
    insert = trace.first(lambda pid, t: t.startswith("sendto(") and "INSERT" in t and correlation in t)
    writer = trace.lines[insert][0]
    # The statement carrying the INSERT is a transaction of its own (PostgreSQL commits it, waiting for the disk, at
    # its Sync, and only then replies ReadyForQuery "idle": Z, length 5, I), or goes with a COMMIT in pipeline mode
    # (in the same send or a later one, never before it): either way that reply comes before the HTTP answer.
    reply = trace.first(lambda pid, t: pid == writer and "recvfrom" in t
                        and ("COMMIT\\0" in t or "Z\\0\\0\\0\\5I" in t), insert)
    assert insert < reply < answered, (insert, reply, answered)

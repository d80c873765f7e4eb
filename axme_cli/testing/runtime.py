"""Where scenario tests run: a throwaway runtime in this process (the real one `axme dev` serves, on a loopback
port, SQLite in a temporary folder; it starts in milliseconds), or a runtime that already runs (the context's)."""

from __future__ import annotations

import secrets
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


class Clock(Protocol):
    """A runtime's test clock: it stands still, and moves only when told to (what became due fires at once)."""

    def time(self) -> float: ...

    def advance(self, seconds: float) -> None: ...


class RemoteClock:
    """The test clock of a runtime in another process (`axme dev --test-clock`), moved over HTTP."""

    def __init__(self, client: Any, now: float) -> None:
        self.client = client
        self.now = now

    @classmethod
    def of(cls, client: Any) -> RemoteClock | None:
        """The runtime's test clock, or None when it runs on the real clock (the route answers 404)."""
        from axme_cli.errors import NotFoundError

        try:
            answer = client.advance_clock(0)
        except NotFoundError:
            return None
        return cls(client, _epoch(answer["now"]))

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now = _epoch(self.client.advance_clock(seconds)["now"])

    def close(self) -> None:
        self.client.close()


def _epoch(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@dataclass
class Target:
    base_url: str
    api_key: str
    org: str
    workspace: str
    clock: Clock | None = None  # None: the real clock
    folder: str | None = None  # a throwaway runtime's folder (its database), kept when a case fails
    keep: list[str] = field(default_factory=list)


class Throwaway:
    """The runtime `axme dev` runs, served by a thread of this process on 127.0.0.1 (a free port), its SQLite
    database in a temporary folder that ``stop`` deletes unless told to keep it, on a test clock (``ManualClock``:
    it stands still until the run moves it)."""

    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="axme-scenario-test-")
        self.api_key = "axme_test_" + secrets.token_urlsafe(24)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self, timeout: float = 30.0) -> Target:
        from axme_cli.runtime.clock import ManualClock
        from axme_cli.runtime.server import ReadyInfo, ServeOptions, build_server
        from axme_cli.runtime.settings import Settings

        # Every stand-in answers with the one admin key: no rate limit on it; loopback agents may be called.
        settings = Settings(rate_limit_per_second=0, login_calls_per_minute=0, loopback_callbacks=True)
        clock = ManualClock()
        opts = ServeOptions(host="127.0.0.1", port=0, database=str(Path(self.folder) / "test.db"),
                            settings=settings, api_key=self.api_key, clock=clock)
        ready = threading.Event()
        info: list[ReadyInfo] = []

        def on_ready(what: ReadyInfo) -> None:
            info.append(what)
            ready.set()

        try:
            server, sock = build_server(opts, on_ready, whole_process=False)
        except BaseException:
            self.stop()
            raise

        def run() -> None:
            try:
                server.run(sockets=[sock])
            finally:
                sock.close()
                ready.set()

        self._server = server
        self._thread = threading.Thread(target=run, name="axme scenario-test runtime", daemon=True)
        self._thread.start()
        try:
            ready.wait(timeout)
        except BaseException:  # interrupted while it starts: nothing of it stays
            self.stop()
            raise
        if not info:
            failure = server.failure[0] if server.failure else "it did not start in time"
            self.stop(keep=True)
            raise RuntimeError(f"the test runtime did not start: {failure} (see {self.folder})")
        self.url = info[0].url
        return Target(self.url, self.api_key, settings.org, settings.workspace, clock=clock, folder=self.folder)

    def stop(self, *, keep: bool = False) -> None:
        import shutil

        if self._thread is not None:
            self._server.should_exit = True
            self._thread.join(30)
            self._thread = None
        if not keep:
            shutil.rmtree(self.folder, ignore_errors=True)

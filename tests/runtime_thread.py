"""The real runtime in the test process: the same uvicorn server `axme dev` runs (``runtime.server.build_server``),
on a socket bound on loopback, served by a thread with its own event loop.

It starts in a few milliseconds instead of a process's ~0.65 s, and coverage sees it without subprocess tricks.
Use ``RuntimeProcess`` where the process is the thing tested: kill -9, signals, the ready file, the banner, the
environment a process reads (OpenTelemetry), or the console script.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from ipaddress import ip_network
from pathlib import Path
from typing import Any, TypeVar

from axme_cli.runtime.clock import SYSTEM, Clock, ManualClock
from axme_cli.runtime.server import ReadyInfo, ServeOptions, build_server
from axme_cli.runtime.settings import Settings
from tests.runtime_proc import RuntimeProcess, retire_later

# `axme dev` flags the in-process runtime takes, as (Settings field, type); the others are refused, so a test
# that needs one runs a RuntimeProcess. tests/test_runtime_thread.py checks each is still an option of `axme dev`.
SETTINGS_FLAGS: dict[str, tuple[str, type]] = {
    "--org": ("org", str),
    "--workspace": ("workspace", str),
    "--redelivery-seconds": ("redelivery_seconds", float),
    "--login-code-ttl": ("login_code_ttl_seconds", float),
    "--access-token-ttl": ("access_token_ttl_seconds", float),
    "--webhook-retry-base-seconds": ("webhook_retry_base_seconds", float),
    "--webhook-max-attempts": ("webhook_max_attempts", int),
    "--outbound-timeout-seconds": ("outbound_timeout_seconds", float),
    "--rate-limit": ("rate_limit_per_second", float),
    "--login-rate-limit": ("login_calls_per_minute", float),
}
SWITCHES = {"--metrics-public": "metrics_public"}
LISTS = {"--allow-email": "allowed_emails", "--allow-private-callbacks": "callback_networks",
         "--quota": "quota_defaults"}
SERVE_FLAGS = {"--mail-dir": "mail_dir", "--smtp-url": "smtp_url", "--public-url": "public_url"}


def dev_options(args: list[str]) -> tuple[Settings, dict[str, str]]:
    """What `axme dev` on loopback runs with, given these flags: its Settings and the ServeOptions fields the
    flags set. On loopback `axme dev` lets any email log in (unless --allow-email names who), prints login codes
    and lets its agents be called on loopback."""
    fields: dict[str, Any] = {"allowed_emails": (), "callback_networks": ()}
    serve: dict[str, str] = {}
    quotas: list[str] = []
    i = 0
    while i < len(args):
        flag = args[i]
        if flag in SWITCHES:
            fields[SWITCHES[flag]] = True
            i += 1
            continue
        value = args[i + 1]
        if flag in SETTINGS_FLAGS:
            name, kind = SETTINGS_FLAGS[flag]
            fields[name] = kind(value)
        elif flag == "--allow-email":
            fields["allowed_emails"] += (value.strip().lower(),)
        elif flag == "--allow-private-callbacks":
            fields["callback_networks"] += (str(ip_network(value.strip(), strict=False)),)
        elif flag == "--quota":
            quotas.append(value)
        elif flag in SERVE_FLAGS:
            serve[SERVE_FLAGS[flag]] = value
        else:
            raise ValueError(f"{flag}: not taken by the in-process runtime; use RuntimeProcess")
        i += 2
    fields["allowed_emails"] = tuple(sorted(set(fields["allowed_emails"]))) or ("*",)
    if quotas:  # parsed as `axme dev` parses them
        from axme_cli.cli.dev import _quota_defaults

        fields["quota_defaults"] = _quota_defaults(quotas)
    return Settings(**fields, show_login_codes=True, loopback_callbacks=True), serve


class RuntimeThread(RuntimeProcess):
    """Like RuntimeProcess (same constructor, ``url``, ``client()``, ``stop()``, ``mail_dir``, ``stored_bytes()``),
    served by a thread of this process. It cannot be killed: no kill -9 reaches a thread.

    ``settings`` sets Settings fields no flag of `axme dev` reaches, e.g. the slow-client deadlines, so a test of a
    deadline waits a second or two instead of the default 30 s; the server applies them as it applies the
    defaults (``build_server``). ``serve`` sets ``ServeOptions`` fields no flag reaches, e.g. the SQLite busy
    timeout, so a test of a lock held past it holds it three seconds instead of six.

    ``clock``: what the runtime reads "now" from; a ``ManualClock`` (or ``--test-clock`` among the flags, which
    makes one) stands still until the test moves it (``clock.advance(seconds)``, or ``advance_clock``), and what
    became due then fires at once: a timer test waits for no timer. Rate-limit buckets refill only as that clock
    moves, so on a ManualClock the per-key limit is off unless ``--rate-limit`` is given (a test that polls would
    otherwise use up its key's burst for good)."""

    def __init__(self, workdir: Path, *, settings: dict[str, Any] | None = None, clock: Clock | None = None,
                 serve: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if kwargs.get("command", "dev") != "dev":
            raise ValueError("the in-process runtime is `axme dev`; use RuntimeProcess for `axme server`")
        super().__init__(workdir, **kwargs)
        if "--test-clock" in self.extra_args:
            self.extra_args = [a for a in self.extra_args if a != "--test-clock"]
            clock = clock or ManualClock()
        self.clock: Clock = clock or SYSTEM
        if self.clock.manual and "--rate-limit" not in self.extra_args:
            self.extra_args = [*self.extra_args, "--rate-limit", "0"]
        self.settings, self.serve_fields = dev_options(self.extra_args)
        self.settings = dataclasses.replace(self.settings, **(settings or {}))
        self.serve_fields = {**self.serve_fields, **(serve or {})}
        self._thread: threading.Thread | None = None
        self._server: Any = None

    def start(self, timeout: float = 20.0) -> RuntimeThread:
        self.first_start()
        database = self.database_url or str(self.db)
        serve = dict(self.serve_fields)
        if self.database_url and "mail_dir" not in serve and "smtp_url" not in serve:
            serve["mail_dir"] = str(self.mail_dir)  # where `axme dev` puts them: its data dir
        opts = ServeOptions(host="127.0.0.1", port=self.port, database=database, settings=self.settings,
                            api_key=self.api_key, clock=self.clock, **serve)  # type: ignore[arg-type]
        ready = threading.Event()
        info: list[ReadyInfo] = []

        def on_ready(what: ReadyInfo) -> None:
            info.append(what)
            ready.set()

        server, sock = build_server(opts, on_ready, whole_process=False)

        def run() -> None:
            try:
                server.run(sockets=[sock])
            finally:
                sock.close()
                ready.set()

        self._server = server
        self._thread = threading.Thread(target=run, name=f"runtime {self.workdir.name}", daemon=True)
        self._thread.start()
        if not ready.wait(timeout) or not info:
            self.stop()
            raise RuntimeError(f"the in-process runtime did not start: {server.failure or 'timed out'}")
        self.url = info[0].url
        self.port = info[0].port
        return self

    def stop(self) -> int:
        if self._thread is None:
            return 0
        self._server.should_exit = True
        self._thread.join(30)
        alive = self._thread.is_alive()
        self._thread = None
        assert not alive, "the in-process runtime did not stop within 30 s"
        return 1 if self._server.failure else 0

    def serving(self) -> bool:
        """The server thread runs and nothing stopped it (what "no crash, no restart" means in-process)."""
        return self._thread is not None and self._thread.is_alive() and not self._server.failure

    def retire(self) -> None:
        """Stop without waiting: uvicorn takes 0.2 s to notice and close, PostgreSQL's listener up to 0.5 s more,
        time a fixture's teardown need not spend. A thread joins it, then pools or drops its own database;
        ``join_retired`` collects the outcome at the end of the session. Not for a test that reopens the database."""
        if self._thread is None:
            return
        self._server.should_exit = True
        thread, server = self._thread, self._server
        self._thread = None

        def finish() -> str | None:
            thread.join(30)
            if thread.is_alive():
                return f"{thread.name} did not stop within 30 s"
            return f"{thread.name}: {server.failure[0]!r}" if server.failure else None

        retire_later(finish, self.own_database)

    def advance_clock(self, seconds: float) -> None:
        if not isinstance(self.clock, ManualClock):
            raise TypeError("this runtime runs on the real clock: start it with clock=ManualClock()")
        self.clock.advance(seconds)

    def kill(self) -> None:
        raise TypeError("an in-process runtime cannot be killed: use RuntimeProcess for crash tests")


T = TypeVar("T")
TERMINAL = ("COMPLETED", "FAILED", "CANCELED", "TIMED_OUT")


class Clockwork(threading.Thread):
    """Moves the test clock of ``rt`` as a workflow asks for it, so its timers fire at once and no sooner: it
    follows the events of the workflow's parent intent and, for each event that arms a timer the test wants to
    pass, advances the clock by that timer's delay. The timer is committed with the event, so it is due then.

    - a retry (``details.retry_in_seconds``: a failed step or compensation tried again): always;
    - a delay step (``intent.waiting`` WAITING_FOR_TIME, ``details.delay_seconds``): always;
    - a step that waits for its agent (``intent.waiting`` WAITING_FOR_AGENT): by ``deadlines[step_id]`` if given
      (its step deadline: the test's agent for it is silent).

    Ends when the parent ends (or ``stop()``); an error in it fails the test (pytest's thread-exception filter)."""

    def __init__(self, rt: RuntimeThread, intent_id: str, deadlines: dict[str, float] | None = None) -> None:
        super().__init__(daemon=True, name=f"clockwork {intent_id}")
        self.rt, self.intent_id, self.deadlines = rt, intent_id, deadlines or {}
        self.stopped = threading.Event()
        self.moved: list[tuple[str, float]] = []  # (why, seconds)

    def __enter__(self) -> Clockwork:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def run(self) -> None:
        since = 0
        with self.rt.client() as client:
            while not self.stopped.is_set():
                with client.stream("GET", f"/v1/intents/{self.intent_id}/events/stream",
                                   params={"since": since, "wait_seconds": 1, "incremental": "true"}) as r:
                    assert r.status_code == 200, r.read()
                    for event in _events(r.iter_lines()):
                        since = event["seq"]
                        self._react(event)
                        if event["status"] in TERMINAL:
                            return

    def _react(self, event: dict[str, Any]) -> None:
        details = event.get("details") or {}
        seconds, why = None, ""
        if details.get("retry_in_seconds") is not None:
            seconds, why = float(details["retry_in_seconds"]), f"retry {details.get('step_id')}"
        elif event["event_type"] == "intent.waiting" and event.get("waiting_reason") == "WAITING_FOR_TIME":
            seconds, why = float(details.get("delay_seconds") or 0), f"delay {details.get('step_id')}"
        elif event["event_type"] == "intent.waiting" and details.get("step_id") in self.deadlines:
            seconds, why = self.deadlines[details["step_id"]], f"deadline {details['step_id']}"
        if seconds is not None:
            self.moved.append((why, seconds))
            self.rt.advance_clock(seconds)

    def stop(self) -> None:
        self.stopped.set()
        self.join(10)


def _events(lines: Any) -> Any:
    """The ``intent.*`` events of an SSE stream's lines, as dicts."""
    event: str | None = None
    for line in lines:
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event and event.startswith("intent."):
            yield json.loads(line[6:])
        elif line == "":
            event = None


def tick(rt: RuntimeThread, seconds: float, state: Callable[[], T], timeout: float = 5.0) -> T:
    """Move the clock ``seconds`` and return ``state()`` once it differs from what it was before the move: what
    became due has happened. (``timeout`` real seconds for the runtime to do it; no change fails the test.)"""
    import time

    before = state()
    rt.advance_clock(seconds)
    deadline = time.monotonic() + timeout
    while True:
        now = state()
        if now != before:
            return now
        assert time.monotonic() < deadline, f"moving the clock {seconds} s changed nothing (still {before!r})"
        time.sleep(0.01)

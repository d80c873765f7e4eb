"""The real runtime in the test process: the same uvicorn server `axme dev` runs (``runtime.server.build_server``),
on a socket bound on loopback, served by a thread with its own event loop.

It starts in a few milliseconds instead of a process's ~0.65 s, and coverage sees it without subprocess tricks.
Use ``RuntimeProcess`` where the process is the thing tested: kill -9, signals, the ready file, the banner, the
environment a process reads (OpenTelemetry), or the console script.
"""

from __future__ import annotations

import dataclasses
import threading
from ipaddress import ip_network
from pathlib import Path
from typing import Any

from axme_cli.runtime.clock import SYSTEM, Clock, ManualClock
from axme_cli.runtime.server import ReadyInfo, ServeOptions, build_server
from axme_cli.runtime.settings import Settings
from tests.runtime_proc import RuntimeProcess

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
LISTS = {"--allow-email": "allowed_emails", "--allow-private-callbacks": "callback_networks"}
SERVE_FLAGS = {"--mail-dir": "mail_dir", "--smtp-url": "smtp_url", "--public-url": "public_url"}


def dev_options(args: list[str]) -> tuple[Settings, dict[str, str]]:
    """What `axme dev` on loopback runs with, given these flags: its Settings and the ServeOptions fields the
    flags set. On loopback `axme dev` lets any email log in (unless --allow-email names who), prints login codes
    and lets its agents be called on loopback."""
    fields: dict[str, Any] = {"allowed_emails": (), "callback_networks": ()}
    serve: dict[str, str] = {}
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
        elif flag in SERVE_FLAGS:
            serve[SERVE_FLAGS[flag]] = value
        else:
            raise ValueError(f"{flag}: not taken by the in-process runtime; use RuntimeProcess")
        i += 2
    fields["allowed_emails"] = tuple(sorted(set(fields["allowed_emails"]))) or ("*",)
    return Settings(**fields, show_login_codes=True, loopback_callbacks=True), serve


class RuntimeThread(RuntimeProcess):
    """Like RuntimeProcess (same constructor, ``url``, ``client()``, ``stop()``, ``mail_dir``, ``stored_bytes()``),
    served by a thread of this process. It cannot be killed: no kill -9 reaches a thread.

    ``settings`` sets Settings fields no flag of `axme dev` reaches, e.g. the slow-client deadlines, so a test of a
    deadline waits a second or two instead of the default 30 s; the server applies them as it applies the
    defaults (``build_server``).

    ``clock``: what the runtime reads "now" from; a ``ManualClock`` (or ``--test-clock`` among the flags, which
    makes one) stands still until the test moves it (``clock.advance(seconds)``, or ``advance_clock``), and what
    became due then fires at once: a timer test waits for no timer."""

    def __init__(self, workdir: Path, *, settings: dict[str, Any] | None = None, clock: Clock | None = None,
                 **kwargs: Any) -> None:
        if kwargs.get("command", "dev") != "dev":
            raise ValueError("the in-process runtime is `axme dev`; use RuntimeProcess for `axme server`")
        super().__init__(workdir, **kwargs)
        if "--test-clock" in self.extra_args:
            self.extra_args = [a for a in self.extra_args if a != "--test-clock"]
            clock = clock or ManualClock()
        self.clock: Clock = clock or SYSTEM
        self.settings, self.serve_fields = dev_options(self.extra_args)
        self.settings = dataclasses.replace(self.settings, **(settings or {}))
        self._thread: threading.Thread | None = None
        self._server: Any = None

    def start(self, timeout: float = 20.0) -> RuntimeThread:
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

    def advance_clock(self, seconds: float) -> None:
        if not isinstance(self.clock, ManualClock):
            raise TypeError("this runtime runs on the real clock: start it with clock=ManualClock()")
        self.clock.advance(seconds)

    def kill(self) -> None:
        raise TypeError("an in-process runtime cannot be killed: use RuntimeProcess for crash tests")

"""Serving the runtime with uvicorn on a socket we bind ourselves (so ``--port 0`` works)."""

from __future__ import annotations

import contextlib
import errno
import gc
import json
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from axme_cli.runtime.clock import SYSTEM, Clock
from axme_cli.runtime.settings import Settings


class AddressInUse(Exception):
    pass


class StartupFailed(Exception):
    pass


@dataclass
class ServeOptions:
    host: str
    port: int
    database: str
    settings: Settings
    api_key: str | None = None
    ready_file: str | None = None
    log_level: str = "warning"
    smtp_url: str | None = None  # send login codes by SMTP instead of printing them
    mail_dir: str | None = None  # where the dev mailer keeps .eml files [default: <database>.mail/]
    replica_id: str | None = None  # names this process among several on one PostgreSQL database
    public_url: str | None = None  # how people reach this runtime (links in mails) [default: the bound URL]
    # what the runtime reads "now" from; a ManualClock (`axme dev --test-clock`, the tests) also serves
    # POST /dev/clock/advance
    clock: Clock = SYSTEM
    # seconds a SQLite write waits for another process's lock on the file before it answers 503 [default: the
    # store's, 5 s]; no flag sets it: the tests shorten it to hold a lock past it without waiting 5 s
    sqlite_busy_timeout: float | None = None
    # the SQLite WAL's (soft, cap) in bytes [default: the store's, 16 and 64 MB]; no flag sets them: the tests make
    # them smaller to reach the cap with a quarter of the writes
    sqlite_wal_limits: tuple[int, int] | None = None


@dataclass
class ReadyInfo:
    url: str
    host: str
    port: int
    pid: int
    database: str
    storage: str
    admin_key: str
    admin_key_source: str  # "flag" | "kept" | "generated"
    settings: Settings
    login_codes: str = ""  # where login codes go, for the banner
    test_clock: bool = False  # the runtime runs on a ManualClock (POST /dev/clock/advance)


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise AddressInUse(f"{host}:{port} is already in use") from None
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _key_file(database: str) -> Path:
    return Path(database + ".key")


def _load_or_make_admin_key(database: str) -> tuple[str, str]:
    """The workspace key kept next to the database (0600), or a new one."""
    from axme_cli.config.files import make_private, write_atomic

    path = _key_file(database)
    with contextlib.suppress(FileNotFoundError):
        token = path.read_text(encoding="utf-8").strip()
        if token:
            make_private(path, 0o600)
            return token, "kept"
    from axme_cli.runtime.principals import new_workspace_token

    _, token = new_workspace_token()
    write_atomic(path, (token + "\n").encode(), mode=0o600)
    return token, "generated"


def serve(opts: ServeOptions, on_ready: Callable[[ReadyInfo], None] | None = None) -> None:
    """Run until SIGINT/SIGTERM. Raises AddressInUse before anything else happens if the port is busy. Its caller
    (cli/dev.py) runs it with the garbage collector off, which ``tune_gc`` turns on once the runtime has started."""
    server, sock = build_server(opts, on_ready)
    logging.getLogger("axme").setLevel(logging.INFO)
    # uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-raises the signal; with these
    # no-op handlers in place that re-raise returns here, and the command exits 0.
    previous = {sig: signal.signal(sig, _ignore) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if server.failure:
        raise StartupFailed(str(server.failure[0])) from server.failure[0]


def build_server(opts: ServeOptions, on_ready: Callable[[ReadyInfo], None] | None = None, *,
                 whole_process: bool = True) -> tuple[Any, socket.socket]:
    """The runtime's uvicorn server and its bound socket, not yet running (``server.run(sockets=[sock])``; its
    ``failure`` lists what stopped the start-up). ``whole_process`` False leaves the process's garbage collector
    alone, for a runtime that shares its process (the tests run it in a thread)."""
    import uvicorn

    from axme_cli.runtime.api import sse
    from axme_cli.runtime.api.app import build_app
    from axme_cli.runtime.core import Runtime
    from axme_cli.runtime.store import open_store

    class _Server(uvicorn.Server):
        failure: list[BaseException]

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            # Open SSE streams end now (cleanly; clients reconnect with their cursor) instead of holding the
            # shutdown for timeout_graceful_shutdown: close_all runs before uvicorn starts waiting for them.
            sse.close_all()
            await super().shutdown(sockets)

    sock = bind(opts.host, opts.port)
    host, port = sock.getsockname()[:2]
    url_host = f"[{host}]" if ":" in host else host
    url = f"http://{url_host}:{port}"
    store = open_store(opts.database, replica_id=opts.replica_id, busy_timeout=opts.sqlite_busy_timeout,
                       wal_limits=opts.sqlite_wal_limits)
    from axme_cli.runtime.mailer import build_mailer

    if opts.mail_dir is None and store.kind != "sqlite" and not opts.smtp_url:
        raise StartupFailed("give a folder for the dev mailer (mail_dir) or an SMTP URL")
    mailer = build_mailer(opts.smtp_url, opts.mail_dir or store.location + ".mail",
                          show_codes=opts.settings.show_login_codes)
    rt = Runtime(store, opts.settings, mailer=mailer, public_url=(opts.public_url or url).rstrip("/"),
                 clock=opts.clock)
    app = build_app(rt, manage_runtime=False)

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        started = False
        try:
            await rt.start()
            started = True
            if whole_process:
                tune_gc()
            if opts.api_key:
                token, source = opts.api_key, "flag"
            elif store.kind != "sqlite":
                raise StartupFailed("an admin key is required with PostgreSQL (--api-key)")
            else:
                token, source = _load_or_make_admin_key(store.location)
            await rt.ensure_workspace_key(token)
            info = ReadyInfo(
                url=url,
                host=host,
                port=port,
                pid=os.getpid(),
                database=store.location,
                storage=store.kind,
                admin_key=token,
                admin_key_source=source,
                settings=opts.settings,
                login_codes=rt.mailer.describe(),
                test_clock=rt.clock.manual,
            )
            if on_ready is not None:
                on_ready(info)
            if opts.ready_file:
                from axme_cli.config.files import write_atomic

                write_atomic(
                    Path(opts.ready_file),
                    json.dumps({"url": url, "pid": os.getpid()}).encode(),
                    mode=0o644,
                    dir_mode=0o755,
                )
        except Exception as exc:
            # Stop at once with one clear sentence instead of uvicorn's traceback.
            server.failure.append(exc)
            server.should_exit = True
            if started:
                await rt.stop()
            yield
            return
        try:
            yield
        finally:
            await rt.stop()

    app.router.lifespan_context = lifespan
    from axme_cli.runtime.http1 import protocol

    loop = "uvloop" if _has("uvloop") else "asyncio"
    config = uvicorn.Config(
        app,
        loop=loop,
        http=protocol(opts.settings),  # with the head and body deadlines (slow clients)
        ws="none",  # no route speaks WebSocket: an upgrade request is a plain request
        log_level=opts.log_level,
        access_log=False,
        lifespan="on",
        timeout_keep_alive=opts.settings.keep_alive_seconds,  # type: ignore[arg-type]  # a float works
        timeout_graceful_shutdown=3,
        proxy_headers=False,  # the app applies them, to the requests that are not hot (api/app.py _HotPaths)
    )
    app.forwarded_allow = config.forwarded_allow_ips
    server = _Server(config)
    server.failure = []
    return server, sock


def tune_gc() -> None:
    """Collect cycles less often (every 50,000 allocations instead of 700) and leave what start-up made out of
    every collection (``gc.freeze``). A request allocates hundreds of short-lived objects and almost no cycles;
    ``bench/saga.py`` (32 clients) measured about 5-10% more workflows/s and a lower p99 with this. Turns the
    collector on again if the start ran with it off (cli/dev.py)."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    gc.enable()


def _ignore(signum: int, frame: object) -> None:
    pass


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None

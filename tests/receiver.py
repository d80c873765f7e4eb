"""A real HTTP receiver for outbound deliveries: a loopback `http.server` in a thread that checks each POST's
`X-Axme-Signature` against the secret it was given, answers with planned status codes, and records what came."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """What a receiver does with the raw body (written here from the wire format, not our code)."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return header is not None and hmac.compare_digest(expected, header)


class Receiver:
    """``statuses``: the answers to the first POSTs, in order; later ones get ``default``. ``after`` runs (in
    its own thread) once a 2xx answer was sent, with the recorded POST."""

    def __init__(self, secret: str | None = None, statuses: list[int] | None = None, default: int = 200,
                 after: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.secret = secret
        self.statuses = list(statuses or [])
        self.default = default
        self.after = after
        self.posts: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else receiver.default
                    post = {"path": self.path, "headers": dict(self.headers), "raw": body, "json": json.loads(body),
                            "signed": receiver.secret is not None and signature_ok(
                                receiver.secret, body, self.headers.get("X-Axme-Signature")),
                            "status": status}
                    receiver.posts.append(post)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if 200 <= status < 300 and receiver.after is not None:
                    threading.Thread(target=receiver._after, args=(post,), daemon=True).start()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def _after(self, post: dict[str, Any]) -> None:
        try:
            assert self.after is not None
            self.after(post)
        except BaseException as exc:  # surfaced by the test
            self.errors.append(exc)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_posts(self, n: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.posts) < n:
            assert time.monotonic() < deadline, f"expected {n} POSTs, got {len(self.posts)}"
            time.sleep(0.02)
        return list(self.posts)


def closed_port_url() -> str:
    """A loopback URL nobody listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/down"


def poll(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 30.0) -> Any:
    """Call ``fetch`` until ``done(value)``; fail with the last value after ``timeout`` seconds. Looks again after
    5 ms, then less and less often (50 ms at most): most waits end within a few milliseconds."""
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        value = fetch()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"gave up waiting; last value: {value!r}"
        time.sleep(pause)
        pause = min(pause * 2, 0.05)

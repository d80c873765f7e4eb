"""The "HTTP only" ceiling: a raw ASGI app (no framework) served by uvicorn the way `axme dev` serves the runtime.

Same uvicorn settings as ``axme_cli/runtime/server.py`` (uvloop, httptools, access_log off, log_level warning,
lifespan on, a socket bound by us with backlog 2048). Every POST reads the whole request body and answers 200 with a
small JSON body that carries an ``intent_id``, so the load generator checks it exactly as it checks the runtime.

Started by ``bench/create_throughput.py``; by hand::

    python bench/bare_asgi.py --ready-file /tmp/bare-ready.json   # prints nothing; Ctrl+C stops it

The ready file gets ``{"url": ..., "pid": ...}`` once the server accepts connections (as `axme dev --ready-file`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

RESPONSE = b'{"ok":true,"intent_id":"00000000-0000-7000-8000-000000000000","status":"SUBMITTED"}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(RESPONSE)).encode())]

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def make_app(on_startup: Callable[[], None]) -> Callable[[dict[str, Any], Receive, Send], Awaitable[None]]:
    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    on_startup()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        _body = b"".join(chunks)  # the runtime joins its body too; keep that cost
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": RESPONSE})

    return app


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Bare uvicorn + raw ASGI endpoint (benchmark baseline).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", type=Path, required=True)
    args = parser.parse_args()

    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(2048)
    sock.set_inheritable(True)
    host, port = sock.getsockname()[:2]
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def write_ready() -> None:
        tmp = args.ready_file.with_name(args.ready_file.name + ".tmp")
        tmp.write_text(json.dumps({"url": url, "pid": os.getpid()}))
        os.replace(tmp, args.ready_file)

    config = uvicorn.Config(
        make_app(write_ready),
        loop="uvloop" if _has("uvloop") else "asyncio",
        http="httptools" if _has("httptools") else "h11",
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=3,
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()


if __name__ == "__main__":
    main()

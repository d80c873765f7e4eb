"""The dashboard's live feeds (Server-Sent Events, read by the page's EventSource) and its static files."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from axme_cli.runtime import scope
from axme_cli.runtime.api import intents as intents_api
from axme_cli.runtime.api.common import int_param, runtime
from axme_cli.runtime.api.sse import EventStream, Last
from axme_cli.runtime.notify import wait
from axme_cli.runtime.ui import session
from axme_cli.runtime.ui.render import mask, static_file

STREAM_SECONDS = 25  # then a stream.timeout frame; the page opens the next stream where this one ended
COUNTS_SECONDS = 50
TYPES = {"ui.js": "text/javascript; charset=utf-8", "ui.css": "text/css; charset=utf-8"}


def _unauthorized() -> Response:
    return Response("log in at /ui/login", status_code=401, media_type="text/plain")


async def intent_events(request: Request) -> Response:
    """The intent's events after ``since``: the same frames as GET /v1/intents/{id}/events/stream (same code),
    authenticated by the dashboard's cookie, unnamed (so the page's ``onmessage`` gets them) and with secrets
    masked."""
    sess = await session.current(request)
    if sess is None:
        return _unauthorized()
    intent_id = request.path_params["intent_id"]
    since = int_param(request, "since", 0, 0, 2**53)
    await intents_api._visible(request, sess.principal, intent_id)
    rt = runtime(request)

    def masked(frame: dict[str, Any]) -> dict[str, Any]:
        if frame.get("event") == "stream.timeout":
            return frame
        return {"id": frame["id"], "data": orjson.dumps(mask(orjson.loads(frame["data"]))).decode()}

    async def frames() -> AsyncIterator[list[dict[str, Any]]]:
        # aclosing: stopped while this waits at its yield, the inner iterator's hub watch is released at once too
        async with contextlib.aclosing(intents_api.event_frames(rt, intent_id, since, STREAM_SECONDS)) as batches:
            async for batch in batches:
                out = [masked(frame) for frame in batch]
                yield Last(out) if isinstance(batch, Last) else out

    return EventStream(frames())


async def live_counts(request: Request) -> Response:
    """Intent counts by status (of this session's workspace; an agent key's own), sent again whenever a commit
    changed an intent."""
    sess = await session.current(request)
    if sess is None:
        return _unauthorized()
    p = sess.principal
    own = None if p.is_member else p.address
    workspace = scope.pair(sess.settings)
    rt = runtime(request)

    async def frames() -> AsyncIterator[dict[str, Any]]:
        deadline = time.monotonic() + COUNTS_SECONDS
        last: dict[str, int] | None = None
        with rt.hub.watch_any() as changed:
            while True:
                changed.clear()
                counts = await rt.reads.intent_counts(own, workspace)
                if counts != last:
                    last = counts
                    yield {"event": "counts",
                           "data": orjson.dumps({"counts": counts, "total": sum(counts.values())}).decode()}
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not await wait(changed, remaining):
                    yield {"event": "stream.timeout", "data": "{}"}
                    return
                await asyncio.sleep(0.2)  # a burst of commits makes one update

    return EventStream(frames())


async def static(request: Request) -> Response:
    name = request.path_params["name"]
    data = static_file(name)
    if data is None:
        return Response("not found", status_code=404, media_type="text/plain")
    return Response(data, media_type=TYPES[name], headers={"Cache-Control": "public, max-age=86400",
                                                           "X-Content-Type-Options": "nosniff"})

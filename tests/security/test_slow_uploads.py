"""A media upload may take longer than the body deadline while it keeps coming, and a trickle is still cut.

The PUT of an upload URL tells the protocol it takes a long body (``http1.LONG_BODY``): its deadline then moves
``body_timeout`` further for every ``max_body_bytes`` that arrive. Here, on a runtime of its own, the deadline is
1 s per 8 KiB: an upload sent at 8 KiB every 0.2 s takes longer than 1 s in all and is answered; one that trickles
512 bytes every 0.2 s is cut, and nothing of it is kept."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.receiver import poll
from tests.runtime.api.test_intents import assert_error
from tests.runtime.api.test_media import create, finalize, stored_parts
from tests.runtime_proc import RuntimeProcess
from tests.runtime_thread import RuntimeThread

STEP = 8192
PACE = 0.2  # seconds between two sends


@pytest.fixture(scope="module")
def paced(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    rt = RuntimeThread(tmp_path_factory.mktemp("slow-uploads"), backend=backend,
                       settings={"body_timeout_seconds": 1.0, "max_body_bytes": STEP})
    rt.start()
    yield rt
    rt.retire()


def _send(url: str, data: bytes, piece: int) -> tuple[bytes, int]:
    """PUT ``data`` in pieces of ``piece`` bytes, PACE apart; (what the server answered, bytes it took)."""
    target = urlsplit(url)
    sent = 0
    with socket.create_connection((target.hostname, target.port), timeout=10) as sock:
        sock.sendall(f"PUT {target.path}?{target.query} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n\r\n"
                     .encode())
        try:
            while sent < len(data):
                time.sleep(PACE)
                sock.sendall(data[sent:sent + piece])
                sent += piece
            return sock.recv(65536), sent
        except (BrokenPipeError, ConnectionResetError):
            return b"", sent


@pytest.mark.slow
@pytest.mark.backends("sqlite")
def test_an_upload_that_keeps_coming_is_answered_and_a_trickle_is_cut(paced: RuntimeProcess) -> None:
    with paced.client() as api:
        data = b"u" * (6 * STEP)  # 1.2 s at this pace: longer than the 1 s body deadline
        created = create(api, data)
        answer, _ = _send(created["upload_url"], data, STEP)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
        assert finalize(api, created["upload_id"], data).status_code == 200

        before = stored_parts(paced)
        slow = create(api, data)
        started = time.monotonic()
        answer, sent = _send(slow["upload_url"], data, 512)
        assert b"200" not in answer.split(b"\r\n", 1)[0], answer[:300]
        assert sent < len(data) and time.monotonic() - started < 8  # cut long before the 19 s it would take
        poll(lambda: stored_parts(paced), lambda parts: parts == before)  # what came of it is deleted
        assert_error(finalize(api, slow["upload_id"], data), 409, "upload_incomplete")
        assert httpx.get(f"{paced.url}/health", timeout=10).status_code == 200

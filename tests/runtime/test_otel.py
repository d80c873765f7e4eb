"""OpenTelemetry (issue 9): with OTEL_EXPORTER_OTLP_ENDPOINT set, the runtime exports a span per intent and per
workflow step over OTLP/HTTP, linked to the creating request's traceparent / X-Trace-Id. The receiver is a real
HTTP server on loopback that decodes the protobuf the exporter sends."""

from __future__ import annotations

import gzip
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.runtime.engine.test_workflows import Services, saga, wait_terminal
from tests.runtime_proc import RuntimeProcess

ROOT = Path(__file__).resolve().parents[2]


class Receiver:
    """An OTLP/HTTP trace receiver: POST /v1/traces with an ExportTraceServiceRequest (protobuf)."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.resources: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                ok = self.path == "/v1/traces" and self.headers.get("content-type") == "application/x-protobuf"
                if ok:
                    request = ExportTraceServiceRequest.FromString(body)
                    with receiver.lock:
                        for rs in request.resource_spans:
                            attrs = {a.key: a.value.string_value for a in rs.resource.attributes}
                            receiver.resources.append(attrs)
                            for ss in rs.scope_spans:
                                receiver.spans.extend(ss.spans)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200 if ok else 400)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, intent_ids: set[str], timeout: float = 30) -> dict[str, Any]:
        """The spans of these intents (by their ``axme.intent_id`` attribute), once all have arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = {attrs(s)["axme.intent_id"]: s for s in self.spans}
            if intent_ids <= set(found):
                return {i: found[i] for i in intent_ids}
            time.sleep(0.05)
        raise AssertionError(f"spans of {intent_ids - set(found)} did not arrive in {timeout}s")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def attrs(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in span.attributes:
        v = a.value
        out[a.key] = getattr(v, v.WhichOneof("value"))
    return out


@pytest.fixture(scope="module")
def traced(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RuntimeProcess, Receiver]]:
    receiver = Receiver()
    rt = RuntimeProcess(tmp_path_factory.mktemp("otel"), extra_args=["--redelivery-seconds", "5"], backend=backend)
    rt.env.update(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_BSP_SCHEDULE_DELAY="50")
    rt.start()
    yield rt, receiver
    rt.stop()  # waits: the runtime exports its last spans to the receiver before it closes
    receiver.close()


def test_a_saga_is_one_trace_under_the_callers_span(traced: tuple[RuntimeProcess, Receiver]) -> None:
    rt, receiver = traced
    trace_id, caller_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    with rt.client() as admin:
        r = admin.post("/v1/scenarios/apply", json=saga(uuid.uuid4().hex[:8]),
                       headers={"traceparent": f"00-{trace_id}-{caller_span}-01"})
        assert r.status_code == 200, r.text
        applied = r.json()
        services = Services(rt, admin, applied)
        try:
            parent = wait_terminal(admin, applied["intent_id"])
        finally:
            services.stop()
        events = admin.get(f"/v1/intents/{parent['intent_id']}/events").json()["events"]
    assert parent["status"] == "COMPLETED"
    steps = [e["details"]["step_intent_id"] for e in events if e["details"].get("step_intent_id")]
    assert len(steps) == 3
    spans = receiver.wait_for({parent["intent_id"], *steps})

    root = spans[parent["intent_id"]]
    assert root.name == "intent order.place.v1"
    assert root.trace_id.hex() == trace_id and root.parent_span_id.hex() == caller_span
    assert attrs(root)["axme.status"] == "COMPLETED" and attrs(root)["axme.workflow_id"]
    assert root.status.code == root.status.STATUS_CODE_OK
    children = [spans[i] for i in steps]
    assert [s.name for s in children] == ["step reserve", "step charge", "step ship"]
    for span in children:
        assert span.trace_id.hex() == trace_id
        assert span.parent_span_id == root.span_id
        assert attrs(span)["axme.parent_intent_id"] == parent["intent_id"]
        assert root.start_time_unix_nano <= span.start_time_unix_nano < span.end_time_unix_nano \
            <= root.end_time_unix_nano
    for earlier, later in zip(children, children[1:], strict=False):
        assert earlier.end_time_unix_nano <= later.start_time_unix_nano  # a step starts when the last one ended
    assert len({s.span_id for s in [root, *children]}) == 4
    assert {"service.name": "axme-dev"}.items() <= receiver.resources[0].items()


def test_a_direct_intent_takes_its_trace_id_from_x_trace_id(traced: tuple[RuntimeProcess, Receiver]) -> None:
    rt, receiver = traced
    trace = str(uuid.uuid4())
    with rt.client() as admin:
        r = admin.post("/v1/intents", headers={"x-trace-id": trace}, json={
            "intent_type": "order.reserve.v1", "correlation_id": str(uuid.uuid4()), "to_agent": "inventory",
            "payload": {"order_id": "ord_1"}})
        assert r.status_code == 200, r.text
        intent_id = r.json()["intent_id"]
        assert r.headers["x-trace-id"] == trace
        time.sleep(0.01)
        r = admin.post(f"/v1/intents/{intent_id}/resume", json={"action": "fail", "reason": "out of stock"})
        assert r.status_code == 200, r.text
    span = receiver.wait_for({intent_id})[intent_id]
    assert span.name == "intent order.reserve.v1"
    assert span.trace_id.hex() == trace.replace("-", "") and span.parent_span_id == b""
    assert span.start_time_unix_nano < span.end_time_unix_nano
    assert span.status.code == span.status.STATUS_CODE_ERROR and attrs(span)["axme.status"] == "FAILED"


@pytest.mark.parametrize("case", ["no endpoint", "endpoint but no packages"])
def test_without_the_endpoint_or_the_packages_nothing_of_opentelemetry_is_imported(tmp_path: Path,
                                                                                   case: str) -> None:
    if case == "no endpoint":
        setup = 'os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)'
    else:  # as if `pip install axme-cli` without the [otel] extra
        setup = textwrap.dedent("""
            os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:9"
            import importlib.metadata as md
            real = md.distribution
            def distribution(name):
                if name.startswith("opentelemetry"):
                    raise md.PackageNotFoundError(name)
                return real(name)
            md.distribution = distribution
        """)
    body = textwrap.dedent("""
        from axme_cli.runtime.api.app import build_app
        from axme_cli.runtime.core import Runtime
        from axme_cli.runtime.settings import Settings
        from axme_cli.runtime.store import open_store

        async def main():
            rt = Runtime(open_store(DB), Settings())
            build_app(rt)
            await rt.start()
            assert rt.tracing is None
            await rt.stop()

        asyncio.run(main())
        loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
        assert not loaded, loaded
        print("clean")
    """)
    script = f"import asyncio, os, sys\nDB = {str(tmp_path / 't.db')!r}\n{setup}\n{body}"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "clean", done.stderr

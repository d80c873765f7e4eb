"""OpenTelemetry traces (the optional extra ``axme-cli[otel]``).

On only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set and the packages are installed; otherwise nothing of
OpenTelemetry is imported (``from_env`` looks in the installed packages' metadata first).

A create (``POST /v1/intents``, ``/v1/scenarios/apply``) stores the trace context of its request in the intent's
doc (``doc.trace``: the W3C ``traceparent``'s trace id, parent span id and sampled flag; else a trace id from
``X-Trace-Id``; else a new trace). A workflow's step sub-intents copy the parent's. When an intent becomes
terminal (in whatever request or timer, before or after a restart), the process that committed it emits its
span with explicit start (``created_at``) and end (the terminal event) times:

- a direct intent or a workflow parent: ``intent <intent_type>``, a child of the creating request's span
  (a root span when the request carried only ``X-Trace-Id`` or nothing);
- a step or compensation sub-intent: ``step <step_id>`` / ``compensate <step_id>``, a child of its parent's span.

An intent's span id is derived from its id (the first 8 bytes of sha256(intent_id)), so a step knows its parent's
span id without storing it, and the parent's span may be emitted after its steps'.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import re
from collections.abc import Mapping
from typing import Any

from axme_cli.protocol import lifecycle as lc
from axme_cli.runtime.clock import iso, parse_iso

log = logging.getLogger("axme.tracing")

ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
_NEEDS = ("opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http")
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def span_id_of(intent_id: str) -> int:
    value = int.from_bytes(hashlib.sha256(intent_id.encode()).digest()[:8], "big")
    return value or 1


def _ns(at: str) -> int:
    return round(parse_iso(at) * 1e6) * 1000


def context_from(headers: Mapping[str, str], fresh: bytes | None = None) -> dict[str, Any]:
    """The trace context to keep in a new intent's doc: ``{"trace_id", "parent_span_id"?, "sampled"}`` (hex)."""
    match = _TRACEPARENT.match((headers.get("traceparent") or "").strip().lower())
    if match and match.group(1) != "ff" and int(match.group(2), 16) and int(match.group(3), 16):
        return {"trace_id": match.group(2), "parent_span_id": match.group(3),
                "sampled": bool(int(match.group(4), 16) & 1)}
    given = (headers.get("x-trace-id") or "").strip()
    if given:
        compact = given.replace("-", "").lower()
        if re.fullmatch(r"[0-9a-f]{32}", compact) and int(compact, 16):
            return {"trace_id": compact, "sampled": True}  # the SDK sends a uuid4: that is the trace id
        return {"trace_id": hashlib.sha256(given.encode()).hexdigest()[:32], "sampled": True}
    return {"trace_id": (fresh or os.urandom(16)).hex(), "sampled": True}


def from_env(service_name: str) -> Tracing | None:
    """A Tracing when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set and the otel packages are installed, else None."""
    if not os.environ.get(ENDPOINT_ENV):
        return None
    missing = []
    for name in _NEEDS:  # looked up in the installed metadata: nothing is imported to find out
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    if missing:
        log.warning("%s is set but OpenTelemetry is not installed (pip install 'axme-cli[otel]'); no traces",
                    ENDPOINT_ENV)
        return None
    return Tracing(service_name)


class Tracing:
    def __init__(self, service_name: str) -> None:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.id_generator import IdGenerator
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

        class _Ids(IdGenerator):
            """Hands out the ids chosen for the span being emitted (all spans are made on the event loop)."""

            def __init__(self) -> None:
                self.span_id = 0
                self.trace_id = 0

            def generate_span_id(self) -> int:
                return self.span_id

            def generate_trace_id(self) -> int:
                return self.trace_id

            def is_trace_id_random(self) -> bool:
                return False

        self._trace, self._SpanContext, self._TraceFlags = trace, SpanContext, TraceFlags
        self._Status, self._StatusCode, self._kind = Status, StatusCode, SpanKind.INTERNAL
        self._ids = _Ids()
        self.provider = TracerProvider(resource=Resource.create({"service.name": service_name}),
                                       id_generator=self._ids, shutdown_on_exit=False)
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self._tracer = self.provider.get_tracer("axme_cli.runtime")

    def observe(self, seen: list[tuple[Any, ...]]) -> None:
        """Emit a span for every intent of a committed transaction that became terminal."""
        for fact in seen:
            if fact[0] == "terminal" and fact[5].get("trace"):
                try:
                    self._emit(*fact[1:])
                except Exception:  # a broken span must never break a commit's follow-up
                    log.exception("could not emit the span of intent %s", fact[1])

    def _emit(self, intent_id: str, intent_type: str, status: str, created_at: str, doc: dict[str, Any],
              now: float) -> None:
        ctx_info = doc["trace"]
        trace_id = int(ctx_info["trace_id"], 16)
        sampled = bool(ctx_info.get("sampled", True))
        attributes: dict[str, Any] = {"axme.intent_id": intent_id, "axme.intent_type": intent_type,
                                      "axme.status": status}
        if doc.get("workflow_id") and not doc.get("workflow_parent"):
            parent_span: int | None = span_id_of(doc.get("parent_intent_id") or "")
            step = str(doc.get("step_id"))
            name = f"compensate {step}" if doc.get("compensation") else f"step {step}"
            attributes.update({"axme.workflow_id": doc["workflow_id"], "axme.step_id": step,
                               "axme.step_attempt": int(doc.get("step_attempt") or 1),
                               "axme.compensation": bool(doc.get("compensation")),
                               "axme.parent_intent_id": doc.get("parent_intent_id") or ""})
        else:
            parent = ctx_info.get("parent_span_id")
            parent_span = int(parent, 16) if parent else None
            name = f"intent {intent_type}"
            if doc.get("workflow_parent"):
                attributes.update({"axme.workflow_id": doc["workflow_id"],
                                   "axme.scenario_id": str(doc.get("scenario_id") or "")})
        context = None
        if parent_span is not None:
            flags = self._TraceFlags(self._TraceFlags.SAMPLED if sampled else self._TraceFlags.DEFAULT)
            remote = self._SpanContext(trace_id, parent_span, is_remote=True, trace_flags=flags)
            context = self._trace.set_span_in_context(self._trace.NonRecordingSpan(remote))
        self._ids.trace_id, self._ids.span_id = trace_id, span_id_of(intent_id)
        # Both ends through the same ISO form (microseconds) as the events: the end of a step and the start of
        # the next, made in one transaction, are then the same instant.
        start = _ns(created_at)
        end = max(start, _ns(iso(now)))
        span = self._tracer.start_span(name, context=context, kind=self._kind, attributes=attributes,
                                       start_time=start)
        if status == lc.COMPLETED:
            span.set_status(self._Status(self._StatusCode.OK))
        elif status in (lc.FAILED, lc.TIMED_OUT):
            span.set_status(self._Status(self._StatusCode.ERROR, status))
        span.end(end_time=end)

    def shutdown(self) -> None:
        """Export what is queued, then stop the exporter thread."""
        self.provider.shutdown()

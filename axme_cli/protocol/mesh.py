"""The agent mesh on the wire (the SDKs' ``client.mesh``): heartbeats with metrics, the health the runtime derives
for each agent, the kill switch, and the mesh's events. Pure: shared by the runtime and the CLI.

Health of an agent, from its last heartbeat and the delivery failures the runtime saw (``runtime/engine/mesh.py``
computes it; ``docs/architecture.md`` has the table):

- ``healthy``: a heartbeat in the last ``HEARTBEAT_FRESH_SECONDS`` and no delivery failure in the current window;
- ``degraded``: the last heartbeat is older than that (but not than ``HEARTBEAT_STALE_SECONDS``), or 1 to
  ``FAILURES_UNHEALTHY - 1`` delivery failures in the window;
- ``unhealthy``: no heartbeat for ``HEARTBEAT_STALE_SECONDS``, or ``FAILURES_UNHEALTHY`` failures in the window;
- ``unknown``: it never sent a heartbeat and no delivery to it failed lately.

A delivery failure: an intent's delivery attempt the agent did not take in time (its redelivery timer fired: a new
attempt, or the last one given up; for an http agent, a POST that failed is such an attempt), or a webhook or
submitted delivery's POST that failed. While the agent is killed nothing is attempted, so nothing fails. The
window starts at the first failure after ``FAILURE_WINDOW_SECONDS`` without one and lasts that long.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints

HEALTHY, DEGRADED, UNHEALTHY, UNKNOWN = "healthy", "degraded", "unhealthy", "unknown"
HEALTH_STATES = (HEALTHY, DEGRADED, UNHEALTHY, UNKNOWN)

HEARTBEAT_INTERVAL_SECONDS = 30.0  # what the SDK's start_heartbeat sends by default
HEARTBEAT_FRESH_SECONDS = 90.0  # three intervals: healthy until then
HEARTBEAT_STALE_SECONDS = 300.0  # unhealthy after this without one
FAILURE_WINDOW_SECONDS = 300.0
FAILURES_UNHEALTHY = 5

KILLED, RESUMED, HEALTH_CHANGED = "agent.killed", "agent.resumed", "agent.health_changed"
EVENT_TYPES = (KILLED, RESUMED, HEALTH_CHANGED)

MAX_METRICS = 64  # keys in one heartbeat's metrics
MAX_METRIC_TEXT = 256
MAX_REASON = 500
_METRIC_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def metrics_problem(metrics: dict[str, Any]) -> tuple[str, str] | None:
    """(field, what is wrong) for metrics a heartbeat may not carry, else None: at most MAX_METRICS keys of
    letters, digits and ``_.:-``, each a finite number, a boolean, null or a short text."""
    if len(metrics) > MAX_METRICS:
        return "metrics", f"at most {MAX_METRICS} metrics in one heartbeat, got {len(metrics)}"
    for key, value in metrics.items():
        if not _METRIC_KEY.match(key):
            return "metrics", f"metric name {key[:80]!r}: 1-64 letters, digits, '_', '.', ':' or '-'"
        field = f"metrics.{key}"
        if value is None or isinstance(value, bool | int):
            continue
        if isinstance(value, float):
            if not math.isfinite(value):
                return field, "must be a finite number"
            continue
        if isinstance(value, str):
            if len(value) > MAX_METRIC_TEXT:
                return field, f"a text metric has at most {MAX_METRIC_TEXT} characters"
            continue
        return field, "must be a number, a boolean, a short text or null (no arrays or objects)"
    return None


class HeartbeatRequest(BaseModel):
    """``POST /v1/mesh/heartbeat``: the body is optional (the SDK sends none without metrics); the route checks
    the metrics with ``metrics_problem`` (422 naming ``metrics.<name>``)."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    metrics: dict[str, Any] | None = None


class KillRequest(BaseModel):
    """``POST /v1/mesh/agents/{address_id}/kill`` and ``/resume``: the body is optional (the SDK sends none), and
    only ``reason`` is read from it."""

    model_config = ConfigDict(defer_build=True, extra="ignore")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_REASON)] | None = None

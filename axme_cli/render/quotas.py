"""Quotas and usage as text: `axme quota show` (AXME's table DIMENSION USED LIMIT USAGE%, ⚠ at 90 % and more,
! at 70 % and more), `axme usage summary` and `axme usage timeseries`."""

from __future__ import annotations

from typing import Any

from axme_cli.render.console import out
from axme_cli.render.tables import table

WARN_AT = 90.0  # ⚠
NOTE_AT = 70.0  # !


def amount(dimension: str, value: Any) -> str:
    """A count as it is; bytes in KiB, MiB, GiB when they are whole enough to read."""
    if value is None:
        return "—"
    if not dimension.endswith("_bytes") or value < 1024:
        return str(value)
    size = float(value)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024.0
        if size < 1024.0 or unit == "TiB":
            return f"{size:.1f} {unit}"
    return str(value)  # not reached


def share(used: int, limit: int | None) -> str:
    """``USAGE%`` with its mark: ``95% ⚠``, ``75% !``, ``—`` without a limit."""
    if limit is None:
        return "—"
    percent = 100.0 if limit == 0 and used > 0 else (0.0 if limit == 0 else 100.0 * used / limit)
    mark = " ⚠" if percent >= WARN_AT else " !" if percent >= NOTE_AT else ""
    return f"{percent:.0f}%{mark}"


def quota_table(overview: dict[str, Any]) -> None:
    policy = overview["quota_policy"]
    dims = overview["usage_summary"]["dimensions"]
    rows = []
    for name, limit in policy["dimensions"].items():
        used = int(dims.get(name, {}).get("used", 0))
        rows.append([name, amount(name, used), amount(name, limit), share(used, limit)])
    table(["DIMENSION", "USED", "LIMIT", "USAGE%"], rows, status_column=None)
    out(f"Tier: {policy['tier']}")
    enforcement = "true" if policy["hard_enforcement"] else "false"
    out(f"overage_mode={policy['overage_mode']} hard_enforcement={enforcement}")


def summary_table(summary: dict[str, Any]) -> None:
    out(f"Usage {summary['window_start'][:10]} .. {summary['window_end'][:10]} ({summary['window']}, UTC)")
    rows = []
    for name, entry in summary["dimensions"].items():
        rows.append([name, amount(name, entry["used"]), amount(name, entry["limit"]),
                     share(int(entry["used"]), entry["limit"]), entry["refused"], entry["overage"]])
    table(["DIMENSION", "USED", "LIMIT", "USAGE%", "REFUSED", "OVERAGE"], rows, status_column=None)
    counters = summary["counters"]
    out("  ".join(f"{name}={amount(name, value)}" for name, value in counters.items()))


def series_table(points: list[dict[str, Any]]) -> None:
    rows = []
    for point in points:
        dims, counters = point["dimensions"], point["counters"]
        rows.append([point["at"][:10], dims["intents_per_day"], counters["intents_created"], counters["deliveries"],
                     counters["requests"], dims["rate_limit_per_minute"], dims["sse_streams_max"],
                     amount("storage_bytes", dims["storage_bytes"]), sum(point.get("refused", {}).values())])
    table(["DAY", "INTENTS", "ALL_INTENTS", "DELIVERIES", "REQUESTS", "PEAK/MIN", "STREAMS", "STORED", "REFUSED"],
          rows, status_column=None)

"""A human task's reminders as plain data: when the next one is due, how many are left, whom to escalate to.

Pure: shared by direct task intents (kept in the intent's doc, ``human_tasks.on_timer``) and workflow human
steps (kept in the run's state, ``saga``).
"""

from __future__ import annotations

from typing import Any


def new_remind(spec: dict[str, Any], now: float, **where: Any) -> dict[str, Any] | None:
    """Reminder state from ``remind_after_seconds``, ``remind_interval_seconds``, ``max_reminders``,
    ``escalate_to`` (of a step or a direct intent); None without ``remind_after_seconds``."""
    after = spec.get("remind_after_seconds")
    if not after:
        return None
    return {**where, "at": now + float(after), "count": 0, "max": int(spec.get("max_reminders") or 1),
            "interval": float(spec.get("remind_interval_seconds") or after), "escalate_to": spec.get("escalate_to")}


def advance(rem: dict[str, Any], now: float) -> tuple[dict[str, Any], bool]:
    """The reminder that fires now counted: the new state (``at`` is the next one when more follow) and whether
    more follow. After the last one the task is escalated when ``escalate_to`` says to whom."""
    count = rem["count"] + 1
    more = count < rem["max"]
    return {**rem, "count": count, **({"at": now + rem["interval"]} if more else {})}, more

"""What followed from a change of an intent, for the reactions to act on (``engine/reactions.py``).

``changes.apply_event`` and ``changes.insert_new_intent`` know nothing of workflows, inboxes, human tasks or
outbound delivery: they record what happened as one of these values, and ``reactions.settle`` hands each to the
modules that react, inside the same transaction (so a step result and the workflow's next move commit together).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from axme_cli.runtime.store.base import Row


@dataclass(frozen=True, slots=True)
class Ended:
    """The intent reached a terminal status (COMPLETED, FAILED, CANCELED, TIMED_OUT) with ``event``."""

    row: Row
    doc: dict[str, Any]
    event: dict[str, Any]
    now: float


@dataclass(frozen=True, slots=True)
class DeliveryDue:
    """Attempt ``attempt`` of the intent must reach its agent. ``row``: the intent as just inserted, if it was."""

    to_agent: str
    intent_id: str
    attempt: int
    now: float
    row: Row | None = None


@dataclass(frozen=True, slots=True)
class TimerDue:
    """The intent's engine timer (``timer_ts``) fired; the scheduler already cleared it."""

    row: Row
    now: float


Effect = Ended | DeliveryDue | TimerDue

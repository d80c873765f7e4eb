"""The intent lifecycle as one pure table (in the spirit of h11's ``_state.py``).

Every state change of an intent is an *event*. ``EVENT_TRANSITIONS`` says, for each event
type, from which statuses it may be applied and which status results (``None`` = the status
stays as it is). Nothing else in the code base decides whether a transition is legal.
"""

from __future__ import annotations

CREATED = "CREATED"
SUBMITTED = "SUBMITTED"
DELIVERED = "DELIVERED"
ACKNOWLEDGED = "ACKNOWLEDGED"
IN_PROGRESS = "IN_PROGRESS"
WAITING = "WAITING"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
CANCELED = "CANCELED"
TIMED_OUT = "TIMED_OUT"

STATUSES: tuple[str, ...] = (
    CREATED,
    SUBMITTED,
    DELIVERED,
    ACKNOWLEDGED,
    IN_PROGRESS,
    WAITING,
    COMPLETED,
    FAILED,
    CANCELED,
    TIMED_OUT,
)
TERMINAL: frozenset[str] = frozenset({COMPLETED, FAILED, CANCELED, TIMED_OUT})
ACTIVE: frozenset[str] = frozenset({SUBMITTED, DELIVERED, ACKNOWLEDGED, IN_PROGRESS, WAITING})
# Statuses in which the intent waits for its agent to pick it up (redelivery applies).
AWAITING_PICKUP: frozenset[str] = frozenset({SUBMITTED, DELIVERED, ACKNOWLEDGED})

WAITING_REASONS: tuple[str, ...] = (
    "WAITING_FOR_HUMAN",
    "WAITING_FOR_TOOL",
    "WAITING_FOR_AGENT",
    "WAITING_FOR_TIME",
)

_NOT_TERMINAL = frozenset(STATUSES) - TERMINAL

# event type -> (statuses it may be applied in, resulting status or None to keep it)
EVENT_TRANSITIONS: dict[str, tuple[frozenset[str], str | None]] = {
    "intent.submitted": (frozenset({CREATED}), SUBMITTED),
    # Receipt on the agent feed; a redelivery repeats it with a higher delivery_attempt.
    "intent.delivered": (frozenset({SUBMITTED, DELIVERED}), DELIVERED),
    "intent.acknowledged": (frozenset({SUBMITTED, DELIVERED}), ACKNOWLEDGED),
    "intent.in_progress": (ACTIVE, IN_PROGRESS),
    "intent.waiting": (ACTIVE, WAITING),
    # An agent may complete straight from DELIVERED: one change, one event.
    "intent.completed": (ACTIVE, COMPLETED),
    "intent.failed": (ACTIVE | {CREATED}, FAILED),
    "intent.canceled": (ACTIVE | {CREATED}, CANCELED),
    "intent.timed_out": (ACTIVE, TIMED_OUT),
    "intent.delivery_failed": (AWAITING_PICKUP, FAILED),
    # Events that record something without changing the status.
    "intent.transfer": (_NOT_TERMINAL, None),
    "intent.timeout": (_NOT_TERMINAL, None),
    "intent.reminder": (_NOT_TERMINAL, None),
    "intent.escalated": (_NOT_TERMINAL, None),
    # Its sender (or a delegate) moved its timers, or changed who may act on it (our extension).
    "intent.controls_updated": (_NOT_TERMINAL, None),
    "intent.policy_updated": (_NOT_TERMINAL, None),
    # A person must act: the intent waits (WAITING_FOR_HUMAN) with the task in the event.
    "intent.human_task_assigned": (ACTIVE, WAITING),
    # Workflow parents (our extension): a step failed; compensation of completed steps.
    "intent.step_failed": (_NOT_TERMINAL, None),
    "intent.compensating": (ACTIVE, WAITING),  # the parent now waits for a compensating agent
    "intent.compensated": (_NOT_TERMINAL, None),
    "intent.compensation_failed": (_NOT_TERMINAL, None),
}

# The event that a terminal resolve writes, by target status.
RESOLVE_EVENT: dict[str, str] = {
    COMPLETED: "intent.completed",
    FAILED: "intent.failed",
    CANCELED: "intent.canceled",
    TIMED_OUT: "intent.timed_out",
}

LEGACY_STATUS: dict[str, str] = {
    CREATED: "accepted",
    SUBMITTED: "accepted",
    DELIVERED: "running",
    ACKNOWLEDGED: "running",
    IN_PROGRESS: "running",
    WAITING: "blocked",
    COMPLETED: "done",
    FAILED: "failed",
    CANCELED: "failed",
    TIMED_OUT: "failed",
}


class InvalidTransition(Exception):
    def __init__(self, status: str, event_type: str) -> None:
        super().__init__(f"cannot apply {event_type} to an intent in status {status}")
        self.status = status
        self.event_type = event_type


def next_status(status: str, event_type: str) -> str:
    """The status after applying ``event_type`` in ``status``; raises InvalidTransition."""
    try:
        allowed, target = EVENT_TRANSITIONS[event_type]
    except KeyError:
        raise InvalidTransition(status, event_type) from None
    if status not in allowed:
        raise InvalidTransition(status, event_type)
    return status if target is None else target


def can_apply(status: str, event_type: str) -> bool:
    entry = EVENT_TRANSITIONS.get(event_type)
    return entry is not None and status in entry[0]


def is_terminal(status: str) -> bool:
    return status in TERMINAL

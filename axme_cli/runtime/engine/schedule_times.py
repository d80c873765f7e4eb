"""What a schedule does when an occurrence comes due: pure decisions, no database (``engine/schedules.py`` applies
them in the transaction that fires the schedule).

- On time or missed: an occurrence fired within ``LATE_GRACE_SECONDS`` of its time, and before the next one is
  due, is on time. Later than that (the runtime was down, or paused by a full disk) it was missed, and the
  schedule's ``missed_run_policy`` says what happens: ``skip`` (the default) runs nothing for the occurrences that
  passed; ``catch_up_one`` runs once now for all of them. Either way the next occurrence is the first after now,
  so a runtime that comes back after a week starts no burst of runs.
- Overlap: with ``overlap_policy`` ``skip`` (the default) an occurrence whose previous run (the schedule's last
  intent) has not ended is skipped; ``allow`` starts it anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

from axme_cli.protocol import lifecycle as lc
from axme_cli.protocol.schedules import next_after

LATE_GRACE_SECONDS = 60.0

RUN = "run"
SKIPPED_OVERLAP = "skipped_overlap"
SKIPPED_MISSED = "skipped_missed"


@dataclass(frozen=True)
class Decision:
    outcome: str  # RUN, SKIPPED_OVERLAP or SKIPPED_MISSED
    next_fire: float | None  # the occurrence to wait for next (None: the expression matches nothing more)
    late: bool = False  # the occurrence was missed (fired after its grace)
    catch_up: bool = False  # a run for missed occurrences (catch_up_one)


def is_late(cron: str, timezone: str, due: float, now: float) -> bool:
    """Whether the occurrence due at ``due`` was missed: ``now`` is past its grace, or past the next occurrence."""
    if now - due > LATE_GRACE_SECONDS:
        return True
    following = next_after(cron, timezone, due)
    return following is not None and following <= now


def overlaps(previous_status: str | None) -> bool:
    """Whether the previous run is still going (``previous_status``: its intent's status, None: no run yet or
    its intent is gone)."""
    return previous_status is not None and previous_status not in lc.TERMINAL


def decide(*, cron: str, timezone: str, due: float, now: float, missed_run_policy: str, overlap_policy: str,
           previous_status: str | None) -> Decision:
    """The occurrence due at ``due``, fired at ``now``: run it or skip it, and when to look next."""
    late = is_late(cron, timezone, due, now)
    # On time, the next occurrence is after now (else this one was late): counted from the occurrence, not from now.
    next_fire = next_after(cron, timezone, now if late else due)
    if late and missed_run_policy != "catch_up_one":
        return Decision(SKIPPED_MISSED, next_fire, late=True)
    if overlap_policy == "skip" and overlaps(previous_status):
        return Decision(SKIPPED_OVERLAP, next_fire, late=late)
    return Decision(RUN, next_fire, late=late, catch_up=late)


def decide_trigger(overlap_policy: str, previous_status: str | None) -> str:
    """A run asked for now (``trigger``): RUN, or SKIPPED_OVERLAP when the previous run goes on and the policy
    says skip. Triggering never moves the schedule's next occurrence."""
    if overlap_policy == "skip" and overlaps(previous_status):
        return SKIPPED_OVERLAP
    return RUN

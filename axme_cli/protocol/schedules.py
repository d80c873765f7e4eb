"""Schedules on the wire: the create request, and what a cron expression and a time zone may be.

A schedule starts a run (a ScenarioBundle applied, or an intent sent) at each occurrence of a five-field cron
expression in an IANA time zone. The expression is read by cronsim (Debian cron's dialect: ``L``, ``W``, ``#``
and month and day names; the day-of-month and day-of-week fields match when either does unless one is ``*``), so
a time that does not exist on a spring-forward day (02:30) runs at the first minute that does (03:00), once, and
one that happens twice on a fall-back day runs at its first occurrence only; an expression with a ``*`` hour
(``*/15 * * * *``) runs at every real quarter hour. The CLI checks the same rules offline with ``cron_problem``.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StrictBool, StringConstraints

MISSED_RUN_POLICIES = ("skip", "catch_up_one")
OVERLAP_POLICIES = ("skip", "allow")
MAX_CRON = 200
MAX_TIMEZONE = 64
DEFAULT_TIMEZONE = "UTC"

# The usual cron shorthands, written out.
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
FIELDS = "minute (0-59) hour (0-23) day-of-month (1-31) month (1-12 or JAN-DEC) day-of-week (0-7 or SUN-SAT)"
CRON_FIX = (f'write five fields: {FIELDS}, e.g. "0 2 * * *" for 02:00 every day, "*/15 * * * *" for every '
            'quarter hour, or @hourly, @daily, @weekly, @monthly')
_CRONSIM_FIELDS = {"minute": "minute (0-59)", "hour": "hour (0-23)", "day-of-month": "day-of-month (1-31)",
                   "month": "month (1-12 or JAN-DEC)", "day-of-week": "day-of-week (0-7 or SUN-SAT)"}


class ScheduleProblem(ValueError):
    """A cron expression or time zone the runtime refuses: which field, what is wrong with the value, the fix."""

    def __init__(self, field: str, value: str, what: str, fix: str) -> None:
        self.field = field
        self.value = value if len(value) <= 60 else value[:60] + "..."
        self.what = what
        self.fix = fix
        super().__init__(f"{field} {self.value!r}: {what}")


def expanded(cron: str) -> str:
    """The five fields of ``cron`` (a shorthand such as @daily written out), whitespace normalised."""
    text = " ".join(cron.split())
    return MACROS.get(text.lower(), text)


def cron_problem(cron: str) -> ScheduleProblem | None:
    """Why ``cron`` is not a five-field cron expression the runtime runs (None: it is one)."""
    from cronsim import CronSim

    def refused(what: str) -> ScheduleProblem:
        return ScheduleProblem("cron", cron, what, CRON_FIX)

    if not cron.strip():
        return refused("is empty")
    if len(cron) > MAX_CRON:
        return refused(f"is longer than {MAX_CRON} characters")
    text = expanded(cron)
    if not text.isascii() or not text.isprintable():
        return refused("holds characters a cron expression has not")
    if text.startswith("@"):
        return refused("is not a shorthand the runtime knows")
    fields = text.split()
    if len(fields) != 5:
        return refused(f"has {len(fields)} fields, not 5")
    try:
        CronSim(text, datetime(2000, 1, 1))
    except Exception as exc:  # noqa: BLE001 - cronsim's own CronSimError, or anything odd input provokes
        which = _CRONSIM_FIELDS.get(str(exc).removeprefix("Bad ").strip())
        return refused(f"its {which} field is not valid" if which else "is not a valid cron expression")
    return None


@functools.cache
def _zones() -> frozenset[str]:
    import zoneinfo

    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


def timezone_problem(name: str) -> ScheduleProblem | None:
    """Why ``name`` is not an IANA time zone of this machine (None: it is one). Only names from the list of
    available zones are taken, so a caller's text never becomes a path to a file."""
    if name in _zones():
        return None
    return ScheduleProblem("timezone", name, "is empty" if not name else "is not an IANA time zone known here",
                           'name an IANA time zone, e.g. "UTC", "Europe/Berlin" or "America/New_York"')


def zone(name: str) -> Any:
    """The ``ZoneInfo`` of a name ``timezone_problem`` accepted."""
    import zoneinfo

    return zoneinfo.ZoneInfo(name)


def next_after(cron: str, timezone: str, after: float) -> float | None:
    """The first occurrence of ``cron`` in ``timezone`` strictly after ``after`` (epoch seconds); None when
    nothing matches within the next 50 years (cronsim's horizon). Both were checked (``cron_problem``,
    ``timezone_problem``)."""
    from cronsim import CronSim

    it = CronSim(expanded(cron), datetime.fromtimestamp(after, zone(timezone)))
    try:
        for _ in range(10):
            ts = next(it).timestamp()
            # On a fall-back day the wall-clock iteration of a fixed-time expression can name a time whose first
            # occurrence has already passed: only a later one counts.
            if ts > after:
                return ts
    except StopIteration:
        return None
    return None


Cron = Annotated[str, StringConstraints(min_length=1, max_length=MAX_CRON)]
TimeZone = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TIMEZONE)]


class ScheduleCreateRequest(BaseModel):
    """``POST /v1/schedules``: when (``cron`` in ``timezone``) and what: a ScenarioBundle (``scenario``, applied as
    ``POST /v1/scenarios/apply`` would) or an intent (``intent``, sent as ``POST /v1/intents`` would; each run gets
    a new ``correlation_id`` unless it names one). ``payload`` is merged over the run's intent payload, key by
    key. The cron expression, the time zone and what runs are checked by the route, which names the field."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    cron: Cron
    timezone: TimeZone = DEFAULT_TIMEZONE
    scenario: dict[str, Any] | None = None
    intent: dict[str, Any] | None = None
    payload: dict[str, Any] | None = None
    missed_run_policy: Literal[MISSED_RUN_POLICIES] = "skip"  # type: ignore[valid-type]
    overlap_policy: Literal[OVERLAP_POLICIES] = "skip"  # type: ignore[valid-type]
    paused: StrictBool = False
    description: Annotated[str, StringConstraints(max_length=1000)] | None = None


class ScheduleTriggerRequest(BaseModel):
    """``POST /v1/schedules/{id}/trigger``: run now; ``overlap_policy`` overrides the schedule's for this run."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    overlap_policy: Literal[OVERLAP_POLICIES] | None = None  # type: ignore[valid-type]

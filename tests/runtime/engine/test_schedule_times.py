"""When a schedule fires and what it does then, without a database: the cron and time-zone rules
(protocol/schedules.py: what is refused, the next occurrence, DST) and the decisions on a due occurrence
(engine/schedule_times.py: on time or missed, the missed-run and overlap policies)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from axme_cli.protocol.schedules import cron_problem, next_after, timezone_problem
from axme_cli.runtime.engine import schedule_times as times


def ts(text: str, zone: str = "UTC") -> float:
    """Epoch seconds of a wall-clock time in ``zone`` (fold 0: the first of a repeated hour)."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def local(value: float, zone: str) -> str:
    return datetime.fromtimestamp(value, ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


def occurrences(cron: str, zone: str, start: str, n: int) -> list[str]:
    after, out = ts(start, zone), []
    for _ in range(n):
        nxt = next_after(cron, zone, after)
        assert nxt is not None and nxt > after
        out.append(local(nxt, zone))
        after = nxt
    return out


NY, BERLIN = "America/New_York", "Europe/Berlin"

OCCURRENCES = [
    # (cron, zone, after, the next occurrences)
    ("0 2 * * *", "UTC", "2026-03-01 12:00", ["2026-03-02 02:00 UTC", "2026-03-03 02:00 UTC"]),
    ("0 2 * * *", "UTC", "2026-03-02 02:00", ["2026-03-03 02:00 UTC"]),  # strictly after
    ("@daily", "UTC", "2026-03-01 12:00", ["2026-03-02 00:00 UTC"]),
    ("@hourly", "UTC", "2026-03-01 12:30", ["2026-03-01 13:00 UTC", "2026-03-01 14:00 UTC"]),
    ("*/20 9-10 * * MON-FRI", "UTC", "2026-03-06 10:30", ["2026-03-06 10:40 UTC", "2026-03-09 09:00 UTC"]),
    ("0 0 L * *", "UTC", "2026-02-01 00:00", ["2026-02-28 00:00 UTC", "2026-03-31 00:00 UTC"]),
    ("0 0 29 2 *", "UTC", "2026-01-01 00:00", ["2028-02-29 00:00 UTC"]),
    ("0 9 * * 5#2", "UTC", "2026-03-01 00:00", ["2026-03-13 09:00 UTC", "2026-04-10 09:00 UTC"]),
    # local time, winter and summer: Berlin's 02:00 does not exist on 2026-03-29 and runs at 03:00
    ("0 2 * * *", BERLIN, "2026-03-27 12:00", ["2026-03-28 02:00 CET", "2026-03-29 03:00 CEST",
                                               "2026-03-30 02:00 CEST"]),
    # spring forward in New York (2026-03-08, 02:00 -> 03:00): 02:30 does not exist that day and runs at 03:00, once
    ("30 2 * * *", NY, "2026-03-07 12:00", ["2026-03-08 03:00 EDT", "2026-03-09 02:30 EDT"]),
    # fall back (2026-11-01, 02:00 -> 01:00): 01:30 happens twice and runs at the first only
    ("30 1 * * *", NY, "2026-10-31 12:00", ["2026-11-01 01:30 EDT", "2026-11-02 01:30 EST"]),
    # a * hour runs at every real quarter hour across the change: none skipped, none doubled
    ("*/30 * * * *", NY, "2026-03-08 01:00", ["2026-03-08 01:30 EST", "2026-03-08 03:00 EDT", "2026-03-08 03:30 EDT"]),
]


@pytest.mark.parametrize(("cron", "zone", "after", "expected"), OCCURRENCES)
def test_next_occurrences(cron: str, zone: str, after: str, expected: list[str]) -> None:
    assert occurrences(cron, zone, after, len(expected)) == expected


def test_from_inside_a_repeated_hour_the_passed_occurrence_does_not_come_back() -> None:
    second_0110 = datetime(2026, 11, 1, 6, 10, tzinfo=ZoneInfo("UTC")).timestamp()  # 01:10 EST, after 01:30 EDT
    assert local(second_0110, NY) == "2026-11-01 01:10 EST"
    nxt = next_after("30 1 * * *", NY, second_0110)
    assert nxt is not None and local(nxt, NY) == "2026-11-02 01:30 EST"


REFUSED = [
    # (cron, what the refusal says is wrong)
    ("", "is empty"),
    ("   ", "is empty"),
    ("* * * *", "has 4 fields, not 5"),
    ("0 0 * * * *", "has 6 fields, not 5"),  # seconds: not the five-field dialect
    ("61 * * * *", "its minute (0-59) field is not valid"),
    ("0 24 * * *", "its hour (0-23) field is not valid"),
    ("0 0 0 * *", "its day-of-month (1-31) field is not valid"),
    ("0 0 30 2 *", "its day-of-month (1-31) field is not valid"),  # never: no 30 February
    ("0 0 * 13 *", "its month (1-12 or JAN-DEC) field is not valid"),
    ("0 0 * * 8", "its day-of-week (0-7 or SUN-SAT) field is not valid"),
    ("*/0 * * * *", "its minute (0-59) field is not valid"),
    ("5-1 * * * *", "its minute (0-59) field is not valid"),
    ("a b c d e", "its minute (0-59) field is not valid"),
    ("@often", "is not a shorthand the runtime knows"),
    ("٣ * * * *", "holds characters a cron expression has not"),
    ("0 2 * * *\x00", "holds characters a cron expression has not"),
    ("1," * 150 + "1 * * * *", "is longer than 200 characters"),
]


@pytest.mark.parametrize(("cron", "what"), REFUSED)
def test_refused_cron_expressions_say_what_and_how_to_fix_it(cron: str, what: str) -> None:
    problem = cron_problem(cron)
    assert problem is not None and problem.field == "cron" and problem.what == what
    assert "five fields" in problem.fix and '"0 2 * * *"' in problem.fix


@pytest.mark.parametrize("cron", ["0 2 * * *", "*/15 * * * *", "0 9 * * MON-FRI", "0 0 1 jan *", "@weekly",
                                  "@YEARLY", "0\t2 * *  *", "0 0 LW * *", "0,30 8-18/2 * * 1-5", "0 0 * * 7"])
def test_accepted_cron_expressions(cron: str) -> None:
    assert cron_problem(cron) is None
    assert next_after(cron, "UTC", ts("2026-01-01 00:00")) is not None


@pytest.mark.parametrize(("zone", "ok"), [("UTC", True), ("Europe/Berlin", True), ("America/New_York", True),
                                          ("", False), ("Mars/Olympus", False), ("../../etc/passwd", False),
                                          ("/etc/localtime", False), ("europe/berlin", False), ("UTC\x00", False)])
def test_time_zones_are_names_from_the_list(zone: str, ok: bool) -> None:
    problem = timezone_problem(zone)
    assert (problem is None) is ok
    if problem is not None:
        assert problem.field == "timezone" and "IANA" in problem.fix


# ---------------------------------------------------------------------------------------------
# a due occurrence: on time or missed, run or skip

DAILY = "0 2 * * *"
DUE = ts("2026-03-02 02:00")
NEXT = ts("2026-03-03 02:00")
AFTER_A_WEEK = ts("2026-03-09 12:00")
NEXT_AFTER_A_WEEK = ts("2026-03-10 02:00")

DECISIONS = [
    # (now, missed_run_policy, overlap_policy, previous run's status, outcome, next fire, catch-up run)
    (DUE + 0.2, "skip", "skip", None, times.RUN, NEXT, False),
    (DUE + 59, "skip", "skip", "COMPLETED", times.RUN, NEXT, False),  # within the grace: on time
    (DUE + 0.2, "skip", "skip", "IN_PROGRESS", times.SKIPPED_OVERLAP, NEXT, False),
    (DUE + 0.2, "skip", "skip", "WAITING", times.SKIPPED_OVERLAP, NEXT, False),
    (DUE + 0.2, "skip", "allow", "IN_PROGRESS", times.RUN, NEXT, False),
    (DUE + 0.2, "catch_up_one", "skip", "FAILED", times.RUN, NEXT, False),
    (DUE + 61, "skip", "skip", None, times.SKIPPED_MISSED, NEXT, False),  # past the grace: missed
    (AFTER_A_WEEK, "skip", "skip", None, times.SKIPPED_MISSED, NEXT_AFTER_A_WEEK, False),
    (AFTER_A_WEEK, "catch_up_one", "skip", None, times.RUN, NEXT_AFTER_A_WEEK, True),  # one run for the week
    (AFTER_A_WEEK, "catch_up_one", "skip", "CANCELED", times.RUN, NEXT_AFTER_A_WEEK, True),
    (AFTER_A_WEEK, "catch_up_one", "skip", "SUBMITTED", times.SKIPPED_OVERLAP, NEXT_AFTER_A_WEEK, False),
    (AFTER_A_WEEK, "catch_up_one", "allow", "SUBMITTED", times.RUN, NEXT_AFTER_A_WEEK, True),
]


@pytest.mark.parametrize(("now", "missed", "overlap", "previous", "outcome", "next_fire", "catch_up"), DECISIONS)
def test_decide(now: float, missed: str, overlap: str, previous: str | None, outcome: str, next_fire: float,
                catch_up: bool) -> None:
    d = times.decide(cron=DAILY, timezone="UTC", due=DUE, now=now, missed_run_policy=missed, overlap_policy=overlap,
                     previous_status=previous)
    assert (d.outcome, d.next_fire, d.catch_up) == (outcome, next_fire, catch_up)
    assert d.next_fire is not None and d.next_fire > now  # never a burst: the next one is always ahead


def test_an_every_minute_schedule_late_past_its_next_occurrence_missed_it() -> None:
    due = ts("2026-03-02 02:00")
    assert not times.is_late("* * * * *", "UTC", due, due + 59.5)
    assert times.is_late("* * * * *", "UTC", due, due + 60)  # the next occurrence is due too
    d = times.decide(cron="* * * * *", timezone="UTC", due=due, now=due + 90, missed_run_policy="skip",
                     overlap_policy="allow", previous_status=None)
    assert (d.outcome, d.next_fire) == (times.SKIPPED_MISSED, due + 120)


@pytest.mark.parametrize(("policy", "previous", "outcome"), [
    ("skip", None, times.RUN), ("skip", "COMPLETED", times.RUN), ("skip", "TIMED_OUT", times.RUN),
    ("skip", "DELIVERED", times.SKIPPED_OVERLAP), ("allow", "DELIVERED", times.RUN),
])
def test_decide_trigger(policy: str, previous: str | None, outcome: str) -> None:
    assert times.decide_trigger(policy, previous) == outcome

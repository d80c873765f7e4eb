"""tests/schedule.py: how the suite's slow tests are dealt over the workers of ``pytest -n --dist worksteal``."""

from __future__ import annotations

from tests.schedule import deal, first_runs

SLOW = {"a": 35.0, "b": 19.0, "c": 12.0, "d": 12.0, "e": 11.0, "f": 4.0}


def test_first_runs_are_worksteals_first_split() -> None:
    assert first_runs(10, 4) == [2, 2, 3, 3]
    assert first_runs(2714, 4) == [678, 678, 679, 679]
    assert sum(first_runs(7, 3)) == 7


def test_each_run_starts_with_its_share_of_the_slow_tests_longest_first() -> None:
    items = ["s1", "a", "s2", "b", "s3", "c", "s4", "d", "e", "s5", "f", "s6"]
    order = deal(items, 3, SLOW.get)
    assert sorted(order) == sorted(items)
    runs = [order[0:4], order[4:8], order[8:12]]  # first_runs(12, 3)
    seconds = [sum(SLOW.get(t, 0.0) for t in run) for run in runs]
    assert runs[0][0] == "a" and runs[1][0] == "b" and runs[2][0] == "c"
    assert max(seconds) == 35.0 and min(seconds) >= 27.0  # b+d or c+e+f: nothing piled on the first run
    short = [t for t in order if t not in SLOW]
    assert short == ["s1", "s2", "s3", "s4", "s5", "s6"]  # in collection order, runs of neighbours


def test_one_worker_or_no_slow_test_keeps_slow_first_then_collection_order() -> None:
    items = ["s1", "a", "s2", "f"]
    assert deal(items, 1, SLOW.get) == ["a", "f", "s1", "s2"]
    assert deal(["x", "y"], 4, SLOW.get) == ["x", "y"]

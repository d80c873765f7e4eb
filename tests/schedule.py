"""The order the suite's tests are handed out in, so that the workers of ``pytest -n N --dist worksteal`` end
together.

worksteal first splits the collection into N contiguous runs, one per worker, and a worker that runs out later
takes the second half of the longest queue left. With the slow tests (marked ``slow``: seconds each, real
processes, kills, waits) simply first, they all land in the first worker's run, which then works through them one
after another (~110 s of them on 2 cores) while the others steal its short tests; the slow tests that did not
fit were left to the end, where one of them alone kept the run going. Here each worker's run starts with a share of
the slow tests, dealt longest first to the run with the least so far (a slow test's ``seconds``, as measured under a
full run's load, else ``DEFAULT_SECONDS``), and is filled up with the short tests in their collection order, so a
worker's short tests stay grouped by the backend runtime they share. Stealing takes from a run's end: the slow tests
stay where they were dealt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

DEFAULT_SECONDS = 4.0


def first_runs(count: int, workers: int) -> list[int]:
    """The sizes of the runs worksteal's first schedule hands the workers (xdist/scheduler/worksteal.py,
    check_schedule: each idle worker in turn gets ``len(pending) // workers_left``)."""
    sizes = []
    left = count
    for i in range(workers):
        size = left // (workers - i)
        sizes.append(size)
        left -= size
    return sizes


def deal(items: Sequence[T], workers: int, seconds: Callable[[T], float | None]) -> list[T]:
    """``items`` reordered for ``workers`` worksteal workers; ``seconds(item)`` is None for a short test."""
    slow = [(i, s) for i, item in enumerate(items) if (s := seconds(item)) is not None]
    slow_index = {i for i, _ in slow}
    short = [i for i in range(len(items)) if i not in slow_index]
    if workers < 2 or not slow:
        return [items[i] for i in [i for i, _ in slow] + short]
    sizes = first_runs(len(items), workers)
    runs: list[list[int]] = [[] for _ in range(workers)]
    load = [0.0] * workers
    for i, s in sorted(slow, key=lambda pair: (-pair[1], pair[0])):
        # the least loaded run that still has room (a run holds sizes[w] tests)
        w = min((w for w in range(workers) if len(runs[w]) < sizes[w]), key=lambda w: (load[w], w))
        runs[w].append(i)
        load[w] += s
    rest = iter(short)
    order: list[T] = []
    for w in range(workers):
        order.extend(items[i] for i in runs[w])
        order.extend(items[next(rest)] for _ in range(sizes[w] - len(runs[w])))
    assert len(order) == len(items)
    return order

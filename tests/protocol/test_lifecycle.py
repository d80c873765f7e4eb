"""The lifecycle table, without a server or a database."""

from __future__ import annotations

import pytest

from axme_cli.protocol import lifecycle as lc
from axme_cli.protocol.ids import uuid7


def test_every_terminal_status_is_final() -> None:
    for status in lc.TERMINAL:
        for event_type in lc.EVENT_TRANSITIONS:
            assert not lc.can_apply(status, event_type), (status, event_type)
            with pytest.raises(lc.InvalidTransition):
                lc.next_status(status, event_type)


def test_happy_path_and_redelivery() -> None:
    status = lc.CREATED
    for event_type, expected in [
        ("intent.submitted", lc.SUBMITTED),
        ("intent.delivered", lc.DELIVERED),
        ("intent.delivered", lc.DELIVERED),  # a redelivery
        ("intent.in_progress", lc.IN_PROGRESS),
        ("intent.reminder", lc.IN_PROGRESS),  # records without changing status
        ("intent.completed", lc.COMPLETED),
    ]:
        status = lc.next_status(status, event_type)
        assert status == expected


def test_delivery_failed_only_before_pickup() -> None:
    assert lc.next_status(lc.DELIVERED, "intent.delivery_failed") == lc.FAILED
    assert not lc.can_apply(lc.IN_PROGRESS, "intent.delivery_failed")
    assert not lc.can_apply(lc.CREATED, "intent.completed")
    with pytest.raises(lc.InvalidTransition):
        lc.next_status(lc.SUBMITTED, "intent.unknown")


def test_every_status_has_a_legacy_projection_and_events_target_known_statuses() -> None:
    assert set(lc.LEGACY_STATUS) == set(lc.STATUSES)
    for allowed, target in lc.EVENT_TRANSITIONS.values():
        assert allowed <= set(lc.STATUSES)
        assert target is None or target in lc.STATUSES


def test_uuid7_is_time_ordered_and_unique() -> None:
    ids = [uuid7() for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(i[14] == "7" for i in ids)


def test_random_bytes_never_repeat_across_a_block_or_a_fork() -> None:
    """ids.random_bytes serves os.urandom from a block drawn ahead: the bytes of one block are handed out once,
    a request past the block's end draws a new one, and a forked child draws its own (not the parent's rest)."""
    import os

    from axme_cli.protocol import ids

    taken = [ids.random_bytes(8) for _ in range(3 * ids._BLOCK // 8 + 5)]  # across several blocks
    assert all(len(b) == 8 for b in taken)
    assert len(set(taken)) == len(taken)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next bytes, to the parent, and out
        os.write(write, ids.random_bytes(16))
        os._exit(0)
    os.close(write)
    mine = ids.random_bytes(16)
    os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as pipe:
        theirs = pipe.read()
    assert len(theirs) == 16 and theirs != mine

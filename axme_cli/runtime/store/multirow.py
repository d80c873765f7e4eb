"""Multi-row INSERTs: many rows in one statement (one round trip on PostgreSQL, one step of SQLite's VM), the text
made once per row count."""

from __future__ import annotations

import functools
from typing import Any


@functools.lru_cache(maxsize=512)
def values_sql(head: str, width: int, rows: int, tail: str = "") -> str:
    """``head`` (``INSERT INTO t (c1, ...) VALUES``), ``rows`` rows of ``width`` placeholders, then ``tail`` (an
    ``ON CONFLICT`` clause, say)."""
    row = "(" + ", ".join(["?"] * width) + ")"
    return head + " " + ", ".join([row] * rows) + tail


def insert_rows(conn: Any, head: str, width: int, values: list[Any] | tuple[Any, ...], per: int,
                tail: str = "") -> None:
    """Insert ``values`` (flat, ``width`` a row) ``per`` rows a statement."""
    step = width * per
    for start in range(0, len(values), step):
        chunk = values[start:start + step]
        conn.execute(values_sql(head, width, len(chunk) // width, tail), chunk)

"""The condition on a nullable workspace pair (``schedules``, ``audit_events``, the intent families: NULL is the
runtime's default workspace, as in ``api_keys``). Portable SQL only, like ``sql.py``."""

from __future__ import annotations

from typing import Any


def pair_clause(org_id: str | None, workspace_id: str | None, prefix: str = "") -> tuple[str, list[Any]]:
    """``org_id``/``workspace_id`` equal to the pair given; ``IS NULL`` for the default pair (``=`` never matches
    NULL, and ``IS`` with a parameter is not portable). ``prefix``: a table alias with its dot, in a join."""
    if org_id is None or workspace_id is None:
        return f"{prefix}org_id IS NULL AND {prefix}workspace_id IS NULL", []
    return f"{prefix}org_id = ? AND {prefix}workspace_id = ?", [org_id, workspace_id]

"""The WHERE terms that keep rows of the intent families (intents, webhook subscriptions, events and outbound
deliveries) of one workspace: their ``org_id`` / ``workspace_id`` are NULL for the runtime's default one."""

from __future__ import annotations

from typing import Any

from axme_cli.runtime.store.base import Pair


def of_workspace(workspace: Pair, prefix: str = "") -> tuple[list[str], list[Any]]:
    """``(terms, args)`` for ``workspace`` (``scope.pair``: ``(None, None)`` for the default one); ``prefix``: a
    table alias with its dot."""
    org_id, workspace_id = workspace
    if workspace_id is None:
        return [f"{prefix}workspace_id IS NULL"], []
    return [f"{prefix}workspace_id = ?", f"{prefix}org_id = ?"], [workspace_id, org_id]

"""Dashboard sessions: opened after a login with an API key or an email code, closed at logout."""

from __future__ import annotations

from axme_cli.runtime.store.base import Row, Tx

PRUNE_AFTER_SECONDS = 24 * 3600.0


def op_open_ui_session(tx: Tx, row: Row, now: float) -> None:
    """Store a new session (its token only as a hash); forget sessions that ended a day ago."""
    tx.prune_ui_sessions(now - PRUNE_AFTER_SECONDS)
    tx.insert_ui_session(row)


def op_close_ui_session(tx: Tx, session_id: str, now: float) -> bool:
    return tx.revoke_ui_session(session_id, now)

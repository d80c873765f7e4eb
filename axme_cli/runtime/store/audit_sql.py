"""SQL of the audit log (``audit_events``). Portable SQL only, like ``sql.py``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from axme_cli.runtime.store.base import Row
from axme_cli.runtime.store.scope_sql import pair_clause

T = TypeVar("T")


class AuditTxSql:
    """Write half: an operation records its audit event in its own transaction."""

    if TYPE_CHECKING:

        def _insert(self, table: str, row: Row) -> None: ...

    def insert_audit_event(self, row: Row) -> None:
        self._insert("audit_events", row)


class AuditReadSql:
    """Read half."""

    if TYPE_CHECKING:

        async def _read(self, fn: Callable[[Any], T]) -> T: ...

    async def list_audit_events(self, org_id: str | None = None, workspace_id: str | None = None, *, about: str | None,
                                owner_agent: str | None, action_prefix: str | None, before: str | None,
                                limit: int) -> list[Row]:
        """The events of one workspace (``scope_sql.pair_clause``), newest first. ``about``: only events whose
        actor or subject (owner_agent) it is; ``action_prefix`` compared as a plain prefix (no LIKE, so ``%`` and
        ``_`` mean themselves)."""
        scope, args = pair_clause(org_id, workspace_id)
        where: list[str] = [scope]
        if about is not None:
            where.append("(owner_agent = ? OR actor = ?)")
            args += [about, about]
        if owner_agent is not None:
            where.append("owner_agent = ?")
            args.append(owner_agent)
        if action_prefix:
            where.append("substr(action, 1, ?) = ?")
            args += [len(action_prefix), action_prefix]
        if before is not None:
            where.append("event_id < ?")
            args.append(before)
        sql = "SELECT * FROM audit_events WHERE " + " AND ".join(where)
        sql += " ORDER BY event_id DESC LIMIT ?"
        args.append(limit)
        return await self._read(lambda c: [dict(r) for r in c.execute(sql, args).fetchall()])

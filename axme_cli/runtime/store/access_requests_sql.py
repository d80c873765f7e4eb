"""SQL of access requests and the grants approved ones made (``access_requests``, ``access_grants``, migration
0019). Portable SQL only, like ``sql.py``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from axme_cli.runtime.store.base import Row

T = TypeVar("T")


class AccessRequestsTxSql:
    """Write half, mixed into the store's ``Tx``."""

    _c: Any
    LOCK: str

    if TYPE_CHECKING:

        def _insert(self, table: str, row: Row) -> None: ...

        def _update(self, table: str, id_column: str, id_value: str, fields: Row) -> None: ...

    def insert_access_request(self, row: Row) -> None:
        self._insert("access_requests", row)

    def get_access_request(self, org: str, workspace: str, access_request_id: str) -> Row | None:
        row = self._c.execute("SELECT * FROM access_requests WHERE access_request_id = ? AND org_id = ? "
                              "AND workspace_id = ?" + self.LOCK, (access_request_id, org, workspace)).fetchone()
        return dict(row) if row is not None else None

    def update_access_request(self, access_request_id: str, fields: Row) -> None:
        self._update("access_requests", "access_request_id", access_request_id, fields)

    def insert_access_grant(self, row: Row) -> None:
        self._insert("access_grants", row)


class AccessRequestsReadSql:
    """Read half, mixed into the store."""

    if TYPE_CHECKING:

        async def _read(self, fn: Callable[[Any], T]) -> T: ...

    async def list_access_requests(self, org: str, workspace: str, *, created_by: str | None,
                                   limit: int) -> list[Row]:
        """Newest first; ``created_by``: only those this credential's address filed."""
        sql, args = "SELECT * FROM access_requests WHERE org_id = ? AND workspace_id = ?", list[Any]([org, workspace])
        if created_by is not None:
            sql += " AND created_by = ?"
            args.append(created_by)
        sql += " ORDER BY access_request_id DESC LIMIT ?"
        args.append(limit)
        return await self._read(lambda c: [dict(r) for r in c.execute(sql, args).fetchall()])

    async def get_access_request(self, org: str, workspace: str, access_request_id: str) -> Row | None:
        def one(c: Any) -> Row | None:
            row = c.execute("SELECT * FROM access_requests WHERE access_request_id = ? AND org_id = ? "
                            "AND workspace_id = ?", (access_request_id, org, workspace)).fetchone()
            return dict(row) if row is not None else None

        return await self._read(one)

    async def access_grants_anywhere(self, grant_type: str, subject: str) -> list[Row]:
        """The grants of ``grant_type`` to ``subject`` still in force, of every workspace, oldest first."""
        sql = ("SELECT * FROM access_grants WHERE subject = ? AND grant_type = ? AND revoked_at IS NULL "
               "ORDER BY grant_id")
        return await self._read(lambda c: [dict(r) for r in c.execute(sql, (subject, grant_type)).fetchall()])

    async def access_grants(self, org: str, workspace: str, grant_type: str, subject: str | None = None) -> list[Row]:
        """The grants of ``grant_type`` still in force (of ``subject`` only, if given), oldest first."""
        sql = ("SELECT * FROM access_grants WHERE org_id = ? AND workspace_id = ? AND grant_type = ? "
               "AND revoked_at IS NULL")
        args: list[Any] = [org, workspace, grant_type]
        if subject is not None:
            sql += " AND subject = ?"
            args.append(subject)
        sql += " ORDER BY grant_id"
        return await self._read(lambda c: [dict(r) for r in c.execute(sql, args).fetchall()])

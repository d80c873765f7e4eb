"""SQL of principals and aliases (``principals``, ``aliases``, migration 0019). Portable SQL only, like ``sql.py``.
Every query names the org and workspace it reads."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from axme_cli.runtime.store.base import Row

T = TypeVar("T")


def _one(c: Any, sql: str, args: tuple[Any, ...]) -> Row | None:
    row = c.execute(sql, args).fetchone()
    return dict(row) if row is not None else None


class PrincipalsTxSql:
    """Write half, mixed into the store's ``Tx``."""

    _c: Any
    LOCK: str

    if TYPE_CHECKING:

        def _insert(self, table: str, row: Row) -> None: ...

        def _update(self, table: str, id_column: str, id_value: str, fields: Row) -> None: ...

    def insert_principal(self, row: Row) -> None:
        self._insert("principals", row)

    def get_principal(self, org: str, workspace: str, principal_id: str) -> Row | None:
        return _one(self._c, "SELECT * FROM principals WHERE principal_id = ? AND org_id = ? AND workspace_id = ?",
                    (principal_id, org, workspace))

    def principal_by_address(self, org: str, workspace: str, address: str) -> Row | None:
        return _one(self._c, "SELECT * FROM principals WHERE org_id = ? AND workspace_id = ? AND address = ?",
                    (org, workspace, address))

    def insert_alias(self, row: Row) -> None:
        self._insert("aliases", row)

    def get_alias(self, org: str, workspace: str, alias_id: str) -> Row | None:
        return _one(self._c, "SELECT * FROM aliases WHERE alias_id = ? AND org_id = ? AND workspace_id = ?"
                    + self.LOCK, (alias_id, org, workspace))

    def active_alias(self, org: str, workspace: str, alias_key: str) -> Row | None:
        return _one(self._c, "SELECT * FROM aliases WHERE org_id = ? AND workspace_id = ? AND alias_key = ? "
                    "AND status = 'active'", (org, workspace, alias_key))

    def update_alias(self, alias_id: str, fields: Row) -> None:
        self._update("aliases", "alias_id", alias_id, fields)


class PrincipalsReadSql:
    """Read half, mixed into the store."""

    if TYPE_CHECKING:

        async def _read(self, fn: Callable[[Any], T]) -> T: ...

    async def get_principal(self, org: str, workspace: str, principal_id: str) -> Row | None:
        return await self._read(lambda c: _one(
            c, "SELECT * FROM principals WHERE principal_id = ? AND org_id = ? AND workspace_id = ?",
            (principal_id, org, workspace)))

    async def principal_by_address(self, org: str, workspace: str, address: str) -> Row | None:
        return await self._read(lambda c: _one(
            c, "SELECT * FROM principals WHERE org_id = ? AND workspace_id = ? AND address = ?",
            (org, workspace, address)))

    async def active_service_account_at(self, address: str) -> Row | None:
        return await self._read(lambda c: _one(
            c, "SELECT * FROM service_accounts WHERE address = ? AND status = 'active'", (address,)))

    async def get_alias(self, org: str, workspace: str, alias_id: str) -> Row | None:
        return await self._read(lambda c: _one(
            c, "SELECT * FROM aliases WHERE alias_id = ? AND org_id = ? AND workspace_id = ?",
            (alias_id, org, workspace)))

    async def active_alias(self, org: str, workspace: str, alias_key: str) -> Row | None:
        return await self._read(lambda c: _one(
            c, "SELECT * FROM aliases WHERE org_id = ? AND workspace_id = ? AND alias_key = ? AND status = 'active'",
            (org, workspace, alias_key)))

    async def active_alias_index(self, org: str, workspace: str) -> list[Row]:
        """Every active alias of the workspace: its key, id and address (the in-memory book of recipients)."""
        sql = ("SELECT alias_id, alias_key, alias, address FROM aliases WHERE org_id = ? AND workspace_id = ? "
               "AND status = 'active'")
        return await self._read(lambda c: [dict(r) for r in c.execute(sql, (org, workspace)).fetchall()])

    async def list_aliases(self, org: str, workspace: str, *, address: str | None, status: str | None,
                           limit: int) -> list[Row]:
        """Newest first."""
        sql, args = "SELECT * FROM aliases WHERE org_id = ? AND workspace_id = ?", list[Any]([org, workspace])
        if address is not None:
            sql += " AND address = ?"
            args.append(address)
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        sql += " ORDER BY alias_id DESC LIMIT ?"
        args.append(limit)
        return await self._read(lambda c: [dict(r) for r in c.execute(sql, args).fetchall()])

"""SQL of organizations, workspaces and members (``organizations``, ``workspaces``, ``org_members``, migration
0021). Portable SQL only, like ``sql.py``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from axme_cli.runtime.store.base import Notes, Row

T = TypeVar("T")


def _one(c: Any, sql: str, args: tuple[Any, ...]) -> Row | None:
    row = c.execute(sql, args).fetchone()
    return dict(row) if row is not None else None


def _all(c: Any, sql: str, args: tuple[Any, ...] | list[Any]) -> list[Row]:
    return [dict(r) for r in c.execute(sql, args).fetchall()]


_LIVE_MEMBERS = "SELECT * FROM org_members WHERE org_id = ? AND status <> 'removed'"
_ACTOR_MEMBERSHIPS = ("SELECT * FROM org_members WHERE actor_key IN ({keys}) AND org_id = ? AND status = 'active' "
                      "ORDER BY member_id")


def _memberships(c: Any, keys: tuple[str, ...], org_id: str) -> list[Row]:
    return _all(c, _ACTOR_MEMBERSHIPS.format(keys=", ".join("?" for _ in keys)), (*keys, org_id))


class OrgsTxSql:
    """Write half, mixed into the store's ``Tx``."""

    _c: Any
    LOCK: str
    notes: Notes

    if TYPE_CHECKING:

        def _insert(self, table: str, row: Row) -> None: ...

        def _update(self, table: str, id_column: str, id_value: str, fields: Row) -> None: ...

    def insert_organization(self, row: Row) -> None:
        self._insert("organizations", row)

    def get_organization(self, org_id: str) -> Row | None:
        return _one(self._c, "SELECT * FROM organizations WHERE org_id = ?" + self.LOCK, (org_id,))

    def update_organization(self, org_id: str, fields: Row) -> None:
        self._update("organizations", "org_id", org_id, fields)

    def insert_workspace(self, row: Row) -> None:
        self._insert("workspaces", row)

    def get_workspace(self, org_id: str, workspace_id: str) -> Row | None:
        return _one(self._c, "SELECT * FROM workspaces WHERE workspace_id = ? AND org_id = ?" + self.LOCK,
                    (workspace_id, org_id))

    def workspace_named(self, org_id: str, name: str) -> Row | None:
        return _one(self._c, "SELECT * FROM workspaces WHERE org_id = ? AND name = ?", (org_id, name))

    def find_workspace(self, workspace_id: str) -> Row | None:
        return _one(self._c, "SELECT * FROM workspaces WHERE workspace_id = ?", (workspace_id,))

    def update_workspace(self, workspace_id: str, fields: Row) -> None:
        self._update("workspaces", "workspace_id", workspace_id, fields)

    def insert_member(self, row: Row) -> None:
        self._insert("org_members", row)

    def get_member(self, org_id: str, member_id: str) -> Row | None:
        return _one(self._c, "SELECT * FROM org_members WHERE member_id = ? AND org_id = ?" + self.LOCK,
                    (member_id, org_id))

    def live_members(self, org_id: str) -> list[Row]:
        """The organization's members not removed, oldest first."""
        return _all(self._c, _LIVE_MEMBERS + " ORDER BY member_id", (org_id,))

    def update_member(self, member_id: str, fields: Row) -> None:
        self._update("org_members", "member_id", member_id, fields)
        self.notes.keys_changed = True  # cached principals of people acting in a workspace are checked again

    def actor_memberships(self, keys: tuple[str, ...], org_id: str) -> list[Row]:
        """The active memberships in ``org_id`` of a person known by any of ``keys`` (actor id, email)."""
        return _memberships(self._c, keys, org_id)


class OrgsReadSql:
    """Read half, mixed into the store."""

    if TYPE_CHECKING:

        async def _read(self, fn: Callable[[Any], T]) -> T: ...

    async def get_organization(self, org_id: str) -> Row | None:
        return await self._read(lambda c: _one(c, "SELECT * FROM organizations WHERE org_id = ?", (org_id,)))

    async def list_organizations(self) -> list[Row]:
        """Every organization, oldest first (the operator's view)."""
        return await self._read(lambda c: _all(c, "SELECT * FROM organizations ORDER BY created_at, org_id", ()))

    async def list_workspaces(self, org_id: str) -> list[Row]:
        """Oldest first."""
        return await self._read(lambda c: _all(
            c, "SELECT * FROM workspaces WHERE org_id = ? ORDER BY created_at, workspace_id", (org_id,)))

    async def get_workspace(self, org_id: str, workspace_id: str) -> Row | None:
        return await self._read(lambda c: _one(
            c, "SELECT * FROM workspaces WHERE workspace_id = ? AND org_id = ?", (workspace_id, org_id)))

    async def list_members(self, org_id: str, workspace_id: str | None) -> list[Row]:
        """Members not removed, oldest first; ``workspace_id``: that workspace's only."""
        sql, args = _LIVE_MEMBERS, [org_id]
        if workspace_id is not None:
            sql += " AND workspace_id = ?"
            args.append(workspace_id)
        return await self._read(lambda c: _all(c, sql + " ORDER BY member_id", args))

    async def actor_memberships(self, keys: tuple[str, ...], org_id: str) -> list[Row]:
        return await self._read(lambda c: _memberships(c, keys, org_id))

    async def actor_organizations(self, keys: tuple[str, ...]) -> list[Row]:
        """Every active membership of a person known by any of ``keys``, with its organization's name."""
        marks = ", ".join("?" for _ in keys)
        sql = (f"SELECT m.*, o.name AS org_name, o.status AS org_status FROM org_members m "
               f"JOIN organizations o ON o.org_id = m.org_id WHERE m.actor_key IN ({marks}) AND m.status = 'active' "
               "ORDER BY m.member_id")
        return await self._read(lambda c: _all(c, sql, keys))

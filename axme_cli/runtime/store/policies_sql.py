"""SQL of sender policies (``sender_policies``, ``sender_policy_entries``, migration 0016). Portable SQL only,
like ``sql.py``. Every query names the org and workspace it reads or writes."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from axme_cli.runtime.store.base import Row

T = TypeVar("T")

_ONE = "org_id = ? AND workspace_id = ? AND kind = ? AND subject = ?"
_ENTRIES = f"SELECT * FROM sender_policy_entries WHERE {_ONE} ORDER BY created_at, entry_id"


class PoliciesTxSql:
    """Write half, mixed into the store's ``Tx``."""

    _c: Any
    LOCK: str  # "" on SQLite, " FOR UPDATE" on PostgreSQL (store/sql.py)

    if TYPE_CHECKING:

        def _one(self, sql: str, args: tuple[Any, ...]) -> Row | None: ...

        def _all(self, sql: str, args: tuple[Any, ...] | list[Any]) -> list[Row]: ...

        def _insert(self, table: str, row: Row) -> None: ...

    def get_sender_policy(self, org_id: str, workspace_id: str, kind: str, subject: str) -> Row | None:
        return self._one(f"SELECT * FROM sender_policies WHERE {_ONE}" + self.LOCK,
                         (org_id, workspace_id, kind, subject))

    def insert_sender_policy(self, row: Row) -> None:
        self._insert("sender_policies", row)

    def update_sender_policy(self, org_id: str, workspace_id: str, kind: str, subject: str, fields: Row) -> None:
        cols = ", ".join(f"{k} = ?" for k in fields)
        self._c.execute(f"UPDATE sender_policies SET {cols} WHERE {_ONE}",
                        (*fields.values(), org_id, workspace_id, kind, subject))

    def sender_policy_entries(self, org_id: str, workspace_id: str, kind: str, subject: str) -> list[Row]:
        return self._all(_ENTRIES, (org_id, workspace_id, kind, subject))

    def insert_sender_policy_entry(self, row: Row) -> None:
        self._insert("sender_policy_entries", row)

    def delete_sender_policy_entry(self, org_id: str, workspace_id: str, kind: str, subject: str,
                                   entry_id: str) -> bool:
        cur = self._c.execute(f"DELETE FROM sender_policy_entries WHERE entry_id = ? AND {_ONE}",
                              (entry_id, org_id, workspace_id, kind, subject))
        return bool(cur.rowcount)

    def sender_rules(self, org_id: str, workspace_ids: list[str]) -> tuple[list[Row], list[Row]]:
        """Every policy and entry of ``org_id`` in any of ``workspace_ids``: what engine/policies.py keeps in
        memory to judge creates."""
        marks = ", ".join("?" for _ in workspace_ids)
        where = f"org_id = ? AND workspace_id IN ({marks})"
        policies = self._all(f"SELECT kind, subject, policy_type FROM sender_policies WHERE {where}",
                             (org_id, *workspace_ids))
        entries = self._all(f"SELECT kind, subject, entry_id, sender_pattern FROM sender_policy_entries "
                            f"WHERE {where} ORDER BY created_at, entry_id", (org_id, *workspace_ids))
        return policies, entries


class PoliciesReadSql:
    """Read half, mixed into the store."""

    if TYPE_CHECKING:

        async def _read(self, fn: Callable[[Any], T]) -> T: ...

    async def read_sender_policy(self, org_id: str, workspace_id: str, kind: str,
                                 subject: str) -> tuple[Row | None, list[Row]]:
        """The policy's row (None: never set) and its entries, oldest first."""
        args = (org_id, workspace_id, kind, subject)

        def read(c: Any) -> tuple[Row | None, list[Row]]:
            row = c.execute(f"SELECT * FROM sender_policies WHERE {_ONE}", args).fetchone()
            return (dict(row) if row is not None else None), [dict(r) for r in c.execute(_ENTRIES, args).fetchall()]

        return await self._read(read)

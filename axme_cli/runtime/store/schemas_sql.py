"""SQL of the schema registry (``semantic_schemas``). Portable SQL only, like ``sql.py``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from axme_cli.runtime.store.base import Row

T = TypeVar("T")

# What the in-memory registry index keeps of each active schema (engine/schemas.Registry): no schema_json.
_HEAD = "semantic_type, owner_key, schema_hash, schema_ref, compatibility_mode"


class SchemasTxSql:
    """Write half: upserts, and the check an intent's create makes against the schema it was validated with."""

    if TYPE_CHECKING:
        LOCK: str
        _c: Any

        def _one(self, sql: str, args: tuple[Any, ...]) -> Row | None: ...

        def _all(self, sql: str, args: tuple[Any, ...] | list[Any]) -> list[Row]: ...

        def _insert(self, table: str, row: Row) -> None: ...

    def get_schema_record(self, semantic_type: str, owner_key: str) -> Row | None:
        return self._one("SELECT * FROM semantic_schemas WHERE semantic_type = ? AND owner_key = ?" + self.LOCK,
                         (semantic_type, owner_key))

    def insert_schema_record(self, row: Row) -> None:
        self._insert("semantic_schemas", row)

    def update_schema_record(self, semantic_type: str, owner_key: str, fields: Row) -> None:
        cols = ", ".join(f"{k} = ?" for k in fields)
        self._c.execute(f"UPDATE semantic_schemas SET {cols} WHERE semantic_type = ? AND owner_key = ?",
                        (*fields.values(), semantic_type, owner_key))

    def active_schema_heads(self, semantic_type: str, owner_keys: list[str]) -> list[Row]:
        marks = ", ".join("?" for _ in owner_keys)
        return self._all(f"SELECT {_HEAD} FROM semantic_schemas WHERE semantic_type = ? AND active = 1 "
                         f"AND owner_key IN ({marks})", (semantic_type, *owner_keys))


class SchemasReadSql:
    """Read half."""

    if TYPE_CHECKING:

        async def _read(self, fn: Callable[[Any], T]) -> T: ...

    async def active_schema_index(self) -> list[Row]:
        """Every active schema's head (no schema_json): the registry's in-memory index."""
        return await self._read(lambda c: [dict(r) for r in c.execute(
            f"SELECT {_HEAD} FROM semantic_schemas WHERE active = 1").fetchall()])

    async def schema_records(self, semantic_type: str, owner_keys: list[str]) -> list[Row]:
        """The rows of ``semantic_type`` owned by any of ``owner_keys`` (active or not), schema_json included."""
        marks = ", ".join("?" for _ in owner_keys)
        sql = f"SELECT * FROM semantic_schemas WHERE semantic_type = ? AND owner_key IN ({marks})"
        return await self._read(lambda c: [dict(r) for r in c.execute(sql, (semantic_type, *owner_keys)).fetchall()])

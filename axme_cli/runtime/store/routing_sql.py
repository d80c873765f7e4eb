"""SQL of routing endpoints and transport bindings (``routing_endpoints``, ``transport_bindings``, migration 0019),
and the one query that says where an address's intents go. Portable SQL only, like ``sql.py``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from axme_cli.runtime.store.base import Row

T = TypeVar("T")

# Where an address's intents are POSTed, best first: its routing endpoints that may take traffic (active, not
# unhealthy), by priority (the lowest number first); then its transport bindings (active), by priority; then the
# service account's own http binding (PATCH /v1/service-accounts/{id}/delivery). No row: the agent's feed.
# ``http_binding`` (store/outbound_sql.py) takes the first row, ``delivery_targets`` all of them, so delivery and
# POST /v1/routing/resolve cannot disagree.
DELIVERY_TARGETS = (
    "SELECT 1 AS tier, priority, created_at, route_id AS target_id, endpoint_url AS callback_url, "
    "signing_secret AS delivery_secret FROM routing_endpoints WHERE org_id = ? AND workspace_id = ? AND address = ? "
    "AND status = 'active' AND health_status <> 'unhealthy' "
    "UNION ALL "
    "SELECT 2 AS tier, priority, created_at, binding_id AS target_id, transport_handle AS callback_url, "
    "signing_secret AS delivery_secret FROM transport_bindings WHERE org_id = ? AND workspace_id = ? "
    "AND address = ? AND status = 'active' "
    "UNION ALL "
    "SELECT 3 AS tier, 0 AS priority, created_at, service_account_id AS target_id, callback_url, delivery_secret "
    "FROM service_accounts WHERE address = ? AND status = 'active' AND delivery_mode = 'http' "
    "ORDER BY tier, priority, created_at, target_id"
)


def delivery_target_args(address: str) -> tuple[str, ...]:
    """The parameters of ``DELIVERY_TARGETS`` for ``address``: routes and bindings are kept per org and workspace,
    which an ``agent://org/workspace/name`` address names (any other address has none)."""
    parts = address.removeprefix("agent://").split("/") if address.startswith("agent://") else []
    org, workspace = (parts[0], parts[1]) if len(parts) == 3 else ("", "")
    return (org, workspace, address, org, workspace, address, address)


class RoutingTxSql:
    """Write half, mixed into the store's ``Tx``."""

    _c: Any
    LOCK: str

    if TYPE_CHECKING:

        def _insert(self, table: str, row: Row) -> None: ...

        def _update(self, table: str, id_column: str, id_value: str, fields: Row) -> None: ...

    def routes_changed(self) -> None:
        """Where some address's intents go changed (a store that caches ``http_binding`` drops it)."""

    def _row(self, sql: str, args: tuple[Any, ...]) -> Row | None:
        row = self._c.execute(sql, args).fetchone()
        return dict(row) if row is not None else None

    def insert_route(self, row: Row) -> None:
        self._insert("routing_endpoints", row)
        self.routes_changed()

    def get_route(self, org: str, workspace: str, route_id: str) -> Row | None:
        return self._row("SELECT * FROM routing_endpoints WHERE route_id = ? AND org_id = ? AND workspace_id = ?"
                         + self.LOCK, (route_id, org, workspace))

    def update_route(self, route_id: str, fields: Row) -> None:
        self._update("routing_endpoints", "route_id", route_id, fields)
        self.routes_changed()

    def delete_route(self, route_id: str) -> None:
        self._c.execute("DELETE FROM routing_endpoints WHERE route_id = ?", (route_id,))
        self.routes_changed()

    def insert_binding(self, row: Row) -> None:
        self._insert("transport_bindings", row)
        self.routes_changed()

    def get_binding(self, org: str, workspace: str, binding_id: str) -> Row | None:
        return self._row("SELECT * FROM transport_bindings WHERE binding_id = ? AND org_id = ? AND workspace_id = ?"
                         + self.LOCK, (binding_id, org, workspace))

    def binding_for(self, org: str, workspace: str, address: str, transport_type: str) -> Row | None:
        return self._row("SELECT * FROM transport_bindings WHERE org_id = ? AND workspace_id = ? AND address = ? "
                         "AND transport_type = ?" + self.LOCK, (org, workspace, address, transport_type))

    def update_binding(self, binding_id: str, fields: Row) -> None:
        self._update("transport_bindings", "binding_id", binding_id, fields)
        self.routes_changed()

    def delete_binding(self, binding_id: str) -> None:
        self._c.execute("DELETE FROM transport_bindings WHERE binding_id = ?", (binding_id,))
        self.routes_changed()


class RoutingReadSql:
    """Read half, mixed into the store."""

    if TYPE_CHECKING:

        async def _read(self, fn: Callable[[Any], T]) -> T: ...

    async def _rows(self, sql: str, args: tuple[Any, ...] | list[Any]) -> list[Row]:
        return await self._read(lambda c: [dict(r) for r in c.execute(sql, args).fetchall()])

    async def list_routes(self, org: str, workspace: str, *, address: str | None, limit: int) -> list[Row]:
        """By address, then best first (as delivery takes them)."""
        sql, args = "SELECT * FROM routing_endpoints WHERE org_id = ? AND workspace_id = ?", [org, workspace]
        if address is not None:
            sql += " AND address = ?"
            args.append(address)
        return await self._rows(sql + " ORDER BY address, priority, created_at, route_id LIMIT ?", [*args, limit])

    async def get_route(self, org: str, workspace: str, route_id: str) -> Row | None:
        rows = await self._rows("SELECT * FROM routing_endpoints WHERE route_id = ? AND org_id = ? "
                                "AND workspace_id = ?", (route_id, org, workspace))
        return rows[0] if rows else None

    async def list_bindings(self, org: str, workspace: str, *, address: str | None, limit: int) -> list[Row]:
        sql, args = "SELECT * FROM transport_bindings WHERE org_id = ? AND workspace_id = ?", [org, workspace]
        if address is not None:
            sql += " AND address = ?"
            args.append(address)
        return await self._rows(sql + " ORDER BY address, priority, created_at, binding_id LIMIT ?",
                                [*args, limit])

    async def delivery_targets(self, address: str) -> list[Row]:
        """Every place ``address``'s intents could be POSTed to, best first (``DELIVERY_TARGETS``)."""
        return await self._rows(DELIVERY_TARGETS, delivery_target_args(address))

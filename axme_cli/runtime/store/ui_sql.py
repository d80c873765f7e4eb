"""SQL of the dashboard: its sessions, and the few reads its pages need beyond the API's.

Portable SQL (SQLite and PostgreSQL): ``?`` placeholders, columns read by name, aggregates aliased.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from axme_cli.runtime.store.base import Pair, Row
from axme_cli.runtime.store.scope_sql import pair_clause

T = TypeVar("T")

# Statuses of an intent that an agent holds and has not finished (the dashboard's "in flight").
IN_FLIGHT = ("SUBMITTED", "DELIVERED", "ACKNOWLEDGED", "IN_PROGRESS")


def _marks(values: list[Any] | tuple[Any, ...]) -> str:
    return ", ".join("?" for _ in values)


class UiTxSql:
    """Write-transaction methods (mixed into the backend's Tx)."""

    _c: Any

    def insert_ui_session(self, row: Row) -> None:
        cols = list(row)
        self._c.execute(f"INSERT INTO ui_sessions ({', '.join(cols)}) VALUES ({_marks(cols)})", tuple(row.values()))

    def revoke_ui_session(self, session_id: str, now: float) -> bool:
        cur = self._c.execute("UPDATE ui_sessions SET revoked_ts = ? WHERE session_id = ? AND revoked_ts IS NULL",
                              (now, session_id))
        return bool(cur.rowcount == 1)

    def prune_ui_sessions(self, before_ts: float) -> int:
        return int(self._c.execute("DELETE FROM ui_sessions WHERE expires_ts < ?", (before_ts,)).rowcount)

    def select_ui_workspace(self, session_id: str, org_id: str | None, workspace_id: str | None) -> None:
        self._c.execute("UPDATE ui_sessions SET org_id = ?, workspace_id = ? WHERE session_id = ?",
                        (org_id, workspace_id, session_id))


class UiReadSql:
    """Read methods (mixed into the backend's Store, which provides ``_read``)."""

    if TYPE_CHECKING:
        async def _read(self, fn: Callable[[Any], T]) -> T: ...

    async def ui_session(self, session_id: str) -> Row | None:
        """The session with what it stands for: the API key's row (``key_*``) or the person's login session
        (``actor_*``, with the email)."""
        def read(c: Any) -> Row | None:
            row = c.execute(
                "SELECT u.*, k.kind AS key_kind, k.status AS key_status, k.expires_at AS key_expires_at, "
                "k.service_account_id AS key_service_account_id, k.org_id AS key_org_id, "
                "k.workspace_id AS key_workspace_id, s.actor_id AS actor_id, "
                "s.revoked_at AS actor_revoked_at, s.expires_ts AS actor_expires_ts, a.email AS actor_email "
                "FROM ui_sessions u LEFT JOIN api_keys k ON k.key_id = u.key_id "
                "LEFT JOIN sessions s ON s.session_id = u.actor_session_id "
                "LEFT JOIN actors a ON a.actor_id = s.actor_id WHERE u.session_id = ?",
                (session_id,),
            ).fetchone()
            return dict(row) if row is not None else None

        return await self._read(read)

    async def intent_counts(self, scope: str | None, workspace: Pair = (None, None)) -> dict[str, int]:
        """status -> number of intents of one ``workspace`` (``scope.pair``: NULLs for the runtime's default one);
        an agent key's own only, with ``scope``."""
        if scope is not None:  # an agent's intents, found by address (intents_to / intents_from)
            where, args = pair_clause(*workspace)
            sql = f"SELECT status, count(*) AS n FROM intents WHERE (to_agent = ? OR from_agent = ?) AND {where} " \
                  "GROUP BY status"
            return await self._read(lambda c: {r["status"]: int(r["n"]) for r in c.execute(
                sql, [scope, scope, *args]).fetchall()})
        if None not in workspace:  # another workspace's: its rows alone, from intents_workspace_status
            where, args = pair_clause(*workspace)
            sql = f"SELECT status, count(*) AS n FROM intents WHERE {where} GROUP BY status"
            return await self._read(lambda c: {r["status"]: int(r["n"]) for r in c.execute(sql, args).fetchall()})
        # The default workspace's rows carry no pair and are in no index of their own: every intent counted from
        # intents_status (as when the runtime had one workspace) less the other workspaces' (from
        # intents_workspace_status, which holds theirs only), both from the index alone, in one statement so both
        # see the same rows. The ORDER BY keeps SQLite from merging the inner select into the GROUP BY, where (with
        # no statistics) it would walk intents_status and read every row instead.
        sql = ("SELECT status, count(*) AS n, 0 AS other FROM intents GROUP BY status UNION ALL "
               "SELECT status, 0 AS n, count(*) AS other FROM (SELECT status FROM intents WHERE workspace_id IS NOT "
               "NULL ORDER BY workspace_id) elsewhere GROUP BY status")

        def read(c: Any) -> dict[str, int]:
            counts: dict[str, int] = {}
            for r in c.execute(sql, ()).fetchall():
                counts[r["status"]] = counts.get(r["status"], 0) + int(r["n"]) - int(r["other"])
            return {status: n for status, n in counts.items() if n > 0}

        return await self._read(read)

    async def agent_intent_stats(self, workspace: Pair = (None, None)) -> list[Row]:
        """Per target address and status, over one ``workspace``'s intents: how many, the latest change, and how
        many were redelivered."""
        where, args = pair_clause(*workspace)
        return await self._read(lambda c: [dict(r) for r in c.execute(
            "SELECT to_agent AS address, status, count(*) AS n, max(updated_at) AS last_at, "
            "sum(CASE WHEN delivery_attempt > 1 THEN 1 ELSE 0 END) AS redelivered "
            f"FROM intents WHERE {where} GROUP BY to_agent, status", args).fetchall()])

    async def ui_workflows(self, scope: str | None, limit: int, workspace: Pair = (None, None)) -> list[Row]:
        """One ``workspace``'s workflow runs newest first with their parent intent's status (``scope``: an agent
        key's own)."""
        where, args = pair_clause(*workspace, prefix="i.")
        sql = ("SELECT w.workflow_id, w.parent_intent_id, w.scenario_id, w.compiled, w.state, w.created_at, "
               "w.updated_at, i.status, i.from_agent, i.to_agent FROM workflows w "
               f"JOIN intents i ON i.intent_id = w.parent_intent_id WHERE {where}")
        if scope is not None:
            sql += " AND (i.to_agent = ? OR i.from_agent = ?)"
            args.extend([scope, scope])
        sql += " ORDER BY w.workflow_id DESC LIMIT ?"
        args.append(limit)
        return await self._read(lambda c: [dict(r) for r in c.execute(sql, args).fetchall()])

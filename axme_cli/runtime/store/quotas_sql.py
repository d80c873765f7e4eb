"""SQL of quotas and usage (``quota_policies``, ``usage_counters``, ``quota_streams``: migration 0017). Portable SQL
only, like ``sql.py``; what differs between the backends is a class attribute (``OCTETS``, ``LAZY_COMMIT``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from axme_cli.runtime.store.base import Row
from axme_cli.runtime.store.multirow import insert_rows
from axme_cli.runtime.store.scope_sql import pair_clause

T = TypeVar("T")

# A counter's value as ``add_usage`` changes it: the sum of what is added, or the largest value given.
_USAGE_ROWS = 100  # rows per statement of ``add_usages`` (5 parameters each: well within SQLite's limit)
USAGE_ADD = {
    "sum": "value = usage_counters.value + excluded.value",
    "max": "value = CASE WHEN excluded.value > usage_counters.value THEN excluded.value ELSE usage_counters.value END",
}


class QuotasTxSql:
    """Write half, mixed into the store's ``Tx``."""

    _c: Any
    LOCK: str  # "" on SQLite, " FOR UPDATE" on PostgreSQL (store/sql.py)
    # The bytes of a text column: SQLite's length() counts characters, so the text is read as a blob; PostgreSQL
    # has octet_length() (SQLite only from 3.43).
    OCTETS = "length(CAST({} AS BLOB))"
    # Makes the transaction's commit not wait for its WAL flush (PostgreSQL); a counter a crash may lose does not
    # need it. Nothing on SQLite, where no such counter is written per request.
    LAZY_COMMIT = ""

    if TYPE_CHECKING:

        def _one(self, sql: str, args: tuple[Any, ...]) -> Row | None: ...

        def _all(self, sql: str, args: tuple[Any, ...] | list[Any]) -> list[Row]: ...

    # the policy
    def get_quota_policy(self, org_id: str, workspace_id: str) -> Row | None:
        return self._one("SELECT * FROM quota_policies WHERE org_id = ? AND workspace_id = ?" + self.LOCK,
                         (org_id, workspace_id))

    def put_quota_policy(self, row: Row) -> None:
        cols = list(row)
        changed = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in ("org_id", "workspace_id", "created_at"))
        self._c.execute(f"INSERT INTO quota_policies ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)}) "
                        f"ON CONFLICT (org_id, workspace_id) DO UPDATE SET {changed}", tuple(row.values()))

    # counters
    def usage_value(self, org_id: str, workspace_id: str, counter: str, period: str) -> int:
        row = self._one("SELECT value FROM usage_counters WHERE org_id = ? AND workspace_id = ? AND counter = ? "
                        "AND period = ?", (org_id, workspace_id, counter, period))
        return int(row["value"]) if row is not None else 0

    def take_usage(self, org_id: str, workspace_id: str, counter: str, period: str, n: int,
                   limit: int | None) -> int | None:
        """Add ``n`` to the counter if it stays within ``limit`` (None: whatever it comes to): its new value, or
        None (nothing added). The row stays locked until the transaction ends (PostgreSQL), so two replicas take
        from one count in turn."""
        key = (org_id, workspace_id, counter, period)
        self._c.execute("INSERT INTO usage_counters (org_id, workspace_id, counter, period, value) "
                        "VALUES (?, ?, ?, ?, 0) ON CONFLICT (org_id, workspace_id, counter, period) DO NOTHING", key)
        sql = ("UPDATE usage_counters SET value = value + ? WHERE org_id = ? AND workspace_id = ? AND counter = ? "
               "AND period = ?")
        args: tuple[Any, ...] = (n, *key)
        if limit is not None:
            sql += " AND value + ? <= ?"
            args = (*args, n, limit)
        row = self._one(sql + " RETURNING value", args)
        return int(row["value"]) if row is not None else None

    def add_usage(self, org_id: str, workspace_id: str, counter: str, period: str, n: int, how: str = "sum") -> None:
        """Add ``n`` to the counter (``how`` sum), or raise it to ``n`` (``max``)."""
        self.add_usages(org_id, workspace_id, [(counter, period, n)], how)

    def add_usages(self, org_id: str, workspace_id: str, counts: list[tuple[str, str, int]],
                   how: str = "sum") -> None:
        rows = [v for counter, period, n in counts for v in (org_id, workspace_id, counter, period, n)]
        insert_rows(self._c, "INSERT INTO usage_counters (org_id, workspace_id, counter, period, value) VALUES", 5,
                    rows, _USAGE_ROWS,
                    " ON CONFLICT (org_id, workspace_id, counter, period) DO UPDATE SET " + USAGE_ADD[how])

    def set_usage(self, org_id: str, workspace_id: str, counter: str, period: str, n: int) -> None:
        self._c.execute("INSERT INTO usage_counters (org_id, workspace_id, counter, period, value) "
                        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (org_id, workspace_id, counter, period) DO UPDATE SET "
                        "value = excluded.value", (org_id, workspace_id, counter, period, n))

    def has_usage(self, org_id: str, workspace_id: str, counter: str, period: str) -> bool:
        return self._one("SELECT 1 AS x FROM usage_counters WHERE org_id = ? AND workspace_id = ? AND counter = ? "
                         "AND period = ?", (org_id, workspace_id, counter, period)) is not None

    def minute_peaks(self, org_id: str, workspace_id: str, counter: str, before: str) -> list[Row]:
        """``counter``'s minute periods (``YYYY-MM-DDTHH:MM``) before ``before`` (a day): ``{day, peak}`` per day."""
        return self._all(
            "SELECT substr(period, 1, 10) AS day, max(value) AS peak FROM usage_counters WHERE org_id = ? "
            "AND workspace_id = ? AND counter = ? AND length(period) = 16 AND period < ? "
            "GROUP BY substr(period, 1, 10)", (org_id, workspace_id, counter, before))

    def minute_workspaces(self, counter: str, before: str) -> list[tuple[str, str]]:
        """The workspaces with minute periods of ``counter`` before ``before`` (a day) still to fold."""
        rows = self._all("SELECT DISTINCT org_id, workspace_id FROM usage_counters WHERE counter = ? "
                         "AND length(period) = 16 AND period < ?", (counter, before))
        return [(r["org_id"], r["workspace_id"]) for r in rows]

    def drop_minutes(self, org_id: str, workspace_id: str, counter: str, before: str) -> None:
        self._c.execute("DELETE FROM usage_counters WHERE org_id = ? AND workspace_id = ? AND counter = ? "
                        "AND length(period) = 16 AND period < ?", (org_id, workspace_id, counter, before))

    def lazy_commit(self) -> None:
        if self.LAZY_COMMIT:
            self._c.execute(self.LAZY_COMMIT)

    # what the rows themselves say
    def stored_bytes(self, org_id: str | None, workspace_id: str | None) -> int:
        """The bytes of every intent's payload and every finalized upload of one workspace (its stored pair: NULLs
        for the default one), counted from the rows."""
        where, args = pair_clause(org_id, workspace_id)
        row = self._one(f"SELECT coalesce(sum({self.OCTETS.format('payload')}), 0) AS n FROM intents WHERE {where}",
                        tuple(args))
        media = self._one(f"SELECT coalesce(sum(size_bytes), 0) AS n FROM media_uploads WHERE status = 'ready' "
                          f"AND {where}", tuple(args))
        return int(row["n"] if row else 0) + int(media["n"] if media else 0)

    def intents_by_day(self, org_id: str | None, workspace_id: str | None, since: str, before: str) -> list[Row]:
        """``{day, n, bytes}``: the intents of one workspace (its stored pair) created on each UTC day from
        ``since`` to before ``before`` (days), counted from the rows (one pass over the table: no index on
        created_at)."""
        where, args = pair_clause(org_id, workspace_id)
        return self._all(
            f"SELECT substr(created_at, 1, 10) AS day, count(*) AS n, "
            f"coalesce(sum({self.OCTETS.format('payload')}), 0) AS bytes FROM intents "
            f"WHERE created_at >= ? AND created_at < ? AND {where} GROUP BY substr(created_at, 1, 10)",
            (since, before, *args))

    def count_service_accounts(self, org_id: str, workspace_id: str) -> int:
        row = self._one("SELECT count(*) AS n FROM service_accounts WHERE org_id = ? AND workspace_id = ? "
                        "AND status = 'active'", (org_id, workspace_id))
        return int(row["n"]) if row else 0

    def count_actors(self) -> int:
        """People who have logged in (the runtime serves one workspace: every actor is its member)."""
        row = self._one("SELECT count(*) AS n FROM actors", ())
        return int(row["n"]) if row else 0

    # open SSE streams, per replica
    def streams_elsewhere(self, org_id: str, workspace_id: str, replica_id: str, seen_after: float) -> int:
        row = self._one("SELECT coalesce(sum(open_streams), 0) AS n FROM quota_streams WHERE org_id = ? "
                        "AND workspace_id = ? AND replica_id <> ? AND seen_ts > ?",
                        (org_id, workspace_id, replica_id, seen_after))
        return int(row["n"]) if row else 0

    def set_streams(self, org_id: str, workspace_id: str, replica_id: str, open_streams: int, now: float) -> None:
        self._c.execute("INSERT INTO quota_streams (org_id, workspace_id, replica_id, open_streams, seen_ts) "
                        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (org_id, workspace_id, replica_id) DO UPDATE SET "
                        "open_streams = excluded.open_streams, seen_ts = excluded.seen_ts",
                        (org_id, workspace_id, replica_id, open_streams, now))


class QuotasReadSql:
    """Read half, mixed into the store."""

    if TYPE_CHECKING:

        async def _read(self, fn: Callable[[Any], T]) -> T: ...

    async def read_quota_policy(self, org_id: str, workspace_id: str) -> Row | None:
        def one(c: Any) -> Row | None:
            row = c.execute("SELECT * FROM quota_policies WHERE org_id = ? AND workspace_id = ?",
                            (org_id, workspace_id)).fetchone()
            return dict(row) if row is not None else None

        return await self._read(one)

    async def read_quota_policies(self) -> list[Row]:
        """Every workspace's stored quota policy (the runtime keeps them all in memory)."""
        return await self._read(lambda c: [dict(r) for r in c.execute("SELECT * FROM quota_policies").fetchall()])

    async def usage_rows(self, org_id: str, workspace_id: str, counters: list[str], since: str,
                         until: str) -> list[Row]:
        """``{counter, period, value}`` of these counters with ``since <= period <= until`` (text order: a day
        ``2026-05-01`` sorts before its minutes ``2026-05-01T..``), and their ``'*'`` periods."""
        marks = ", ".join("?" for _ in counters)
        sql = (f"SELECT counter, period, value FROM usage_counters WHERE org_id = ? AND workspace_id = ? "
               f"AND counter IN ({marks}) AND ((period >= ? AND period <= ?) OR period = '*')")
        args = (org_id, workspace_id, *counters, since, until)
        return await self._read(lambda c: [dict(r) for r in c.execute(sql, args).fetchall()])

    async def usage_counts(self, org_id: str, workspace_id: str, replica_id: str, seen_after: float) -> Row:
        """``{service_accounts, actors, streams}``: active service accounts, people, and the SSE streams other
        replicas (than ``replica_id``) heard from since ``seen_after`` reported open."""

        def counts(c: Any) -> Row:
            sa = c.execute("SELECT count(*) AS n FROM service_accounts WHERE org_id = ? AND workspace_id = ? "
                           "AND status = 'active'", (org_id, workspace_id)).fetchone()
            actors = c.execute("SELECT count(*) AS n FROM actors").fetchone()
            streams = c.execute("SELECT coalesce(sum(open_streams), 0) AS n FROM quota_streams WHERE org_id = ? "
                                "AND workspace_id = ? AND replica_id <> ? AND seen_ts > ?",
                                (org_id, workspace_id, replica_id, seen_after)).fetchone()
            return {"service_accounts": int(sa["n"]), "actors": int(actors["n"]), "streams": int(streams["n"])}

        return await self._read(counts)

    async def service_account_days(self, org_id: str, workspace_id: str) -> list[Row]:
        """``{created_at, deleted_at}`` of every service account of the workspace (deleted_at: when a deleted one
        was, else None), for counts at the end of past days."""

        def rows(c: Any) -> list[Row]:
            return [{"created_at": r["created_at"],
                     "deleted_at": r["updated_at"] if r["status"] != "active" else None}
                    for r in c.execute("SELECT created_at, updated_at, status FROM service_accounts "
                                       "WHERE org_id = ? AND workspace_id = ?", (org_id, workspace_id)).fetchall()]

        return await self._read(rows)

    async def actor_days(self) -> list[str]:
        """When each person first logged in."""
        return await self._read(lambda c: [r["created_at"] for r in c.execute("SELECT created_at FROM actors")])

"""/v1/usage against the real runtime, on both backends: the summary of a window and the daily series count what
the runtime did (intents created by callers and in all, deliveries, requests, streams, payload and stored bytes,
service accounts and people at each day's end), from its counters and rows; the daily rollup counts ended days
again from the intents' rows (what a process that died before adding its counts lost) and folds minutes into days;
the counts of a stopped runtime are kept. Days are moved with the runtime's test clock."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from axme_cli.protocol.quotas import DIMENSIONS
from axme_cli.runtime.clock import ManualClock
from tests.conftest import NO_LOGIN_LIMITS, make_agent, new_intent, unique
from tests.runtime.api.test_intents import assert_error
from tests.runtime.api.test_quotas import at, clock_of, new_day
from tests.runtime_proc import RuntimeProcess
from tests.runtime_thread import RuntimeThread

STORAGE_FREE = pytest.mark.backends("sqlite")


@pytest.fixture(scope="module")
def counted(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeThread]:
    rt = RuntimeThread(tmp_path_factory.mktemp("usage"), backend=backend, clock=ManualClock(at("2026-07-01T10:00Z")),
                       extra_args=["--redelivery-seconds", "600", *NO_LOGIN_LIMITS])
    rt.start()
    yield rt
    rt.stop()


@pytest.fixture
def admin(counted: RuntimeThread) -> Iterator[httpx.Client]:
    """The workspace key, on a new UTC day."""
    new_day(counted)
    with counted.client() as client:
        yield client


def summary(client: httpx.Client, window: str = "day") -> dict[str, Any]:
    r = client.get("/v1/usage/summary", params={"window": window})
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True
    return dict(r.json()["summary"])


def series(client: httpx.Client, days: int) -> list[dict[str, Any]]:
    r = client.get("/v1/usage/timeseries", params={"window_days": days})
    assert r.status_code == 200, r.text
    body = r.json()["series"]
    assert (body["granularity"], body["window_days"], len(body["points"])) == ("day", days, days)
    return list(body["points"])


def sql(rt: RuntimeProcess, statement: str, *args: Any) -> list[tuple[Any, ...]]:
    """Run one statement on the runtime's database (as a crash, or an operator, would leave it)."""
    if rt.database_url is None:
        conn = sqlite3.connect(rt.db)
        with conn:
            rows = conn.execute(statement, args).fetchall()
        conn.close()
        return rows
    import psycopg

    with psycopg.connect(rt.database_url) as pg:
        cur = pg.execute(statement.replace("?", "%s").encode(), args)
        return cur.fetchall() if cur.description else []


def test_the_summary_counts_what_the_runtime_did(counted: RuntimeThread, admin: httpx.Client) -> None:
    before = summary(admin)
    assert before["counters"]["intents_created"] == 0 and before["dimensions"]["intents_per_day"]["used"] == 0
    stored = before["dimensions"]["storage_bytes"]["used"]
    address, token = make_agent(admin, unique("counted"))
    payloads = [{"pad": "x" * 40}, {"pad": "y" * 90}]  # 50 and 100 bytes of JSON
    for payload in payloads:
        assert admin.post("/v1/intents", json=new_intent(address, payload=payload)).status_code == 200
    with counted.client(token) as agent:  # the agent takes both: two deliveries
        feed = agent.get(f"/v1/agents/{address}/intents/stream", params={"wait_seconds": 1})
        assert feed.status_code == 200 and feed.text.count("event: intent.delivered") == 2
    after = summary(admin)
    dims, counters = after["dimensions"], after["counters"]
    assert (dims["intents_per_day"]["used"], dims["intents_per_day"]["limit"]) == (2, None)
    assert dims["payload_max_bytes"]["used"] == 100
    assert dims["storage_bytes"]["used"] == stored + 150
    assert dims["service_accounts_per_workspace"]["used"] >= 1 and dims["sse_streams_max"]["used"] == 0
    assert dims["sse_streams_max"]["peak"] >= 1
    assert (counters["intents_created"], counters["deliveries"], counters["payload_bytes"],
            counters["storage_added"], counters["sse_streams_opened"]) == (2, 2, 150, 150, 1)
    assert counters["requests"] >= 7  # every authenticated call: these, the agent's and the summaries
    assert dims["rate_limit_per_minute"]["used"] >= 1
    assert set(dims) == set(DIMENSIONS)
    assert (after["window_start"][:10], after["window_end"][:10]) == (after["as_of"][:10],
                                                                      _next(after["as_of"][:10]))
    for window in ("week", "month"):  # today is in the calendar week and month
        longer = summary(admin, window)
        assert longer["counters"]["intents_created"] >= 2 and longer["window_start"] <= after["window_start"]


def _next(day: str) -> str:
    from datetime import date, timedelta

    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()


def test_the_time_series_shows_each_day(counted: RuntimeThread, admin: httpx.Client) -> None:
    first = admin.post("/v1/service-accounts", json={"name": unique("daily")}).json()["service_account"]
    for _ in range(2):
        assert admin.post("/v1/intents", json=new_intent(unique("w"), payload={"pad": "x" * 40})).status_code == 200
    new_day(counted)
    assert admin.post("/v1/intents", json=new_intent(unique("w"), payload={"pad": "x" * 90})).status_code == 200
    assert admin.delete(f"/v1/service-accounts/{first['service_account_id']}").status_code == 200
    yesterday, today = series(admin, 2)
    assert yesterday["at"] < today["at"] and today["at"].endswith("T00:00:00Z")
    assert (yesterday["dimensions"]["intents_per_day"], today["dimensions"]["intents_per_day"]) == (2, 1)
    assert (yesterday["dimensions"]["payload_max_bytes"], today["dimensions"]["payload_max_bytes"]) == (50, 100)
    assert today["dimensions"]["storage_bytes"] - yesterday["dimensions"]["storage_bytes"] == 100
    assert (yesterday["dimensions"]["service_accounts_per_workspace"]
            - today["dimensions"]["service_accounts_per_workspace"]) == 1  # made yesterday, deleted today
    assert (yesterday["counters"]["intents_created"], today["counters"]["payload_bytes"]) == (2, 100)
    assert today["dimensions"]["rate_limit_per_minute"] >= 1
    long = series(admin, 90)  # days before the runtime's first hold nothing
    assert long[-1]["dimensions"]["intents_per_day"] == 1 and long[0]["counters"]["intents_created"] == 0


def test_the_rollup_counts_ended_days_again_from_their_rows(counted: RuntimeThread, admin: httpx.Client) -> None:
    day = summary(admin)["window_start"][:10]
    for _ in range(3):
        assert admin.post("/v1/intents", json=new_intent(unique("w"))).status_code == 200
    assert summary(admin)["counters"]["intents_created"] == 3
    new_day(counted)
    # a process that died before it added its counts: the day's row says less than happened
    sql(counted, "UPDATE usage_counters SET value = 1 WHERE counter = 'intents_created' AND period = ?", day)
    sql(counted, "INSERT INTO usage_counters (org_id, workspace_id, counter, period, value) "
                 "VALUES ('local', 'dev', 'requests', ?, 1000)", f"{day}T23:59")
    assert series(admin, 2)[0]["counters"]["intents_created"] == 1
    r = admin.post("/v1/usage/rollups/daily", params={"window_days": 2, "org_id": "local"})
    assert r.status_code == 200, r.text
    rollup = r.json()["rollup"]
    assert [d["day"] for d in rollup["days"]] == [day]  # ended days only: today is still being counted
    rolled = rollup["days"][0]
    assert (rolled["intents_created"], rolled["requests_peak_minute"]) == (3, 1000)
    assert rolled["intent_payload_bytes"] > 0
    point = series(admin, 2)[0]
    assert (point["counters"]["intents_created"], point["dimensions"]["rate_limit_per_minute"]) == (3, 1000)
    assert sql(counted, "SELECT count(*) FROM usage_counters WHERE counter = 'requests' AND period LIKE ?",
               f"{day}T%") == [(0,)]  # the day's minutes are folded into it
    again = admin.post("/v1/usage/rollups/daily", params={"window_days": 2}).json()["rollup"]["days"]
    assert again == rollup["days"]  # a second rollup of the same days changes nothing


def test_who_may_read_usage(counted: RuntimeThread, admin: httpx.Client) -> None:
    _, token = make_agent(admin, unique("curious"))
    with counted.client(token) as agent:
        for r in (agent.get("/v1/usage/summary"), agent.get("/v1/usage/timeseries"),
                  agent.post("/v1/usage/rollups/daily")):
            assert_error(r, 403, code="policy_denied")
    for r in (admin.get("/v1/usage/summary", params={"workspace_id": "production"}),
              admin.get("/v1/usage/timeseries", params={"org_id": "acme"}),
              admin.post("/v1/usage/rollups/daily", params={"org_id": "acme"})):
        assert_error(r, 404)


@STORAGE_FREE
def test_bad_usage_queries_are_422_naming_the_parameter(counted: RuntimeThread) -> None:
    with counted.client() as client:
        for path, params, field in [("/v1/usage/summary", {"window": "year"}, "window"),
                                    ("/v1/usage/timeseries", {"window_days": 0}, "window_days"),
                                    ("/v1/usage/timeseries", {"window_days": 91}, "window_days"),
                                    ("/v1/usage/timeseries", {"window_days": "week"}, "window_days")]:
            assert_error(client.get(path, params=params), 422, names=field)
        assert_error(client.post("/v1/usage/rollups/daily", params={"window_days": 100}), 422, names="window_days")


def test_counts_are_kept_when_the_runtime_stops(backend: str, tmp_path: Path) -> None:
    clock = ManualClock(at("2026-07-01T10:00Z"))
    rt = RuntimeThread(tmp_path, backend=backend, clock=clock).start()
    try:
        with rt.client() as client:
            for _ in range(2):
                assert client.post("/v1/intents", json=new_intent()).status_code == 200
        rt.stop()  # what it counted in memory is written as it stops
        assert sql(rt, "SELECT value FROM usage_counters WHERE counter = 'intents_per_day'") == [(2,)]
        rt.start()
        with rt.client() as client:
            assert summary(client)["dimensions"]["intents_per_day"]["used"] == 2
            clock_of(rt).advance(86400)
            assert summary(client)["dimensions"]["intents_per_day"]["used"] == 0
    finally:
        rt.stop()

"""`axme quota show|set` and `axme usage summary|timeseries|rollup` against a real runtime (in-process): AXME's table
(DIMENSION USED LIMIT USAGE%, ⚠ at 90 %, ! at 70 %, the tier and enforcement), --json, a refusal past a quota as
one sentence and the fix, and bad input: exit 2 naming the argument and the fix before any request. Also the
`--quota DIMENSION=LIMIT` flag of `axme dev` / `axme server`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from axme_cli.cli.dev import _quota_defaults
from axme_cli.errors import UsageError
from axme_cli.protocol.quotas import parse_assignment
from axme_cli.runtime.clock import ManualClock
from tests.cli.helpers import env_for, run
from tests.conftest import make_agent, new_intent, unique
from tests.receiver import closed_port_url
from tests.runtime.api.test_quotas import NO_LIMITS, at, new_day
from tests.runtime_thread import RuntimeThread

# What the CLI does with the answers does not depend on the storage (the routes run on both backends in
# tests/runtime/api/test_quotas.py and test_usage.py).
pytestmark = pytest.mark.backends("sqlite")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeThread]:
    rt = RuntimeThread(tmp_path_factory.mktemp("quota-cli"), clock=ManualClock(at("2026-09-01T10:00Z")))
    rt.start()
    yield rt
    rt.stop()


@pytest.fixture
def axme(served: RuntimeThread, tmp_path: Path) -> Iterator[tuple[dict[str, str], list[str]]]:
    """The environment and target flags of `axme`, on a new day of the runtime; no limit left set after."""
    new_day(served)
    yield env_for(tmp_path), ["--base-url", served.url, "--api-key", served.api_key or ""]
    with served.client() as client:
        assert client.patch("/v1/quotas", json=NO_LIMITS).status_code == 200


def rows(out: str) -> dict[str, list[str]]:
    """The table's lines by dimension: [used, limit, usage%] (a byte size is two words: 1.0 KiB)."""
    found = {}
    for line in out.splitlines():
        words = line.split()
        if words and "_" in words[0] and "=" not in words[0]:
            found[words[0]] = words[1:]
    return found


def test_quota_show_is_axme_table_with_its_marks(served: RuntimeThread,
                                                 axme: tuple[dict[str, str], list[str]]) -> None:
    env, target = axme
    shown = run(env, "quota", "show", *target)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["DIMENSION", "USED", "LIMIT", "USAGE%"]
    assert rows(shown.stdout)["intents_per_day"] == ["0", "—", "—"]
    assert lines[-2:] == ["Tier: unlimited", "overage_mode=block hard_enforcement=true"]

    done = run(env, "quota", "set", "intents_per_day=10", "payload_max_bytes=1KiB", *target)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "✓ Quotas: intents_per_day=10 payload_max_bytes=1.0 KiB"
    with served.client() as client:
        for more, count, mark in ((7, 7, "70% !"), (2, 9, "90% ⚠")):
            for _ in range(more):
                assert client.post("/v1/intents", json=new_intent(unique("w"))).status_code == 200
            table = rows(run(env, "quota", "show", *target).stdout)
            assert table["intents_per_day"] == [str(count), "10", *mark.split()]
    assert table["payload_max_bytes"][1:3] == ["1.0", "KiB"]  # a limit in bytes, readable
    as_json = run(env, "quota", "show", "--json", *target)
    body = json.loads(as_json.stdout)
    assert body["ok"] is True and body["overview"]["quota_policy"]["tier"] == "custom"
    assert body["overview"]["usage_summary"]["dimensions"]["intents_per_day"]["used"] == 9


def test_a_call_past_a_quota_says_which_and_when(served: RuntimeThread,
                                                 axme: tuple[dict[str, str], list[str]]) -> None:
    env, target = axme
    assert run(env, "quota", "set", "intents_per_day=1", *target).returncode == 0
    send = ("intents", "send", "--to", "inventory", "--type", "order.reserve.v1", "--data", "order_id=1", *target)
    assert run(env, *send).returncode == 0
    refused = run(env, *send)
    assert refused.returncode == 1
    assert "Quota exceeded: intents_per_day (used 1 of 1); resets at " in refused.stderr
    assert "retry in 50400 seconds" in refused.stderr
    as_json = run(env, *send, "--json")
    assert json.loads(as_json.stdout)["error"]["code"] == "quota_exceeded"


def test_quota_set_is_for_the_workspace_key_and_keeps_a_limit_below_usage(
        served: RuntimeThread, axme: tuple[dict[str, str], list[str]]) -> None:
    env, target = axme
    with served.client() as client:
        _, token = make_agent(client, unique("not-an-operator"))
        have = client.get("/v1/usage/summary").json()["summary"]["dimensions"]["service_accounts_per_workspace"]
    denied = run(env, "quota", "set", "intents_per_day=5", "--base-url", served.url, "--api-key", token)
    assert denied.returncode == 1 and "permission denied" in denied.stderr
    below = run(env, "quota", "set", f"service_accounts_per_workspace={have['used'] - 1}", "--soft", *target)
    assert below.returncode == 0, below.stderr
    assert below.stdout.splitlines()[1] == (f"! service_accounts_per_workspace: {have['used']} in use, more than the "
                                            f"limit {have['used'] - 1} (kept; it holds for new work)")
    shown = run(env, "quota", "show", *target).stdout
    assert "hard_enforcement=false" in shown and rows(shown)["service_accounts_per_workspace"][-1] == "⚠"
    cleared = run(env, "quota", "set", "service_accounts_per_workspace=none", "--hard", "--json", *target)
    policy = json.loads(cleared.stdout)["quota_policy"]
    assert policy["dimensions"]["service_accounts_per_workspace"] is None and policy["hard_enforcement"] is True


@pytest.mark.parametrize(("args", "named"), [
    (["quota", "set", "inbox_writes_per_day=5"], "'inbox_writes_per_day' is not a quota dimension"),
    (["quota", "set", "intents_per_day=lots"], "intents_per_day: 'lots' is not a whole number"),
    (["quota", "set", "intents_per_day"], "'intents_per_day' is not DIMENSION=LIMIT"),
    (["quota", "set", "intents_per_day=5", "--overage-mode", "refuse"], "--overage-mode 'refuse'"),
    (["usage", "summary", "--window", "year"], "--window 'year'"),
    (["usage", "timeseries", "--days", "91"], "--days"),
    (["quota", "upgrade-request", "--company", "A", "--justification", "we need far more"], "--company"),
    (["quota", "upgrade-request", "--company", "Acme", "--justification", "more"], "--justification"),
    (["quota", "upgrade-request", "--company", "Acme", "--justification", "we need far more", "--tier", "gold"],
     "--tier 'gold'"),
])
def test_bad_input_is_exit_2_naming_it_before_any_request(tmp_path: Path, args: list[str], named: str) -> None:
    done = run(env_for(tmp_path), *args, "--base-url", closed_port_url(), "--api-key", "k" * 20)
    assert done.returncode == 2, done.stdout + done.stderr
    assert named in done.stderr, done.stderr


def test_quota_upgrade_request_files_an_access_request_a_reviewer_approves(
        served: RuntimeThread, axme: tuple[dict[str, str], list[str]]) -> None:
    env, target = axme
    done = run(env, "quota", "upgrade-request", "--company", "Acme", "--justification", "nightly imports need more",
               "--tier", "corporate", "--json", *target)
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)["access_request"]
    assert (made["request_type"], made["requested_tier"], made["state"]) == ("quota_upgrade", "corporate", "pending")
    assert (made["company_name"], made["justification"]) == ("Acme", "nightly imports need more")
    text = run(env, "quota", "upgrade-request", "--company", "Acme", "--justification", "nightly imports need more",
               *target)
    assert text.returncode == 0 and "✓ Quota upgrade requested:" in text.stdout and "pending" in text.stdout
    with served.client() as admin:
        listed = admin.get("/v1/access-requests").json()["access_requests"]
        assert made["access_request_id"] in {r["access_request_id"] for r in listed}
        r = admin.post(f"/v1/access-requests/{made['access_request_id']}/review",
                       json={"decision": "approve", "reviewer_actor_id": "ops@example.com"})
        assert r.status_code == 200 and r.json()["access_request"]["state"] == "approved", r.text


def test_usage_commands(served: RuntimeThread, axme: tuple[dict[str, str], list[str]]) -> None:
    env, target = axme
    with served.client() as client:
        for _ in range(2):
            assert client.post("/v1/intents", json=new_intent(unique("w"))).status_code == 200
    day = run(env, "usage", "summary", *target)
    assert day.returncode == 0, day.stderr
    assert day.stdout.startswith("Usage 2026-") and "(day, UTC)" in day.stdout
    assert rows(day.stdout)["intents_per_day"][:3] == ["2", "—", "—"] and "intents_created=2" in day.stdout
    week = json.loads(run(env, "usage", "summary", "--window", "week", "--json", *target).stdout)
    assert week["summary"]["window"] == "week" and week["summary"]["counters"]["intents_created"] >= 2
    new_day(served)
    series = run(env, "usage", "timeseries", "--days", "2", *target)
    assert series.returncode == 0, series.stderr
    lines = series.stdout.splitlines()
    assert lines[0].split()[:3] == ["DAY", "INTENTS", "ALL_INTENTS"] and len(lines) == 3
    assert lines[1].split()[1:3] == ["2", "2"] and lines[2].split()[1] == "0"
    rolled = run(env, "usage", "rollup", "--days", "2", *target)
    assert rolled.returncode == 0 and rolled.stdout.splitlines()[0] == "✓ Rolled up 1 day(s)"
    assert "intents 2" in rolled.stdout


def test_the_quota_flag_of_dev_and_server() -> None:
    assert _quota_defaults(["intents_per_day=5000", "payload_max_bytes=128KiB", "sse_streams_max=none",
                            "requests_per_minute=1_000"]) == (
        ("intents_per_day", 5000), ("payload_max_bytes", 131072), ("rate_limit_per_minute", 1000))
    assert parse_assignment("storage_bytes = 1GB") == ("storage_bytes", 10**9)
    for bad in ("intents_per_day=1KiB", "storage_bytes=-1", "storage_bytes=1.5GB", "intents=5", "=5",
                "intents_per_day=9007199254740993"):
        with pytest.raises(UsageError) as refused:
            _quota_defaults([bad])
        assert refused.value.message.startswith(f"--quota '{bad}'") and refused.value.fix


def test_the_flag_reaches_the_runtime(tmp_path: Path) -> None:
    """`axme dev --quota ...` (parsed as `axme dev` parses it): the runtime's policy before anyone changed it; a
    bad one is exit 2 before anything starts."""
    rt = RuntimeThread(tmp_path, extra_args=["--quota", "intents_per_day=7", "--quota", "sse_streams_max=3"]).start()
    try:
        r = httpx.get(f"{rt.url}/v1/quotas", headers={"x-api-key": rt.api_key or ""}, timeout=10)
        policy = r.json()["quota_policy"]
        assert (policy["dimensions"]["intents_per_day"], policy["dimensions"]["sse_streams_max"],
                policy["source"]) == (7, 3, "defaults")
    finally:
        rt.stop()
    refused = run(env_for(tmp_path), "dev", "--port", "0", "--db", str(tmp_path / "x.db"), "--quota", "streams=1")
    assert refused.returncode == 2 and "--quota 'streams=1': 'streams' is not a quota dimension" in refused.stderr
    assert not (tmp_path / "x.db").exists()

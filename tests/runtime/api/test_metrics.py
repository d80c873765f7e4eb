"""GET /metrics (issue 9): after order sagas and a redelivered intent, every counter moved by what the API shows
happened, the histograms have samples, the gauge follows open streams. A runtime of its own per backend, so the
deltas are exact, on a test clock moved past each retry delay and redelivery."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from axme_cli.runtime.clock import ManualClock
from tests.conftest import make_agent, new_intent
from tests.receiver import poll
from tests.runtime.engine.test_workflows import Services, saga, wait_terminal
from tests.runtime_proc import TLS, RuntimeProcess
from tests.runtime_thread import Clockwork, RuntimeThread, tick

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
FAMILIES = {
    "axme_intents_created", "axme_intents_terminal", "axme_step_duration_seconds", "axme_step_hop_seconds",
    "axme_deliveries", "axme_redeliveries", "axme_sse_streams_open", "axme_store_commit_batch_size",
    "axme_store_commit_seconds", "axme_timer_lag_seconds", "axme_store_retries", "axme_store_statements",
    "axme_store_commits",
}


REDELIVERY = 5.0
WORK = 0.25  # test-clock seconds an agent takes to answer


@pytest.fixture(scope="module")
def mrt(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeThread]:
    rt = RuntimeThread(tmp_path_factory.mktemp("metrics"), extra_args=["--redelivery-seconds", str(REDELIVERY)],
                       clock=ManualClock(), backend=backend).start()
    yield rt
    rt.retire()


def scrape(client: httpx.Client) -> tuple[Samples, set[str]]:
    r = client.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    families = set()
    for family in text_string_to_metric_families(r.text):
        families.add(family.name)
        for s in family.samples:
            samples[s.name, frozenset(s.labels.items())] = s.value
    return samples, families


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample of the scrape; a missing one fails the test (every series exists from the start, its labels too)."""
    key = (name, frozenset(labels.items()))
    assert key in samples, f"no sample {name}{labels or ''} in /metrics"
    return samples[key]


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def children(admin: httpx.Client, parent_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(kind, intent) of every step and compensation sub-intent of a workflow, from the parent's events."""
    found = []
    for e in admin.get(f"/v1/intents/{parent_id}/events").json()["events"]:
        for key, kind in (("step_intent_id", "step"), ("compensation_intent_id", "compensation")):
            child = e["details"].get(key)
            if child:
                found.append((kind, admin.get(f"/v1/intents/{child}").json()["intent"]))
    return found


def deliveries_of(admin: httpx.Client, intent_id: str) -> int:
    events = admin.get(f"/v1/intents/{intent_id}/events").json()["events"]
    return sum(e["event_type"] == "intent.delivered" for e in events)


def run_saga(rt: RuntimeThread, admin: httpx.Client, **behaviour: Any) -> tuple[dict[str, Any], list[Any]]:
    r = admin.post("/v1/scenarios/apply", json=saga(uuid.uuid4().hex[:8]))
    assert r.status_code == 200, r.text
    applied = r.json()
    services = Services(rt, admin, applied, **behaviour)
    try:
        with Clockwork(rt, applied["intent_id"]):
            parent = wait_terminal(admin, applied["intent_id"])
    finally:
        services.stop()
    return parent, children(admin, applied["intent_id"])


def test_metrics_need_the_admin_key(mrt: RuntimeProcess) -> None:
    with httpx.Client(verify=TLS, base_url=mrt.url, timeout=30) as anonymous:
        r = anonymous.get("/metrics")
        assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
    with mrt.client() as admin:
        _, token = make_agent(admin, f"scraper-{uuid.uuid4().hex[:6]}")
        _, families = scrape(admin)
    assert families >= FAMILIES
    with mrt.client(token) as agent:
        r = agent.get("/metrics")
        assert r.status_code == 403 and r.json()["error"]["code"] == "policy_denied"
        assert "observability.metrics" in agent.get("/v1/capabilities").json()["capabilities"]


def test_metrics_public_flag(tmp_path: Path) -> None:
    rt = RuntimeThread(tmp_path, extra_args=["--metrics-public"]).start()
    try:
        with httpx.Client(verify=TLS, base_url=rt.url, timeout=30) as anonymous:
            samples, families = scrape(anonymous)
        assert families >= FAMILIES
        assert value(samples, "axme_sse_streams_open") == 0
    finally:
        rt.stop()


def test_counters_follow_what_happened(mrt: RuntimeThread) -> None:
    with mrt.client() as admin:
        before, families = scrape(admin)
        assert families >= FAMILIES, FAMILIES - families
        happy, happy_children = run_saga(mrt, admin, work=WORK)
        failed, failed_children = run_saga(mrt, admin, fail={"ship": 99}, work=WORK)
        # a direct intent to an agent that never listens: redelivered once, then delivery_failed
        r = admin.post("/v1/intents", json=new_intent(f"nobody-{uuid.uuid4().hex[:6]}", max_delivery_attempts=2))
        assert r.status_code == 200, r.text

        def attempt() -> tuple[int, str]:
            i = admin.get(f"/v1/intents/{r.json()['intent_id']}").json()["intent"]
            return i["delivery_attempt"], i["status"]

        assert [tick(mrt, REDELIVERY, attempt) for _ in range(2)] == [(2, "SUBMITTED"), (2, "FAILED")]
        direct = wait_terminal(admin, r.json()["intent_id"])
        # On PostgreSQL a read may see a commit a moment before the writer thread hands its notes (the counters) to
        # the event loop: the direct intent's FAILED was written by the scheduler, not by a request waited for.
        after = poll(lambda: scrape(admin)[0], lambda samples: delta(
            before, samples, "axme_intents_terminal_total", kind="direct", status="FAILED") >= 1)

        assert happy["status"] == "COMPLETED" and failed["status"] == "FAILED" and direct["status"] == "FAILED"
        kids = happy_children + failed_children
        assert sorted(k for k, _ in failed_children).count("compensation") == 2
        created = Counter(kind for kind, _ in kids)
        for kind in ("step", "compensation"):
            assert delta(before, after, "axme_intents_created_total", kind=kind) == created[kind]
        assert delta(before, after, "axme_intents_created_total", kind="parent") == 2
        assert delta(before, after, "axme_intents_created_total", kind="direct") == 1
        ended = Counter((kind, child["status"]) for kind, child in kids)
        for (kind, status), n in ended.items():
            assert delta(before, after, "axme_intents_terminal_total", kind=kind, status=status) == n
            assert delta(before, after, "axme_step_duration_seconds_count", kind=kind, status=status) == n
        assert ended["step", "FAILED"] == 2  # ship and its one retry
        assert delta(before, after, "axme_intents_terminal_total", kind="parent", status="COMPLETED") == 1
        assert delta(before, after, "axme_intents_terminal_total", kind="parent", status="FAILED") == 1
        assert delta(before, after, "axme_intents_terminal_total", kind="direct", status="FAILED") == 1
        # each answer took WORK seconds of the test clock
        assert delta(before, after, "axme_step_duration_seconds_sum", kind="step", status="COMPLETED") >= \
            WORK * ended["step", "COMPLETED"] > 0

        delivered = sum(deliveries_of(admin, child["intent_id"]) for _, child in kids)
        delivered += deliveries_of(admin, direct["intent_id"])  # 0 or 1: nobody listens, nothing is handed out
        assert delta(before, after, "axme_deliveries_total") == delivered >= len(kids)
        redelivered = sum(child["delivery_attempt"] - 1 for _, child in kids) + direct["delivery_attempt"] - 1
        assert direct["delivery_attempt"] == 2
        assert delta(before, after, "axme_redeliveries_total") == redelivered >= 1
        # every sub-intent reached its agent once for the first time: one hop each
        assert delta(before, after, "axme_step_hop_seconds_count") == len(kids)
        assert delta(before, after, "axme_step_hop_seconds_bucket", le="+Inf") == len(kids)

        assert delta(before, after, "axme_store_commit_batch_size_count") > 0
        assert delta(before, after, "axme_store_commit_batch_size_sum") >= \
            delta(before, after, "axme_store_commit_batch_size_count")
        assert delta(before, after, "axme_store_commit_seconds_count") == \
            delta(before, after, "axme_store_commit_batch_size_count")
        assert delta(before, after, "axme_timer_lag_seconds_count") >= 1 + 2  # a redelivery, two retry delays
        assert value(after, "axme_store_retries_total") >= 0
        # the store's own counts: every commit is one the commit histograms saw, and each ran statements
        commits = delta(before, after, "axme_store_commits_total")
        assert commits == delta(before, after, "axme_store_commit_batch_size_count") > 0
        assert delta(before, after, "axme_store_statements_total") >= 2 * commits  # BEGIN and COMMIT at least


def test_open_streams_gauge(mrt: RuntimeProcess) -> None:
    with mrt.client() as admin:
        r = admin.post("/v1/intents", json=new_intent(f"idle-{uuid.uuid4().hex[:6]}"))
        intent_id = r.json()["intent_id"]
        opened = threading.Event()
        done = threading.Event()

        def listen() -> None:
            with mrt.client() as c, c.stream("GET", f"/v1/intents/{intent_id}/events/stream",
                                             params={"since": 2, "wait_seconds": 30}) as s:
                opened.set()
                done.wait(30)
                s.close()

        t = threading.Thread(target=listen, daemon=True)
        t.start()
        assert opened.wait(20)
        assert wait_for_gauge(admin, lambda n: n >= 1)
        done.set()
        t.join(20)
        admin.post(f"/v1/intents/{intent_id}/resolve", json={"status": "CANCELED", "reason": "test over"})
        assert wait_for_gauge(admin, lambda n: n == 0)


def wait_for_gauge(admin: httpx.Client, ok: Any) -> bool:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if ok(value(scrape(admin)[0], "axme_sse_streams_open")):
            return True
        time.sleep(0.05)
    return False

"""The crash matrix's machinery: a steady order-saga load, agents that remember what they did, and the checks.

- ``Load``: client threads that apply the order saga (scenarios/order-saga.json) over and over, each with an
  ``Idempotency-Key``; a request cut by a crash is sent again with the same key until it is answered, as a
  careful client does, so every saga started is known by its intent id.
- ``ThreadAgent``: an agent as a thread (like tests/agents_helper.py ``FeedAgent``) that records every delivery
  and every ``/resume`` answer; ``AgentProcess``: `axme agents run --handler tests.reliability.saga_agent:handle`
  as a subprocess that can be killed with SIGKILL.
- ``Journal``: what the agents saw and which answers the runtime took (200).
- ``verify``: every saga ended as its plan says (plans.py), with dense event logs, no step or compensation run
  twice, every answer taken reflected.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from axme_cli.protocol.lifecycle import STATUSES
from tests.agents_helper import sse_frames
from tests.reliability.plans import CHILD_STATUS, EXPECTED, PLANS, decide
from tests.runtime.engine.test_workflows import saga as order_saga
from tests.runtime_proc import TLS

ROOT = Path(__file__).resolve().parents[2]
TERMINAL = ("COMPLETED", "FAILED", "CANCELED", "TIMED_OUT")
SEED_ENV = "AXME_CRASH_SEED"
DEFAULT_SEED = 8
# Kills per matrix run. 8 by default: with the aims in turn that is two kills inside a create, two inside an
# answer and four anywhere, which every promise needs; a release check runs more (AXME_CRASH_KILLS=20).
KILLS_ENV = "AXME_CRASH_KILLS"
DEFAULT_KILLS = 8


def crash_seed() -> int:
    return int(os.environ.get(SEED_ENV) or DEFAULT_SEED)


def crash_kills() -> int:
    value = os.environ.get(KILLS_ENV) or str(DEFAULT_KILLS)
    if not value.isdigit() or int(value) < len(AIMS):
        raise ValueError(f"{KILLS_ENV}={value!r}: give a whole number of kills, at least {len(AIMS)} "
                         "(one of each aim)")
    return int(value)


def saga_bundle(suffix: str, plan: str, order_id: str) -> dict[str, Any]:
    """The order saga for ``plan``: agents ``inventory-<suffix>`` ..., short retry delays, delivery attempts that
    outlast any number of crashes, and for "timeout" a 2 s deadline on the ship step with no retry."""
    bundle = order_saga(suffix)
    if plan == "timeout":
        bundle["workflow"]["steps"][2].update(step_deadline_seconds=2, retry={"max_retries": 0})
    bundle["intent"]["max_delivery_attempts"] = 100
    bundle["intent"]["payload"] = {**bundle["intent"]["payload"], "order_id": order_id, "plan": plan}
    return bundle


# ---------------------------------------------------------------------------------------------------------------
# what the agents did


@dataclass
class Journal:
    """Deliveries seen: (parent, step, attempt, compensation) -> intent ids; answers the runtime took with 200."""

    seen: dict[tuple[str, str, int, bool], set[str]] = field(default_factory=lambda: defaultdict(set))
    plans: dict[str, str] = field(default_factory=dict)  # parent intent id -> plan
    taken: dict[str, str] = field(default_factory=dict)  # intent id -> "complete" | "fail"
    deliveries: int = 0
    per_intent: Counter[str] = field(default_factory=Counter)  # deliveries handed to the handlers, per intent
    answers: Counter[int] = field(default_factory=Counter)  # resume status -> count
    in_hand: dict[str, int] = field(default_factory=lambda: Counter())  # "step" | "compensation" -> in progress
    lock: threading.Lock = field(default_factory=threading.Lock)

    def saw(self, intent_id: str, payload: dict[str, Any]) -> None:
        key = (str(payload.get("parent_intent_id")), str(payload.get("step_id")), int(payload.get("attempt") or 0),
               bool(payload.get("compensation")))
        with self.lock:
            self.seen[key].add(intent_id)
            self.deliveries += 1
            self.per_intent[intent_id] += 1
            if payload.get("plan"):
                self.plans[key[0]] = str(payload["plan"])

    def timers_armed(self) -> int:
        """Sagas waiting on a workflow timer now, as far as the agents can tell: a retry delay after the retry
        plan's first charge or the ship_fails plan's first ship, or the timeout plan's ship deadline."""
        with self.lock:
            steps: dict[str, set[tuple[str, int, bool]]] = defaultdict(set)
            for parent, step, attempt, comp in self.seen:
                steps[parent].add((step, attempt, comp))
            plans = dict(self.plans)
        armed = 0
        for parent, got in steps.items():
            plan = plans.get(parent)
            if plan == "retry" and ("charge", 1, False) in got and ("charge", 2, False) not in got or \
                    plan == "ship_fails" and ("ship", 1, False) in got and ("ship", 2, False) not in got or \
                    plan == "timeout" and ("ship", 1, False) in got and ("charge", 1, True) not in got:
                armed += 1
        return armed

    def answered(self, intent_id: str, action: str, status: int) -> None:
        with self.lock:
            self.answers[status] += 1
            if status == 200:
                previous = self.taken.setdefault(intent_id, action)
                assert previous == action, f"{intent_id} answered {previous} and then {action}"


class ThreadAgent(threading.Thread):
    """Follows its feed, answers as plans.decide says (after a short piece of work), records everything. A
    connection cut by a crash: it reconnects from its cursor; an answer that never got its 200 is not recorded
    (the intent is redelivered later)."""

    def __init__(self, url: str, token: str, name: str, journal: Journal, work_seconds: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.url, self.token, self.name, self.journal = url, token, name, journal
        self.work_seconds = work_seconds
        self.stop_event = threading.Event()
        self.cursor = 0
        self.errors = 0

    def run(self) -> None:
        with httpx.Client(verify=TLS, base_url=self.url, headers={"x-api-key": self.token}, timeout=15.0) as client:
            while not self.stop_event.is_set():
                try:
                    self._follow(client)
                except httpx.HTTPError:
                    self.errors += 1
                    self.stop_event.wait(0.05)

    def _follow(self, client: httpx.Client) -> None:
        with client.stream("GET", f"/v1/agents/{self.name}/intents/stream",
                           params={"since": self.cursor, "wait_seconds": 1}) as response:
            if response.status_code != 200:
                response.read()
                self.errors += 1
                self.stop_event.wait(0.1)
                return
            for event, data in sse_frames(response.iter_lines()):
                if not event.startswith("intent."):
                    continue
                self.cursor = data["seq"]
                if data.get("status") in TERMINAL:
                    continue
                payload = data.get("payload") or {}
                plan = (payload.get("parent_payload") or {}).get("plan")
                self.journal.saw(data["intent_id"], {**payload, "plan": plan})
                action, body = decide(payload)
                if action == "silent":
                    continue
                kind = "compensation" if payload.get("compensation") else "step"
                with self.journal.lock:
                    self.journal.in_hand[kind] += 1
                try:
                    time.sleep(self.work_seconds)
                    r = client.post(f"/v1/intents/{data['intent_id']}/resume", json={"action": action, **body})
                finally:
                    with self.journal.lock:
                        self.journal.in_hand[kind] -= 1
                self.journal.answered(data["intent_id"], action, r.status_code)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(20)


RESUME_LINE = re.compile(r"^(?P<id>[0-9a-f-]{36}) .*\(attempt \d+, resume (?P<status>\d{3})\)$")


class AgentProcess:
    """`axme agents run NAME --handler tests.reliability.saga_agent:handle`, killable with SIGKILL and restarted
    with the same journal and log (appended)."""

    def __init__(self, url: str, token: str, name: str, workdir: Path) -> None:
        self.url, self.token, self.name = url, token, name
        self.journal_file = workdir / f"agent-{name}.jsonl"
        self.log = workdir / f"agent-{name}.log"
        self.env = dict(os.environ, AXME_CONFIG_DIR=str(workdir / "agent-config"),
                        AXME_DATA_DIR=str(workdir / "agent-data"), AXME_RELIABILITY_JOURNAL=str(self.journal_file),
                        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        args = [sys.executable, "-m", "axme_cli", "agents", "run", self.name, "--api-key", self.token,
                "--base-url", self.url, "--handler", "tests.reliability.saga_agent:handle",
                "--concurrency", "8", "--ack-after", "0"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        self.starts += 1

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def unanswered(self) -> int:
        """Deliveries this agent took in (journal) that have no answer line yet: work in hand."""
        seen = {d["intent_id"] for d in _json_lines(self.journal_file) if d.get("action") != "silent"}
        return len(seen - set(_resume_statuses(self.log)))

    def read_into(self, journal: Journal) -> None:
        """Add what this agent's processes saw and which answers were taken to ``journal``."""
        actions: dict[str, str] = {}
        for d in _json_lines(self.journal_file):
            journal.saw(d["intent_id"], {"parent_intent_id": d["parent"], "step_id": d["step"],
                                         "attempt": d["attempt"], "compensation": d["compensation"],
                                         "plan": d.get("plan")})
            actions[d["intent_id"]] = d["action"]
        for intent_id, statuses in _resume_statuses(self.log).items():
            for status in statuses:
                journal.answered(intent_id, actions[intent_id], status)


def _json_lines(path: Path) -> list[dict[str, Any]]:
    """The complete lines of a file a killed process may have left with a half-written last line."""
    out = []
    if not path.exists():
        return out
    for line in path.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _resume_statuses(log: Path) -> dict[str, list[int]]:
    found: dict[str, list[int]] = defaultdict(list)
    if log.exists():
        for line in log.read_text(errors="replace").splitlines():
            m = RESUME_LINE.match(line.strip())
            if m:
                found[m["id"]].append(int(m["status"]))
    return found


# ---------------------------------------------------------------------------------------------------------------
# the load


@dataclass
class Saga:
    intent_id: str
    plan: str
    order_id: str
    tries: int  # requests it took to get the 200 (more than 1: a crash cut the earlier ones)
    replayed: bool  # the 200 came from the Idempotency-Key record of an earlier, cut request


class Load:
    """``clients`` threads applying sagas (plans in turn) every ``pause`` seconds until stopped."""

    def __init__(self, url: str, api_key: str, suffix: str, clients: int = 3, pause: float = 0.06) -> None:
        self.url, self.api_key, self.suffix = url, api_key, suffix
        self.pause = pause
        self.sagas: list[Saga] = []
        self.in_flight = 0
        self.statuses: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.counter = 0
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def apply(self, plan: str) -> Saga:
        with self.lock:
            self.counter += 1
            order_id = f"ord-{self.suffix}-{self.counter:05d}"
        raw = json.dumps(saga_bundle(self.suffix, plan, order_id)).encode()
        headers = {"x-api-key": self.api_key, "content-type": "application/json",
                   "idempotency-key": f"apply-{order_id}"}
        deadline = time.monotonic() + 120
        tries = 0
        with httpx.Client(verify=TLS, base_url=self.url, headers=headers, timeout=30.0) as client:
            while True:
                tries += 1
                with self.lock:
                    self.in_flight += 1
                try:
                    r = client.post("/v1/scenarios/apply", content=raw)
                except httpx.HTTPError as exc:
                    self._count(type(exc).__name__)
                    assert time.monotonic() < deadline, f"apply {order_id}: no answer in 120 s ({exc})"
                    time.sleep(0.1)
                    continue
                finally:
                    with self.lock:
                        self.in_flight -= 1
                self._count(str(r.status_code))
                if r.status_code == 503:  # storage busy: retryable by contract
                    assert r.json()["error"]["details"]["retryable"] is True, r.text
                    time.sleep(0.1)
                    continue
                assert r.status_code == 200, r.text
                body = r.json()
                saga = Saga(body["intent_id"], plan, order_id, tries, bool(body.get("idempotent")))
                with self.lock:
                    self.sagas.append(saga)
                return saga

    def _count(self, what: str) -> None:
        with self.lock:
            self.statuses[what] += 1

    def _client(self) -> None:
        n = 0
        while not self.stop_event.is_set():
            self.apply(PLANS[n % len(PLANS)])
            n += 1
            self.stop_event.wait(self.pause)

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def wait_for(self, per_plan: int, timeout: float = 120) -> None:
        """Until every plan has ``per_plan`` sagas answered 200: the checks need that many of each, however few
        kills the run made or however slowly a loaded machine went."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                counts = Counter(s.plan for s in self.sagas)
            if all(counts[plan] >= per_plan for plan in PLANS):
                return
            assert time.monotonic() < deadline, f"fewer than {per_plan} sagas of a plan after {timeout} s: {counts}"
            time.sleep(0.05)

    def stop(self) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(150)
            assert not t.is_alive(), "a load client did not finish"


def assert_answers(load: Load) -> None:
    """What the load's clients got, once they have stopped: a 200 per saga, otherwise only 503 (retryable by
    contract) or a connection cut by a kill; never a 500 or any other status."""
    statuses = dict(load.statuses)
    http = {s: n for s, n in statuses.items() if s.isdigit()}
    assert set(http) <= {"200", "503"}, statuses
    assert http.get("200", 0) == len(load.sagas) > 0, statuses
    assert all(hasattr(httpx, name) for name in set(statuses) - set(http)), statuses


def wait_until_up(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url + "/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{url} did not come up"
        time.sleep(0.1)


AIMS = ("any", "create", "any", "answer")  # in turn: a quarter of the kills aim at creates, a quarter at answers


def kill_moments(rng: random.Random, count: int | None = None) -> list[tuple[float, str]]:
    """The pause before each kill (0.05-0.6 s) and what it aims at: "any" moment, or the first moment after the
    pause when a create ("create") or an agent's answer ("answer") is in flight, so that some kills surely land
    inside those short windows; the others land wherever the load is (deliveries, timers, the restart itself)."""
    return [(rng.uniform(0.05, 0.6), AIMS[i % len(AIMS)]) for i in range(count or crash_kills())]


def wait_for_moment(aim: str, load: Load, journal: Journal, timeout: float = 1.0) -> None:
    """Until what ``aim`` names is in flight (at most ``timeout``: then the kill lands where the load is)."""
    if aim == "any":
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if aim == "create" and load.in_flight > 0:
            return
        if aim == "answer" and journal.in_hand["step"] + journal.in_hand["compensation"] > 0:
            return
        time.sleep(0.0005)


# ---------------------------------------------------------------------------------------------------------------
# the checks


@dataclass
class Figures:
    sagas: int = 0
    by_plan: Counter[str] = field(default_factory=Counter)
    intents_checked: int = 0
    events_checked: int = 0
    answers_taken: int = 0
    deliveries: int = 0
    repeated_deliveries: int = 0  # the same intent handed to an agent again (at-least-once)
    most_deliveries_of_one: int = 0
    lost: int = 0
    duplicates: int = 0


OPEN = ",".join(sorted(set(STATUSES) - set(TERMINAL)))


def wait_all_terminal(admin: httpx.Client, ids: list[str], timeout: float = 180) -> None:
    """Until none of ``ids`` is open: each round lists the runtime's open intents (500 a page), not each
    saga (a GET per saga still open, ~140 at first, every 0.25 s). That each one exists is ``verify``'s to check
    (``dense_log`` reads every saga)."""
    pending = set(ids)
    deadline = time.monotonic() + timeout
    while True:
        pending &= listed_intents(admin, status=OPEN).keys()
        if not pending:
            return
        assert time.monotonic() < deadline, f"{len(pending)} sagas never ended, e.g. {sorted(pending)[:3]}"
        time.sleep(0.25)


def listed_intents(admin: httpx.Client, status: str | None = None) -> dict[str, dict[str, Any]]:
    """Every intent the runtime lists (``GET /v1/intents``, 500 a page; of these statuses if given), by id."""
    found: dict[str, dict[str, Any]] = {}
    params: dict[str, Any] = {"limit": 500, **({"status": status} if status else {})}
    while True:
        page = admin.get("/v1/intents", params=params)
        assert page.status_code == 200, page.text
        found.update((i["intent_id"], i) for i in page.json()["intents"])
        if page.json()["next_cursor"] is None:
            return found
        params["before"] = page.json()["next_cursor"]


def dense_log(admin: httpx.Client, intent_id: str,
              listed: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The intent and its events; the log must exist, be dense (seq 1..n) and agree with the intent row
    (``listed``: the row as ``listed_intents`` read it, which saves a request per intent when nothing moved since).

    The row and the log are two reads: an agent or a timer still at work may append an event between them, so
    a row behind its log is read again (a few times); a row that stays out of step with its log fails."""
    for attempt in range(20):
        if attempt == 0 and listed is not None:
            intent = listed
        else:
            r = admin.get(f"/v1/intents/{intent_id}")
            assert r.status_code == 200, f"intent {intent_id} is missing: {r.text}"
            intent = r.json()["intent"]
        events = admin.get(f"/v1/intents/{intent_id}/events").json()["events"]
        if intent["seq"] == len(events):
            break
        if attempt or listed is None:
            time.sleep(0.05)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), (intent_id, events)
    assert [e["event_type"] for e in events[:2]] == ["intent.created", "intent.submitted"], (intent_id, events[:2])
    assert intent["seq"] == len(events) and intent["status"] == events[-1]["status"], (intent_id, intent, events)
    terminal = [e for e in events if e["status"] in TERMINAL]
    assert len(terminal) <= 1, f"{intent_id} ended twice: {terminal}"
    return intent, events


def verify(admin: httpx.Client, sagas: list[Saga], journal: Journal) -> Figures:
    """Every saga ended as its plan says; see the module docstring."""
    figures = Figures(sagas=len(sagas), by_plan=Counter(s.plan for s in sagas), deliveries=journal.deliveries,
                      repeated_deliveries=journal.deliveries - len(journal.per_intent),
                      most_deliveries_of_one=max(journal.per_intent.values(), default=0))
    ids = [s.intent_id for s in sagas]
    assert len(set(ids)) == len(ids), "two applies answered with one intent id"
    wait_all_terminal(admin, ids)
    children: dict[str, tuple[str, str]] = {}  # child intent id -> (parent id, expected status)
    by_key: dict[tuple[str, str, int, bool], str] = {}
    for saga in sagas:
        status, history, undo, failed_step, reason = EXPECTED[saga.plan]
        intent, events = dense_log(admin, saga.intent_id)
        figures.intents_checked += 1
        figures.events_checked += len(events)
        where = f"saga {saga.intent_id} ({saga.plan})"
        assert intent["status"] == status, (where, intent.get("error"), intent["workflow"])
        got = [(h["step_id"], h["attempt"], h["status"]) for h in intent["workflow"]["history"]]
        if got != history:
            figures.duplicates += 1
        assert got == history, (where, got)
        comp = [(e["event_type"], e["details"]["step_id"]) for e in events
                if e["event_type"] in ("intent.compensating", "intent.compensated", "intent.compensation_failed")]
        assert comp == undo, (where, comp)  # exactly these compensations, newest first, each once
        if status == "FAILED":
            error = intent["error"]
            assert error["failed_step"] == failed_step and reason in error["reason"], (where, error)
            assert error["compensated"] == ["charge", "reserve"] and error["compensation_failed"] == [], (where, error)
        waits = [(e["details"]["step_id"], e["details"]["attempt"]) for e in events
                 if e["event_type"] == "intent.waiting"]
        assert waits == [(step, attempt) for step, attempt, _ in history], (where, waits)  # each step started once
        for h in intent["workflow"]["history"]:
            expected = CHILD_STATUS.get(saga.plan, {}).get((h["step_id"], h["attempt"]), h["status"])
            children[h["intent_id"]] = (saga.intent_id, expected)
            by_key[(saga.intent_id, h["step_id"], h["attempt"], False)] = h["intent_id"]
        for e in events:
            if e["event_type"] == "intent.compensating":
                children[e["details"]["compensation_intent_id"]] = (saga.intent_id, "COMPLETED")
                by_key[(saga.intent_id, e["details"]["step_id"], e["details"]["attempt"], True)] = \
                    e["details"]["compensation_intent_id"]
    assert len(children) == len(by_key), "one sub-intent recorded for two steps"
    rows = listed_intents(admin)  # a step's row is all its check reads (a saga's also has the workflow: a GET)
    for child_id, (parent_id, expected) in children.items():
        intent, events = dense_log(admin, child_id, rows.get(child_id))
        figures.intents_checked += 1
        figures.events_checked += len(events)
        assert intent["status"] == expected, (parent_id, child_id, intent["status"], expected)
    # What the agents saw: exactly one sub-intent per (saga, step, attempt, compensation), the one the saga records.
    for key, seen_ids in journal.seen.items():
        if key not in by_key or seen_ids != {by_key[key]}:
            figures.duplicates += 1
        assert seen_ids == {by_key.get(key)}, f"agents got {seen_ids} for {key}, the saga has {by_key.get(key)}"
    # Every answer the runtime took (200) is reflected in the intent and in its saga.
    for intent_id, action in journal.taken.items():
        figures.answers_taken += 1
        if intent_id not in children or children[intent_id][1] != ("COMPLETED" if action == "complete" else "FAILED"):
            figures.lost += 1
        assert intent_id in children, f"an answered intent {intent_id} belongs to no saga step"
        assert children[intent_id][1] == ("COMPLETED" if action == "complete" else "FAILED"), (intent_id, action)
    return figures


def record(base: Path, entry: dict[str, Any]) -> Path:
    """Append ``entry`` to reliability-figures.json in pytest's base temp folder and print the one-line summary."""
    path = base / "reliability-figures.json"
    lock = base / ".reliability-figures.lock"
    import fcntl

    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        runs = json.loads(path.read_text()) if path.exists() else []
        runs.append(entry)
        path.write_text(json.dumps(runs, indent=2) + "\n")
    print("\nRELIABILITY " + " ".join(f"{k}={v}" for k, v in entry.items() if not isinstance(v, dict | list))
          + f" (figures: {path})", flush=True)
    return path


def new_suffix() -> str:
    return uuid.uuid4().hex[:6]

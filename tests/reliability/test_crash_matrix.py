"""The crash matrix: kill -9 the runtime 4 times, one of each aim, then the agents 8 times (``AXME_CRASH_KILLS=N``:
N each; a release check runs 20) under a steady order-saga load, restart, and check that nothing accepted was lost
and every saga ended exactly as its agents' answers say.

Seeded: the pauses before the kills and which agent is killed come from ``random.Random(seed)``; the seed is
printed, ``AXME_CRASH_SEED=N`` replays a schedule. The figures of each run go to
``<pytest basetemp>/reliability-figures.json`` and one ``RELIABILITY ...`` line each (``pytest -s`` shows it).
Plans (tests/reliability/plans.py): happy; ship fails twice -> refund then release; charge fails once and is
retried; ship never answers -> its 2 s deadline fires -> refund then release.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from tests.agents_helper import agent_key
from tests.reliability.plans import PLANS
from tests.reliability.saga_load import (
    KILLS_ENV,
    SEED_ENV,
    AgentProcess,
    Journal,
    Load,
    ThreadAgent,
    assert_answers,
    crash_kills,
    crash_seed,
    kill_moments,
    new_suffix,
    record,
    verify,
    wait_all_terminal,
    wait_for_moment,
)
from tests.runtime_proc import RuntimeProcess

pytestmark = pytest.mark.reliability
ROLES = ("inventory", "payment", "shipping")
PER_PLAN = 6  # sagas of each plan the checks see at least
SUITE_KILLS = 4  # runtime kills per run in the suite: one of each aim (AIMS); each restart is most of the time


def kills() -> int:
    """Runtime kills: ``AXME_CRASH_KILLS`` when set (checked as ``crash_kills`` does), else ``SUITE_KILLS``. (The
    agents' matrix keeps ``crash_kills()``: an agent restarts in no time, and half its kills must find work in hand,
    which a handful of kills may all miss.)"""
    return crash_kills() if os.environ.get(KILLS_ENV) else SUITE_KILLS


def stop_all(agents: list[ThreadAgent]) -> None:
    """Stop the agents together (each ends within its feed's 1 s wait)."""
    for agent in agents:
        agent.stop_event.set()
    for agent in agents:
        agent.stop()


def agent_tokens(rt: RuntimeProcess, suffix: str) -> dict[str, str]:
    with rt.client() as admin:
        return {f"{role}-{suffix}": agent_key(admin, f"{role}-{suffix}") for role in ROLES}


def summary(kind: str, backend: str, seed: int, load: Load, figures, started: float,  # type: ignore[no-untyped-def]
            during: dict[str, int], kills: int) -> dict[str, object]:
    return {
        "matrix": kind, "backend": backend, "seed": seed, "kills": kills, "sagas": figures.sagas,
        "plans": dict(figures.by_plan), "intents_checked": figures.intents_checked,
        "events_checked": figures.events_checked, "answers_taken": figures.answers_taken,
        "deliveries": figures.deliveries, "repeated_deliveries": figures.repeated_deliveries,
        "most_deliveries_of_one_intent": figures.most_deliveries_of_one,
        "creates_retried": sum(1 for s in load.sagas if s.tries > 1),
        "creates_found_committed": sum(1 for s in load.sagas if s.replayed),
        **{f"kills_during_{k}": v for k, v in during.items()},
        "lost": figures.lost, "applied_twice": figures.duplicates, "seconds": round(time.monotonic() - started, 1),
    }


@pytest.mark.slow(seconds=12)
def test_runtime_kill_9_under_saga_load(backend: str, tmp_path: Path,
                                        tmp_path_factory: pytest.TempPathFactory) -> None:
    seed = crash_seed()
    print(f"\ncrash matrix (runtime): seed {seed}; replay with {SEED_ENV}={seed}")
    rng = random.Random(seed)
    started = time.monotonic()
    rt = RuntimeProcess(tmp_path, extra_args=["--redelivery-seconds", "1"], backend=backend).start()
    suffix = new_suffix()
    journal = Journal()
    load = Load(rt.url, rt.api_key or "", suffix)
    agents: list[ThreadAgent] = []
    during = {"creates": 0, "step_answers": 0, "compensation_answers": 0, "workflow_timers": 0}
    try:
        load.apply("happy")  # provisions the three agents
        agents = [ThreadAgent(rt.url, token, name, journal) for name, token in agent_tokens(rt, suffix).items()]
        for agent in agents:
            agent.start()
        load.start()
        time.sleep(1.0)  # sagas in every phase before the first kill
        for pause, aim in kill_moments(rng, kills()):
            time.sleep(pause)
            wait_for_moment(aim, load, journal)
            with load.lock, journal.lock:
                during["creates"] += load.in_flight > 0
                during["step_answers"] += journal.in_hand["step"] > 0
                during["compensation_answers"] += journal.in_hand["compensation"] > 0
            during["workflow_timers"] += journal.timers_armed() > 0
            rt.kill()
            rt.start()
        load.wait_for(per_plan=PER_PLAN)
        load.stop()
        assert_answers(load)
        with rt.client() as admin:
            wait_all_terminal(admin, [s.intent_id for s in load.sagas])
            stop_all(agents)
            figures = verify(admin, load.sagas, journal)
    finally:
        load.stop_event.set()
        stop_all(agents)
        rt.stop()
    record(tmp_path_factory.getbasetemp(), summary("runtime kill -9", backend, seed, load, figures, started, during,
                                                   kills()))
    assert set(journal.answers) <= {200, 503}, journal.answers  # an answer is taken or retryable, never refused
    assert figures.sagas >= 4 * PER_PLAN and all(figures.by_plan[p] >= PER_PLAN for p in PLANS)
    assert during["creates"] > 0 and during["step_answers"] + during["compensation_answers"] > 0, during


@pytest.mark.slow(seconds=12)
@pytest.mark.backends("sqlite")  # agents die here, not the runtime: the store plays no part in what is checked
def test_agents_kill_9_under_saga_load(backend: str, tmp_path: Path,
                                       tmp_path_factory: pytest.TempPathFactory) -> None:
    seed = crash_seed()
    print(f"\ncrash matrix (agents): seed {seed}; replay with {SEED_ENV}={seed}")
    rng = random.Random(seed + 1)
    started = time.monotonic()
    rt = RuntimeProcess(tmp_path, extra_args=["--redelivery-seconds", "1"], backend=backend).start()
    suffix = new_suffix()
    load = Load(rt.url, rt.api_key or "", suffix)
    agents: list[AgentProcess] = []
    during = {"work_in_hand": 0}
    try:
        load.apply("happy")
        agents = [AgentProcess(rt.url, token, name, tmp_path) for name, token in agent_tokens(rt, suffix).items()]
        for agent in agents:
            agent.start()
        load.start()
        time.sleep(1.5)  # the agent processes are up and sagas are in every phase
        for pause, aim in kill_moments(rng):
            time.sleep(pause)
            victim = rng.choice(agents)
            # aimed: wait until it holds work (on a loaded machine a restarted agent may take seconds to be back;
            # a guard against waiting forever, not a measurement)
            deadline = time.monotonic() + (10.0 if aim != "any" else 0)
            while not victim.unanswered() and time.monotonic() < deadline:
                time.sleep(0.005)
            during["work_in_hand"] += victim.unanswered() > 0
            victim.kill()
            victim.start()
        load.wait_for(per_plan=PER_PLAN)
        load.stop()
        assert_answers(load)
        with rt.client() as admin:
            wait_all_terminal(admin, [s.intent_id for s in load.sagas])
            for agent in agents:
                agent.stop()
            journal = Journal()
            for agent in agents:
                agent.read_into(journal)
            figures = verify(admin, load.sagas, journal)
    finally:
        load.stop_event.set()
        for agent in agents:
            agent.stop()
        rt.stop()
    record(tmp_path_factory.getbasetemp(), summary("agents kill -9", backend, seed, load, figures, started, during,
                                                   crash_kills()))
    assert set(journal.answers) <= {200}, journal.answers
    assert sum(a.starts for a in agents) == len(agents) + crash_kills()
    assert figures.sagas >= 4 * PER_PLAN and all(figures.by_plan[p] >= PER_PLAN for p in PLANS)
    assert during["work_in_hand"] > 0, during


def test_the_seed_is_taken_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SEED_ENV, "1234")
    assert crash_seed() == 1234 and kill_moments(random.Random(1234)) == kill_moments(random.Random(crash_seed()))
    assert all(0.05 <= p <= 0.6 and aim in ("any", "create", "answer") for p, aim in kill_moments(random.Random(1234)))
    monkeypatch.delenv(SEED_ENV)
    assert crash_seed() == 8
    with pytest.raises(ValueError):
        monkeypatch.setenv(SEED_ENV, "not a number")
        crash_seed()


@pytest.mark.parametrize("value", ["0", "3", "-8", "8.5", "many", " 8"])
def test_a_kill_count_below_one_of_each_aim_or_not_a_number_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                                       value: str) -> None:
    monkeypatch.setenv(KILLS_ENV, value)
    with pytest.raises(ValueError, match=KILLS_ENV):
        crash_kills()


def test_the_kill_count_is_taken_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KILLS_ENV, raising=False)
    assert len(kill_moments(random.Random(1))) == crash_kills() == 8
    monkeypatch.setenv(KILLS_ENV, "20")
    assert len(kill_moments(random.Random(1))) == 20

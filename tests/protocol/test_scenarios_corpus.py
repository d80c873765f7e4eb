"""Every ScenarioBundle of AXME's public examples (../shared/axme-examples) validates offline, gets the same
verdict from POST /v1/scenarios/validate, and is accepted by /apply; our own scenarios/ files too."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from axme_cli.protocol.scenario import check
from tests.cli.helpers import cli_invoke
from tests.conftest import SHARED
from tests.runtime_proc import RuntimeProcess

ROOT = Path(__file__).resolve().parents[2]
CORPUS = sorted((SHARED / "axme-examples").glob("*/*.json"))
OURS = sorted(p for p in (ROOT / "scenarios").glob("*.json") if not p.name.endswith(".test.json"))  # bundles only


def test_the_corpus_is_there() -> None:
    assert len(CORPUS) == 24, CORPUS
    assert {p.name for p in OURS} == {"order-saga.json", "cross-service-coordination.json"}


@pytest.mark.parametrize("path", CORPUS + OURS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_validates_and_applies(runtime: RuntimeProcess, admin: httpx.Client, path: Path) -> None:
    bundle = json.loads(path.read_text())
    _, errors, warnings = check(bundle)
    assert errors == [], errors
    verdict = admin.post("/v1/scenarios/validate", json=bundle).json()
    assert verdict["errors"] == [] and verdict["warnings"] == [str(w) for w in warnings]
    applied = admin.post("/v1/scenarios/apply", json=bundle)
    assert applied.status_code == 200, applied.text
    body = applied.json()
    intent = admin.get(f"/v1/intents/{body['intent_id']}").json()["intent"]
    assert intent["status"] == "WAITING" and intent["workflow"]["current_step"]


def test_cli_validate_exit_codes(tmp_path: Path) -> None:
    env = {"AXME_CONFIG_DIR": str(tmp_path), "NO_COLOR": "1"}

    def validate(path: Path) -> subprocess.CompletedProcess[str]:
        """`axme scenarios validate PATH`, in-process (tests/cli/helpers.cli_invoke)."""
        result = cli_invoke(["scenarios", "validate", str(path)], env=env)
        return subprocess.CompletedProcess([], result.exit_code, result.stdout, result.stderr)

    ok = validate(CORPUS[0])
    assert ok.returncode == 0, ok.stderr
    bad = json.loads(CORPUS[0].read_text())
    bad["workflow"]["steps"][0]["on_failure"] = "nowhere"
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    out = validate(tmp_path / "bad.json")
    assert out.returncode == 1
    assert f'{tmp_path / "bad.json"}: steps[0].on_failure: no step "nowhere"' in out.stderr
    (tmp_path / "broken.json").write_text("{")
    out = validate(tmp_path / "broken.json")
    assert out.returncode == 1 and "not valid JSON at line 1" in out.stderr
    out = validate(tmp_path / "none.json")
    assert out.returncode == 2 and "no such file" in out.stderr


def test_meaning_errors() -> None:
    base = json.loads((ROOT / "scenarios" / "order-saga.json").read_text())

    def problems(mutate) -> list[str]:  # type: ignore[no-untyped-def]
        bundle = json.loads(json.dumps(base))
        mutate(bundle)
        return [str(e) for e in check(bundle)[1]]

    steps = lambda b: b["workflow"]["steps"]  # noqa: E731
    assert problems(lambda b: steps(b)[1].update(assigned_to="paymnt")) == [
        'steps[1].assigned_to: no role "paymnt" (did you mean "payment"?); declare it under agents or humans, '
        "or use an agent:// address"]
    # ship -> reserve on success loops, but every step can still fail out of it: not an error
    assert problems(lambda b: steps(b)[2].update(on_success="reserve")) == []
    looped = problems(lambda b: [steps(b)[2].update(on_success="reserve", on_failure="reserve"),
                                 steps(b)[1].update(on_failure="reserve"), steps(b)[0].update(on_failure="reserve")])
    assert looped and all("loop with no way out" in p for p in looped)
    human = problems(lambda b: [b.setdefault("humans", []).append({"role": "ops"}),
                                steps(b).append({"step_id": "ok", "assigned_to": "ops", "requires_approval": True,
                                                 "compensate": {"assigned_to": "payment"}})])
    assert human == ["steps[3].compensate: a human step has no agent result to undo; compensate only agent steps"]
    assert problems(lambda b: steps(b)[0].update(retry={"max_retries": -1})) == [
        "steps[0].retry.max_retries: Input should be greater than or equal to 0"]

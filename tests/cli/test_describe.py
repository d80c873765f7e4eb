"""`axme intents describe`: the waterfall of an intent from its events. The spans of a recorded order saga that
failed at shipping (one retry, then the compensations newest first) are checked without a runtime; the command is
driven in-process against the real runtime."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from axme_cli.render.describe import spans, view
from tests.cli.helpers import cli_invoke
from tests.conftest import make_agent, new_intent, unique
from tests.runtime_proc import TLS, RuntimeProcess

RECORDED = Path(__file__).parent / "data" / "saga-failed-at-shipping.events.jsonl"


def recorded() -> list[dict[str, object]]:
    return [json.loads(line) for line in RECORDED.read_text().splitlines()]


def test_a_failed_saga_is_steps_a_retry_and_compensations_newest_first() -> None:
    found = spans(recorded())
    assert [(s.label, s.kind, s.attempt, s.status) for s in found] == [
        ("reserve", "step", 1, "COMPLETED"),
        ("charge", "step", 1, "COMPLETED"),
        ("ship", "step", 1, "RETRIED"),
        ("ship", "step", 2, "FAILED"),
        ("undo charge", "compensation", 1, "UNDONE"),
        ("undo reserve", "compensation", 1, "UNDONE"),
    ]
    assert all(s.ended_at is not None and s.ended_at >= s.started_at for s in found)
    assert "retry in 2.0s" in found[2].note and "--fail-at" in found[3].note
    assert found[0].holder.startswith("inventory-") and found[4].holder.startswith("payment-")
    assert found[0].intent_id and found[4].intent_id  # the step's and the compensation's own intents


def test_the_json_view_gives_offsets_from_creation_and_no_holder_once_ended() -> None:
    events = recorded()
    body = {"intent": {"intent_id": events[0]["intent_id"], "status": "FAILED", "created_at": events[0]["at"]}}
    doc = view(body, events)
    assert doc["ok"] is True and doc["held_by"] is None
    offsets = [s["offset_ms"] for s in doc["spans"]]
    assert offsets == sorted(offsets) and offsets[0] == 0.0
    assert doc["spans"][3]["offset_ms"] - doc["spans"][2]["offset_ms"] > 2000  # the retry waited its 2 s


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AXME_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("AXME_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NO_COLOR", "1")
    return tmp_path


def describe(runtime: RuntimeProcess, intent_id: str, *more: str) -> tuple[int, str, str]:
    result = cli_invoke(["intents", "describe", intent_id, "--base-url", runtime.url, "--api-key",
                                      runtime.api_key or "", *more])
    return result.exit_code, result.stdout, result.stderr


def test_describe_an_intent_while_it_waits_and_after_it_ends(runtime: RuntimeProcess, admin: httpx.Client,
                                                              home: Path) -> None:
    name = unique("described")
    address, token = make_agent(admin, name)
    intent_id = admin.post("/v1/intents", json=new_intent(name)).json()["intent_id"]
    code, out, err = describe(runtime, intent_id)
    assert code == 0, err
    assert f"Intent:       {intent_id}" in out and f"Held by:      agent:{address}" in out
    assert "No steps or deliveries recorded yet." in out
    with httpx.Client(verify=TLS, base_url=runtime.url, headers={"x-api-key": token}, timeout=10) as agent:
        feed = agent.get(f"/v1/agents/{name}/intents/stream", params={"since": 0, "wait_seconds": 1})
        assert intent_id in feed.text
        r = agent.post(f"/v1/intents/{intent_id}/resume", json={"action": "complete", "result": {"ok": 1}})
        assert r.status_code == 200, r.text
    code, out, _ = describe(runtime, intent_id, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["intent"]["status"] == "COMPLETED" and doc["held_by"] is None
    assert [(s["kind"], s["status"]) for s in doc["spans"]] == [("delivery", "COMPLETED")]
    code, out, _ = describe(runtime, intent_id)
    assert "Took:" in out and "delivery" in out and "COMPLETED" in out and "Held by" not in out


@pytest.mark.backends("sqlite")
def test_describe_a_missing_or_malformed_id(runtime: RuntimeProcess, home: Path) -> None:
    code, _, err = describe(runtime, "not-an-id")
    assert code == 2 and "is not a UUID" in err
    code, _, err = describe(runtime, "01a24bc9-f474-7001-85c8-ef4bca9ee496")
    assert code == 1 and "not found" in err.lower()

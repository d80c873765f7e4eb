"""One JSON envelope for every command: single results `{"ok": true, ...}`, lists
`{"ok": true, "items": [...], "next_cursor": ...}`; streams stay one object per line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli.helpers import env_for, no_traceback, run
from tests.runtime_proc import RuntimeProcess

LISTS = [
    ("intents", "list"), ("agents", "list"), ("doctor",), ("context", "list"), ("examples", "list"),
    ("webhooks", "list"), ("webhooks", "deliveries"), ("inbox", "list", "--owner-agent", "someone"),
    ("tasks", "list"),
]


def _doc(env: dict[str, str], *args: str) -> Any:
    result = run(env, *args, "--json")
    no_traceback(result)
    assert result.returncode == 0, (args, result.stderr)
    assert result.stdout.count("\n") == 1, f"not one JSON document: {result.stdout!r}"
    return json.loads(result.stdout)


@pytest.mark.backends("sqlite")
def test_every_list_and_single_result_has_the_envelope(quiet: RuntimeProcess, tmp_path: Path) -> None:
    env = env_for(tmp_path, AXME_BASE_URL=quiet.url, AXME_API_KEY=quiet.api_key or "")
    run(env, "context", "create", "spare", "--base-url", quiet.url)
    intent_id = _doc(env, "intents", "send", "--to", "envelope-check")["intent_id"]
    for args in [*LISTS, ("intents", "log", intent_id)]:
        body = _doc(env, *args)
        assert isinstance(body, dict) and list(body) == ["ok", "items", "next_cursor"], (args, body)
        assert body["ok"] is True and isinstance(body["items"], list), (args, body)
    for args in (("version",), ("status",), ("context", "show", "spare"), ("intents", "get", intent_id),
                 ("intents", "trace", intent_id)):
        body = _doc(env, *args)
        assert isinstance(body, dict) and body.get("ok") is True, (args, body)
    assert _doc(env, "intents", "log", intent_id)["items"][0]["event_type"] == "intent.created"


@pytest.mark.backends("sqlite")
def test_intents_list_pages_with_next_cursor(quiet: RuntimeProcess, tmp_path: Path) -> None:
    env = env_for(tmp_path, AXME_BASE_URL=quiet.url, AXME_API_KEY=quiet.api_key or "")
    sent = [_doc(env, "intents", "send", "--to", "paged")["intent_id"] for _ in range(3)]
    seen: list[str] = []
    cursor: str | None = None
    while len(seen) < 3:
        page = _doc(env, "intents", "list", "--limit", "1", *(["--cursor", cursor] if cursor else []))
        assert len(page["items"]) == 1 and page["next_cursor"] == page["items"][0]["intent_id"]
        seen.append(page["items"][0]["intent_id"])
        cursor = page["next_cursor"]
    assert seen == sent[::-1]  # newest first, each once


@pytest.mark.parametrize("cursor", ["garbage", "", "\udcff", "' OR 1=1 --"])
def test_a_bad_cursor_is_a_usage_error(tmp_path: Path, cursor: str) -> None:
    env = env_for(tmp_path, AXME_BASE_URL="http://127.0.0.1:9", AXME_API_KEY="k")
    result = run(env, "intents", "list", "--cursor", cursor)
    no_traceback(result)
    assert result.returncode == 2 and "--cursor" in result.stderr and "next_cursor" in result.stderr, result.stderr


def test_a_failed_doctor_says_ok_false(tmp_path: Path) -> None:
    env = env_for(tmp_path, AXME_BASE_URL="http://127.0.0.1:9", AXME_API_KEY="k")
    result = run(env, "doctor", "--json")
    assert result.returncode == 1
    body = json.loads(result.stdout)
    assert body["ok"] is False and any(c["ok"] is False for c in body["items"])

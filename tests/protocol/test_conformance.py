"""Responses and request validation of the real runtime against the AXP JSON Schemas (axp-spec).

The schemas are read from ``SHARED/axp-spec/schemas`` (``../shared`` next to the repository, in CI too).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator, FormatChecker

from tests.conftest import SHARED, make_agent, new_intent, unique
from tests.runtime.api.test_streams import read_frames, take_frames
from tests.runtime_proc import RuntimeProcess

SCHEMAS = SHARED / "axp-spec" / "schemas"

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    """RFC 3339 ``date-time`` (jsonschema checks it only if rfc3339-validator is installed; do it here)."""
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    return True


@cache
def validator(relative: str) -> Draft202012Validator:
    path = SCHEMAS / relative
    assert path.exists(), f"missing schema {path}"
    schema = json.loads(Path(path).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FORMATS)


def schema_errors(relative: str, instance: Any) -> list[str]:
    errors = sorted(validator(relative).iter_errors(instance), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errors]


def assert_valid(relative: str, instance: Any) -> None:
    errors = schema_errors(relative, instance)
    assert not errors, f"{relative}:\n  " + "\n  ".join(errors)


# ---------------------------------------------------------------------------------------------
# responses



def finished_intent(quiet: RuntimeProcess, api: httpx.Client) -> str:
    """An intent that went created → submitted → delivered → in_progress → completed."""
    name = unique("conform")
    _, token = make_agent(api, name)
    r = api.post("/v1/intents", json=new_intent(name, reply_to="agent://local/dev/requester"))
    assert r.status_code == 200, r.text
    intent_id = r.json()["intent_id"]
    with quiet.client(token) as bot:
        frame = take_frames(bot, f"/v1/agents/{name}/intents/stream", 1, since=0, wait_seconds=5)[0]
        assert frame.json["intent_id"] == intent_id
        for body in ({"action": "in_progress"}, {"action": "complete", "reserved": True}):
            r = bot.post(f"/v1/intents/{intent_id}/resume", json=body)
            assert r.status_code == 200, r.text
    return intent_id


def test_create_response_matches_schema(api: httpx.Client) -> None:
    r = api.post("/v1/intents", json=new_intent(unique("schema")))
    assert r.status_code == 200, r.text
    assert_valid("public_api/api.intents.create.response.v1.json", r.json())


def test_get_response_matches_schema(api: httpx.Client) -> None:
    """The body matches the schema once the top-level mirror of the intent's fields is set aside.

    Deliberate: axme-reference.md §2.2/§7.1 asks for that mirror (AXME's examples read
    ``resp["payload"]``), which the schema's additionalProperties false does not foresee.
    """
    r = api.post("/v1/intents", json=new_intent(unique("schema")))
    r = api.get(f"/v1/intents/{r.json()['intent_id']}")
    assert r.status_code == 200, r.text
    body = r.json()
    mirrored = {k: v for k, v in body.items() if k not in ("ok", "intent")}
    assert mirrored and all(body["intent"][k] == v for k, v in mirrored.items())
    assert_valid("public_api/api.intents.get.response.v1.json", {"ok": body["ok"], "intent": body["intent"]})


EVERY_FIELD = {
    "reply_to": "agent://local/dev/requester",
    "deadline_at": "2099-01-01T00:00:00Z",
    "remind_after_seconds": 60,
    "remind_interval_seconds": 120,
    "max_reminders": 2,
    "escalate_to": "agent://local/dev/boss",
    "max_delivery_attempts": 5,
    "human_task": {"title": "Approve", "task_type": "approval", "allowed_outcomes": ["approve", "reject"]},
}


@pytest.mark.parametrize("shape", ["minimal", "every-field", "finished"])
def test_get_intent_object_matches_schema(quiet: RuntimeProcess, api: httpx.Client, shape: str) -> None:
    """``{"ok", "intent"}`` of the GET body (the top-level mirror is checked by the test above)."""
    if shape == "finished":
        intent_id = finished_intent(quiet, api)
    else:
        extra = EVERY_FIELD if shape == "every-field" else {}
        r = api.post("/v1/intents", json=new_intent(unique("schema"), **extra))
        assert r.status_code == 200, r.text
        intent_id = r.json()["intent_id"]
    body = api.get(f"/v1/intents/{intent_id}").json()
    assert_valid("public_api/api.intents.get.response.v1.json", {"ok": body["ok"], "intent": body["intent"]})


def test_events_list_matches_schema(quiet: RuntimeProcess, api: httpx.Client) -> None:
    intent_id = finished_intent(quiet, api)
    r = api.get(f"/v1/intents/{intent_id}/events")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [e["event_type"] for e in body["events"]] == [
        "intent.created",
        "intent.submitted",
        "intent.delivered",
        "intent.in_progress",
        "intent.completed",
    ]
    assert_valid("public_api/api.intents.events.list.response.v1.json", body)


def test_each_event_matches_the_protocol_event_schema(quiet: RuntimeProcess, api: httpx.Client) -> None:
    intent_id = finished_intent(quiet, api)
    listed = api.get(f"/v1/intents/{intent_id}/events").json()["events"]
    streamed = [f.json for f in read_frames(api, f"/v1/intents/{intent_id}/events/stream", since=0, wait_seconds=5)]
    assert streamed == listed
    # details / pending_with / human_task are what the reference (§1.6, §2.2) and the events-list schema add
    # to the protocol event; everything else must match intent.event.v1 exactly.
    extensions = ("details", "pending_with", "human_task")
    assert all(isinstance(e["details"], dict) for e in listed)
    bare = [{k: v for k, v in e.items() if k not in extensions} for e in listed]
    problems = {e["event_type"]: schema_errors("protocol/intent.event.v1.json", e) for e in bare}
    assert not any(problems.values()), json.dumps({k: v for k, v in problems.items() if v}, indent=2)


def test_agent_get_response_matches_schema(api: httpx.Client) -> None:
    name = unique("schema-agent")
    make_agent(api, name)
    r = api.get(f"/v1/agents/{name}")
    assert r.status_code == 200, r.text
    assert_valid("public_api/api.agents.get.response.v1.json", r.json())


# ---------------------------------------------------------------------------------------------
# create requests: the runtime and the schema must agree on what is valid

FUTURE = "2099-06-01T12:00:00Z"
LONG = "agent://local/dev/" + "a" * 366  # 384 characters


_DROP = object()


def _body(**changes: Any) -> dict[str, Any]:
    body = new_intent("agent://local/dev/inventory")
    for key, value in changes.items():
        if value is _DROP:
            body.pop(key, None)
        else:
            body[key] = value
    return body


ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    ("minimal", _body()),
    ("empty payload", _body(payload={})),
    ("nested payload", _body(payload={"a": [1, {"b": None}], "c": "d"})),
    ("two-part type", _body(intent_type="a.b.v1")),
    ("long type", _body(intent_type="order_v2.reserve_x.item.v10")),
    ("uppercase uuid", _body(correlation_id=str(uuid.uuid4()).upper())),
    ("from_agent", _body(from_agent="agent://local/dev/sender")),
    ("reply_to", _body(reply_to="agent://local/dev/requester")),
    ("deadline Z", _body(deadline_at=FUTURE)),
    ("deadline offset", _body(deadline_at="2099-06-01T12:00:00.250+02:00")),
    ("reminders", _body(remind_after_seconds=1, remind_interval_seconds=30, max_reminders=3)),
    ("escalate_to", _body(escalate_to="agent://local/dev/boss")),
    ("max_delivery_attempts 1", _body(max_delivery_attempts=1)),
    ("max_delivery_attempts 500", _body(max_delivery_attempts=500)),
    ("max_delivery_attempts 2.0", _body(max_delivery_attempts=2.0)),
    ("human_task minimal", _body(human_task={"title": "Approve"})),
    (
        "human_task full",
        _body(
            human_task={
                "title": "Approve",
                "description": "Please look",
                "task_type": "review",
                "allowed_outcomes": ["approve", "reject"],
                "required_comment": True,
                "assignees": ["ops@example.com"],
                "evidence_required": False,
                "form_schema": {"type": "object"},
            }
        ),
    ),
]
REFUSED: list[tuple[str, dict[str, Any]]] = [
    ("no intent_type", _body(intent_type=_DROP)),
    ("no correlation_id", _body(correlation_id=_DROP)),
    ("no to_agent", _body(to_agent=_DROP)),
    ("no payload", _body(payload=_DROP)),
    ("uppercase type", _body(intent_type="Order.reserve.v1")),
    ("type without version", _body(intent_type="order.reserve")),
    ("type with one part", _body(intent_type="order.v1")),
    ("type with dash", _body(intent_type="order-x.reserve.v1")),
    ("type not a string", _body(intent_type=5)),
    ("correlation_id not a uuid", _body(correlation_id="not-a-uuid")),
    ("correlation_id a number", _body(correlation_id=42)),
    ("correlation_id without dashes", _body(correlation_id=uuid.uuid4().hex)),
    ("to_agent too short", _body(to_agent="ab")),
    ("to_agent too long", _body(to_agent=LONG)),
    ("to_agent a number", _body(to_agent=12345)),
    ("from_agent too short", _body(from_agent="ab")),
    ("reply_to too short", _body(reply_to="ab")),
    ("payload array", _body(payload=[1])),
    ("payload string", _body(payload="x")),
    ("payload null", _body(payload=None)),
    ("unknown field", _body(priority="high")),
    ("deadline not a date", _body(deadline_at="tomorrow")),
    ("deadline without zone", _body(deadline_at="2099-06-01T12:00:00")),
    ("deadline date only", _body(deadline_at="2099-06-01")),
    ("deadline a number", _body(deadline_at=4_000_000_000)),
    ("remind_after_seconds 0", _body(remind_after_seconds=0)),
    ("remind_interval_seconds 0", _body(remind_interval_seconds=0)),
    ("max_reminders 0", _body(max_reminders=0)),
    ("max_delivery_attempts 0", _body(max_delivery_attempts=0)),
    ("max_delivery_attempts fraction", _body(max_delivery_attempts=2.5)),
    ("max_delivery_attempts string", _body(max_delivery_attempts="3")),
    ("max_delivery_attempts boolean", _body(max_delivery_attempts=True)),
    ("escalate_to too long", _body(escalate_to=LONG)),
    ("human_task without title", _body(human_task={"description": "x"})),
    ("human_task title too long", _body(human_task={"title": "t" * 256})),
    ("human_task unknown field", _body(human_task={"title": "x", "priority": 1})),
    ("human_task bad task_type", _body(human_task={"title": "x", "task_type": "bogus"})),
    ("human_task no outcomes", _body(human_task={"title": "x", "allowed_outcomes": []})),
    ("human_task empty outcome", _body(human_task={"title": "x", "allowed_outcomes": [""]})),
    ("human_task comment flag string", _body(human_task={"title": "x", "required_comment": "yes"})),
    ("human_task not an object", _body(human_task="approve")),
]


# A refused body is judged before any handler reads or writes the store: PostgreSQL would only repeat SQLite's
# verdict. An accepted one is stored, on every backend.
CREATE_CASES = [pytest.param(case, body, id=case) for case, body in ACCEPTED] + [
    pytest.param(case, body, id=case, marks=pytest.mark.backends("sqlite")) for case, body in REFUSED]


@pytest.mark.parametrize(("case", "body"), CREATE_CASES)
def test_create_request_verdict_matches_schema(admin: httpx.Client, case: str, body: dict[str, Any]) -> None:
    errors = schema_errors("public_api/api.intents.create.request.v1.json", body)
    schema_accepts = not errors
    r = admin.post("/v1/intents", json=body)
    assert r.status_code < 500, r.text
    runtime_accepts = r.status_code == 200
    if not runtime_accepts:
        assert r.status_code == 422, r.text
    assert runtime_accepts == schema_accepts, (
        f"{case}: schema {'accepts' if schema_accepts else 'rejects'} ({errors}), "
        f"runtime answered {r.status_code} {r.text[:300]}"
    )

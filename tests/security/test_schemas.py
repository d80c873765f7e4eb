"""Untrusted JSON Schemas are inert: a human task's form_schema cannot make the runtime read a file or a URL,
cannot freeze it with a backtracking pattern, and is checked (bounds, metaschema) when the task or bundle is
created, not when somebody answers.

Each attack is a real request to a real `axme dev` (SQLite: the checks run at the edge, before any store).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from referencing.exceptions import Unresolvable

from axme_cli.protocol import schemas
from axme_cli.runtime.api.errors import status_of
from axme_cli.runtime.engine import answers as task_answers
from axme_cli.runtime.errors import Unprocessable
from tests.cli.helpers import cli_invoke
from tests.runtime.api.test_intents import assert_error
from tests.runtime_proc import TLS, RuntimeProcess
from tests.runtime_thread import RuntimeThread

SECRET = "TOPSECRET-7f3a"


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    proc = RuntimeThread(tmp_path_factory.mktemp("schemas"), extra_args=["--redelivery-seconds", "600"])
    proc.start()
    yield proc
    proc.retire()


@pytest.fixture
def api(rt: RuntimeProcess) -> Iterator[httpx.Client]:
    with rt.client() as client:
        yield client


class Recorder:
    """A local HTTP server that records every request and answers a JSON Schema holding SECRET."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorder.paths.append(self.path)
                body = json.dumps({"const": SECRET}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    r = Recorder()
    yield r
    r.server.shutdown()


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.json"
    path.write_text(json.dumps({"const": SECRET}))
    return path


def task(schema: Any, **extra: Any) -> dict[str, Any]:
    return {"intent_type": "ops.approve.v1", "correlation_id": str(uuid.uuid4()), "to_agent": "agent://agent_core",
            "payload": {}, "human_task": {"title": "Approve", "form_schema": schema, **extra}}


def bundle(schema: Any) -> dict[str, Any]:
    return {"scenario_id": "hostile-form", "humans": [{"role": "approver"}],
            "workflow": {"steps": [{"step_id": "sign", "assigned_to": "approver", "requires_approval": True,
                                    "human_task": {"title": "Sign", "form_schema": schema}}]},
            "intent": {"type": "ops.sign.v1", "payload": {}}}


def refused_everywhere(api: httpx.Client, schema: Any, names: str, tmp_path: Path) -> None:
    """422 naming the field on create, apply and validate (API and offline CLI); the reason says ``names``."""
    body = assert_error(api.post("/v1/intents", json=task(schema)), 422, code="schema_invalid",
                        names="human_task.form_schema")
    assert names in body["error"]["message"], body
    assert SECRET not in json.dumps(body)
    r = api.post("/v1/scenarios/apply", json=bundle(schema))
    assert_error(r, 422, code="scenario_invalid", names="steps[0].human_task.form_schema")
    assert names in r.text and SECRET not in r.text
    verdict = api.post("/v1/scenarios/validate", json=bundle(schema)).json()
    assert verdict["valid"] is False
    assert [e for e in verdict["errors"] if "steps[0].human_task.form_schema" in e and names in e], verdict
    path = tmp_path / f"bundle-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(bundle(schema)))
    offline = cli_invoke(["scenarios", "validate", str(path)], env={"NO_COLOR": "1"})  # in-process
    assert offline.exit_code == 1 and "steps[0].human_task.form_schema" in offline.stderr, offline.output
    assert names in offline.stderr and SECRET not in offline.stderr + offline.stdout


def answer(api: httpx.Client, intent_id: str, **fields: Any) -> httpx.Response:
    return api.post(f"/v1/intents/{intent_id}/resume", json={"task_result": {"outcome": "approved", **fields}})


# ---------------------------------------------------------------------------------------------
# references


def test_a_file_ref_is_refused_and_the_file_never_read(api: httpx.Client, secret_file: Path, tmp_path: Path) -> None:
    for ref in (f"file://{secret_file}", "file:///etc/passwd", str(secret_file)):
        refused_everywhere(api, {"properties": {"x": {"$ref": ref}}}, "only references inside the schema",
                           tmp_path)
    # a base $id cannot turn a relative reference into a file either
    refused_everywhere(api, {"$id": f"file://{secret_file.parent}/", "properties": {"x": {"$ref": "secret.json"}}},
                       "only references inside the schema", tmp_path)


def test_an_http_ref_is_refused_and_never_fetched(api: httpx.Client, recorder: Recorder, tmp_path: Path) -> None:
    for key in ("$ref", "$dynamicRef", "$recursiveRef"):
        schema = {"properties": {"x": {key: f"{recorder.url}/schema.json"}}}
        refused_everywhere(api, schema, "only references inside the schema" if key == "$ref" else "not supported",
                           tmp_path)
    refused_everywhere(api, {"properties": {"x": {"$id": f"{recorder.url}/", "$ref": "#"}}},
                       "allowed only at the top", tmp_path)
    assert recorder.paths == []


def test_the_validator_itself_cannot_retrieve(recorder: Recorder, secret_file: Path) -> None:
    """Defence in depth: should a reference slip past the check, the registry answers validation refuses it."""
    for ref in (f"{recorder.url}/schema.json", f"file://{secret_file}"):
        validator = schemas.VALIDATOR({"properties": {"x": {"$ref": ref}}}, registry=schemas.REGISTRY)
        with pytest.raises(Unresolvable):
            list(validator.iter_errors({"x": 1}))
    assert recorder.paths == []


def test_references_inside_the_schema_work(api: httpx.Client) -> None:
    schema = {"type": "object", "required": ["ticket", "team"],
              "$defs": {"id": {"type": "integer", "minimum": 1}, "team": {"$anchor": "team", "enum": ["a", "b"]}},
              "properties": {"ticket": {"$ref": "#/$defs/id"}, "team": {"$ref": "#team"}}}
    intent_id = api.post("/v1/intents", json=task(schema)).json()["intent_id"]
    assert_error(answer(api, intent_id, ticket=0, team="a"), 422, names="task_result.ticket")
    assert_error(answer(api, intent_id, ticket=3, team="c"), 422, names="task_result.team")
    ok = answer(api, intent_id, ticket=3, team="a")
    assert ok.status_code == 200 and ok.json()["intent"]["status"] == "COMPLETED", ok.text


def test_refs_pointing_nowhere_or_back_at_themselves_are_refused(api: httpx.Client, tmp_path: Path) -> None:
    refused_everywhere(api, {"properties": {"x": {"$ref": "#/$defs/missing"}}}, "points nowhere", tmp_path)
    refused_everywhere(api, {"properties": {"x": {"$ref": "#"}}}, "recursive references", tmp_path)
    looped = {"$defs": {"a": {"properties": {"b": {"$ref": "#/$defs/b"}}}, "b": {"items": {"$ref": "#/$defs/a"}}},
              "$ref": "#/$defs/a"}
    refused_everywhere(api, looped, "recursive references", tmp_path)


# ---------------------------------------------------------------------------------------------
# regular expressions


def test_a_redos_pattern_is_answered_fast_and_health_keeps_answering(rt: RuntimeProcess, api: httpx.Client) -> None:
    """``^(a+)+$`` against 34 a's and a b kept Python's re busy for minutes, /health too. RE2 is linear."""
    hostile = {"type": "object", "properties": {"code": {"type": "string", "pattern": "^(a+)+$"}},
               "patternProperties": {"^(x+x+)+y$": {"type": "integer"}}, "additionalProperties": {"type": "string"}}
    intent_id = api.post("/v1/intents", json=task(hostile)).json()["intent_id"]
    answers: list[httpx.Response] = []

    def attack() -> None:
        with rt.client() as c:
            for _ in range(5):
                answers.append(answer(c, intent_id, code="a" * 34 + "b", **{"x" * 40: "not checked"}))
                answers.append(answer(c, intent_id, code="aaaa", **{"x" * 34 + "z": 5}))

    attacker = threading.Thread(target=attack)
    attacker.start()
    probes = []
    with httpx.Client(verify=TLS, base_url=rt.url, timeout=5) as h:  # each probe must answer within 5 s
        while attacker.is_alive() or len(probes) < 3:
            probes.append(h.get("/health").status_code)
    attacker.join(30)
    assert not attacker.is_alive() and len(answers) == 10
    assert set(probes) == {200}
    for i, r in enumerate(answers):
        # the pattern refuses the code; the 34 x's and a z match no pattern: additionalProperties wants a string
        assert_error(r, 422, names="task_result.code" if i % 2 == 0 else "task_result")
    ok = answer(api, intent_id, code="aaaa", **{"xxy": 5})
    assert ok.status_code == 200 and ok.json()["intent"]["status"] == "COMPLETED", ok.text


@pytest.mark.parametrize("pattern", [r"^(a)\1$", r"(?=a)a", r"(?<!b)a", r"(?P=x)"])
def test_patterns_re2_cannot_run_are_refused_at_create(api: httpx.Client, pattern: str, tmp_path: Path) -> None:
    refused_everywhere(api, {"properties": {"x": {"type": "string", "pattern": pattern}}},
                       "properties.x.pattern", tmp_path)
    refused_everywhere(api, {"patternProperties": {pattern: {}}}, "not a regular expression RE2 accepts", tmp_path)


def test_python_and_re2_agree_on_patterns_both_accept(api: httpx.Client) -> None:
    schema = {"type": "object", "properties": {"sku": {"type": "string", "pattern": r"^[A-Z]{3}-\d{3}$"},
                                               "note": {"type": "string", "pattern": "(?i)urgent"}}}
    intent_id = api.post("/v1/intents", json=task(schema)).json()["intent_id"]
    assert_error(answer(api, intent_id, sku="ABC-12", note="URGENT"), 422, names="task_result.sku")
    assert_error(answer(api, intent_id, sku="ABC-123", note="later"), 422, names="task_result.note")
    ok = answer(api, intent_id, sku="ABC-123", note="it is Urgent")
    assert ok.status_code == 200, ok.text


def test_unevaluated_properties_beside_pattern_properties_are_refused(api: httpx.Client, tmp_path: Path) -> None:
    refused_everywhere(api, {"patternProperties": {"^x": {}}, "unevaluatedProperties": False},
                       "unevaluatedProperties", tmp_path)


# ---------------------------------------------------------------------------------------------
# bounds and the metaschema, at create time


def _deep(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"x": schema}}
    return schema


def test_size_depth_and_keywords_are_bounded(api: httpx.Client, tmp_path: Path) -> None:
    big = {"description": "d" * schemas.MAX_BYTES}
    refused_everywhere(api, big, f"at most {schemas.MAX_BYTES}", tmp_path)
    refused_everywhere(api, _deep(schemas.MAX_DEPTH), f"more than {schemas.MAX_DEPTH} deep", tmp_path)
    assert api.post("/v1/intents", json=task(_deep(schemas.MAX_DEPTH - 1))).status_code == 200
    wide = {"properties": {f"f{i}": {"type": "string"} for i in range(schemas.MAX_KEYWORDS)}}
    refused_everywhere(api, wide, f"more than {schemas.MAX_KEYWORDS} keywords", tmp_path)
    # 2**12 uses of one small definition from a schema of a few hundred bytes
    defs: dict[str, Any] = {"d0": {"type": "string"}}
    for i in range(1, 13):
        defs[f"d{i}"] = {"allOf": [{"$ref": f"#/$defs/d{i - 1}"}, {"$ref": f"#/$defs/d{i - 1}"}]}
    refused_everywhere(api, {"$defs": defs, "$ref": "#/$defs/d12"}, "keywords (counting each $ref", tmp_path)


def test_an_invalid_schema_is_refused_at_create_not_at_answer(api: httpx.Client, tmp_path: Path) -> None:
    refused_everywhere(api, {"type": "strin"}, "not a valid JSON Schema", tmp_path)
    refused_everywhere(api, {"properties": {"x": {"minLength": -1}}}, "properties.x.minLength", tmp_path)
    refused_everywhere(api, {"$schema": "http://json-schema.org/draft-07/schema#"}, "JSON Schema 2020-12",
                       tmp_path)
    refused_everywhere(api, {"properties": {"x": {"$schema": schemas.DIALECT, "pattern": "^(a+)+$"}}},
                       "allowed only at the top", tmp_path)
    assert api.post("/v1/intents", json=task({"$schema": schemas.DIALECT, "type": "object"})).status_code == 200


def test_the_work_of_one_answer_is_bounded(rt: RuntimeProcess, api: httpx.Client) -> None:
    """Within the schema's bounds, schema size times answer size could still keep a worker busy for minutes:
    validation stops after MAX_EVALUATIONS, and uniqueItems is linear (it compared every pair)."""
    alternatives = [{"type": "string", "pattern": f"^z{i}$"} for i in range(50)] + [{"type": "string"}]
    schema = {"type": "object", "properties": {"xs": {"type": "array", "items": {"anyOf": alternatives},
                                                      "uniqueItems": True},
                                               "objs": {"type": "array", "uniqueItems": True}}}
    intent_id = api.post("/v1/intents", json=task(schema)).json()["intent_id"]
    with httpx.Client(verify=TLS, base_url=rt.url, headers=api.headers, timeout=30) as slow:  # measured ~0.6 s
        r = answer(slow, intent_id, xs=[f"v{i}" for i in range(3000)])
        assert_error(r, 422, names="too large to check")
        r = answer(slow, intent_id, xs=["a"], objs=[{"a": i} for i in range(8000)] + [{"a": 7}])
        assert_error(r, 422, names="task_result.objs")
    ok = answer(api, intent_id, xs=["a", "b"], objs=[{"a": 1}, {"a": 1.5}, [1], 1, True])
    assert ok.status_code == 200, ok.text


# ---------------------------------------------------------------------------------------------
# every way to answer goes through the same validation


def test_workflow_steps_and_approvals_validate_forms_before_the_write(api: httpx.Client) -> None:
    schema = {"type": "object", "required": ["ticket"], "properties": {"ticket": {"type": "string",
                                                                                   "pattern": "^(a+)+$"}}}
    applied = api.post("/v1/scenarios/apply", json=bundle(schema))
    assert applied.status_code == 200, applied.text
    parent = applied.json()["intent_id"]
    deadline = time.monotonic() + 30
    while api.get(f"/v1/intents/{parent}").json()["intent"].get("waiting_reason") != "WAITING_FOR_HUMAN":
        assert time.monotonic() < deadline, "the human step never opened"
        time.sleep(0.05)
    assert_error(api.post(f"/v1/intents/{parent}/resume", json={"approve_current_step": True}), 422,
                 names="task_result")
    assert_error(answer(api, parent, ticket="a" * 34 + "b"), 422, names="task_result.ticket")
    assert answer(api, parent, ticket="aaa").status_code == 200
    assert api.get(f"/v1/intents/{parent}").json()["intent"]["status"] == "COMPLETED"

    direct = api.post("/v1/intents", json=task(schema)).json()["intent_id"]
    decide = f"/v1/approvals/{direct}/decision"
    assert_error(api.post(decide, json={"decision": "approve"}), 422, names="task_result")
    r = api.post(decide, json={"decision": "reject", "comment": "no"})
    assert r.status_code == 200, r.text


def test_the_write_only_reads_verdicts() -> None:
    """The operation never validates a form itself: without a verdict it stops before changing anything
    (api.common.write_answer then judges the form on a worker thread and runs it again)."""
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    task_doc = {"allowed_outcomes": ["approved", "rejected"], "form_schema": schema}
    body = {"task_result": {"outcome": "approved", "n": f"unjudged-{uuid.uuid4()}"}}
    with pytest.raises(task_answers.FormUnjudged) as unjudged:
        task_answers.check_task_result(task_doc, body)
    assert (status_of(unjudged.value), unjudged.value.code) == (409, "answer_not_checked")
    task_answers.judge_form(unjudged.value.schema, unjudged.value.form)
    with pytest.raises(Unprocessable) as refused:
        task_answers.check_task_result(task_doc, body)
    assert refused.value.details["field"] == "task_result.n"
    task_answers.check_task_result(task_doc, {"task_result": {"outcome": "rejected", "n": "no form needed"}})

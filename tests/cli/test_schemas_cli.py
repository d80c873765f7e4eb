"""`axme schemas put|get` and `axme intents controls|policy` against the real runtime (driven in-process by typer's
CliRunner, as a user types them): --json answers, text answers, refusals of the runtime as exit 1, and bad input
as exit 2 naming the flag, file or argument before any request."""

from __future__ import annotations

import functools
import json
import uuid
from pathlib import Path
from typing import Any

import click.testing
import pytest
import typer.main

from axme_cli.cli.app import app
from tests.conftest import make_agent, unique
from tests.runtime_proc import RuntimeProcess


@functools.cache
def command() -> Any:
    """`axme` built once (typer's CliRunner builds every command on each call: ~0.3 s each time)."""
    return typer.main.get_command(app)

SCHEMA = {"type": "object", "required": ["order_id"], "properties": {"order_id": {"type": "string"}}}


def axme(runtime: RuntimeProcess, *args: str, key: str | None = None, stdin: str | None = None) -> tuple[int, str, str]:
    argv = ["--base-url", runtime.url, "--api-key", key or runtime.api_key or "", *args]
    result = click.testing.CliRunner().invoke(command(), argv, input=stdin)
    return result.exit_code, result.stdout, result.stderr


def as_json(runtime: RuntimeProcess, *args: str, **kwargs: Any) -> dict[str, Any]:
    code, out, err = axme(runtime, *args, "--json", **kwargs)
    assert code == 0, out + err
    return dict(json.loads(out))


def stype() -> str:
    return f"t{uuid.uuid4().hex[:10]}.cli.v1"


def test_schemas_put_and_get(runtime: RuntimeProcess, home: Path) -> None:
    path = home / "order.schema.json"
    path.write_text(json.dumps(SCHEMA))
    kind = stype()
    put = as_json(runtime, "schemas", "put", str(path), "--semantic-type", kind, "--scope", "core",
                  "--compatibility-mode", "strict")
    assert put["ok"] is True and put["schema"]["semantic_type"] == kind and put["schema"]["scope"] == "core"
    got = as_json(runtime, "schemas", "get", kind)
    assert got["schema"]["schema_json"] == SCHEMA and got["schema"]["compatibility_mode"] == "strict"
    code, out, _ = axme(runtime, "schemas", "get", kind)
    assert code == 0 and "compatibility_mode:" in out and '"required": [' in out, out
    # the schema now checks what `intents send` sends: the runtime's 422 names the payload's field (exit 1)
    code, out, err = axme(runtime, "intents", "send", "--to", unique("shop"), "--type", kind, "--data", "n=1")
    assert code == 1 and "payload" in err and "'order_id' is a required property" in err, out + err
    # an agent's own schema, from standard input, in text
    _, agent_key = make_agent(runtime.client(), unique("cli-owner"))
    code, out, err = axme(runtime, "schemas", "put", "-", "--type", kind, "--mode", "warn", key=agent_key,
                          stdin=json.dumps({"type": "object"}))
    assert code == 0 and out.startswith(f"✓ Schema for {kind} (agent://") and "warn" in out, out + err
    # the workspace key must say whose a tenant schema is: the runtime's 400 and its fix (exit 1)
    code, _, err = axme(runtime, "schemas", "put", str(path), "--semantic-type", kind)
    assert code == 1 and "owner_agent" in err, err


def test_intents_controls_and_policy(runtime: RuntimeProcess, home: Path) -> None:
    worker, _ = make_agent(runtime.client(), unique("cli-worker"))
    intent_id = as_json(runtime, "intents", "send", "--to", worker)["intent_id"]
    changed = as_json(runtime, "intents", "controls", intent_id, "--timeout", "600", "--max-retries", "9",
                      "--expected-generation", "0", "--reason", "more time")
    assert changed["applied"] is True and changed["policy_generation"] == 1
    assert changed["intent"]["max_delivery_attempts"] == 10 and "deadline_at" in changed["intent"]
    code, out, err = axme(runtime, "intents", "controls", intent_id, "--no-deadline", "--retry-backoff", "45")
    assert code == 0 and out.startswith(f"✓ Controls of {intent_id} changed (policy_generation 2).")
    assert "deadline_at:" in out and "-> None" in out and "retry_backoff_seconds: None -> 45.0" in out, out
    code, out, err = axme(runtime, "intents", "controls", intent_id, "--max-retries", "1", "--expected-generation",
                          "0")
    assert code == 1 and "policy_generation is 2, not 0" in err, out + err
    code, out, _ = axme(runtime, "intents", "controls", intent_id, "--max-retries", "9")
    assert code == 0 and out.startswith("Nothing to change"), out
    short = worker.rsplit("/", 1)[1]
    granted = as_json(runtime, "intents", "policy", intent_id, "--grant", f"{short}=resume,update_controls")
    assert granted["intent"]["grants"] == {f"delegate:{worker}": {"allow": ["resume", "update_controls"]}}
    code, out, _ = axme(runtime, "intents", "policy", intent_id, "--revoke", worker)
    assert code == 0 and f"delegate:{worker}: taken back" in out, out
    assert "grants" not in as_json(runtime, "intents", "get", intent_id)["intent"]


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize(("args", "named"), [
    (["schemas", "put", "/no/such/file.json", "--semantic-type", "a.b.v1"], "/no/such/file.json: cannot read it"),
    (["schemas", "put", "BROKEN", "--semantic-type", "a.b.v1"], "not valid JSON"),
    (["schemas", "put", "ARRAY", "--semantic-type", "a.b.v1"], "a JSON Schema is a JSON object"),
    (["schemas", "put", "ARRAY", "--semantic-type", "Order.v1"], "semantic type 'Order.v1' is not an intent type"),
    (["schemas", "put", "ARRAY", "--semantic-type", "a.b.v1", "--compatibility-mode", "loose"],
     "--compatibility-mode 'loose'"),
    (["schemas", "put", "ARRAY", "--semantic-type", "a.b.v1", "--scope", "global"], "--scope 'global'"),
    (["schemas", "put", "ARRAY"], "--semantic-type"),
    (["schemas", "get", "not a type"], "semantic type 'not a type' is not an intent type"),
    (["intents", "controls", "ID"], "nothing to change"),
    (["intents", "controls", "ID", "--timeout", "5", "--deadline-at", "2030-01-01T00:00:00Z"],
     "--timeout and --deadline-at each set the deadline"),
    (["intents", "controls", "ID", "--deadline-at", "soon"], "--deadline-at 'soon'"),
    (["intents", "controls", "ID", "--timeout", "0"], "--timeout"),
    (["intents", "controls", "ID", "--max-retries", "1", "--max-delivery-attempts", "2"], "set the same thing"),
    (["intents", "controls", "ID", "--retry-backoff", "0"], "--retry-backoff 0"),
    (["intents", "controls", "not-an-id", "--timeout", "5"], "intent id 'not-an-id' is not a UUID"),
    (["intents", "policy", "ID"], "nothing to change"),
    (["intents", "policy", "ID", "--grant", "ops"], "--grant 'ops': expected WHO=ACTION"),
    (["intents", "policy", "ID", "--grant", "ops=delete"], "--grant 'ops=delete'"),
])
def test_bad_input_exits_2_naming_it(runtime: RuntimeProcess, home: Path, args: list[str], named: str) -> None:
    (home / "broken.json").write_text("{nope")
    (home / "array.json").write_text("[1]")
    fixed = [{"BROKEN": str(home / "broken.json"), "ARRAY": str(home / "array.json"), "ID": str(uuid.uuid4())}
             .get(a, a) for a in args]
    code, out, err = axme(runtime, *fixed)
    assert code == 2, out + err
    assert named in err, err
    assert "Traceback" not in out + err

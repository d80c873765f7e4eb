"""-f/--field k=v sends text exactly as typed; -F/--typed-field k=v sends a JSON value (or @file's text), never a
guess; both after --data-json and --data, on every command that takes fields."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from axme_cli.cli.inputs import merged_data
from axme_cli.errors import UsageError
from tests.cli.helpers import cli_invoke
from tests.conftest import unique
from tests.runtime_proc import RuntimeProcess


def test_text_fields_stay_text_and_typed_fields_are_json(tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("line one\nline two\n")
    data = merged_data('{"a": 1, "q": 0}', ["q=2", "v=1.10"], ["q=007", "n=null", "e="],
                       ["x=[1,2]", "t=true", 's="hi"', "z=null", f"doc=@{note}", "big=12345678901234567890"])
    assert data == {"a": 1, "q": "007", "v": "1.10", "n": "null", "e": "", "x": [1, 2], "t": True, "s": "hi",
                    "z": None, "doc": "line one\nline two\n", "big": 12345678901234567890}


@pytest.mark.parametrize(("fields", "typed", "message"), [
    (None, ["x=hello"], "--typed-field x: 'hello' is not a JSON value"),
    (None, ["x=NaN"], "--typed-field x: 'NaN' is not a JSON value"),
    (None, ["noeq"], "--typed-field 'noeq': expected key=value"),
    (["=v"], None, "--field '=v': expected key=value"),
    (None, ["f=@/nonexistent/file"], "--typed-field f: cannot read /nonexistent/file"),
])
def test_bad_fields_name_the_flag(fields: list[str] | None, typed: list[str] | None, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        merged_data(None, None, fields, typed)
    assert message in caught.value.message and caught.value.fix


@pytest.mark.backends("sqlite")  # the CLI builds the body; storage has no part in it
def test_send_with_fields_reaches_the_payload(runtime: RuntimeProcess, admin: httpx.Client, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AXME_CONFIG_DIR", str(tmp_path / "cfg"))
    result = cli_invoke([
        "intents", "send", "--to", unique("fielded"), "-f", "phone=5551234567890123456789", "-F", "qty=3",
        "--typed-field", 'tags=["a"]', "--field", "version=1.10", "--json", "--base-url", runtime.url,
        "--api-key", runtime.api_key or ""])
    assert result.exit_code == 0, result.stderr
    intent_id = json.loads(result.stdout)["intent_id"]
    payload = admin.get(f"/v1/intents/{intent_id}").json()["intent"]["payload"]
    assert payload == {"phone": "5551234567890123456789", "qty": 3, "tags": ["a"], "version": "1.10"}
    result = cli_invoke(["intents", "send", "--to", "x", "-F", "qty=three", "--base-url", runtime.url,
                                      "--api-key", runtime.api_key or ""])
    assert result.exit_code == 2 and "--typed-field qty: 'three' is not a JSON value" in result.stderr

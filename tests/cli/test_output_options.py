"""The output conventions of every command: -o/--output text|json|jsonl (--json is -o json), AXME_OUTPUT, --jq,
--quiet and --color, taken from anywhere on the line before `--`; and `context current|rename`, a secret from
stdin. Driven in-process (tests/cli/helpers.cli_invoke)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from axme_cli.cli.app import take_globals
from tests.cli.helpers import cli_invoke


def invoke(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = cli_invoke(list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def two_contexts() -> None:
    for name, port in (("alpha", 9), ("beta", 8)):
        code, _, err = invoke("context", "create", name, "--base-url", f"http://127.0.0.1:{port}")
        assert code == 0, err


@pytest.mark.parametrize(("argv", "found", "rest"), [
    (["-o", "json", "context", "list"], {"output": "json"}, ["context", "list"]),
    (["context", "list", "--output=jsonl"], {"output": "jsonl"}, ["context", "list"]),
    (["context", "list", "-ojsonl", "-q"], {"output": "jsonl", "quiet": True}, ["context", "list"]),
    (["context", "list", "--jq", ".items", "--color", "never"], {"jq": ".items", "color": "never"},
     ["context", "list"]),
    (["agents", "run", "x", "--", "prog", "-o", "json", "--quiet"], {}, ["agents", "run", "x", "--", "prog", "-o",
                                                                         "json", "--quiet"]),
])
def test_output_flags_are_taken_from_anywhere_before_the_double_dash(argv: list[str], found: dict[str, object],
                                                                      rest: list[str]) -> None:
    assert take_globals(argv) == (found, rest)


def test_a_command_with_its_own_short_o_keeps_it() -> None:
    assert take_globals(["tasks", "submit", "x", "-o", "approved"], own_o=True) == (
        {}, ["tasks", "submit", "x", "-o", "approved"])
    assert take_globals(["tasks", "submit", "x", "-o", "json", "--outcome", "ok"], own_o=True)[0] == {
        "output": "json"}


def test_json_jsonl_and_text_of_a_list(home: Path) -> None:
    two_contexts()
    code, out, _ = invoke("context", "list", "-o", "json")
    doc = json.loads(out)
    assert code == 0 and doc["ok"] is True and [c["name"] for c in doc["items"]] == ["alpha", "beta"]
    assert doc["next_cursor"] is None
    code, out, _ = invoke("-o", "jsonl", "context", "list")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [c["name"] for c in lines] == ["alpha", "beta"] and "ok" not in lines[0]
    code, out, _ = invoke("context", "list", "--output", "text")
    assert code == 0 and "NAME" in out and "alpha" in out and not out.startswith("{")


def test_axme_output_sets_the_default_and_a_flag_wins(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    two_contexts()
    monkeypatch.setenv("AXME_OUTPUT", "jsonl")
    code, out, _ = invoke("context", "list")
    assert code == 0 and len(out.splitlines()) == 2 and json.loads(out.splitlines()[0])["name"] == "alpha"
    code, out, _ = invoke("context", "list", "-o", "text")
    assert code == 0 and "NAME" in out
    monkeypatch.setenv("AXME_OUTPUT", "yaml")
    code, out, err = invoke("context", "list")
    assert code == 2 and "AXME_OUTPUT: 'yaml' is not an output format" in err and "text, json or jsonl" in err


def test_a_bad_output_format_is_a_usage_error_naming_the_flag(home: Path) -> None:
    code, _, err = invoke("context", "list", "-o", "yaml")
    assert code == 2 and "--output: 'yaml' is not an output format" in err
    code, _, err = invoke("context", "list", "--color", "purple")
    assert code == 2 and "--color: 'purple'" in err and "auto, always or never" in err


def test_jq_filters_the_json_and_prints_strings_raw(home: Path) -> None:
    two_contexts()
    code, out, _ = invoke("context", "list", "--jq", ".items[].name")
    assert code == 0 and out.splitlines() == ["alpha", "beta"]
    code, out, _ = invoke("context", "list", "--jq", "[.items[] | {name, active}]")
    assert code == 0 and json.loads(out) == [{"name": "alpha", "active": False}, {"name": "beta", "active": False}]
    code, out, _ = invoke("context", "list", "-o", "jsonl", "--jq", ".base_url")
    assert code == 0 and out.splitlines() == ["http://127.0.0.1:9", "http://127.0.0.1:8"]


def test_a_jq_program_jq_cannot_read_exits_2_naming_the_flag(home: Path) -> None:
    two_contexts()
    code, out, err = invoke("context", "list", "--jq", ".items[")
    assert code == 2 and "--jq:" in err and "syntax error" in err and "fix:" in err
    assert json.loads(out)["error"]["code"] == "usage_error"  # --jq asks for JSON, so the error is JSON too
    code, _, err = invoke("context", "list", "--jq", ".items.name")
    assert code == 2 and "--jq: Cannot index array" in err


def test_quiet_keeps_the_result_and_drops_the_hint(home: Path) -> None:
    code, out, _ = invoke("context", "create", "alpha", "--base-url", "http://127.0.0.1:9")
    assert code == 0 and "Created context alpha" in out
    code, out, _ = invoke("context", "list", "-q")
    assert code == 0 and "alpha" in out


def test_context_current_and_rename_keep_the_secret_and_the_active_mark(home: Path) -> None:
    two_contexts()
    code, _, err = invoke("context", "current")
    assert code == 2 and "no active context" in err and "axme context use" in err
    code, _, _ = invoke("context", "use", "alpha")
    assert code == 0
    code, out, _ = invoke("context", "set", "alpha", "--api-key", "-", stdin="s3cret-from-stdin\n")
    assert code == 0 and "s3cret" not in out
    code, out, _ = invoke("context", "current")
    assert code == 0 and out.strip() == "alpha"
    code, out, _ = invoke("context", "rename", "alpha", "gamma", "--json")
    assert code == 0 and json.loads(out) == {"ok": True, "context": "gamma", "renamed_from": "alpha"}
    code, out, _ = invoke("context", "current", "--json")
    assert json.loads(out) == {"ok": True, "context": "gamma", "base_url": "http://127.0.0.1:9"}
    code, out, _ = invoke("context", "show", "--show-key", "--jq", ".api_key")
    assert code == 0 and out.strip() == "s3cret-from-stdin"
    code, out, _ = invoke("context", "list", "--jq", "[.items[].name]")
    assert json.loads(out) == ["beta", "gamma"]
    secrets = (home / "cfg" / "secrets.json").read_text()
    assert "alpha" not in secrets and "gamma" in secrets


def test_rename_refuses_an_existing_name_a_missing_one_and_a_bad_one(home: Path) -> None:
    two_contexts()
    code, _, err = invoke("context", "rename", "alpha", "beta")
    assert code == 2 and "context 'beta' already exists" in err
    code, _, err = invoke("context", "rename", "nope", "x")
    assert code == 2 and "no context named 'nope'" in err
    code, _, err = invoke("context", "rename", "alpha", "bad/name")
    assert code == 2 and "context name 'bad/name' is not allowed" in err


def test_an_empty_stdin_secret_is_a_usage_error(home: Path) -> None:
    code, _, err = invoke("context", "create", "alpha", "--api-key", "-", stdin="")
    assert code == 2 and "--api-key -: stdin held no key" in err


def test_color_always_decorates_a_pipe_and_never_keeps_it_plain(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    two_contexts()
    monkeypatch.delenv("NO_COLOR")
    code, out, _ = invoke("context", "list", "--color", "always")
    assert code == 0 and "\x1b[" in out and "alpha" in out
    code, out, _ = invoke("context", "list", "--color", "never")
    assert code == 0 and "\x1b[" not in out and "alpha" in out

"""`axme completion bash|zsh|fish [--install]` and the values it completes: commands, context names, agent
addresses (scenario-agents.json) and the newest intent ids of the active context."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from axme_cli.cli.typer_internals import COMPLETE_VAR, completion_script
from tests.cli.helpers import cli_invoke, run
from tests.conftest import new_intent, unique
from tests.runtime_proc import RuntimeProcess


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AXME_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("AXME_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AXME_CLI_SECRET_STORAGE", "file")
    for name in ("AXME_BASE_URL", "AXME_API_KEY", "AXME_CONTEXT", "AXME_OUTPUT"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def invoke(*args: str) -> tuple[int, str, str]:
    result = cli_invoke(list(args))
    return result.exit_code, result.stdout, result.stderr


def complete(words: str, *, process: bool = False) -> list[str]:
    """What bash would offer after ``words`` (the last word is the one being completed), asked as bash asks: in
    this process (the command tree `axme` builds, the same environment variables), or with ``process`` by
    running `axme` as bash does."""
    parts = words.split(" ")
    env = dict(os.environ, COMP_WORDS=words, COMP_CWORD=str(len(parts) - 1), **{COMPLETE_VAR: "complete_bash"})
    if process:
        proc = subprocess.run([sys.executable, "-m", "axme_cli"], env=env, capture_output=True, text=True,
                              timeout=60)
    else:
        proc = run(env)
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stdout.splitlines() if line]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_script_of_each_shell_calls_axme_back(home: Path, shell: str) -> None:
    code, out, _ = invoke("completion", shell)
    assert code == 0 and COMPLETE_VAR in out and "axme" in out
    assert out.rstrip("\n") == completion_script(shell).rstrip("\n")
    code, out, _ = invoke("completion", shell, "--json")
    assert json.loads(out)["script"].rstrip("\n") == completion_script(shell).rstrip("\n")


def test_an_unknown_shell_is_a_usage_error(home: Path) -> None:
    code, _, err = invoke("completion", "tcsh")
    assert code == 2 and "'tcsh' is not a shell axme completes" in err and "bash, zsh or fish" in err


def test_install_writes_the_script_where_bash_reads_it(home: Path) -> None:
    code, out, _ = invoke("completion", "bash", "--install", "--json")
    assert code == 0, out
    installed = Path(json.loads(out)["installed_in"])
    assert installed.is_relative_to(home) and installed.exists()
    assert COMPLETE_VAR in "".join(p.read_text() for p in home.rglob("*") if p.is_file() and p.suffix != ".json")


def test_commands_context_names_and_agent_addresses_complete(home: Path) -> None:
    for name in ("prod", "staging"):
        assert invoke("context", "create", name, "--base-url", "http://127.0.0.1:9")[0] == 0
    (home / "cfg").mkdir(exist_ok=True)
    agents = [{"address": "agent://local/dev/inventory", "base_url": "http://127.0.0.1:9", "token": "t"}]
    (home / "cfg" / "scenario-agents.json").write_text(json.dumps({"agents": agents}))
    assert "intents" in complete("axme inte")
    assert complete("axme context use ", process=True) == ["prod", "staging"]  # as bash runs it
    assert complete("axme status --context st") == ["staging"]
    assert complete("axme agents run inv") == ["inventory"]
    assert complete("axme intents send --to agent://") == ["agent://local/dev/inventory"]


@pytest.mark.backends("sqlite")  # the ids come from `GET /v1/intents`, whichever store answers it
def test_intent_ids_complete_from_the_active_context(home: Path, runtime: RuntimeProcess,
                                                     admin: httpx.Client) -> None:
    assert invoke("context", "create", "here", "--base-url", runtime.url, "--api-key", runtime.api_key or "")[0] == 0
    assert invoke("context", "use", "here")[0] == 0
    intent_id = admin.post("/v1/intents", json=new_intent(unique("completed"))).json()["intent_id"]
    assert intent_id in complete("axme intents get ")
    assert complete(f"axme intents describe {intent_id[:30]}") == [intent_id]
    assert complete("axme intents get zz") == []  # not an id: nothing asked, nothing offered

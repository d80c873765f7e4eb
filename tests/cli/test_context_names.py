"""Context names are checked, and making a context never makes it the active one on the side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.helpers import cli_invoke


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AXME_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("AXME_CLI_SECRET_STORAGE", "file")
    for name in ("AXME_BASE_URL", "AXME_API_KEY", "AXME_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.mark.parametrize("name", ["", "bad name/../x", "\udcff", ".x", "a" * 65, "../../etc"])
@pytest.mark.parametrize("command", ["create", "set"])
def test_bad_context_names_are_refused(home: Path, name: str, command: str) -> None:
    result = cli_invoke(["context", command, name, "--base-url", "http://127.0.0.1:9"])
    assert result.exit_code == 2, result.output
    assert "is not allowed" in result.stderr and "fix: use 1-64 letters" in result.stderr
    assert not (home / "cfg" / "config.json").exists()  # nothing written


def test_creating_a_context_does_not_activate_it(home: Path) -> None:
    result = cli_invoke(["context", "create", "ci.prod_1", "--base-url", "http://127.0.0.1:9"])
    assert result.exit_code == 0 and "axme context use ci.prod_1" in result.stdout
    config = json.loads((home / "cfg" / "config.json").read_text())
    assert "active_context" not in config and "ci.prod_1" in config["contexts"]
    result = cli_invoke(["context", "use", "ci.prod_1", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["active_context"] == "ci.prod_1"

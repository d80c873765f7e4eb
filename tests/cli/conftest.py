from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A CLI user of its own: config and data folders in the test's temp dir, secrets in a file (no keyring), no
    colour, and none of the caller's AXME_* settings. (Files that need another user define their own ``home``.)"""
    monkeypatch.setenv("AXME_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("AXME_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AXME_CLI_SECRET_STORAGE", "file")
    monkeypatch.setenv("NO_COLOR", "1")
    for name in ("AXME_BASE_URL", "AXME_API_KEY", "AXME_CONTEXT", "AXME_OUTPUT"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path

"""Running the installed `axme` as a user would: its own config folder, no colour, no inherited target."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, AXME_CONFIG_DIR=str(home / "cfg"), AXME_DATA_DIR=str(home / "data"),
               AXME_CLI_SECRET_STORAGE="file", NO_COLOR="1")
    for name in ("AXME_BASE_URL", "AXME_API_KEY", "AXME_CONTEXT", "AXME_DEBUG"):
        env.pop(name, None)
    env.update(extra)
    return env


def axme(env: dict[str, str], *args: str, timeout: float = 120, **popen: Any) -> subprocess.CompletedProcess[str]:
    popen.setdefault("capture_output", "stdout" not in popen)
    if "stdout" in popen:
        popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.run([sys.executable, "-m", "axme_cli", *args], env=env, text=True, timeout=timeout, **popen)


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    text = (result.stdout or "") + (result.stderr or "")
    assert "Traceback" not in text and "unexpected error" not in text and "Exception ignored" not in text, text

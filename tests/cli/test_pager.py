"""Long text for people goes through the pager (AXME_PAGER, else PAGER, else less -FRX) when stdout is a terminal
taller output than it; short text, pipes and JSON never do."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

RECORDER = "import sys; open(sys.argv[1], 'w').write(sys.stdin.read())"


def on_a_terminal(home: Path, *args: str, lines: int, pager: str | None) -> tuple[str, Path]:
    """Run axme with a pseudo-terminal as stdout; returns what reached the terminal and the pager's record."""
    record = home / "paged.txt"
    env = dict(os.environ, AXME_CONFIG_DIR=str(home / "cfg"), AXME_DATA_DIR=str(home / "data"), NO_COLOR="1",
               LINES=str(lines), COLUMNS="120")
    env.pop("PAGER", None)
    if pager is not None:
        env["AXME_PAGER"] = pager.format(record=record)
    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "axme_cli", *args], stdout=child, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=env)
    os.close(child)
    seen = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(timeout=60)
    os.close(main)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    return seen.decode(errors="replace"), record


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """Twelve contexts, so `context list` is 14 lines."""
    (tmp_path / "cfg").mkdir(mode=0o700)
    contexts = {f"ctx-{i:02d}": {"base_url": "http://127.0.0.1:9"} for i in range(12)}
    (tmp_path / "cfg" / "config.json").write_text(json.dumps({"contexts": contexts}))
    return tmp_path


def test_a_list_taller_than_the_terminal_is_paged(home: Path) -> None:
    pager = f"{sys.executable} -c \"{RECORDER}\" {{record}}"
    shown, record = on_a_terminal(home, "context", "list", lines=6, pager=pager)
    paged = record.read_text()
    assert "ctx-00" in paged and "ctx-11" in paged and "ctx-11" not in shown


def test_short_text_json_and_an_empty_pager_go_straight_to_the_terminal(home: Path) -> None:
    pager = f"{sys.executable} -c \"{RECORDER}\" {{record}}"
    shown, record = on_a_terminal(home, "context", "list", lines=100, pager=pager)
    assert "ctx-11" in shown and not record.exists()
    shown, record = on_a_terminal(home, "context", "list", "--json", lines=6, pager=pager)
    assert '"ctx-11"' in shown and not record.exists()
    shown, record = on_a_terminal(home, "context", "list", lines=6, pager="")
    assert "ctx-11" in shown and not record.exists()

"""The live view of `axme examples run` on a terminal: the title once, a RUNNING step's time moving between
events, the steps that never ran shown as such; and the demo agents listening before the intent is sent."""

from __future__ import annotations

import errno
import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.cli.helpers import env_for, run
from tests.runtime_proc import RuntimeProcess

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")
TITLE = "Order saga: reserve inventory -> charge payment -> create shipment, with compensation"


def _on_a_terminal(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run the installed command with a 200-column pseudo-terminal as stdout and stderr; its whole output."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 200, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "axme_cli", *args], env=env, stdin=subprocess.DEVNULL,
                            stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError as exc:  # EIO: the command ended and closed the terminal
            if exc.errno != errno.EIO:
                raise
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return proc.wait(timeout=120), ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))


@pytest.mark.slow(seconds=11)
@pytest.mark.backends("sqlite")
def test_live_view_on_a_terminal(runtime: RuntimeProcess, tmp_path: Path) -> None:
    env = env_for(tmp_path, AXME_BASE_URL=runtime.url, AXME_API_KEY=runtime.api_key or "", COLUMNS="200",
                  LINES="60", TERM="xterm-256color")
    env.pop("NO_COLOR")
    # Each demo step takes 1 s (four redraws a second); charge fails, so ship never runs and reserve is undone.
    code, screen = _on_a_terminal(env, "examples", "run", "order-saga", "--fail-at", "charge", "--delay", "1")
    assert code == 1, screen
    assert "Traceback" not in screen
    assert screen.count(TITLE) == 1, screen  # a heading line, not the table's title redrawn with every refresh
    assert re.search(r"^ship\s+NOT RUN\s*$", screen, re.M), screen  # a step that never ran is shown
    # reserve runs for 1 s: the table is redrawn meanwhile with its time going up, not frozen at the event's
    running = set(re.findall(r"^reserve\s+\S+\s+RUNNING\s+1\s+(\S+)", screen, re.M))
    assert len(running) >= 2, screen


@pytest.mark.backends("sqlite")
def test_agents_run_says_when_its_feed_is_open(runtime: RuntimeProcess, tmp_path: Path) -> None:
    """`examples run` sends the intent only once each demo agent's --ready-file exists."""
    env = env_for(tmp_path, AXME_BASE_URL=runtime.url, AXME_API_KEY=runtime.api_key or "")
    registered = run(env, "agents", "register", "--name", "ready-check", "--with-key")
    assert registered.returncode == 0, registered.stderr
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-m", "axme_cli", "agents", "run", "ready-check", "--handler",
                             "axme_cli.agents.demo:handle", "--ready-file", str(ready)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        limit = time.monotonic() + 60  # a guard against waiting forever, not a measurement
        while not ready.exists():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < limit, "the ready file never came"
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(30)

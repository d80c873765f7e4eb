"""The CLI's own files: a broken scenario-agents.json is named in a clear error (exit 2, no traceback, nothing
half-done), and a write killed half-way never leaves a truncated file (config/files.py writes a temp file, fsyncs
it and renames it over the old one). config.json and secrets.json: tests/cli/test_context_cli.py."""

from __future__ import annotations

import contextlib
import json
import random
import signal
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.cli.test_intents_cli import REPO, axme_many, cli_env, write_context
from tests.reliability.saga_load import crash_seed, record
from tests.runtime_proc import ADMIN_KEY, RuntimeProcess

pytestmark = pytest.mark.reliability

BROKEN = {
    "syntax": ('{"agents": [{"address": "agent://local/dev/x", ', "not valid JSON"),
    "not an object": ("[1, 2]", "expected a JSON dict"),
    "agents not a list": ('{"agents": "inventory"}', '"agents" must be a list of objects'),
}


def broken_home(tmp_path: Path, kind: str, url: str) -> tuple[dict[str, str], Path]:
    home = tmp_path / kind.replace(" ", "-")
    write_context(home, {"a": (url, ADMIN_KEY)}, active="a")
    agents = home / "config" / "scenario-agents.json"
    agents.write_text(BROKEN[kind][0])
    return cli_env(home), agents


@pytest.mark.parametrize("kind", list(BROKEN))
def test_a_broken_scenario_agents_json_is_named(quiet: RuntimeProcess, tmp_path: Path, kind: str) -> None:
    # a runtime of this module's own: the shared one may still be advancing other tests' sagas, whose new
    # step intents would count as intents created here
    runtime = quiet
    env, agents = broken_home(tmp_path, kind, runtime.url)
    what = BROKEN[kind][1]
    bundle = tmp_path / "saga.json"
    bundle.write_text((REPO / "scenarios" / "order-saga.json").read_text())
    with runtime.client() as admin:
        accounts = len(admin.get("/v1/service-accounts").json()["service_accounts"])
        intents = len(admin.get("/v1/intents", params={"limit": 500}).json()["intents"])
    run, run_json, apply, mint = axme_many([
        (["agents", "run", "inventory", "--", "true"], env),
        (["--json", "agents", "run", "inventory", "--", "true"], env),
        (["scenarios", "apply", str(bundle)], env),
        (["agents", "register", "--name", f"broken-{uuid.uuid4().hex[:8]}", "--with-key"], env),
    ])
    for one in (run, apply, mint):  # exit 2, one sentence naming the file on stderr, no traceback (axme checks)
        text = one.human_error(2, fix=False)
        assert str(agents) in text and what in text, str(one)
    error = run_json.error(2)
    assert error["code"] == "config_error" and str(agents) in error["message"] and what in error["message"]
    assert agents.read_text() == BROKEN[kind][0]  # never overwritten
    with runtime.client() as admin:  # nothing half-done: no agent provisioned, no workflow started, no key minted
        assert len(admin.get("/v1/service-accounts").json()["service_accounts"]) == accounts
        assert len(admin.get("/v1/intents", params={"limit": 500}).json()["intents"]) == intents


WRITER = """
import sys
import uuid
from pathlib import Path
from axme_cli.config.files import write_json
path, gen = Path(sys.argv[1]), int(sys.argv[2])
print("writing", flush=True)
while True:
    gen += 1
    write_json(path, {"gen": gen, "blob": "x" * (400_000 * (gen % 5 + 1)), "end": True})
"""


def check_complete(path: Path, after_gen: int) -> int:
    """The file is one complete document of some generation no older than ``after_gen``; returns its gen."""
    doc = json.loads(path.read_text())
    assert doc["end"] is True and len(doc["blob"]) == 400_000 * (doc["gen"] % 5 + 1), doc["gen"]
    assert doc["gen"] >= after_gen
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    return int(doc["gen"])


@pytest.mark.slow
def test_a_write_killed_half_way_leaves_the_old_or_the_new_file(tmp_path: Path,
                                                                tmp_path_factory: pytest.TempPathFactory) -> None:
    rng = random.Random(crash_seed())
    path = tmp_path / "config" / "config.json"
    path.parent.mkdir(mode=0o700)
    gen = 0
    kills, mid_write, newer = 0, 0, 0
    # 20 kills, and more (at most 200) until 3 of them landed inside a write: each write of 0.4-2 MB with its
    # fsync takes a few ms of a loop that also encodes the next document
    while kills < 20 or (mid_write < 3 and kills < 200):
        before = set(path.parent.glob(".config.json-*.tmp"))
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(gen)], stdout=subprocess.PIPE, cwd=REPO)
        assert proc.stdout is not None and proc.stdout.readline() == b"writing\n"
        proc.stdout.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(rng.uniform(0.02, 0.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        kills += 1
        left = set(path.parent.glob(".config.json-*.tmp")) - before
        mid_write += bool(left)  # its temp file is still there: the kill landed inside a write
        if path.exists():
            seen = check_complete(path, gen)
            newer += seen > gen
            gen = seen
    assert path.exists() and gen > 0 and newer > 0
    assert mid_write >= 3, f"only {mid_write} of {kills} kills landed during a write"
    record(tmp_path_factory.getbasetemp(), {"fault": "CLI file write killed", "kills": kills,
                                            "kills_mid_write": mid_write, "truncated_files": 0})

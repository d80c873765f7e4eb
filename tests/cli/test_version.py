"""`axme --version` answers as `axme version` does, in text and with --json, whatever else is on the line."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.helpers import env_for, no_traceback, run


def test_version_flag_is_the_version_command(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    command = run(env, "version")
    assert command.returncode == 0 and command.stdout.startswith("axme ")
    for args in (["--version"], ["--version", "intents", "list"], ["--context", "nowhere", "--version"]):
        flag = run(env, *args)
        no_traceback(flag)
        assert (flag.returncode, flag.stdout, flag.stderr) == (0, command.stdout, ""), args
    as_json = run(env, "version", "--json")
    for args in (["--version", "--json"], ["--json", "--version"]):
        flag = run(env, *args)
        assert flag.returncode == 0 and flag.stdout == as_json.stdout, args
    assert json.loads(as_json.stdout)["ok"] is True

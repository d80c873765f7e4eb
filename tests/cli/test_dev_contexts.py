"""A second `axme dev` never takes over the context of a runtime that may still run: it keeps one of its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.helpers import no_traceback, run
from tests.runtime_proc import RuntimeProcess


@pytest.mark.slow
def test_a_second_dev_keeps_a_context_of_its_own(tmp_path: Path) -> None:
    first = RuntimeProcess(tmp_path / "one", api_key=None)
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    second = RuntimeProcess(tmp_path / "two", api_key=None)
    second.env = first.env  # one user, one config folder, two runtimes (each its own database and key)
    first.start()
    try:
        second.start()
        try:
            config = json.loads((tmp_path / "one" / "config" / "config.json").read_text())
            assert config["active_context"] == "local"
            assert config["contexts"]["local"]["base_url"] == first.url
            own = f"local-{second.port}"
            assert config["contexts"][own]["base_url"] == second.url
            kept = json.loads((tmp_path / "one" / "config" / "secrets.json").read_text())
            assert kept["local"]["api_key"] == Path(str(first.db) + ".key").read_text().strip()
            assert kept[own]["api_key"] == Path(str(second.db) + ".key").read_text().strip()
            assert f'CLI context "{own}" (not active: `axme context use {own}`)' in (
                tmp_path / "two" / "runtime.log").read_text()
            # both are reachable through the CLI, each with its own key
            for args, url in ((("status",), first.url), (("--context", own, "status"), second.url)):
                out = run(first.env, *args)
                assert out.returncode == 0 and url in out.stdout, out.stdout + out.stderr
            listed = run(first.env, "--context", own, "intents", "list", "--json")
            assert listed.returncode == 0, listed.stderr
        finally:
            second.stop()
        # the second stopped: the first is still what the active context reaches
        out = run(first.env, "status")
        assert out.returncode == 0 and first.url in out.stdout
        no_traceback(out)
        # a restart of the second on its port takes back its own context, not `local`
        second.start()
        config = json.loads((tmp_path / "one" / "config" / "config.json").read_text())
        assert config["contexts"]["local"]["base_url"] == first.url
        assert config["contexts"][f"local-{second.port}"]["base_url"] == second.url
    finally:
        second.retire()  # both stopped at the end of the session (nothing reopens their databases)
        first.retire()

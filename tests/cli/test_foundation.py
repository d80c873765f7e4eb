"""`axme --help`, `axme version`, `axme status` and `axme dev` as a user runs them: in this process, and as a process
where the process is what is tested (the import cost of --help, `axme dev` starting and stopping)."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.cli.helpers import run
from tests.runtime_proc import TLS, RuntimeProcess


def isolated_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, AXME_CONFIG_DIR=str(tmp_path / "cfg"), AXME_DATA_DIR=str(tmp_path / "data"))
    env.pop("AXME_BASE_URL", None)
    env.pop("AXME_API_KEY", None)
    return env


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys\n"
        "sys.argv = ['axme', '--help']\n"
        "from axme_cli.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('httpx', 'rich', 'pydantic', 'starlette', 'uvicorn',"
        " 'mcp', 'mcp_types', 'httpx2', 'jsonschema')"
        " or m.startswith('axme_cli.runtime')]\n"
        "print('HEAVY=' + ','.join(sorted(heavy)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert "Usage: axme" in out.stdout
    assert "HEAVY=\n" in out.stdout, out.stdout


def test_no_garbage_collection_until_the_command_runs() -> None:
    """main() keeps the collector off through the imports and click's parsing (nothing to collect there), and the
    command runs with it on, as does the caller after a usage error that never reaches a command."""
    code = (
        "import gc, platform, sys\n"
        "class Finder:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'axme_cli.cli.app':\n"
        "            print(f'IMPORT enabled={gc.isenabled()}')\n"
        "sys.meta_path.insert(0, Finder())\n"
        "real = platform.python_version\n"
        "def spy():\n"
        "    print(f'IN_COMMAND enabled={gc.isenabled()}')\n"
        "    return real()\n"
        "platform.python_version = spy\n"
        "from axme_cli.cli import main\n"
        "for argv in (['axme', 'version'], ['axme', 'no-such-command']):\n"
        "    sys.argv = argv\n"
        "    try:\n        main()\n    except SystemExit:\n        pass\n"
        "    print(f'AFTER enabled={gc.isenabled()}')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith(("IMPORT", "IN_COMMAND", "AFTER"))]
    assert lines == ["IMPORT enabled=False", "IN_COMMAND enabled=True", "IN_COMMAND enabled=True",
                     "AFTER enabled=True", "AFTER enabled=True"], out


def test_tune_gc_turns_the_collector_on_again() -> None:
    """`axme dev`/`server` start with the collector off (cli/dev.py); tune_gc, once the runtime has
    started, freezes what the start made and turns collection on again."""
    import gc

    from axme_cli.runtime.server import tune_gc

    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    gc.disable()
    try:
        tune_gc()
        assert gc.isenabled()
        assert gc.get_threshold()[0] == 50_000 and gc.get_freeze_count() > 0
    finally:
        gc.enable()
        gc.set_threshold(*thresholds)
        if not frozen:
            gc.unfreeze()


def test_version(tmp_path: Path) -> None:
    from axme_cli import __version__

    out = run(isolated_env(tmp_path), "version")
    assert out.returncode == 0 and out.stdout.startswith(f"axme {__version__}")
    out = run(isolated_env(tmp_path), "version", "--json")
    assert json.loads(out.stdout)["version"] == __version__


def test_status_against_the_runtime(runtime: RuntimeProcess, tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    out = run(env, "status", "--base-url", runtime.url)
    assert out.returncode == 0, out.stderr
    storage = {"sqlite": "sqlite", "postgres": "postgresql"}[runtime.backend]
    assert f"{runtime.url} (ok)" in out.stdout and storage in out.stdout
    out = run(dict(env, AXME_BASE_URL=runtime.url), "status", "--json")
    assert out.returncode == 0
    body = json.loads(out.stdout)
    assert body["ok"] is True and body["storage"] == storage and body["service"] == "axme-dev"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_status_when_nothing_listens(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    out = run(isolated_env(tmp_path), "status", "--base-url", url)
    assert out.returncode == 1
    assert f"cannot reach {url}" in out.stderr and "axme dev" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    out = run(isolated_env(tmp_path), "status", "--base-url", url, "--json")
    assert out.returncode == 1
    assert json.loads(out.stdout) == {"ok": False, "error": {"code": "unreachable",
                                                             "message": f"cannot reach {url}"}}


def test_corrupt_config_is_named_not_a_traceback(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "config.json").write_text("{not json")
    out = run(env, "status")
    assert out.returncode == 2
    assert str(cfg / "config.json") in out.stderr and "Traceback" not in out.stderr


@pytest.mark.backends("sqlite")  # the runtime only holds the port
def test_busy_port_and_bad_flags_exit_2(runtime: RuntimeProcess, tmp_path: Path) -> None:
    port = runtime.url.rsplit(":", 1)[1]
    out = run(isolated_env(tmp_path), "dev", "--port", port, "--db", str(tmp_path / "x.db"))
    assert out.returncode == 2
    assert f"127.0.0.1:{port} is already in use" in out.stderr
    assert "Traceback" not in out.stderr
    out = run(isolated_env(tmp_path), "dev", "--org", "Not_A_Slug", "--db", str(tmp_path / "x.db"))
    assert out.returncode == 2 and "--org" in out.stderr
    out = run(isolated_env(tmp_path), "dev", "--no-such-flag")
    assert out.returncode == 2


@pytest.mark.slow
def test_dev_writes_the_local_context_and_keeps_its_key(tmp_path: Path) -> None:
    rt = RuntimeProcess(tmp_path, api_key=None).start()
    try:
        cfg = tmp_path / "config"
        config = json.loads((cfg / "config.json").read_text())
        assert config["active_context"] == "local"
        assert config["contexts"]["local"]["base_url"] == rt.url
        assert "api_key" not in json.dumps(config)
        secrets_file = cfg / "secrets.json"
        assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
        key = json.loads(secrets_file.read_text())["local"]["api_key"]
        key_file = Path(str(rt.db) + ".key")
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert key_file.read_text().strip() == key
        with httpx.Client(verify=TLS, base_url=rt.url, headers={"x-api-key": key}) as client:
            assert client.get("/v1/intents").status_code == 200
        assert key not in (tmp_path / "runtime.log").read_text()  # never in logs or the banner
        assert rt.stop() == 0  # SIGTERM: clean shutdown
        rt.start()  # the same key is kept across restarts
        with httpx.Client(verify=TLS, base_url=rt.url, headers={"x-api-key": key}) as client:
            assert client.get("/v1/intents").status_code == 200
        # the CLI finds the runtime through the context the runtime wrote
        out = run(rt.env, "status")
        assert out.returncode == 0 and rt.url in out.stdout
    finally:
        rt.retire()

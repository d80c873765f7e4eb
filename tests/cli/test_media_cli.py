"""`axme media upload FILE` (create-upload, PUT, finalize with size and sha256) and `axme media get ID [-o FILE]`
against a real runtime: the bytes come back as they went, --json is one document, and bad input names the file
or flag with the fix (exit 2) before anything is sent."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import httpx
import pytest

from tests.cli.helpers import axme, cli_invoke, env_for, no_traceback
from tests.runtime_proc import RuntimeProcess

pytestmark = pytest.mark.backends("sqlite")  # the runtime's side runs on both in tests/runtime/api/test_media.py


def _env(rt: RuntimeProcess, home: Path) -> dict[str, str]:
    return env_for(home, AXME_BASE_URL=rt.url, AXME_API_KEY=rt.api_key or "")


def test_upload_then_get_and_download(quiet: RuntimeProcess, api: httpx.Client, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed command once, then in-process (cli_invoke) for the rest."""
    env = _env(quiet, tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    source = tmp_path / "Quarterly report.pdf"
    data = os.urandom(600_000)  # more than one piece of the CLI's reads
    source.write_bytes(data)

    sent = axme(env, "media", "upload", str(source))
    no_traceback(sent)
    assert sent.returncode == 0, sent.stderr
    *summary, upload_id = sent.stdout.strip().splitlines()
    assert "✓ Uploaded Quarterly report.pdf (600000 bytes, application/pdf" in summary[0]
    got = api.get(f"/v1/media/{upload_id}").json()["upload"]
    assert (got["status"], got["sha256"]) == ("ready", hashlib.sha256(data).hexdigest())

    result = cli_invoke(["media", "upload", str(source), "--mime-type", "Application/Octet-Stream",
                                      "--name", "q.bin", "--json"])
    assert result.exit_code == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["ok"] is True and answer["status"] == "ready" and answer["mime_type"] == "application/octet-stream"

    target = tmp_path / "copy.pdf"
    target.write_bytes(b"old contents")  # replaced
    result = cli_invoke(["media", "get", upload_id, "-o", str(target), "--json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["upload"]["filename"] == "Quarterly report.pdf" and doc["bytes"] == len(data)
    assert target.read_bytes() == data and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".axme-download-")] == []

    result = cli_invoke(["media", "get", upload_id])
    assert result.exit_code == 0 and "Status:  ready" in result.stdout and "application/pdf" in result.stdout


def test_bad_input_names_the_file_or_flag_and_exits_2(quiet: RuntimeProcess, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process (cli_invoke: the same root and error mapping, without a process per case)."""
    for name, value in _env(quiet, tmp_path).items():
        monkeypatch.setenv(name, value)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    good = tmp_path / "good.txt"
    good.write_bytes(b"hello")
    cases = [
        (["upload", str(tmp_path / "missing.pdf")], "missing.pdf: no such file"),
        (["upload", str(tmp_path)], "not a regular file"),
        (["upload", str(empty)], "empty.txt: the file is empty"),
        (["upload", str(good), "--mime-type", "pdf"], "--mime-type 'pdf' is not valid"),
        (["upload", str(good), "--name", "../x"], "--name '../x' is not valid"),
        (["get", "not-an-id"], "upload id 'not-an-id' is not valid"),
        (["get", "01a24bd1-cc74-7000-91e4-629dbb320455", "-o", str(tmp_path)], "is a folder"),
    ]
    for args, said in cases:
        result = cli_invoke(["media", *args, "--json"])
        assert result.exit_code == 2, (args, result.stderr)
        assert said in result.stderr and "fix:" in result.stderr, (args, result.stderr)
        assert json.loads(result.stdout)["ok"] is False
    missing = cli_invoke(["media", "get", "01a24bd1-cc74-7000-91e4-629dbb320455", "-o",
                                       str(tmp_path / "x")])
    assert missing.exit_code == 1 and "not found" in missing.stderr
    assert not (tmp_path / "x").exists()

"""Ordinary bad input is a usage error (exit 2) naming the flag, file or field and the fix, caught before any
request; and `--data k=v` never changes what was typed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.helpers import env_for, no_traceback, run
from tests.runtime_proc import RuntimeProcess


@pytest.mark.backends("sqlite")
def test_data_pairs_keep_what_was_typed(runtime: RuntimeProcess, tmp_path: Path) -> None:
    env = env_for(tmp_path, AXME_BASE_URL=runtime.url, AXME_API_KEY=runtime.api_key or "")
    out = run(env, "intents", "send", "--to", "typed-data", "--json", "--data", "phone=5551234567890123456789",
               "--data", "e=1e400", "--data", "version=1.10", "--data", "quantity=2", "--data", "price=9.5",
               "--data", "ok=true", "--data", "none=null", "--data", "name=ann", "--data", "big=9223372036854775807",
               "--data", "tags=[1,2]", "--data", "zip=02134", "--data", "nan=NaN")
    assert out.returncode == 0, out.stderr
    intent_id = json.loads(out.stdout)["intent_id"]
    got = json.loads(run(env, "intents", "get", intent_id, "--json").stdout)["intent"]["payload"]
    assert got == {"phone": "5551234567890123456789", "e": "1e400", "version": "1.10", "quantity": 2,
                   "price": 9.5, "ok": True, "none": None, "name": "ann", "big": 9223372036854775807,
                   "tags": [1, 2], "zip": "02134", "nan": "NaN"}


def _bad_file(tmp_path: Path) -> str:
    path = tmp_path / "binary.bin"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    return str(path)


CASES = [
    # (argv, extra environment, what stderr must name)
    (lambda t: ["intents", "send", "--to", "x", "--data-json", "@" + _bad_file(t)], {}, "is not UTF-8 text"),
    (lambda t: ["intents", "send", "--to", "x", "--data", "tags=[1,"], {}, "--data tags: not valid JSON"),
    (lambda t: ["intents", "get", "\udcff"], {}, "intent id '\\xff' is not a UUID"),
    (lambda t: ["intents", "log", "not-an-id"], {}, "intent id 'not-an-id' is not a UUID"),
    (lambda t: ["intents", "list", "--status", "BOGUS"], {}, "--status 'BOGUS': not a status"),
    (lambda t: ["intents", "cleanup", "--status", "completed,nope"], {}, "--status 'NOPE': not a status"),
    (lambda t: ["intents", "send", "--to", "x", "--deadline-at", "tomorrow"], {}, "--deadline-at 'tomorrow'"),
    (lambda t: ["intents", "send", "--to", "x", "--deadline-at", "2030-01-01T00:00:00"], {}, "with a zone"),
    (lambda t: ["--base-url", "notaurl", "status"], {}, "--base-url: 'notaurl' is not an http(s) URL"),
    (lambda t: ["status"], {"AXME_BASE_URL": "ftp://x"}, "AXME_BASE_URL: 'ftp://x' is not an http(s) URL"),
    (lambda t: ["status"], {"AXME_BASE_URL": "http://h:port"}, "is not an http(s) URL"),
    (lambda t: ["context", "list"], {"AXME_CONFIG_DIR": "BADCFG"}, "config.json: is not UTF-8 text"),
    (lambda t: ["context", "create", "x"], {"AXME_CONFIG_DIR": "/proc/1"}, "/proc/1/config.json: cannot be written"),
    (lambda t: ["dev", "--host", "999.1.1.1", "--port", "0", "--db", str(t / "x.db")], {},
     "--host '999.1.1.1' is not an address of this machine"),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_bad_input_exits_2_naming_it(tmp_path: Path, case: int) -> None:
    argv, extra, named = CASES[case]
    if extra.get("AXME_CONFIG_DIR") == "BADCFG":
        (tmp_path / "bad").mkdir()
        (tmp_path / "bad" / "config.json").write_bytes(b"\xff\xfe{")
        extra = {"AXME_CONFIG_DIR": str(tmp_path / "bad")}
    env = env_for(tmp_path, AXME_API_KEY="axme_ws_never_sent", **extra)
    env.setdefault("AXME_BASE_URL", "http://127.0.0.1:9")  # nothing listens: a request would be exit 1
    if "AXME_BASE_URL" in extra:
        env["AXME_BASE_URL"] = extra["AXME_BASE_URL"]
    result = run(env, *argv(tmp_path))
    assert result.returncode == 2, result.stderr
    assert named in result.stderr and "cannot reach" not in result.stderr, result.stderr
    no_traceback(result)

"""`axme intents send` to an address nothing in the workspace serves: a warning with the fix (exit 0, sent), or
with --strict a refusal (exit 1, nothing sent). The runtime itself (agent_core in any form) and every service
account's address are served."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.helpers import env_for, no_traceback, run
from tests.conftest import unique
from tests.runtime_proc import RuntimeProcess

pytestmark = pytest.mark.backends("sqlite")


def _env(rt: RuntimeProcess, home: Path) -> dict[str, str]:
    return env_for(home, AXME_BASE_URL=rt.url, AXME_API_KEY=rt.api_key or "")


def _sent_to(env: dict[str, str], address: str) -> list[str]:
    listed = json.loads(run(env, "intents", "list", "--limit", "500", "--json").stdout)["items"]
    return [i["intent_id"] for i in listed if i["to_agent"] == address]


def test_unserved_addresses_warn_and_strict_refuses(quiet: RuntimeProcess, tmp_path: Path) -> None:
    env = _env(quiet, tmp_path)
    who = json.loads(run(env, "whoami", "--json").stdout)
    org, ws = who["org_id"], who["workspace_id"]
    name = unique("nosuchagent")
    for to, named in ((name, f"agent://{org}/{ws}/{name}"),
                      ("agent://myorg/production/order-service", "agent://myorg/production/order-service")):
        sent = run(env, "intents", "send", "--to", to, "--json")
        no_traceback(sent)
        assert sent.returncode == 0, sent.stderr
        assert f"axme: warning: nothing serves {named} in this workspace" in sent.stderr
        assert "fix: check --to against `axme agents list`" in sent.stderr
        assert json.loads(sent.stdout)["ok"] is True  # stdout stays the one document

    strict_name = unique("nosuchagent")
    refused = run(env, "intents", "send", "--to", strict_name, "--strict", "--json")
    no_traceback(refused)
    assert refused.returncode == 1, refused.stderr
    assert json.loads(refused.stdout)["error"]["code"] == "agent_not_served"
    assert f"axme agents register --name {strict_name} --with-key" in refused.stderr
    assert _sent_to(env, f"agent://{org}/{ws}/{strict_name}") == []  # nothing was sent


def test_served_addresses_send_quietly(quiet: RuntimeProcess, tmp_path: Path) -> None:
    env = _env(quiet, tmp_path)
    who = json.loads(run(env, "whoami", "--json").stdout)
    bot = unique("served-bot")
    assert run(env, "agents", "register", "--name", bot).returncode == 0
    full = f"agent://{who['org_id']}/{who['workspace_id']}/{bot}"
    for to in (bot, full):
        sent = run(env, "intents", "send", "--to", to, "--strict")
        assert sent.returncode == 0 and "warning" not in sent.stderr, sent.stderr
    core = f"agent://{who['org_id']}/{who['workspace_id']}/agent_core"
    for to in ("agent_core", "agent://agent_core", core):  # the runtime itself (a human task)
        sent = run(env, "intents", "send", "--to", to, "--strict", "--type", "intent.ask.v1")
        no_traceback(sent)
        assert "nothing serves" not in sent.stderr, (to, sent.stderr)


def test_an_agent_key_cannot_tell_and_does_not_warn(quiet: RuntimeProcess, tmp_path: Path) -> None:
    env = _env(quiet, tmp_path)
    bot = unique("keyed-bot")
    assert run(env, "agents", "register", "--name", bot).returncode == 0
    minted = run(env, "agents", "keys", "create", bot, "--json")
    token = json.loads(minted.stdout)["key"]["token"]
    sent = run(env, "intents", "send", "--to", unique("elsewhere"), "--strict", "--api-key", token)
    assert sent.returncode == 0 and "warning" not in sent.stderr, sent.stderr


@pytest.mark.parametrize("to", ["", "../x", "a b", "agent://", "\udcff", "x" * 5000, "agent://a/b/c/d/e"])
def test_hostile_addresses_end_cleanly(quiet: RuntimeProcess, tmp_path: Path, to: str) -> None:
    sent = run(_env(quiet, tmp_path), "intents", "send", "--to", to, "--strict")
    no_traceback(sent)
    assert sent.returncode in (1, 2), sent.stderr  # refused: by the check or by the runtime, never sent
    assert sent.stderr.startswith("axme: "), sent.stderr

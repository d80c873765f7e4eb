"""`axme users …` and `axme invites …` against a real runtime, driven in-process (typer's CliRunner): nicks,
profiles and invites with text and `--json` output; what is typed wrong exits 2 naming the argument or flag, before
any request or when the runtime refuses it (422). The runtime's own behaviour is tested on both backends in
tests/runtime/api/test_users.py and test_invites.py; here only the CLI is, on SQLite."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import typer
from click.testing import CliRunner

from axme_cli.cli.app import app
from tests.conftest import make_agent, unique
from tests.runtime_proc import RuntimeProcess

pytestmark = pytest.mark.backends("sqlite")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quiet: RuntimeProcess) -> Iterator[Path]:
    monkeypatch.setenv("AXME_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("AXME_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AXME_CLI_SECRET_STORAGE", "file")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("AXME_BASE_URL", quiet.url)
    monkeypatch.setenv("AXME_API_KEY", quiet.api_key or "")
    monkeypatch.delenv("AXME_CONTEXT", raising=False)
    yield tmp_path


@functools.cache
def command() -> click.Command:
    """The `axme` command, built once (typer's CliRunner builds every command of the tree on each call)."""
    return typer.main.get_command(app)


def axme(*args: str, key: str | None = None) -> tuple[int, str, str]:
    argv = [*args, *(["--api-key", key] if key else [])]
    result = CliRunner().invoke(command(), argv)
    assert "Traceback" not in result.stdout + result.stderr
    return result.exit_code, result.stdout, result.stderr


def as_json(*args: str, key: str | None = None) -> dict[str, Any]:
    code, out, err = axme(*args, "--json", key=key)
    assert code == 0, (out, err)
    return dict(json.loads(out))


def nick(prefix: str = "cli") -> str:
    return f"@{prefix}.{uuid.uuid4().hex[:10]}"


def test_an_agent_registers_renames_and_updates_its_nick(home: Path, api: Any) -> None:
    address, key = make_agent(api, unique("cli-agent"))
    name = nick()
    code, out, _ = axme("users", "check-nick", name)
    assert code == 0 and out.strip() == f"{name} is available (public address {name[1:]}@ax)."
    user = as_json("users", "register-nick", name, "--display-name", "CLI bot", key=key)
    assert user["ok"] is True and (user["nick"], user["owner_agent"], user["display_name"]) == (
        name, address, "CLI bot")
    assert as_json("users", "check-nick", name)["available"] is False
    code, out, _ = axme("users", "whois", f"{name[1:]}@ax")
    assert code == 0 and f"Owner agent     {address}" in out and "Display name    CLI bot" in out
    assert as_json("users", "resolve", name)["owner_agent"] == address
    # an intent to the nick goes to the agent, and nothing warns that nobody serves it (--strict would refuse)
    sent = as_json("intents", "send", "--to", name, "--type", "cli.nick.v1", "--strict")
    assert as_json("intents", "get", sent["intent_id"])["intent"]["to_agent"] == address
    code, out, err = axme("intents", "send", "--to", nick("ghost"), "--type", "cli.nick.v1", "--strict", "--json")
    assert code == 1 and json.loads(out)["error"]["code"] == "nick_not_found", err
    renamed = nick("renamed")
    code, out, _ = axme("users", "rename-nick", renamed, key=key)  # an agent key: its own user
    assert code == 0 and out.startswith(f"✓ Renamed to {renamed}."), out
    updated = as_json("users", "profile", "update", "--phone", "+12025550100", key=key)
    assert (updated["phone"], updated["nick"]) == ("+12025550100", renamed)
    code, out, _ = axme("users", "profile", "show", "--owner-agent", renamed)  # the workspace key, by nick
    assert code == 0 and "Phone           +12025550100" in out
    # taken: a failure (exit 1) naming the code
    code, out, err = axme("users", "register-nick", renamed, "--json")
    assert code == 1 and json.loads(out)["error"]["code"] == "nick_taken" and "is taken" in err


def test_invites_create_show_accept(home: Path, api: Any) -> None:
    owner, _ = make_agent(api, unique("cli-owner"))
    accepter, key = make_agent(api, unique("cli-accepter"))
    created = as_json("invites", "create", "--owner-agent", owner, "--hint", "Partner A", "--ttl", "3600")
    assert created["status"] == "pending" and created["token"].startswith("axme_inv_")
    code, out, _ = axme("invites", "show", created["invite_url"])  # the URL names the token too
    assert code == 0 and "Status          pending" in out and "Recipient hint  Partner A" in out
    name = nick("joined")
    code, out, _ = axme("invites", "accept", created["token"], "--nick", name, key=key)
    assert code == 0 and out.strip() == f"✓ Accepted: you are {name} ({accepter}), invited by {owner}."
    shown = as_json("invites", "show", created["token"])
    assert (shown["status"], shown["accepted_owner_agent"], shown["nick"]) == ("accepted", accepter, name)
    code, out, err = axme("invites", "accept", created["token"], "--nick", nick(), "--json")
    assert code == 1 and json.loads(out)["error"]["code"] == "invite_already_accepted", err
    # the default owner: the key's own address
    mine = as_json("invites", "create", key=key)
    assert mine["owner_agent"] == accepter


BAD = [
    # (argv, what stderr must name)
    (["users", "check-nick", "@ab"], "NICK: '@ab' is not a nick"),
    (["users", "register-nick", "@ann lee"], "NICK: '@ann lee' is not a nick"),
    (["users", "register-nick", "@ok.name", "--phone", "call me"], "--phone 'call me': must be a phone number"),
    (["users", "register-nick", "@ok.name", "--email", "nope"], "--email 'nope': must be an email address"),
    (["users", "register-nick", "@ok.name", "--display-name", ""], "--display-name: 1 to 120 characters"),
    (["users", "register-nick", "@ok.name", "--display-name", "a\tb"], "must not contain control characters"),
    (["users", "whois", "@x"], "NICK: '@x' is not a nick"),
    (["users", "rename-nick", "@new.name"], "--owner-agent: required with this key"),
    (["users", "profile", "update", "--owner-agent", "x@y"], "nothing to change"),
    (["users", "profile", "update", "--nick", "@!!!"], "--nick: '@!!!' is not a nick"),
    (["users", "profile", "show", "--owner-agent", "has space"], "--owner-agent: 'has space' is not an agent address"),
    (["invites", "create", "--ttl", "59"], "--ttl"),
    (["invites", "create", "--hint", ""], "--hint: 1 to 255 characters"),
    (["invites", "show", "short"], "TOKEN 'short' is not an invite token"),
    (["invites", "accept", "axme_inv_" + "a" * 43, "--nick", "@x"], "--nick: '@x' is not a nick"),
    (["invites", "accept", "axme_inv_" + "a" * 43], "--nick"),
]


@pytest.mark.parametrize("case", range(len(BAD)))
def test_bad_input_exits_2_naming_it(home: Path, case: int) -> None:
    argv, named = BAD[case]
    code, out, err = axme(*argv)
    assert code == 2 and named in err, (code, out, err)
    code, out, _ = axme(*argv, "--json")
    assert code == 2 and json.loads(out)["ok"] is False

"""`axme agents ...` as a user runs them, in this process (a prompt on a terminal: a process), against the real
runtime.

Helpers (``cli_env``, ``write_context``, ``axme``, ``axme_many``, ``assert_snapshot``) come from
test_intents_cli.py; each test has a config dir of its own, so its scenario-agents.json is its own.
``--json`` shapes are compared with ``tests/snapshots/agents_*.json`` (rewrite with AXME_UPDATE_SNAPSHOTS=1).
"""

from __future__ import annotations

import json
import os
import pty
import re
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.test_intents_cli import REPO, Run, assert_snapshot, axme, axme_many, cli_env, write_context
from tests.runtime_proc import ADMIN_KEY, RuntimeProcess
from tests.runtime_thread import RuntimeThread

ENTRY_FIELDS = {"address", "service_account_id", "key_id", "api_key", "created_at", "base_url"}


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    proc = RuntimeThread(tmp_path_factory.mktemp("cli-agents-rt"), extra_args=["--redelivery-seconds", "600"])
    proc.start()
    yield proc
    proc.retire()


@pytest.fixture(scope="module")
def api(rt: RuntimeProcess) -> Iterator[httpx.Client]:
    with rt.client() as client:
        yield client


@pytest.fixture
def home(rt: RuntimeProcess, tmp_path: Path) -> Path:
    write_context(tmp_path, {"test": (rt.url, ADMIN_KEY)}, active="test")
    return tmp_path


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    return cli_env(home)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def agents_file(home: Path) -> Path:
    return home / "config" / "scenario-agents.json"


def entries(home: Path) -> list[dict[str, Any]]:
    path = agents_file(home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, oct(path.stat().st_mode)
    return list(json.loads(path.read_text())["agents"])


def status_with(rt: RuntimeProcess, token: str, name: str) -> int:
    """What the runtime answers an agent key asking for its own agent."""
    with rt.client(token) as client:
        return client.get(f"/v1/agents/{name}").status_code


def new_sa(api: httpx.Client, name: str) -> dict[str, Any]:
    r = api.post("/v1/service-accounts", json={"name": name})
    assert r.status_code == 200, r.text
    return dict(r.json()["service_account"])


def axme_tty(*args: str, env: dict[str, str], answer: str) -> Run:
    """Run with stdin on a terminal and type ``answer``."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "axme_cli", *args], stdin=slave, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, cwd=REPO, text=True)
    finally:
        os.close(slave)
    try:
        os.write(master, answer.encode())
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(master)
    run = Run(args, proc.returncode, out, err)
    assert "Traceback" not in out + err, str(run)
    return run


# ---------------------------------------------------------------------------------------------
# register, list, show


def test_register_list_and_show_human_and_json(env: dict[str, str], api: httpx.Client) -> None:
    a, b = unique("inv"), unique("bill")
    addr_a, addr_b = f"agent://local/dev/{a}", f"agent://local/dev/{b}"
    human, as_json = axme_many([
        (["agents", "register", "--name", a, "--display-name", "Inventory bot", "--description", "Reserves stock"],
         env),
        (["agents", "register", "--name", b, "--json"], env),
    ])
    assert human.code == 0, str(human)
    assert human.out.startswith("Agent registered.\n"), str(human)
    assert re.search(rf"^  Agent address:\s+{addr_a}$", human.out, re.M), str(human)
    assert re.search(r"^  Service account:\s+[0-9a-f-]{36}$", human.out, re.M), str(human)
    assert f"axme agents keys create {addr_a} --save" in human.out  # the next step: a key
    assert as_json.code == 0, str(as_json)
    body = as_json.doc()
    sa_b = body["service_account"]
    assert body["ok"] is True and sa_b["agent_address"] == addr_b and sa_b["name"] == b and "key" not in body
    assert_snapshot("agents_register", body)

    r = api.post(f"/v1/service-accounts/{sa_b['service_account_id']}/keys", json={})
    assert r.status_code == 200, r.text
    key, token = r.json()["key"], r.json()["key"]["token"]

    listed, listed_json, limited, show_a, show_b, by_addr, by_path, by_id = axme_many([
        (["agents", "list"], env),
        (["agents", "list", "--json", "--limit", "1000"], env),
        (["--json", "agents", "list", "--limit", "1"], env),
        (["agents", "show", a], env),
        (["agents", "show", b], env),
        (["agents", "show", addr_b, "--json"], env),
        (["agents", "show", f"local/dev/{b}", "--json"], env),
        (["agents", "show", sa_b["service_account_id"], "--json"], env),
    ])

    assert listed.code == 0, str(listed)
    lines = listed.out.splitlines()
    assert lines[0].split() == ["ADDRESS", "DISPLAY_NAME", "STATUS", "CREATED_AT"]
    assert any(re.match(rf"^{addr_a}\s+Inventory bot\s+active\s+\d{{4}}-\d\d-\d\dT", line) for line in lines), lines
    assert any(re.match(rf"^{addr_b}\s+{b}\s+active\s+", line) for line in lines), lines
    assert listed_json.code == 0, str(listed_json)
    page = listed_json.doc()
    assert page["ok"] is True and page["next_cursor"] is None, str(listed_json)
    rows = page["items"]
    assert isinstance(rows, list)
    mine = [r for r in rows if r["address"] == addr_a]
    assert len(mine) == 1 and mine[0]["display_name"] == "Inventory bot" and mine[0]["status"] == "active"
    assert_snapshot("agents_list_item", mine)
    assert limited.code == 0 and len(limited.doc()["items"]) == 1, str(limited)

    assert show_a.code == 0, str(show_a)
    for field, value in (("address", addr_a), ("service_account_name", a), ("display_name", "Inventory bot"),
                         ("description", "Reserves stock"), ("status", "active"), ("keys", r"0 \(0 active\)")):
        assert re.search(rf"^{field}:\s+{value}$", show_a.out, re.M), f"{field}:\n{show_a}"
    assert f"No keys: mint one with `axme agents keys create {addr_a} --save`." in show_a.out
    assert show_b.code == 0, str(show_b)
    assert re.search(r"^keys:\s+1 \(1 active\)$", show_b.out, re.M), str(show_b)
    assert re.search(r"^KEY_ID\s+HINT\s+STATUS\s+CREATED_AT\s+EXPIRES_AT$", show_b.out, re.M), str(show_b)
    assert re.search(rf"^{key['key_id']}\s+{re.escape(key['key_hint'])}\s+active\s+\S+\s+never$", show_b.out, re.M)
    assert "\x1b[" not in show_b.out

    for run in (by_addr, by_path, by_id):  # every way of naming it: the same agent
        assert run.code == 0, str(run)
    shown = by_addr.doc()
    assert shown["ok"] is True and shown["agent"]["address"] == addr_b
    assert shown["agent"]["service_account_id"] == sa_b["service_account_id"]
    assert [k["key_id"] for k in shown["keys"]] == [key["key_id"]]
    assert by_path.doc() == shown and by_id.doc() == shown
    assert_snapshot("agents_show", shown)
    for run in (show_b, by_addr):  # key ids and hints, never the token
        assert token not in run.out and "axme_sa_" not in run.out, str(run)


def test_register_with_key_stores_it_and_prints_the_token_once(rt: RuntimeProcess, home: Path,
                                                               env: dict[str, str]) -> None:
    a, b, c = unique("reg"), unique("reg"), unique("reg")
    human, quiet, shown, show_without_key = axme_many([
        (["agents", "register", "--name", a, "--with-key"], env),
        (["agents", "register", "--name", b, "--with-key", "--json"], env),
        (["agents", "register", "--name", c, "--with-key", "--show-key", "--json"], env),
        (["agents", "register", "--name", unique("reg"), "--show-key"], env),
    ])

    assert human.code == 0, str(human)
    m = re.search(r"^  API key:\s+(axme_sa_\S+)$", human.out, re.M)
    assert m, str(human)
    token_a = m.group(1)
    assert (human.out + human.err).count(token_a) == 1  # printed once
    assert re.search(rf"^  Saved to:\s+{re.escape(str(agents_file(home)))}$", human.out, re.M), str(human)
    assert "shown only this once" in human.out

    assert quiet.code == 0, str(quiet)
    body = quiet.doc()
    assert "axme_sa_" not in quiet.out and "token" not in body["key"], str(quiet)  # not in --json by default
    assert body["saved_to"] == str(agents_file(home)) and body["service_account"]["name"] == b
    assert_snapshot("agents_register_with_key", body)

    assert shown.code == 0, str(shown)
    token_c = shown.doc()["key"]["token"]
    assert token_c.startswith("axme_sa_")
    assert "--with-key" in show_without_key.human_error(2)

    saved = {e["address"]: e for e in entries(home)}
    assert set(saved) == {f"agent://local/dev/{n}" for n in (a, b, c)}
    for entry in saved.values():
        assert set(entry) == ENTRY_FIELDS and entry["base_url"] == rt.url, entry
    entry_a, entry_b = saved[f"agent://local/dev/{a}"], saved[f"agent://local/dev/{b}"]
    assert entry_a["api_key"] == token_a and saved[f"agent://local/dev/{c}"]["api_key"] == token_c
    assert entry_b["key_id"] == body["key"]["key_id"]
    assert entry_b["service_account_id"] == body["service_account"]["service_account_id"]
    assert status_with(rt, entry_a["api_key"], a) == 200 and status_with(rt, entry_b["api_key"], b) == 200


# ---------------------------------------------------------------------------------------------
# keys


def test_keys_create_and_revoke(rt: RuntimeProcess, home: Path, env: dict[str, str], api: httpx.Client) -> None:
    name = unique("keyed")
    sa = new_sa(api, name)
    address, sa_id = sa["agent_address"], sa["service_account_id"]

    by_addr, by_id = axme_many([
        (["agents", "keys", "create", address, "--json"], env),
        (["agents", "keys", "create", "--agent-id", sa_id, "--expires-at", "2099-01-01T02:00:00+02:00", "--save"],
         env),
    ])
    assert by_addr.code == 0, str(by_addr)
    first = by_addr.doc()
    token_1, key_1 = first["key"]["token"], first["key"]["key_id"]  # --json carries the token: the point
    assert token_1.startswith(f"axme_sa_{sa_id}_") and first["address"] == address and first["saved_to"] is None
    assert first["key"]["expires_at"] is None and first["key"]["status"] == "active"
    assert_snapshot("agents_keys_create", first)

    assert by_id.code == 0, str(by_id)
    assert by_id.out.startswith(f"Key created for {address}.\n"), str(by_id)
    m = re.search(r"^  API key:\s+(axme_sa_\S+)$", by_id.out, re.M)
    assert m and by_id.out.count(m.group(1)) == 1, str(by_id)
    token_2 = m.group(1)
    m = re.search(r"^  Key ID:\s+(\S+)$", by_id.out, re.M)
    assert m, str(by_id)
    key_2 = m.group(1)
    assert re.search(r"^  Expires:\s+2099-01-01T00:00:00(\.0+)?Z$", by_id.out, re.M), str(by_id)
    assert re.search(r"^  Hint:\s+\.\.\.\S{4}$", by_id.out, re.M), str(by_id)
    [entry] = entries(home)
    assert entry["address"] == address and entry["key_id"] == key_2 and entry["api_key"] == token_2
    assert status_with(rt, token_1, name) == 200 and status_with(rt, token_2, name) == 200

    # the first key goes; the stored one (the second) stays in scenario-agents.json
    revoked = axme("agents", "keys", "revoke", name, "--key-id", key_1, "--json", env=env)
    assert revoked.code == 0, str(revoked)
    body = revoked.doc()
    assert body["key"]["key_id"] == key_1 and body["key"]["status"] == "revoked" and body["key"]["revoked_at"]
    assert body["removed_from_agents_file"] == 0 and "token" not in body["key"]
    assert_snapshot("agents_keys_revoke", body)
    assert status_with(rt, token_1, name) == 401
    assert status_with(rt, token_2, name) == 200
    assert [e["key_id"] for e in entries(home)] == [key_2]

    refused, human = axme_many([
        (["agents", "show", name, "--api-key", token_1], env),  # the CLI with the revoked key
        (["agents", "keys", "revoke", "--agent-id", sa_id, "--key-id", key_2], env),
    ])
    assert "refused" in refused.human_error(2)
    assert human.code == 0, str(human)
    assert human.out == (f"Key {key_2} of {address} revoked.\nRemoved it from {agents_file(home)}.\n"), str(human)
    assert status_with(rt, token_2, name) == 401
    assert entries(home) == []  # the revoked key left the file, which stays 0600

    shown = axme("agents", "show", address, "--json", env=env)
    assert {k["key_id"]: k["status"] for k in shown.doc()["keys"]} == {key_1: "revoked", key_2: "revoked"}


# ---------------------------------------------------------------------------------------------
# delete


def test_delete_removes_the_agent_and_its_scenario_agents_entry(rt: RuntimeProcess, home: Path,
                                                                env: dict[str, str], api: httpx.Client) -> None:
    a, b = unique("gone"), unique("gone")
    addr_a, addr_b = f"agent://local/dev/{a}", f"agent://local/dev/{b}"
    for run in axme_many([(["agents", "register", "--name", n, "--with-key"], env) for n in (a, b)]):
        assert run.code == 0, str(run)
    path = agents_file(home)
    stored = entries(home)
    elsewhere = {**next(e for e in stored if e["address"] == addr_a), "base_url": "http://other.example:8100"}
    path.write_text(json.dumps({"agents": [*stored, elsewhere]}))  # the same agent, kept for another runtime
    token_a = next(e["api_key"] for e in stored if e["address"] == addr_a)
    sa_b = next(e["service_account_id"] for e in stored if e["address"] == addr_b)

    refused, refused_json = axme_many([(["agents", "delete", a], env), (["agents", "delete", a, "--json"], env)])
    text = refused.human_error(2)
    assert "without confirmation" in text and "--yes" in text
    assert refused_json.error(2)["code"] == "confirmation_required"
    assert api.get(f"/v1/agents/{a}").status_code == 200  # still there

    deleted = axme("agents", "delete", a, "--yes", env=env)
    assert deleted.code == 0, str(deleted)
    assert deleted.out.startswith(f"Agent {addr_a} deleted (service account "), str(deleted)
    assert f"Removed its key from {path}." in deleted.out
    left = entries(home)
    assert [(e["address"], e["base_url"]) for e in left] == [(addr_b, rt.url), (addr_a, "http://other.example:8100")]
    assert api.get(f"/v1/agents/{a}").status_code == 404
    assert status_with(rt, token_a, a) == 401  # its keys are revoked

    by_id, again = axme_many([(["agents", "delete", sa_b, "-y", "--json"], env),
                              (["agents", "delete", a, "-y"], env)])
    assert by_id.code == 0, str(by_id)
    body = by_id.doc()
    assert body["deleted"] is True and body["service_account"]["address"] == addr_b
    assert body["service_account"]["status"] == "deleted" and body["removed_from_agents_file"] == 1
    assert_snapshot("agents_delete", body)
    assert "not found" in again.human_error(1)
    assert [e["address"] for e in entries(home)] == [addr_a]

    listed = axme("agents", "list", "--json", "--limit", "1000", env=env)
    assert not {addr_a, addr_b} & {r["address"] for r in listed.doc()["items"]}


def test_delete_asks_on_a_terminal(env: dict[str, str], api: httpx.Client) -> None:
    name = unique("asked")
    address = new_sa(api, name)["agent_address"]

    kept = axme_tty("agents", "delete", name, env=env, answer="n\n")
    assert kept.code == 1 and kept.out == "", str(kept)
    assert f"Delete agent {address} (service account " in kept.err and "[y/N]" in kept.err, str(kept)
    assert f"agent {address} was not deleted" in kept.err
    assert api.get(f"/v1/agents/{name}").status_code == 200

    gone = axme_tty("agents", "delete", name, env=env, answer="y\n")
    assert gone.code == 0 and gone.out.startswith(f"Agent {address} deleted"), str(gone)
    assert api.get(f"/v1/agents/{name}").status_code == 404


# ---------------------------------------------------------------------------------------------
# errors


def test_errors_are_sentences_with_exit_codes(rt: RuntimeProcess, home: Path, env: dict[str, str],
                                              api: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> None:
    name = unique("err")
    sa = new_sa(api, name)
    missing, some_id = unique("nope"), str(uuid.uuid4())
    no_creds = cli_env(tmp_path_factory.mktemp("no-creds"), AXME_BASE_URL=rt.url)
    (unknown, unknown_json, bad_name, bad_name_json, duplicate, bad_address, no_agent, both, bad_time, no_zone,
     unknown_id, unknown_key, delete_unknown, no_credentials) = axme_many([
        (["agents", "show", missing], env),
        (["agents", "show", missing, "--json"], env),
        (["agents", "register", "--name", "Bad Name"], env),
        (["agents", "register", "--name", "Bad Name", "--json"], env),
        (["agents", "register", "--name", name], env),
        (["agents", "show", "Not An Address"], env),
        (["agents", "keys", "create"], env),
        (["agents", "keys", "create", name, "--agent-id", sa["service_account_id"]], env),
        (["agents", "keys", "create", name, "--expires-at", "tomorrow"], env),
        (["agents", "keys", "create", name, "--expires-at", "2099-01-01T00:00:00"], env),
        (["agents", "keys", "create", "--agent-id", some_id, "--json"], env),
        (["agents", "keys", "revoke", name, "--key-id", some_id], env),
        (["agents", "delete", missing, "--yes"], env),
        (["agents", "list"], no_creds),
    ])
    assert f"not found: agent agent://local/dev/{missing} not found" in unknown.human_error(1)
    assert "axme agents list" in unknown.err
    assert unknown_json.error(1)["code"] == "agent_not_found"
    text = bad_name.human_error(1, fix=False)  # the API's own sentence
    assert "'Bad Name' is not a valid agent name" in text
    assert "is not a valid agent name" in bad_name_json.error(1)["message"]
    assert "already exists" in duplicate.human_error(1) and f"axme agents show {name}" in duplicate.err
    assert "is not an agent address" in bad_address.human_error(1, fix=False)
    assert "which agent?" in no_agent.human_error(2)
    assert "not both" in both.human_error(2, fix=False)
    assert "is not an RFC 3339 time" in bad_time.human_error(2)
    assert "time zone" in no_zone.human_error(2)
    assert unknown_id.error(1)["code"] == "service_account_not_found"
    assert "not found" in unknown_key.human_error(1) and f"axme agents show agent://local/dev/{name}" in unknown_key.err
    assert "not found" in delete_unknown.human_error(1)
    assert "no credentials" in no_credentials.human_error(2)
    assert not agents_file(home).exists()  # nothing was saved on the way

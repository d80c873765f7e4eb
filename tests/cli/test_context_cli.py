"""`axme context ...`, where the CLI finds its target (flags > env > context), and broken config files.

In-process runs with AXME_CONFIG_DIR in a temp folder and file secrets (helpers from test_intents_cli.py).
"""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any

from tests.cli.test_intents_cli import assert_snapshot, axme, axme_many, cli_env, dead_url, write_context
from tests.runtime_proc import ADMIN_KEY, RuntimeProcess

KEY_PROD = "prod-key-0123456789abcdef"
KEY_STAGE = "stage-key-0123456789abcdef"
KEY_STAGE_2 = "stage-key-2-0123456789abcdef"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def read(path: Path) -> Any:
    return json.loads(path.read_text())


# ---------------------------------------------------------------------------------------------
# create / set / use / show / list / delete


def test_context_commands_from_scratch_to_deleting_the_active_one(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    cfg = tmp_path / "config"
    cfg.mkdir()
    (cfg / "secrets.json").write_text("{}")
    (cfg / "secrets.json").chmod(0o644)  # a loose file from elsewhere: the next write makes it 0600

    empty, empty_json, no_active = axme_many([(["context", "list"], env), (["context", "list", "--json"], env),
                                              (["context", "show"], env)])
    assert empty.code == 0 and "No contexts yet" in empty.out, str(empty)
    assert empty_json.code == 0 and empty_json.doc() == {"ok": True, "items": [], "next_cursor": None}
    assert "no active context" in no_active.human_error(2)

    created = axme("context", "create", "prod", "--base-url", "http://127.0.0.1:9", "--api-key", KEY_PROD,
                   "--org-id", "acme", "--environment", "production", env=env)
    assert created.code == 0, str(created)
    assert created.out == "Created context prod. Make it the active one with `axme context use prod`.\n"
    assert "active_context" not in read(cfg / "config.json")  # never made active on the side
    assert axme("context", "use", "prod", env=env).code == 0
    again, stage = axme_many([
        (["context", "create", "prod", "--json"], env),
        (["context", "create", "stage", "--base-url", "https://stage.example", "--api-key", KEY_STAGE, "--json"],
         env),
    ])
    assert "already exists" in again.error(2)["message"]
    assert stage.code == 0, str(stage)
    assert stage.doc() == {"ok": True, "context": "stage", "active": False}  # the first one stays active

    config, secrets = read(cfg / "config.json"), read(cfg / "secrets.json")
    assert config["active_context"] == "prod"
    assert config["contexts"]["prod"] == {"base_url": "http://127.0.0.1:9", "org_id": "acme",
                                          "environment": "production"}
    text = (cfg / "config.json").read_text()
    assert KEY_PROD not in text and KEY_STAGE not in text and "api_key" not in text
    assert secrets == {"prod": {"api_key": KEY_PROD}, "stage": {"api_key": KEY_STAGE}}
    assert mode(cfg / "secrets.json") == 0o600

    listed, listed_json, shown, shown_json, keyed, keyed_json, unknown = axme_many([
        (["context", "list"], env),
        (["context", "list", "--json"], env),
        (["context", "show", "prod"], env),
        (["context", "show", "prod", "--json"], env),
        (["context", "show", "prod", "--show-key"], env),
        (["--json", "context", "show", "prod", "--show-key"], env),
        (["context", "use", "nope", "--json"], env),
    ])
    assert listed.code == 0, str(listed)
    rows = [line.split() for line in listed.out.splitlines()]
    assert rows[0][:3] == ["NAME", "ACTIVE", "BASE_URL"]
    assert rows[1][:3] == ["prod", "*", "http://127.0.0.1:9"] and rows[2][:2] == ["stage", "https://stage.example"]
    assert listed_json.code == 0, str(listed_json)
    page = listed_json.doc()
    assert page["ok"] is True and page["next_cursor"] is None
    entries = page["items"]
    assert [(e["name"], e["active"], e["has_api_key"]) for e in entries] == [("prod", True, True),
                                                                            ("stage", False, True)]
    assert_snapshot("context_list", entries)

    for run in (listed, listed_json, shown, shown_json):  # the key only when asked for
        assert KEY_PROD not in run.out and KEY_STAGE not in run.out, str(run)
    assert shown.code == 0 and re.search(r"^has_api_key:\s+True$", shown.out, re.M), str(shown)
    assert re.search(r"^org_id:\s+acme$", shown.out, re.M), str(shown)
    body = shown_json.doc()
    assert body["ok"] is True and "api_key" not in body and body["name"] == "prod" and body["active"] is True
    assert body["secret_storage"]["mode"] == "file"
    assert_snapshot("context_show", body)
    assert keyed.code == 0 and re.search(rf"^api_key:\s+{KEY_PROD}$", keyed.out, re.M), str(keyed)
    assert keyed_json.doc()["api_key"] == KEY_PROD
    assert "no context named 'nope'" in unknown.error(2)["message"]

    used = axme("context", "use", "stage", env=env)
    assert used.code == 0 and used.out == "Active context: stage (https://stage.example)\n", str(used)
    updated, bad_url = axme_many([
        (["context", "set", "stage", "--org-id", "o2", "--api-key", KEY_STAGE_2], env),
        (["context", "set", "prod", "--base-url", "ftp://nope"], env),
    ])
    assert updated.code == 0 and updated.out == "Updated context stage.\n", str(updated)
    text = bad_url.human_error(2, fix=False)  # the sentence says what to do
    assert "'ftp://nope' must start with http:// or https://" in text
    config, secrets = read(cfg / "config.json"), read(cfg / "secrets.json")
    assert config["active_context"] == "stage" and config["contexts"]["stage"]["org_id"] == "o2"
    assert config["contexts"]["prod"]["base_url"] == "http://127.0.0.1:9"
    assert secrets["stage"] == {"api_key": KEY_STAGE_2} and mode(cfg / "secrets.json") == 0o600
    assert KEY_STAGE_2 not in (cfg / "config.json").read_text()

    deleted = axme("context", "delete", "stage", env=env)  # the active one
    assert deleted.code == 0 and deleted.out == "Deleted context stage.\n", str(deleted)
    config, secrets = read(cfg / "config.json"), read(cfg / "secrets.json")
    assert "stage" not in config["contexts"] and config.get("active_context") in (None, "")
    assert "stage" not in secrets and KEY_STAGE_2 not in (cfg / "secrets.json").read_text()
    after, after_show, gone = axme_many([(["context", "list", "--json"], env), (["context", "show"], env),
                                         (["context", "delete", "stage", "--json"], env)])
    assert [(e["name"], e["active"]) for e in after.doc()["items"]] == [("prod", False)]
    assert "no active context" in after_show.human_error(2)
    assert "no context named 'stage'" in gone.error(2)["message"]


# ---------------------------------------------------------------------------------------------
# precedence: flags > AXME_* environment > the active context


def test_flags_beat_env_beat_the_context(runtime: RuntimeProcess, tmp_path: Path) -> None:
    dead = dead_url()
    # the active context points at a dead URL with a key the live runtime refuses
    write_context(tmp_path, {"dead": (dead, "dead-context-key-0000000000"), "live": (runtime.url, ADMIN_KEY)},
                  active="dead")
    env = cli_env(tmp_path)
    live_env = cli_env(tmp_path, AXME_BASE_URL=runtime.url, AXME_API_KEY=ADMIN_KEY)
    listing = ["intents", "list", "--limit", "1", "--json"]
    runs = axme_many([
        (listing, env),                                                         # 0 the context: dead
        (listing, live_env),                                                    # 1 env beats the context
        ([*listing, "--base-url", dead], live_env),                             # 2 flag beats env
        ([*listing, "--api-key", "wrong-flag-key-000000"], live_env),           # 3 flag key beats env key
        ([*listing, "--context", "live"], env),                                 # 4 --context beats active
        (listing, cli_env(tmp_path, AXME_CONTEXT="live")),                      # 5 AXME_CONTEXT beats active
        ([*listing, "--context", "dead"], cli_env(tmp_path, AXME_CONTEXT="live")),  # 6 flag beats AXME_CONTEXT
        (["--base-url", runtime.url, "--api-key", ADMIN_KEY, *listing], env),   # 7 global flags before the command
        (listing, cli_env(tmp_path, AXME_CONTEXT="nope")),                      # 8 unknown context
    ])
    assert runs[0].error(1) == {"code": "unreachable", "message": f"cannot reach {dead}"}
    assert runs[1].code == 0 and isinstance(runs[1].doc()["items"], list), str(runs[1])
    assert runs[2].error(1)["message"] == f"cannot reach {dead}"
    assert runs[3].error(2)
    assert runs[4].code == 0 and isinstance(runs[4].doc()["items"], list), str(runs[4])
    assert runs[5].code == 0 and isinstance(runs[5].doc()["items"], list), str(runs[5])
    assert runs[6].error(1)["message"] == f"cannot reach {dead}"
    assert runs[7].code == 0 and isinstance(runs[7].doc()["items"], list), str(runs[7])
    assert "no context named 'nope'" in runs[8].error(2)["message"]


# ---------------------------------------------------------------------------------------------
# broken files: exit 2, the file named and what to do with it in one sentence, no traceback (the helper checks
# every run for one)


def test_corrupt_config_json(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    config = tmp_path / "config" / "config.json"
    config.parent.mkdir()
    config.write_text("{not json")
    listed, sent, created, version = axme_many([
        (["context", "list"], env),
        (["--json", "intents", "send", "--to", "inventory"], env),
        (["context", "create", "fresh", "--base-url", "http://127.0.0.1:9"], env),
        (["version"], env),
    ])
    assert str(config) in listed.human_error(2, fix=False) and "not valid JSON" in listed.err
    error = sent.error(2)
    assert error["code"] == "config_error" and str(config) in error["message"]
    assert str(config) in created.human_error(2, fix=False)
    assert config.read_text() == "{not json"  # never overwritten
    assert version.code == 0  # commands that need no config still work


def test_config_json_of_the_wrong_shape(tmp_path: Path) -> None:
    homes = {name: tmp_path / name for name in ("list", "entry")}
    for home, content in ((homes["list"], {"contexts": []}),
                          (homes["entry"], {"active_context": "a", "contexts": {"a": "http://127.0.0.1:9"}})):
        (home / "config").mkdir(parents=True)
        (home / "config" / "config.json").write_text(json.dumps(content))
    runs = axme_many([(["context", "list"], cli_env(homes["list"])),
                      (["context", "list"], cli_env(homes["entry"])),
                      (["intents", "list", "--json"], cli_env(homes["entry"]))])
    assert str(homes["list"] / "config" / "config.json") in runs[0].human_error(2, fix=False)
    assert str(homes["entry"] / "config" / "config.json") in runs[1].human_error(2, fix=False)
    assert str(homes["entry"] / "config" / "config.json") in runs[2].error(2)["message"]


def test_unreadable_config_file(tmp_path: Path) -> None:
    config = tmp_path / "config" / "config.json"
    config.mkdir(parents=True)  # a directory where the file should be: unreadable, even for root
    run = axme("intents", "list", env=cli_env(tmp_path))
    assert str(config) in run.human_error(2, fix=False) and "cannot be read" in run.err


def test_corrupt_secrets_json(runtime: RuntimeProcess, tmp_path: Path) -> None:
    homes = {name: tmp_path / name for name in ("syntax", "entry")}
    for home in homes.values():
        write_context(home, {"a": (runtime.url, ADMIN_KEY)}, active="a")
    (homes["syntax"] / "config" / "secrets.json").write_text("{oops")
    (homes["entry"] / "config" / "secrets.json").write_text('{"a": "not an object"}')
    syntax_env, entry_env = cli_env(homes["syntax"]), cli_env(homes["entry"])
    runs = axme_many([
        (["intents", "list"], syntax_env),
        (["--json", "intents", "list"], syntax_env),
        (["context", "show", "a"], syntax_env),
        (["intents", "list"], entry_env),
        (["context", "list", "--json"], entry_env),
    ])
    secrets = str(homes["syntax"] / "config" / "secrets.json")
    assert secrets in runs[0].human_error(2, fix=False) and "not valid JSON" in runs[0].err
    error = runs[1].error(2)
    assert error["code"] == "config_error" and secrets in error["message"]
    assert secrets in runs[2].human_error(2, fix=False)
    secrets = str(homes["entry"] / "config" / "secrets.json")
    assert secrets in runs[3].human_error(2, fix=False)
    assert secrets in runs[4].error(2)["message"]


def test_a_command_that_fails_on_a_corrupt_secrets_file_changes_nothing(tmp_path: Path) -> None:
    homes = [tmp_path / "create", tmp_path / "delete"]
    for home in homes:
        write_context(home, {"a": ("http://127.0.0.1:9", KEY_PROD)}, active="a")
        (home / "config" / "secrets.json").write_text("{oops")
    before = read(homes[0] / "config" / "config.json")
    created, deleted = axme_many([(["context", "create", "b", "--api-key", KEY_STAGE], cli_env(homes[0])),
                                  (["context", "delete", "a"], cli_env(homes[1]))])
    assert str(homes[0] / "config" / "secrets.json") in created.human_error(2, fix=False)
    assert str(homes[1] / "config" / "secrets.json") in deleted.human_error(2, fix=False)
    # it said it failed, so it must not have half-done it (context b left without its key; context a deleted)
    assert read(homes[0] / "config" / "config.json") == before, "context create half-done"
    assert read(homes[1] / "config" / "config.json") == before, "context delete half-done"

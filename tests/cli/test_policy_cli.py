"""`axme agents policy|receive-override get|set|add|remove` and `axme org receive-policy get|set|add|remove` against
the real runtime, driven in-process as a user types them: --json answers in the CLI's envelope, the Agent / Mode /
Entries text, an entry removed by id or by its pattern, the runtime's refusals as exit 1 (an intent the policy
refuses, an agent key closing the org), and bad input as exit 2 naming the argument and the fix before any
request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.helpers import env_for, run
from tests.conftest import make_agent, new_intent, unique
from tests.receiver import closed_port_url
from tests.runtime_proc import RuntimeProcess

# What the CLI does with the answers does not depend on the storage (tests/runtime/api/test_policies.py runs the
# routes on both backends).
pytestmark = pytest.mark.backends("sqlite")


def axme(rt: RuntimeProcess, home: Path, *args: str, key: str | None = None) -> tuple[int, str, str]:
    done = run(env_for(home), "--base-url", rt.url, "--api-key", key or rt.api_key or "", *args)
    return done.returncode, done.stdout, done.stderr


def as_json(rt: RuntimeProcess, home: Path, *args: str, key: str | None = None) -> dict[str, Any]:
    code, out, err = axme(rt, home, *args, "--json", key=key)
    assert code == 0, out + err
    body = json.loads(out)
    assert body["ok"] is True, body
    return dict(body)


def test_an_agents_send_policy_from_the_cli(quiet: RuntimeProcess, api: httpx.Client, tmp_path: Path) -> None:
    name = unique("stock")
    target, _ = make_agent(api, name)
    friend, _ = make_agent(api, unique("friend"))
    stranger, stranger_key = make_agent(api, unique("stranger"))
    got = as_json(quiet, tmp_path, "agents", "policy", "get", name)
    assert got["policy"]["agent_address"] == target and got["policy"]["policy_type"] == "open"
    set_ = as_json(quiet, tmp_path, "agents", "policy", "set", target, "allowlist")
    assert set_["changed"] is True and set_["policy"]["policy_type"] == "allowlist"
    added = as_json(quiet, tmp_path, "agents", "policy", "add", name, friend)
    assert added["created"] is True and added["entry"]["sender_pattern"] == friend
    code, out, _ = axme(quiet, tmp_path, "agents", "policy", "add", name, "agent://local/dev/*")
    assert code == 0 and "✓ Added agent://local/dev/* (entry " in out
    code, out, _ = axme(quiet, tmp_path, "agents", "policy", "get", f"agent://local/dev/{name}")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[:3] == [f"Agent:    {target}", "Mode:     allowlist", "Entries:  2"], out
    assert lines[3].endswith(f"  {friend}") and lines[4].endswith("  agent://local/dev/*"), out
    # remove by pattern (as typed), then by id
    removed = as_json(quiet, tmp_path, "agents", "policy", "remove", name, "agent://local/dev/*")
    assert [e["sender_pattern"] for e in removed["policy"]["entries"]] == [friend]
    as_json(quiet, tmp_path, "agents", "policy", "remove", name, added["entry"]["entry_id"])
    code, out, err = axme(quiet, tmp_path, "agents", "policy", "remove", name, friend)
    assert code == 1 and "no entry" in err and "its entries: none" in err, err
    # the policy holds: the stranger's send is refused, exit 1 with the runtime's reason
    code, out, err = axme(quiet, tmp_path, "intents", "send", "--to", target, "--type", "order.reserve.v1",
                          "--json", key=stranger_key)
    assert code == 1, out + err
    error = json.loads(out)["error"]
    assert error["code"] == "policy_denied" and target in error["message"], error


def test_a_receive_override_and_the_orgs_receive_policy(quiet: RuntimeProcess, api: httpx.Client,
                                                        tmp_path: Path) -> None:
    name = unique("shop")
    target, target_key = make_agent(api, name)
    try:
        got = as_json(quiet, tmp_path, "org", "receive-policy", "get")  # the org: the runtime's, from /health
        assert got["policy"]["org_id"] == "local"
        set_ = as_json(quiet, tmp_path, "org", "receive-policy", "set", "allowlist", "--org-id", "local")
        assert set_["policy"]["policy_type"] == "allowlist"
        added = as_json(quiet, tmp_path, "org", "receive-policy", "add", "agent://partner/*")
        assert added["entry"]["sender_pattern"] == "agent://partner/*"
        again = as_json(quiet, tmp_path, "org", "receive-policy", "add", "agent://partner/*")
        assert again["created"] is False and again["entry"] == added["entry"]
        code, out, _ = axme(quiet, tmp_path, "org", "receive-policy", "get")
        assert out.splitlines()[:3] == ["Org:      local", "Mode:     allowlist", "Entries:  1"], out
        refused = api.post("/v1/intents", json=new_intent(target, from_agent="agent://rival/prod/bot"))
        assert refused.status_code == 403, refused.text
        override = as_json(quiet, tmp_path, "agents", "receive-override", "set", name, "closed")
        assert override["override"]["override_type"] == "closed"
        code, out, _ = axme(quiet, tmp_path, "agents", "receive-override", "get", name)
        assert out.splitlines()[:2] == [f"Agent:     {target}", "Override:  closed"], out
        assert api.post("/v1/intents", json=new_intent(target, from_agent="agent://partner/prod/bot")
                        ).status_code == 403  # closed for this agent, whatever the org's entries
        as_json(quiet, tmp_path, "agents", "receive-override", "set", name, "use_org_default")
        # an agent key closes nothing: the runtime's 403, exit 1
        code, out, err = axme(quiet, tmp_path, "org", "receive-policy", "set", "closed", key=target_key)
        assert code == 1 and "permission denied" in err and "workspace key or a person" in err, err
        code, out, err = axme(quiet, tmp_path, "org", "receive-policy", "get", "--org-id", "elsewhere")
        assert code == 1 and "not found" in err, err
        as_json(quiet, tmp_path, "org", "receive-policy", "remove", added["entry"]["entry_id"])
    finally:
        as_json(quiet, tmp_path, "org", "receive-policy", "set", "open")


@pytest.mark.parametrize("args, named, fix", [
    (["agents", "policy", "set", "x", "closed"], "MODE 'closed' is not one of open, allowlist, denylist",
     "axme agents policy set x allowlist"),
    (["agents", "receive-override", "set", "x", "denylist"], "MODE 'denylist' is not one of open, allowlist, closed",
     "use_org_default"),
    (["org", "receive-policy", "set", "denylist"], "MODE 'denylist' is not one of open, allowlist, closed",
     "axme org receive-policy set allowlist"),
    (["agents", "policy", "add", "x", "agent://acme/prod"], "PATTERN 'agent://acme/prod' can never match",
     "agent://acme/prod/*"),
    (["agents", "receive-override", "add", "x", "agent://acme/pr*"], "whole last part", "agent://acme/*"),
    (["org", "receive-policy", "add", "https://partner.example/bot"], "only agent addresses", "agent://acme/*"),
])
def test_bad_input_is_exit_2_naming_it_before_any_request(tmp_path: Path, args: list[str], named: str,
                                                          fix: str) -> None:
    done = run(env_for(tmp_path), "--base-url", closed_port_url(), "--api-key", "k", *args)
    assert done.returncode == 2, done.stdout + done.stderr  # a request would have been exit 1 (nothing answers)
    assert named in done.stderr and fix in done.stderr, done.stderr

"""`axme intents list` filters and pages as the dashboard's list does (status, type, agent, age, id), with --all,
over GET /v1/intents's query parameters; an agent key sees only its own intents whatever it asks for."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from tests.cli.helpers import cli_invoke
from tests.conftest import make_agent, new_intent, unique
from tests.runtime_proc import RuntimeProcess


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AXME_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("AXME_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AXME_CLI_SECRET_STORAGE", "file")
    for name in ("AXME_BASE_URL", "AXME_API_KEY", "AXME_CONTEXT", "AXME_OUTPUT"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def cli(runtime: RuntimeProcess, *args: str, key: str | None = None) -> tuple[int, str, str]:
    result = cli_invoke(["intents", "list", *args, "--base-url", runtime.url, "--api-key",
                                      key or runtime.api_key or ""])
    return result.exit_code, result.stdout, result.stderr


def ids(out: str) -> list[str]:
    return [line for line in out.splitlines() if line]


@pytest.fixture
def sent(admin: httpx.Client) -> dict[str, list[str]]:
    """Five intents of a type of their own, three to one agent and two to another; one of them canceled."""
    kind = f"test.{uuid.uuid4().hex[:8]}.v1"
    one, two = unique("listed-a"), unique("listed-b")
    made: dict[str, list[str]] = {"kind": [kind], one: [], two: []}
    for to in (one, two, one, two, one):
        r = admin.post("/v1/intents", json=new_intent(to, intent_type=kind))
        assert r.status_code == 200, r.text
        made[to].append(r.json()["intent_id"])
    r = admin.post(f"/v1/intents/{made[one][0]}/resolve", json={"status": "CANCELED", "reason": "test"})
    assert r.status_code == 200, r.text
    made["agents"] = [one, two]
    return made


def test_filters_by_type_agent_status_and_id(runtime: RuntimeProcess, home: Path,
                                             sent: dict[str, list[str]]) -> None:
    kind, (one, two) = sent["kind"][0], sent["agents"]
    code, out, err = cli(runtime, "--type", kind, "--jq", ".items[].intent_id")
    assert code == 0, err
    assert ids(out) == list(reversed([sent[one][0], sent[two][0], sent[one][1], sent[two][1], sent[one][2]]))
    code, out, _ = cli(runtime, "--type", kind, "--agent", one, "-o", "jsonl", "--jq", ".intent_id")
    assert ids(out) == list(reversed(sent[one]))
    code, out, _ = cli(runtime, "--type", kind, "--status", "canceled", "--jq", ".items[].intent_id")
    assert ids(out) == [sent[one][0]]
    code, out, _ = cli(runtime, "--search", sent[two][1][:13], "--jq", ".items[].intent_id")
    assert ids(out) == [sent[two][1]]
    code, out, _ = cli(runtime, "--type", kind, "--since", "1h", "--until", "2999-01-01T00:00:00Z",
                       "--jq", ".items | length")
    assert ids(out) == ["5"]
    code, out, _ = cli(runtime, "--type", kind, "--until", "1h", "--jq", ".items | length")
    assert ids(out) == ["0"]


def test_all_follows_every_page(runtime: RuntimeProcess, home: Path, sent: dict[str, list[str]]) -> None:
    kind = sent["kind"][0]
    code, out, _ = cli(runtime, "--type", kind, "--limit", "2", "--json")
    first = json.loads(out)
    assert code == 0 and len(first["items"]) == 2 and first["next_cursor"] == first["items"][-1]["intent_id"]
    code, out, _ = cli(runtime, "--type", kind, "--limit", "2", "--all", "--json")
    every = json.loads(out)
    assert len(every["items"]) == 5 and every["next_cursor"] is None
    assert len({i["intent_id"] for i in every["items"]}) == 5


def test_an_agent_key_sees_only_its_own_whatever_it_asks(runtime: RuntimeProcess, admin: httpx.Client, home: Path,
                                                         sent: dict[str, list[str]]) -> None:
    kind, (one, _) = sent["kind"][0], sent["agents"]
    _, token = make_agent(admin, unique("peeker"))
    code, out, _ = cli(runtime, "--type", kind, "--agent", one, "--jq", ".items | length", key=token)
    assert code == 0 and ids(out) == ["0"]


@pytest.mark.backends("sqlite")  # refused before any request, or by the route before the store
@pytest.mark.parametrize(("args", "named"), [
    (["--since", "yesterday"], "--since 'yesterday' is neither an age nor an RFC 3339 time"),
    (["--until", "5 weeks"], "--until '5 weeks'"),
    (["--since", "9999999d"], "--since '9999999d'"),
    (["--search", "xyz"], "--search 'xyz'"),
    (["--status", "bogus"], "--status 'BOGUS': not a status"),
])
def test_bad_filters_exit_2_naming_the_flag(runtime: RuntimeProcess, home: Path, args: list[str],
                                            named: str) -> None:
    code, _, err = cli(runtime, *args)
    assert code == 2 and named in err and "fix:" in err


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize(("query", "field"), [
    ("created_after=tomorrow", "created_after"), ("id_prefix=zz", "id_prefix"),
    ("intent_type=a%20b", "intent_type"), ("agent=a%20b", "agent"), ("before=nope", "before"),
])
def test_the_api_names_a_bad_filter(admin: httpx.Client, query: str, field: str) -> None:
    r = admin.get(f"/v1/intents?{query}")
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == field, r.text

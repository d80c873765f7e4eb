"""Streams serve clients that read a whole response before parsing it (the TypeScript SDK's ``response.text()``, Go's
``io.ReadAll``, ``httpx.get``): a stream ends shortly after it sent frames, unless the client says it reads
incrementally, so each delivery reaches such a client at once instead of after ``wait_seconds``.

Every stream here asks for ``wait_seconds=60`` and every client gives up after 20 s: a stream that held its
frames for the whole window fails the test, without any timing being asserted."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import make_agent, new_intent, unique
from tests.runtime_proc import TLS, RuntimeProcess

WAIT = 60  # the window a stream would hold its frames for
PATIENCE = 20.0  # seconds a whole-response client waits for one response
TERMINAL = {"COMPLETED", "FAILED", "CANCELED", "TIMED_OUT"}
ROOT = Path(__file__).resolve().parents[3]


def frames_of(text: str) -> list[tuple[str, dict[str, Any]]]:
    """``(event, data)`` of each frame of a whole SSE response."""
    out = []
    for block in text.split("\n\n"):
        event, data = None, []
        for line in block.split("\n"):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        if event and data:
            out.append((event, json.loads("\n".join(data))))
    return out


def whole(client: httpx.Client, path: str, since: int, **params: Any) -> list[tuple[str, dict[str, Any]]]:
    """One stream request read whole, as the TypeScript and Go SDKs do."""
    r = client.get(path, params={"since": since, "wait_seconds": WAIT, **params}, timeout=PATIENCE)
    assert r.status_code == 200, r.text
    return frames_of(r.text)


def streams_open(admin: httpx.Client) -> int:
    text = admin.get("/metrics").text
    return next(int(float(line.split()[1])) for line in text.splitlines() if line.startswith("axme_sse_streams_open "))


def until(fn: Any, what: str) -> None:
    deadline = time.monotonic() + 10
    while not fn():
        assert time.monotonic() < deadline, f"not within 10 s: {what}"
        time.sleep(0.01)


def saga(names: dict[str, str]) -> dict[str, Any]:
    """The shipped order saga, its three agents renamed so this test's feeds are its own."""
    bundle = json.loads((ROOT / "scenarios" / "order-saga.json").read_text())
    text = json.dumps(bundle)
    for role, name in names.items():
        text = text.replace(f'"address": "{role}"', f'"address": "{name}"')
    return json.loads(text)


def apply_saga(quiet: RuntimeProcess, api: httpx.Client) -> tuple[str, dict[str, str]]:
    """Apply the saga; returns the parent intent id and a key per agent name."""
    names = {role: unique(role) for role in ("inventory", "payment", "shipping")}
    r = api.post("/v1/scenarios/apply", json=saga(names))
    assert r.status_code == 200, r.text
    keys = {}
    for name in names.values():
        sa_id = api.get(f"/v1/agents/{name}").json()["agent"]["service_account_id"]
        keys[name] = api.post(f"/v1/service-accounts/{sa_id}/keys", json={}).json()["key"]["token"]
    return r.json()["intent_id"], keys


def test_a_whole_response_read_of_the_feed_returns_what_is_there(quiet: RuntimeProcess, api: httpx.Client) -> None:
    name = unique("whole")
    address, token = make_agent(api, name)
    first = api.post("/v1/intents", json=new_intent(address)).json()["intent_id"]
    with quiet.client(token) as bot:
        got = whole(bot, f"/v1/agents/{name}/intents/stream", 0)
    assert [data["intent_id"] for event, data in got if event.startswith("intent.")] == [first]
    event, data = got[-1]
    assert event == "stream.timeout" and data["next_seq"] == got[0][1]["seq"]  # where to reconnect from


def test_a_waiting_whole_response_read_gets_a_new_delivery(quiet: RuntimeProcess, api: httpx.Client) -> None:
    name = unique("whole")
    address, token = make_agent(api, name)
    got: list[Any] = []
    with quiet.client(token) as bot:
        reader = threading.Thread(target=lambda: got.append(whole(bot, f"/v1/agents/{name}/intents/stream", 0)))
        before = streams_open(api)
        reader.start()
        until(lambda: streams_open(api) > before, "the feed waits")
        intent_id = api.post("/v1/intents", json=new_intent(address)).json()["intent_id"]
        reader.join(PATIENCE + 5)
    assert got and [d["intent_id"] for e, d in got[0] if e.startswith("intent.")] == [intent_id]


def test_a_waiting_whole_response_read_gets_a_new_event(quiet: RuntimeProcess, api: httpx.Client) -> None:
    name = unique("whole")
    address, token = make_agent(api, name)
    intent_id = api.post("/v1/intents", json=new_intent(address)).json()["intent_id"]
    last = api.get(f"/v1/intents/{intent_id}/events").json()["events"][-1]["seq"]
    got: list[Any] = []
    path = f"/v1/intents/{intent_id}/events/stream"
    reader = threading.Thread(target=lambda: got.append(whole(api, path, last)))
    before = streams_open(api)
    reader.start()
    until(lambda: streams_open(api) > before, "the event stream waits")
    with quiet.client(token) as bot:
        assert bot.post(f"/v1/intents/{intent_id}/resume", json={"action": "in_progress"}).status_code == 200
    reader.join(PATIENCE + 5)
    assert got, "the stream held its frame"
    assert [(e, d.get("seq"), d.get("next_seq")) for e, d in got[0]] == [
        ("intent.in_progress", last + 1, None), ("stream.timeout", None, last + 1)]


@pytest.mark.parametrize("how", ["incremental", "python-sdk"])
def test_incremental_readers_keep_one_stream_open(quiet: RuntimeProcess, api: httpx.Client, how: str) -> None:
    """``?incremental=true`` (our clients), or the official Python SDK's own request headers: the feed stays open
    after a frame and the next delivery comes on the same response."""
    name = unique("live")
    address, token = make_agent(api, name)
    first = api.post("/v1/intents", json=new_intent(address)).json()["intent_id"]
    params: dict[str, Any] = {"since": 0, "wait_seconds": WAIT}
    headers = {"x-api-key": token}
    if how == "incremental":
        params["incremental"] = "true"
    else:
        from axme_sdk import AxmeClient, AxmeClientConfig  # the SDK's own client, as its listen() sends it

        headers = dict(AxmeClient(AxmeClientConfig(base_url=quiet.url, api_key=token))._http.headers)
    with httpx.Client(verify=TLS, base_url=quiet.url, headers=headers, timeout=PATIENCE) as bot, \
            bot.stream("GET", f"/v1/agents/{name}/intents/stream", params=params) as r:
        assert r.status_code == 200
        seen: list[str] = []
        lines = r.iter_lines()
        for line in lines:
            if line.startswith("event: "):
                seen.append(line[7:])
                if len(seen) == 1:
                    second = api.post("/v1/intents", json=new_intent(address)).json()["intent_id"]
                else:
                    break
        data = json.loads(next(lines)[6:])
    assert seen == ["intent.delivered", "intent.delivered"] and data["intent_id"] == second != first


@pytest.mark.parametrize("value", ["maybe", "2", "yes please"])
def test_a_bad_incremental_flag_is_422_naming_it(quiet: RuntimeProcess, api: httpx.Client, value: str) -> None:
    intent_id = api.post("/v1/intents", json=new_intent(unique("x"))).json()["intent_id"]
    for path in (f"/v1/intents/{intent_id}/events/stream", "/v1/agents/inventory/intents/stream"):
        r = api.get(path, params={"incremental": value, "wait_seconds": 1})
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"] == "invalid_parameter" and error["details"]["field"] == "incremental"
        assert "true or false" in error["message"]


def test_httpx_whole_reads_run_the_order_saga(quiet: RuntimeProcess, api: httpx.Client) -> None:
    """Three agents listen -> resume with whole-response reads; the sender reads the parent's events the same way."""
    parent, keys = apply_saga(quiet, api)
    started = time.monotonic()
    failures: list[BaseException] = []

    def agent(name: str, key: str) -> None:
        try:
            with quiet.client(key) as bot:
                since = 0
                while True:
                    for event, data in whole(bot, f"/v1/agents/{name}/intents/stream", since):
                        since = max(since, data.get("seq") or data.get("next_seq") or 0)
                        if event.startswith("intent."):
                            r = bot.post(f"/v1/intents/{data['intent_id']}/resume",
                                         json={"action": "complete", "result": {"by": name}})
                            assert r.status_code == 200, r.text
                            return  # one step each on the saga's ok path
        except BaseException as exc:  # noqa: BLE001 - the main thread fails with it
            failures.append(exc)

    threads = [threading.Thread(target=agent, args=item) for item in keys.items()]
    for thread in threads:
        thread.start()
    status, since = None, 0
    while status not in TERMINAL:
        for _event, data in whole(api, f"/v1/intents/{parent}/events/stream", since):
            since = max(since, data.get("seq") or data.get("next_seq") or 0)
            status = data.get("status")
            if status in TERMINAL:
                break
    for thread in threads:
        thread.join(PATIENCE)
    elapsed = time.monotonic() - started
    assert not failures, failures
    assert status == "COMPLETED"
    print(f"httpx whole-response saga: {elapsed * 1000:.0f} ms")


NODE_AGENT = r"""
// What the TypeScript SDK does: each stream request read whole with response.text(), then parsed.
const [base, parent, adminKey, wait, ...agents] = process.argv.slice(2);
const TERMINAL = ["COMPLETED", "FAILED", "CANCELED", "TIMED_OUT"];
function frames(text) {
  const out = [];
  for (const block of text.split("\n\n")) {
    let event = null; const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event: ")) event = line.slice(7);
      else if (line.startsWith("data: ")) data.push(line.slice(6));
    }
    if (event && data.length) out.push({ event, data: JSON.parse(data.join("\n")) });
  }
  return out;
}
async function stream(path, since, key) {
  const r = await fetch(`${base}${path}?since=${since}&wait_seconds=${wait}`, { headers: { "x-api-key": key } });
  const text = await r.text();
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status} ${text}`);
  return frames(text);
}
async function agent(name, key) {
  let since = 0;
  for (;;) {
    for (const f of await stream(`/v1/agents/${name}/intents/stream`, since, key)) {
      since = Math.max(since, f.data.seq ?? f.data.next_seq ?? 0);
      if (!f.event.startsWith("intent.")) continue;
      const r = await fetch(`${base}/v1/intents/${f.data.intent_id}/resume`, {
        method: "POST", headers: { "x-api-key": key, "content-type": "application/json" },
        body: JSON.stringify({ action: "complete", result: { by: name } }) });
      if (!r.ok) throw new Error(`resume: HTTP ${r.status} ${await r.text()}`);
      return;
    }
  }
}
async function observe() {
  let since = 0;
  for (;;) {
    for (const f of await stream(`/v1/intents/${parent}/events/stream`, since, adminKey)) {
      since = Math.max(since, f.data.seq ?? f.data.next_seq ?? 0);
      if (TERMINAL.includes(f.data.status)) return f.data.status;
    }
  }
}
const started = performance.now();
const pairs = agents.map((a) => a.split("="));
const [status] = await Promise.all([observe(), ...pairs.map(([n, k]) => agent(n, k))]);
console.log(JSON.stringify({ status, ms: Math.round(performance.now() - started) }));
"""


def test_node_fetch_text_runs_the_order_saga(quiet: RuntimeProcess, api: httpx.Client, tmp_path: Path) -> None:
    """node 20's fetch + response.text(), as the TypeScript SDK reads streams: the three-step saga completes."""
    script = tmp_path / "agents.mjs"
    script.write_text(NODE_AGENT)
    parent, keys = apply_saga(quiet, api)
    assert quiet.api_key
    done = subprocess.run(["node", str(script), quiet.url, parent, quiet.api_key, str(WAIT),
                           *(f"{name}={key}" for name, key in keys.items())],
                          capture_output=True, text=True, timeout=PATIENCE * 3)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "COMPLETED"
    assert api.get(f"/v1/intents/{parent}").json()["intent"]["status"] == "COMPLETED"
    print(f"node fetch + text() saga: {result['ms']} ms")


"""The page in ../shared/seed/, step by step, against our runtime: `axme scenarios apply`, the agent key read
from scenario-agents.json, an SDK agent written like the seed's, then `axme intents get <id>` -> COMPLETED."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

from axme_sdk import AxmeClient, AxmeClientConfig

from tests.cli.helpers import cli_invoke
from tests.runtime_proc import RuntimeProcess

ROOT = Path(__file__).resolve().parents[1]


def seed_agent(base_url: str, api_key: str, handled: list[str]) -> None:
    """The seed's agent.py, with base_url set: listen, get_intent, parent_payload, resume_intent."""
    client = AxmeClient(AxmeClientConfig(base_url=base_url, api_key=api_key))
    for delivery in client.listen("order-coordinator-demo", wait_seconds=2, timeout_seconds=30):
        intent_id = delivery["intent_id"]
        intent = client.get_intent(intent_id)["intent"]
        if intent["status"] not in ("CREATED", "DELIVERED", "IN_PROGRESS"):
            continue
        payload = intent["payload"].get("parent_payload") or intent["payload"]
        client.resume_intent(intent_id, {"action": "complete", "order_id": payload["order_id"], "coordinated": True})
        handled.append(intent_id)
        return


def test_seed_flow_end_to_end(tmp_path: Path) -> None:
    rt = RuntimeProcess(tmp_path).start()
    env = dict(rt.env, AXME_CLI_SECRET_STORAGE="file", NO_COLOR="1")
    try:
        def axme(*args: str) -> subprocess.CompletedProcess[str]:
            """The CLI in-process (tests/cli/helpers.cli_invoke), with this runtime's config folder."""
            result = cli_invoke(list(args), env=env)
            return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)

        applied = axme("scenarios", "apply", str(ROOT / "scenarios" / "cross-service-coordination.json"), "--json")
        assert applied.returncode == 0, applied.stderr
        intent_id = json.loads(applied.stdout)["intent_id"]

        # cat ~/.config/axme/scenario-agents.json | grep -A2 order-coordinator-demo
        agents_file = Path(env["AXME_CONFIG_DIR"]) / "scenario-agents.json"
        assert oct(agents_file.stat().st_mode & 0o777) == "0o600"
        lines = agents_file.read_text().splitlines()
        at = next(i for i, line in enumerate(lines) if "order-coordinator-demo" in line)
        key_line = next(line for line in lines[at:at + 3] if '"api_key"' in line)
        agent_key = key_line.split('"')[3]
        assert agent_key.startswith("axme_sa_")

        handled: list[str] = []
        agent = threading.Thread(target=seed_agent, args=(rt.url, agent_key, handled))
        agent.start()
        waited = axme("observe", intent_id)
        agent.join(30)
        assert len(handled) == 1
        assert waited.returncode == 0, waited.stdout + waited.stderr

        got = axme("intents", "get", intent_id, "--json")
        assert got.returncode == 0
        assert json.loads(got.stdout)["intent"]["lifecycle_status"] == "COMPLETED"
        human = axme("intents", "get", intent_id)
        assert "lifecycle_status:" in human.stdout and "COMPLETED" in human.stdout
    finally:
        rt.stop()
    assert os.environ.get("AXME_CONFIG_DIR") != env["AXME_CONFIG_DIR"]

"""The crash matrix's agents as `axme agents run NAME --handler tests.reliability.saga_agent:handle`.

Each delivery handed to the handler is appended to the file named by ``AXME_RELIABILITY_JOURNAL`` (one JSON line,
flushed), so the test knows what every agent process saw even after it was killed; the runner's own log line
(``... resume 200)``) tells which answers the runtime took.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from axme_cli.agents.runner import Outcome
from tests.reliability.plans import decide

HANDLING_SECONDS = 0.05  # the work between receiving a step and answering it: a kill may land in between


async def handle(delivery: dict[str, Any]) -> Any:
    payload = delivery.get("payload") or {}
    action, body = decide(payload)
    line = json.dumps({"intent_id": delivery.get("intent_id"), "parent": payload.get("parent_intent_id"),
                       "step": payload.get("step_id"), "attempt": payload.get("attempt"),
                       "compensation": bool(payload.get("compensation")), "action": action,
                       "plan": (payload.get("parent_payload") or {}).get("plan")})
    with open(os.environ["AXME_RELIABILITY_JOURNAL"], "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    await asyncio.sleep(HANDLING_SECONDS)
    if action == "silent":
        return Outcome("retry", reason="silent: the step must time out")
    if action == "fail":
        raise RuntimeError(body["reason"])
    return body

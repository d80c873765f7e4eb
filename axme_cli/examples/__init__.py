"""Ready ScenarioBundle files shipped with axme (the repo's scenarios/ folder links here)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

CATALOG: dict[str, str] = {
    "order-saga": "Order saga: inventory -> payment -> shipping; a failure is undone newest first "
                  "(refund, then release). Try --fail-at shipping.",
    "cross-service-coordination": "The seed page's flow: one order handled by the order-coordinator-demo agent.",
}


def load(name: str) -> dict[str, Any]:
    text = (resources.files("axme_cli.examples") / f"{name}.json").read_text(encoding="utf-8")
    value: dict[str, Any] = json.loads(text)
    return value

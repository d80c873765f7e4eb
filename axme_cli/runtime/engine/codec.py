"""The JSON of rows: what the engine stores in ``doc``, ``payload``, ``state`` and event columns."""

from __future__ import annotations

from typing import Any

import orjson

from axme_cli.runtime.errors import Unprocessable


def dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError as exc:  # an integer beyond 64 bits (api.common.parse_json refuses those)
        raise Unprocessable(f"a value cannot be stored: {exc}", code="invalid_value") from None


def loads(value: str | bytes) -> Any:
    return orjson.loads(value)

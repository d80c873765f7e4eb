"""Parsing what people type: --data k=v pairs and --data-json documents."""

from __future__ import annotations

import json
from typing import Any

from axme_cli.errors import UsageError


def parse_json_object(raw: str, flag: str = "--data-json") -> dict[str, Any]:
    if raw.startswith("@"):
        path = raw[1:]
        try:
            with open(path, encoding="utf-8") as fh:
                raw = fh.read()
        except OSError as exc:
            raise UsageError(f"{flag}: cannot read {path} ({exc.strerror})") from None
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise UsageError(f"{flag}: not valid JSON ({exc})",
                         fix=f"""quote it for the shell, e.g. {flag} '{{"order_id": "ord_1"}}'""") from None
    if not isinstance(value, dict):
        raise UsageError(f"{flag}: must be a JSON object, got {type(value).__name__}",
                         fix=f"""e.g. {flag} '{{"order_id": "ord_1"}}'""")
    return value


def parse_pairs(pairs: list[str] | None, flag: str = "--data") -> dict[str, Any]:
    """``k=v``; v is read as JSON when it parses (numbers, true, null, objects), else kept as text."""
    result: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} {pair!r}: expected key=value", fix=f"e.g. {flag} quantity=2")
        try:
            result[key] = json.loads(value)
        except ValueError:
            result[key] = value
    return result


def merged_data(data_json: str | None, pairs: list[str] | None) -> dict[str, Any]:
    data = parse_json_object(data_json) if data_json else {}
    data.update(parse_pairs(pairs))
    return data

"""Parsing what people type: --data k=v pairs (typed when nothing is lost), -f/--field k=v (always text),
-F/--typed-field k=v (always JSON) and --data-json documents."""

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
            raise UsageError(f"{flag}: cannot read {path} ({exc.strerror})", fix="check the path after @") from None
        except UnicodeDecodeError:
            raise UsageError(f"{flag}: {path} is not UTF-8 text", fix="give it a JSON file (UTF-8)") from None
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
    """``k=v``: ``v`` as JSON (a number, true, false, null, an object or array) only when nothing of what was
    typed is lost that way, else as the text typed. So ``quantity=2`` is 2, but ``version=1.10`` stays "1.10",
    ``phone=5551234567890123456789`` (beyond 64 bits) and ``e=1e400`` (beyond a double) stay text."""
    result: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} {pair!r}: expected key=value", fix=f"e.g. {flag} quantity=2")
        result[key] = typed(value, f"{flag} {key}")
    return result


INT64 = (-(2**63), 2**63 - 1)


def typed(value: str, where: str) -> Any:
    """``value`` as the JSON value it spells exactly, or as text (see parse_pairs)."""
    import math

    if value[:1] in ("{", "["):  # meant as JSON: an error in it is the caller's to fix, not text to send
        try:
            return json.loads(value, parse_constant=_refuse)
        except ValueError as exc:
            raise UsageError(f"{where}: not valid JSON ({exc})", fix="quote it for the shell, or send the text "
                             "with --data-json") from None
    try:
        parsed = json.loads(value, parse_constant=_refuse)
    except ValueError:
        return value
    if isinstance(parsed, bool) or parsed is None:
        return parsed
    if isinstance(parsed, int):
        return parsed if INT64[0] <= parsed <= INT64[1] and str(parsed) == value else value
    if isinstance(parsed, float):
        return parsed if math.isfinite(parsed) and repr(parsed) == value else value
    return value  # a JSON string ("\"x\""): the text as typed


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def shown(value: str) -> str:
    """A command-line word as people can read it back, whatever bytes it held (``$'\\xff'`` -> ``'\\xff'``)."""
    import os

    return "'" + os.fsencode(value).decode("utf-8", "backslashreplace") + "'"


def check_choice(value: str | None, allowed: tuple[str, ...], flag: str, example: str | None = None) -> None:
    """A flag's value, when given, is one of ``allowed``; else exit 2 naming the flag and an example."""
    from axme_cli.errors import UsageError

    if value is not None and value not in allowed:
        raise UsageError(f"{flag} {shown(value)} is not one of {', '.join(allowed)}",
                         fix=f"e.g. {flag} {example or allowed[0]}")


def changes(*fields: tuple[str, str, Any]) -> dict[str, Any]:
    """The body of an update: each ``(flag, field, value)`` whose value was given; none given is exit 2 naming
    the flags."""
    body = {field: value for _, field, value in fields if value is not None}
    if not body:
        flags = [flag for flag, _, _ in fields]
        raise UsageError("nothing to change", fix=f"give {', '.join(flags[:-1])} or {flags[-1]}")
    return body


def merged_data(data_json: str | None, pairs: list[str] | None, fields: list[str] | None = None,
                typed_fields: list[str] | None = None) -> dict[str, Any]:
    """--data-json, then --data, then -f, then -F: a later one sets a key an earlier one set."""
    data = parse_json_object(data_json) if data_json else {}
    data.update(parse_pairs(pairs))
    for pair in fields or []:
        key, value = _split(pair, "--field")
        data[key] = value
    for pair in typed_fields or []:
        key, value = _split(pair, "--typed-field")
        data[key] = _json_value(value, f"--typed-field {key}")
    return data


def _split(pair: str, flag: str) -> tuple[str, str]:
    key, sep, value = pair.partition("=")
    if not sep or not key:
        raise UsageError(f"{flag} {shown(pair)}: expected key=value", fix=f"e.g. {flag} quantity=2")
    return key, value


def _json_value(value: str, where: str) -> Any:
    """-F: the JSON value typed, or the text of @file; nothing is guessed, so text must be quoted."""
    if value.startswith("@"):
        path = value[1:]
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.read()
        except OSError as exc:
            raise UsageError(f"{where}: cannot read {path} ({exc.strerror})", fix="check the path after @") from None
        except UnicodeDecodeError:
            raise UsageError(f"{where}: {path} is not UTF-8 text", fix="give it a text file (UTF-8)") from None
    try:
        return json.loads(value, parse_constant=_refuse)
    except ValueError as exc:
        raise UsageError(f"{where}: {shown(value)} is not a JSON value ({exc})",
                         fix=f"""quote text as JSON ('{where.split()[-1]}="text"') or send it with -f""") from None

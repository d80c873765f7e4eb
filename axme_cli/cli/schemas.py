"""`axme schemas put|get`: the schema registry, JSON Schemas that intents of a type are validated against."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from axme_cli.cli.common import ApiKeyOpt, BaseUrlOpt, ContextOpt

OwnerOpt = Annotated[str | None, typer.Option(
    "--owner-agent", show_default=False,
    help="The agent whose schema it is (agent address or name) [default: an agent key's own; the workspace key "
         "names one, or uses --scope core].")]


def _semantic_type(value: str) -> str:
    """A semantic type is an intent type: lower-case dotted parts and a version (order.place.v1)."""
    import re

    from axme_cli.cli.inputs import shown
    from axme_cli.errors import UsageError
    from axme_cli.protocol.models import INTENT_TYPE_MAX
    from axme_cli.protocol.semantic_schemas import SEMANTIC_TYPE_PATTERN

    if len(value) > INTENT_TYPE_MAX or not re.match(SEMANTIC_TYPE_PATTERN, value):
        raise UsageError(f"semantic type {shown(value)} is not an intent type",
                         fix="lower-case dotted parts and a version, e.g. order.place.v1")
    return value


def _read_schema(path: str) -> dict[str, Any]:
    """The JSON Schema in FILE (``-``: standard input), an object; anything else names the file and the fix."""
    import json
    import sys

    from axme_cli.errors import UsageError

    where = "standard input" if path == "-" else path
    try:
        if path == "-":
            raw = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as fh:
                raw = fh.read()
    except OSError as exc:
        raise UsageError(f"{where}: cannot read it ({exc.strerror})", fix="give the path of a JSON Schema file") \
            from None
    except UnicodeDecodeError:
        raise UsageError(f"{where}: is not UTF-8 text", fix="give a JSON Schema file (UTF-8)") from None
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise UsageError(f"{where}: not valid JSON ({exc})", fix="check the file's syntax (e.g. with jq .)") from None
    if not isinstance(value, dict):
        raise UsageError(f"{where}: a JSON Schema is a JSON object, got {type(value).__name__}",
                         fix='e.g. {"type": "object", "required": ["order_id"]}')
    return value


app = typer.Typer(help="The schema registry: JSON Schemas that the payloads of intents of a type must fit.",
                  no_args_is_help=True, rich_markup_mode=None)


@app.command("put")
def put(
    file: Annotated[str, typer.Argument(metavar="FILE", show_default=False,
                                        help="The JSON Schema (2020-12) as a JSON file; - reads standard input.")],
    semantic_type: Annotated[str, typer.Option(
        "--semantic-type", "--type", show_default=False, callback=_semantic_type,
        help="The intent type it is for, e.g. order.place.v1.")],
    mode: Annotated[str, typer.Option(
        "--compatibility-mode", "--mode",
        help="strict: payloads must fit, always; backward: must fit unless a sender asks less (schema_mode); "
             "warn: an intent that does not fit is taken, the problem recorded on it.")] = "backward",
    scope: Annotated[str, typer.Option(
        help="tenant: one agent's (--owner-agent); core: the whole workspace's (the workspace key).")] = "tenant",
    schema_ref: Annotated[str | None, typer.Option(
        "--schema-ref", show_default=False,
        help="Your own reference for it (kept as given) [default: registry://<owner>/<type>@<hash>].")] = None,
    inactive: Annotated[bool, typer.Option("--inactive", help="Register it without checking intents against it.")]
    = False,
    owner_agent: OwnerOpt = None, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
    context: ContextOpt = None,
) -> None:
    """Register a JSON Schema for an intent type (POST /v1/schemas); the same type and owner again replaces it."""
    from axme_cli.cli.common import client, output
    from axme_cli.errors import UsageError
    from axme_cli.protocol.semantic_schemas import COMPATIBILITY_MODES, SCOPES

    if mode not in COMPATIBILITY_MODES:
        raise UsageError(f"--compatibility-mode {mode!r} is not one of {', '.join(COMPATIBILITY_MODES)}",
                         fix="e.g. --compatibility-mode strict")
    if scope not in SCOPES:
        raise UsageError(f"--scope {scope!r} is not one of {', '.join(SCOPES)}", fix="e.g. --scope core")
    body: dict[str, Any] = {"semantic_type": semantic_type, "schema_json": _read_schema(file),
                            "compatibility_mode": mode, "scope": scope, "active": not inactive}
    if schema_ref:
        body["schema_ref"] = schema_ref
    with client(base_url, api_key, context) as c:
        answer = c.upsert_schema(body, owner_agent=owner_agent)
    schema = answer["schema"]
    whose = schema["owner_agent"] or "the workspace"
    state = "" if schema["active"] else " (inactive)"
    output().result(answer, [f"✓ Schema for {schema['semantic_type']} ({whose}, {schema['compatibility_mode']})"
                             f"{state}: {schema['schema_ref']}"])


@app.command("get")
def get(
    semantic_type: Annotated[str, typer.Argument(metavar="TYPE", show_default=False, callback=_semantic_type,
                                                 help="The intent type, e.g. order.place.v1.")],
    owner_agent: OwnerOpt = None, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
    context: ContextOpt = None,
) -> None:
    """Show the schema intents of TYPE are checked against: the owner agent's, else the workspace's."""
    import json

    from axme_cli.cli.common import client, output
    from axme_cli.render.console import key_values, out

    with client(base_url, api_key, context) as c:
        answer = c.get_schema(semantic_type, owner_agent=owner_agent)
    schema = answer["schema"]

    def text() -> None:
        key_values([(f"{k}:", "" if schema.get(k) is None else schema[k])
                    for k in ("semantic_type", "scope", "owner_agent", "compatibility_mode", "active", "schema_ref",
                              "schema_hash", "updated_at")])
        out(json.dumps(schema["schema_json"], indent=2, ensure_ascii=False))

    output().result(answer, text)

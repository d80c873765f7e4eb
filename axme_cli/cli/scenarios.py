"""`axme scenarios validate|apply`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from axme_cli.cli.common import ApiKeyOpt, BaseUrlOpt, ContextOpt

FileArg = Annotated[Path, typer.Argument(help="ScenarioBundle JSON file.", show_default=False)]


def read_bundle(path: Path) -> tuple[Any, str | None]:
    """(parsed JSON or None, a JSON syntax problem). An unreadable file is a usage error (exit 2)."""
    import json

    from axme_cli.errors import UsageError

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file", fix="check the path") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        return json.loads(text), None
    except ValueError as exc:
        line = getattr(exc, "lineno", "?")
        col = getattr(exc, "colno", "?")
        return None, f"not valid JSON at line {line} column {col}: {getattr(exc, 'msg', exc)}"


app = typer.Typer(help="Validate and run ScenarioBundle files.", no_args_is_help=True, rich_markup_mode=None)

@app.command("validate")
def validate(file: FileArg) -> None:
    """Check a bundle offline: exit 1 when invalid, 0 when valid (warnings allowed)."""
    from axme_cli.cli.common import output
    from axme_cli.protocol.scenario import check
    from axme_cli.render.console import err, out

    raw, syntax = read_bundle(file)
    if syntax is not None:
        errors, warnings = [syntax], []
    else:
        _, problems, notes = check(raw)
        errors, warnings = [str(p) for p in problems], [str(w) for w in notes]
    def text() -> None:
        for e in errors:
            err(f"{file}: {e}")
        for w in warnings:
            err(f"{file}: warning: {w}")
        if not errors:
            out(f"{file}: valid" + (f" ({len(warnings)} warnings)" if warnings else ""))

    output().result({"ok": not errors, "valid": not errors, "file": str(file), "errors": errors,
                     "warnings": warnings}, text)
    if errors:
        raise typer.Exit(1)

@app.command("apply")
def apply(
    file: FileArg,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Show the run live until it ends.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Block until it ends (silently).")] = False,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Provision the bundle's agents, start its workflow, and (with --watch/--wait) follow it to the end."""
    from axme_cli.cli.common import client, output
    from axme_cli.errors import CliError
    from axme_cli.protocol.scenario import check
    from axme_cli.render.console import err

    raw, syntax = read_bundle(file)
    if syntax is not None:
        raise CliError(f"{file}: {syntax}", fix=f"check it with `axme scenarios validate {file}`")
    bundle, problems, _ = check(raw)
    if problems or bundle is None:
        for p in problems:
            err(f"{file}: {p}")
        raise CliError(f"{file} is not a valid scenario bundle", fix=f"see `axme scenarios validate {file}`",
                       code="scenario_invalid")
    with client(base_url, api_key, context) as c:
        provisioned = provision(c, raw)
        answer = c.apply_scenario(raw)
        intent_id = answer["intent_id"]
        answer["agents_provisioned"] = provisioned
        keep_delivery_secrets(c.base_url, answer.get("agents") or [])
        if not watch and not wait:
            output().result(answer, [
                f"axme scenarios apply · {answer['scenario_id']}",
                *(f"  [agent:assign] {agent['address']}  key {agent['key']}" for agent in provisioned),
                f"  [intent:create] intent_id={intent_id}",
                f"  [intent:create] workflow compile_id={answer['compile_id']}",
                f"Follow it: axme observe {intent_id}   (or: axme intents get {intent_id})"])
            return
        status = run_and_follow(c, intent_id, title=bundle.title or bundle.scenario_id, watch=watch,
                                steps=step_ids(raw))
    if status != "COMPLETED":
        raise typer.Exit(1)


def step_ids(raw: dict[str, Any]) -> list[str]:
    """The workflow's step ids, in the bundle's order."""
    steps = (raw.get("workflow") or {}).get("steps") or []
    return [str(s["step_id"]) for s in steps if isinstance(s, dict) and s.get("step_id")]


def keep_delivery_secrets(base_url: str, agents: list[dict[str, Any]]) -> None:
    """An http agent's new delivery secret (answered once by apply) goes to scenario-agents.json, never to the
    screen or --json: the answer says where it is instead."""
    from axme_cli.config import agents_file

    for agent in agents:
        secret = agent.pop("delivery_secret", None)
        if secret is None:
            continue
        with agents_file.locked():
            entry = agents_file.find(agent["address"], base_url) or {"address": agent["address"],
                                                                       "base_url": base_url}
            agents_file.upsert({**entry, "delivery_secret": secret})
        agent["delivery_secret"] = f"saved to {agents_file.path()}"


def provision(c: Any, raw: dict[str, Any]) -> list[dict[str, Any]]:
    """Service accounts and keys for `create_if_missing` agents, recorded in scenario-agents.json."""
    from axme_cli.config import agents_file
    from axme_cli.protocol.addresses import qualify

    health = c.health()
    org, ws = health.get("org_id") or "local", health.get("workspace_id") or "dev"
    out: list[dict[str, Any]] = []
    existing: list[dict[str, Any]] = []
    for agent in raw.get("agents") or []:
        address = qualify(agent["address"], org, ws)
        if not agent.get("create_if_missing"):
            continue
        with agents_file.locked():  # another axme process may be saving keys at the same time
            out.append(_provision_one(c, agent, address, org, ws, existing))
    return out


def _provision_one(c: Any, agent: dict[str, Any], address: str, org: str, ws: str,
                   existing: list[dict[str, Any]]) -> dict[str, Any]:
    """One agent: its key kept if saved already, else its service account (found or created) and a new key."""
    import datetime

    from axme_cli.config import agents_file

    if agents_file.find(address, c.base_url):
        return {"address": address, "key": "kept in scenario-agents.json", "created": False}
    if not existing:
        existing.extend(c.list_service_accounts())
    sa = next((s for s in existing if s.get("agent_address") == address), None)
    created = sa is None
    if sa is None:
        body = {"name": address, "org_id": org, "workspace_id": ws}
        if agent.get("display_name"):
            body["display_name"] = agent["display_name"]
        sa = c.create_service_account(body)["service_account"]
    key = c.create_key(sa["service_account_id"])["key"]
    agents_file.upsert({
        "address": address, "service_account_id": sa["service_account_id"], "key_id": key["key_id"],
        "api_key": key["token"], "base_url": c.base_url,
        "created_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    })
    return {"address": address, "key": f"saved to {agents_file.path()}", "created": created}


def run_and_follow(c: Any, intent_id: str, *, title: str, watch: bool, hint: str | None | bool = True,
                   steps: list[str] | None = None) -> str:
    """Follow a workflow parent to its end: live view with --watch, silent otherwise. Returns the status.
    ``hint``: the command that shows the audit log afterwards (True: `axme intents log ID`; None: none works).
    ``steps``: the workflow's step ids, shown before they run (and as NOT RUN if they never do)."""
    from axme_cli.cli.common import output
    from axme_cli.render.workflow import WorkflowView, follow

    shown = output()
    events = c.follow_intent(intent_id, wait_seconds=15)
    view = WorkflowView(intent_id, title=title,
                        log_hint=f"axme intents log {intent_id}" if hint is True else hint or None)
    view.expect(steps or [])
    if not watch:
        for _ in events:
            pass
    elif shown.json:  # the live view is for people; a script gets the events, one JSON line each
        for event in events:
            shown.item(event)
    else:
        shown.text([title, f"intent {intent_id}"])  # two short lines: the title once, and the id before the wait
        follow(events, view)
    final = c.get_intent(intent_id)
    intent = final["intent"]
    if not watch:
        shown.result(final)  # --wait: the final intent with --json, nothing without
    else:
        view.final = intent["status"]
        view.final_error = intent.get("error") if intent["status"] != "COMPLETED" else None
        shown.text(view.summary())
    return str(intent["status"])

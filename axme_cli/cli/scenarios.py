"""`axme scenarios validate|apply`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from axme_cli.cli.common import ApiKeyOpt, BaseUrlOpt, ContextOpt

FileArg = Annotated[Path, typer.Argument(help="ScenarioBundle JSON file.", show_default=False)]


def read_bundle(path: Path) -> tuple[Any, str | None]:
    """(parsed JSON or None, a JSON syntax problem). An unreadable file is a usage error (exit 2)."""
    from axme_cli.errors import UsageError
    from axme_cli.protocol.scenario import parse_json_text

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file", fix="check the path") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read ({exc.strerror})") from None
    return parse_json_text(text)


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


@app.command("test")
def test(
    files: Annotated[list[Path], typer.Argument(
        help="Scenario test files (e.g. scenarios/order-saga.test.json; docs/scenario-tests.md).", metavar="FILE",
        show_default=False)],
    against_context: Annotated[bool, typer.Option(
        "--against-context", help="Run on the runtime of the active context (or --base-url/--context) instead of a "
        "throwaway one; needs its workspace admin key.")] = False,
    junit_xml: Annotated[Path | None, typer.Option(
        "--junit-xml", help="Also write a JUnit XML report here (for CI).", show_default=False)] = None,
    parallel: Annotated[int, typer.Option("--parallel", help="Cases run at once.", min=1, max=64)] = 8,
    case_timeout: Annotated[float, typer.Option(
        "--case-timeout", help="Seconds (real time) a case may take before it counts as an error.", min=1,
        max=86400)] = 60.0,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Run each case of the test files against the bundle they name, with stand-in agents, and check what the case
    expects. Exit 0 when every case passes, 1 when any fails, 2 on a bad file (nothing runs then). Output: a live
    view; -o json one document; -o jsonl a line per case as it ends."""
    import time

    from axme_cli.cli.common import output
    from axme_cli.errors import UsageError
    from axme_cli.render import scenario_tests as view
    from axme_cli.testing.load import load
    from axme_cli.testing.runner import CaseRun, Run

    shown = output()
    mode = "jsonl" if shown.lines else "json" if shown.json else "text"
    if not against_context and (base_url or api_key or context):
        raise UsageError("--base-url, --api-key and --context choose the runtime of --against-context",
                         fix="add --against-context, or leave them out to test on a throwaway runtime")
    loaded, problems = [], []
    for path in files:
        file, found = load(str(path))
        problems += found
        if file is not None:
            loaded.append(file)
    if problems:
        _refuse(problems)
    report = _junit_target(junit_xml) if junit_xml is not None else None
    cases = [CaseRun(file, case) for file in loaded for case in file.test.cases]
    started = time.monotonic()
    runtime, target = _test_target(against_context, base_url, api_key, context, loaded)
    failed = False
    try:
        hint = _inspect_hint(target, against_context, base_url, api_key, context)

        def done(case: CaseRun) -> None:
            if mode == "jsonl":
                shown.item(case.as_dict())
            elif mode == "text":
                view.ended(case.as_dict())

        live = view.LiveView(lambda: [{**c.as_dict(), "at": c.step} for c in cases])
        run = Run(target, parallel=parallel, case_timeout=case_timeout)
        if mode == "text":
            with live.shown() as redraw:
                run.run(cases, on_tick=redraw, on_done=done)
        else:
            run.run(cases, on_done=done)
        seconds = time.monotonic() - started
        results = [c.as_dict() for c in cases]
        failed = any(not r["passed"] for r in results)
        if report is not None:
            from axme_cli.render.junit import report as junit

            report.write_bytes(junit(results, seconds=seconds, hint=hint))
        if mode == "json":
            shown.items(results, ok=not failed)
        elif mode == "text":
            view.failures(results, hint)
            shown.text(["", view.summary(results, seconds)])
        if failed and runtime is not None:
            shown.say(f"The test runtime's database is kept in {runtime.folder}: serve it with `axme dev --db "
                      f"{runtime.folder}/test.db --port 0` and look at an intent named above with `axme intents "
                      "describe ID --context <the context axme dev names>`.")
    finally:
        if runtime is not None:
            runtime.stop(keep=failed)
        if hasattr(target.clock, "close"):  # the client that moves a context runtime's test clock
            target.clock.close()
    if failed:
        raise typer.Exit(1)


def _refuse(problems: list[str]) -> None:
    """A bad test file: every problem on stderr, then exit 2 before anything runs."""
    from axme_cli.errors import UsageError
    from axme_cli.render.console import err

    for problem in problems:
        err(problem)
    first = problems[0] if len(problems) == 1 else f"{len(problems)} problems, the first: {problems[0]}"
    raise UsageError(f"the scenario tests are not valid ({first}); nothing ran", code="scenario_test_invalid",
                     fix="fix the fields named above (docs/scenario-tests.md describes the format)")


def _junit_target(path: Path) -> Path:
    """Where the JUnit report goes: checked before anything runs (its folder made), so a run never ends unable to
    write it."""
    from axme_cli.errors import UsageError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab"):
            pass
    except OSError as exc:
        raise UsageError(f"--junit-xml {path}: cannot be written ({exc.strerror})",
                         fix="give a path in a folder you may write to") from None
    return path


def _test_target(against_context: bool, base_url: str | None, api_key: str | None, context: str | None,
                 loaded: list[Any]) -> tuple[Any, Any]:
    """(the throwaway runtime or None, the Target the cases run on)."""
    from axme_cli.errors import CliError, UsageError
    from axme_cli.testing.runner import real_time_problems
    from axme_cli.testing.runtime import RemoteClock, Target, Throwaway

    if not against_context:
        runtime = Throwaway()
        try:
            return runtime, runtime.start()
        except RuntimeError as exc:
            raise CliError(str(exc), fix="run it again; if it persists, rerun with AXME_DEBUG=1") from None
    from axme_cli.cli.common import client, target

    t = target(base_url, api_key, context)
    if not t.api_key:
        raise UsageError(f"--against-context: the stand-in agents answer with the workspace admin key, and context "
                         f"{t.context!r} has none", fix="pass --api-key with the workspace key (axme dev prints "
                         "where it is kept)")
    c = client(base_url, api_key, context)  # kept open: the test clock, if it has one, is moved through it
    health = c.health()
    clock = RemoteClock.of(c)
    if clock is None:
        c.close()
        problems = real_time_problems(loaded)
        if problems:
            _refuse(problems)
    return None, Target(t.base_url, t.api_key, str(health.get("org_id") or "local"),
                        str(health.get("workspace_id") or "dev"), clock=clock)


def _inspect_hint(target: Any, against_context: bool, base_url: str | None, api_key: str | None,
                  context: str | None) -> Any:
    """How to look at a case's workflow intent afterwards, on the context's runtime: `axme intents describe` with
    the target this run was given on its command line (the key as a placeholder: it is not printed)."""
    if not against_context:
        return lambda intent_id: None
    flags = [*(["--base-url", base_url] if base_url else []), *(["--api-key", "<key>"] if api_key else []),
             *(["--context", context] if context else [])]
    return lambda intent_id: " ".join(["axme", "intents", "describe", intent_id, *flags])


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

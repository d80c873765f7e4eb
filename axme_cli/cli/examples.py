"""`axme examples list|run`: see a saga run end to end in seconds, with nothing else installed."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from axme_cli.cli.common import ApiKeyOpt, BaseUrlOpt, ContextOpt

app = typer.Typer(help="Ready-made scenarios you can run at once.", no_args_is_help=True, rich_markup_mode=None)

@app.command("list")
def list_() -> None:
    """List the examples."""
    from axme_cli.cli.common import output
    from axme_cli.examples import CATALOG

    output().items([{"name": k, "description": v} for k, v in CATALOG.items()],
                    [*(f"{name:28} {text}" for name, text in CATALOG.items()),
                     "Run one: axme examples run order-saga [--fail-at shipping]"])

@app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="Example name (see `axme examples list`).", show_default=False)],
    fail_at: Annotated[str | None, typer.Option(
        "--fail-at", help="Make this step (or role) fail, to see compensation.", show_default=False)] = None,
    delay: Annotated[float, typer.Option("--delay", help="Seconds each demo step takes.", min=0)] = 0.3,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Run an example: uses the runtime of your context, or starts a temporary one; starts the demo
    agents as separate processes; applies the scenario and shows it live. Exit 0 if it COMPLETED."""
    from axme_cli.errors import UsageError
    from axme_cli.examples import CATALOG, load

    if name not in CATALOG:
        raise UsageError(f"no example named {name!r}", fix="see `axme examples list`")
    bundle = load(name)
    steps = [s["step_id"] for s in bundle["workflow"]["steps"]]
    roles = [a["role"] for a in bundle["agents"]]
    if fail_at and fail_at not in steps and fail_at not in roles:
        raise UsageError(f"--fail-at {fail_at!r} is neither a step ({', '.join(steps)}) nor a role "
                         f"({', '.join(roles)}) of {name}")
    status = _run(name, bundle, fail_at, delay, base_url, api_key, context)
    if status != "COMPLETED":
        raise typer.Exit(1)


def _run(name: str, bundle: dict[str, Any], fail_at: str | None, delay: float, base_url: str | None,
         api_key: str | None, context: str | None) -> str:
    import os
    import subprocess
    import sys
    import tempfile

    from axme_cli.cli.common import client, output, target
    from axme_cli.cli.scenarios import provision, run_and_follow, step_ids
    from axme_cli.client.http import Client
    from axme_cli.config import agents_file
    from axme_cli.errors import CliError, UnreachableError
    say = output().say
    agents: list[subprocess.Popen[bytes]] = []
    runtime: subprocess.Popen[bytes] | None = None
    scratch = tempfile.TemporaryDirectory(prefix="axme-example-")
    bundle = own_addresses(bundle)
    provisioned: list[dict[str, Any]] = []
    c: Client | None = None
    try:
        t = target(base_url, api_key, context)
        if _answers(t.base_url):
            c = client(base_url, api_key, context)
            say(f"Using the runtime at {t.base_url} (context {t.context}).")
        elif base_url:  # asked for by name: a temporary runtime instead would run the example somewhere else
            raise UnreachableError(f"cannot reach {t.base_url} (--base-url)", code="unreachable",
                                   fix="start it (`axme dev`), or leave out --base-url to run the example on a "
                                   "temporary runtime")
        else:
            # A temporary runtime with its own config dir, so nothing of the user's is touched.
            os.environ["AXME_CONFIG_DIR"] = os.path.join(scratch.name, "config")
            url, key, runtime = _start_runtime(scratch.name)
            c = Client(url, key)
            say(f"No runtime answers at {t.base_url}; started a temporary one at {url} (stopped at the end).")
        provisioned = provision(c, bundle)
        env = dict(os.environ, AXME_DEMO_DELAY=str(delay), AXME_DEMO_FAIL_AT=fail_at or "")
        for agent in bundle["agents"]:
            entry = agents_file.lookup(agent["address"], c.base_url)
            if entry is None:
                raise CliError(f"no key for {agent['address']} after provisioning")
            log = open(os.path.join(scratch.name, f"agent-{agent['role']}.log"), "wb")  # noqa: SIM115
            agents.append(subprocess.Popen(
                [sys.executable, "-m", "axme_cli", "agents", "run", entry["address"], "--api-key",
                 entry["api_key"], "--base-url", c.base_url, "--handler", "axme_cli.agents.demo:handle",
                 "--ready-file", os.path.join(scratch.name, f"agent-{agent['role']}.ready")],
                env=env, stdout=log, stderr=subprocess.STDOUT))
            say(f"  agent {agent['role']:10} {entry['address']}  (pid {agents[-1].pid})")
        # Sent before the agents listen, the first step's time would include their start-up.
        _wait_ready(scratch.name, bundle["agents"], agents)
        answer = c.apply_scenario(bundle)
        if fail_at:
            say(f"  failing at {fail_at}")
        # The log of a temporary runtime goes with it; otherwise the hint names what this run was given.
        hint = None if runtime else log_hint(answer["intent_id"], t.base_url if base_url else None,
                                             api_key is not None, context)
        return run_and_follow(c, answer["intent_id"], title=bundle.get("title") or name, watch=True, hint=hint,
                              steps=step_ids(bundle))
    finally:
        _stop(agents)
        if c is not None:
            with c:
                if runtime is None:
                    _retire(c, provisioned)
        if runtime is not None:
            _stop([runtime])
        scratch.cleanup()


def own_addresses(bundle: dict[str, Any]) -> dict[str, Any]:
    """The bundle with each agent at an address of this run's own (``inventory`` -> ``inventory-3f9a1c``), so two
    runs on one runtime, or an `axme agents run inventory` left running, never take each other's steps."""
    import copy
    import secrets

    tag = secrets.token_hex(3)
    own = copy.deepcopy(bundle)
    for agent in own["agents"]:
        head, _, name = agent["address"].rpartition("/")
        agent["address"] = f"{head}/{name}-{tag}" if head else f"{name}-{tag}"
    return own


def log_hint(intent_id: str, base_url: str | None, api_key: bool, context: str | None) -> str:
    """The command that shows the run's audit log, with the target this run was given on its command line (the
    key as a placeholder: it is not printed)."""
    words = ["axme", "intents", "log", intent_id]
    if base_url:
        words += ["--base-url", base_url]
    if api_key:
        words += ["--api-key", "<key>"]
    if context:
        words += ["--context", context]
    return " ".join(words)


def _retire(c: Any, provisioned: list[dict[str, Any]]) -> None:
    """Delete the run's own service accounts (their keys are revoked with them) and forget their keys: each run
    makes new ones, which would otherwise pile up. Best effort: the run's outcome is already decided."""
    import contextlib

    from axme_cli.config import agents_file
    from axme_cli.errors import CliError

    for agent in provisioned:
        with contextlib.suppress(CliError, OSError):
            with agents_file.locked():
                entry = agents_file.find(agent["address"], c.base_url)
                agents_file.remove(agent["address"], c.base_url)
            if entry and entry.get("service_account_id"):
                c.delete_service_account(entry["service_account_id"])


def _wait_ready(folder: str, agents: list[dict[str, Any]], procs: list[Any]) -> None:
    """Until every demo agent's feed is open (its --ready-file exists); an agent that stops first is an error."""
    import os
    import time

    from axme_cli.errors import CliError

    deadline = time.monotonic() + 60
    for agent, proc in zip(agents, procs, strict=True):
        ready = os.path.join(folder, f"agent-{agent['role']}.ready")
        while not os.path.exists(ready):
            if proc.poll() is not None or time.monotonic() > deadline:
                log = os.path.join(folder, f"agent-{agent['role']}.log")
                with open(log, errors="replace") as fh:
                    tail = fh.read()[-500:].strip()
                raise CliError(f"the demo agent {agent['role']} did not start listening"
                               + (f": {tail}" if tail else ""), fix="run the example again; if it persists, "
                               "check the runtime with `axme doctor`")
            time.sleep(0.02)


def _stop(procs: list[Any]) -> None:
    import contextlib
    import subprocess

    for proc in reversed(procs):
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _answers(base_url: str) -> bool:
    from axme_cli.client.lean_httpx import httpx

    try:
        return httpx.get(base_url.rstrip("/") + "/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _start_runtime(folder: str) -> tuple[str, str, Any]:
    import json
    import os
    import secrets
    import subprocess
    import sys
    import time

    from axme_cli.errors import CliError

    ready = os.path.join(folder, "ready.json")
    key = "axme_example_" + secrets.token_urlsafe(24)
    log = open(os.path.join(folder, "runtime.log"), "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "axme_cli", "dev", "--port", "0", "--db",
                             os.path.join(folder, "example.db"), "--ready-file", ready, "--api-key", key],
                            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    deadline = time.monotonic() + 30
    while not os.path.exists(ready):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise CliError("the temporary runtime did not start", fix=f"see {folder}/runtime.log")
        time.sleep(0.05)
    with open(ready) as fh:
        url = json.load(fh)["url"]
    return url, key, proc

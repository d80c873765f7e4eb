"""`axme mesh agents list|get`, `axme mesh kill|resume|events|dashboard`: the agent mesh of the runtime (its agents'
health from their heartbeats and delivery failures, the kill switch, the mesh's events).

An agent is named as everywhere else: a bare name, ``org/ws/name``, ``agent://org/ws/name`` or its service-account
id. ``kill`` asks for confirmation on a terminal (``--yes`` skips it; without a terminal it is required).
``dashboard`` opens the runtime's own mesh page (``/ui/mesh``), where AXME's CLI opens mesh.axme.ai."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from axme_cli.cli.common import ApiKeyOpt, BaseUrlOpt, ContextOpt

AgentArg = Annotated[str, typer.Argument(help="Agent: a bare name, org/ws/name, agent://org/ws/name, or its "
                                         "service-account id.", metavar="AGENT", show_default=False)]
ReasonOpt = Annotated[str | None, typer.Option("--reason", help="Why (kept with the event, at most 500 characters).",
                                               show_default=False)]

app = typer.Typer(help="The agent mesh: agents' health (heartbeats, delivery failures), the kill switch, events.",
                  no_args_is_help=True, rich_markup_mode=None)
agents = typer.Typer(help="Agents with their health, last heartbeat, metrics and kill switch.", no_args_is_help=True,
                     rich_markup_mode=None)
app.add_typer(agents, name="agents")


def _agent(value: str) -> str:
    from axme_cli.cli.inputs import shown
    from axme_cli.errors import UsageError

    agent = value.strip()
    if not agent or any(ch.isspace() for ch in agent) or len(agent) > 300:
        raise UsageError(f"AGENT {shown(value)}: not an agent", fix="give its name (e.g. inventory), "
                         "agent://org/ws/name or service-account id; list them with `axme mesh agents list`")
    return agent


@contextlib.contextmanager
def _about_an_agent() -> Iterator[None]:
    """An unknown agent's 404 says where to look."""
    from axme_cli.errors import NotFoundError

    try:
        yield
    except NotFoundError as exc:
        raise NotFoundError(exc.message, code=exc.code, fix="list them with `axme mesh agents list`, and check the "
                            "context you are using (`axme context show`)") from None


def _choice(flag: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    from axme_cli.cli.inputs import shown
    from axme_cli.errors import UsageError

    if value is None:
        return None
    if value.strip().lower() not in allowed:
        raise UsageError(f"{flag} {shown(value)}: not one of {', '.join(allowed)}", fix=f"use one of "
                         f"{', '.join(allowed)}")
    return value.strip().lower()


def _reason(value: str | None) -> str | None:
    from axme_cli.errors import UsageError

    if value is None or not value.strip():
        return None
    if len(value.strip()) > 500:
        raise UsageError(f"--reason: at most 500 characters, got {len(value.strip())}", fix="say it shorter")
    return value.strip()


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _metrics(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in metrics.items()) or "—"


@agents.command("list")
def agents_list(
    health: Annotated[str | None, typer.Option("--health", help="Only agents in this health: healthy, degraded, "
                                               "unhealthy or unknown.", show_default=False)] = None,
    status: Annotated[str | None, typer.Option("--status", help="Only active or killed agents.",
                                               show_default=False)] = None,
    limit: Annotated[int, typer.Option(help="At most this many.", min=1, max=1000)] = 100,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Agents with their health (from heartbeats and delivery failures), last heartbeat and kill switch."""
    from axme_cli.cli.common import client, output
    from axme_cli.protocol.mesh import HEALTH_STATES
    from axme_cli.render.console import out
    from axme_cli.render.tables import table

    chosen_health = _choice("--health", health, HEALTH_STATES)
    chosen_status = _choice("--status", status, ("active", "killed"))
    with client(base_url, api_key, context) as c:
        answer = c.mesh_agents(limit=limit, health=chosen_health, status=chosen_status)
    found = answer["agents"]

    def text() -> None:
        table(["AGENT", "HEALTH", "STATUS", "LAST HEARTBEAT", "FAILURES", "ADDRESS"],
              [[a["name"], a["health"], a["status"].upper(), _ago(a["heartbeat_age_seconds"]),
                a["delivery_failures"]["recent"], a["address"]] for a in found],
              empty="No agents match." if health or status else "No agents yet.", status_column=None)
        summary = answer["summary"]
        out(f"{len(found)} of {answer['total']} shown; " + ", ".join(f"{n} {state}" for state, n in summary.items()))

    output().items(found, text)


@agents.command("get")
def agents_get(agent: AgentArg, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
               context: ContextOpt = None) -> None:
    """An agent's health and why, its last heartbeat and metrics, delivery failures, kill switch and latest
    events."""
    from axme_cli.cli.common import client, output
    from axme_cli.render.console import key_values, out

    agent = _agent(agent)
    with client(base_url, api_key, context) as c, _about_an_agent():
        answer = c.mesh_agent(agent)

    def text() -> None:
        a = answer["agent"]
        failures = a["delivery_failures"]
        out(f"Agent {a['address']}: {a['health']} ({a['health_reason']}), {a['status']}.")
        rows: list[tuple[str, Any]] = [
            ("Service account:", a["service_account_id"]),
            ("Last heartbeat:", f"{a['last_heartbeat_at'] or 'never'} ({a['heartbeats']} in all)"),
            ("Metrics:", _metrics(a["metrics"])),
            ("Delivery failures:", f"{failures['recent']} in the last {failures['window_seconds']:.0f} s, "
                                   f"{failures['total']} in all"),
        ]
        if a["killed"]:
            rows.append(("Killed:", f"{a['killed_at']} by {a['killed_by']}"
                         + (f": {a['kill_reason']}" if a["kill_reason"] else "")))
        elif a["resumed_at"]:
            rows.append(("Resumed:", f"{a['resumed_at']} by {a['resumed_by']}"))
        key_values(rows)
        if answer["events"]:
            out("Latest events:")
            for e in answer["events"][:10]:
                out(f"  {e['created_at']}  {e['event_type']}  {_details(e)}")

    output().result(answer, text)


def _details(event: dict[str, Any]) -> str:
    d = event["details"]
    if event["event_type"] == "agent.health_changed":
        return f"{d.get('previous')} → {d.get('health')} ({d.get('reason')})"
    return f"by {event['actor']}" + (f": {d['reason']}" if d.get("reason") else "")


def _confirm(question: str) -> bool:
    """Ask on the terminal; the question goes to stderr, so stdout stays one document. No answer is a no."""
    import sys

    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


@app.command("kill")
def kill(
    agent: AgentArg,
    reason: ReasonOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (needed when not on a "
                                      "terminal).")] = False,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Kill an agent now: it gets no deliveries and may not send until `axme mesh resume`; what is sent to it
    waits. The workspace key or a person's login only."""
    import sys

    from axme_cli.cli.common import client, output
    from axme_cli.errors import CliError, UsageError

    agent, why = _agent(agent), _reason(reason)
    if not yes and not sys.stdin.isatty():
        raise UsageError(f"not killing agent {agent!r} without confirmation (no terminal to ask on)",
                         fix=f"pass --yes: `axme mesh kill {agent} --yes`", code="confirmation_required")
    with client(base_url, api_key, context) as c, _about_an_agent():
        if not yes:
            address = c.mesh_agent(agent)["agent"]["address"]
            if not _confirm(f"Kill agent {address}? It gets no deliveries and may not send until resumed."):
                raise CliError(f"agent {address} was not killed", code="not_confirmed")
        answer = c.mesh_kill(agent, reason=why)
    a = answer["agent"]
    if not answer["changed"]:
        output().result(answer, f"Agent {a['address']} was already killed ({a['killed_at']} by {a['killed_by']}).")
        return
    output().result(answer, [f"✓ Agent {a['address']} killed: no deliveries to it, no sends from it.",
                             f"Resume it with: axme mesh resume {a['name']}"])


@app.command("resume")
def resume(agent: AgentArg, reason: ReasonOpt = None, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
           context: ContextOpt = None) -> None:
    """Resume a killed agent: what waited for it is delivered now, and it may send again."""
    from axme_cli.cli.common import client, output

    agent, why = _agent(agent), _reason(reason)
    with client(base_url, api_key, context) as c, _about_an_agent():
        answer = c.mesh_resume(agent, reason=why)
    a = answer["agent"]
    if not answer["changed"]:
        output().result(answer, f"Agent {a['address']} is not killed; nothing to resume.")
        return
    output().result(answer, f"✓ Agent {a['address']} resumed: what waited for it is delivered now.")


@app.command("events")
def events(
    event_type: Annotated[str | None, typer.Option("--type", help="Only kill, resume or health events.",
                                                   show_default=False)] = None,
    agent: Annotated[str | None, typer.Option("--agent", help="Only this agent's.", show_default=False)] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.", min=1, max=500)] = 50,
    before: Annotated[str | None, typer.Option("--before", help="The next page: next_cursor of the previous one.",
                                               show_default=False)] = None,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Mesh events, newest first: kills, resumes and health changes."""
    from axme_cli.cli.common import client, output
    from axme_cli.render.tables import table

    kinds = {"kill": "agent.killed", "resume": "agent.resumed", "health": "agent.health_changed"}
    kind = _choice("--type", event_type, tuple(kinds))
    if before is not None:
        _event_id(before)
    with client(base_url, api_key, context) as c, _about_an_agent():
        found, next_cursor = c.mesh_events(limit=limit, event_type=kinds[kind] if kind else None,
                                           agent=_agent(agent) if agent else None, before=before)
    output().items(found, lambda: table(
        ["TIME", "EVENT", "AGENT", "WHAT"],
        [[e["created_at"], e["event_type"].removeprefix("agent."), e["address"], _details(e)] for e in found],
        empty="No mesh events.", status_column=None), next_cursor=next_cursor)


def _event_id(value: str) -> None:
    import uuid

    from axme_cli.cli.inputs import shown
    from axme_cli.errors import UsageError

    try:
        uuid.UUID(value)
    except ValueError:
        raise UsageError(f"--before {shown(value)}: not an event id", fix="copy next_cursor from the previous "
                         "page (`axme mesh events --json`)") from None


@app.command("dashboard")
def dashboard(
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Print the URL, open no browser.")] = False,
    base_url: BaseUrlOpt = None, context: ContextOpt = None,
) -> None:
    """Open the mesh page of the runtime's dashboard (/ui/mesh): agents' health and the kill switch."""
    from axme_cli.cli.ui import open_page

    open_page("/ui/mesh", print_only=no_browser, base_url=base_url, context=context)

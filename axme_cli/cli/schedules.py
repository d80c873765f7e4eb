"""`axme schedules create|list|get|pause|resume|trigger|delete`: run a scenario (or send an intent) on a cron
schedule, in the runtime. The cron expression, the time zone and the file are checked here, before any request:
a mistake is exit 2 naming the flag (or file and field) and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from axme_cli.cli.common import ApiKeyOpt, BaseUrlOpt, ContextOpt

MISSED = {"skip": "skip", "catch-up-one": "catch_up_one", "catch_up_one": "catch_up_one"}
OVERLAP = ("skip", "allow")

IdArg = Annotated[str, typer.Argument(help="The schedule id (from `axme schedules list`).", show_default=False)]

app = typer.Typer(help="Schedules: run a scenario, or send an intent, at each occurrence of a cron expression.",
                  no_args_is_help=True, rich_markup_mode=None)


def _schedule_id(value: str) -> str:
    import uuid

    from axme_cli.cli.inputs import shown
    from axme_cli.errors import UsageError

    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise UsageError(f"schedule id {shown(value)} is not a UUID",
                         fix="copy the id from `axme schedules list`") from None


def _checked_when(cron: str, timezone: str) -> None:
    from axme_cli.cli.inputs import shown
    from axme_cli.errors import UsageError
    from axme_cli.protocol.schedules import cron_problem, next_after, timezone_problem

    for flag, value, problem in (("--cron", cron, cron_problem(cron)),
                                 ("--timezone", timezone, timezone_problem(timezone))):
        if problem is not None:
            raise UsageError(f"{flag} {shown(value)}: {problem.what}", fix=problem.fix,
                             code=f"invalid_{problem.field}")
    import time

    if next_after(cron, timezone, time.time()) is None:
        raise UsageError(f"--cron {shown(cron)}: matches no time in the next 50 years",
                         fix="name a date that exists (e.g. not 30 February)", code="invalid_cron")


def _scenario(path: Path) -> dict[str, Any]:
    from axme_cli.cli.scenarios import read_bundle
    from axme_cli.errors import UsageError
    from axme_cli.protocol.scenario import check

    raw, syntax = read_bundle(path)
    if syntax is not None:
        raise UsageError(f"{path}: {syntax}", fix="fix the JSON (a ScenarioBundle)")
    bundle, problems, _ = check(raw)
    if problems or bundle is None:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UsageError(f"{path}: {problems[0] if problems else 'not a scenario bundle'}{more}",
                         fix=f"see them all with `axme scenarios validate {path}`", code="scenario_invalid")
    if bundle.intent.deadline_at is not None:
        raise UsageError(f"{path}: intent.deadline_at: a fixed time would have passed for later runs",
                         fix="leave it out (steps take step_deadline_seconds)")
    return dict(raw)


def _intent(path: Path) -> dict[str, Any]:
    from pydantic import ValidationError

    from axme_cli.cli.inputs import parse_json_object
    from axme_cli.errors import UsageError
    from axme_cli.protocol.models import create_request_adapter, describe_validation_error

    body = parse_json_object("@" + str(path), "--intent")
    try:  # as POST /v1/intents checks it; a correlation_id left out is made anew for each run
        model = create_request_adapter.validate_python(
            {"correlation_id": "00000000-0000-4000-8000-000000000000", **body})
    except ValidationError as exc:
        message, _ = describe_validation_error(exc)
        raise UsageError(f"{path}: {message}", fix="an intent body as `POST /v1/intents` takes it: intent_type, "
                         "to_agent, payload, ...") from None
    if model.deadline_at is not None:
        raise UsageError(f"{path}: deadline_at: a fixed time would have passed for later runs", fix="leave it out")
    if model.attachments:
        raise UsageError(f"{path}: attachments: a schedule's runs carry no uploads",
                         fix="put what the runs need in the payload")
    return body


def _when(s: dict[str, Any]) -> str:
    return f"{s['cron']} ({s['timezone']})"


def _what(s: dict[str, Any]) -> str:
    if s["kind"] == "scenario":
        return f"scenario {s.get('scenario_id')}"
    return f"{s.get('intent_type')} to {s.get('to_agent')}"


@app.command("create")
def create(
    cron: Annotated[str, typer.Option("--cron", help='When: five cron fields, e.g. "0 2 * * *" (02:00 daily), or '
                                      "@hourly, @daily, @weekly, @monthly.", show_default=False)],
    scenario: Annotated[Path | None, typer.Option("--scenario", help="Apply this ScenarioBundle file each time.",
                                                  show_default=False)] = None,
    intent: Annotated[Path | None, typer.Option("--intent", help="Or send this intent (a JSON file as POST "
                                                "/v1/intents takes; correlation_id optional).",
                                                show_default=False)] = None,
    timezone: Annotated[str, typer.Option("--timezone", help="IANA time zone the cron fields are read in.")] = "UTC",
    payload: Annotated[str | None, typer.Option("--payload", help="JSON object (or @file) merged over the run's "
                                                "intent payload.", show_default=False)] = None,
    data: Annotated[list[str] | None, typer.Option("--data", help="Payload field key=value (repeatable), merged "
                                                   "after --payload.", show_default=False)] = None,
    missed: Annotated[str, typer.Option("--missed", help="Occurrences missed while the runtime was down: skip, or "
                                        "catch-up-one (one run for them all).")] = "skip",
    overlap: Annotated[str, typer.Option("--overlap", help="When the previous run has not ended: skip, or "
                                         "allow.")] = "skip",
    paused: Annotated[bool, typer.Option("--paused", help="Create it paused (start it with `resume`).")] = False,
    description: Annotated[str | None, typer.Option(help="A note for people.", show_default=False)] = None,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Create a schedule: each occurrence applies the scenario (or sends the intent) as an ordinary intent."""
    from axme_cli.cli.common import client, output
    from axme_cli.cli.inputs import parse_json_object, parse_pairs, shown
    from axme_cli.errors import UsageError
    from axme_cli.render.console import key_values, out

    _checked_when(cron, timezone)
    if missed not in MISSED:
        raise UsageError(f"--missed {shown(missed)}: not a policy", fix="use skip or catch-up-one")
    if overlap not in OVERLAP:
        raise UsageError(f"--overlap {shown(overlap)}: not a policy", fix="use skip or allow")
    if (scenario is None) == (intent is None):
        raise UsageError("give --scenario FILE or --intent FILE (one of them)",
                         fix='e.g. axme schedules create --cron "0 2 * * *" --scenario scenarios/order-saga.json')
    extra = parse_json_object(payload, "--payload") if payload else {}
    extra.update(parse_pairs(data))
    body: dict[str, Any] = {"cron": cron, "timezone": timezone, "missed_run_policy": MISSED[missed],
                            "overlap_policy": overlap, "paused": paused}
    if scenario is not None:
        body["scenario"] = _scenario(scenario)
    else:
        assert intent is not None
        body["intent"] = _intent(intent)
    if extra:
        body["payload"] = extra
    if description:
        body["description"] = description
    with client(base_url, api_key, context) as c:
        answer = c.create_schedule(body)

    def text() -> None:
        s = answer["schedule"]
        out(f"✓ Schedule {s['schedule_id']}: {_what(s)} at {_when(s)}.")
        key_values([("Next run:", s["next_fire_at"] or "paused"), ("Missed runs:", s["missed_run_policy"]),
                    ("Overlap:", s["overlap_policy"])])

    output().result(answer, text)


@app.command("list")
def list_(
    limit: Annotated[int, typer.Option(help="At most this many, newest first.", min=1, max=200)] = 50,
    cursor: Annotated[str | None, typer.Option(help="The next page: next_cursor of the previous one.",
                                               show_default=False)] = None,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Schedules with their next and last run."""
    from axme_cli.cli.common import client, output
    from axme_cli.render.tables import table

    if cursor is not None:
        cursor = _schedule_id(cursor)
    with client(base_url, api_key, context) as c:
        found, next_cursor = c.list_schedules(limit=limit, cursor=cursor)
    output().items(found, lambda: table(
        ["SCHEDULE ID", "WHEN", "RUNS", "STATE", "NEXT RUN", "LAST", "COUNT"],
        [[s["schedule_id"], _when(s), _what(s), s["status"], s["next_fire_at"] or "—",
          s["last_outcome"] or "—", f"{s['runs']} run, {s['skipped_overlap'] + s['skipped_missed']} skipped, "
                                    f"{s['failures']} failed"] for s in found],
        empty="No schedules.", status_column=None), next_cursor=next_cursor)


@app.command("get")
def get(schedule_id: IdArg, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
        context: ContextOpt = None) -> None:
    """A schedule, its counters and what it runs."""
    from axme_cli.cli.common import client, output
    from axme_cli.render.console import key_values, out

    schedule_id = _schedule_id(schedule_id)
    with client(base_url, api_key, context) as c:
        answer = c.get_schedule(schedule_id)

    def text() -> None:
        s = answer["schedule"]
        out(f"Schedule {s['schedule_id']}: {_what(s)} at {_when(s)}, {s['status']}.")
        key_values([("Next run:", s["next_fire_at"] or "—"), ("Last run:", s["last_fire_at"] or "—"),
                    ("Last intent:", s["last_intent_id"] or "—"), ("Last outcome:", s["last_outcome"] or "—"),
                    ("Last error:", s["last_error"] or "—"),
                    ("Counts:", f"{s['runs']} runs, {s['skipped_overlap']} skipped (overlap), "
                                f"{s['skipped_missed']} skipped (missed), {s['failures']} failed"),
                    ("Policies:", f"missed runs {s['missed_run_policy']}, overlap {s['overlap_policy']}")])

    output().result(answer, text)


@app.command("pause")
def pause(schedule_id: IdArg, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
          context: ContextOpt = None) -> None:
    """Stop firing until `resume` (it may still be triggered)."""
    from axme_cli.cli.common import client, output

    schedule_id = _schedule_id(schedule_id)
    with client(base_url, api_key, context) as c:
        answer = c.pause_schedule(schedule_id)
    output().result(answer, f"✓ Schedule {schedule_id} paused.")


@app.command("resume")
def resume(schedule_id: IdArg, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
           context: ContextOpt = None) -> None:
    """Fire again, from the first occurrence after now."""
    from axme_cli.cli.common import client, output

    schedule_id = _schedule_id(schedule_id)
    with client(base_url, api_key, context) as c:
        answer = c.resume_schedule(schedule_id)
    output().result(answer, f"✓ Schedule {schedule_id} resumed; next run {answer['schedule']['next_fire_at']}.")


@app.command("trigger")
def trigger(
    schedule_id: IdArg,
    allow_overlap: Annotated[bool, typer.Option("--allow-overlap", help="Run even if the previous run has not "
                                                "ended (whatever the schedule's overlap policy).")] = False,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Run now (the next occurrence stays as it was), unless the previous run goes on (overlap policy skip)."""
    from axme_cli.cli.common import client, output

    schedule_id = _schedule_id(schedule_id)
    with client(base_url, api_key, context) as c:
        answer = c.trigger_schedule(schedule_id, overlap_policy="allow" if allow_overlap else None)
    run = answer["run"]
    if run["started"]:
        output().result(answer, [f"✓ Schedule {schedule_id} started intent {run['intent_id']}.",
                                 f"Follow it: axme observe {run['intent_id']}"])
        return
    output().result(answer, f"Skipped: the previous run {run.get('previous_intent_id')} is still "
                            f"{run.get('previous_status')} (overlap policy skip); --allow-overlap runs anyway.")


@app.command("delete")
def delete(schedule_id: IdArg, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
           context: ContextOpt = None) -> None:
    """Delete it; runs it started go on."""
    from axme_cli.cli.common import client, output

    schedule_id = _schedule_id(schedule_id)
    with client(base_url, api_key, context) as c:
        answer = c.delete_schedule(schedule_id)
    output().result(answer, f"✓ Schedule {schedule_id} deleted.")

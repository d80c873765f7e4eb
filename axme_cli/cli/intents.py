"""`axme intents ...` and `axme observe`."""

from __future__ import annotations

import functools
from typing import Annotated, Any

import typer

from axme_cli.cli import completers
from axme_cli.cli.common import ApiKeyOpt, BaseUrlOpt, ContextOpt, FieldOpt, TypedFieldOpt
from axme_cli.protocol.lifecycle import TERMINAL


def _intent_id(value: str) -> str:
    """An intent id is a UUID; anything else is a typo, said here rather than by a 404 (or an encoding error)."""
    import uuid

    from axme_cli.cli.inputs import shown
    from axme_cli.errors import UsageError

    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise UsageError(f"intent id {shown(value)} is not a UUID",
                         fix="copy the id from `axme intents list`") from None


def _statuses(value: str | None) -> str | None:
    """``--status a,b``: known statuses, upper-cased."""
    from axme_cli.cli.inputs import shown
    from axme_cli.errors import UsageError
    from axme_cli.protocol.lifecycle import STATUSES

    if value is None:
        return None
    wanted = [s.strip().upper() for s in value.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in STATUSES]
    if unknown or not wanted:
        named = ", ".join(shown(s) for s in unknown) or shown(value)
        raise UsageError(f"--status {named}: not a status", fix=f"use one or more of {', '.join(STATUSES)}")
    return ",".join(wanted)


def _deadline(value: str | None) -> str | None:
    from datetime import datetime

    from axme_cli.cli.inputs import shown
    from axme_cli.errors import UsageError

    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise UsageError(f"--deadline-at {shown(value)} is not an RFC 3339 time with a zone",
                         fix="e.g. --deadline-at 2030-01-31T17:00:00Z")
    return value


def _address(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
    """``--to`` / ``--agent``: text (a word that is no UTF-8 cannot name an agent); the runtime judges the rest."""
    from axme_cli.cli.inputs import shown
    from axme_cli.errors import UsageError

    flag = param.opts[0] if param.opts else "--to"
    if value is None:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{flag} {shown(value)} is not an agent address (not UTF-8 text)",
                         fix=f"e.g. {flag} inventory or {flag} agent://org/workspace/inventory") from None
    return value


def _seconds(value: float | None) -> float | None:
    """``--timeout``: a positive, finite number of seconds."""
    import math

    from axme_cli.errors import UsageError

    if value is not None and not (math.isfinite(value) and value > 0):
        raise UsageError(f"--timeout {value:g}: not a positive number of seconds", fix="e.g. --timeout 30")
    return value


def _cursor(value: str | None) -> str | None:
    """``--cursor``: a page of `intents list` goes on after an intent id (its next_cursor)."""
    from axme_cli.cli.inputs import shown
    from axme_cli.errors import UsageError

    if value is None:
        return None
    try:
        return _intent_id(value)
    except UsageError:
        raise UsageError(f"--cursor {shown(value)} is not a cursor of `intents list`",
                         fix="pass the next_cursor of the previous `axme intents list --json`") from None


def _since(value: str | None, flag: str = "--since") -> str | None:
    """``--since 90s|15m|2h|7d`` (that long ago) or an RFC 3339 time: the UTC time the runtime compares with."""
    import re
    import time
    from datetime import UTC, datetime

    from axme_cli.cli.inputs import shown
    from axme_cli.errors import UsageError

    if value is None:
        return None
    ago = re.fullmatch(r"(\d{1,7})([smhd])", value.strip())
    at: datetime | None
    if ago:
        seconds = int(ago[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[ago[2]]
        try:
            at = datetime.fromtimestamp(time.time() - seconds, UTC)
        except (OverflowError, OSError, ValueError):  # before year 1
            at = None
    else:
        try:
            at = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            at = None
    if at is None or at.tzinfo is None:
        raise UsageError(f"{flag} {shown(value)} is neither an age nor an RFC 3339 time with a zone",
                         fix=f"e.g. {flag} 2h, {flag} 7d or {flag} 2030-01-31T17:00:00Z")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _search(value: str | None) -> str | None:
    import re

    from axme_cli.cli.inputs import shown
    from axme_cli.errors import UsageError

    if value is not None and not re.fullmatch(r"[0-9a-fA-F-]{1,36}", value):
        raise UsageError(f"--search {shown(value)}: an intent id (or its start) has only 0-9, a-f and '-'",
                         fix="e.g. --search 0193a1")
    return value.lower() if value else None


IdArg = Annotated[str, typer.Argument(help="Intent id.", show_default=False, callback=_intent_id,
                                      autocompletion=completers.intent_ids)]
TimeoutOpt = Annotated[float | None, typer.Option(
    "--timeout", metavar="SECONDS", show_default=False, callback=_seconds,
    help="Stop waiting after this many seconds: exit 1 naming the intent (which goes on).")]


def _exit_for(status: str) -> None:
    if status != "COMPLETED":
        raise typer.Exit(1)


top = typer.Typer()  # `axme observe`, a command of the root
app = typer.Typer(help="Send, inspect, follow and manage intents.", no_args_is_help=True,
                      rich_markup_mode=None)

@app.command("send")
def send(
    to: Annotated[str, typer.Option("--to", help="Target agent: agent://org/ws/name or a bare name.",
                                    show_default=False, callback=_address,
                                    autocompletion=completers.agent_addresses)],
    intent_type: Annotated[str, typer.Option("--type", "--intent-type", help="Intent type.")] = "intent.ask.v1",
    data_json: Annotated[str | None, typer.Option("--data-json", help="Payload as a JSON object (or @file).",
                                                  show_default=False)] = None,
    data: Annotated[list[str] | None, typer.Option("--data", help="Payload field key=value (repeatable).",
                                                   show_default=False)] = None,
    field: FieldOpt = None, typed_field: TypedFieldOpt = None,
    idempotency_key: Annotated[str | None, typer.Option("--idempotency-key", show_default=False,
                                                        help="Same key + same body: the same intent.")] = None,
    deadline: Annotated[str | None, typer.Option("--deadline-at", help="RFC 3339 deadline.",
                                                 show_default=False)] = None,
    max_attempts: Annotated[int | None, typer.Option("--max-delivery-attempts", min=1,
                                                     show_default=False)] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for a terminal status; exit 1 unless COMPLETED.")]
    = False,
    timeout: TimeoutOpt = None,
    strict: Annotated[bool, typer.Option("--strict", help="Refuse (exit 1, nothing sent) when nothing in the "
                                         "workspace serves --to; without it that is a warning.")] = False,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Send an intent to an agent (a warning first when nothing in the workspace serves --to)."""
    import uuid

    from axme_cli.cli import served
    from axme_cli.cli.common import client, output
    from axme_cli.cli.inputs import merged_data
    from axme_cli.errors import CliError, UsageError
    from axme_cli.render.console import err

    if timeout is not None and not wait:
        raise UsageError("--timeout applies to --wait only", fix="add --wait, or drop --timeout")
    # With an idempotency key the correlation id derives from it, so sending again is the same request.
    correlation = (uuid.uuid5(uuid.NAMESPACE_URL, f"axme-idem:{idempotency_key}") if idempotency_key
                   else uuid.uuid4())
    body: dict[str, Any] = {"intent_type": intent_type, "to_agent": to, "correlation_id": str(correlation),
                            "payload": merged_data(data_json, data, field, typed_field)}
    if deadline:
        body["deadline_at"] = _deadline(deadline)
    if max_attempts:
        body["max_delivery_attempts"] = max_attempts
    with client(base_url, api_key, context) as c:
        nobody = served.unserved(c, to)
        if nobody is not None:
            problem, fix = served.warning(nobody)
            if strict:
                raise CliError(problem, fix=fix, code="agent_not_served")
            err(f"axme: warning: {problem}\n  fix: {fix}")
        created = c.create_intent(body, idempotency_key=idempotency_key)
        intent_id = created["intent_id"]
        if not wait:
            output().result(created, [f"Sent intent {intent_id} ({created.get('status')}).",
                                      f"Follow it: axme observe {intent_id}"])
            return
        # The id before the wait, so stopping (Ctrl+C, --timeout) never loses it; on stderr with --json.
        shown = output()
        shown.say(f"Sent intent {intent_id}; waiting for it to end (Ctrl+C stops waiting, not the intent).")
        final = None
        for event in c.follow_intent(intent_id, timeout=timeout):
            final = event
        got = c.get_intent(intent_id)
    status = got["intent"]["status"]
    shown.result(got, f"Intent {intent_id} ended {status}" + ("" if final else " (no terminal event seen)"))
    _exit_for(status)

@app.command("list")
def list_(
    status: Annotated[str | None, typer.Option("--status", help="Only these statuses (comma separated).",
                                               show_default=False)] = None,
    intent_type: Annotated[str | None, typer.Option("--type", help="Only intents of this type.",
                                                    show_default=False)] = None,
    agent: Annotated[str | None, typer.Option("--agent", help="Only intents to or from this agent.",
                                              show_default=False, callback=_address,
                                    autocompletion=completers.agent_addresses)] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only intents created since: an age (90s, 15m, 2h, "
                                              "7d) or an RFC 3339 time.", show_default=False)] = None,
    until: Annotated[str | None, typer.Option("--until", help="Only intents created before: an age or an RFC 3339 "
                                              "time.", show_default=False)] = None,
    search: Annotated[str | None, typer.Option("--search", help="Only intents whose id starts with this.",
                                               show_default=False)] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="Intents a page.")] = 50,
    cursor: Annotated[str | None, typer.Option("--cursor", show_default=False,
                                               help="The next page: next_cursor of the last --json answer.")]
    = None,
    every: Annotated[bool, typer.Option("--all", help="Every page, not just the first (--limit a request).")]
    = False,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """List intents, newest first, filtered as the dashboard's list is."""
    from axme_cli.cli.common import client, output
    from axme_cli.render.events import age
    from axme_cli.render.tables import table

    filters = {"status": _statuses(status), "intent_type": intent_type, "agent": agent,
               "created_after": _since(since), "created_before": _since(until, "--until"),
               "id_prefix": _search(search)}
    rows: list[dict[str, Any]] = []
    next_cursor = _cursor(cursor)
    with client(base_url, api_key, context) as c:
        while True:
            page, next_cursor = c.list_intents(limit=limit, before=next_cursor, **filters)
            rows.extend(page)
            if not every or next_cursor is None:
                break
    output().items(rows, lambda: table(
        ["ID", "STATUS", "TYPE", "TO", "AGE"],
        [[r["intent_id"], r["status"], r["intent_type"], r["to_agent"], age(r.get("updated_at"))] for r in rows],
        empty="No intents."), next_cursor=next_cursor)

@app.command("get")
def get(intent_id: IdArg, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
        context: ContextOpt = None) -> None:
    """Show one intent (key: value lines; --json for the API body)."""
    import json

    from axme_cli.cli.common import client, output
    from axme_cli.render.console import key_values

    with client(base_url, api_key, context) as c:
        body = c.get_intent(intent_id)
    intent = body["intent"]
    rows = []
    for key in ("intent_id", "intent_type", "status", "lifecycle_status", "waiting_reason", "from_agent",
                "to_agent", "delivery_attempt", "max_delivery_attempts", "created_at", "updated_at",
                "deadline_at", "correlation_id", "seq"):
        rows.append((key, "" if intent.get(key) is None else intent.get(key)))
    pending = intent.get("pending_with")
    rows.append(("pending_with", f"{pending.get('type')}:{pending.get('name')}" if pending else ""))
    for key in ("payload", "result", "error"):
        if intent.get(key) is not None:
            rows.append((key, json.dumps(intent[key], ensure_ascii=False)))
    output().result(body, lambda: key_values([(f"{k}:", v) for k, v in rows]))

@app.command("describe")
def describe(intent_id: IdArg, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
             context: ContextOpt = None) -> None:
    """Show an intent as a waterfall: each step attempt, retry, compensation, wait and delivery with its time,
    holder and outcome, and who holds the intent now."""
    from axme_cli.cli.common import client, output
    from axme_cli.render import describe as shown

    with client(base_url, api_key, context) as c:
        body = c.get_intent(intent_id)
        events = c.intent_events(intent_id)
    output().result(shown.view(body, events), lambda: shown.show(body, events))

def _follow(intent_id: str, *, since: int, follow: bool, rich_header: bool, timeout: float | None,
            base_url: str | None, api_key: str | None, context: str | None) -> None:
    from axme_cli.cli.common import client, output
    from axme_cli.render.console import err
    from axme_cli.render.events import EventLines, final_line, header

    shown = output()
    with client(base_url, api_key, context) as c:
        intent = c.get_intent(intent_id)["intent"]
        lines = EventLines()
        shown.text(header(intent) if rich_header else lambda: err(f"Streaming events of {intent_id} (Ctrl+C to stop)"))
        last: dict[str, Any] | None = None
        for event in c.follow_intent(intent_id, since=since, follow=follow, timeout=timeout):
            last = event
            shown.item(event, functools.partial(lines.show, event))
        status = last["status"] if last else c.get_intent(intent_id)["intent"]["status"]
    if status in TERMINAL and rich_header:
        shown.text(final_line(status, intent.get("created_at"), last.get("at") if last else intent.get("updated_at")))
    _exit_for(status)

@app.command("watch")
def watch(
    intent_id: IdArg,
    follow: Annotated[bool, typer.Option("--follow", help="Keep streaming after a terminal status.")] = False,
    since: Annotated[int, typer.Option("--since", min=0, help="Only events after this seq.")] = 0,
    timeout: TimeoutOpt = None,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Stream an intent's events live; stops at a terminal status unless --follow."""
    _follow(intent_id, since=since, follow=follow, rich_header=False, timeout=timeout, base_url=base_url,
            api_key=api_key, context=context)

@top.command("observe")
def observe(intent_id: IdArg, timeout: TimeoutOpt = None, base_url: BaseUrlOpt = None,
            api_key: ApiKeyOpt = None, context: ContextOpt = None) -> None:
    """Watch one intent live until it ends: exit 0 if COMPLETED, 1 if FAILED/CANCELED/TIMED_OUT."""
    _follow(intent_id, since=0, follow=False, rich_header=True, timeout=timeout, base_url=base_url,
            api_key=api_key, context=context)

@app.command("log")
def log(intent_id: IdArg, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
        context: ContextOpt = None) -> None:
    """Print an intent's whole event log."""
    from axme_cli.cli.common import client, output
    from axme_cli.render.console import out
    from axme_cli.render.events import EventLines, header

    with client(base_url, api_key, context) as c:
        intent = c.get_intent(intent_id)["intent"]
        events = c.intent_events(intent_id)

    def text() -> None:
        out(header(intent))
        lines = EventLines()
        for event in events:
            lines.show(event)
        out(f"Final status: {intent['status']}   Intent ID: {intent_id}   Events: {len(events)}")

    output().items(events, text)

@app.command("cancel")
def cancel(
    intent_id: IdArg,
    reason: Annotated[str, typer.Option("--reason")] = "canceled via axme cli",
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Cancel an intent (resolve it CANCELED)."""
    from axme_cli.cli.common import client, output

    with client(base_url, api_key, context) as c:
        body = c.resolve_intent(intent_id, {"status": "CANCELED", "reason": reason})
    output().result(body, f"Canceled {intent_id}.")

@app.command("retry")
def retry(intent_id: IdArg, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
          context: ContextOpt = None) -> None:
    """Send a FAILED, CANCELED or TIMED_OUT intent again as a new intent (same type, target, payload)."""
    import uuid

    from axme_cli.cli.common import client, output
    from axme_cli.errors import CliError

    with client(base_url, api_key, context) as c:
        old = c.get_intent(intent_id)["intent"]
        if old["status"] not in ("FAILED", "CANCELED", "TIMED_OUT"):
            raise CliError(f"intent {intent_id} is {old['status']}; only FAILED, CANCELED or TIMED_OUT "
                           "intents can be retried", fix=f"follow it with `axme observe {intent_id}`")
        body = {"intent_type": old["intent_type"], "to_agent": old["to_agent"], "payload": old["payload"],
                "correlation_id": str(uuid.uuid4())}
        for key in ("reply_to", "max_delivery_attempts", "human_task"):
            if old.get(key) is not None:
                body[key] = old[key]
        created = c.create_intent(body)
    result = {"ok": True, "mode": "retry", "retried_intent_id": intent_id, "new_intent": created}
    output().result(result, f"Sent again as {created['intent_id']} (the old intent {intent_id} stays "
                            f"{old['status']}).")

@app.command("resume")
def resume(
    intent_id: IdArg,
    action: Annotated[str, typer.Option("--action", help="complete | fail | in_progress")] = "complete",
    data_json: Annotated[str | None, typer.Option("--data-json", help="Result fields as a JSON object.",
                                                  show_default=False)] = None,
    data: Annotated[list[str] | None, typer.Option("--data", help="Result field key=value (repeatable).",
                                                   show_default=False)] = None,
    field: FieldOpt = None, typed_field: TypedFieldOpt = None,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Resume an intent for real (POST /v1/intents/{id}/resume) as its agent or the workspace admin."""
    from axme_cli.cli.common import client, output
    from axme_cli.cli.inputs import merged_data
    from axme_cli.errors import UsageError

    if action not in ("complete", "fail", "in_progress"):
        raise UsageError(f"--action {action!r} is not one of complete, fail, in_progress")
    body = {**merged_data(data_json, data, field, typed_field), "action": action}
    with client(base_url, api_key, context) as c:
        result = c.resume_intent(intent_id, body)
    state = "applied" if result.get("applied") else "already applied"
    output().result(result, f"Resumed {intent_id} ({action}, {state}); now {result['intent']['status']}.")

@app.command("cleanup")
def cleanup(
    older_than: Annotated[float, typer.Option("--older-than", help="Hours since creation.", min=0)] = 24.0,
    dry_run: Annotated[bool, typer.Option("--dry-run/--no-dry-run", help="Only list what would go.")] = True,
    status: Annotated[str | None, typer.Option("--status", help="Statuses to cancel (comma separated).",
                                               show_default=False)] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10000)] = 500,
    reason: Annotated[str, typer.Option("--reason")] = "zombie cleanup via CLI",
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Cancel stuck intents in bulk (a dry run unless --no-dry-run)."""
    from axme_cli.cli.common import client, output

    body: dict[str, Any] = {"older_than_hours": older_than, "dry_run": dry_run, "reason": reason,
                            "limit": limit}
    if status:
        body["status_filter"] = (_statuses(status) or "").split(",")
    with client(base_url, api_key, context, timeout=300.0) as c:
        result = c.bulk_cancel(body)
    if dry_run:
        lines = [f"Dry run: {result['would_cancel']} intents would be canceled.",
                 *(f"  {intent_id}" for intent_id in result.get("intent_ids", [])),
                 *(["Run with --no-dry-run to cancel them."] if result["would_cancel"] else [])]
    else:
        lines = [f"Canceled {result['canceled']} intents (reason: {reason})."]
    output().result(result, lines)

@app.command("trace")
def trace(intent_id: IdArg, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
          context: ContextOpt = None) -> None:
    """Why an intent waits: its status, holder, last event and the next thing to do."""
    from axme_cli.cli.common import client, output
    from axme_cli.render.console import key_values

    with client(base_url, api_key, context) as c:
        intent = c.get_intent(intent_id)["intent"]
        events = c.intent_events(intent_id)
    last = events[-1] if events else {}
    result = {
        "intent_id": intent_id,
        "status": intent["status"],
        "waiting_reason": intent.get("waiting_reason"),
        "holder": (intent.get("pending_with") or {}).get("name"),
        "delivery_attempt": intent.get("delivery_attempt"),
        "max_delivery_attempts": intent.get("max_delivery_attempts"),
        "last_event": last.get("event_type"),
        "last_event_at": last.get("at"),
        "events_count": len(events),
        "next_action": next_action(intent),
    }
    output().result(result, lambda: key_values([(f"{k}:", "" if v is None else v) for k, v in result.items()]))


def next_action(intent: dict[str, Any]) -> str:
    status, reason, intent_id = intent["status"], intent.get("waiting_reason") or "", intent["intent_id"]
    holder = (intent.get("pending_with") or {}).get("name") or intent.get("to_agent")
    if status == "COMPLETED":
        return "no action required"
    if status in ("FAILED", "CANCELED", "TIMED_OUT"):
        return f"inspect `axme intents log {intent_id}`, then `axme intents retry {intent_id}` to send it again"
    if "HUMAN" in reason:
        return f"a person must answer: `axme intents resume {intent_id}` with the decision"
    if "TIME" in reason:
        return "time-gated: it continues by itself when its timer fires"
    if status in ("SUBMITTED", "DELIVERED", "ACKNOWLEDGED"):
        return (f"waiting for agent {holder} to pick it up (attempt {intent.get('delivery_attempt')} of "
                f"{intent.get('max_delivery_attempts')}): is that agent running and listening?")
    return f"agent {holder} is working on it; follow with `axme observe {intent_id}`"


def _positive(value: float | None, flag: str) -> float | None:
    import math

    from axme_cli.errors import UsageError

    if value is not None and not (math.isfinite(value) and value >= 0.1):
        raise UsageError(f"{flag} {value:g}: not a number of seconds of 0.1 or more", fix=f"e.g. {flag} 30")
    return value


def _changed(result: dict[str, Any], what: str, intent_id: str) -> list[str]:
    """The text of a controls or policy answer: what changed, and the generation to expect next time."""
    generation = result["policy_generation"]
    if not result.get("applied"):
        return [f"Nothing to change: the {what} of {intent_id} already are so (policy_generation {generation})."]
    details = (result.get("event") or {}).get("details") or {}
    lines = [f"✓ {what.capitalize()} of {intent_id} changed (policy_generation {generation})."]
    for field, change in (details.get("changed") or {}).items():
        lines.append(f"  {field}: {change.get('from')} -> {change.get('to')}")
    for key, allow in (details.get("grants") or {}).items():
        lines.append(f"  {key}: {', '.join(allow) if allow else 'taken back'}")
    return lines


@app.command("controls")
def controls(
    intent_id: IdArg,
    timeout: Annotated[int | None, typer.Option(
        "--timeout", metavar="SECONDS", min=1, show_default=False,
        help="Time the intent out this many seconds from now (its deadline moves).")] = None,
    deadline: Annotated[str | None, typer.Option("--deadline-at", show_default=False,
                                                 help="Its new deadline (RFC 3339 with a zone).")] = None,
    no_deadline: Annotated[bool, typer.Option("--no-deadline", help="Take its deadline away.")] = False,
    max_retries: Annotated[int | None, typer.Option(
        "--max-retries", min=0, show_default=False,
        help="Deliveries after the first before it fails (delivery_failed).")] = None,
    max_attempts: Annotated[int | None, typer.Option("--max-delivery-attempts", min=1, show_default=False,
                                                     help="The same, counting the first.")] = None,
    backoff: Annotated[float | None, typer.Option(
        "--retry-backoff", metavar="SECONDS", show_default=False,
        help="Wait this long for its agent before delivering again (the next redelivery moves).")] = None,
    expected: Annotated[int | None, typer.Option(
        "--expected-generation", min=0, show_default=False,
        help="Change it only if its policy_generation is still this (else exit 1, nothing changed).")] = None,
    reason: Annotated[str | None, typer.Option("--reason", show_default=False, help="Recorded with the change.")]
    = None,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Move a running intent's timers: its deadline, its delivery attempts, its redelivery wait (as its sender, a
    delegate or the workspace admin)."""
    from axme_cli.cli.common import client, output
    from axme_cli.errors import UsageError

    given = [flag for flag, value in (("--timeout", timeout), ("--deadline-at", deadline),
                                      ("--no-deadline", no_deadline or None)) if value is not None]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} each set the deadline", fix="give one of them")
    if max_retries is not None and max_attempts is not None:
        raise UsageError("--max-retries and --max-delivery-attempts set the same thing", fix="give one of them")
    patch: dict[str, Any] = {}
    if timeout is not None:
        patch["timeout_seconds"] = timeout
    if deadline is not None:
        patch["deadline_at"] = _deadline(deadline)
    if no_deadline:
        patch["deadline_at"] = None
    if max_retries is not None:
        patch["max_retries"] = max_retries
    if max_attempts is not None:
        patch["max_delivery_attempts"] = max_attempts
    if backoff is not None:
        patch["retry_backoff_seconds"] = _positive(backoff, "--retry-backoff")
    if not patch:
        raise UsageError("nothing to change", fix="give --timeout, --deadline-at, --no-deadline, --max-retries, "
                         "--max-delivery-attempts or --retry-backoff")
    body: dict[str, Any] = {"controls_patch": patch}
    if expected is not None:
        body["expected_policy_generation"] = expected
    if reason:
        body["reason"] = reason
    with client(base_url, api_key, context) as c:
        result = c.update_intent_controls(intent_id, body)
    output().result(result, _changed(result, "controls", intent_id))


_GRANT_ACTIONS = ("resume", "update_controls", "update_policy")


def _grants(grant: list[str] | None, revoke: list[str] | None) -> dict[str, Any]:
    """``--grant WHO=ACTION[,ACTION]`` and ``--revoke WHO`` as a grants_patch."""
    from axme_cli.cli.inputs import shown
    from axme_cli.errors import UsageError

    patch: dict[str, Any] = {}
    for item in grant or []:
        who, sep, actions = item.rpartition("=")
        allow = [a.strip() for a in actions.split(",") if a.strip()]
        unknown = [a for a in allow if a not in _GRANT_ACTIONS]
        if not sep or not who.strip() or not allow or unknown:
            raise UsageError(f"--grant {shown(item)}: expected WHO=ACTION[,ACTION] with actions of "
                             f"{', '.join(_GRANT_ACTIONS)}", fix="e.g. --grant ops=resume,update_controls")
        patch[f"delegate:{who.strip()}"] = {"allow": allow}
    for who in revoke or []:
        if not who.strip():
            raise UsageError("--revoke: name the agent (or email) whose grant to take back", fix="e.g. --revoke ops")
        patch[f"delegate:{who.strip()}"] = None
    return patch


@app.command("policy")
def policy(
    intent_id: IdArg,
    grant: Annotated[list[str] | None, typer.Option(
        "--grant", metavar="WHO=ACTIONS", show_default=False,
        help="Let an agent (address or name) or a person (email) resume the intent or change its controls or "
             "policy, e.g. --grant ops=resume,update_controls (repeatable).")] = None,
    revoke: Annotated[list[str] | None, typer.Option("--revoke", metavar="WHO", show_default=False,
                                                     help="Take a grant back (repeatable).")] = None,
    expected: Annotated[int | None, typer.Option(
        "--expected-generation", min=0, show_default=False,
        help="Change it only if its policy_generation is still this (else exit 1, nothing changed).")] = None,
    reason: Annotated[str | None, typer.Option("--reason", show_default=False, help="Recorded with the change.")]
    = None,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Grant or take back who else may act on an intent (as its sender, a delegate or the workspace admin)."""
    from axme_cli.cli.common import client, output
    from axme_cli.errors import UsageError

    patch = _grants(grant, revoke)
    if not patch:
        raise UsageError("nothing to change", fix="give --grant WHO=ACTIONS or --revoke WHO")
    body: dict[str, Any] = {"grants_patch": patch}
    if expected is not None:
        body["expected_policy_generation"] = expected
    if reason:
        body["reason"] = reason
    with client(base_url, api_key, context) as c:
        result = c.update_intent_policy(intent_id, body)
    output().result(result, _changed(result, "policy", intent_id))

"""`axme webhooks list|create|delete|publish|deliveries|replay`: signed webhook subscriptions and their deliveries."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from axme_cli.cli.common import ApiKeyOpt, BaseUrlOpt, ContextOpt, FieldOpt, TypedFieldOpt

OwnerOpt = Annotated[str | None, typer.Option("--owner-agent", help="Act for this owner (agent address or name).",
                                              show_default=False)]


def _counters(body: dict[str, Any]) -> str:
    return (f"queued {body['queued_deliveries']}; delivered {body['delivered']}, pending {body['pending']}, "
            f"dead-lettered {body['dead_lettered']}")


app = typer.Typer(help="Webhook subscriptions: signed POSTs of events to your URL, retried, then dead-lettered.",
                no_args_is_help=True, rich_markup_mode=None)

@app.command("list")
def list_(owner_agent: OwnerOpt = None, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
          context: ContextOpt = None) -> None:
    """Subscriptions (GET /v1/webhooks/subscriptions), revoked ones too."""
    from axme_cli.cli.common import client, output
    from axme_cli.render.tables import table

    with client(base_url, api_key, context) as c:
        found = c.list_subscriptions(owner_agent=owner_agent)
    output().items(found, lambda: table(
        ["SUBSCRIPTION ID", "OWNER", "CALLBACK URL", "EVENT TYPES", "STATE"],
        [[x["subscription_id"], x["owner_agent"], x["callback_url"], ",".join(x["event_types"]),
          "revoked" if x["revoked_at"] else "active" if x["active"] else "inactive"] for x in found],
        empty="No webhook subscriptions.", status_column=None))

@app.command("create")
def create(
    url: Annotated[str, typer.Option("--url", help="Where to POST (http:// or https://).", show_default=False)],
    event: Annotated[list[str], typer.Option("--event", "-e", help="Event type to send (repeatable), e.g. "
                                             "inbox.thread_created.", show_default=False)],
    secret: Annotated[str | None, typer.Option(help="Signing secret (16-128 characters) [default: generated, "
                                               "shown once].", show_default=False)] = None,
    description: Annotated[str | None, typer.Option(help="A note for people.", show_default=False)] = None,
    inactive: Annotated[bool, typer.Option("--inactive", help="Create it paused.")] = False,
    owner_agent: OwnerOpt = None, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
    context: ContextOpt = None,
) -> None:
    """Subscribe a URL to event types (the same URL again updates that subscription)."""
    from axme_cli.cli.common import client, output
    from axme_cli.render.console import key_values, out

    body: dict[str, Any] = {"callback_url": url, "event_types": event}
    if secret:
        body["secret"] = secret
    if description:
        body["description"] = description
    if inactive:
        body["active"] = False
    with client(base_url, api_key, context) as c:
        answer = c.create_subscription(body, owner_agent=owner_agent)

    def text() -> None:
        sub = answer["subscription"]
        out(f"✓ Subscription {sub['subscription_id']} sends {', '.join(sub['event_types'])} to "
            f"{sub['callback_url']}.")
        rows = [("Owner:", sub["owner_agent"]), ("Secret hint:", sub["secret_hint"])]
        if answer.get("secret"):
            rows.append(("Secret:", answer["secret"] + "  (shown once: keep it to check X-Axme-Signature)"))
        key_values(rows)

    output().result(answer, text)

@app.command("delete")
def delete(subscription_id: Annotated[str, typer.Argument(help="The subscription id.", show_default=False)],
           base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None) -> None:
    """Revoke a subscription; its pending deliveries are dead-lettered."""
    from axme_cli.cli.common import client, output

    with client(base_url, api_key, context) as c:
        answer = c.delete_subscription(subscription_id)
    output().result(answer, f"✓ Subscription {subscription_id} revoked at {answer['revoked_at']}.")

@app.command("publish")
def publish(
    event_type: Annotated[str, typer.Option("--type", "-t", help="The event type.", show_default=False)],
    source: Annotated[str, typer.Option(help="Who raised it (2-100 characters).")] = "axme-cli",
    data: Annotated[list[str] | None, typer.Option("--data", help="Payload field key=value (repeatable).",
                                                   show_default=False)] = None,
    data_json: Annotated[str | None, typer.Option("--data-json", help="Payload as a JSON object (or @file).",
                                                  show_default=False)] = None,
    field: FieldOpt = None, typed_field: TypedFieldOpt = None,
    owner_agent: OwnerOpt = None, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
    context: ContextOpt = None,
) -> None:
    """Publish an event to the owner's matching subscriptions (POST /v1/webhooks/events)."""
    from axme_cli.cli.common import client, output
    from axme_cli.cli.inputs import merged_data

    body = {"event_type": event_type, "source": source, "payload": merged_data(data_json, data, field, typed_field)}
    with client(base_url, api_key, context) as c:
        answer = c.publish_event(body, owner_agent=owner_agent)
    output().result(answer, f"✓ Event {answer['event_id']} ({answer['event_type']}): {_counters(answer)}.")

@app.command("deliveries")
def deliveries(
    subscription: Annotated[str | None, typer.Option(help="Only this subscription's.", show_default=False)] = None,
    event: Annotated[str | None, typer.Option(help="Only this event's.", show_default=False)] = None,
    intent: Annotated[str | None, typer.Option(help="Only this intent's (http-binding agents).",
                                               show_default=False)] = None,
    status: Annotated[str | None, typer.Option(help="pending, delivered, failed, dead_lettered or skipped.",
                                               show_default=False)] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.", min=1, max=1000)] = 50,
    owner_agent: OwnerOpt = None, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
    context: ContextOpt = None,
) -> None:
    """Deliveries with their tries, last answer and state (webhooks and http-binding intents)."""
    from axme_cli.cli.common import client, output
    from axme_cli.render.tables import table

    with client(base_url, api_key, context) as c:
        found = c.list_deliveries(limit=limit, subscription_id=subscription, event_id=event, intent_id=intent,
                                  status=status, owner_agent=owner_agent)
    output().items(found, lambda: table(
        ["DELIVERY ID", "WHAT", "STATUS", "TRIES", "LAST ANSWER", "CALLBACK URL"],
        [[x["delivery_id"], x.get("event_type") or f"intent {x.get('intent_id')}", x["status"],
          f"{x['attempts']}/{x['max_attempts']}",
          x.get("last_error") or x.get("last_status_code") or "", x["callback_url"]] for x in found],
        empty="No deliveries.", status_column=None))

@app.command("replay")
def replay(event_id: Annotated[str, typer.Argument(help="The event id.", show_default=False)],
           base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None) -> None:
    """Send an event again to the matching subscriptions (new deliveries; e.g. after a dead letter)."""
    from axme_cli.cli.common import client, output

    with client(base_url, api_key, context) as c:
        answer = c.replay_event(event_id)
    output().result(answer, f"✓ Event {event_id} replayed: {_counters(answer)}.")

"""`axme inbox list|get|reply|approve|reject`: an owner's inbox (completion deliveries to `reply_to`)."""

from __future__ import annotations

from typing import Annotated

import typer

from axme_cli.cli.common import ApiKeyOpt, BaseUrlOpt, ContextOpt

IdArg = Annotated[str, typer.Argument(help="The thread id (the intent id of the delivered intent).",
                                      show_default=False)]
OwnerOpt = Annotated[str | None, typer.Option(
    "--owner-agent", help="Whose inbox (agent address or bare name; default: the context's owner_agent, "
                          "AXME_OWNER_AGENT, else the key's own address).", show_default=False)]
CommentOpt = Annotated[str | None, typer.Option("--comment", "-c", help="A comment on the decision.",
                                                show_default=False)]


def _owner(owner_agent: str | None, base_url: str | None, api_key: str | None, context: str | None) -> str | None:
    """Whose inbox: the flag, else the context's owner_agent (sent as x-owner-agent; none: the key's own)."""
    from axme_cli.cli.common import target

    return owner_agent or target(base_url, api_key, context).owner_agent


app = typer.Typer(help="The inbox: intents delivered to a reply_to owner, as threads.", no_args_is_help=True,
                rich_markup_mode=None)

@app.command("list")
def list_(
    status: Annotated[str | None, typer.Option("--status", help="Only threads in this status: pending, "
                                               "active or done (comma-separated).", show_default=False)] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="At most this many threads.")] = 100,
    owner_agent: OwnerOpt = None, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
    context: ContextOpt = None,
) -> None:
    """Threads in the inbox, most recently changed first (GET /v1/inbox)."""
    from axme_cli.cli.common import client, output
    from axme_cli.render import inbox as render

    owner = _owner(owner_agent, base_url, api_key, context)
    with client(base_url, api_key, context) as c:
        found = c.list_threads(owner=owner, limit=limit, status=status)
    output().items(found, lambda: render.threads(found, owner))

@app.command("get")
def get(thread_id: IdArg, owner_agent: OwnerOpt = None, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
        context: ContextOpt = None) -> None:
    """Show a thread: the outcome, messages, timeline, and how to answer it."""
    from axme_cli.cli.common import client, output
    from axme_cli.render import inbox as render

    with client(base_url, api_key, context) as c:
        thread = c.get_thread(thread_id, owner=_owner(owner_agent, base_url, api_key, context))
    output().result(thread, lambda: render.thread(thread))

@app.command("reply")
def reply(
    thread_id: IdArg,
    message: Annotated[str, typer.Option("--message", "-m", help="The reply (1-5000 characters).",
                                         show_default=False)],
    owner_agent: OwnerOpt = None, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
    context: ContextOpt = None,
) -> None:
    """Reply in a thread."""
    from axme_cli.cli.common import client, output

    with client(base_url, api_key, context) as c:
        body = c.reply_thread(thread_id, message, owner=_owner(owner_agent, base_url, api_key, context))
    output().result(body, f"✓ Replied in thread {thread_id} (message {body.get('message_id', '?')}).")

def decision(name: str, doc: str) -> None:
    def command(thread_id: IdArg, comment: CommentOpt = None, owner_agent: OwnerOpt = None,
                base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None) -> None:
        from axme_cli.cli.common import client, output

        with client(base_url, api_key, context) as c:
            body = c.decide_thread(thread_id, name, comment, owner=_owner(owner_agent, base_url, api_key, context))
        output().result(body, f"✓ Thread {thread_id} {name}d; it is now {body['thread']['status']}.")

    command.__doc__ = doc
    app.command(name)(command)

decision("approve", "Approve a thread (it is done afterwards).")
decision("reject", "Reject a thread (it is done afterwards).")

"""`axme inbox list|get|reply|approve|reject`: an owner's inbox (completion deliveries to `reply_to`)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from axme_cli.cli.common import ApiKeyOpt, BaseUrlOpt, ContextOpt

IdArg = Annotated[str, typer.Argument(help="The thread id (the intent id of the delivered intent).",
                                      show_default=False)]
OwnerOpt = Annotated[str | None, typer.Option(
    "--owner-agent", help="Whose inbox (agent address or bare name; default: the context's owner_agent, "
                          "AXME_OWNER_AGENT, else the key's own address).", show_default=False)]
CommentOpt = Annotated[str | None, typer.Option("--comment", "-c", help="A comment on the decision.",
                                                show_default=False)]


def _request(method: str, path: str, owner: str | None, base_url: str | None, api_key: str | None,
             context: str | None, body: dict[str, Any] | None = None,
             params: dict[str, Any] | None = None) -> tuple[Any, str | None]:
    """One request for ``owner`` (sent as x-owner-agent); returns the body and the owner used."""
    from axme_cli.cli.common import client, target

    owner = owner or target(base_url, api_key, context).owner_agent
    headers = {"x-owner-agent": owner} if owner else None
    with client(base_url, api_key, context) as c:
        return c.request(method, path, json=body, params=params, headers=headers), owner


def _show(body: dict[str, Any], done: str) -> None:
    from axme_cli.cli.common import emit, json_mode
    from axme_cli.render.console import out

    if json_mode():
        emit(body)
    else:
        out(done)


def register(app: typer.Typer) -> None:
    t = typer.Typer(help="The inbox: intents delivered to a reply_to owner, as threads.", no_args_is_help=True,
                    rich_markup_mode=None)
    app.add_typer(t, name="inbox")

    @t.command("list")
    def list_(
        status: Annotated[str | None, typer.Option("--status", help="Only threads in this status: pending, "
                                                   "active or done (comma-separated).", show_default=False)] = None,
        limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="At most this many threads.")] = 100,
        owner_agent: OwnerOpt = None, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
        context: ContextOpt = None,
    ) -> None:
        """Threads in the inbox, most recently changed first (GET /v1/inbox)."""
        from axme_cli.cli.common import emit, json_mode
        from axme_cli.render import inbox as render

        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        body, owner = _request("GET", "/v1/inbox", owner_agent, base_url, api_key, context, params=params)
        if json_mode():
            emit(body["threads"])
            return
        render.threads(body["threads"], owner)

    @t.command("get")
    def get(thread_id: IdArg, owner_agent: OwnerOpt = None, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
            context: ContextOpt = None) -> None:
        """Show a thread: the outcome, messages, timeline, and how to answer it."""
        from axme_cli.cli.common import emit, json_mode
        from axme_cli.render import inbox as render

        body, _ = _request("GET", f"/v1/inbox/{thread_id}", owner_agent, base_url, api_key, context)
        if json_mode():
            emit(body["thread"])
            return
        render.thread(body["thread"])

    @t.command("reply")
    def reply(
        thread_id: IdArg,
        message: Annotated[str, typer.Option("--message", "-m", help="The reply (1-5000 characters).",
                                             show_default=False)],
        owner_agent: OwnerOpt = None, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
        context: ContextOpt = None,
    ) -> None:
        """Reply in a thread."""
        body, _ = _request("POST", f"/v1/inbox/{thread_id}/reply", owner_agent, base_url, api_key, context,
                           body={"message": message})
        _show(body, f"✓ Replied in thread {thread_id} (message {body.get('message_id', '?')}).")

    def decision(name: str, doc: str) -> None:
        def command(thread_id: IdArg, comment: CommentOpt = None, owner_agent: OwnerOpt = None,
                    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None) -> None:
            payload = {"comment": comment} if comment else {}
            body, _ = _request("POST", f"/v1/inbox/{thread_id}/{name}", owner_agent, base_url, api_key, context,
                               body=payload)
            _show(body, f"✓ Thread {thread_id} {name}d; it is now {body['thread']['status']}.")

        command.__doc__ = doc
        t.command(name)(command)

    decision("approve", "Approve a thread (it is done afterwards).")
    decision("reject", "Reject a thread (it is done afterwards).")

"""`axme mcp`: AXME's MCP tools for an MCP client (Claude Desktop, Claude Code, an IDE ...) over stdio.

One source of tools: the runtime's own (POST /mcp, runtime/api/mcp_tools.py). This process, built on the official
`mcp` package, speaks MCP on stdin/stdout and forwards ``tools/list`` and ``tools/call`` to the runtime of the
active context with its credentials, through the CLI's client; a tool's JSON-RPC error comes back as the same
error. stdout carries the protocol only: every word for people goes to stderr.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from axme_cli.cli.common import ApiKeyOpt, BaseUrlOpt, ContextOpt

if TYPE_CHECKING:
    from axme_cli.client.http import Client

app = typer.Typer()  # commands of the root (see app.py)

# A tool may wait 60 s for an intent (mcp_tools.MAX_WAIT_SECONDS); the request around it takes a little longer.
TIMEOUT_SECONDS = 90.0


@app.command("mcp")
def mcp(
    owner_agent: Annotated[str | None, typer.Option(
        "--owner-agent", help="The agent the tools act for (default: the context's owner_agent, AXME_OWNER_AGENT, "
                              "else the key's own address).", show_default=False)] = None,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Serve AXME's MCP tools on stdin/stdout (register this command in an MCP client).

    The tools are the runtime's (`POST /mcp`): send intents and wait for them, read intents and their events,
    answer human tasks, validate and apply scenarios, and message people and agents. They run on the runtime of
    the active context (or --context, --base-url), with its credentials.
    """
    from axme_cli.cli.common import client, target

    owner = owner_agent or target(base_url, api_key, context).owner_agent
    c = client(base_url, api_key, context, timeout=TIMEOUT_SECONDS)
    try:
        serve(c, owner)
    finally:
        c.close()


def serve(c: Client, owner: str | None) -> None:
    """Serve MCP on this process's stdin/stdout until the client closes them."""
    import anyio
    from mcp.server.stdio import stdio_server

    server = build(c, owner)

    async def main() -> None:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    anyio.run(main)


def build(c: Client, owner: str | None) -> Any:
    """The MCP server (the `mcp` package's low-level ``Server``) whose tools are the runtime's, through ``c``."""
    import threading

    import anyio
    import mcp_types as types
    from mcp.server.lowlevel import Server
    from mcp.shared.exceptions import MCPError

    from axme_cli import __version__
    from axme_cli.errors import CliError

    lock = threading.Lock()  # one request at a time: a person's token refresh must not run twice at once

    def ask(call: Any) -> dict[str, Any]:
        with lock:
            try:
                answer: dict[str, Any] = call()
            except CliError as exc:  # the runtime cannot be reached, or is not one
                raise MCPError(-32010, exc.message + (f" ({exc.fix})" if exc.fix else ""), {"code": exc.code}) from None
        error = answer.get("error")
        if isinstance(error, dict):
            raise MCPError(int(error.get("code", -32010)), str(error.get("message") or "error"), error.get("data"))
        result = answer.get("result")
        return result if isinstance(result, dict) else {}

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        result = await anyio.to_thread.run_sync(ask, c.mcp_list_tools)
        return types.ListToolsResult(tools=[types.Tool.model_validate(t) for t in result.get("tools", [])])

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        arguments = dict(params.arguments or {})
        result = await anyio.to_thread.run_sync(ask, lambda: c.mcp_call_tool(params.name, arguments,
                                                                             owner_agent=owner))
        return types.CallToolResult(
            content=[types.TextContent.model_validate(block) for block in result.get("content", [])],
            structured_content=result.get("structuredContent"), is_error=bool(result.get("isError")))

    return Server("axme", version=__version__, on_list_tools=list_tools, on_call_tool=call_tool,
                  instructions="AXME's tools, run on the runtime of the CLI's active context.")

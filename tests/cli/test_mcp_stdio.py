"""`axme mcp`: the runtime's MCP tools over stdio, driven by the official `mcp` package's own client, which starts
the installed CLI as an MCP client would (its own config folder, the target from the environment)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.helpers import axme, env_for, no_traceback
from tests.conftest import ADMIN_KEY, make_agent, unique
from tests.receiver import closed_port_url
from tests.runtime_proc import RuntimeProcess

# The outcome depends on the transport, not on the storage behind the runtime.
pytestmark = pytest.mark.backends("sqlite")


def _server(env: dict[str, str]) -> Any:
    from mcp import StdioServerParameters

    return StdioServerParameters(command=sys.executable, args=["-m", "axme_cli", "mcp"], env=env)


@pytest.mark.slow  # a process that imports the mcp package: about a second of CPU
def test_the_stdio_server_serves_the_runtimes_tools(runtime: RuntimeProcess, admin: httpx.Client,
                                                     tmp_path: Path) -> None:
    from mcp import Client, MCPError

    owner_name = unique("assistant")
    owner, _ = make_agent(admin, owner_name)
    worker = unique("worker")
    make_agent(admin, worker)
    listed = admin.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).json()["result"]["tools"]
    env = env_for(tmp_path, AXME_BASE_URL=runtime.url, AXME_API_KEY=ADMIN_KEY, AXME_OWNER_AGENT=owner_name)

    async def session() -> None:
        async with Client(_server(env)) as client:
            assert client.server_info is not None and client.server_info.name == "axme"
            tools = (await client.list_tools()).tools
            assert [(t.name, t.input_schema) for t in tools] == [(t["name"], t["inputSchema"]) for t in listed]
            sent = await client.call_tool("axme.send_intent", {"to": worker, "intent_type": "order.reserve.v1",
                                                               "payload": {"n": 1}})
            assert not sent.is_error and sent.structured_content is not None
            shown = sent.structured_content
            assert shown["status"] == "accepted" and shown["owner_agent"] == owner  # AXME_OWNER_AGENT
            assert sent.content[0].type == "text" and shown["intent_id"] in sent.content[0].text
            got = await client.call_tool("axme.get_intent", {"intent_id": shown["intent_id"]})
            assert got.structured_content is not None
            assert got.structured_content["data"]["intent"]["from_agent"] == owner
            with pytest.raises(MCPError) as refused:  # the runtime's JSON-RPC error, passed on as it is
                await client.call_tool("axme.get_intent", {"intent_id": "nope"})
            assert refused.value.code == -32602 and refused.value.data["field"] == "intent_id"
            missing = await client.call_tool("axme.confirm_send", {"intent_id": shown["intent_id"], "confirm": True})
            assert missing.is_error and missing.structured_content is not None
            assert missing.structured_content["status"] == "not_implemented"

    asyncio.run(session())


def test_an_unreachable_runtime_is_an_error_per_call_not_a_crash() -> None:
    """The same server in this process (the mcp package's client takes it directly): what a call meets when the
    runtime does not answer."""
    from mcp import Client, MCPError

    from axme_cli.cli.mcp import build
    from axme_cli.client.http import Client as Http

    async def session() -> None:
        async with Client(build(http, None)) as client:
            with pytest.raises(MCPError) as refused:
                await client.list_tools()
            assert refused.value.code == -32010 and "cannot reach" in refused.value.message
            assert "axme dev" in refused.value.message  # the fix

    with Http(closed_port_url(), ADMIN_KEY) as http:
        asyncio.run(session())


def test_without_credentials_it_says_so_and_exits_2(tmp_path: Path) -> None:
    out = axme(env_for(tmp_path, AXME_BASE_URL="http://127.0.0.1:9"), "mcp", input="", timeout=60)
    assert out.returncode == 2, out.stderr
    assert out.stdout == ""  # stdout is the protocol's
    assert "no credentials" in out.stderr and "axme login" in out.stderr
    no_traceback(out)

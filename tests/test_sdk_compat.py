"""``servers/core/sdk_compat.py`` holds every reach-in into a third-party library (issue 20). Each has a test here
that fails loudly when an upgrade moves what it relies on, and no other module touches a library's privates.
"""

from __future__ import annotations

import ast
from pathlib import Path

import anyio
import pytest
from mcp import Client, MCPError
from mcp.server.mcpserver import MCPServer

from llmmixer.servers.core import sdk_compat
from llmmixer.servers.core.mcp import LLMMixerMCPServer
from llmmixer.servers.core.stdio import _is_response

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[1]
# The private names sdk_compat reaches for: nothing else in the package may use them.
REACH_INS = {"_lowlevel_server", "_request_handlers", "_tool_manager"}


def server() -> MCPServer:
    plain = MCPServer(name="compat")

    @plain.tool()
    def echo(text: str, times: int = 1) -> str:
        return text * times

    return plain


def test_the_lowlevel_server_runs_and_describes_itself() -> None:
    lowlevel = sdk_compat.lowlevel_server(server())
    assert callable(lowlevel.run)
    assert lowlevel.create_initialization_options().server_name == "compat"


async def test_unregistered_requests_are_neither_served_nor_advertised() -> None:
    with anyio.fail_after(10):
        async with Client(server()) as client:  # as the SDK builds it: prompts are served
            assert client.server_capabilities.prompts is not None
        compat = server()
        sdk_compat.unregister_requests(compat, ["prompts/list", "prompts/get"])
        async with Client(compat) as client:
            assert client.server_capabilities.prompts is None
            with pytest.raises(MCPError):
                await client.list_prompts()
            assert [tool.name for tool in (await client.list_tools()).tools] == ["echo"]


def test_tool_parameters_are_the_registered_input_schema() -> None:
    parameters = sdk_compat.tool_parameters(server(), "echo")
    assert parameters is not None and set(parameters["properties"]) == {"text", "times"}
    assert sdk_compat.tool_parameters(server(), "missing") is None


def test_a_moved_internal_fails_loudly_naming_this_module() -> None:
    class Moved:  # what an upgrade that renamed the internals would look like
        pass

    for reach in (sdk_compat.lowlevel_server, lambda s: sdk_compat.tool_parameters(s, "echo"),
                  lambda s: sdk_compat.unregister_requests(s, ["prompts/list"])):
        with pytest.raises(sdk_compat.SDKChanged, match="sdk_compat.py"):
            reach(Moved())  # type: ignore[arg-type]


async def test_our_servers_refuse_unknown_arguments_through_it() -> None:
    ours = LLMMixerMCPServer(name="ours")

    @ours.tool()
    def echo(text: str) -> str:
        return text

    with anyio.fail_after(10):
        async with Client(ours) as client:
            result = await client.call_tool("echo", {"text": "x", "txet": "y"})
    assert result.is_error and "'txet'" in result.content[0].text  # type: ignore[union-attr]


def test_no_other_module_reaches_into_a_library() -> None:
    found = []
    for path in sorted((ROOT / "llmmixer").rglob("*.py")):
        if path.name == "sdk_compat.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in REACH_INS:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: .{node.attr}")
    assert not found, "use llmmixer/servers/core/sdk_compat.py:\n" + "\n".join(found)


@pytest.mark.parametrize("line, response", [
    (b'{"jsonrpc":"2.0","id":1,"result":{}}\n', True),
    (b'{"id":1,"jsonrpc":"2.0","error":{"code":-32600,"message":"x"}}\n', True),
    (b'{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}\n', False),
    (b'{"method":"notifications/progress","jsonrpc":"2.0","params":{}}\n', False),  # keys in another order
    (b'{"params":{},"id":"a\\"b","method":"ping","jsonrpc":"2.0"}\n', False),  # a request, method last
    (b'{"jsonrpc":"2.0","id":2,"result":{"text":"\\"method\\": inside a string"}}\n', True),
    (b'not json', True),
])
def test_the_stdio_writer_tells_responses_by_content_not_key_order(line: bytes, response: bool) -> None:
    assert _is_response(line) is response

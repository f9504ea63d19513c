"""Every interface refuses an argument it does not know, as ``invalid_input`` naming it: each adapter's and the
PTY runner's tools, the orchestrator's MCP tools (over stdio, as a host launches them) and the HTTP API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from adapter_support import error_of
from conftest import server_env
from mcp import Client, StdioServerParameters

from llmmixer.orchestrator.config import Config, default_servers
from llmmixer.orchestrator.desktop_config import script_path
from llmmixer.orchestrator.runs import Runs
from llmmixer.orchestrator.stores import open_store
from llmmixer.orchestrator.web.app import create_app, running

pytestmark = pytest.mark.anyio

SCRIPTS = {"claude": "llmmixer-claude", "gpt": "llmmixer-gpt", "gemini": "llmmixer-gemini", "pty": "llmmixer-pty"}


def refused(result: Any, *names: str) -> None:
    assert result.is_error, result.content
    error = error_of(result)
    assert error["kind"] == "invalid_input", error
    for name in names:
        assert name in error["message"], error


async def every_schema_is_closed(client: Client) -> dict[str, Any]:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    for tool in tools.values():
        assert tool.input_schema.get("additionalProperties") is False, tool.name
    return tools


@pytest.mark.e2e
@pytest.mark.parametrize("source", ["claude", "gpt", "gemini"])
async def test_adapter_generate_refuses_functions_thinking_and_reasoning_effort(source: str, emu: Any) -> None:
    params = StdioServerParameters(command=script_path(SCRIPTS[source]), args=[], env=server_env(emu))
    with anyio.fail_after(60):
        async with Client(params) as client:
            await every_schema_is_closed(client)
            for extra in ({"functions": [{"name": "x"}]}, {"thinking": {"type": "enabled"}},
                          {"reasoning_effort": "high"}, {"promt": "typo"}):
                result = await client.call_tool("generate", {"prompt": "hi", **extra})
                refused(result, *extra)
            # tools are the normalized ones (servers/core/messages.py): a vendor's own shape is refused
            refused(await client.call_tool("generate", {"prompt": "hi", "tools": [{"type": "function",
                                                                                   "function": {"name": "x"}}]}))
            refused(await client.call_tool("list_models", {"page": 2}), "page")
    # Nothing reached the vendor: the refusal comes before any request.
    assert not [r for r in emu.requests() if r["method"] == "POST"]


@pytest.mark.e2e
async def test_pty_runner_refuses_unknown_arguments(emu: Any) -> None:
    params = StdioServerParameters(command=script_path(SCRIPTS["pty"]), args=[], env=server_env(emu, keys=False))
    with anyio.fail_after(60):
        async with Client(params) as client:
            tools = await every_schema_is_closed(client)
            assert "run" in tools
            refused(await client.call_tool("run", {"command": "echo hi", "shell": "zsh"}), "shell")


@pytest.mark.e2e
async def test_orchestrator_tools_refuse_unknown_arguments(emu: Any, tmp_path: Path) -> None:
    params = StdioServerParameters(command=script_path("llmmixer"), args=["mcp"], env=server_env(emu),
                                   cwd=str(tmp_path))
    with anyio.fail_after(90):
        async with Client(params) as client:
            await every_schema_is_closed(client)
            refused(await client.call_tool("ask", {"prompt": "hi", "messages": []}), "messages")
            refused(await client.call_tool("ask", {"prompt": "hi", "temperture": 0.2}), "temperture")
            refused(await client.call_tool("job", {"job_id": "0123456789abcdef", "wait": 1}), "wait")
            refused(await client.call_tool("cancel", {"job_id": "0123456789abcdef", "force": True}), "force")
            refused(await client.call_tool("run_command", {"command": "ls", "env": {}}), "env")
    assert not [r for r in emu.requests() if r["method"] == "POST"]


async def test_http_api_refuses_unknown_fields_and_query_parameters(emu: Any) -> None:
    async with Runs(Config(servers=default_servers(inprocess=True)), open_store("memory")) as runs:
        async with running(create_app(runs, runs.store)) as url, httpx2.AsyncClient(base_url=url) as client:
            for path, body, name in (("/api/runs", {"prompt": "hi", "prompts": []}, "prompts"),
                                     ("/api/runs", {"prompt": "hi", "modle": "gpt-5"}, "modle"),
                                     ("/api/commands", {"command": "ls", "shell": "zsh"}, "shell")):
                response = await client.post(path, json=body)
                assert response.status_code == 400, response.text
                error = response.json()["error"]
                assert error["kind"] == "invalid_input" and name in error["message"], error
            listing = await client.get("/api/runs", params={"limit": 5, "sort": "old"})
            assert listing.status_code == 400 and "sort" in listing.json()["error"]["message"]
    assert not emu.requests()

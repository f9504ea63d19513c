"""Every adapter as a real server process, driven by the MCP SDK's own client over stdio and Streamable HTTP.

The same checks run for each vendor (a vendor whose adapter does not exist yet is skipped): streaming through
progress, declared schemas, cancellation that really closes the upstream request, bad input, a missing key, and
the HTTP transport's security (Origin/Host guard, bearer token, refusing a public bind without a token).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from adapter_support import eventually
from conftest import server_env
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from llmmixer.servers.core.manifest import model_manifests
from llmmixer.servers.core.results import result_payload
from llmmixer.servers.emulators.server import EmulatorServer, free_port

pytestmark = pytest.mark.anyio

# source -> (emulator vendor, key variable the auth error must name), from every registered model server's manifest
VENDORS: dict[str, tuple[str, str]] = {m.name: (m.emulator.name, m.key_vars[0]) for m in model_manifests()
                                       if m.emulator is not None and m.key_vars}
REPLY = "Racing 안녕하세요 across vendors 🚀👋🏽 — done."
MAX_PROMPT_BYTES = 1000
BAD_ARGUMENTS = [
    {"prompt": 5},
    {"prompt": "hi", "max_tokens": "many"},
    {"prompt": ""},
    {"prompt": "x" * (MAX_PROMPT_BYTES + 1)},
]
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                         "clientInfo": {"name": "probe", "version": "1"}}}
MCP_POST_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


@pytest.fixture(params=list(VENDORS))
def source(request: pytest.FixtureRequest) -> str:
    vendor = VENDORS[request.param][0]
    pytest.importorskip(f"llmmixer.servers.{request.param}_adapter.adapter")
    pytest.importorskip(f"llmmixer.servers.emulators.{vendor}")
    return request.param


def command(source: str, *args: str) -> list[str]:
    return [sys.executable, "-m", f"llmmixer.servers.{source}_adapter", *args]


def stdio(source: str, env: dict[str, str]) -> StdioServerParameters:
    args = command(source, "--max-prompt-bytes", str(MAX_PROMPT_BYTES))
    return StdioServerParameters(command=args[0], args=args[1:], env=env)


@asynccontextmanager
async def http_server(source: str, env: dict[str, str], log_dir: Path) -> AsyncIterator[str]:
    """Run the adapter on Streamable HTTP on a free port; yield its ``/mcp`` URL once it answers."""
    port = free_port()
    log = log_dir / f"{source}-{port}.log"
    args = command(source, "--transport", "streamable-http", "--host", "127.0.0.1", "--port", str(port),
                   "--max-prompt-bytes", str(MAX_PROMPT_BYTES))
    with log.open("wb") as stderr:
        process = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        with anyio.fail_after(30):
            async with httpx2.AsyncClient(timeout=2) as http:
                while True:
                    assert process.poll() is None, f"server exited: {log.read_text()}"
                    try:
                        await http.get(url)  # any HTTP answer (405, 401...) means it is serving
                        break
                    except httpx2.TransportError:
                        await anyio.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@asynccontextmanager
async def http_client(url: str, headers: dict[str, str] | None = None) -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(headers=headers or {}, timeout=httpx2.Timeout(30, read=300)) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            yield client


def error_kind(result: Any) -> str:
    assert result.is_error, result.structured_content
    return result_payload(result)["error"]["kind"]


async def generate_streams(client: Client, emu: EmulatorServer, vendor: str) -> None:
    emu.set_behaviour(vendor, reply=REPLY, tokens=6)
    deltas: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        deltas.append(message or "")

    result = await client.call_tool("generate", {"prompt": "hi"}, progress_callback=on_progress)
    assert not result.is_error, result.structured_content
    assert result.structured_content["text"] == REPLY
    assert len(deltas) >= 2 and "".join(deltas) == REPLY


async def tools_declare_schemas(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == {"generate", "list_models"}
    for tool in tools.values():
        assert tool.input_schema["type"] == "object" and tool.output_schema["type"] == "object"
    assert "prompt" in tools["generate"].input_schema["properties"]


async def bad_input_is_refused(client: Client, emu: EmulatorServer, vendor: str) -> None:
    emu.set_behaviour(vendor, reply="fine")
    for arguments in BAD_ARGUMENTS:
        assert error_kind(await client.call_tool("generate", arguments)) == "invalid_input", arguments
        still = await client.call_tool("generate", {"prompt": "still there?"})
        assert still.structured_content["text"] == "fine"
    assert len(emu.requests(vendor)) == len(BAD_ARGUMENTS)  # no bad call reached the vendor


async def cancel_closes_upstream(client: Client, emu: EmulatorServer, vendor: str) -> None:
    emu.reset()
    emu.set_behaviour(vendor, ttft_ms=600_000)  # longer than any test: only our cancel can end it early
    async with anyio.create_task_group() as tg:
        tg.start_soon(partial(client.call_tool, "generate", {"prompt": "take your time"}))
        await eventually(lambda: [r for r in emu.requests(vendor) if r["outcome"] == "open"])
        cancelled_at = time.time()
        tg.cancel_scope.cancel()
    closed = await eventually(lambda: [r for r in emu.requests(vendor) if r["closed_at"]])
    assert closed[0]["outcome"] == "client_closed"
    assert closed[0]["closed_at"] >= cancelled_at
    emu.set_behaviour(vendor, reply="next call works")
    again = await client.call_tool("generate", {"prompt": "again"})
    assert again.structured_content["text"] == "next call works"


async def exercise(client: Client, emu: EmulatorServer, vendor: str) -> None:
    await tools_declare_schemas(client)
    await generate_streams(client, emu, vendor)
    await cancel_closes_upstream(client, emu, vendor)
    emu.reset()
    await bad_input_is_refused(client, emu, vendor)


# -- stdio ----------------------------------------------------------------------------------------------------------

async def test_stdio_server(source: str, emu: EmulatorServer) -> None:
    with anyio.fail_after(40):
        async with Client(stdio(source, server_env(emu))) as client:
            await exercise(client, emu, VENDORS[source][0])


async def test_no_key_server_starts_lists_tools_and_generate_names_the_variable(source: str, emu: EmulatorServer
                                                                                 ) -> None:
    vendor, key_var = VENDORS[source]
    with anyio.fail_after(30):
        async with Client(stdio(source, server_env(emu, keys=False))) as client:
            assert {t.name for t in (await client.list_tools()).tools} == {"generate", "list_models"}
            result = await client.call_tool("generate", {"prompt": "hi"})
    assert error_kind(result) == "auth" and key_var in result_payload(result)["error"]["message"]
    assert emu.requests(vendor) == []


# -- Streamable HTTP ------------------------------------------------------------------------------------------------

async def test_http_server(source: str, emu: EmulatorServer, tmp_path: Path) -> None:
    with anyio.fail_after(50):
        async with http_server(source, server_env(emu), tmp_path) as url:
            async with http_client(url) as client:
                await exercise(client, emu, VENDORS[source][0])
            port = url.split(":")[2].split("/")[0]
            async with httpx2.AsyncClient(timeout=10) as http:
                foreign_origin = await http.post(url, json=INITIALIZE,
                                                 headers={**MCP_POST_HEADERS, "Origin": "http://evil.example"})
                foreign_host = await http.post(url, json=INITIALIZE,
                                               headers={**MCP_POST_HEADERS, "Host": f"evil.example:{port}"})
                own_origin = await http.post(url, json=INITIALIZE,
                                             headers={**MCP_POST_HEADERS, "Origin": f"http://127.0.0.1:{port}"})
    assert foreign_origin.status_code == 403
    assert foreign_host.status_code == 421
    assert own_origin.status_code == 200


async def test_http_bearer_token_is_required_when_set(source: str, emu: EmulatorServer, tmp_path: Path) -> None:
    token = "test-token-4f1e"
    vendor = VENDORS[source][0]
    emu.set_behaviour(vendor, reply="authorised")
    with anyio.fail_after(40):
        async with http_server(source, server_env(emu, LLMMIXER_TOKEN=token), tmp_path) as url:
            async with httpx2.AsyncClient(timeout=10) as http:
                missing = await http.post(url, json=INITIALIZE, headers=MCP_POST_HEADERS)
                wrong = await http.post(url, json=INITIALIZE,
                                        headers={**MCP_POST_HEADERS, "Authorization": "Bearer nope"})
            async with http_client(url, {"Authorization": f"Bearer {token}"}) as client:
                result = await client.call_tool("generate", {"prompt": "hi"})
    assert missing.status_code == 401 and wrong.status_code == 401
    assert result.structured_content["text"] == "authorised"


def test_public_bind_without_token_refuses_to_start(source: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LLMMIXER_TOKEN"}
    done = subprocess.run(command(source, "--transport", "streamable-http", "--host", "0.0.0.0", "--port",
                                  str(free_port())),
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert "LLMMIXER_TOKEN" in done.stderr and "0.0.0.0" in done.stderr

"""Issue 24 item 9: a Streamable HTTP call whose client drops the connection and does not resume within the
resumption window is cancelled, and the vendor sees its stream close; a real adapter server, raw HTTP."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from conftest import server_env

from llmmixer.servers.core.abandoned import RESUME_WINDOW_S
from llmmixer.servers.emulators.server import free_port

pytestmark = pytest.mark.anyio

HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def test_a_dropped_call_that_is_not_resumed_is_cancelled_and_its_upstream_closed(
        emu: Any, tmp_path: Path) -> None:
    emu.set_behaviour("anthropic", ttft_ms=50, inter_token_ms=400, tokens=59, reply="tok " * 59)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "llmmixer.servers.claude_adapter", "--transport",
                               "streamable-http", "--port", str(port)], env=server_env(emu), cwd=tmp_path,
                              stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        async with httpx2.AsyncClient(timeout=30) as client:
            with anyio.fail_after(60):
                while True:
                    try:
                        hello = await client.post(url, headers=HEADERS, json={
                            "jsonrpc": "2.0", "id": 0, "method": "initialize",
                            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                                       "clientInfo": {"name": "raw", "version": "1"}}})
                        break
                    except httpx2.TransportError:
                        await anyio.sleep(0.1)
            session = {**HEADERS, "mcp-session-id": hello.headers["mcp-session-id"],
                       "mcp-protocol-version": "2025-11-25"}
            await client.post(url, headers=session, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
            call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                    "params": {"name": "generate", "arguments": {"prompt": "hi"}, "_meta": {"progressToken": 1}}}
            async with client.stream("POST", url, headers=session, json=call) as response:
                seen = 0
                async for line in response.aiter_lines():
                    seen += line.startswith("data:") and "progress" in line
                    if seen >= 3:
                        break  # the client goes away mid-stream and never comes back
        dropped = anyio.current_time()
        with anyio.fail_after(RESUME_WINDOW_S + 30):
            while not emu.requests("anthropic") or emu.requests("anthropic")[0].get("outcome") in (None, "open"):
                await anyio.sleep(0.1)
        record = emu.requests("anthropic")[0]
        assert record["outcome"] == "client_closed"  # cancelled: not streamed to the end for nobody
        assert anyio.current_time() - dropped >= RESUME_WINDOW_S * 0.9  # it waited for a resume first
    finally:
        server.terminate()
        server.wait(30)

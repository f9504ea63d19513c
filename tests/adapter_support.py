"""Helpers shared by the adapter tests: one ``generate`` call through the in-memory MCP client, the error of a
result, and polling state that another thread or process (the emulator) owns."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
from mcp import Client

from llmmixer.servers.core.adapter import BaseAdapter
from llmmixer.servers.core.mcp import build_adapter_server
from llmmixer.servers.core.results import error_line


async def generate(adapter: BaseAdapter, **arguments: Any) -> tuple[Any, list[str]]:
    """One ``generate`` call through the in-memory MCP client: (result, progress messages)."""
    deltas: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        deltas.append(message or "")

    with anyio.fail_after(20):
        async with Client(build_adapter_server(adapter)) as client:
            result = await client.call_tool("generate", {"prompt": "hi", **arguments}, progress_callback=on_progress)
    return result, deltas


def error_of(result: Any) -> dict[str, Any]:
    """The ``{"error": {...}}`` of an error result, which travels as text only (no structured content: hosts on the
    TypeScript SDK would check it against the success schema), after one plain ``KIND: message`` line that every
    host can show its model (Gemini CLI turns a JSON first block into structured content and fails on it)."""
    assert result.is_error, result.content
    assert result.structured_content is None
    line, body = (block.text for block in result.content)
    error = json.loads(body)["error"]
    assert "\n" not in line and line == error_line(error), (line, error)
    assert line.startswith(f"{error['kind']}: ") and not line.lstrip().startswith("{"), line
    return error


async def eventually(probe: Callable[[], Any], timeout_s: float = 5.0) -> Any:
    """Poll state owned by another thread or process (the emulator) until ``probe`` returns something truthy."""
    with anyio.fail_after(timeout_s):
        while not (value := probe()):
            await anyio.sleep(0.005)
        return value

"""LiteLLM as a client of the gateway's OpenAI endpoint (``openai/<virtual model>`` with ``api_base``): text and a
tool call, streaming and not. LiteLLM is the ``bench-peers`` extra (.ci/run installs it for this file)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from gateway_support import SHELL_SCHEMA, TOKEN, TURNS, gateway

from llmmixer.servers.emulators.server import EmulatorServer

litellm = pytest.importorskip("litellm")

pytestmark = pytest.mark.anyio

TOOLS = [{"type": "function", "function": {"name": "shell", "description": "Run a shell command",
                                           "parameters": SHELL_SCHEMA}}]


async def test_litellm_streams_a_tool_call_and_reads_a_whole_answer(emu: EmulatorServer) -> None:
    emu.set_script("gemini", TURNS)
    async with gateway(aliases={"fast": "race/gemini"}) as gw:
        common: dict[str, Any] = {"api_base": f"{gw.url}/v1", "api_key": TOKEN, "num_retries": 0}
        messages: list[dict[str, Any]] = [{"role": "user", "content": "list files"}]
        stream = await litellm.acompletion(model="openai/race/gemini", messages=messages, tools=TOOLS, stream=True,
                                           **common)
        text, arguments, name, call_id = [], [], None, None
        async for chunk in stream:
            delta = chunk.choices[0].delta
            text.append(delta.content or "")
            for piece in delta.tool_calls or []:
                name = piece.function.name or name
                call_id = piece.id or call_id
                arguments.append(piece.function.arguments or "")
        assert "".join(text) == "Let me look."
        assert name == "shell" and json.loads("".join(arguments)) == {"command": "ls -la"}
        messages += [{"role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": "shell", "arguments": "".join(arguments)}}]},
            {"role": "tool", "tool_call_id": call_id, "content": "total 0"}]
        whole = await litellm.acompletion(model="openai/fast", messages=messages, tools=TOOLS, **common)
        assert whole.choices[0].message.content == "All done."
        assert whole.model.startswith("gemini")
        [seen] = emu.tool_results("gemini")
        assert seen["output"] and "total 0" in seen["output"]

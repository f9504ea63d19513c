"""Tool calls through every adapter: the normalized message model (servers/core/messages.py) out to each vendor's
own wire and back, through the official SDKs over real HTTP to the emulators' scripted turns and real MCP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from adapter_support import generate
from adapter_vendors import CASE_IDS, CASES, VendorCase

from llmmixer.servers.core.adapter import BaseAdapter
from llmmixer.servers.core.messages import ToolCall, ToolCallDelta, read_progress
from llmmixer.servers.emulators.server import EmulatorServer

pytestmark = pytest.mark.anyio

SHELL = {"name": "shell", "description": "Run a shell command",
         "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}
TURNS = [{"say": "Let me look.", "tool": "shell", "args": {"command": "ls -la"}}, {"say": "All done."}]


@pytest.fixture(params=CASES, ids=CASE_IDS)
async def adapter(request: pytest.FixtureRequest, emu: EmulatorServer) -> AsyncIterator[tuple[VendorCase,
                                                                                           BaseAdapter]]:
    case: VendorCase = request.param
    made = case.adapter()
    yield case, made
    await made.aclose()


async def test_tool_call_round_trip(adapter: tuple[VendorCase, BaseAdapter], emu: EmulatorServer) -> None:
    case, made = adapter
    emu.set_script(case.emulator, TURNS)
    first, progress = await generate(made, prompt="list files", tools=[SHELL])
    assert not first.is_error, first.content
    body = first.structured_content
    assert body["stop_reason"] == "tool_use"
    assert body["text"] == "Let me look."
    [call] = body["tool_calls"]
    assert call["name"] == "shell" and call["arguments"] == {"command": "ls -la"} and call["id"]
    # Tool-call pieces stream as progress, after the text, and add up to the call.
    items = [read_progress(message) for message in progress]
    pieces = [item for item in items if isinstance(item, ToolCallDelta)]
    assert pieces[0].id == call["id"] and pieces[0].name == "shell"
    assert json.loads("".join(piece.arguments for piece in pieces)) == {"command": "ls -la"}
    assert [item for item in items if isinstance(item, ToolCall)] == [ToolCall(**call)]
    assert "".join(item for item in items if isinstance(item, str)) == "Let me look."

    # The next turn carries the result, in the vendor's own dialect; the script's second turn answers it.
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "list files"},
        {"role": "assistant", "content": [{"type": "text", "text": "Let me look."},
                                          {"type": "tool_call", **call}]},
        {"role": "user", "content": [{"type": "tool_result", "id": call["id"], "content": "total 0"}]},
    ]
    second, _ = await generate(made, prompt="", messages=messages, tools=[SHELL])
    assert not second.is_error, second.content
    assert second.structured_content["text"] == "All done."
    assert second.structured_content["stop_reason"] == "end_turn"
    assert "tool_calls" not in second.structured_content or not second.structured_content["tool_calls"]
    [seen] = emu.tool_results(case.emulator)
    assert seen["name"] == "shell" and "total 0" in seen["output"]


async def test_a_call_made_by_another_vendor_is_carried(adapter: tuple[VendorCase, BaseAdapter],
                                                        emu: EmulatorServer) -> None:
    """A conversation whose tool call came from another vendor (its id shape, no Gemini name lookup by the caller)
    is translated into this vendor's dialect, the result matched to its call."""
    case, made = adapter
    emu.set_script(case.emulator, TURNS)
    messages = [
        {"role": "user", "content": "list files"},
        {"role": "assistant", "content": [{"type": "tool_call", "id": "toolu_01ForeignVendorId", "name": "shell",
                                           "arguments": {"command": "ls"}}]},
        {"role": "user", "content": [{"type": "tool_result", "id": "toolu_01ForeignVendorId",
                                      "content": "no such file", "is_error": True}]},
    ]
    result, _ = await generate(made, prompt="", messages=messages, tools=[SHELL], tool_choice="auto")
    assert not result.is_error, result.content
    assert result.structured_content["text"] == "All done."
    [seen] = emu.tool_results(case.emulator)
    assert seen["name"] == "shell" and "no such file" in seen["output"]
    sent = emu.requests(case.emulator)[-1]["body"]
    wire = json.dumps(sent)
    assert "shell" in wire and "Run a shell command" in wire


async def test_named_tool_choice_reaches_the_vendor(adapter: tuple[VendorCase, BaseAdapter],
                                                    emu: EmulatorServer) -> None:
    case, made = adapter
    emu.set_script(case.emulator, TURNS)
    result, _ = await generate(made, prompt="list files", tools=[SHELL], tool_choice={"name": "shell"})
    assert result.structured_content["tool_calls"][0]["name"] == "shell"
    sent = json.dumps(emu.requests(case.emulator)[-1]["body"])
    expected = {"claude": '"tool": {"type": "tool", "name": "shell"}'.replace('"tool": ', ""),
                "gemini": '"allowedFunctionNames": ["shell"]'}.get(case.id, '"name": "shell"}')
    assert expected in sent, sent


async def test_empty_prompt_without_a_user_turn_is_refused(adapter: tuple[VendorCase, BaseAdapter]) -> None:
    _case, made = adapter
    result, _ = await generate(made, prompt="", messages=[{"role": "assistant", "content": "hello"}])
    assert result.is_error
    assert "prompt is empty" in result.content[0].text

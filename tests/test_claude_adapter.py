"""Claude's own wire: what the anthropic SDK sends the emulator, and the emulator's Anthropic API as the SDK and a
raw HTTP client see it. The scenarios every vendor shares are in tests/test_adapter_contract.py."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import anthropic
import anyio
import httpx2
import pytest
from adapter_support import error_of, generate
from adapter_vendors import CLAUDE_ERRORS
from conftest import FAKE_KEYS, server_env
from mcp import Client, StdioServerParameters

from llmmixer.servers.claude_adapter.adapter import ClaudeAdapter
from llmmixer.servers.core import pricing
from llmmixer.servers.core.adapter import AdapterSettings
from llmmixer.servers.core.mcp import build_adapter_server
from llmmixer.servers.emulators.anthropic import MODELS
from llmmixer.servers.emulators.server import EmulatorServer

pytestmark = pytest.mark.anyio

VENDOR = "anthropic"
REPLY = "Claude says 안녕하세요, 세계! 👋🏽🚀 — 한국어 and emoji 🇰🇷 mixed."
KEY = FAKE_KEYS["ANTHROPIC_API_KEY"]
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
          "required": ["city", "population"], "additionalProperties": False}

MakeAdapter = Callable[..., ClaudeAdapter]


@pytest.fixture
async def adapter() -> AsyncIterator[MakeAdapter]:
    """Make adapters (fast backoff); their SDK clients are closed in the test's own event loop."""
    made: list[ClaudeAdapter] = []

    def make(**settings: Any) -> ClaudeAdapter:
        made.append(ClaudeAdapter(AdapterSettings(**{"backoff_base_s": 0.01, **settings})))
        return made[-1]

    yield make
    for claude in made:
        await claude.aclose()


async def test_the_request_body_on_the_wire(adapter: MakeAdapter, emu: EmulatorServer) -> None:
    await generate(adapter(), system="be brief", max_tokens=50, temperature=0.2)
    sent = emu.requests(VENDOR)[-1]
    assert sent["path"] == "/anthropic/v1/messages"
    # temperature is not sent: API version 2026-10-21 (the SDK's) refuses sampling parameters
    assert sent["body"] == {"model": "claude-haiku-4-5", "max_tokens": 50, "system": "be brief",
                            "messages": [{"role": "user", "content": "hi"}], "stream": True}


async def test_earlier_turns_and_the_default_max_tokens(adapter: MakeAdapter, emu: EmulatorServer) -> None:
    messages = [{"role": "user", "content": "첫 질문"}, {"role": "assistant", "content": "첫 답"}]
    result, _ = await generate(adapter(), prompt="둘째 질문", messages=messages, model="claude-haiku-4-5-20251001")
    assert result.structured_content["model"] == "claude-haiku-4-5-20251001"
    assert result.structured_content["cost_usd"] is not None  # a dated snapshot takes its family's price
    sent = emu.requests(VENDOR)[-1]["body"]
    assert sent["messages"] == [*messages, {"role": "user", "content": "둘째 질문"}]
    assert sent["max_tokens"] == 4096 and "system" not in sent and "temperature" not in sent


async def test_structured_output_is_output_config_json_schema(adapter: MakeAdapter, emu: EmulatorServer) -> None:
    await generate(adapter(), response_schema=SCHEMA)
    sent = emu.requests(VENDOR)[-1]["body"]
    assert sent["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}


@pytest.mark.parametrize("injected", [e[0] for e in CLAUDE_ERRORS], ids=lambda value: json.dumps(value)[:48])
async def test_every_error_keeps_the_request_id(adapter: MakeAdapter, emu: EmulatorServer,
                                                injected: dict[str, Any]) -> None:
    emu.set_behaviour(VENDOR, error=injected)
    result, _ = await generate(adapter(max_retries=0))
    assert error_of(result)["details"]["request_id"].startswith("req_")


async def test_an_overloaded_error_before_the_first_delta_is_retried(adapter: MakeAdapter,
                                                                     emu: EmulatorServer) -> None:
    emu.queue(VENDOR, {"error": {"status": 529}, "error_after_tokens": 0, "tokens": 3}, {"reply": REPLY})
    result, deltas = await generate(adapter(max_retries=1))
    assert result.structured_content["text"] == REPLY == "".join(deltas)
    assert [r["outcome"] for r in emu.requests(VENDOR)] == ["error", "completed"]


@pytest.mark.parametrize(("version", "temperature", "refusal"), [
    ("2026-10-21", 1.0, "temperature: Extra inputs are not permitted"),
    ("2023-06-01", 1.5, "temperature: range: 0..1"),
    ("2023-06-01", 0.5, None),
])
async def test_emulator_checks_sampling_parameters_by_api_version(emu: EmulatorServer, version: str,
                                                                   temperature: float, refusal: str | None) -> None:
    request = {"model": "claude-haiku-4-5", "max_tokens": 8, "temperature": temperature,
               "messages": [{"role": "user", "content": "hi"}]}
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.post(f"{emu.root}/anthropic/v1/messages", json=request,
                                   headers={"x-api-key": KEY, "anthropic-version": version})
    if refusal is None:
        assert response.status_code == 200 and response.json()["type"] == "message"
    else:
        assert response.status_code == 400 and response.json()["error"] == {"type": "invalid_request_error",
                                                                             "message": refusal}


async def test_list_models_from_the_models_endpoint(adapter: MakeAdapter, emu: EmulatorServer) -> None:
    with anyio.fail_after(10):
        async with Client(build_adapter_server(adapter())) as client:
            result = await client.call_tool("list_models", {})
    models = result.structured_content["models"]
    assert models == [{"id": m["id"], "display_name": m["display_name"]} for m in MODELS]
    assert {"id": "claude-sonnet-4-6", "display_name": "Claude Sonnet 4.6"} in models
    assert emu.requests(VENDOR)[-1]["path"] == "/anthropic/v1/models"


@pytest.mark.e2e
async def test_stdio_server_takes_its_default_model_from_the_flag(emu: EmulatorServer) -> None:
    emu.set_behaviour(VENDOR, reply=REPLY, tokens=5, input_tokens=77)
    params = StdioServerParameters(command=sys.executable, env=server_env(emu),
                                   args=["-m", "llmmixer.servers.claude_adapter", "--model", "claude-sonnet-4-6"])
    with anyio.fail_after(30):
        async with Client(params) as client:
            result = await client.call_tool("generate", {"prompt": "hi"})
    assert result.structured_content["model"] == "claude-sonnet-4-6"
    # priced as that model, not as the default one
    assert result.structured_content["cost_usd"] == pytest.approx(pricing.cost_usd("claude-sonnet-4-6", 77, 5))
    assert pricing.cost_usd("claude-sonnet-4-6", 77, 5) != pricing.cost_usd("claude-haiku-4-5", 77, 5)


# -- the emulator's wire format, as the SDK and a raw HTTP client see it -----------------------------------------------

async def test_emulator_speaks_anthropic_sse_with_named_events_ping_and_split_characters(emu: EmulatorServer
                                                                                         ) -> None:
    emu.set_behaviour(VENDOR, reply="가나다라", tokens=2, thinking="음", split_utf8=True, input_tokens=3)
    url = f"{emu.root}/anthropic/v1/messages"
    request = {"model": "claude-haiku-4-5", "max_tokens": 64, "stream": True,
               "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    async with httpx2.AsyncClient(timeout=10) as http:
        async with http.stream("POST", url, json=request, headers=headers) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["request-id"].startswith("req_")
            raw_chunks = [chunk async for chunk in response.aiter_raw()]
        denied = await http.post(url, json=request, headers={"anthropic-version": "2023-06-01"})
    frames = b"".join(raw_chunks).decode().split("\n\n")
    assert frames[-1] == ""
    events = [(frame.split("\n")[0].removeprefix("event: "), json.loads(frame.split("\n")[1].removeprefix("data: ")))
              for frame in frames[:-1]]
    assert all(name == data["type"] for name, data in events)
    assert [name for name, _ in events] == [
        "message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta",
        "content_block_stop", "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop"]
    deltas = [data["delta"] for name, data in events if name == "content_block_delta"]
    assert [d["type"] for d in deltas] == ["thinking_delta", "signature_delta", "text_delta", "text_delta"]
    assert "".join(d.get("text", "") for d in deltas) == "가나다라"
    assert events[0][1]["message"]["usage"]["input_tokens"] == 3
    assert events[-2][1]["usage"]["output_tokens"] == 3 and events[-2][1]["delta"]["stop_reason"] == "end_turn"

    def decodes(chunk: bytes) -> bool:
        try:
            chunk.decode()
        except UnicodeDecodeError:
            return False
        return True

    assert not all(decodes(chunk) for chunk in raw_chunks)  # some chunk ends inside a Korean character
    assert denied.status_code == 401 and denied.json()["error"]["type"] == "authentication_error"
    assert denied.json()["request_id"] == denied.headers["request-id"]


async def test_emulator_errors_are_the_sdks_typed_exceptions(emu: EmulatorServer) -> None:
    client = anthropic.AsyncAnthropic(max_retries=0)
    emu.set_behaviour(VENDOR, error={"status": 429, "retry_after_s": 7})
    with pytest.raises(anthropic.RateLimitError) as limited:
        await client.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=[{"role": "user",
                                                                                        "content": "hi"}])
    assert limited.value.type == "rate_limit_error" and limited.value.response.headers["retry-after"] == "7"
    assert limited.value.request_id and limited.value.request_id.startswith("req_")
    emu.set_behaviour(VENDOR, error={"status": 529})
    with pytest.raises(anthropic.OverloadedError):
        await client.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=[{"role": "user",
                                                                                        "content": "hi"}])
    await client.close()


async def test_emulator_non_streaming_message_and_model_pages_through_the_sdk(emu: EmulatorServer) -> None:
    emu.set_behaviour(VENDOR, reply=REPLY, thinking="hmm", input_tokens=9, tokens=4)
    client = anthropic.AsyncAnthropic(max_retries=0)
    message = await client.messages.create(model="claude-haiku-4-5", max_tokens=64,
                                           messages=[{"role": "user", "content": "hi"}])
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[1].text == REPLY and message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (9, 5)
    ids = [model.id async for model in client.models.list(limit=3)]
    assert ids == [m["id"] for m in MODELS] and len(emu.requests(VENDOR)) == 1 + -(-len(MODELS) // 3)
    assert (await client.models.retrieve("claude-haiku-4-5")).id == "claude-haiku-4-5-20251001"
    await client.close()

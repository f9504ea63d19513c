"""GPT's own wire, in both API styles (Responses, and Chat Completions for OpenAI-compatible servers): what the
openai SDK sends the emulator, and the emulator's OpenAI API as a raw HTTP client and the SDK see it. The scenarios
every vendor shares are in tests/test_adapter_contract.py."""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio
import httpx2
import openai
import pytest
from adapter_support import error_of
from adapter_support import generate as mcp_generate
from adapter_vendors import GPT_ERRORS
from conftest import FAKE_KEYS, server_env
from mcp import Client, StdioServerParameters

from llmmixer.servers.core.adapter import AdapterSettings
from llmmixer.servers.core.mcp import build_adapter_server
from llmmixer.servers.emulators.server import EmulatorServer
from llmmixer.servers.gpt_adapter.adapter import GPTAdapter
from llmmixer.servers.gpt_adapter.errors import retry_after_s

pytestmark = pytest.mark.anyio

VENDOR = "openai"
REPLY = "GPT says 안녕하세요, 세계! 👋🏽🚀 — 한국어 and emoji 🇰🇷 mixed."
KEY = FAKE_KEYS["OPENAI_API_KEY"]
STYLES = ["responses", "chat"]
PATHS = {"responses": "/openai/v1/responses", "chat": "/openai/v1/chat/completions"}


def adapter(api: str = "responses", **settings: Any) -> GPTAdapter:
    return GPTAdapter(AdapterSettings(**{"backoff_base_s": 0.01, **settings}), api_style=api)


async def generate(gpt: GPTAdapter, **arguments: Any) -> tuple[Any, list[str]]:
    """One ``generate`` call through the in-memory MCP client, then the adapter's connection pool closed."""
    result = await mcp_generate(gpt, **arguments)
    await gpt.aclose()
    return result


@pytest.mark.parametrize("api", STYLES)
async def test_the_request_body_on_the_wire(emu: EmulatorServer, api: str) -> None:
    await generate(adapter(api), system="be brief", max_tokens=50, temperature=0.2)
    sent = emu.requests(VENDOR)[-1]
    assert sent["path"] == PATHS[api]
    if api == "responses":
        assert {k: sent["body"].get(k) for k in ("model", "instructions", "max_output_tokens", "temperature",
                                                 "stream", "store")} == {
            "model": "gpt-5-mini", "instructions": "be brief", "max_output_tokens": 50, "temperature": None,
            "stream": True, "store": False}
    else:
        assert sent["body"]["messages"][0] == {"role": "system", "content": "be brief"}
        assert sent["body"]["stream_options"] == {"include_usage": True}
        assert (sent["body"]["max_tokens"], sent["body"].get("temperature"), sent["body"]["stream"]) == (50, None, True)


@pytest.mark.parametrize("api", STYLES)
async def test_earlier_turns_are_sent_in_order(emu: EmulatorServer, api: str) -> None:
    messages = [{"role": "user", "content": "첫 질문"}, {"role": "assistant", "content": "첫 답"}]
    result, _ = await generate(adapter(api), prompt="둘째 질문", messages=messages, model="gpt-4o")
    assert result.structured_content["model"] == "gpt-4o-2024-08-06"
    assert result.structured_content["cost_usd"] is not None
    sent = emu.requests(VENDOR)[-1]["body"]
    turns = sent["input"] if api == "responses" else sent["messages"]
    assert [(t["role"], t["content"]) for t in turns] == [
        ("user", "첫 질문"), ("assistant", "첫 답"), ("user", "둘째 질문")]


async def test_an_unpriced_model_has_no_cost(emu: EmulatorServer) -> None:
    result, _ = await generate(adapter("chat"), model="llama3.2:3b")
    body = result.structured_content
    assert body["model"] == "llama3.2:3b" and body["cost_usd"] is None and body["usage"]["output_tokens"] > 0


@pytest.mark.parametrize("api", STYLES)
@pytest.mark.parametrize("injected", [e[0] for e in GPT_ERRORS], ids=lambda value: json.dumps(value)[:40])
async def test_no_error_quotes_even_the_masked_key(emu: EmulatorServer, api: str, injected: dict[str, Any]) -> None:
    emu.set_behaviour(VENDOR, error=injected)
    result, _ = await generate(adapter(api, max_retries=0))
    error = error_of(result)
    assert KEY[-4:] + "." not in error["message"]  # the 401 body quotes the key's last four characters
    if error["kind"] == "auth":
        assert "[redacted]" in error["message"]


@pytest.mark.parametrize("api", STYLES)
@pytest.mark.parametrize("stop_reason", ["content_filter", "refusal"])
async def test_a_refusal_is_never_sent_as_text_but_is_quoted(emu: EmulatorServer, api: str, stop_reason: str) -> None:
    emu.set_behaviour(VENDOR, reply="I can't help with that.", stop_reason=stop_reason)
    result, deltas = await generate(adapter(api))
    error = error_of(result)
    assert ("I can't help with that." in error["message"]) == (stop_reason == "refusal")
    assert (deltas == []) == (stop_reason == "refusal")


def test_retry_after_headers_most_precise_first() -> None:
    assert retry_after_s({"retry-after-ms": "1500", "retry-after": "2"}) == 1.5
    assert retry_after_s({"retry-after": "7"}) == 7.0
    assert 0 < retry_after_s({"retry-after": "Wed, 21 Oct 2099 07:28:00 GMT"})
    assert retry_after_s({"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s",
                          "x-ratelimit-remaining-requests": "5", "x-ratelimit-reset-requests": "1s"}) == 360.0
    assert retry_after_s({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "120ms"}) == 0.12
    assert retry_after_s({"x-ratelimit-reset-tokens": "6m0s"}) is None  # not the exhausted limit
    assert retry_after_s({"retry-after": "soon"}) is None


SCHEMA = {"title": "City facts", "type": "object",
          "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
          "required": ["city", "population"], "additionalProperties": False}


@pytest.mark.parametrize("api", STYLES)
async def test_structured_output_uses_the_native_json_schema_format(emu: EmulatorServer, api: str) -> None:
    emu.set_behaviour(VENDOR, reply_json={"city": "서울", "population": 9_400_000}, tokens=4)
    result, _ = await generate(adapter(api), response_schema=SCHEMA)
    assert result.structured_content["data"] == {"city": "서울", "population": 9_400_000}
    sent = emu.requests(VENDOR)[-1]["body"]
    native = {"name": "City_facts", "schema": SCHEMA, "strict": False}
    if api == "responses":
        assert sent["text"] == {"format": {"type": "json_schema", **native}}
    else:
        assert sent["response_format"] == {"type": "json_schema", "json_schema": native}


@pytest.mark.parametrize("api", STYLES)
async def test_list_models_keeps_text_models_with_their_id_as_name(emu: EmulatorServer, api: str) -> None:
    with anyio.fail_after(10):
        async with Client(build_adapter_server(adapter(api))) as client:
            result = await client.call_tool("list_models", {})
    models = result.structured_content["models"]
    assert {"id": "gpt-5", "display_name": "gpt-5"} in models
    assert {"id": "gpt-4o-mini", "display_name": "gpt-4o-mini"} in models
    assert not {"text-embedding-3-small", "whisper-1", "tts-1", "dall-e-3"} & {m["id"] for m in models}
    assert emu.requests(VENDOR)[-1]["path"] == "/openai/v1/models"


async def test_list_models_errors_are_classified(emu: EmulatorServer) -> None:
    emu.set_behaviour(VENDOR, error={"status": 401, "type": "invalid_api_key"})
    async with Client(build_adapter_server(adapter())) as client:
        result = await client.call_tool("list_models", {})
    error = error_of(result)
    assert error["kind"] == "auth" and KEY not in error["message"]


def test_api_style_comes_from_the_flag_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    assert GPTAdapter().api_style == "responses"
    monkeypatch.setenv("OPENAI_API_STYLE", "chat")
    gpt = GPTAdapter()
    assert gpt.api_style == "chat"
    parser = argparse.ArgumentParser()
    GPTAdapter.add_arguments(parser)
    gpt.configure(parser.parse_args(["--api", "responses"]))
    assert gpt.api_style == "responses"
    gpt.configure(parser.parse_args([]))
    assert gpt.api_style == "responses"
    monkeypatch.setenv("OPENAI_API_STYLE", "completions")
    with pytest.raises(ValueError, match="OPENAI_API_STYLE"):
        GPTAdapter()


@pytest.mark.parametrize(("args", "env", "path"), [
    ([], {}, PATHS["responses"]),
    (["--api", "chat"], {}, PATHS["chat"]),
    ([], {"OPENAI_API_STYLE": "chat"}, PATHS["chat"]),
], ids=["responses", "--api chat", "OPENAI_API_STYLE=chat"])
@pytest.mark.e2e
async def test_stdio_server_picks_its_api_style(emu: EmulatorServer, args: list[str], env: dict[str, str],
                                                path: str) -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "llmmixer.servers.gpt_adapter", *args],
                                   env=server_env(emu, **env))
    with anyio.fail_after(30):
        async with Client(params) as client:
            result = await client.call_tool("generate", {"prompt": "hi", "model": "gpt-5"})
    assert result.structured_content["model"] == "gpt-5-2025-08-07"
    assert emu.requests(VENDOR)[-1]["path"] == path


# -- the emulator's wire format, as a raw HTTP client sees it ----------------------------------------------------------

def _decodes(chunk: bytes) -> bool:
    try:
        chunk.decode()
    except UnicodeDecodeError:
        return False
    return True


async def _raw_stream(emu: EmulatorServer, path: str, request: dict[str, Any]) -> tuple[httpx2.Response, list[bytes]]:
    async with httpx2.AsyncClient(timeout=10) as http:
        async with http.stream("POST", f"{emu.root}/openai/v1{path}", json=request,
                               headers={"authorization": f"Bearer {KEY}"}) as response:
            return response, [chunk async for chunk in response.aiter_raw()]


async def test_emulator_speaks_responses_sse_with_named_numbered_events(emu: EmulatorServer) -> None:
    emu.set_behaviour(VENDOR, reply="가나다라", tokens=2, input_tokens=3)
    response, raw_chunks = await _raw_stream(emu, "/responses", {"model": "gpt-5", "input": "hi", "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-request-id"].startswith("req_")
    frames = b"".join(raw_chunks).decode().split("\n\n")
    assert frames[-1] == ""
    events = []
    for frame in frames[:-1]:
        name, data = frame.split("\n")
        payload = json.loads(data.removeprefix("data: "))
        assert name == f"event: {payload['type']}"
        events.append(payload)
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.completed"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert [e["delta"] for e in deltas] == ["가나", "다라"]
    assert all({"item_id", "output_index", "content_index"} <= set(e) for e in deltas)
    final = events[-1]["response"]
    assert final["status"] == "completed" and final["model"] == "gpt-5-2025-08-07"
    assert final["usage"] == {"input_tokens": 3, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 2,
                              "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 5}
    assert final["output"][0]["content"][0]["text"] == "가나다라"
    assert not all(_decodes(chunk) for chunk in raw_chunks)  # some chunk ends inside a Korean character


async def test_emulator_speaks_chat_chunks_with_a_usage_chunk_and_done(emu: EmulatorServer) -> None:
    emu.set_behaviour(VENDOR, reply="가나다라", tokens=2, input_tokens=3)
    request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True,
               "stream_options": {"include_usage": True}}
    _, raw_chunks = await _raw_stream(emu, "/chat/completions", request)
    frames = b"".join(raw_chunks).decode().split("\n\n")
    assert frames[-2:] == ["data: [DONE]", ""] and all(f.startswith("data: {") for f in frames[:-2])
    chunks = [json.loads(f.removeprefix("data: ")) for f in frames[:-2]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "gpt-4o-mini-2024-07-18" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:3]] == ["가나", "다라"]
    assert chunks[3]["choices"][0]["finish_reason"] == "stop" and chunks[3]["choices"][0]["delta"] == {}
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 3
    assert chunks[-1]["usage"]["completion_tokens"] == 2 and chunks[-1]["usage"]["total_tokens"] == 5


async def test_emulator_refuses_a_request_without_a_key_as_the_api_does(emu: EmulatorServer) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        denied = await http.post(f"{emu.root}/openai/v1/responses", json={"model": "gpt-5", "input": "hi"})
    assert denied.status_code == 401
    error = denied.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
    assert "didn't provide an API key" in error["message"]


async def test_emulator_non_streaming_calls_through_the_sdk(emu: EmulatorServer) -> None:
    emu.set_behaviour(VENDOR, reply=REPLY, thinking="hmm", input_tokens=9, tokens=4)
    client = openai.AsyncOpenAI(max_retries=0)
    response = await client.responses.create(model="gpt-5", input="hi")
    assert response.output_text == REPLY and [item.type for item in response.output] == ["reasoning", "message"]
    assert (response.usage.input_tokens, response.usage.output_tokens) == (9, 5)
    assert response.usage.output_tokens_details.reasoning_tokens == 1
    chat = await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert chat.choices[0].message.content == REPLY and chat.choices[0].finish_reason == "stop"
    assert (chat.usage.prompt_tokens, chat.usage.completion_tokens) == (9, 5)
    model = await client.models.retrieve("gpt-5")
    assert model.id == "gpt-5" and model.owned_by == "system"
    await client.close()

"""Gemini's own wire: what the google-genai SDK sends the emulator, and the emulator's Gemini API as a raw HTTP
client and the SDK see it. The scenarios every vendor shares are in tests/test_adapter_contract.py."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx2
import pytest
from adapter_support import error_of, generate
from conftest import FAKE_KEYS
from google import genai
from mcp import Client

from llmmixer.servers.core.adapter import AdapterSettings
from llmmixer.servers.core.mcp import build_adapter_server
from llmmixer.servers.emulators.server import EmulatorServer
from llmmixer.servers.gemini_adapter.adapter import GeminiAdapter

pytestmark = pytest.mark.anyio

VENDOR = "gemini"
REPLY = "Gemini says 안녕하세요, 세계! 👋🏽🚀 — 한국어 and emoji 🇰🇷 mixed."
KEY = FAKE_KEYS["GEMINI_API_KEY"]
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
          "required": ["city", "population"], "additionalProperties": False}


def adapter(**settings: Any) -> GeminiAdapter:
    return GeminiAdapter(AdapterSettings(**{"backoff_base_s": 0.01, **settings}))


async def test_the_request_body_on_the_wire(emu: EmulatorServer) -> None:
    await generate(adapter(), system="be brief", max_tokens=50, temperature=0.2)
    sent = emu.requests(VENDOR)[-1]
    assert sent["path"] == "/gemini/v1/models/gemini-2.5-flash:streamGenerateContent"
    assert sent["body"]["systemInstruction"]["parts"] == [{"text": "be brief"}]
    assert sent["body"]["generationConfig"] == {"maxOutputTokens": 50, "temperature": 0.2}


async def test_earlier_turns_become_user_and_model_contents(emu: EmulatorServer) -> None:
    messages = [{"role": "user", "content": "첫 질문"}, {"role": "assistant", "content": "첫 답"}]
    result, _ = await generate(adapter(), prompt="둘째 질문", messages=messages, model="gemini-2.5-pro")
    assert result.structured_content["model"] == "gemini-2.5-pro"
    contents = emu.requests(VENDOR)[-1]["body"]["contents"]
    assert [(c["role"], c["parts"][0]["text"]) for c in contents] == [
        ("user", "첫 질문"), ("model", "첫 답"), ("user", "둘째 질문")]


@pytest.mark.parametrize("stop_reason", ["SAFETY", "RECITATION", "prompt:SAFETY", "prompt:PROHIBITED_CONTENT"])
async def test_a_safety_block_names_its_reason(emu: EmulatorServer, stop_reason: str) -> None:
    emu.set_behaviour(VENDOR, stop_reason=stop_reason)
    result, _ = await generate(adapter())
    assert stop_reason.removeprefix("prompt:") in error_of(result)["message"]


async def test_structured_output_uses_response_json_schema(emu: EmulatorServer) -> None:
    await generate(adapter(), response_schema=SCHEMA)
    config = emu.requests(VENDOR)[-1]["body"]["generationConfig"]
    assert config == {"responseMimeType": "application/json", "responseJsonSchema": SCHEMA}


async def test_list_models_lists_generative_models_only(emu: EmulatorServer) -> None:
    with anyio.fail_after(10):
        async with Client(build_adapter_server(adapter())) as client:
            result = await client.call_tool("list_models", {})
    models = result.structured_content["models"]
    assert {"id": "gemini-2.5-flash", "display_name": "Gemini 2.5 Flash"} in models
    assert "text-embedding-004" not in {m["id"] for m in models}
    assert emu.requests(VENDOR)[-1]["path"] == "/gemini/v1/models"


# -- the emulator's wire format, as a raw HTTP client and the SDK see it -----------------------------------------------

async def test_emulator_models_are_paged_and_the_sdk_pager_follows_next_page_token(emu: EmulatorServer) -> None:
    async with httpx2.AsyncClient(base_url=f"{emu.root}/gemini/v1beta", headers={"x-goog-api-key": KEY}) as http:
        first = (await http.get("/models", params={"pageSize": 2})).json()
    assert len(first["models"]) == 2 and first["nextPageToken"]
    pager = await genai.Client().aio.models.list(config={"page_size": 2})
    names = [model.name async for model in pager]
    assert len(names) == len(set(names)) > 2 and names[:2] == [m["name"] for m in first["models"]]
    assert len(emu.requests(VENDOR)) == 1 + -(-len(names) // 2)


# -- the emulator's wire format, as a raw HTTP client sees it ----------------------------------------------------------

async def test_emulator_speaks_gemini_sse_with_crlf_frames_and_split_characters(emu: EmulatorServer) -> None:
    emu.set_behaviour(VENDOR, reply="가나다라", tokens=2, split_utf8=True)
    url = f"{emu.root}/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    request = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    async with httpx2.AsyncClient(timeout=10) as http:
        async with http.stream("POST", url, json=request, headers={"x-goog-api-key": KEY}) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            raw_chunks = [chunk async for chunk in response.aiter_raw()]
        denied = await http.post(url, json=request)
    raw = b"".join(raw_chunks)
    frames = raw.decode().split("\r\n\r\n")
    assert frames[-1] == "" and all(frame.startswith("data: {") for frame in frames[:-1])
    chunks = [json.loads(frame.removeprefix("data: ")) for frame in frames[:-1]]
    assert [c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks] == ["가나", "다라", ""]
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert set(chunks[-1]["usageMetadata"]) >= {"promptTokenCount", "candidatesTokenCount", "totalTokenCount"}
    assert all(c["modelVersion"] == "gemini-2.5-flash" and c["responseId"] for c in chunks)

    def decodes(chunk: bytes) -> bool:
        try:
            chunk.decode()
        except UnicodeDecodeError:
            return False
        return True

    assert not all(decodes(chunk) for chunk in raw_chunks)  # some chunk ends inside a Korean character
    assert denied.status_code == 403 and denied.json()["error"]["status"] == "PERMISSION_DENIED"


async def test_emulator_non_streaming_generate_content_through_the_sdk(emu: EmulatorServer) -> None:
    emu.set_behaviour(VENDOR, reply=REPLY, thinking="hmm", input_tokens=9, tokens=4)
    client = genai.Client()
    response = await client.aio.models.generate_content(model="gemini-2.5-flash", contents="hi")
    parts = response.candidates[0].content.parts
    assert [p.thought for p in parts] == [True, None] and parts[1].text == REPLY
    assert response.usage_metadata.prompt_token_count == 9
    assert response.usage_metadata.candidates_token_count == 4 and response.usage_metadata.thoughts_token_count == 1

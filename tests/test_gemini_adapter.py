"""The Gemini adapter: google-genai SDK over real HTTP to the emulator, and through real MCP (in-memory and stdio)."""

from __future__ import annotations

import json
import logging
import sys
import time
from functools import partial
from typing import Any

import anyio
import httpx2
import pytest
from adapter_support import error_of, eventually, generate
from conftest import FAKE_KEYS, server_env
from google import genai
from mcp import Client, StdioServerParameters

from llmmixer.servers.core.adapter import AdapterSettings, GenerateRequest, TextDelta
from llmmixer.servers.core.mcp import build_adapter_server
from llmmixer.servers.emulators.behaviour import split_tokens
from llmmixer.servers.emulators.server import EmulatorServer
from llmmixer.servers.gemini_adapter.adapter import GeminiAdapter

pytestmark = pytest.mark.anyio

VENDOR = "gemini"
REPLY = "Gemini says 안녕하세요, 세계! 👋🏽🚀 — 한국어 and emoji 🇰🇷 mixed."
KEY = FAKE_KEYS["GEMINI_API_KEY"]


def adapter(**settings: Any) -> GeminiAdapter:
    return GeminiAdapter(AdapterSettings(**{"backoff_base_s": 0.01, **settings}))


# -- streaming text and usage ----------------------------------------------------------------------------------------

async def test_exact_text_from_deltas_split_inside_characters_and_usage_from_the_wire(emu: EmulatorServer) -> None:
    emu.set_behaviour(VENDOR, reply=REPLY, tokens=9, split_utf8=True, input_tokens=321)
    result, deltas = await generate(adapter(), system="be brief", max_tokens=50, temperature=0.2)
    body = result.structured_content
    assert not result.is_error
    assert body["text"] == REPLY and "".join(deltas) == REPLY and len(deltas) == 9
    assert body["usage"] == {"input_tokens": 321, "output_tokens": 9}
    assert body["model"] == "gemini-2.5-flash" and body["stop_reason"] == "end_turn"
    assert body["cost_usd"] == pytest.approx((321 * 0.3 + 9 * 2.5) / 1e6)
    assert body["latency_ms"] >= body["ttft_ms"] > 0
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


async def test_thought_parts_are_not_text_but_are_billed_as_output(emu: EmulatorServer) -> None:
    emu.set_behaviour(VENDOR, reply="The answer is 42.", tokens=3, thinking="secret chain of thought", input_tokens=5)
    result, deltas = await generate(adapter())
    body = result.structured_content
    assert body["text"] == "The answer is 42." and "".join(deltas) == body["text"]
    assert "secret" not in result.content[0].text
    thoughts = len(split_tokens("secret chain of thought"))
    assert body["usage"] == {"input_tokens": 5, "output_tokens": 3 + thoughts, "reasoning_tokens": thoughts}


async def test_max_tokens_truncates_and_reports_max_tokens(emu: EmulatorServer) -> None:
    emu.set_behaviour(VENDOR, reply="one two three four five", tokens=5)
    result, deltas = await generate(adapter(), max_tokens=2)
    assert result.structured_content["stop_reason"] == "max_tokens"
    assert len(deltas) == 2 and result.structured_content["usage"]["output_tokens"] == 2


# -- errors ----------------------------------------------------------------------------------------------------------

QUOTA_ZERO = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
                        "message": "Quota exceeded for metric: generate_content_free_tier_input_token_count, limit: 0",
                        "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
                            {"quotaId": "GenerateContentInputTokensPerModelPerMinute-FreeTier", "quotaValue": "0"}]},
                            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "30s"}]}}


@pytest.mark.parametrize(
    ("injected", "kind", "retry_after_s"),
    [
        ({"status": 400, "type": "API_KEY_INVALID"}, "auth", None),
        ({"status": 400, "type": "context_length_exceeded"}, "context_length", None),
        ({"status": 400}, "bad_request", None),
        ({"status": 401}, "auth", None),
        ({"status": 403}, "permission", None),
        ({"status": 404}, "not_found", None),
        ({"status": 429, "retry_after_s": 12}, "rate_limit", 12.0),
        ({"status": 429}, "rate_limit", None),
        ({"status": 429, "headers": {"retry-after": "3"}}, "rate_limit", 3.0),
        ({"status": 429, "type": "daily_quota"}, "quota", 41.0),
        ({"status": 429, "body": QUOTA_ZERO}, "quota", 30.0),
        ({"status": 500}, "server", None),
        ({"status": 502}, "server", None),
        ({"status": 503}, "unavailable", None),
        ({"status": 504}, "timeout", None),
    ],
    ids=lambda value: json.dumps(value)[:40] if isinstance(value, dict) else str(value),
)
async def test_every_error_body_maps_to_the_taxonomy(emu: EmulatorServer, injected: dict[str, Any], kind: str,
                                                      retry_after_s: float | None,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    emu.set_behaviour(VENDOR, error=injected)
    caplog.set_level(logging.DEBUG)
    result, deltas = await generate(adapter(max_retries=0))
    error = error_of(result)
    assert (error["kind"], error["retry_after_s"]) == (kind, retry_after_s)
    assert error["vendor"] == "google" and error["status"] == injected["status"] and not deltas
    assert error["retryable"] == (kind in {"rate_limit", "server", "unavailable", "timeout"})
    assert KEY not in result.content[0].text and KEY not in caplog.text
    if kind == "auth":
        assert "GEMINI_API_KEY" in error["message"]


async def test_mid_stream_error_line_ends_the_leg_without_retry(emu: EmulatorServer) -> None:
    emu.set_behaviour(VENDOR, reply=REPLY, tokens=6, error={"status": 503}, error_after_tokens=3)
    result, deltas = await generate(adapter(max_retries=2))
    error = error_of(result)
    assert error["kind"] == "unavailable" and error["status"] == 503
    assert len(deltas) == 3 and "".join(deltas) == REPLY[: len("".join(deltas))]
    assert len(emu.requests(VENDOR)) == 1  # a delta went out: no retry


async def test_one_rate_limit_then_success_gives_a_result(emu: EmulatorServer) -> None:
    emu.queue(VENDOR, {"error": {"status": 429, "retry_after_s": 0.05}}, {"reply": REPLY})
    started = time.perf_counter()
    result, deltas = await generate(adapter(max_retries=2))
    assert not result.is_error and result.structured_content["text"] == REPLY
    assert time.perf_counter() - started >= 0.05  # RetryInfo's delay was honoured
    assert [r["outcome"] for r in emu.requests(VENDOR)] == ["error", "completed"]


async def test_retries_stop_at_max_retries(emu: EmulatorServer) -> None:
    emu.set_behaviour(VENDOR, error={"status": 500})
    result, _ = await generate(adapter(max_retries=1))
    assert error_of(result)["kind"] == "server" and len(emu.requests(VENDOR)) == 2


@pytest.mark.parametrize("behaviour", [{"hang": True}, {"hang_after_tokens": 2, "tokens": 5}])
async def test_a_hang_is_a_timeout(emu: EmulatorServer, behaviour: dict[str, Any]) -> None:
    emu.set_behaviour(VENDOR, **behaviour)
    started = time.perf_counter()
    result, deltas = await generate(adapter(timeout_s=0.5, max_retries=0))
    assert error_of(result)["kind"] == "timeout" and len(deltas) == behaviour.get("hang_after_tokens", 0)
    assert 0.45 <= time.perf_counter() - started < 5
    await eventually(lambda: emu.requests(VENDOR)[-1]["closed_at"])


@pytest.mark.parametrize("behaviour", [{"reset": True}, {"reset_after_tokens": 2, "tokens": 5}])
async def test_a_reset_is_a_connection_error(emu: EmulatorServer, behaviour: dict[str, Any]) -> None:
    emu.set_behaviour(VENDOR, **behaviour)
    result, deltas = await generate(adapter(max_retries=0))
    assert error_of(result)["kind"] == "connection" and len(deltas) == behaviour.get("reset_after_tokens", 0)


async def test_a_refused_connection_is_a_connection_error(emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    from llmmixer.servers.emulators.server import free_port

    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", f"http://127.0.0.1:{free_port()}/gemini")
    result, _ = await generate(adapter(max_retries=0))
    assert error_of(result)["kind"] == "connection"


@pytest.mark.parametrize("stop_reason", ["SAFETY", "RECITATION", "prompt:SAFETY", "prompt:PROHIBITED_CONTENT"])
async def test_safety_blocks_are_content_filter(emu: EmulatorServer, stop_reason: str) -> None:
    emu.set_behaviour(VENDOR, stop_reason=stop_reason)
    result, _ = await generate(adapter())
    error = error_of(result)
    assert error["kind"] == "content_filter" and stop_reason.removeprefix("prompt:") in error["message"]
    assert len(emu.requests(VENDOR)) == 1


# -- structured output ------------------------------------------------------------------------------------------------

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
          "required": ["city", "population"], "additionalProperties": False}


async def test_structured_output_uses_response_json_schema_and_returns_data(emu: EmulatorServer) -> None:
    emu.set_behaviour(VENDOR, reply_json={"city": "서울", "population": 9_400_000}, tokens=4)
    result, _ = await generate(adapter(), response_schema=SCHEMA)
    assert result.structured_content["data"] == {"city": "서울", "population": 9_400_000}
    config = emu.requests(VENDOR)[-1]["body"]["generationConfig"]
    assert config == {"responseMimeType": "application/json", "responseJsonSchema": SCHEMA}


async def test_a_reply_that_breaks_the_schema_is_invalid_output(emu: EmulatorServer) -> None:
    emu.set_behaviour(VENDOR, reply_json={"city": "Busan", "population": "many"})
    result, _ = await generate(adapter(), response_schema=SCHEMA)
    assert error_of(result)["kind"] == "invalid_output"


# -- models, keys ----------------------------------------------------------------------------------------------------

async def test_list_models_lists_generative_models_only(emu: EmulatorServer) -> None:
    with anyio.fail_after(10):
        async with Client(build_adapter_server(adapter())) as client:
            result = await client.call_tool("list_models", {})
    models = result.structured_content["models"]
    assert {"id": "gemini-2.5-flash", "display_name": "Gemini 2.5 Flash"} in models
    assert "text-embedding-004" not in {m["id"] for m in models}
    assert emu.requests(VENDOR)[-1]["path"] == "/gemini/v1/models"


async def test_no_key_is_auth_naming_the_variable(emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY")
    result, _ = await generate(adapter())
    error = error_of(result)
    assert error["kind"] == "auth" and "GEMINI_API_KEY" in error["message"]
    async with Client(build_adapter_server(adapter())) as client:
        listed = await client.call_tool("list_models", {})
    assert error_of(listed)["kind"] == "auth"
    assert emu.requests(VENDOR) == []  # nothing was sent without a key


# -- cancellation ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("phase", ["waiting for the first token", "mid-stream"])
async def test_cancelling_the_tool_call_closes_the_upstream_stream(emu: EmulatorServer, phase: str) -> None:
    if phase == "mid-stream":
        emu.set_behaviour(VENDOR, tokens=6, inter_token_ms=5000)
    else:
        emu.set_behaviour(VENDOR, ttft_ms=5000)
    first_delta = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        first_delta.set()

    with anyio.fail_after(20):
        async with Client(build_adapter_server(adapter())) as client:
            async with anyio.create_task_group() as tg:
                tg.start_soon(partial(client.call_tool, "generate", {"prompt": "hi"}, progress_callback=on_progress))
                if phase == "mid-stream":
                    await first_delta.wait()
                else:
                    await eventually(lambda: emu.requests(VENDOR))
                cancelled_at = time.time()
                tg.cancel_scope.cancel()
            record = await eventually(lambda: [r for r in emu.requests(VENDOR) if r["closed_at"]])
            assert record[0]["outcome"] == "client_closed"
            assert record[0]["closed_at"] - cancelled_at < 0.05
            emu.set_behaviour(VENDOR, reply="still here")
            again = await client.call_tool("generate", {"prompt": "again"})
            assert again.structured_content["text"] == "still here"


async def test_an_abandoned_stream_closes_the_upstream_at_once(emu: EmulatorServer) -> None:
    """A consumer that stops reading (closes the generator at a yield) must not leave the SDK's socket open."""
    emu.set_behaviour(VENDOR, tokens=6, inter_token_ms=5000)
    stream = adapter().stream(GenerateRequest(prompt="hi"))
    with anyio.fail_after(10):
        assert isinstance(await stream.__anext__(), TextDelta)
        abandoned_at = time.time()
        await stream.aclose()
        record = await eventually(lambda: [r for r in emu.requests(VENDOR) if r["closed_at"]])
    assert record[0]["closed_at"] - abandoned_at < 0.05


# -- the real server process over stdio -------------------------------------------------------------------------------

async def test_stdio_server_streams_progress_and_returns_the_result(emu: EmulatorServer) -> None:
    emu.set_behaviour(VENDOR, reply=REPLY, tokens=5, input_tokens=77)
    deltas: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        deltas.append(message or "")

    params = StdioServerParameters(command=sys.executable, args=["-m", "llmmixer.servers.gemini_adapter"],
                                   env=server_env(emu))
    with anyio.fail_after(30):
        async with Client(params) as client:
            result = await client.call_tool("generate", {"prompt": "hi"}, progress_callback=on_progress)
    assert result.structured_content["text"] == REPLY and "".join(deltas) == REPLY
    assert result.structured_content["usage"] == {"input_tokens": 77, "output_tokens": 5}


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

"""The GPT adapter: openai SDK over real HTTP to the emulator (Responses and Chat Completions), and through real
MCP (in-memory and stdio)."""

from __future__ import annotations

import json
import logging
import sys
import time
from functools import partial
from typing import Any

import anyio
import httpx2
import openai
import pytest
from adapter_support import error_of, eventually
from adapter_support import generate as mcp_generate
from conftest import FAKE_KEYS, server_env
from mcp import Client, StdioServerParameters

from llmmixer.servers.core.adapter import AdapterSettings
from llmmixer.servers.core.mcp import build_adapter_server
from llmmixer.servers.emulators.behaviour import split_tokens
from llmmixer.servers.emulators.server import EmulatorServer, free_port
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


# -- streaming text and usage ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("api", STYLES)
async def test_exact_text_from_deltas_split_inside_characters_and_usage_from_the_wire(emu: EmulatorServer,
                                                                                      api: str) -> None:
    emu.set_behaviour(VENDOR, reply=REPLY, tokens=9, split_utf8=True, input_tokens=321)
    result, deltas = await generate(adapter(api), system="be brief", max_tokens=50, temperature=0.2)
    body = result.structured_content
    assert not result.is_error
    assert body["text"] == REPLY and "".join(deltas) == REPLY and len(deltas) == 9
    assert body["usage"] == {"input_tokens": 321, "output_tokens": 9, "reasoning_tokens": 0}
    assert body["model"] == "gpt-5-mini-2025-08-07" and body["stop_reason"] == "end_turn"
    # gpt-5 models refuse temperature: it is not sent, and the result says so
    assert [d["param"] for d in body["dropped"]] == ["temperature"]
    assert body["cost_usd"] == pytest.approx((321 * 0.25 + 9 * 2.0) / 1e6)
    assert body["latency_ms"] >= body["ttft_ms"] > 0
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
async def test_reasoning_is_not_text_but_is_billed_as_output(emu: EmulatorServer, api: str) -> None:
    emu.set_behaviour(VENDOR, reply="The answer is 42.", tokens=3, thinking="secret chain of thought", input_tokens=5)
    result, deltas = await generate(adapter(api))
    body = result.structured_content
    assert body["text"] == "The answer is 42." and "".join(deltas) == body["text"]
    assert "secret" not in result.content[0].text
    thoughts = len(split_tokens("secret chain of thought"))
    assert body["usage"] == {"input_tokens": 5, "output_tokens": 3 + thoughts, "reasoning_tokens": thoughts}


@pytest.mark.parametrize("api", STYLES)
async def test_max_tokens_truncates_and_reports_max_tokens(emu: EmulatorServer, api: str) -> None:
    emu.set_behaviour(VENDOR, reply="one two three four five", tokens=5)
    result, deltas = await generate(adapter(api), max_tokens=2)
    assert result.structured_content["stop_reason"] == "max_tokens"
    assert len(deltas) == 2 and result.structured_content["usage"]["output_tokens"] == 2


# -- errors ----------------------------------------------------------------------------------------------------------

ERRORS = [
    ({"status": 400}, "bad_request", None),
    ({"status": 400, "type": "context_length_exceeded"}, "context_length", None),
    ({"status": 400, "type": "invalid_prompt"}, "content_filter", None),
    ({"status": 401, "type": "invalid_api_key"}, "auth", None),
    ({"status": 403}, "permission", None),
    ({"status": 404, "type": "model_not_found"}, "not_found", None),
    ({"status": 429, "retry_after_s": 12}, "rate_limit", 12.0),
    ({"status": 429, "retry_after_s": 0.25}, "rate_limit", 0.25),
    ({"status": 429}, "rate_limit", 1.0),  # no retry-after: the exhausted limit's x-ratelimit-reset-tokens
    ({"status": 429, "headers": {"retry-after": "3"}}, "rate_limit", 3.0),
    ({"status": 429, "body": {"error": {"message": "slow down", "type": "requests", "param": None,
                                        "code": "rate_limit_exceeded"}}}, "rate_limit", None),
    ({"status": 429, "type": "insufficient_quota"}, "quota", None),
    ({"status": 500}, "server", None),
    ({"status": 502}, "server", None),
    ({"status": 503}, "unavailable", None),
    ({"status": 504}, "timeout", None),
]


@pytest.mark.parametrize("api", STYLES)
@pytest.mark.parametrize(("injected", "kind", "retry_after"), ERRORS,
                         ids=lambda value: json.dumps(value)[:40] if isinstance(value, dict) else str(value))
async def test_every_error_body_maps_to_the_taxonomy(emu: EmulatorServer, api: str, injected: dict[str, Any],
                                                      kind: str, retry_after: float | None,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    emu.set_behaviour(VENDOR, error=injected)
    caplog.set_level(logging.DEBUG)
    result, deltas = await generate(adapter(api, max_retries=0))
    error = error_of(result)
    assert (error["kind"], error["retry_after_s"]) == (kind, retry_after)
    assert error["vendor"] == "openai" and error["status"] == injected["status"] and not deltas
    assert error["retryable"] == (kind in {"rate_limit", "server", "unavailable", "timeout"})
    assert KEY not in result.content[0].text and KEY not in caplog.text
    assert KEY[-4:] + "." not in error["message"]  # not even the masked form the 401 quotes
    if kind == "auth":
        assert "OPENAI_API_KEY" in error["message"] and "[redacted]" in error["message"]


@pytest.mark.parametrize(("api", "injected", "kind"), [
    ("responses", {"status": 429, "type": "rate_limit_exceeded"}, "rate_limit"),  # event: error, nested object
    ("responses", {"status": 500}, "server"),  # response.failed
    ("responses", {"status": 500, "body": {"code": "server_error", "message": "boom", "param": None}}, "server"),
    ("responses", {"status": 429, "type": "insufficient_quota"}, "quota"),
    ("chat", {"status": 500}, "server"),  # data: {"error": ...}
    ("chat", {"status": 429, "type": "rate_limit_exceeded"}, "rate_limit"),
])
async def test_a_mid_stream_error_ends_the_leg_without_retry(emu: EmulatorServer, api: str,
                                                             injected: dict[str, Any], kind: str) -> None:
    emu.set_behaviour(VENDOR, reply=REPLY, tokens=6, error=injected, error_after_tokens=3)
    result, deltas = await generate(adapter(api, max_retries=2))
    error = error_of(result)
    assert error["kind"] == kind and error["status"] is None
    assert len(deltas) == 3 and REPLY.startswith("".join(deltas))
    assert len(emu.requests(VENDOR)) == 1  # a delta went out: no retry


@pytest.mark.parametrize("api", STYLES)
async def test_one_rate_limit_then_success_gives_a_result(emu: EmulatorServer, api: str) -> None:
    emu.queue(VENDOR, {"error": {"status": 429, "retry_after_s": 0.05}}, {"reply": REPLY})
    started = time.perf_counter()
    result, deltas = await generate(adapter(api, max_retries=2))
    assert not result.is_error and result.structured_content["text"] == REPLY and "".join(deltas) == REPLY
    assert time.perf_counter() - started >= 0.05  # retry-after-ms was honoured
    assert [r["outcome"] for r in emu.requests(VENDOR)] == ["error", "completed"]


async def test_retries_stop_at_max_retries(emu: EmulatorServer) -> None:
    emu.set_behaviour(VENDOR, error={"status": 503})
    result, _ = await generate(adapter(max_retries=1))
    assert error_of(result)["kind"] == "unavailable" and len(emu.requests(VENDOR)) == 2


@pytest.mark.parametrize("api", STYLES)
@pytest.mark.parametrize("behaviour", [{"hang": True}, {"hang_after_tokens": 2, "tokens": 5}])
async def test_a_hang_is_a_timeout(emu: EmulatorServer, api: str, behaviour: dict[str, Any]) -> None:
    emu.set_behaviour(VENDOR, **behaviour)
    started = time.perf_counter()
    result, deltas = await generate(adapter(api, timeout_s=0.5, max_retries=0))
    assert error_of(result)["kind"] == "timeout" and len(deltas) == behaviour.get("hang_after_tokens", 0)
    assert 0.45 <= time.perf_counter() - started < 5
    await eventually(lambda: emu.requests(VENDOR)[-1]["closed_at"])


@pytest.mark.parametrize("api", STYLES)
@pytest.mark.parametrize("behaviour", [{"reset": True}, {"reset_after_tokens": 2, "tokens": 5}])
async def test_a_reset_is_a_connection_error(emu: EmulatorServer, api: str, behaviour: dict[str, Any]) -> None:
    emu.set_behaviour(VENDOR, **behaviour)
    result, deltas = await generate(adapter(api, max_retries=0))
    assert error_of(result)["kind"] == "connection" and len(deltas) == behaviour.get("reset_after_tokens", 0)


async def test_a_refused_connection_is_a_connection_error(emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{free_port()}/openai/v1")
    result, _ = await generate(adapter(max_retries=0))
    assert error_of(result)["kind"] == "connection"


@pytest.mark.parametrize("api", STYLES)
@pytest.mark.parametrize("stop_reason", ["content_filter", "refusal"])
async def test_filtered_and_refused_replies_are_content_filter(emu: EmulatorServer, api: str,
                                                               stop_reason: str) -> None:
    emu.set_behaviour(VENDOR, reply="I can't help with that.", stop_reason=stop_reason)
    result, deltas = await generate(adapter(api))
    error = error_of(result)
    assert error["kind"] == "content_filter" and not error["retryable"]
    assert ("I can't help with that." in error["message"]) == (stop_reason == "refusal")
    assert (deltas == []) == (stop_reason == "refusal")  # a refusal is never sent as text
    assert len(emu.requests(VENDOR)) == 1


def test_retry_after_headers_most_precise_first() -> None:
    assert retry_after_s({"retry-after-ms": "1500", "retry-after": "2"}) == 1.5
    assert retry_after_s({"retry-after": "7"}) == 7.0
    assert 0 < retry_after_s({"retry-after": "Wed, 21 Oct 2099 07:28:00 GMT"})
    assert retry_after_s({"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s",
                          "x-ratelimit-remaining-requests": "5", "x-ratelimit-reset-requests": "1s"}) == 360.0
    assert retry_after_s({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "120ms"}) == 0.12
    assert retry_after_s({"x-ratelimit-reset-tokens": "6m0s"}) is None  # not the exhausted limit
    assert retry_after_s({"retry-after": "soon"}) is None


# -- structured output ------------------------------------------------------------------------------------------------

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
async def test_a_reply_that_breaks_the_schema_is_invalid_output(emu: EmulatorServer, api: str) -> None:
    emu.set_behaviour(VENDOR, reply_json={"city": "Busan", "population": "many"})
    result, _ = await generate(adapter(api), response_schema=SCHEMA)
    assert error_of(result)["kind"] == "invalid_output"


# -- models, keys, API style ------------------------------------------------------------------------------------------

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


async def test_no_key_is_auth_naming_the_variable(emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    result, _ = await generate(adapter())
    error = error_of(result)
    assert error["kind"] == "auth" and "OPENAI_API_KEY" in error["message"]
    async with Client(build_adapter_server(adapter())) as client:
        listed = await client.call_tool("list_models", {})
    assert error_of(listed)["kind"] == "auth"
    assert emu.requests(VENDOR) == []  # nothing was sent without a key


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


# -- cancellation ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("api", STYLES)
@pytest.mark.parametrize("phase", ["waiting for the first token", "mid-stream"])
async def test_cancelling_the_tool_call_closes_the_upstream_stream(emu: EmulatorServer, api: str, phase: str) -> None:
    if phase == "mid-stream":
        emu.set_behaviour(VENDOR, tokens=6, inter_token_ms=5000)
    else:
        emu.set_behaviour(VENDOR, ttft_ms=5000)
    first_delta = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        first_delta.set()

    with anyio.fail_after(20):
        async with Client(build_adapter_server(adapter(api))) as client:
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


# -- the real server process over stdio -------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "env", "path"), [
    ([], {}, PATHS["responses"]),
    (["--api", "chat"], {}, PATHS["chat"]),
    ([], {"OPENAI_API_STYLE": "chat"}, PATHS["chat"]),
], ids=["responses", "--api chat", "OPENAI_API_STYLE=chat"])
async def test_stdio_server_streams_progress_and_returns_the_result(emu: EmulatorServer, args: list[str],
                                                                    env: dict[str, str], path: str) -> None:
    emu.set_behaviour(VENDOR, reply=REPLY, tokens=5, input_tokens=77)
    deltas: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        deltas.append(message or "")

    params = StdioServerParameters(command=sys.executable, args=["-m", "llmmixer.servers.gpt_adapter", *args],
                                   env=server_env(emu, **env))
    with anyio.fail_after(30):
        async with Client(params) as client:
            result = await client.call_tool("generate", {"prompt": "hi", "model": "gpt-5"},
                                            progress_callback=on_progress)
    assert result.structured_content["text"] == REPLY and "".join(deltas) == REPLY
    assert result.structured_content["usage"] == {"input_tokens": 77, "output_tokens": 5, "reasoning_tokens": 0}
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

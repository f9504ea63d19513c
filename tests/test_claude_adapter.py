"""The Claude adapter: anthropic SDK over real HTTP to the emulator, and through real MCP (in-memory and stdio)."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

import anthropic
import anyio
import httpx2
import pytest
from adapter_support import error_of, eventually, generate
from conftest import FAKE_KEYS, server_env
from mcp import Client, StdioServerParameters

from llmmixer.servers.claude_adapter.adapter import ClaudeAdapter
from llmmixer.servers.core.adapter import AdapterSettings
from llmmixer.servers.core.mcp import build_adapter_server
from llmmixer.servers.emulators.anthropic import MODELS
from llmmixer.servers.emulators.behaviour import split_tokens
from llmmixer.servers.emulators.server import EmulatorServer

pytestmark = pytest.mark.anyio

VENDOR = "anthropic"
REPLY = "Claude says 안녕하세요, 세계! 👋🏽🚀 — 한국어 and emoji 🇰🇷 mixed."
KEY = FAKE_KEYS["ANTHROPIC_API_KEY"]


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


# -- streaming text and usage ----------------------------------------------------------------------------------------

async def test_exact_text_from_deltas_split_inside_characters_and_usage_from_the_wire(adapter: MakeAdapter,
                                                                                      emu: EmulatorServer) -> None:
    emu.set_behaviour(VENDOR, reply=REPLY, tokens=9, split_utf8=True, input_tokens=321)
    result, deltas = await generate(adapter(), system="be brief", max_tokens=50, temperature=0.2)
    body = result.structured_content
    assert not result.is_error
    assert body["text"] == REPLY and "".join(deltas) == REPLY and len(deltas) == 9
    assert body["usage"] == {"input_tokens": 321, "output_tokens": 9}
    assert body["model"] == "claude-haiku-4-5" and body["stop_reason"] == "end_turn"
    assert body["cost_usd"] == pytest.approx((321 * 1.0 + 9 * 5.0) / 1e6)
    assert body["latency_ms"] >= body["ttft_ms"] > 0
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


async def test_thinking_is_not_text_but_is_billed_as_output(adapter: MakeAdapter, emu: EmulatorServer) -> None:
    emu.set_behaviour(VENDOR, reply="The answer is 42.", tokens=3, thinking="secret chain of thought", input_tokens=5)
    result, deltas = await generate(adapter())
    body = result.structured_content
    assert body["text"] == "The answer is 42." and "".join(deltas) == body["text"]
    assert "secret" not in result.content[0].text
    thoughts = len(split_tokens("secret chain of thought"))
    assert body["usage"] == {"input_tokens": 5, "output_tokens": 3 + thoughts, "reasoning_tokens": thoughts}


async def test_max_tokens_truncates_and_reports_max_tokens(adapter: MakeAdapter, emu: EmulatorServer) -> None:
    emu.set_behaviour(VENDOR, reply="one two three four five", tokens=5)
    result, deltas = await generate(adapter(), max_tokens=2)
    assert result.structured_content["stop_reason"] == "max_tokens"
    assert len(deltas) == 2 and result.structured_content["usage"]["output_tokens"] == 2


async def test_a_refusal_is_content_filter(adapter: MakeAdapter, emu: EmulatorServer) -> None:
    emu.set_behaviour(VENDOR, stop_reason="refusal")
    result, _ = await generate(adapter())
    assert error_of(result)["kind"] == "content_filter" and len(emu.requests(VENDOR)) == 1


# -- errors ----------------------------------------------------------------------------------------------------------

SPEND_LIMIT = {"type": "error", "request_id": "req_011CSpend",
               "error": {"type": "rate_limit_error", "message": "You have reached your specified API usage limits.",
                         "details": {"error_code": "enforced_spend_limit_reached"}}}


@pytest.mark.parametrize(
    ("injected", "kind", "retry_after_s"),
    [
        ({"status": 400, "type": "prompt_too_long"}, "context_length", None),
        ({"status": 400, "message": "prompt is too long: 312000 tokens > 200000 maximum"}, "context_length", None),
        ({"status": 400}, "bad_request", None),
        ({"status": 401}, "auth", None),
        ({"status": 402, "type": "billing_error"}, "quota", None),
        ({"status": 403}, "permission", None),
        ({"status": 404, "message": "model: claude-nope"}, "not_found", None),
        ({"status": 413, "type": "request_too_large"}, "bad_request", None),
        ({"status": 429, "retry_after_s": 12}, "rate_limit", 12.0),
        ({"status": 429}, "rate_limit", None),
        ({"status": 429, "headers": {"retry-after-ms": "1500", "retry-after": "2"}}, "rate_limit", 1.5),
        ({"status": 429, "body": SPEND_LIMIT}, "quota", None),
        ({"status": 500}, "server", None),
        ({"status": 502}, "server", None),
        ({"status": 503}, "unavailable", None),
        ({"status": 504}, "timeout", None),
        ({"status": 529}, "overloaded", None),
        ({"type": "overloaded_error"}, "overloaded", None),
    ],
    ids=lambda value: json.dumps(value)[:48] if isinstance(value, dict) else str(value),
)
async def test_every_error_body_maps_to_the_taxonomy(adapter: MakeAdapter, emu: EmulatorServer,
                                                     injected: dict[str, Any], kind: str,
                                                     retry_after_s: float | None,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    emu.set_behaviour(VENDOR, error=injected)
    caplog.set_level(logging.DEBUG)
    result, deltas = await generate(adapter(max_retries=0))
    error = error_of(result)
    assert (error["kind"], error["retry_after_s"]) == (kind, retry_after_s)
    assert error["vendor"] == "anthropic" and error["status"] == injected.get("status", 529) and not deltas
    assert error["retryable"] == (kind in {"rate_limit", "server", "unavailable", "timeout", "overloaded"})
    assert error["details"]["request_id"].startswith("req_")
    assert KEY not in result.content[0].text and KEY not in caplog.text
    if kind == "auth":
        assert "ANTHROPIC_API_KEY" in error["message"]


async def test_mid_stream_overloaded_error_event_ends_the_leg_without_retry(adapter: MakeAdapter,
                                                                            emu: EmulatorServer) -> None:
    emu.set_behaviour(VENDOR, reply=REPLY, tokens=6, error={"status": 529}, error_after_tokens=3)
    result, deltas = await generate(adapter(max_retries=2))
    error = error_of(result)
    assert error["kind"] == "overloaded" and error["retryable"] and "Overloaded" in error["message"]
    assert len(deltas) == 3 and "".join(deltas) == REPLY[: len("".join(deltas))]
    assert len(emu.requests(VENDOR)) == 1  # a delta went out: no retry


async def test_an_overloaded_error_before_the_first_delta_is_retried(adapter: MakeAdapter, emu: EmulatorServer) -> None:
    emu.queue(VENDOR, {"error": {"status": 529}, "error_after_tokens": 0, "tokens": 3}, {"reply": REPLY})
    result, deltas = await generate(adapter(max_retries=1))
    assert result.structured_content["text"] == REPLY == "".join(deltas)
    assert [r["outcome"] for r in emu.requests(VENDOR)] == ["error", "completed"]


async def test_one_rate_limit_then_success_gives_a_result(adapter: MakeAdapter, emu: EmulatorServer) -> None:
    emu.queue(VENDOR, {"error": {"status": 429, "retry_after_s": 0.2}}, {"reply": REPLY})
    started = time.perf_counter()
    result, deltas = await generate(adapter(max_retries=2))
    assert not result.is_error and result.structured_content["text"] == REPLY == "".join(deltas)
    assert time.perf_counter() - started >= 0.2  # retry-after was honoured
    assert [r["outcome"] for r in emu.requests(VENDOR)] == ["error", "completed"]


async def test_retries_stop_at_max_retries(adapter: MakeAdapter, emu: EmulatorServer) -> None:
    emu.set_behaviour(VENDOR, error={"status": 500})
    result, _ = await generate(adapter(max_retries=1))
    assert error_of(result)["kind"] == "server" and len(emu.requests(VENDOR)) == 2


@pytest.mark.parametrize("behaviour", [{"hang": True}, {"hang_after_tokens": 2, "tokens": 5}])
async def test_a_hang_is_a_timeout(adapter: MakeAdapter, emu: EmulatorServer, behaviour: dict[str, Any]) -> None:
    emu.set_behaviour(VENDOR, **behaviour)
    started = time.perf_counter()
    result, deltas = await generate(adapter(timeout_s=0.5, max_retries=0))
    assert error_of(result)["kind"] == "timeout" and len(deltas) == behaviour.get("hang_after_tokens", 0)
    assert 0.45 <= time.perf_counter() - started < 5
    await eventually(lambda: emu.requests(VENDOR)[-1]["closed_at"])


@pytest.mark.parametrize("behaviour", [{"reset": True}, {"reset_after_tokens": 2, "tokens": 5}])
async def test_a_reset_is_a_connection_error(adapter: MakeAdapter,
                                             emu: EmulatorServer, behaviour: dict[str, Any]) -> None:
    emu.set_behaviour(VENDOR, **behaviour)
    result, deltas = await generate(adapter(max_retries=0))
    assert error_of(result)["kind"] == "connection" and len(deltas) == behaviour.get("reset_after_tokens", 0)


async def test_a_refused_connection_is_a_connection_error(adapter: MakeAdapter,
                                                          emu: EmulatorServer,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from llmmixer.servers.emulators.server import free_port

    monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{free_port()}/anthropic")
    result, _ = await generate(adapter(max_retries=0))
    assert error_of(result)["kind"] == "connection"


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


# -- structured output ------------------------------------------------------------------------------------------------

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
          "required": ["city", "population"], "additionalProperties": False}


async def test_structured_output_uses_output_config_json_schema_and_returns_data(adapter: MakeAdapter,
                                                                                 emu: EmulatorServer) -> None:
    emu.set_behaviour(VENDOR, reply_json={"city": "서울", "population": 9_400_000}, tokens=4)
    result, _ = await generate(adapter(), response_schema=SCHEMA)
    assert result.structured_content["data"] == {"city": "서울", "population": 9_400_000}
    sent = emu.requests(VENDOR)[-1]["body"]
    assert sent["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}


async def test_without_reply_json_the_emulator_answers_a_valid_object(adapter: MakeAdapter,
                                                                      emu: EmulatorServer) -> None:
    result, _ = await generate(adapter(), response_schema=SCHEMA)
    assert set(result.structured_content["data"]) == {"city", "population"}


async def test_a_reply_that_breaks_the_schema_is_invalid_output(adapter: MakeAdapter, emu: EmulatorServer) -> None:
    emu.set_behaviour(VENDOR, reply_json={"city": "Busan", "population": "many"})
    result, _ = await generate(adapter(), response_schema=SCHEMA)
    assert error_of(result)["kind"] == "invalid_output"


# -- models, keys ----------------------------------------------------------------------------------------------------

async def test_list_models_from_the_models_endpoint(adapter: MakeAdapter, emu: EmulatorServer) -> None:
    with anyio.fail_after(10):
        async with Client(build_adapter_server(adapter())) as client:
            result = await client.call_tool("list_models", {})
    models = result.structured_content["models"]
    assert models == [{"id": m["id"], "display_name": m["display_name"]} for m in MODELS]
    assert {"id": "claude-sonnet-4-6", "display_name": "Claude Sonnet 4.6"} in models
    assert emu.requests(VENDOR)[-1]["path"] == "/anthropic/v1/models"


async def test_no_key_is_auth_naming_the_variable(adapter: MakeAdapter,
                                                  emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    result, _ = await generate(adapter())
    error = error_of(result)
    assert error["kind"] == "auth" and "ANTHROPIC_API_KEY" in error["message"]
    async with Client(build_adapter_server(adapter())) as client:
        listed = await client.call_tool("list_models", {})
    assert error_of(listed)["kind"] == "auth"
    assert emu.requests(VENDOR) == []  # nothing was sent without a key


async def test_a_rejected_key_is_auth_and_the_key_is_never_echoed(adapter: MakeAdapter, emu: EmulatorServer,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    emu.set_behaviour(VENDOR, error={"status": 401})
    claude = adapter(max_retries=0)
    result, _ = await generate(claude)
    async with Client(build_adapter_server(claude)) as client:
        listed = await client.call_tool("list_models", {})
    for answer in (result, listed):
        error = error_of(answer)
        assert error["kind"] == "auth" and "ANTHROPIC_API_KEY" in error["message"]
        assert KEY not in answer.content[0].text
    assert KEY not in caplog.text


# -- cancellation ---------------------------------------------------------------------------------------------------

async def _cancel_mid_call(client: Client, emu: EmulatorServer, phase: str) -> float:
    """Start ``generate``, cancel it in ``phase``; the wall-clock time of the cancel."""
    first_delta = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        first_delta.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(partial(client.call_tool, "generate", {"prompt": "hi"}, progress_callback=on_progress))
        if phase == "mid-stream":
            await first_delta.wait()
        else:
            await eventually(lambda: emu.requests(VENDOR))
        cancelled_at = time.time()
        tg.cancel_scope.cancel()
    return cancelled_at


def _slow(emu: EmulatorServer, phase: str) -> None:
    if phase == "mid-stream":
        emu.set_behaviour(VENDOR, tokens=6, inter_token_ms=5000)
    else:
        emu.set_behaviour(VENDOR, ttft_ms=5000)


@pytest.mark.parametrize("phase", ["waiting for the first token", "mid-stream"])
async def test_cancelling_the_tool_call_closes_the_upstream_stream(adapter: MakeAdapter,
                                                                   emu: EmulatorServer, phase: str) -> None:
    _slow(emu, phase)
    with anyio.fail_after(20):
        async with Client(build_adapter_server(adapter())) as client:
            cancelled_at = await _cancel_mid_call(client, emu, phase)
            records = await eventually(lambda: [r for r in emu.requests(VENDOR) if r["closed_at"]])
            assert records[0]["outcome"] == "client_closed"
            assert records[0]["closed_at"] - cancelled_at < 0.05
            emu.set_behaviour(VENDOR, reply="still here")
            again = await client.call_tool("generate", {"prompt": "again"})
            assert again.structured_content["text"] == "still here"


# -- the real server process over stdio -------------------------------------------------------------------------------

def _stdio(emu: EmulatorServer, *args: str) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "llmmixer.servers.claude_adapter", *args],
                                 env=server_env(emu))


async def test_stdio_server_streams_progress_and_returns_the_result(emu: EmulatorServer) -> None:
    emu.set_behaviour(VENDOR, reply=REPLY, tokens=5, input_tokens=77)
    deltas: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        deltas.append(message or "")

    with anyio.fail_after(30):
        async with Client(_stdio(emu, "--model", "claude-sonnet-4-6")) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            result = await client.call_tool("generate", {"prompt": "hi"}, progress_callback=on_progress)
    assert tools == {"generate", "list_models"}
    assert result.structured_content["text"] == REPLY and "".join(deltas) == REPLY
    assert result.structured_content["usage"] == {"input_tokens": 77, "output_tokens": 5}
    assert result.structured_content["model"] == "claude-sonnet-4-6"
    assert result.structured_content["cost_usd"] is None  # no known price is never a guess


async def test_stdio_cancel_closes_the_upstream_and_the_server_stays_up(emu: EmulatorServer) -> None:
    _slow(emu, "mid-stream")
    with anyio.fail_after(30):
        async with Client(_stdio(emu)) as client:
            cancelled_at = await _cancel_mid_call(client, emu, "mid-stream")
            records = await eventually(lambda: [r for r in emu.requests(VENDOR) if r["closed_at"]])
            assert records[0]["outcome"] == "client_closed"
            assert records[0]["closed_at"] - cancelled_at < 0.05
            emu.set_behaviour(VENDOR, reply="still here")
            again = await client.call_tool("generate", {"prompt": "again"})
            assert again.structured_content["text"] == "still here"


async def test_stdio_server_without_a_key_starts_and_answers_auth(emu: EmulatorServer) -> None:
    env = server_env(emu, keys=False)
    params = StdioServerParameters(command=sys.executable, args=["-m", "llmmixer.servers.claude_adapter"], env=env)
    with anyio.fail_after(30):
        async with Client(params) as client:
            result = await client.call_tool("generate", {"prompt": "hi"})
    error = error_of(result)
    assert error["kind"] == "auth" and "ANTHROPIC_API_KEY" in error["message"]


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

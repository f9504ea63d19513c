"""The adapter contract, once, for every vendor: each scenario runs on Claude, GPT (Responses and Chat) and Gemini,
their official SDKs over real HTTP to the emulators, through real MCP (in-memory, and the server process over
stdio). What differs per vendor is data in tests/adapter_vendors.py; wire checks of one vendor stay in its own file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

import anyio
import pytest
from adapter_support import error_of, eventually, generate
from adapter_vendors import CASE_IDS, CASES, VendorCase, cases_with
from conftest import server_env
from mcp import Client, StdioServerParameters

from llmmixer.servers.core.adapter import BaseAdapter, GenerateRequest, TextDelta
from llmmixer.servers.core.mcp import build_adapter_server
from llmmixer.servers.emulators.behaviour import split_tokens
from llmmixer.servers.emulators.server import EmulatorServer, free_port

pytestmark = pytest.mark.anyio

REPLY = "It says 안녕하세요, 세계! 👋🏽🚀 — 한국어 and emoji 🇰🇷 mixed."
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
          "required": ["city", "population"], "additionalProperties": False}

Make = Callable[..., BaseAdapter]


@pytest.fixture(params=CASES, ids=CASE_IDS)
def case(request: pytest.FixtureRequest) -> VendorCase:
    return request.param


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    """``make(case, **settings)`` builds an adapter (fast backoff); SDK clients close in the test's own loop."""
    made: list[BaseAdapter] = []

    def build(case: VendorCase, **settings: Any) -> BaseAdapter:
        made.append(case.adapter(**settings))
        return made[-1]

    yield build
    for adapter in made:
        close = getattr(adapter, "aclose", None)  # not every adapter holds a connection pool
        if close is not None:
            await close()


def _usage(body: dict[str, Any]) -> dict[str, Any]:
    """Input and output tokens (``reasoning_tokens`` is there only when the vendor reports it)."""
    return {key: body["usage"][key] for key in ("input_tokens", "output_tokens")}


# -- streaming text and usage ----------------------------------------------------------------------------------------

async def test_exact_text_from_deltas_split_inside_characters_and_usage_from_the_wire(
        case: VendorCase, make: Make, emu: EmulatorServer) -> None:
    emu.set_behaviour(case.emulator, reply=REPLY, tokens=9, split_utf8=True, input_tokens=321)
    result, deltas = await generate(make(case), system="be brief", max_tokens=50, temperature=0.2)
    body = result.structured_content
    assert not result.is_error
    assert body["text"] == REPLY and "".join(deltas) == REPLY and len(deltas) == 9
    assert _usage(body) == {"input_tokens": 321, "output_tokens": 9}
    assert body["usage"].get("reasoning_tokens") in (None, 0)  # nothing reasoned (OpenAI says 0, others nothing)
    assert body["model"] == case.default_model and body["stop_reason"] == "end_turn"
    price_in, price_out = case.price_per_mtok
    assert body["cost_usd"] == pytest.approx((321 * price_in + 9 * price_out) / 1e6)
    assert body["latency_ms"] >= body["ttft_ms"] > 0


async def test_thinking_is_not_text_but_is_billed_as_output(case: VendorCase, make: Make,
                                                            emu: EmulatorServer) -> None:
    emu.set_behaviour(case.emulator, reply="The answer is 42.", tokens=3, thinking="secret chain of thought",
                      input_tokens=5)
    result, deltas = await generate(make(case))
    body = result.structured_content
    assert body["text"] == "The answer is 42." and "".join(deltas) == body["text"]
    assert "secret" not in result.content[0].text
    thoughts = len(split_tokens("secret chain of thought"))
    assert body["usage"] == {"input_tokens": 5, "output_tokens": 3 + thoughts, "reasoning_tokens": thoughts}


async def test_max_tokens_truncates_and_reports_max_tokens(case: VendorCase, make: Make,
                                                           emu: EmulatorServer) -> None:
    emu.set_behaviour(case.emulator, reply="one two three four five", tokens=5)
    result, deltas = await generate(make(case), max_tokens=2)
    assert result.structured_content["stop_reason"] == "max_tokens"
    assert len(deltas) == 2 and result.structured_content["usage"]["output_tokens"] == 2


@pytest.mark.parametrize(("chosen", "stop_reason"), cases_with("refusals"))
async def test_refusals_and_safety_blocks_are_content_filter(chosen: VendorCase, stop_reason: str, make: Make,
                                                             emu: EmulatorServer) -> None:
    emu.set_behaviour(chosen.emulator, stop_reason=stop_reason)
    result, _ = await generate(make(chosen))
    error = error_of(result)
    assert error["kind"] == "content_filter" and not error["retryable"]
    assert len(emu.requests(chosen.emulator)) == 1


# -- errors ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("chosen", "expected"), cases_with("errors"))
async def test_every_error_body_maps_to_the_taxonomy(chosen: VendorCase, expected: Any, make: Make,
                                                     emu: EmulatorServer, caplog: pytest.LogCaptureFixture) -> None:
    injected, kind, retry_after_s = expected
    emu.set_behaviour(chosen.emulator, error=injected)
    caplog.set_level(logging.DEBUG)
    result, deltas = await generate(make(chosen, max_retries=0))
    error = error_of(result)
    assert (error["kind"], error["retry_after_s"]) == (kind, retry_after_s)
    assert error["vendor"] == chosen.error_vendor and error["status"] == injected.get("status", 529)
    assert not deltas and error["retryable"] == (kind in chosen.retryable)
    assert chosen.key not in result.content[0].text and chosen.key not in caplog.text
    if kind == "auth":
        assert chosen.key_var in error["message"]


@pytest.mark.parametrize(("chosen", "expected"), cases_with("mid_stream_errors"))
async def test_a_mid_stream_error_ends_the_leg_without_retry(chosen: VendorCase, expected: Any, make: Make,
                                                             emu: EmulatorServer) -> None:
    injected, kind, status = expected
    emu.set_behaviour(chosen.emulator, reply=REPLY, tokens=6, error=injected, error_after_tokens=3)
    result, deltas = await generate(make(chosen, max_retries=2))
    error = error_of(result)
    assert (error["kind"], error["status"]) == (kind, status)
    assert len(deltas) == 3 and REPLY.startswith("".join(deltas))
    assert len(emu.requests(chosen.emulator)) == 1  # a delta went out: no retry


async def test_one_rate_limit_then_success_gives_a_result(case: VendorCase, make: Make, emu: EmulatorServer) -> None:
    emu.queue(case.emulator, {"error": {"status": 429, "retry_after_s": 0.05}}, {"reply": REPLY})
    started = time.perf_counter()
    result, deltas = await generate(make(case, max_retries=2))
    assert not result.is_error and result.structured_content["text"] == REPLY == "".join(deltas)
    assert time.perf_counter() - started >= 0.05  # the vendor's retry-after was honoured
    assert [r["outcome"] for r in emu.requests(case.emulator)] == ["error", "completed"]


async def test_retries_stop_at_max_retries(case: VendorCase, make: Make, emu: EmulatorServer) -> None:
    emu.set_behaviour(case.emulator, error={"status": 503})
    result, _ = await generate(make(case, max_retries=1))
    assert error_of(result)["kind"] == "unavailable" and len(emu.requests(case.emulator)) == 2


@pytest.mark.parametrize("behaviour", [{"hang": True}, {"hang_after_tokens": 2, "tokens": 5}],
                         ids=["before the first token", "mid-stream"])
async def test_a_hang_is_a_timeout(case: VendorCase, make: Make, emu: EmulatorServer,
                                   behaviour: dict[str, Any]) -> None:
    emu.set_behaviour(case.emulator, **behaviour)
    result, deltas = await generate(make(case, timeout_s=0.5, max_retries=0))
    assert error_of(result)["kind"] == "timeout" and len(deltas) == behaviour.get("hang_after_tokens", 0)
    await eventually(lambda: emu.requests(case.emulator)[-1]["closed_at"])


@pytest.mark.parametrize("behaviour", [{"reset": True}, {"reset_after_tokens": 2, "tokens": 5}],
                         ids=["before the first token", "mid-stream"])
async def test_a_reset_is_a_connection_error(case: VendorCase, make: Make, emu: EmulatorServer,
                                             behaviour: dict[str, Any]) -> None:
    emu.set_behaviour(case.emulator, **behaviour)
    result, deltas = await generate(make(case, max_retries=0))
    assert error_of(result)["kind"] == "connection" and len(deltas) == behaviour.get("reset_after_tokens", 0)


async def test_a_refused_connection_is_a_connection_error(case: VendorCase, make: Make, emu: EmulatorServer,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(case.base_url_var, f"http://127.0.0.1:{free_port()}{case.base_path}")
    result, _ = await generate(make(case, max_retries=0))
    assert error_of(result)["kind"] == "connection"


# -- structured output ------------------------------------------------------------------------------------------------

async def test_structured_output_returns_the_parsed_data(case: VendorCase, make: Make, emu: EmulatorServer) -> None:
    emu.set_behaviour(case.emulator, reply_json={"city": "서울", "population": 9_400_000}, tokens=4)
    result, _ = await generate(make(case), response_schema=SCHEMA)
    assert result.structured_content["data"] == {"city": "서울", "population": 9_400_000}


async def test_without_reply_json_the_emulator_answers_a_valid_object(case: VendorCase, make: Make,
                                                                      emu: EmulatorServer) -> None:
    result, _ = await generate(make(case), response_schema=SCHEMA)
    assert set(result.structured_content["data"]) == {"city", "population"}


async def test_a_reply_that_breaks_the_schema_is_invalid_output(case: VendorCase, make: Make,
                                                                emu: EmulatorServer) -> None:
    emu.set_behaviour(case.emulator, reply_json={"city": "Busan", "population": "many"})
    result, _ = await generate(make(case), response_schema=SCHEMA)
    assert error_of(result)["kind"] == "invalid_output"


# -- keys ------------------------------------------------------------------------------------------------------------

async def test_no_key_is_auth_naming_the_variable(case: VendorCase, make: Make, emu: EmulatorServer,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(case.key_var)
    result, _ = await generate(make(case))
    error = error_of(result)
    assert error["kind"] == "auth" and case.key_var in error["message"]
    async with Client(build_adapter_server(make(case))) as client:
        listed = await client.call_tool("list_models", {})
    assert error_of(listed)["kind"] == "auth"
    assert emu.requests(case.emulator) == []  # nothing was sent without a key


async def test_a_rejected_key_is_auth_and_the_key_is_never_echoed(case: VendorCase, make: Make, emu: EmulatorServer,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    emu.set_behaviour(case.emulator, error={"status": 401})
    adapter = make(case, max_retries=0)
    result, _ = await generate(adapter)
    async with Client(build_adapter_server(adapter)) as client:
        listed = await client.call_tool("list_models", {})
    for answer in (result, listed):
        error = error_of(answer)
        assert error["kind"] == "auth" and case.key_var in error["message"]
        assert case.key not in answer.content[0].text
    assert case.key not in caplog.text


# -- cancellation ---------------------------------------------------------------------------------------------------

NEVER_MS = 600_000  # longer than any test runs: the upstream can only end early by being closed


def _slow(case: VendorCase, emu: EmulatorServer, phase: str) -> None:
    if phase == "mid-stream":
        emu.set_behaviour(case.emulator, tokens=6, inter_token_ms=NEVER_MS)
    else:
        emu.set_behaviour(case.emulator, ttft_ms=NEVER_MS)


async def _cancel_mid_call(case: VendorCase, client: Client, emu: EmulatorServer, phase: str) -> float:
    """Start ``generate``, cancel it in ``phase``; the wall-clock time of the cancel."""
    first_delta = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        first_delta.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(partial(client.call_tool, "generate", {"prompt": "hi"}, progress_callback=on_progress))
        if phase == "mid-stream":
            await first_delta.wait()
        else:
            await eventually(lambda: emu.requests(case.emulator))
        cancelled_at = time.time()
        tg.cancel_scope.cancel()
    return cancelled_at


async def _closed_at_once_and_still_serving(case: VendorCase, client: Client, emu: EmulatorServer,
                                            cancelled_at: float) -> None:
    # Closed by us, after the cancel: with NEVER_MS the vendor would have held it open for minutes.
    records = await eventually(lambda: [r for r in emu.requests(case.emulator) if r["closed_at"]])
    assert records[0]["outcome"] == "client_closed"
    assert records[0]["closed_at"] >= cancelled_at
    emu.set_behaviour(case.emulator, reply="still here")
    again = await client.call_tool("generate", {"prompt": "again"})
    assert again.structured_content["text"] == "still here"


@pytest.mark.parametrize("phase", ["waiting for the first token", "mid-stream"])
async def test_cancelling_the_tool_call_closes_the_upstream_stream(case: VendorCase, make: Make,
                                                                   emu: EmulatorServer, phase: str) -> None:
    _slow(case, emu, phase)
    with anyio.fail_after(20):
        async with Client(build_adapter_server(make(case))) as client:
            cancelled_at = await _cancel_mid_call(case, client, emu, phase)
            await _closed_at_once_and_still_serving(case, client, emu, cancelled_at)


async def test_an_abandoned_stream_closes_the_upstream_at_once(case: VendorCase, make: Make,
                                                               emu: EmulatorServer) -> None:
    """A consumer that stops reading (closes the generator at a yield) must not leave the SDK's socket open."""
    _slow(case, emu, "mid-stream")
    stream = make(case).stream(GenerateRequest(prompt="hi"))
    with anyio.fail_after(10):
        assert isinstance(await stream.__anext__(), TextDelta)  # type: ignore[attr-defined]
        abandoned_at = time.time()
        await stream.aclose()  # type: ignore[attr-defined]
        record = await eventually(lambda: [r for r in emu.requests(case.emulator) if r["closed_at"]])
    assert record[0]["outcome"] == "client_closed" and record[0]["closed_at"] >= abandoned_at


# -- the real server process over stdio -------------------------------------------------------------------------------

def _stdio(case: VendorCase, emu: EmulatorServer, *args: str, keys: bool = True) -> StdioServerParameters:
    import sys

    return StdioServerParameters(command=sys.executable, args=[*case.argv(), *args], env=server_env(emu, keys=keys))


@pytest.mark.e2e
async def test_stdio_server_streams_progress_and_returns_the_result(case: VendorCase, emu: EmulatorServer) -> None:
    emu.set_behaviour(case.emulator, reply=REPLY, tokens=5, input_tokens=77)
    deltas: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        deltas.append(message or "")

    with anyio.fail_after(30):
        async with Client(_stdio(case, emu)) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            result = await client.call_tool("generate", {"prompt": "hi"}, progress_callback=on_progress)
    assert tools == {"generate", "list_models"}
    assert result.structured_content["text"] == REPLY and "".join(deltas) == REPLY
    assert _usage(result.structured_content) == {"input_tokens": 77, "output_tokens": 5}
    assert result.structured_content["model"] == case.default_model


@pytest.mark.e2e
async def test_stdio_cancel_closes_the_upstream_and_the_server_stays_up(case: VendorCase,
                                                                        emu: EmulatorServer) -> None:
    _slow(case, emu, "mid-stream")
    with anyio.fail_after(30):
        async with Client(_stdio(case, emu)) as client:
            cancelled_at = await _cancel_mid_call(case, client, emu, "mid-stream")
            await _closed_at_once_and_still_serving(case, client, emu, cancelled_at)


@pytest.mark.e2e
async def test_stdio_server_without_a_key_starts_and_answers_auth(case: VendorCase, emu: EmulatorServer) -> None:
    with anyio.fail_after(30):
        async with Client(_stdio(case, emu, keys=False)) as client:
            result = await client.call_tool("generate", {"prompt": "hi"})
    error = error_of(result)
    assert error["kind"] == "auth" and case.key_var in error["message"]
    assert emu.requests(case.emulator) == []

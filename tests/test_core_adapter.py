"""BaseAdapter's vendor-free behaviour, driven through the real MCP server with a scripted in-test adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from mcp import Client

from llmmixer.servers.core import errors
from llmmixer.servers.core.adapter import AdapterSettings, BaseAdapter, Completion, GenerateRequest, TextDelta, Usage
from llmmixer.servers.core.mcp import build_adapter_server
from llmmixer.servers.core.results import result_payload

pytestmark = pytest.mark.anyio


class ScriptedAdapter(BaseAdapter):
    """Each call plays the next script: a list of text pieces, optionally ending in an error to raise."""

    vendor = "scripted"
    source = "scripted"
    key_env_vars = ("SCRIPTED_API_KEY",)
    default_model = "gpt-5-mini"  # a priced model, so cost is computed

    def __init__(self, scripts: list[list[Any]], settings: AdapterSettings | None = None) -> None:
        super().__init__(settings or AdapterSettings(backoff_base_s=0.001))
        self.scripts = scripts
        self.calls = 0

    def transform_messages(self, request: GenerateRequest, model: str) -> dict[str, Any]:
        return {"model": model, "turns": [m.model_dump() for m in request.conversation()]}

    async def call_model(self, payload: dict[str, Any], request: GenerateRequest, model: str
                         ) -> AsyncIterator[TextDelta | Completion]:
        script = self.scripts[self.calls]
        self.calls += 1
        for step in script:
            if isinstance(step, Exception):
                raise step
            yield TextDelta(step)
        yield Completion(model=model, stop_reason="end_turn", usage=Usage(input_tokens=10, output_tokens=len(script)))

    async def list_models(self) -> list[dict[str, Any]]:
        return [{"id": "gpt-5-mini", "display_name": "GPT-5 mini"}]


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCRIPTED_API_KEY", "sk-secret-value")


async def call(adapter: BaseAdapter, **arguments: Any) -> tuple[Any, list[str]]:
    deltas: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        deltas.append(message or "")

    with anyio.fail_after(5):
        async with Client(build_adapter_server(adapter)) as client:
            result = await client.call_tool("generate", {"prompt": "hi", **arguments}, progress_callback=on_progress)
    return result, deltas


async def test_deltas_stream_as_progress_and_the_result_holds_the_whole_text() -> None:
    result, deltas = await call(ScriptedAdapter([["안녕", "하세요 ", "👋🏽"]]))
    assert not result.is_error
    assert deltas == ["안녕", "하세요 ", "👋🏽"]
    body = result.structured_content
    assert body["text"] == "안녕하세요 👋🏽"
    assert body["usage"] == {"input_tokens": 10, "output_tokens": 3}
    assert body["cost_usd"] == pytest.approx((10 * 0.25 + 3 * 2.0) / 1e6)
    assert body["ttft_ms"] is not None and body["latency_ms"] >= body["ttft_ms"]


async def test_a_retryable_error_before_the_first_delta_is_retried() -> None:
    adapter = ScriptedAdapter([[errors.RateLimitError("slow down", retry_after_s=0.01)], ["ok"]])
    result, _ = await call(adapter)
    assert not result.is_error and result.structured_content["text"] == "ok"
    assert adapter.calls == 2


async def test_no_retry_once_a_delta_went_out() -> None:
    adapter = ScriptedAdapter([["partial", errors.OverloadedError("busy")], ["never"]])
    result, deltas = await call(adapter)
    assert result.is_error and result_payload(result)["error"]["kind"] == "overloaded"
    assert deltas == ["partial"] and adapter.calls == 1


async def test_retries_stop_at_max_retries() -> None:
    adapter = ScriptedAdapter([[errors.ServerError("500")]] * 5, AdapterSettings(max_retries=1, backoff_base_s=0.001))
    result, _ = await call(adapter)
    assert result_payload(result)["error"]["kind"] == "server"
    assert adapter.calls == 2


async def test_non_retryable_errors_are_not_retried() -> None:
    adapter = ScriptedAdapter([[errors.AuthError("bad key")], ["never"]])
    result, _ = await call(adapter)
    assert result_payload(result)["error"]["kind"] == "auth" and adapter.calls == 1


@pytest.mark.parametrize(
    "arguments",
    [{"prompt": ""}, {"prompt": "   "}, {"prompt": 5}, {"max_tokens": "many"}, {"temperature": 9},
     {"messages": [{"role": "wizard", "content": "x"}]}, {"response_schema": {"type": "nonsense"}},
     {"prompt": "x" * 2_000}],
)
async def test_bad_input_is_invalid_input_and_the_server_stays_up(arguments: dict[str, Any]) -> None:
    adapter = ScriptedAdapter([["ok"]], AdapterSettings(max_prompt_bytes=1_000))
    async with Client(build_adapter_server(adapter)) as client:
        bad = await client.call_tool("generate", {"prompt": "hi", **arguments})
        assert bad.is_error and result_payload(bad)["error"]["kind"] == "invalid_input"
        good = await client.call_tool("generate", {"prompt": "hi"})
        assert not good.is_error and good.structured_content["text"] == "ok"


async def test_missing_key_names_the_variable_and_never_leaks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCRIPTED_API_KEY")
    result, _ = await call(ScriptedAdapter([["never"]]))
    error = result_payload(result)["error"]
    assert error["kind"] == "auth" and "SCRIPTED_API_KEY" in error["message"]


async def test_structured_output_is_parsed_and_validated() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    result, _ = await call(ScriptedAdapter([['{"n":', ' 4}']]), response_schema=schema)
    assert result.structured_content["data"] == {"n": 4}
    result, _ = await call(ScriptedAdapter([['{"n": "four"}']]), response_schema=schema)
    assert result_payload(result)["error"]["kind"] == "invalid_output"


async def test_every_tool_declares_input_and_output_schemas() -> None:
    async with Client(build_adapter_server(ScriptedAdapter([]))) as client:
        tools = (await client.list_tools()).tools
    assert {t.name for t in tools} == {"generate", "list_models"}
    assert all(t.input_schema and t.output_schema for t in tools)

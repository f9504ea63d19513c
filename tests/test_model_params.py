"""Reasoning levels, model-aware parameters and images: each adapter's native wire shape, checked at the emulator
(which refuses what the live API refuses), through the official SDKs over real HTTP."""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from adapter_support import error_of
from adapter_support import generate as generate_once

from llmmixer.servers.claude_adapter.adapter import ClaudeAdapter
from llmmixer.servers.core import pricing
from llmmixer.servers.core.adapter import AdapterSettings, BaseAdapter
from llmmixer.servers.emulators.behaviour import split_tokens
from llmmixer.servers.gemini_adapter.adapter import GeminiAdapter
from llmmixer.servers.gpt_adapter.adapter import GPTAdapter

pytestmark = pytest.mark.anyio

THOUGHT = "first weigh the options, then answer"
THOUGHT_TOKENS = len(split_tokens(THOUGHT))


def png_bytes() -> bytes:
    """A real 1×1 PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
            + chunk(b"IEND", b""))


GIF = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"


def make(cls: type[BaseAdapter], **kwargs: Any) -> BaseAdapter:
    return cls(AdapterSettings(backoff_base_s=0.01), **kwargs)


async def generate(adapter: BaseAdapter, **arguments: Any) -> tuple[Any, list[str]]:
    """One call, then the adapter's SDK client closed in this event loop."""
    try:
        return await generate_once(adapter, **arguments)
    finally:
        close = getattr(adapter, "aclose", None)
        if close is not None:
            await close()


def camel(value: Any) -> Any:
    """Gemini's proto JSON names, whichever spelling the SDK used (the API reads both)."""
    if isinstance(value, dict):
        return {k.split("_")[0] + "".join(p.title() for p in k.split("_")[1:]): camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel(v) for v in value]
    return value


def last_body(emu: Any, vendor: str) -> dict[str, Any]:
    return emu.requests(vendor)[-1]["body"]


# -- reasoning ---------------------------------------------------------------------------------------------------------

async def test_claude_reasoning_is_a_thinking_budget_with_thinking_tokens_in_usage(emu):
    emu.set_behaviour("anthropic", thinking=THOUGHT, reply="ok", tokens=2, input_tokens=10)
    result, deltas = await generate(make(ClaudeAdapter), reasoning="medium", max_tokens=100, temperature=0.3)
    body = result.structured_content
    assert not result.is_error, body
    sent = last_body(emu, "anthropic")
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert sent["max_tokens"] == 100 + 4096  # the budget comes on top of the answer's own limit
    assert "temperature" not in sent and [d["param"] for d in body["dropped"]] == ["temperature"]
    assert "".join(deltas) == "ok"  # thinking is not the answer
    assert body["usage"] == {"input_tokens": 10, "output_tokens": 2 + THOUGHT_TOKENS,
                             "reasoning_tokens": THOUGHT_TOKENS}
    assert body["cost_usd"] == pricing.cost_usd("claude-haiku-4-5", 10, 2 + THOUGHT_TOKENS)

    await generate(make(ClaudeAdapter), reasoning="high", model="claude-sonnet-4-6")
    sent = last_body(emu, "anthropic")
    assert sent["thinking"] == {"type": "adaptive"} and sent["output_config"] == {"effort": "high"}
    await generate(make(ClaudeAdapter), reasoning="off")
    assert last_body(emu, "anthropic")["thinking"] == {"type": "disabled"}


async def test_claude_emulator_refuses_a_budget_the_api_refuses(emu):
    import anthropic

    client = anthropic.AsyncAnthropic(max_retries=0)
    with pytest.raises(anthropic.BadRequestError, match="max_tokens` must be greater"):
        await client.messages.create(model="claude-haiku-4-5", max_tokens=2000, messages=[
            {"role": "user", "content": "hi"}], thinking={"type": "enabled", "budget_tokens": 4096})
    with pytest.raises(anthropic.BadRequestError, match="greater than or equal to 1024"):
        await client.messages.create(model="claude-haiku-4-5", max_tokens=2000, messages=[
            {"role": "user", "content": "hi"}], thinking={"type": "enabled", "budget_tokens": 100})
    await client.close()


@pytest.mark.parametrize("api", ["responses", "chat"])
async def test_gpt_reasoning_is_effort_and_temperature_is_dropped_for_reasoning_models(emu, api):
    emu.set_behaviour("openai", thinking=THOUGHT, reply="ok", tokens=2, input_tokens=10)
    result, _ = await generate(make(GPTAdapter, api_style=api), reasoning="high", temperature=0.5)
    body = result.structured_content
    assert not result.is_error, body
    sent = last_body(emu, "openai")
    native = sent["reasoning_effort"] if api == "chat" else sent["reasoning"]["effort"]
    assert native == "high" and "temperature" not in sent
    assert body["dropped"] == [{"param": "temperature", "reason": body["dropped"][0]["reason"]}]
    assert "gpt-5-mini" in body["dropped"][0]["reason"]
    assert body["usage"] == {"input_tokens": 10, "output_tokens": 2 + THOUGHT_TOKENS,
                             "reasoning_tokens": THOUGHT_TOKENS}
    assert body["cost_usd"] == pricing.cost_usd("gpt-5-mini", 10, 2 + THOUGHT_TOKENS)

    # off on gpt-5 is the lowest effort it has; on a model without reasoning, reasoning is dropped instead
    await generate(make(GPTAdapter, api_style=api), reasoning="off")
    sent = last_body(emu, "openai")
    assert (sent["reasoning_effort"] if api == "chat" else sent["reasoning"]["effort"]) == "minimal"
    result, _ = await generate(make(GPTAdapter, api_style=api), reasoning="low", temperature=0.5, model="gpt-4.1")
    sent = last_body(emu, "openai")
    assert sent["temperature"] == 0.5 and "reasoning" not in sent and "reasoning_effort" not in sent
    assert [d["param"] for d in result.structured_content["dropped"]] == ["reasoning"]


async def test_openai_emulator_refuses_what_the_api_refuses(emu):
    import openai

    client = openai.AsyncOpenAI(max_retries=0)
    with pytest.raises(openai.BadRequestError, match="'temperature' is not supported with this model"):
        await client.responses.create(model="gpt-5", input="hi", temperature=0.2)
    with pytest.raises(openai.BadRequestError, match="'reasoning.effort' is not supported"):
        await client.responses.create(model="gpt-4o", input="hi", reasoning={"effort": "low"})
    with pytest.raises(openai.BadRequestError, match="Supported values are: 'input_text', 'input_image'"):
        await client.responses.create(model="gpt-4o", input=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}])
    await client.close()


async def test_gemini_reasoning_is_a_thinking_budget_with_thought_tokens(emu):
    emu.set_behaviour("gemini", thinking=THOUGHT, reply="ok", tokens=2, input_tokens=10)
    result, _ = await generate(make(GeminiAdapter), reasoning="low", temperature=0.4)
    body = result.structured_content
    assert not result.is_error, body
    config = camel(last_body(emu, "gemini")["generationConfig"])
    assert config["thinkingConfig"] == {"thinkingBudget": 1024} and config["temperature"] == 0.4
    assert "dropped" not in body
    assert body["usage"]["reasoning_tokens"] == THOUGHT_TOKENS
    assert body["usage"]["output_tokens"] == 2 + THOUGHT_TOKENS

    await generate(make(GeminiAdapter), reasoning="off")
    assert camel(last_body(emu, "gemini")["generationConfig"])["thinkingConfig"] == {"thinkingBudget": 0}
    # 2.5 Pro only works in thinking mode: off is not sent (the emulator, like the API, would refuse budget 0)
    result, _ = await generate(make(GeminiAdapter), reasoning="off", model="gemini-2.5-pro")
    assert not result.is_error, result.structured_content
    assert "thinkingConfig" not in last_body(emu, "gemini")["generationConfig"]
    assert [d["param"] for d in result.structured_content["dropped"]] == ["reasoning"]
    result, _ = await generate(make(GeminiAdapter), reasoning="high", model="gemini-2.0-flash")
    assert "thinkingConfig" not in last_body(emu, "gemini")["generationConfig"]
    assert [d["param"] for d in result.structured_content["dropped"]] == ["reasoning"]


# -- images ------------------------------------------------------------------------------------------------------------

async def test_an_image_reaches_each_vendor_in_its_native_format(emu, tmp_path: Path):
    png = png_bytes()
    encoded = base64.b64encode(png).decode()
    path = tmp_path / "dot.png"
    path.write_bytes(png)

    result, _ = await generate(make(ClaudeAdapter), prompt="what is this?", images=[{"path": str(path)}])
    assert not result.is_error, result.structured_content
    content = last_body(emu, "anthropic")["messages"][-1]["content"]
    assert content == [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": encoded}},
                       {"type": "text", "text": "what is this?"}]

    result, _ = await generate(make(GPTAdapter), prompt="what is this?",
                               images=[{"data": encoded, "media_type": "image/png"}])
    assert not result.is_error, result.structured_content
    content = last_body(emu, "openai")["input"][-1]["content"]
    assert content == [{"type": "input_image", "image_url": f"data:image/png;base64,{encoded}", "detail": "auto"},
                       {"type": "input_text", "text": "what is this?"}]

    result, _ = await generate(make(GPTAdapter, api_style="chat"), prompt="what is this?",
                               images=[{"url": "https://example.com/dot.png"}])
    assert not result.is_error, result.structured_content
    content = last_body(emu, "openai")["messages"][-1]["content"]
    assert content == [{"type": "image_url", "image_url": {"url": "https://example.com/dot.png"}},
                       {"type": "text", "text": "what is this?"}]

    result, _ = await generate(make(GeminiAdapter), prompt="what is this?", images=[{"path": str(path)}])
    assert not result.is_error, result.structured_content
    parts = camel(last_body(emu, "gemini")["contents"][-1]["parts"])
    assert parts[1] == {"text": "what is this?"}
    inline = parts[0]["inlineData"]
    assert inline["mimeType"] == "image/png" and base64.urlsafe_b64decode(inline["data"]) == png


async def test_bad_images_are_refused_with_a_clear_error(emu, tmp_path: Path):
    png = base64.b64encode(png_bytes()).decode()
    # a declared type that contradicts the bytes, caught before any request
    result, _ = await generate(make(ClaudeAdapter), images=[{"data": png, "media_type": "image/jpeg"}])
    error = error_of(result)
    assert error["kind"] == "invalid_input" and "image/png" in error["message"]
    assert emu.requests("anthropic") == []
    # not an image at all
    text_file = tmp_path / "notes.png"
    text_file.write_text("hello")
    result, _ = await generate(make(GPTAdapter), images=[{"path": str(text_file)}])
    assert error_of(result)["kind"] == "invalid_input"
    # Gemini takes no GIF: the capability table says so before the call
    result, _ = await generate(make(GeminiAdapter), images=[{"data": base64.b64encode(GIF).decode(),
                                                             "media_type": "image/gif"}])
    error = error_of(result)
    assert error["kind"] == "invalid_input" and "image/gif" in error["message"]
    assert emu.requests("gemini") == []


async def test_emulators_refuse_images_in_another_vendors_shape(emu):
    import anthropic
    from google import genai

    png = base64.b64encode(png_bytes()).decode()
    client = anthropic.AsyncAnthropic(max_retries=0)
    with pytest.raises(anthropic.BadRequestError, match="Input tag 'image_url'"):
        await client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}]}])  # type: ignore[list-item]
    with pytest.raises(anthropic.BadRequestError, match="does not match the provided media type image/gif"):
        await client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/gif", "data": png}}]}])
    await client.close()
    gemini = genai.Client()
    with pytest.raises(genai.errors.ClientError, match="Unsupported MIME type: image/gif"):
        await gemini.aio.models.generate_content(model="gemini-2.5-flash", contents=[{"role": "user", "parts": [
            {"inline_data": {"mime_type": "image/gif", "data": GIF}}]}])

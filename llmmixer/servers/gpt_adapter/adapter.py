"""GPT through the official ``openai`` SDK: the Responses API, or Chat Completions for OpenAI-compatible servers.

Configuration is the SDK's own: the key from ``OPENAI_API_KEY``, the base URL from ``OPENAI_BASE_URL``. The API
style is ``responses`` (the default: ``POST /responses`` streaming) or ``chat`` (``POST /chat/completions``
streaming with ``stream_options.include_usage``), chosen by ``--api`` or ``OPENAI_API_STYLE``. ``chat`` exists for
the local servers that speak only that dialect (Ollama, vLLM, llama.cpp, LM Studio); it therefore sends
``max_tokens``, the limit those servers read, rather than OpenAI's newer ``max_completion_tokens``.

Reasoning (Responses ``reasoning`` items; ``reasoning_content`` deltas from local servers) is never part of the text;
its tokens are billed as output and so count in ``output_tokens``, as the API reports them, and are also reported
as ``reasoning_tokens``. ``reasoning`` levels, ``temperature`` and images follow :mod:`.capabilities`.

The SDK's own retries are off (our BaseAdapter retries, only before the first delta). The SDK's ``AsyncStream``
owns the HTTP response: closing it (shielded, in ``finally``) drops the connection, so the API sees the cancel.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import AsyncGenerator
from typing import Any

import httpx2
from openai import AsyncOpenAI, DefaultAsyncHttpxClient

from .manifest import MANIFEST
from ..core.adapter import (
    AdapterSettings,
    BaseAdapter,
    Completion,
    GenerateRequest,
    TextDelta,
    Usage,
    prebuild_models,
    shielded_close,
)
from ..core.errors import ConnectionFailedError, ContentFilterError
from ..core.images import Image
from ..core.messages import ToolCall, ToolCallDelta
from .conversation import (ChatToolCalls, arguments_of, chat_messages, image_part, responses_input,
                           tool_choice_payload, tools_payload)
from .capabilities import TABLE, effort
from .errors import VENDOR, from_error_object, map_vendor_errors
from .options import API_STYLES, ENV_API_STYLE, ApiStyle, add_arguments, api_style as parse_api_style

__all__ = ["GPTAdapter", "API_STYLES", "ENV_API_STYLE"]


# Model families the models endpoint lists that cannot answer a text prompt.
_NOT_TEXT_MODELS = re.compile(
    r"^(text-embedding|embedding|tts-|whisper|dall-e|gpt-image|omni-moderation|text-moderation|babbage|davinci|sora)"
    r"|-(realtime|transcribe|tts)(-|$)")
_SCHEMA_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_CHAT_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                      "function_call": "tool_use"}


def _schema_name(schema: dict[str, Any]) -> str:
    """``text.format.name`` / ``json_schema.name``: letters, digits, ``_`` and ``-``, at most 64."""
    title = schema.get("title")
    name = _SCHEMA_NAME_CHARS.sub("_", title) if isinstance(title, str) and title.strip() else "response"
    return name[:64]


class GPTAdapter(BaseAdapter):
    manifest = MANIFEST
    capability_table = TABLE

    api_style: ApiStyle
    _client: AsyncOpenAI | None = None
    _http: httpx2.AsyncClient | None = None  # the SDK client's connection pool

    def __init__(self, settings: AdapterSettings | None = None, *, api_style: str | None = None) -> None:
        super().__init__(settings)
        self.api_style = parse_api_style(api_style or os.environ.get(ENV_API_STYLE) or "responses")

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        add_arguments(parser)

    def configure(self, args: argparse.Namespace) -> None:
        if getattr(args, "api", None):
            self.api_style = parse_api_style(args.api)
        self.warm_up()

    def warm_up(self) -> None:
        """Pay the SDK's one-time costs at server start instead of inside the first call (about 1 s when cold).

        The SDK loads its resource modules lazily, and its pydantic event models build their validators the first
        time a stream event is parsed; a race must not lose its first leg to that.
        """
        if self.api_style == "chat":
            import openai.resources.chat  # noqa: F401
            from openai.types.chat import ChatCompletionChunk

            models: tuple[Any, ...] = (ChatCompletionChunk,)
        else:
            import openai.resources.responses  # noqa: F401
            from openai.types.responses import ResponseStreamEvent

            models = (ResponseStreamEvent,)
        prebuild_models(*models)

    def client(self) -> AsyncOpenAI:
        """One SDK client per adapter (one connection pool), created on first use."""
        if self._client is None:
            timeout = httpx2.Timeout(self.settings.timeout_s, connect=self.settings.connect_timeout_s)
            # The SDK's own default HTTP client closes itself from ``__del__`` on whichever event loop is running
            # at that moment, which breaks when the adapter outlives its loop; this one has the same defaults
            # and is closed by :meth:`aclose`.
            self._http = DefaultAsyncHttpxClient(timeout=timeout)
            self._client = AsyncOpenAI(api_key=self.api_key(), max_retries=0, timeout=timeout, http_client=self._http)
        return self._client

    def connection_target(self) -> tuple[httpx2.AsyncClient, str] | None:
        if self._client is None or self._http is None:
            return None
        return self._http, str(self._client.base_url)

    async def aclose(self) -> None:
        """Release the connection pool (the next call opens a new one)."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    # -- requests ---------------------------------------------------------------------------------------------------

    def transform_messages(self, request: GenerateRequest, model: str) -> dict[str, Any]:
        conversation = request.conversation()
        turns = chat_messages(conversation) if self.api_style == "chat" else responses_input(conversation)
        if images := request.loaded_images():
            turns[-1]["content"] = _with_images(request.prompt, images, self.api_style)
        if request.tools:
            payload_tools: dict[str, Any] = {"tools": tools_payload(request.tools, self.api_style)}
            if request.tool_choice is not None:
                payload_tools["tool_choice"] = tool_choice_payload(request.tool_choice, self.api_style)
        else:
            payload_tools = {}
        schema = request.response_schema
        if self.api_style == "chat":
            system = [{"role": "system", "content": request.system}] if request.system else []
            payload: dict[str, Any] = {"model": model, "messages": [*system, *turns], "stream": True,
                                       "stream_options": {"include_usage": True}}
            if request.max_tokens is not None:
                payload["max_tokens"] = request.max_tokens
            if schema is not None:
                payload["response_format"] = {"type": "json_schema", "json_schema": {
                    "name": _schema_name(schema), "schema": schema, "strict": False}}
        else:
            # store=False: nothing here continues a stored response, so keeping one on the API's side buys nothing.
            payload = {"model": model, "input": turns, "stream": True, "store": False}
            if request.system:
                payload["instructions"] = request.system
            if request.max_tokens is not None:
                payload["max_output_tokens"] = request.max_tokens
            if schema is not None:
                payload["text"] = {"format": {"type": "json_schema", "name": _schema_name(schema), "schema": schema,
                                              "strict": False}}
        payload.update(payload_tools)
        if request.temperature is not None:
            payload["temperature"] = request.temperature
        if request.reasoning is not None:
            if self.api_style == "chat":
                payload["reasoning_effort"] = effort(model, request.reasoning)
            else:
                payload["reasoning"] = {"effort": effort(model, request.reasoning)}
        return payload

    async def call_model(self, payload: dict[str, Any], request: GenerateRequest, model: str
                         ) -> AsyncGenerator[TextDelta | ToolCallDelta | ToolCall | Completion, None]:
        secret = self.api_key()
        reader: _ResponsesReader | _ChatReader = (_ChatReader(model) if self.api_style == "chat"
                                                  else _ResponsesReader(model, secret))
        stream: Any = None
        completion: Completion | None = None
        try:
            with map_vendor_errors(secret):
                if self.api_style == "chat":
                    stream = await self.client().chat.completions.create(**payload)
                else:
                    stream = await self.client().responses.create(**payload)
                async for event in stream:
                    for item in reader.read(event):
                        if isinstance(item, Completion):
                            completion = item
                        else:
                            yield item
                completion = reader.finish() or completion
        finally:
            if stream is not None:
                await shielded_close(stream)
        if completion is None:
            raise ConnectionFailedError("the OpenAI stream ended before the response was complete", vendor=VENDOR)
        yield completion

    async def list_models(self) -> list[dict[str, Any]]:
        secret = self.api_key()
        with map_vendor_errors(secret):
            ids = [model.id async for model in self.client().models.list()]
        return [{"id": model_id, "display_name": model_id} for model_id in ids
                if not _NOT_TEXT_MODELS.search(model_id)]


def _with_images(prompt: str, images: list[Image], api_style: ApiStyle) -> list[dict[str, Any]]:
    """The final user turn as content parts: images first, then the prompt (both dialects)."""
    text = {"type": "text" if api_style == "chat" else "input_text", "text": prompt}
    return [*(image_part(image, api_style) for image in images), text]


# -- reading the two stream dialects ------------------------------------------------------------------------------------

class _ResponsesReader:
    """Responses API events -> text deltas and one completion; failures and refusals raise."""

    def __init__(self, model: str, secret: str) -> None:
        self.model = model
        self.secret = secret
        self.refusal: list[str] = []
        self.calls: dict[str, int] = {}  # function_call item id -> call index

    def read(self, event: Any) -> list[TextDelta | ToolCallDelta | ToolCall | Completion]:
        kind = getattr(event, "type", None)
        if kind == "response.output_text.delta":
            return [TextDelta(event.delta)]
        if kind == "response.output_item.added" and event.item.type == "function_call":
            self.calls[event.item.id or event.item.call_id] = index = len(self.calls)
            return [ToolCallDelta(index=index, id=event.item.call_id, name=event.item.name)]
        if kind == "response.function_call_arguments.delta" and event.item_id in self.calls:
            return [ToolCallDelta(index=self.calls[event.item_id], arguments=event.delta)] if event.delta else []
        if kind == "response.output_item.done" and event.item.type == "function_call":
            item = event.item
            return [ToolCall(id=item.call_id, name=item.name, arguments=arguments_of(item.arguments, item.name))]
        if kind == "response.refusal.delta":
            self.refusal.append(event.delta)
        elif kind in ("response.completed", "response.incomplete"):
            return [self.completion(event.response)]
        elif kind == "response.failed":
            error = event.response.error
            raise from_error_object({"code": error.code, "message": error.message} if error else {},
                                    secret=self.secret)
        elif kind == "error":  # the flat shape the API reference draws (the nested one makes the SDK raise)
            raise from_error_object({"code": event.code, "message": event.message, "param": event.param},
                                    secret=self.secret)
        return []

    def completion(self, response: Any) -> Completion:
        if self.refusal:
            raise ContentFilterError(f"the model refused: {''.join(self.refusal)}", vendor=VENDOR, status=200)
        reason = response.incomplete_details.reason if response.incomplete_details else None
        if reason == "content_filter":
            raise ContentFilterError("the reply was stopped by the content filter (incomplete: content_filter)",
                                     vendor=VENDOR, status=200)
        if response.status == "completed":
            stop = "tool_use" if self.calls else "end_turn"
        else:
            stop = "max_tokens" if reason == "max_output_tokens" else (reason or response.status)
        usage = response.usage
        details = usage.output_tokens_details if usage else None
        return Completion(model=response.model or self.model, stop_reason=stop,
                          usage=Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                                      reasoning_tokens=details.reasoning_tokens if details else None)
                          if usage else Usage())

    def finish(self) -> None:
        return None


class _ChatReader:
    """Chat Completions chunks -> text deltas; the completion is known once the stream has ended."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.served_by: str | None = None
        self.finish_reason: str | None = None
        self.refusal: list[str] = []
        self.usage = Usage()
        self.tool_calls = ChatToolCalls()

    def read(self, chunk: Any) -> list[TextDelta | ToolCallDelta | ToolCall | Completion]:
        self.served_by = chunk.model or self.served_by
        if chunk.usage is not None:  # the last chunk (choices: []) when include_usage was asked for
            details = chunk.usage.completion_tokens_details
            self.usage = Usage(input_tokens=chunk.usage.prompt_tokens, output_tokens=chunk.usage.completion_tokens,
                               reasoning_tokens=details.reasoning_tokens if details else None)
        deltas: list[TextDelta | ToolCallDelta | ToolCall | Completion] = []
        for choice in chunk.choices or []:
            if choice.index != 0:
                continue
            if choice.delta is not None and choice.delta.content:
                deltas.append(TextDelta(choice.delta.content))
            if choice.delta is not None and choice.delta.refusal:
                self.refusal.append(choice.delta.refusal)
            if choice.delta is not None and choice.delta.tool_calls:
                deltas.extend(self.tool_calls.read(choice.delta.tool_calls))
            if choice.finish_reason is not None:
                deltas.extend(self.tool_calls.finish())
            self.finish_reason = choice.finish_reason or self.finish_reason
        return deltas

    def finish(self) -> Completion:
        if self.finish_reason is None:
            raise ConnectionFailedError("the chat stream ended without a finish_reason", vendor=VENDOR)
        if self.refusal:
            raise ContentFilterError(f"the model refused: {''.join(self.refusal)}", vendor=VENDOR, status=200)
        if self.finish_reason == "content_filter":
            raise ContentFilterError("the reply was stopped by the content filter (finish_reason content_filter)",
                                     vendor=VENDOR, status=200)
        return Completion(model=self.served_by or self.model,
                          stop_reason=_CHAT_STOP_REASONS.get(self.finish_reason, self.finish_reason),
                          usage=self.usage)

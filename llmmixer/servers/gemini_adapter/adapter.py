"""Gemini through the official google-genai SDK (``client.aio.models.generate_content_stream``).

Configuration is the SDK's own: the key from ``GEMINI_API_KEY`` / ``GOOGLE_API_KEY`` (the SDK prefers the latter
when both are set) and the base URL from ``GOOGLE_GEMINI_BASE_URL``.

Two SDK facts shape this module:

- The SDK's stream is a stack of async generators over an httpx2 response; closing the outermost generator does not
  reach the socket (an ``async for`` never closes the iterator it leaves). So we hand the SDK our own
  ``httpx2.AsyncClient`` whose response hook records each streaming response of the current call, and close those
  responses ourselves (shielded) when the call ends for any reason: the API sees the disconnect at once.
- Without ``HttpOptions.timeout`` the SDK sends every request with no timeout at all, and with it one number covers
  connect and read alike. Our request hook sets httpx2's per-phase timeout (read = ``--timeout``) instead.

The SDK's own retries are off (our BaseAdapter retries, only before the first delta).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
from collections.abc import AsyncGenerator
from typing import Any

import httpx2
from google import genai
from google.genai import types

from .manifest import MANIFEST
from ..core.adapter import BaseAdapter, Completion, GenerateRequest, TextDelta, Usage, prebuild_models, shielded_close
from ..core.errors import AuthError, ConnectionFailedError, ContentFilterError
from ..core.messages import ToolCall, ToolCallDelta
from .conversation import contents as to_contents, image_part as _image_part, tool_call, tools_config
from .capabilities import TABLE, thinking_config
from .errors import VENDOR, map_vendor_errors

__all__ = ["GeminiAdapter"]

# Finish reasons that mean a filter stopped the reply (the text so far is not the model's answer).
BLOCKING_FINISH_REASONS = frozenset({
    "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION", "MODEL_ARMOR",
})
# The contract's shared stop-reason names; other finish reasons pass through lower-cased.
STOP_REASONS = {"STOP": "end_turn", "MAX_TOKENS": "max_tokens"}

# The streaming responses opened by the current call (set per call; the hook runs in the caller's task).
_open_responses: contextvars.ContextVar[list[httpx2.Response] | None] = contextvars.ContextVar(
    "llmmixer_gemini_open_responses", default=None)


async def _record_response(response: httpx2.Response) -> None:
    opened = _open_responses.get()
    if opened is not None:
        opened.append(response)


def _enum_value(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))


class GeminiAdapter(BaseAdapter):
    manifest = MANIFEST
    capability_table = TABLE

    _client: genai.Client | None = None
    _http: httpx2.AsyncClient | None = None  # the SDK client's connection pool

    def client(self) -> genai.Client:
        """One SDK client per adapter (one connection pool), created on first use in the running event loop."""
        if self._client is None:
            timeout = httpx2.Timeout(self.settings.timeout_s, connect=self.settings.connect_timeout_s)

            async def apply_timeouts(request: httpx2.Request) -> None:
                request.extensions["timeout"] = timeout.as_dict()

            self._http = httpx2.AsyncClient(timeout=timeout,
                                            event_hooks={"request": [apply_timeouts], "response": [_record_response]})
            key = None  # the cleaned key (the SDK would read the raw variable itself); a call checks it again
            with contextlib.suppress(AuthError):
                key = self.api_key()
            self._client = genai.Client(api_key=key, http_options=types.HttpOptions(
                httpx_async_client=self._http, retry_options=types.HttpRetryOptions(attempts=1)))
        return self._client

    async def aclose(self) -> None:
        """Release the connection pool (the next call opens a new one)."""
        http, self._http, self._client = self._http, None, None
        if http is not None:
            await http.aclose()

    def connection_target(self) -> tuple[httpx2.AsyncClient, str] | None:
        if self._client is None or self._http is None:
            return None
        return self._http, os.environ.get("GOOGLE_GEMINI_BASE_URL") or "https://generativelanguage.googleapis.com/"

    def warm_up(self) -> None:
        prebuild_models(types.GenerateContentResponse, types.GenerateContentConfig)

    def transform_messages(self, request: GenerateRequest, model: str) -> dict[str, Any]:
        contents: list[Any] = to_contents(request.conversation())
        if images := request.loaded_images():
            contents[-1]["parts"] = [*(_image_part(image) for image in images), {"text": request.prompt}]
        config: dict[str, Any] = {"automatic_continuation": False}
        if request.system:
            config["system_instruction"] = request.system
        if request.tools:
            config.update(tools_config(request.tools, request.tool_choice))
        if request.max_tokens is not None:
            config["max_output_tokens"] = request.max_tokens
        if request.temperature is not None:
            config["temperature"] = request.temperature
        if request.response_schema is not None:
            config["response_mime_type"] = "application/json"
            config["response_json_schema"] = request.response_schema
        if request.reasoning is not None:
            config["thinking_config"] = types.ThinkingConfig(**thinking_config(model, request.reasoning))
        return {"contents": contents, "config": config}

    async def call_model(self, payload: dict[str, Any], request: GenerateRequest, model: str
                         ) -> AsyncGenerator[TextDelta | ToolCallDelta | ToolCall | Completion, None]:
        calls = 0
        opened: list[httpx2.Response] = []
        token = _open_responses.set(opened)
        stream: Any = None
        finish: str | None = None
        usage: Any = None
        model_version: str | None = None
        try:
            with map_vendor_errors(self.api_key()):
                stream = await self.client().aio.models.generate_content_stream(
                    model=model, contents=payload["contents"], config=payload["config"])
                async for chunk in stream:
                    feedback = chunk.prompt_feedback
                    if feedback is not None and feedback.block_reason is not None:
                        raise ContentFilterError(f"the prompt was blocked: {_enum_value(feedback.block_reason)}",
                                                 vendor=VENDOR, status=200)
                    model_version = chunk.model_version or model_version
                    usage = chunk.usage_metadata or usage
                    candidate = chunk.candidates[0] if chunk.candidates else None
                    if candidate is None:
                        continue
                    for part in (candidate.content.parts or []) if candidate.content else []:
                        if part.function_call is not None:  # Gemini sends each call whole
                            call = tool_call(part.function_call)
                            yield ToolCallDelta(index=calls, id=call.id, name=call.name,
                                                arguments=json.dumps(call.arguments, ensure_ascii=False))
                            yield call
                            calls += 1
                        elif part.text and not part.thought:  # thought summaries are not the answer
                            yield TextDelta(part.text)
                    finish = _enum_value(candidate.finish_reason) or finish
        finally:
            for response in opened:
                await shielded_close(response)
            if stream is not None:
                await shielded_close(stream)
            try:
                _open_responses.reset(token)
            except ValueError:  # finalised from another context: nothing of ours is left to restore
                pass
        if finish is None:
            raise ConnectionFailedError("the Gemini stream ended without a finishReason", vendor=VENDOR)
        if finish in BLOCKING_FINISH_REASONS:
            raise ContentFilterError(f"the reply was stopped by the safety filter: finishReason {finish}",
                                     vendor=VENDOR, status=200)
        stop_reason = "tool_use" if calls and finish == "STOP" else STOP_REASONS.get(finish, finish.lower())
        yield Completion(model=model_version or model, stop_reason=stop_reason,
                         usage=_usage(usage))

    async def list_models(self) -> list[dict[str, Any]]:
        models: list[dict[str, Any]] = []
        with map_vendor_errors(self.api_key()):
            pager = await self.client().aio.models.list(config={"page_size": 100})
            async for model in pager:
                actions = model.supported_actions
                if not model.name or (actions is not None and "generateContent" not in actions):
                    continue  # embedding and other models that cannot answer a prompt
                model_id = model.name.removeprefix("models/")
                models.append({"id": model_id, "display_name": model.display_name or model_id})
        return models


def _usage(metadata: Any) -> Usage:
    """Usage from the last chunk; thinking tokens are billed as output, so they count as output here."""
    if metadata is None:
        return Usage()
    output = metadata.candidates_token_count
    if metadata.thoughts_token_count:
        output = (output or 0) + metadata.thoughts_token_count
    return Usage(input_tokens=metadata.prompt_token_count, output_tokens=output,
                 reasoning_tokens=metadata.thoughts_token_count)

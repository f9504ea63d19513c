"""Claude through the official ``anthropic`` SDK: ``client.messages.create(..., stream=True)``.

Configuration is the SDK's own: the key from ``ANTHROPIC_API_KEY`` and the base URL from ``ANTHROPIC_BASE_URL``.
The SDK's retries are off (our BaseAdapter retries, only before the first delta) and its timeout is httpx2's
per-phase one: read = ``--timeout``, connect = ``connect_timeout_s``.

We read the raw event stream rather than the SDK's accumulating ``messages.stream()`` helper: the adapter needs
only text deltas, the stop reason and usage, and the raw stream costs less per event (this path is benchmarked
against a bare SDK call).

``temperature`` is accepted and not sent: API version 2026-10-21 (the SDK's default) refuses every sampling
parameter, so sending it would turn a fan-out with a temperature into a Claude failure; the result lists it in
``dropped``. ``reasoning`` and images follow :mod:`.capabilities` (thinking budget or adaptive effort; ``image``
blocks).

Errors are mapped at one boundary (:func:`map_vendor_errors`). The service's body names the error type, and a
mid-stream ``event: error`` reaches us as an ``APIStatusError`` on the 200 response, so the type decides where the
status cannot: ``overloaded_error`` is ``overloaded`` wherever it arrives.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncGenerator
from typing import Any

import anthropic
import httpx2

from .manifest import MANIFEST
from ..core.adapter import BaseAdapter, Completion, GenerateRequest, TextDelta, Usage, prebuild_models, shielded_close
from ..core.images import Image, load
from ..core.messages import (ChatMessage, ImagePart, TextPart, ToolCall, ToolCallDelta, ToolCallPart, ToolChoice,
                             parse_arguments)
from ..core.errors import (
    AuthError,
    BadRequestError,
    ConnectionFailedError,
    ConnectTimeoutError,
    ContentFilterError,
    ContextLengthError,
    LLMMixerError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    QuotaError,
    RateLimitError,
    ServerError,
    UnavailableError,
    UnexpectedError,
    classified,
    retry_after_s,
)
from .capabilities import TABLE, THINKING_BUDGETS, adaptive_thinking

__all__ = ["ClaudeAdapter", "map_vendor_errors", "from_exception"]

VENDOR = "anthropic"
KEY_HINT = "set ANTHROPIC_API_KEY to a valid key"
# Anthropic requires max_tokens; this is what a request without one asks for.
DEFAULT_MAX_TOKENS = 4096

_CONTEXT_MESSAGE = re.compile(r"prompt is too long|context window|context length|too many (input )?tokens",
                              re.IGNORECASE)

# Statuses whose meaning does not depend on the body.
_BY_STATUS: dict[int, type[LLMMixerError]] = {
    401: AuthError, 402: QuotaError, 403: PermissionDeniedError, 404: NotFoundError, 408: ConnectTimeoutError,
    413: BadRequestError, 429: RateLimitError, 500: ServerError, 502: ServerError, 503: UnavailableError,
    504: ConnectTimeoutError, 529: OverloadedError,
}
# The body's ``error.type`` for everything else (a mid-stream error arrives on a 200 response).
_BY_TYPE: dict[str, type[LLMMixerError]] = {
    "invalid_request_error": BadRequestError, "authentication_error": AuthError, "billing_error": QuotaError,
    "permission_error": PermissionDeniedError, "not_found_error": NotFoundError, "request_too_large": BadRequestError,
    "rate_limit_error": RateLimitError, "api_error": ServerError, "timeout_error": ConnectTimeoutError,
    "overloaded_error": OverloadedError,
}


def _from_status_error(exc: anthropic.APIStatusError) -> LLMMixerError:
    status = exc.status_code if exc.status_code >= 400 else None
    error_type = str(exc.type or "")
    message = exc.api_message or (f"HTTP {exc.status_code}" if status else "error event in the stream")
    text = f"{error_type}: {message}" if error_type else message
    details: dict[str, Any] = {key: value for key, value in
                               (("vendor_type", error_type or None), ("request_id", exc.request_id),
                                ("error_code", exc.error_code)) if value}
    if _CONTEXT_MESSAGE.search(message) and status in (None, 400, 413):
        cls: type[LLMMixerError] = ContextLengthError
    elif status == 429 and (error_type == "billing_error" or "spend_limit" in (exc.error_code or "")):
        cls = QuotaError  # a spending cap: waiting will not help
    elif status in _BY_STATUS:
        cls = _BY_STATUS[status]
    elif error_type in _BY_TYPE:
        cls = _BY_TYPE[error_type]
    else:
        cls = ServerError if status is None or status >= 500 else BadRequestError
    if cls is AuthError:
        text = f"{text} ({KEY_HINT})"
    headers = exc.response.headers if status else None
    return cls(text, vendor=VENDOR, status=status, retry_after_s=retry_after_s(headers), details=details)


def from_exception(exc: BaseException) -> LLMMixerError:
    """The classified error for anything the SDK or its HTTP client raised (most specific match wins)."""
    if isinstance(exc, LLMMixerError):
        return exc
    name = type(exc).__name__
    if isinstance(exc, anthropic.APIStatusError):
        return _from_status_error(exc)
    if isinstance(exc, (anthropic.APITimeoutError, httpx2.TimeoutException)):
        phase = "connect" if isinstance(exc.__cause__ or exc, httpx2.ConnectTimeout) else "read"
        return ConnectTimeoutError(f"{phase} timeout talking to the Anthropic API ({name})", vendor=VENDOR)
    if isinstance(exc, anthropic.APIConnectionError):
        cause = exc.__cause__
        detail = f"{type(cause).__name__}: {cause}" if cause else name
        return ConnectionFailedError(f"connection to the Anthropic API failed: {detail}", vendor=VENDOR)
    if isinstance(exc, (httpx2.TransportError, httpx2.DecodingError)):
        return ConnectionFailedError(f"connection to the Anthropic API failed: {name}: {exc}", vendor=VENDOR)
    if isinstance(exc, (anthropic.APIResponseValidationError, ValueError)):
        return ServerError(f"the Anthropic API sent a reply that could not be read: {name}", vendor=VENDOR)
    if isinstance(exc, anthropic.CredentialsError):
        return AuthError(f"no usable credentials: {KEY_HINT}", vendor=VENDOR)
    # Unknown failures are not retried: retrying a bug only multiplies it.
    return UnexpectedError(f"unexpected {name} from the Anthropic SDK: {exc}", vendor=VENDOR)


def map_vendor_errors(secret: str | None = None) -> contextlib.AbstractContextManager[None]:
    """Re-raise any SDK or transport exception as its :class:`LLMMixerError` (``raise ... from exc``), with the key
    (``secret``) redacted from the message should the service echo it back."""
    return classified(from_exception, secrets=(secret,))


def _image_block(image: Image) -> dict[str, Any]:
    if image.url is not None:
        return {"type": "image", "source": {"type": "url", "url": image.url}}
    return {"type": "image", "source": {"type": "base64", "media_type": image.media_type, "data": image.data}}


def _content(message: ChatMessage, where: str) -> str | list[dict[str, Any]]:
    """A normalized turn's content as Anthropic content blocks (``tool_use`` / ``tool_result``)."""
    if isinstance(message.content, str):
        return message.content
    blocks: list[dict[str, Any]] = []
    for index, part in enumerate(message.content):
        if isinstance(part, TextPart):
            blocks.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            blocks.append(_image_block(load(part.image, f"{where}.content[{index}].image")))
        elif isinstance(part, ToolCallPart):
            blocks.append({"type": "tool_use", "id": part.id, "name": part.name, "input": part.arguments})
        else:
            blocks.append({"type": "tool_result", "tool_use_id": part.id, "content": part.content,
                           "is_error": part.is_error})
    return blocks


def _tool_choice(choice: ToolChoice) -> dict[str, Any]:
    if isinstance(choice, str):
        return {"type": {"auto": "auto", "none": "none", "required": "any"}[choice]}
    return {"type": "tool", "name": choice.name}


class _ToolUses:
    """``tool_use`` content blocks of a stream -> tool-call pieces, and each complete call at its block's end."""

    def __init__(self) -> None:
        self.open: dict[int, tuple[str, str, list[str]]] = {}  # block index -> (id, name, argument pieces)
        self.count = 0

    def start(self, index: int, block: Any) -> ToolCallDelta:
        self.open[index] = (block.id, block.name, [])
        self.count += 1
        return ToolCallDelta(index=self.count - 1, id=block.id, name=block.name)

    def piece(self, index: int, partial_json: str) -> ToolCallDelta | None:
        if index not in self.open or not partial_json:
            return None
        self.open[index][2].append(partial_json)
        return ToolCallDelta(index=self.count - 1, arguments=partial_json)

    def stop(self, index: int) -> ToolCall | None:
        if index not in self.open:
            return None
        call_id, name, pieces = self.open.pop(index)
        try:
            arguments = parse_arguments("".join(pieces))
        except ValueError as exc:
            raise ServerError(f"Claude sent tool arguments that are not JSON ({name})", vendor=VENDOR) from exc
        return ToolCall(id=call_id, name=name, arguments=arguments)


class ClaudeAdapter(BaseAdapter):
    manifest = MANIFEST
    capability_table = TABLE

    _client: anthropic.AsyncAnthropic | None = None
    _http: httpx2.AsyncClient | None = None  # the SDK client's connection pool

    def client(self) -> anthropic.AsyncAnthropic:
        """One SDK client per adapter (one connection pool), created on first use."""
        if self._client is None:
            timeout = httpx2.Timeout(self.settings.timeout_s, connect=self.settings.connect_timeout_s)
            self._http = anthropic.DefaultAsyncHttpxClient(timeout=timeout)
            self._client = anthropic.AsyncAnthropic(api_key=self.api_key(), max_retries=0, timeout=timeout,
                                                    http_client=self._http)
        return self._client

    def connection_target(self) -> tuple[httpx2.AsyncClient, str] | None:
        if self._client is None or self._http is None:
            return None
        return self._http, str(self._client.base_url)

    async def aclose(self) -> None:
        """Close the SDK client's connection pool (its own finaliser needs the loop that made it)."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    def warm_up(self) -> None:
        from anthropic.types import Message, RawMessageStreamEvent

        prebuild_models(RawMessageStreamEvent, Message)

    def transform_messages(self, request: GenerateRequest, model: str) -> dict[str, Any]:
        turns: list[dict[str, Any]] = [{"role": turn.role, "content": _content(turn, f"messages[{index}]")}
                                       for index, turn in enumerate(request.conversation())]
        if images := request.loaded_images():
            turns[-1]["content"] = [*(_image_block(image) for image in images),
                                    {"type": "text", "text": request.prompt}]
        payload: dict[str, Any] = {
            "model": model,
            "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
            "messages": turns,
        }
        if request.system:
            payload["system"] = request.system
        if request.tools:
            payload["tools"] = [{"name": tool.name, "input_schema": tool.input_schema,
                                 **({"description": tool.description} if tool.description else {})}
                                for tool in request.tools]
        if request.tool_choice is not None and (request.tools or request.tool_choice == "none"):
            payload["tool_choice"] = _tool_choice(request.tool_choice)
        # ``temperature`` never gets here: the capability table drops it (API version 2026-10-21 refuses it).
        output_config: dict[str, Any] = {}
        if request.response_schema is not None:
            output_config["format"] = {"type": "json_schema", "schema": request.response_schema}
        if request.reasoning == "off":
            payload["thinking"] = {"type": "disabled"}
        elif request.reasoning is not None and adaptive_thinking(model):
            payload["thinking"] = {"type": "adaptive"}
            output_config["effort"] = request.reasoning
        elif request.reasoning is not None:
            budget = THINKING_BUDGETS[request.reasoning]
            payload["thinking"] = {"type": "enabled", "budget_tokens": budget}
            payload["max_tokens"] += budget  # thinking counts toward max_tokens; the answer keeps its own limit
        if output_config:
            payload["output_config"] = output_config
        return payload

    async def call_model(self, payload: dict[str, Any], request: GenerateRequest, model: str
                         ) -> AsyncGenerator[TextDelta | ToolCallDelta | ToolCall | Completion, None]:
        stream: Any = None
        tool_uses = _ToolUses()
        replied_model = model
        usage = Usage()
        stop_reason: str | None = None
        finished = False
        try:
            with map_vendor_errors(self.api_key()):
                stream = await self.client().messages.create(**payload, stream=True)
                async for event in stream:
                    kind = event.type
                    if kind == "content_block_delta":
                        if event.delta.type == "text_delta":  # thinking and signature deltas are not the answer
                            yield TextDelta(event.delta.text)
                        elif event.delta.type == "input_json_delta":
                            if (piece := tool_uses.piece(event.index, event.delta.partial_json)) is not None:
                                yield piece
                    elif kind == "content_block_start":
                        if event.content_block.type == "tool_use":
                            yield tool_uses.start(event.index, event.content_block)
                    elif kind == "content_block_stop":
                        if (call := tool_uses.stop(event.index)) is not None:
                            yield call
                    elif kind == "message_start":
                        replied_model = event.message.model or model
                        usage = Usage(input_tokens=event.message.usage.input_tokens,
                                      output_tokens=event.message.usage.output_tokens)
                    elif kind == "message_delta":
                        stop_reason = event.delta.stop_reason or stop_reason
                        # message_delta's usage is cumulative; input_tokens there is newer than message_start's
                        details = event.usage.output_tokens_details
                        usage = Usage(input_tokens=event.usage.input_tokens if event.usage.input_tokens is not None
                                      else usage.input_tokens, output_tokens=event.usage.output_tokens,
                                      reasoning_tokens=details.thinking_tokens if details is not None else None)
                    elif kind == "message_stop":
                        finished = True
        finally:
            if stream is not None:
                await shielded_close(stream)
        if not finished:
            raise ConnectionFailedError("the Anthropic stream ended before message_stop", vendor=VENDOR)
        if stop_reason == "refusal":
            raise ContentFilterError("Claude declined to answer (stop_reason refusal)", vendor=VENDOR, status=200)
        yield Completion(model=replied_model, stop_reason=stop_reason, usage=usage)

    async def list_models(self) -> list[dict[str, Any]]:
        with map_vendor_errors(self.api_key()):
            return [{"id": model.id, "display_name": model.display_name or model.id}
                    async for model in self.client().models.list(limit=100)]

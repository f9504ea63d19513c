"""BaseAdapter: one vendor's model behind one streaming interface.

A vendor adapter implements three things and nothing else:

- :meth:`BaseAdapter.transform_messages` turns a :class:`GenerateRequest` into the vendor's request payload;
- :meth:`BaseAdapter.call_model` sends it with the official SDK and yields :class:`TextDelta` items, then exactly
  one :class:`Completion`; every vendor exception is mapped to the shared error tree at this boundary;
- :meth:`BaseAdapter.list_models` reads the vendor's models endpoint.

Everything vendor-free lives here, once: input validation, the missing-key error, retries with backoff that honor
Retry-After (only before the first delta went out: a stream cannot be unsent), timings, cost, and validation of
structured output against ``response_schema``.

Scoped streams: every stream is consumed under :func:`contextlib.aclosing`, here (the vendor's ``call_model``) and
by every caller of :meth:`BaseAdapter.stream`, so a consumer that stops early or raises closes the vendor stream at
once instead of at garbage collection. :meth:`BaseAdapter.aclose` releases the adapter's SDK client.

Connections: a cancelled stream (a lost race) takes its TCP/TLS connection with it, so the vendor's next call would
pay a new handshake on its critical path. While serving (:meth:`BaseAdapter.serving`, the server's lifespan), the
adapter opens a replacement in the background: a ``HEAD`` of the vendor's base URL through the SDK's own HTTP client
(:meth:`BaseAdapter.connection_target`), which leaves a fresh connection in the client's pool. The same lifespan
builds the SDK's models (:meth:`BaseAdapter.warm_up`) in a worker thread after the server has started answering;
the first call waits for that rather than racing it.

Cancellation: :meth:`stream` is an async generator driven by the MCP tool handler. When the caller cancels the
``tools/call``, the handler's cancel scope is cancelled; the vendor generator's ``finally`` must then close the SDK
stream inside :func:`shielded_close`, otherwise the close itself is cancelled and the upstream socket lingers.
"""

from __future__ import annotations

import abc
import argparse
import contextlib
import json
import os
import random
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import anyio
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from . import pricing
from .capabilities import CapabilityTable, ModelCaps, Reasoning, fit
from .generation import GenerateResult, Usage
from .manifest import ServerManifest
from .errors import (
    AuthError,
    InvalidInputError,
    InvalidOutputError,
    LLMMixerError,
    RetryableError,
    ServerError,
    UnexpectedError,
)
from .envvars import ADAPTER_NUMBERS, EnvError, adapter_numbers, exit_usage
from .images import Image, ImageInput, load
from .messages import ChatMessage, ImagePart, ToolCall, ToolCallDelta, ToolChoice, ToolSpec, parts_of

__all__ = [
    "ChatMessage",
    "GenerateRequest",
    "Usage",
    "TextDelta",
    "ToolCallDelta",
    "Completion",
    "GenerateResult",
    "AdapterSettings",
    "BaseAdapter",
    "shielded_close",
    "prebuild_models",
]

# What an HTTP header value may hold (visible ASCII): anything else in a key is refused before any SDK sees it.
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")
DEFAULT_MAX_PROMPT_BYTES = int(ADAPTER_NUMBERS["LLMMIXER_MAX_PROMPT_BYTES"][1])


class GenerateRequest(BaseModel):
    """The adapter tool contract's arguments, shared by every vendor."""

    model_config = ConfigDict(extra="forbid")

    # The final user turn's text; empty when ``messages`` already ends with the user's turn (tool results).
    prompt: str = ""
    system: str | None = None
    messages: list[ChatMessage] | None = None
    # Tools the model may call (see messages.py); the reply's calls come back in ``tool_calls``.
    tools: list[ToolSpec] | None = Field(default=None, max_length=512)
    tool_choice: ToolChoice | None = None
    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    response_schema: dict[str, Any] | None = None
    # off | low | medium | high, mapped by each adapter to its vendor's native control (see its capabilities.py).
    reasoning: Reasoning | None = None
    # Images for the final user turn (see images.py), sent in the vendor's native format.
    images: list[ImageInput] | None = Field(default=None, max_length=20)
    # Retry only waits up to this long: a longer wait (a retry-after of 30 s) ends the call at once with the
    # error, so a caller with another model to try moves on, and honours the wait on its next use of this one.
    max_retry_wait_s: float | None = Field(default=None, ge=0)

    _images: list[Image] | None = PrivateAttr(default=None)

    def conversation(self) -> list[ChatMessage]:
        """Earlier turns followed by the prompt as the final user turn (when there is a prompt)."""
        if not self.prompt and self.messages:
            return list(self.messages)
        return [*(self.messages or []), ChatMessage(role="user", content=self.prompt)]

    def loaded_images(self) -> list[Image]:
        """The images, read and checked once (see :func:`images.load`). Raises ``InvalidInputError``."""
        if self._images is None:
            self._images = [load(image, f"images[{index}]") for index, image in enumerate(self.images or [])]
        return self._images

    def content_size(self) -> int:
        """The conversation's size in UTF-8 bytes (text, tool arguments and results; images are capped apart)."""
        size = len(self.prompt.encode()) + len((self.system or "").encode())
        for message in self.messages or []:
            for part in parts_of(message.content):
                if isinstance(part, ImagePart):
                    continue
                size += len(part.model_dump_json(exclude={"type"}).encode())
        return size


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(slots=True)
class Completion:
    """What the vendor said about the finished reply (the text itself is assembled from deltas)."""

    model: str
    stop_reason: str | None  # "tool_use" when the reply asks for tools
    usage: Usage = field(default_factory=Usage)


@dataclass(slots=True)
class AdapterSettings:
    """Vendor-free knobs every adapter server takes from flags and environment."""

    default_model: str | None = None
    max_retries: int = 2
    timeout_s: float = 60.0
    connect_timeout_s: float = 10.0
    max_prompt_bytes: int = DEFAULT_MAX_PROMPT_BYTES
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("adapter")
        group.add_argument("--model", dest="default_model", default=None, help="default model id")
        try:
            numbers = adapter_numbers()
        except EnvError as error:
            raise exit_usage(error, parser.prog) from None
        group.add_argument("--max-retries", type=int, default=numbers["LLMMIXER_MAX_RETRIES"],
                           help="retries of retryable errors before the first delta (default 2)")
        group.add_argument("--timeout", dest="timeout_s", type=float, default=numbers["LLMMIXER_TIMEOUT_S"],
                           help="read timeout in seconds for the vendor stream (default 60)")
        group.add_argument("--max-prompt-bytes", type=int, default=numbers["LLMMIXER_MAX_PROMPT_BYTES"],
                           help="largest prompt accepted, in UTF-8 bytes (default 1 MB)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> AdapterSettings:
        if args.max_retries < 0 or args.timeout_s <= 0 or args.max_prompt_bytes <= 0:
            raise SystemExit("--max-retries must be >= 0; --timeout and --max-prompt-bytes must be > 0")
        return cls(default_model=args.default_model, max_retries=args.max_retries, timeout_s=args.timeout_s,
                   max_prompt_bytes=args.max_prompt_bytes)


def prebuild_models(*roots: Any) -> None:
    """Build the validators of the pydantic models ``roots`` mention (unions included), once each.

    SDKs build their event models lazily, on the first stream event they parse; an adapter's ``warm_up`` calls
    this so that cost is paid at server start, not inside the first (raced) call.
    """
    from typing import get_args

    seen: set[type] = set()
    pending = list(roots)
    while pending:
        hint = pending.pop()
        if isinstance(hint, type) and issubclass(hint, BaseModel):
            if hint in seen:
                continue
            seen.add(hint)
            if hint is not BaseModel:
                try:
                    hint.model_rebuild()
                except Exception:  # noqa: BLE001 - warming is best effort; the first call builds it anyway
                    continue
            pending.extend(field.annotation for field in hint.model_fields.values())
        else:
            pending.extend(get_args(hint))


async def shielded_close(closeable: Any, *, timeout_s: float = 2.0) -> None:
    """Close an SDK stream even while the surrounding scope is being cancelled.

    Without the shield, the ``await`` inside ``close()`` is cancelled at once and the HTTP connection is left for
    the garbage collector, so the vendor keeps generating (and billing) a reply nobody reads.
    """
    with anyio.CancelScope(shield=True), anyio.move_on_after(timeout_s):
        close = getattr(closeable, "aclose", None) or closeable.close
        result = close()
        if hasattr(result, "__await__"):
            await result


class BaseAdapter(abc.ABC):
    """Subclass per vendor; see the module docstring for what a subclass implements.

    A subclass sets ``manifest`` (its package's :class:`ServerManifest`); ``vendor``, ``source``, ``key_env_vars``
    and ``default_model`` are read from it, so each fact is written once.
    """

    manifest: ClassVar[ServerManifest]
    vendor: ClassVar[str]  # "anthropic", "openai", "google": the name in errors
    source: ClassVar[str]  # "claude", "gpt", "gemini": the name in events and server names
    key_env_vars: ClassVar[tuple[str, ...]]  # the first is the one an error message tells the user to set
    default_model: ClassVar[str]
    # What each model accepts (see capabilities.py); None: everything is sent as given.
    capability_table: ClassVar[CapabilityTable | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        manifest = cls.__dict__.get("manifest")
        if manifest is None:
            return
        facts = {"vendor": manifest.vendor, "source": manifest.name, "key_env_vars": manifest.key_vars,
                 "default_model": manifest.default_model}
        for name, value in facts.items():
            if name not in cls.__dict__ and value is not None:
                setattr(cls, name, value)

    def __init__(self, settings: AdapterSettings | None = None) -> None:
        self.settings = settings or AdapterSettings()
        self._background: anyio.abc.TaskGroup | None = None
        self._warmed: anyio.Event | None = None

    # -- what a vendor implements ---------------------------------------------------------------------------------

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Vendor-specific flags (e.g. ``--api chat`` for OpenAI-compatible servers)."""

    def configure(self, args: argparse.Namespace) -> None:
        """Read the vendor-specific flags added by :meth:`add_arguments`."""

    def warm_up(self) -> None:
        """Pay the SDK's one-time costs (lazy imports, model validators) before serving, not inside the first call:
        a race must not be lost to a cold import."""

    def connection_target(self) -> tuple[Any, str] | None:
        """The SDK's ``httpx2.AsyncClient`` and the vendor's base URL, once the SDK client exists; ``None`` (the
        default, or before the first call) means no replacement connection is opened."""
        return None

    @abc.abstractmethod
    def transform_messages(self, request: GenerateRequest, model: str) -> dict[str, Any]:
        """The vendor's request payload for ``request``."""

    @abc.abstractmethod
    def call_model(self, payload: dict[str, Any], request: GenerateRequest, model: str
                   ) -> AsyncGenerator[TextDelta | ToolCallDelta | ToolCall | Completion, None]:
        """Stream the reply: text deltas, tool-call pieces (:class:`ToolCallDelta`) and each complete
        :class:`ToolCall` as it completes, then one :class:`Completion`. Raises only :class:`LLMMixerError`."""

    @abc.abstractmethod
    async def list_models(self) -> list[dict[str, Any]]:
        """``[{"id", "display_name"}]`` from the vendor's models endpoint. Raises only :class:`LLMMixerError`."""

    async def loaded(self) -> BaseAdapter:
        """This adapter (a :class:`~.lazy.LazyAdapter` imports and builds its adapter here)."""
        return self

    async def aclose(self) -> None:
        """Release the SDK client (its connection pool); the next call opens a new one. Safe to call twice."""

    async def __aenter__(self) -> BaseAdapter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- vendor-free behaviour -------------------------------------------------------------------------------------

    def serving(self) -> AbstractAsyncContextManager[BaseAdapter]:
        """``async with adapter.serving():`` for the server's lifetime: SDK warm-up in the background, and
        replacement connections after cancelled streams. Without it, the first call warms nothing up and a cancelled
        stream is not replaced (which is all a one-off script needs)."""
        return self._serving()

    @contextlib.asynccontextmanager
    async def _serving(self) -> AsyncIterator[BaseAdapter]:
        warmed = anyio.Event()

        async def warm() -> None:
            try:
                await anyio.to_thread.run_sync(self.warm_up)
            finally:
                warmed.set()

        async with anyio.create_task_group() as tg:
            self._background, self._warmed = tg, warmed
            tg.start_soon(warm)
            try:
                yield self
            finally:
                self._background = None
                tg.cancel_scope.cancel()

    async def rewarm(self) -> None:
        """Leave a fresh connection to the vendor in the SDK's pool (best effort: any answer, or none, will do)."""
        target = self.connection_target()
        if target is None:
            return
        http, url = target
        with anyio.move_on_after(self.settings.connect_timeout_s), contextlib.suppress(Exception):
            await http.head(url)

    def api_key(self) -> str:
        """The key from the environment, stripped of surrounding whitespace (a key pasted with its newline), or an
        ``auth`` error naming the variable to set. The error never quotes the value.

        Raises:
            AuthError: no key, an unexpanded ``${VAR}``, or a character no HTTP header can carry.
        """
        for name in self.key_env_vars:
            value = (os.environ.get(name) or "").strip()
            if value and not (value.startswith("${") and value.endswith("}")):
                if not _HEADER_SAFE.fullmatch(value):
                    raise AuthError(f"{name} holds a character an HTTP header cannot carry (a control character or "
                                    f"non-ASCII); set it to the key alone", vendor=self.vendor)
                return value
            if value:  # a host that does not expand ${VAR} in its config passed the placeholder itself
                raise AuthError(f"{name} holds the unexpanded placeholder {value}: put the key itself in the "
                                "host's config (llmmixer config claude-desktop --with-env)", vendor=self.vendor)
        raise AuthError(f"no API key: set {self.key_env_vars[0]}", vendor=self.vendor)

    def validate(self, request: GenerateRequest) -> None:
        if not request.prompt.strip():
            last = request.messages[-1] if request.messages else None
            if last is None or last.role != "user" or not parts_of(last.content):
                raise InvalidInputError("prompt is empty (and messages do not end with a user turn)",
                                        vendor=self.vendor)
        size = request.content_size()
        if size > self.settings.max_prompt_bytes:
            raise InvalidInputError(
                f"prompt is {size} bytes; the limit is {self.settings.max_prompt_bytes} (--max-prompt-bytes)",
                vendor=self.vendor)
        if request.response_schema is not None:
            import jsonschema
            import jsonschema.validators

            try:
                jsonschema.validators.validator_for(request.response_schema).check_schema(request.response_schema)
            except jsonschema.SchemaError as exc:
                raise InvalidInputError(f"response_schema is not a valid JSON Schema: {exc.message}",
                                        vendor=self.vendor) from exc

    def capabilities(self, model: str) -> ModelCaps:
        return self.capability_table.for_model(model) if self.capability_table is not None else ModelCaps(
            reasoning=True)

    def backoff_s(self, error: LLMMixerError, attempt: int) -> float:
        if error.retry_after_s is not None:
            return min(max(error.retry_after_s, 0.0), self.settings.backoff_max_s)
        ceiling = min(self.settings.backoff_base_s * 2**attempt, self.settings.backoff_max_s)
        return random.uniform(ceiling / 2, ceiling)

    async def stream(self, request: GenerateRequest
                     ) -> AsyncGenerator[TextDelta | ToolCallDelta | ToolCall | GenerateResult, None]:
        """Yield text deltas, tool-call pieces and complete calls, then one :class:`GenerateResult`.

        Raises:
            LLMMixerError: any classified failure; retryable ones only after retries ran out or a delta went out.
        """
        self.validate(request)
        self.api_key()
        if self._warmed is not None:
            await self._warmed.wait()
        model = request.model or self.settings.default_model or self.default_model
        request.loaded_images()
        request, dropped = fit(request, model, self.capabilities(model), self.vendor)
        payload = self.transform_messages(request, model)
        started = time.perf_counter()
        ttft_ms: float | None = None
        parts: list[str] = []
        completion: Completion | None = None
        called = False  # a tool-call piece went out: like text, it cannot be unsent
        calls: list[ToolCall] = []
        ended = False  # the vendor stream ran to its end, or failed: its connection needs no replacement
        try:
            for attempt in range(self.settings.max_retries + 1):
                try:
                    # Scoped: when our consumer stops early, the vendor stream is closed here and now (not by the
                    # garbage collector), before a replacement connection is opened.
                    async with contextlib.aclosing(self.call_model(payload, request, model)) as items:
                        async for item in items:
                            if isinstance(item, TextDelta):
                                if not item.text:
                                    continue
                                if ttft_ms is None:
                                    ttft_ms = (time.perf_counter() - started) * 1000
                                parts.append(item.text)
                                yield item
                            elif isinstance(item, (ToolCallDelta, ToolCall)):
                                if ttft_ms is None:
                                    ttft_ms = (time.perf_counter() - started) * 1000
                                called = True
                                if isinstance(item, ToolCall):
                                    calls.append(item)
                                yield item
                            else:
                                completion = item
                    break
                except RetryableError as error:
                    # A bug repeats: an unexpected error ends the leg at once (its kind lets a fallback move on).
                    if parts or called or attempt >= self.settings.max_retries or isinstance(error, UnexpectedError):
                        raise
                    wait_s = self.backoff_s(error, attempt)
                    if request.max_retry_wait_s is not None and wait_s > request.max_retry_wait_s:
                        raise  # the caller would rather move on than wait (see GenerateRequest.max_retry_wait_s)
                    await anyio.sleep(wait_s)
            ended = True
        except LLMMixerError:
            ended = True
            raise
        finally:
            if not ended and self._background is not None:
                self._background.start_soon(self.rewarm)
        if completion is None:
            raise ServerError("the stream ended without a final message", vendor=self.vendor)
        text = "".join(parts)
        result = GenerateResult(
            text=text,
            model=completion.model or model,
            stop_reason=completion.stop_reason,
            usage=completion.usage,
            cost_usd=pricing.cost_usd(completion.model or model, completion.usage.input_tokens,
                                      completion.usage.output_tokens),
            ttft_ms=None if ttft_ms is None else round(ttft_ms, 3),
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            dropped=dropped,
            tool_calls=calls,
        )
        if request.response_schema is not None:
            result.data = self.parse_structured(text, request.response_schema)  # now has_data
        yield result

    def parse_structured(self, text: str, schema: dict[str, Any]) -> Any:
        """The reply parsed as JSON and validated against ``schema``, or an ``invalid_output`` error."""
        import jsonschema

        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidOutputError(f"reply is not JSON: {exc}", vendor=self.vendor) from exc
        try:
            jsonschema.validate(data, schema)
        except jsonschema.ValidationError as exc:
            raise InvalidOutputError(f"reply does not match response_schema: {exc.message}",
                                     vendor=self.vendor) from exc
        return data

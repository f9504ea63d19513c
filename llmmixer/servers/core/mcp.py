"""The MCP face of an adapter: ``generate`` and ``list_models``, identical on every vendor.

Text deltas go out as progress notifications (``message`` = the delta text) when the caller sent a progress token;
the final result holds the whole text. Errors are tool results with ``isError: true``: one plain line
``KIND: message``, then ``{"error": {...}}`` from the shared error tree (no structured content: see ``results.py``).

The MCP tool boundary (:meth:`LLMMixerMCPServer.call_tool`) maps what escapes a tool, most specific first:

- a classified :class:`LLMMixerError` keeps its kind;
- a crash (the SDK's ``UnexpectedToolError``, whose ``__cause__`` is what was raised) is ``server``, with the
  exception's type and message, and its traceback in the server log: a fallback moves on, as from any server fault;
- any other ``ToolError`` (unknown tool, arguments that fail the input schema) is ``invalid_input``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import logging
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp_types import CallToolResult, Tool
from pydantic import BaseModel, Field

from . import telemetry
from .annotations import reads
from .adapter import AdapterSettings, BaseAdapter, GenerateRequest, GenerateResult, TextDelta
from .messages import ChatMessage, ToolCall, ToolCallDelta, ToolChoice, ToolSpec, progress_message
from .capabilities import Reasoning
from .images import ImageInput
from .errors import InvalidInputError, LLMMixerError, UnexpectedError
from .lazy import LazyAdapter
from .manifest import ServerManifest
from .results import error_result, ok_result
from .sdk_compat import tool_parameters, unregister_requests
from .transport import add_transport_arguments, exit_at_once, serve

__all__ = ["LLMMixerMCPServer", "ModelsOutput", "build_adapter_server", "adapter_main",
           "adapter_server", "DEFAULT_MODEL_META", "package_version", "tool_error"]

log = logging.getLogger("llmmixer.mcp")

_UNSERVED_METHODS = ("prompts/list", "prompts/get", "resources/list", "resources/templates/list", "resources/read",
                     "resources/subscribe", "resources/unsubscribe", "subscriptions/listen", "completion/complete",
                     "logging/setLevel")


def package_version() -> str:
    """The installed llmmixer distribution's version (what ``serverInfo.version`` says)."""
    try:
        return importlib.metadata.version("llmmixer")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        return "0+unknown"


_MAX_CRASH_MESSAGE = 500


def tool_error(name: str, exc: ToolError, explain: Callable[[ToolError], str] = str) -> LLMMixerError:
    """The classified error for what escaped tool ``name`` (most specific first; see the module docstring)."""
    if isinstance(exc, UnexpectedToolError):
        cause: BaseException = exc
        while isinstance(cause, UnexpectedToolError) and cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, LLMMixerError):
            return cause
        log.error("tool %s crashed", name, exc_info=(type(cause), cause, cause.__traceback__))
        detail = f"{type(cause).__name__}: {cause}"[:_MAX_CRASH_MESSAGE]
        return UnexpectedError(f"the {name} tool failed unexpectedly ({detail}); the server logged the traceback")
    if isinstance(exc.__cause__, LLMMixerError):
        return exc.__cause__
    return InvalidInputError(explain(exc))


class LLMMixerMCPServer(MCPServer):
    """MCPServer whose tool failures come back as classified error results (the boundary in the module docstring).

    ``serverInfo.version`` is the package version.

    Tools only: the SDK wires prompt, resource, completion, logging and subscription handlers into every server and
    derives the advertised capabilities from them, so they are dropped here and ``initialize`` and
    ``server/discover`` advertise exactly what the server serves.
    """

    unserved_methods: tuple[str, ...] = _UNSERVED_METHODS  # a subclass that serves some of them says which

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("subscriptions", False)  # our tool lists never change: nothing to listen for
        kwargs.setdefault("version", package_version())
        # The SDK configures the root logger itself (rich, at INFO, unless told): a server built in the CLI's own
        # process (the inprocess transport) would then print every HTTP request the vendor SDKs log.
        kwargs.setdefault("log_level", "WARNING")
        super().__init__(*args, **kwargs)
        unregister_requests(self, self.unserved_methods)

    def classified(self, name: str, error: LLMMixerError) -> LLMMixerError:
        """The error a failed call of tool ``name`` answers with: ``error`` itself here; a server whose errors may
        quote what it must not send (a secret) cleans them in its subclass. The one place every tool error passes."""
        return error

    def explain_tool_error(self, exc: ToolError) -> str:
        """The message of an ``invalid_input`` result for a rejected call (a subclass may say it better)."""
        return str(exc)

    async def list_tools(self) -> list[Tool]:
        # Strict arguments: every input schema says so, and call_tool refuses what the schema does not list.
        return [t.model_copy(update={"input_schema": {**t.input_schema, "additionalProperties": False}})
                for t in await super().list_tools()]

    def unknown_arguments(self, name: str, arguments: dict[str, Any] | None) -> InvalidInputError | None:
        """An ``invalid_input`` error naming the arguments tool ``name`` does not take; None when all are known."""
        parameters = tool_parameters(self, name)
        if parameters is None or not arguments:
            return None
        known = set(parameters.get("properties") or {})
        unknown = sorted(set(arguments) - known)
        if not unknown:
            return None
        return InvalidInputError(f"{name} does not take {', '.join(repr(u) for u in unknown)}; its arguments are "
                                 f"{', '.join(sorted(known))}", details={"unknown_arguments": unknown})

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        if (refused := self.unknown_arguments(name, arguments)) is not None:
            return error_result(self.classified(name, refused))
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            return error_result(self.classified(name, tool_error(name, exc, self.explain_tool_error)))


class ModelInfo(BaseModel):
    id: str
    display_name: str


class ModelsOutput(BaseModel):
    models: list[ModelInfo]
    default_model: str | None = Field(default=None, description="what generate uses when no model is given")


# The key of the generate tool's _meta holding the adapter's default model, so a client knows which model a leg
# runs (and what it costs) before the first token, without a call to the vendor.
DEFAULT_MODEL_META = "llmmixer/default_model"


GENERATE_DESCRIPTION = (
    "Generate a reply from {vendor_title}. Text streams as progress notifications; the result holds the whole text, "
    "the tool_calls when tools were given and the model calls them (stop_reason tool_use), "
    "usage, cost_usd, ttft_ms and latency_ms. Give response_schema (a JSON Schema) to get validated JSON in `data`. "
    "reasoning: off|low|medium|high. images: [{{path}}|{{url}}|{{data, media_type}}]. Parameters the model refuses are "
    "not sent and are listed in `dropped`."
)


class AdapterMCPServer(LLMMixerMCPServer):
    """An adapter's server: answering ``tools/list`` tells a lazily imported adapter to start loading."""

    def __init__(self, adapter: BaseAdapter | LazyAdapter, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.adapter = adapter

    async def list_tools(self) -> list[Tool]:
        tools = await super().list_tools()
        if isinstance(self.adapter, LazyAdapter):
            self.adapter.want()
        return tools


def build_adapter_server(adapter: BaseAdapter | LazyAdapter) -> LLMMixerMCPServer:
    """The MCP server of ``adapter``; with a :class:`LazyAdapter` it answers before the vendor SDK is imported."""
    server = AdapterMCPServer(
        adapter,
        name=f"llmmixer-{adapter.source}",
        instructions=f"{adapter.source} ({adapter.vendor}) through its official SDK. Tools: generate, list_models.",
        lifespan=lambda _server: adapter.serving(),
    )

    default_model = adapter.settings.default_model or adapter.default_model

    @server.tool(description=GENERATE_DESCRIPTION.format(vendor_title=f"{adapter.source} ({adapter.vendor})"),
                 meta={DEFAULT_MODEL_META: default_model},
                 annotations=reads(f"Generate with {adapter.source}", open_world=True))
    async def generate(
        ctx: Context,
        prompt: str = "",
        system: str | None = None,
        messages: list[ChatMessage] | None = None,
        tools: list[ToolSpec] | None = None,
        tool_choice: ToolChoice | None = None,
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        response_schema: dict[str, Any] | None = None,
        reasoning: Reasoning | None = None,
        images: list[ImageInput] | None = None,
        max_retry_wait_s: float | None = None,
    ) -> Annotated[CallToolResult, GenerateResult]:
        try:
            request = GenerateRequest(prompt=prompt, system=system, messages=messages, tools=tools,
                                      tool_choice=tool_choice, model=model,
                                      max_tokens=max_tokens, temperature=temperature,
                                      response_schema=response_schema, reasoning=reasoning, images=images,
                                      max_retry_wait_s=max_retry_wait_s)
        except ValueError as exc:
            raise InvalidInputError(str(exc), vendor=adapter.vendor) from None
        manifest = getattr(adapter, "manifest", None)
        provider = manifest.provider_name if manifest is not None else adapter.vendor
        with telemetry.chat_span(provider, request.model or default_model) as span:
            try:
                live = await adapter.loaded()
                sent = 0
                async with contextlib.aclosing(live.stream(request)) as stream:
                    async for item in stream:
                        if isinstance(item, TextDelta):
                            sent += 1
                            await ctx.report_progress(sent, None, item.text)
                        elif isinstance(item, (ToolCallDelta, ToolCall)):
                            sent += 1
                            await ctx.report_progress(sent, None, progress_message(item))
                        elif isinstance(item, GenerateResult):
                            if span is not None:
                                span.finished(item.model, item.stop_reason, item.usage.to_dict(), item.cost_usd,
                                              item.ttft_ms)
                            return ok_result(item.wire())
            except LLMMixerError as error:
                log.info("generate failed: %s %s", error.kind.value, error.message)
                if span is not None:
                    span.failed(error.kind.value, error.message)
                raise
        raise AssertionError("adapter stream ended without a result")  # pragma: no cover

    @server.tool(description=f"List the models {adapter.vendor}'s API offers to this key.",
                 annotations=reads(f"List {adapter.source} models", open_world=True, idempotent=True))
    async def list_models() -> Annotated[CallToolResult, ModelsOutput]:
        live = await adapter.loaded()
        return ok_result({"models": await live.list_models(), "default_model": default_model})

    return server


AdapterRef = type[BaseAdapter] | str


def adapter_server(adapter: AdapterRef, argv: Sequence[str] | None = None, *,
                   manifest: ServerManifest | None = None,
                   add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
                   ) -> tuple[LLMMixerMCPServer, argparse.Namespace]:
    """One adapter server from its command line: transport flags, adapter flags, vendor flags.

    ``adapter`` is the adapter class, or ``"module:Class"`` with the package's ``manifest`` (and the vendor's flags
    as ``add_arguments``): then the class and its SDK are imported only once the server is answering (see
    :mod:`.lazy`).
    """
    if isinstance(adapter, str):
        if manifest is None:
            raise TypeError("adapter_server('module:Class') needs the package's manifest")
        source, vendor, key_var = manifest.name, manifest.vendor or manifest.name, (manifest.key_vars or ("",))[0]
    else:
        source, vendor, key_var = adapter.source, adapter.vendor, adapter.key_env_vars[0]
        add_arguments = add_arguments or adapter.add_arguments
    parser = argparse.ArgumentParser(
        prog=f"llmmixer-{source}",
        description=f"LLMMixer {source} adapter as an MCP server ({vendor} official SDK). Key: ${key_var}.",
    )
    add_transport_arguments(parser)
    AdapterSettings.add_arguments(parser)
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(None if argv is None else list(argv))
    settings = AdapterSettings.from_args(args)
    if isinstance(adapter, str):
        assert manifest is not None
        return build_adapter_server(LazyAdapter(manifest, adapter, settings, args)), args
    built = adapter(settings)
    built.configure(args)
    return build_adapter_server(built), args


def adapter_main(adapter: AdapterRef, argv: Sequence[str] | None = None, *,
                 manifest: ServerManifest | None = None,
                 add_arguments: Callable[[argparse.ArgumentParser], None] | None = None) -> None:
    """The console script of one adapter server (see :func:`adapter_server` for ``adapter``)."""
    server, args = adapter_server(adapter, argv, manifest=manifest, add_arguments=add_arguments)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    telemetry.setup_from_environ(server.name)
    try:
        serve(server, args)
    finally:
        telemetry.shutdown()  # the spans still batched reach the collector before the process goes
    if argv is None:  # the console script: served and closed, nothing is left to do (see exit_at_once)
        exit_at_once()

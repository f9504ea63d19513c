"""The OpenAI dialect: ``POST /v1/chat/completions``, ``POST /v1/responses``, ``GET /v1/models`` (base URL
``http://HOST:PORT/v1``).

Fields a client sends that the mixer has no use for (``store``, ``reasoning``, ``parallel_tool_calls``, ...) are
accepted and ignored, as OpenAI-compatible servers do; tools other than ``function`` tools (``web_search``, ...)
are left out. Arguments travel as JSON strings, both ways (OpenAI's quirk, handled here for the client's side).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ...servers.core.errors import ErrorKind, InvalidInputError, LLMMixerError, NotFoundError
from ...servers.core.messages import ToolCall, new_call_id, parse_arguments
from .calls import Answer, GatewayRequest, TextOut
from .models import listed_models
from .wire import Dialect, guarded, sse, listings_of, read_body, serve_call, validated

__all__ = ["routes", "ChatDialect", "ResponsesDialect"]


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ChatBody(_Loose):
    model: str = Field(min_length=1)
    messages: list[dict[str, Any]] = Field(min_length=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    stream: bool = False
    stream_options: dict[str, Any] | None = None


class ResponsesBody(_Loose):
    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    stream: bool = False


_ERROR_TYPES = {
    ErrorKind.AUTH: ("authentication_error", "invalid_api_key"), ErrorKind.PERMISSION: ("permission_error", None),
    ErrorKind.NOT_FOUND: ("invalid_request_error", "model_not_found"),
    ErrorKind.RATE_LIMIT: ("rate_limit_error", "rate_limit_exceeded"),
    ErrorKind.QUOTA: ("insufficient_quota", "insufficient_quota"),
    ErrorKind.CONTEXT_LENGTH: ("invalid_request_error", "context_length_exceeded"),
    ErrorKind.CONTENT_FILTER: ("invalid_request_error", "content_filter"),
}


def _error_object(error: LLMMixerError, status: int) -> dict[str, Any]:
    kind, code = _ERROR_TYPES.get(error.kind, ("invalid_request_error" if status < 500 else "server_error",
                                               error.kind.value))
    return {"message": error.message, "type": kind, "param": (error.details or {}).get("param"), "code": code}


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    raise InvalidInputError("content must be a string or a list of content parts")


def _parts(content: Any) -> list[dict[str, Any]]:
    """User content (string or parts) as normalized parts; images by URL (data: URLs included)."""
    if isinstance(content, str) or content is None:
        return [{"type": "text", "text": content or ""}]
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "input_text", "output_text"):
            parts.append({"type": "text", "text": part.get("text", "")})
        elif kind in ("image_url", "input_image"):
            url = part.get("image_url")
            url = url.get("url") if isinstance(url, dict) else url
            parts.append({"type": "image", "image": _image(str(url or ""))})
    return parts


def _image(url: str) -> dict[str, Any]:
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        return {"data": data, "media_type": header[5:].split(";")[0] or None}
    return {"url": url}


def _arguments(text: Any, where: str) -> dict[str, Any]:
    if isinstance(text, dict):
        return text
    try:
        return parse_arguments(str(text or ""))
    except ValueError:
        raise InvalidInputError(f"{where}: arguments are not a JSON object") from None


class _Turns:
    """Builds the normalized conversation, merging consecutive turns of one role (tool results, then text)."""

    def __init__(self) -> None:
        self.system: list[str] = []
        self.turns: list[dict[str, Any]] = []

    def add(self, role: str, parts: list[dict[str, Any]]) -> None:
        parts = [part for part in parts if part.get("type") != "text" or part.get("text")]
        if not parts:
            return
        if self.turns and self.turns[-1]["role"] == role:
            self.turns[-1]["content"].extend(parts)
        else:
            self.turns.append({"role": role, "content": parts})


def _tools(tools: list[dict[str, Any]] | None, nested: bool) -> list[dict[str, Any]] | None:
    out = []
    for tool in tools or []:
        if tool.get("type", "function") != "function":
            continue
        spec = tool.get("function", {}) if nested else tool
        if not isinstance(spec, dict) or not spec.get("name"):
            raise InvalidInputError("tools: a function tool needs a name")
        out.append({"name": spec["name"], "description": spec.get("description"),
                    "input_schema": spec.get("parameters") or {"type": "object", "properties": {}}})
    return out or None


def _tool_choice(choice: str | dict[str, Any] | None) -> Any:
    if choice is None or isinstance(choice, str):
        return choice
    name = (choice.get("function") or {}).get("name") if "function" in choice else choice.get("name")
    return {"name": name} if name else "required"


def chat_request(body: ChatBody) -> GatewayRequest:
    turns = _Turns()
    for index, message in enumerate(body.messages):
        role = message.get("role")
        where = f"messages.{index}"
        if role in ("system", "developer"):
            turns.system.append(_text(message.get("content")))
        elif role == "user":
            turns.add("user", _parts(message.get("content")))
        elif role == "assistant":
            parts: list[dict[str, Any]] = [{"type": "text", "text": _text(message.get("content"))}]
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                parts.append({"type": "tool_call", "id": call.get("id") or new_call_id(), "name": function.get("name"),
                              "arguments": _arguments(function.get("arguments"), f"{where}.tool_calls")})
            turns.add("assistant", parts)
        elif role == "tool":
            if not message.get("tool_call_id"):
                raise InvalidInputError(f"{where}.tool_call_id: required on a tool message")
            turns.add("user", [{"type": "tool_result", "id": message["tool_call_id"],
                                "content": _text(message.get("content"))}])
        else:
            raise InvalidInputError(f"{where}.role: must be system, developer, user, assistant or tool; got {role!r}")
    return validated({"model": body.model, "system": "\n\n".join(turns.system) or None, "messages": turns.turns,
                      "tools": _tools(body.tools, nested=True), "tool_choice": _tool_choice(body.tool_choice),
                      "max_tokens": body.max_completion_tokens or body.max_tokens, "temperature": body.temperature,
                      "stream": body.stream})


def responses_request(body: ResponsesBody) -> GatewayRequest:
    turns = _Turns()
    if body.instructions:
        turns.system.append(body.instructions)
    items = [{"role": "user", "content": body.input}] if isinstance(body.input, str) else body.input
    for index, item in enumerate(items):
        kind = item.get("type", "message")
        where = f"input.{index}"
        if kind == "message":
            role = item.get("role")
            if role in ("system", "developer"):
                turns.system.append(_text(item.get("content")))
            elif role in ("user", "assistant"):
                turns.add(role, _parts(item.get("content")))
            else:
                raise InvalidInputError(f"{where}.role: must be system, developer, user or assistant; got {role!r}")
        elif kind == "function_call":
            turns.add("assistant", [{"type": "tool_call", "id": item.get("call_id") or new_call_id(),
                                     "name": item.get("name"), "arguments": _arguments(item.get("arguments"), where)}])
        elif kind == "function_call_output":
            if not item.get("call_id"):
                raise InvalidInputError(f"{where}.call_id: required on a function_call_output")
            turns.add("user", [{"type": "tool_result", "id": item["call_id"], "content": _text(item.get("output"))}])
        # reasoning items and others the mixer does not carry are left out
    return validated({"model": body.model, "system": "\n\n".join(turns.system) or None, "messages": turns.turns,
                      "tools": _tools(body.tools, nested=False), "tool_choice": _tool_choice(body.tool_choice),
                      "max_tokens": body.max_output_tokens, "temperature": body.temperature, "stream": body.stream})


def _finish_reason(reply: Answer) -> str:
    if reply.tool_calls:
        return "tool_calls"
    return {"max_tokens": "length", "content_filter": "content_filter"}.get(reply.stop_reason, "stop")


class ChatDialect(Dialect):
    name = "openai"

    def __init__(self, include_usage: bool = False) -> None:
        self.include_usage = include_usage

    def status(self, error: LLMMixerError) -> int:
        status = super().status(error)
        return 503 if status == 529 else status

    def error_body(self, error: LLMMixerError, status: int) -> dict[str, Any]:
        return {"error": _error_object(error, status)}

    @staticmethod
    def _calls(calls: list[ToolCall], streaming: bool) -> list[dict[str, Any]]:
        return [{**({"index": index} if streaming else {}), "id": call.id, "type": "function",
                 "function": {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)}}
                for index, call in enumerate(calls)]

    @staticmethod
    def _usage(reply: Answer) -> dict[str, Any]:
        return {"prompt_tokens": reply.input_tokens, "completion_tokens": reply.output_tokens,
                "total_tokens": reply.input_tokens + reply.output_tokens}

    def whole(self, request: GatewayRequest, reply: Answer) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None, "refusal": None}
        if reply.tool_calls:
            message["tool_calls"] = self._calls(reply.tool_calls, streaming=False)
        return {"id": f"chatcmpl-{reply.run_id}", "object": "chat.completion", "created": int(time.time()),
                "model": reply.model, "choices": [{"index": 0, "message": message, "logprobs": None,
                                                   "finish_reason": _finish_reason(reply)}],
                "usage": self._usage(reply)}

    async def stream(self, request: GatewayRequest, items: AsyncIterator[TextOut | Answer]) -> AsyncIterator[bytes]:
        created = int(time.time())
        ident = f"chatcmpl-{new_call_id('')}"

        def chunk(model: str, delta: dict[str, Any] | None, finish: str | None = None,
                  usage: dict[str, Any] | None = None) -> bytes:
            choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None,
                                                 "finish_reason": finish}]
            body: dict[str, Any] = {"id": ident, "object": "chat.completion.chunk", "created": created,
                                    "model": model, "choices": choices}
            if usage is not None:
                body["usage"] = usage
            return sse(body)

        model = request.model
        try:
            yield chunk(model, {"role": "assistant", "content": ""})
            async for item in items:
                if isinstance(item, TextOut):
                    yield chunk(model, {"content": item.text})
                    continue
                model = item.model
                if item.text:
                    yield chunk(model, {"content": item.text})
                if item.tool_calls:
                    yield chunk(model, {"tool_calls": self._calls(item.tool_calls, streaming=True)})
                yield chunk(model, {}, _finish_reason(item))
                if self.include_usage:
                    yield chunk(model, None, usage=self._usage(item))
        except LLMMixerError as error:
            yield self.stream_error(error)
            return
        yield b"data: [DONE]\n\n"

    def stream_error(self, error: LLMMixerError) -> bytes:
        return sse({"error": _error_object(error, self.status(error))})


class ResponsesDialect(Dialect):
    name = "openai"

    def status(self, error: LLMMixerError) -> int:
        status = super().status(error)
        return 503 if status == 529 else status

    def error_body(self, error: LLMMixerError, status: int) -> dict[str, Any]:
        return {"error": _error_object(error, status)}

    @staticmethod
    def _output(reply: Answer, message_id: str) -> list[dict[str, Any]]:
        output: list[dict[str, Any]] = []
        if reply.text:
            output.append(ResponsesDialect._message(message_id, reply.text, "completed"))
        output.extend({"id": f"fc_{call.id}", "type": "function_call", "status": "completed", "call_id": call.id,
                       "name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)}
                      for call in reply.tool_calls)
        return output

    @staticmethod
    def _message(message_id: str, text: str | None, status: str) -> dict[str, Any]:
        content = [] if text is None else [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
        return {"id": message_id, "type": "message", "status": status, "role": "assistant", "content": content}

    @staticmethod
    def _response(ident: str, model: str, status: str, output: list[dict[str, Any]],
                  reply: Answer | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": ident, "object": "response", "created_at": int(time.time()), "status": status, "model": model,
            "output": output, "error": None, "incomplete_details": None, "instructions": None, "metadata": {},
            "parallel_tool_calls": True, "temperature": None, "tool_choice": "auto", "tools": [], "top_p": None,
            "usage": None}
        if reply is not None:
            body["usage"] = {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens,
                             "total_tokens": reply.input_tokens + reply.output_tokens,
                             "input_tokens_details": {"cached_tokens": 0},
                             "output_tokens_details": {"reasoning_tokens": 0}}
            if reply.stop_reason == "max_tokens":
                body["status"], body["incomplete_details"] = "incomplete", {"reason": "max_output_tokens"}
        return body

    def whole(self, request: GatewayRequest, reply: Answer) -> dict[str, Any]:
        return self._response(f"resp_{reply.run_id}", reply.model, "completed",
                              self._output(reply, f"msg_{reply.run_id}"), reply)

    async def stream(self, request: GatewayRequest, items: AsyncIterator[TextOut | Answer]) -> AsyncIterator[bytes]:
        sequence = 0
        ident, message_id = f"resp_{new_call_id('')}", f"msg_{new_call_id('')}"

        def event(kind: str, **fields: Any) -> bytes:
            nonlocal sequence
            sequence += 1
            return sse({"type": kind, "sequence_number": sequence - 1, **fields}, kind)

        model = request.model
        text: list[str] = []
        opened = False
        ids = {"item_id": message_id, "output_index": 0, "content_index": 0}

        def open_message() -> list[bytes]:
            nonlocal opened
            opened = True
            return [event("response.output_item.added", output_index=0,
                          item=self._message(message_id, None, "in_progress")),
                    event("response.content_part.added", **ids,
                          part={"type": "output_text", "text": "", "annotations": [], "logprobs": []})]

        try:
            yield event("response.created", response=self._response(ident, model, "in_progress", []))
            yield event("response.in_progress", response=self._response(ident, model, "in_progress", []))
            async for item in items:
                piece = item.text
                if isinstance(item, Answer):
                    model = item.model
                if piece:
                    if not opened:
                        for chunk in open_message():
                            yield chunk
                    text.append(piece)
                    yield event("response.output_text.delta", **ids, delta=piece, logprobs=[])
                if isinstance(item, TextOut):
                    continue
                output: list[dict[str, Any]] = []
                if opened:
                    whole = "".join(text)
                    yield event("response.output_text.done", **ids, text=whole, logprobs=[])
                    yield event("response.content_part.done", **ids,
                                part={"type": "output_text", "text": whole, "annotations": [], "logprobs": []})
                    output.append(self._message(message_id, whole, "completed"))
                    yield event("response.output_item.done", output_index=0, item=output[-1])
                for call in item.tool_calls:
                    index = len(output)
                    arguments = json.dumps(call.arguments, ensure_ascii=False)
                    added = {"id": f"fc_{call.id}", "type": "function_call", "status": "in_progress",
                             "call_id": call.id, "name": call.name, "arguments": ""}
                    yield event("response.output_item.added", output_index=index, item=added)
                    yield event("response.function_call_arguments.delta", item_id=added["id"], output_index=index,
                                delta=arguments)
                    yield event("response.function_call_arguments.done", item_id=added["id"], output_index=index,
                                arguments=arguments)
                    output.append({**added, "status": "completed", "arguments": arguments})
                    yield event("response.output_item.done", output_index=index, item=output[-1])
                final = self._response(ident, model, "completed", output, item)
                yield event(f"response.{final['status']}", response=final)
        except LLMMixerError as error:
            yield event("error", code=_error_object(error, self.status(error))["code"], message=error.message,
                        param=None)

    def stream_error(self, error: LLMMixerError) -> bytes:
        return sse({"type": "error", "code": _error_object(error, self.status(error))["code"],
                     "message": error.message, "param": None, "sequence_number": 0}, "error")


async def chat_completions(request: Request) -> Response:
    dialect = ChatDialect()

    async def call() -> Response:
        body = await read_body(request, ChatBody)
        dialect.include_usage = bool((body.stream_options or {}).get("include_usage"))
        return await serve_call(request, dialect, chat_request(body))

    return await guarded(request, dialect, call)


async def responses(request: Request) -> Response:
    dialect = ResponsesDialect()

    async def call() -> Response:
        return await serve_call(request, dialect, responses_request(await read_body(request, ResponsesBody)))

    return await guarded(request, dialect, call)


async def list_models(request: Request) -> Response:
    """``GET /v1/models``: OpenAI's list, or Anthropic's or Gemini's when the caller sends their key header."""
    from . import anthropic, gemini

    if anthropic.is_anthropic(request):
        return await anthropic.list_models(request)
    if gemini.is_gemini(request):
        return await gemini.list_models(request)
    dialect = ChatDialect()

    async def call() -> Response:
        models = await listed_models(request.app.state.runs, listings_of(request))
        return JSONResponse({"object": "list", "data": [
            {"id": model["id"], "object": "model", "created": 0, "owned_by": model["owned_by"]} for model in models]})

    return await guarded(request, dialect, call)


async def get_model(request: Request) -> Response:
    """``GET /v1/models/{model}``: OpenAI's model object, or Gemini's for a Gemini client."""
    from . import gemini

    if gemini.is_gemini(request):
        return await gemini.get_model(request)
    dialect = ChatDialect()

    async def call() -> Response:
        name = request.path_params["target"]
        models = await listed_models(request.app.state.runs, listings_of(request))
        found = next((model for model in models if model["id"] == name), None)
        if found is None:
            raise NotFoundError(f"The model {name!r} does not exist")
        return JSONResponse({"id": name, "object": "model", "created": 0, "owned_by": found["owned_by"]})

    return await guarded(request, dialect, call)


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/responses", responses, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{target:path}", get_model, methods=["GET"]),
    ]

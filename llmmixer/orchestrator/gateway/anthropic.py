"""The Anthropic dialect: ``POST /v1/messages``, ``POST /v1/messages/count_tokens``, and ``GET /v1/models`` when
the caller sends Anthropic's headers (base URL ``http://HOST:PORT``).

Thinking blocks, cache-control marks and server tools (``web_search_…``, ``bash_…`` with a ``type``) are not
carried: the mixer's legs answer with text and tool calls. ``count_tokens`` is an estimate (4 characters a token
over the request's system, messages and tools), the same estimate the mixer uses for a cancelled leg's input.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ...servers.core.errors import ErrorKind, InvalidInputError, LLMMixerError
from ...servers.core.messages import new_call_id
from ..costcap import estimated_tokens
from .calls import Answer, GatewayRequest, TextOut
from .models import listed_models
from .wire import Dialect, guarded, listings_of, read_body, serve_call, sse, validated

__all__ = ["routes", "MessagesDialect", "is_anthropic", "list_models"]


class MessagesBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    messages: list[dict[str, Any]] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    stream: bool = False


class CountBody(MessagesBody):
    pass


_ERROR_TYPES = {
    ErrorKind.AUTH: "authentication_error", ErrorKind.PERMISSION: "permission_error",
    ErrorKind.NOT_FOUND: "not_found_error", ErrorKind.RATE_LIMIT: "rate_limit_error",
    ErrorKind.QUOTA: "rate_limit_error", ErrorKind.OVERLOADED: "overloaded_error", ErrorKind.TIMEOUT: "timeout_error",
}


def is_anthropic(request: Request) -> bool:
    """The caller is an Anthropic client (its SDK always sends ``anthropic-version``)."""
    return "anthropic-version" in request.headers or "x-api-key" in request.headers


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(str(block.get("text", "")) for block in content or [] if isinstance(block, dict)
                   and block.get("type", "text") == "text")


def _image(source: dict[str, Any]) -> dict[str, Any]:
    if source.get("type") == "url":
        return {"url": source.get("url")}
    return {"data": source.get("data"), "media_type": source.get("media_type")}


def _parts(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidInputError(f"{where}.content: must be a string or a list of content blocks")
    parts: list[dict[str, Any]] = []
    for index, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        at = f"{where}.content.{index}"
        if kind == "text":
            if block.get("text"):
                parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            parts.append({"type": "image", "image": _image(block.get("source") or {})})
        elif kind == "tool_use":
            if not block.get("id") or not block.get("name"):
                raise InvalidInputError(f"{at}: a tool_use block needs id and name")
            parts.append({"type": "tool_call", "id": block["id"], "name": block["name"],
                          "arguments": block.get("input") or {}})
        elif kind == "tool_result":
            if not block.get("tool_use_id"):
                raise InvalidInputError(f"{at}.tool_use_id: required on a tool_result block")
            parts.append({"type": "tool_result", "id": block["tool_use_id"], "content": _text(block.get("content")),
                          "is_error": bool(block.get("is_error"))})
        elif kind is None:
            raise InvalidInputError(f"{at}.type: required")
        # thinking, redacted_thinking, documents and server-tool blocks are not carried
    return parts


def _tool_choice(choice: dict[str, Any] | None) -> Any:
    if choice is None:
        return None
    kind = choice.get("type")
    if kind == "tool":
        return {"name": choice.get("name")}
    return {"auto": "auto", "any": "required", "none": "none"}.get(str(kind), "auto")


def messages_request(body: MessagesBody) -> GatewayRequest:
    turns: list[dict[str, Any]] = []
    system = [_text(body.system)] if body.system is not None else []
    for index, message in enumerate(body.messages):
        role = message.get("role")
        if role == "system":  # newer clients put system reminders among the turns
            system.append(_text(message.get("content")))
            continue
        if role not in ("user", "assistant"):
            raise InvalidInputError(f"messages.{index}.role: must be user, assistant or system; got {role!r}")
        parts = _parts(message.get("content"), f"messages.{index}")
        if not parts:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(parts)
        else:
            turns.append({"role": role, "content": parts})
    tools = [{"name": tool.get("name"), "description": tool.get("description"),
              "input_schema": tool.get("input_schema") or {"type": "object", "properties": {}}}
             for tool in body.tools or [] if tool.get("type") in (None, "custom")]
    return validated({"model": body.model, "system": "\n\n".join(part for part in system if part) or None,
                      "messages": turns, "tools": tools or None,
                      "tool_choice": _tool_choice(body.tool_choice), "max_tokens": body.max_tokens,
                      "temperature": body.temperature, "stream": body.stream})


class MessagesDialect(Dialect):
    name = "anthropic"

    def error_body(self, error: LLMMixerError, status: int) -> dict[str, Any]:
        return {"type": "error", "error": {"type": self._type(error, status), "message": error.message}}

    @staticmethod
    def _type(error: LLMMixerError, status: int) -> str:
        if error.kind in _ERROR_TYPES and status < 500 or error.kind in (ErrorKind.OVERLOADED, ErrorKind.TIMEOUT):
            return _ERROR_TYPES[error.kind]
        return "invalid_request_error" if status < 500 else "api_error"

    @staticmethod
    def _content(reply: Answer) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text else []
        content.extend({"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
                       for call in reply.tool_calls)
        return content

    @staticmethod
    def _stop(reply: Answer) -> str:
        if reply.tool_calls:
            return "tool_use"
        return reply.stop_reason if reply.stop_reason in ("end_turn", "max_tokens", "stop_sequence") else "end_turn"

    def whole(self, request: GatewayRequest, reply: Answer) -> dict[str, Any]:
        return {"id": f"msg_{reply.run_id}", "type": "message", "role": "assistant", "model": reply.model,
                "content": self._content(reply), "stop_reason": self._stop(reply), "stop_sequence": None,
                "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens}}

    async def stream(self, request: GatewayRequest, items: AsyncIterator[TextOut | Answer]) -> AsyncIterator[bytes]:
        def event(kind: str, **fields: Any) -> bytes:
            return sse({"type": kind, **fields}, kind)

        index = 0
        text_open = False
        try:
            message: dict[str, Any] = {"id": f"msg_{new_call_id('')}", "type": "message", "role": "assistant",
                                       "model": request.model,
                       "content": [], "stop_reason": None, "stop_sequence": None,
                       "usage": {"input_tokens": 0, "output_tokens": 0}}
            started = False
            async for item in items:
                if not started:
                    if isinstance(item, Answer):
                        message["model"] = item.model
                        message["usage"] = {"input_tokens": item.input_tokens, "output_tokens": 0}
                    yield event("message_start", message=message)
                    started = True
                if item.text:
                    if not text_open:
                        yield event("content_block_start", index=index, content_block={"type": "text", "text": ""})
                        text_open = True
                    yield event("content_block_delta", index=index, delta={"type": "text_delta", "text": item.text})
                if isinstance(item, TextOut):
                    continue
                if text_open:
                    yield event("content_block_stop", index=index)
                    index += 1
                for call in item.tool_calls:
                    yield event("content_block_start", index=index,
                                content_block={"type": "tool_use", "id": call.id, "name": call.name, "input": {}})
                    yield event("content_block_delta", index=index,
                                delta={"type": "input_json_delta",
                                       "partial_json": json.dumps(call.arguments, ensure_ascii=False)})
                    yield event("content_block_stop", index=index)
                    index += 1
                yield event("message_delta", delta={"stop_reason": self._stop(item), "stop_sequence": None},
                            usage={"input_tokens": item.input_tokens, "output_tokens": item.output_tokens})
                yield event("message_stop")
        except LLMMixerError as error:
            yield self.stream_error(error)

    def stream_error(self, error: LLMMixerError) -> bytes:
        return sse(self.error_body(error, self.status(error)), "error")


async def messages(request: Request) -> Response:
    dialect = MessagesDialect()

    async def call() -> Response:
        return await serve_call(request, dialect, messages_request(await read_body(request, MessagesBody)))

    return await guarded(request, dialect, call)


def estimate_tokens(request: GatewayRequest) -> int:
    """About 4 characters a token over what the models would read (see the module docstring)."""
    chars = len(request.system or "") + len(json.dumps([m.model_dump(mode="json") for m in request.messages]))
    chars += len(json.dumps([tool.model_dump(mode="json") for tool in request.tools or []]))
    return max(1, estimated_tokens(chars))


async def count_tokens(request: Request) -> Response:
    dialect = MessagesDialect()

    async def call() -> Response:
        body = messages_request(await read_body(request, CountBody))
        return JSONResponse({"input_tokens": estimate_tokens(body)})

    return await guarded(request, dialect, call)


async def list_models(request: Request) -> Response:
    dialect = MessagesDialect()

    async def call() -> Response:
        models = await listed_models(request.app.state.runs, listings_of(request))
        data = [{"type": "model", "id": model["id"], "display_name": model["display_name"],
                 "created_at": "2025-01-01T00:00:00Z"} for model in models]
        return JSONResponse({"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
                             "last_id": data[-1]["id"] if data else None})

    return await guarded(request, dialect, call)


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
    ]

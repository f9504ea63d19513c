"""The Gemini dialect: ``POST /v1beta/models/{model}:streamGenerateContent`` (``alt=sse``), ``:generateContent``,
``:countTokens``, ``GET /v1beta/models`` and ``GET /v1beta/models/{model}`` (base URL ``http://HOST:PORT``).

The same routes answer under ``/v1`` (the SDK's default API version). The model is part of the path, so a
virtual model's slashes and commas are too:
``/v1beta/models/race/claude,gpt:generateContent`` (the method is what follows the last ``:``).

Gemini's quirks, on the client's side, live here:

- function declarations may give ``parameters`` in Gemini's OpenAPI subset (upper-case ``type`` values,
  ``nullable``): they become plain JSON Schema; ``parametersJsonSchema`` is taken as it is;
- ``functionCall``/``functionResponse`` parts may carry no ``id``: a call gets a synthesized one, and a response
  without an id answers the earliest unanswered call of that name;
- the REST wire is camelCase, and snake_case keys are accepted too (both are valid protobuf JSON).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ...servers.core.errors import InvalidInputError, LLMMixerError, NotFoundError
from ...servers.core.messages import new_call_id
from .anthropic import estimate_tokens
from .calls import Answer, GatewayRequest, TextOut
from .models import listed_models
from .wire import Dialect, guarded, listings_of, read_body, serve_call, sse, validated

__all__ = ["routes", "GeminiDialect", "json_schema", "is_gemini", "list_models", "get_model"]


class GenerateBody(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    contents: list[dict[str, Any]] = Field(min_length=1)
    system_instruction: dict[str, Any] | str | None = Field(default=None, alias="systemInstruction")
    tools: list[dict[str, Any]] | None = None
    tool_config: dict[str, Any] | None = Field(default=None, alias="toolConfig")
    generation_config: dict[str, Any] | None = Field(default=None, alias="generationConfig")


class CountBody(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    contents: list[dict[str, Any]] | None = None
    generate_content_request: GenerateBody | None = Field(default=None, alias="generateContentRequest")


_STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 502: "INTERNAL", 503: "UNAVAILABLE",
                 504: "DEADLINE_EXCEEDED"}


def _get(mapping: dict[str, Any], camel: str) -> Any:
    """``mapping[camel]``, or its snake_case spelling."""
    if camel in mapping:
        return mapping[camel]
    return mapping.get("".join(f"_{c.lower()}" if c.isupper() else c for c in camel))


def json_schema(schema: Any) -> Any:
    """Gemini's OpenAPI-subset schema as JSON Schema: ``type`` values lower-cased, ``nullable`` folded into the
    type."""
    if isinstance(schema, list):
        return [json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: json_schema(value) for key, value in schema.items() if key != "nullable"}
    if isinstance(out.get("type"), str):
        out["type"] = out["type"].lower()
        if schema.get("nullable") is True:
            out["type"] = [out["type"], "null"]
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {name: json_schema(value) for name, value in schema["properties"].items()}
    return out


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return "".join(str(part.get("text", "")) for part in content.get("parts") or [] if isinstance(part, dict))
    return ""


class _CallIds:
    """Ids for calls and responses that carry none (see the module docstring)."""

    def __init__(self) -> None:
        self.unanswered: dict[str, list[str]] = {}

    def call(self, name: str, given: str | None) -> str:
        call_id = given or f"gemini_{name}_{new_call_id('')}"
        self.unanswered.setdefault(name, []).append(call_id)
        return call_id

    def response(self, name: str, given: str | None) -> str:
        pending = self.unanswered.get(name, [])
        if given:
            if given in pending:
                pending.remove(given)
            return given
        if not pending:
            raise InvalidInputError(f"functionResponse {name!r} answers no functionCall of the conversation")
        return pending.pop(0)


def _parts(content: dict[str, Any], where: str, ids: _CallIds) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(content.get("parts") or []):
        if not isinstance(part, dict):
            raise InvalidInputError(f"{where}.parts.{index}: must be an object")
        if part.get("thought"):
            continue
        if (call := _get(part, "functionCall")) is not None:
            name = str(call.get("name") or "")
            parts.append({"type": "tool_call", "id": ids.call(name, call.get("id")), "name": name,
                          "arguments": call.get("args") or {}})
        elif (response := _get(part, "functionResponse")) is not None:
            name = str(response.get("name") or "")
            body = response.get("response")
            is_error = isinstance(body, dict) and "error" in body and "output" not in body
            value = body.get("error" if is_error else "output", body) if isinstance(body, dict) else body
            parts.append({"type": "tool_result", "id": ids.response(name, response.get("id")),
                          "content": value if isinstance(value, str) else json.dumps(value, ensure_ascii=False),
                          "is_error": is_error})
        elif (inline := _get(part, "inlineData")) is not None:
            parts.append({"type": "image", "image": {"data": inline.get("data"),
                                                     "media_type": _get(inline, "mimeType")}})
        elif (file := _get(part, "fileData")) is not None:
            parts.append({"type": "image", "image": {"url": _get(file, "fileUri")}})
        elif part.get("text"):
            parts.append({"type": "text", "text": part["text"]})
    return parts


def _tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    out = []
    for tool in tools or []:
        for declaration in _get(tool, "functionDeclarations") or []:
            schema = _get(declaration, "parametersJsonSchema")
            if schema is None:
                schema = json_schema(declaration.get("parameters") or {"type": "OBJECT", "properties": {}})
            out.append({"name": declaration.get("name"), "description": declaration.get("description"),
                        "input_schema": schema})
    return out or None


def _tool_choice(config: dict[str, Any] | None) -> Any:
    calling = _get(config or {}, "functionCallingConfig") or {}
    mode = str(calling.get("mode") or "").upper()
    allowed = _get(calling, "allowedFunctionNames") or []
    if mode == "ANY" and len(allowed) == 1:
        return {"name": allowed[0]}
    return {"ANY": "required", "NONE": "none", "AUTO": "auto"}.get(mode)


def generate_request(model: str, body: GenerateBody, stream: bool) -> GatewayRequest:
    ids = _CallIds()
    turns: list[dict[str, Any]] = []
    for index, content in enumerate(body.contents):
        role = "assistant" if content.get("role") == "model" else "user"
        if content.get("role") not in (None, "user", "model", "function"):
            raise InvalidInputError(f"contents.{index}.role: must be user or model; got {content.get('role')!r}")
        parts = _parts(content, f"contents.{index}", ids)
        if not parts:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(parts)
        else:
            turns.append({"role": role, "content": parts})
    config = body.generation_config or {}
    return validated({"model": model, "system": _text(body.system_instruction) or None, "messages": turns,
                      "tools": _tools(body.tools), "tool_choice": _tool_choice(body.tool_config),
                      "max_tokens": _get(config, "maxOutputTokens"), "temperature": config.get("temperature"),
                      "stream": stream})


class GeminiDialect(Dialect):
    name = "gemini"

    def status(self, error: LLMMixerError) -> int:
        status = super().status(error)
        return 503 if status == 529 else status

    def error_body(self, error: LLMMixerError, status: int) -> dict[str, Any]:
        return {"error": {"code": status, "message": error.message,
                          "status": _STATUS_NAMES.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")}}

    @staticmethod
    def _finish(reply: Answer) -> str:
        return {"max_tokens": "MAX_TOKENS", "content_filter": "SAFETY"}.get(reply.stop_reason, "STOP")

    @staticmethod
    def _chunk(parts: list[dict[str, Any]], model: str, reply: Answer | None = None) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        chunk: dict[str, Any] = {"candidates": [candidate], "modelVersion": model}
        if reply is not None:
            candidate["finishReason"] = GeminiDialect._finish(reply)
            chunk["usageMetadata"] = {"promptTokenCount": reply.input_tokens,
                                      "candidatesTokenCount": reply.output_tokens,
                                      "totalTokenCount": reply.input_tokens + reply.output_tokens}
            chunk["responseId"] = reply.run_id
        return chunk

    @staticmethod
    def _reply_parts(reply: Answer) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = [{"text": reply.text}] if reply.text else []
        parts.extend({"functionCall": {"id": call.id, "name": call.name, "args": call.arguments}}
                     for call in reply.tool_calls)
        return parts

    def whole(self, request: GatewayRequest, reply: Answer) -> dict[str, Any]:
        return self._chunk(self._reply_parts(reply), reply.model, reply)

    async def stream(self, request: GatewayRequest, items: AsyncIterator[TextOut | Answer]) -> AsyncIterator[bytes]:
        try:
            async for item in items:
                if isinstance(item, TextOut):
                    yield sse(self._chunk([{"text": item.text}], request.model))
                else:
                    yield sse(self._chunk(self._reply_parts(item), item.model, item))
        except LLMMixerError as error:
            yield self.stream_error(error)

    def stream_error(self, error: LLMMixerError) -> bytes:
        return sse(self.error_body(error, self.status(error)))


async def generate(request: Request) -> Response:
    dialect = GeminiDialect()

    async def call() -> Response:
        model, _, method = request.path_params["target"].rpartition(":")
        if method in ("generateContent", "streamGenerateContent"):
            body = await read_body(request, GenerateBody)
            return await serve_call(request, dialect, generate_request(model, body,
                                                                       stream=method == "streamGenerateContent"))
        if method == "countTokens":
            count = await read_body(request, CountBody)
            inner = count.generate_content_request or GenerateBody(contents=count.contents or [])
            if not inner.contents:
                raise InvalidInputError("contents: give the contents to count")
            return JSONResponse({"totalTokens": estimate_tokens(generate_request(model, inner, stream=False))})
        raise NotFoundError(f"no method {method!r}: use generateContent, streamGenerateContent or countTokens")

    return await guarded(request, dialect, call)


def _model_entry(model: dict[str, Any]) -> dict[str, Any]:
    return {"name": f"models/{model['id']}", "baseModelId": model["id"], "version": "001",
            "displayName": model["display_name"], "description": f"served by {model['owned_by']}",
            "inputTokenLimit": 1_000_000, "outputTokenLimit": 65_536,
            "supportedGenerationMethods": ["generateContent", "countTokens"]}


async def list_models(request: Request) -> Response:
    dialect = GeminiDialect()

    async def call() -> Response:
        models = await listed_models(request.app.state.runs, listings_of(request))
        return JSONResponse({"models": [_model_entry(model) for model in models]})

    return await guarded(request, dialect, call)


async def get_model(request: Request) -> Response:
    dialect = GeminiDialect()

    async def call() -> Response:
        name = request.path_params["target"]
        models = await listed_models(request.app.state.runs, listings_of(request))
        found = next((model for model in models if model["id"] == name), None)
        if found is None:
            if "/" not in name:
                raise NotFoundError(f"model {name!r} not found")
            found = {"id": name, "display_name": name, "owned_by": "llmmixer"}
        return JSONResponse(_model_entry(found))

    return await guarded(request, dialect, call)


def is_gemini(request: Request) -> bool:
    """The caller is a Gemini client (its SDK sends the key as ``x-goog-api-key``, or ``?key=``)."""
    return "x-goog-api-key" in request.headers or "key" in request.query_params


def routes() -> list[BaseRoute]:
    """``/v1beta`` and ``/v1`` (the SDK's default version); ``GET /v1/models`` is OpenAI's unless the caller is a
    Gemini client (:func:`is_gemini`, dispatched by :mod:`.openai`)."""
    return [
        Route("/v1beta/models", list_models, methods=["GET"]),
        Route("/v1beta/models/{target:path}", generate, methods=["POST"]),
        Route("/v1beta/models/{target:path}", get_model, methods=["GET"]),
        Route("/v1/models/{target:path}", generate, methods=["POST"]),
    ]

"""The normalized conversation (servers/core/messages.py) as Gemini ``contents``, and tool calls read back.

Gemini's quirks live here:

- a ``tool_result`` is a ``functionResponse`` part that names the *function*, not only the call: the name is found
  from the conversation's own ``tool_call`` with that id; the output goes in ``response`` as ``{"output": ...}``
  (``{"error": ...}`` for a failed tool);
- a ``functionCall`` may come without an ``id`` (older models): one is synthesized, so every call the caller sees
  has one;
- tools are sent with ``parametersJsonSchema`` (plain JSON Schema), so no schema is rewritten into Gemini's
  upper-case OpenAPI subset on the way out.
"""

from __future__ import annotations

from typing import Any

from google.genai import types

from ..core.images import Image, load
from ..core.messages import (ChatMessage, ImagePart, TextPart, ToolCall, ToolCallPart, ToolChoice, ToolSpec,
                             new_call_id, tool_names)

__all__ = ["contents", "tools_config", "tool_call", "image_part"]


def image_part(image: Image) -> types.Part:
    if image.url is not None:
        return types.Part(file_data=types.FileData(file_uri=image.url, mime_type=image.media_type or "image/jpeg"))
    return types.Part(inline_data=types.Blob(mime_type=image.media_type, data=image.raw()))


def contents(turns: list[ChatMessage]) -> list[dict[str, Any]]:
    names = tool_names(turns)
    out: list[dict[str, Any]] = []
    for index, turn in enumerate(turns):
        role = "model" if turn.role == "assistant" else "user"
        if isinstance(turn.content, str):
            out.append({"role": role, "parts": [{"text": turn.content}]})
            continue
        parts: list[Any] = []
        for number, part in enumerate(turn.content):
            if isinstance(part, TextPart):
                parts.append({"text": part.text})
            elif isinstance(part, ImagePart):
                parts.append(image_part(load(part.image, f"messages[{index}].content[{number}].image")))
            elif isinstance(part, ToolCallPart):
                parts.append({"function_call": {"id": part.id, "name": part.name, "args": part.arguments}})
            else:
                key = "error" if part.is_error else "output"
                parts.append({"function_response": {"id": part.id, "name": names.get(part.id, part.id),
                                                    "response": {key: part.content}}})
        out.append({"role": role, "parts": parts})
    return out


def tools_config(tools: list[ToolSpec], choice: ToolChoice | None) -> dict[str, Any]:
    """The ``tools`` and ``tool_config`` entries of a GenerateContentConfig."""
    declarations = [{"name": tool.name, "parameters_json_schema": tool.input_schema,
                     **({"description": tool.description} if tool.description else {})} for tool in tools]
    config: dict[str, Any] = {"tools": [{"function_declarations": declarations}]}
    if choice is not None:
        if isinstance(choice, str):
            mode = {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice]
            config["tool_config"] = {"function_calling_config": {"mode": mode}}
        else:
            config["tool_config"] = {"function_calling_config": {"mode": "ANY",
                                                                 "allowed_function_names": [choice.name]}}
    return config


def tool_call(call: Any) -> ToolCall:
    """A ``functionCall`` part as a complete call, its id synthesized when Gemini sent none."""
    return ToolCall(id=call.id or new_call_id(), name=call.name or "", arguments=dict(call.args or {}))

"""The normalized conversation (servers/core/messages.py) in OpenAI's two dialects, and tool calls read back.

- Responses: a turn's text (and images) is a message item; each ``tool_call`` part is a ``function_call`` item and
  each ``tool_result`` a ``function_call_output`` item, in the order the parts stand. Tools are flat
  ``{"type": "function", "name", "parameters"}``.
- Chat Completions: an assistant turn's calls are its ``tool_calls``; each result is a ``role: "tool"`` message.
  Tools are nested ``{"type": "function", "function": {...}}``.

OpenAI's quirk lives here: arguments travel as a JSON-encoded *string*, both ways.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from ..core.errors import ServerError
from ..core.images import Image, load
from ..core.messages import (ChatMessage, ImagePart, TextPart, ToolCall, ToolCallDelta, ToolCallPart, ToolChoice,
                             ToolResultPart, ToolSpec, new_call_id, parse_arguments)
from .errors import VENDOR

__all__ = ["responses_input", "chat_messages", "tools_payload", "tool_choice_payload", "image_part", "arguments_of",
           "ChatToolCalls"]

ApiStyle = Literal["responses", "chat"]


def image_part(image: Image, api_style: ApiStyle) -> dict[str, Any]:
    if api_style == "chat":
        return {"type": "image_url", "image_url": {"url": image.data_url}}
    return {"type": "input_image", "image_url": image.data_url, "detail": "auto"}


def _text_part(text: str, role: str, api_style: ApiStyle) -> dict[str, Any]:
    if api_style == "chat":
        return {"type": "text", "text": text}
    return {"type": "output_text" if role == "assistant" else "input_text", "text": text}


def _message_content(parts: list[TextPart | ImagePart], role: str, where: str, api_style: ApiStyle
                     ) -> str | list[dict[str, Any]]:
    if all(isinstance(part, TextPart) for part in parts):
        return "".join(part.text for part in parts if isinstance(part, TextPart))
    return [_text_part(part.text, role, api_style) if isinstance(part, TextPart)
            else image_part(load(part.image, f"{where}.content[{index}].image"), api_style)
            for index, part in enumerate(parts)]


def _split(message: ChatMessage) -> tuple[list[TextPart | ImagePart], list[ToolCallPart], list[ToolResultPart]]:
    if isinstance(message.content, str):
        return [TextPart(text=message.content)], [], []
    plain = [part for part in message.content if isinstance(part, (TextPart, ImagePart))]
    calls = [part for part in message.content if isinstance(part, ToolCallPart)]
    results = [part for part in message.content if isinstance(part, ToolResultPart)]
    return plain, calls, results


def _result_text(part: ToolResultPart) -> str:
    return f"Error: {part.content}" if part.is_error and not part.content.startswith("Error") else part.content


def responses_input(turns: list[ChatMessage]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for index, turn in enumerate(turns):
        plain, calls, results = _split(turn)
        items.extend({"type": "function_call_output", "call_id": part.id, "output": _result_text(part)}
                     for part in results)
        if plain:
            items.append({"role": turn.role,
                          "content": _message_content(plain, turn.role, f"messages[{index}]", "responses")})
        items.extend({"type": "function_call", "call_id": part.id, "name": part.name,
                      "arguments": json.dumps(part.arguments, ensure_ascii=False)} for part in calls)
    return items


def chat_messages(turns: list[ChatMessage]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for index, turn in enumerate(turns):
        plain, calls, results = _split(turn)
        messages.extend({"role": "tool", "tool_call_id": part.id, "content": _result_text(part)} for part in results)
        if turn.role == "assistant" and calls:
            text = "".join(part.text for part in plain if isinstance(part, TextPart))
            messages.append({"role": "assistant", "content": text or None, "tool_calls": [
                {"id": part.id, "type": "function",
                 "function": {"name": part.name, "arguments": json.dumps(part.arguments, ensure_ascii=False)}}
                for part in calls]})
        elif plain:
            messages.append({"role": turn.role,
                             "content": _message_content(plain, turn.role, f"messages[{index}]", "chat")})
    return messages


def tools_payload(tools: list[ToolSpec], api_style: ApiStyle) -> list[dict[str, Any]]:
    def function(tool: ToolSpec) -> dict[str, Any]:
        out: dict[str, Any] = {"name": tool.name, "parameters": tool.input_schema}
        if tool.description:
            out["description"] = tool.description
        return out

    if api_style == "chat":
        return [{"type": "function", "function": function(tool)} for tool in tools]
    return [{"type": "function", **function(tool), "strict": False} for tool in tools]


def tool_choice_payload(choice: ToolChoice, api_style: ApiStyle) -> Any:
    if isinstance(choice, str):
        return choice
    if api_style == "chat":
        return {"type": "function", "function": {"name": choice.name}}
    return {"type": "function", "name": choice.name}


def arguments_of(text: str, name: str) -> dict[str, Any]:
    """A call's string-encoded arguments as an object, or a ``server`` error naming the tool."""
    try:
        return parse_arguments(text)
    except ValueError as exc:
        raise ServerError(f"the model sent arguments for {name} that are not JSON", vendor=VENDOR) from exc


class ChatToolCalls:
    """Chat ``delta.tool_calls`` pieces -> tool-call deltas; the complete calls once the choice finishes."""

    def __init__(self) -> None:
        self.calls: dict[int, tuple[str, str, list[str]]] = {}

    def read(self, pieces: list[Any]) -> list[ToolCallDelta]:
        out: list[ToolCallDelta] = []
        for piece in pieces:
            function = piece.function
            index = piece.index or 0
            if index not in self.calls:
                call_id = piece.id or new_call_id()  # some OpenAI-compatible servers send none
                self.calls[index] = (call_id, (function.name if function else None) or "", [])
                out.append(ToolCallDelta(index=index, id=call_id, name=function.name if function else None))
            if function is not None and function.arguments:
                self.calls[index][2].append(function.arguments)
                out.append(ToolCallDelta(index=index, arguments=function.arguments))
        return out

    def finish(self) -> list[ToolCall]:
        done = [ToolCall(id=call_id, name=name, arguments=arguments_of("".join(pieces), name))
                for _, (call_id, name, pieces) in sorted(self.calls.items())]
        self.calls.clear()
        return done

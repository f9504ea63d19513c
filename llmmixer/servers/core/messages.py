"""The normalized conversation: one message model every adapter translates to its vendor and back.

A turn's ``content`` is either plain text or a list of parts:

- ``{"type": "text", "text"}``;
- ``{"type": "image", "image": {path|url|data, media_type}}`` (see images.py);
- ``{"type": "tool_call", "id", "name", "arguments"}``: the assistant asked for a tool (arguments as a JSON object);
- ``{"type": "tool_result", "id", "content", "is_error"}``: the caller's answer to the call with that ``id``.

``tools`` are ``[{name, description, input_schema}]`` (JSON Schema) and ``tool_choice`` is ``auto``, ``none``,
``required`` or ``{"name": ...}``. A reply that asks for tools holds ``tool_calls`` and ``stop_reason: "tool_use"``.

Vendor quirks are not here: Anthropic ``tool_use``/``tool_result`` blocks, OpenAI's string-encoded arguments and
Gemini's missing ids and upper-case schema types are each handled inside their adapter.
"""

from __future__ import annotations

import itertools
import json
import secrets
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .images import ImageInput

__all__ = ["TextPart", "ImagePart", "ToolCallPart", "ToolResultPart", "Part", "ChatMessage", "ToolSpec",
           "NamedToolChoice", "ToolChoice", "ToolCall", "ToolCallDelta", "parts_of", "text_of", "tool_names",
           "new_call_id", "parse_arguments", "progress_message", "read_progress"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextPart(_Strict):
    type: Literal["text"] = "text"
    text: str


class ImagePart(_Strict):
    type: Literal["image"] = "image"
    image: ImageInput


class ToolCallPart(_Strict):
    type: Literal["tool_call"] = "tool_call"
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolResultPart(_Strict):
    type: Literal["tool_result"] = "tool_result"
    id: str = Field(min_length=1, description="the id of the tool_call this answers")
    content: str = ""
    is_error: bool = False


Part = Annotated[TextPart | ImagePart | ToolCallPart | ToolResultPart, Field(discriminator="type")]


class ChatMessage(_Strict):
    role: Literal["user", "assistant"]
    content: str | list[Part]


class ToolSpec(_Strict):
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class NamedToolChoice(_Strict):
    name: str = Field(min_length=1)


ToolChoice = Literal["auto", "none", "required"] | NamedToolChoice


class ToolCall(_Strict):
    """A complete tool call of a reply."""

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolCallDelta(_Strict):
    """A piece of a streamed tool call: the first piece of call ``index`` carries its ``id`` and ``name``."""

    index: int = 0
    id: str | None = None
    name: str | None = None
    arguments: str = ""  # a fragment of the JSON-encoded arguments


# MCP progress carries one string per notification. Text deltas are the text itself; tool-call pieces and complete
# calls are this marker (an ASCII record separator, never produced by a model's text) followed by their JSON, so
# one reader (:func:`read_progress`) tells them apart.
_PROGRESS_MARK = "\x1e"


def progress_message(item: ToolCallDelta | ToolCall) -> str:
    """The progress ``message`` for a tool-call piece or a complete call."""
    kind = "tool_call" if isinstance(item, ToolCall) else "tool_call_delta"
    return f"{_PROGRESS_MARK}{kind}{_PROGRESS_MARK}{item.model_dump_json()}"


def read_progress(message: str) -> str | ToolCallDelta | ToolCall:
    """A progress ``message`` as text, a tool-call piece or a complete call (see :func:`progress_message`)."""
    if not message.startswith(_PROGRESS_MARK):
        return message
    kind, _, body = message[1:].partition(_PROGRESS_MARK)
    if kind == "tool_call":
        return ToolCall.model_validate_json(body)
    if kind == "tool_call_delta":
        return ToolCallDelta.model_validate_json(body)
    return message


def parts_of(content: str | list[Part]) -> list[Part]:
    """``content`` as parts (plain text is one text part; empty text none)."""
    if isinstance(content, str):
        return [TextPart(text=content)] if content else []
    return list(content)


def text_of(content: str | list[Part]) -> str:
    """The text parts of ``content``, joined."""
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content if isinstance(part, TextPart))


def tool_names(messages: list[ChatMessage]) -> dict[str, str]:
    """Tool-call id -> tool name over a conversation (for vendors whose tool results name the tool, not the id)."""
    return {part.id: part.name for message in messages if not isinstance(message.content, str)
            for part in message.content if isinstance(part, ToolCallPart)}


_counter = itertools.count(1)


def new_call_id(prefix: str = "call_") -> str:
    """A fresh tool-call id, for vendors whose calls carry none."""
    return f"{prefix}{secrets.token_hex(6)}{next(_counter):04d}"


def parse_arguments(text: str) -> dict[str, Any]:
    """JSON-encoded tool arguments as an object (``{}`` for an empty string; a non-object is wrapped in
    ``{"value": ...}``). Raises ``ValueError`` when the text is not JSON."""
    if not text.strip():
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {"value": value}

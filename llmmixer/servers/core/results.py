"""Tool results on the wire: success and classified errors, shaped the same way by every server.

A success carries ``structuredContent`` (checked against the tool's output schema) and, as its first text content,
the same object as JSON, so hosts that only read text see what clients that read ``structuredContent`` see.

An error is ``isError: true`` with two text blocks and **no** ``structuredContent``: first one plain line,
``KIND: message`` (and ``(retry after N s)`` when the error says so), then the JSON ``{"error": {...}}``. The plain
line comes first because hosts read the first text block and some of them parse a JSON text into structured content
themselves: Gemini CLI does, even on an error, and then its SDK checks that object against the tool's output schema
and throws ``-32602`` ("Structured content does not match the tool's output schema"), so the model never learns the
kind, the message or the retry delay. A line that is not JSON survives every host; clients that want the fields read
the JSON block (:func:`result_payload`).

Hosts on the TypeScript SDK (Claude Desktop, the MCP Inspector; ``@modelcontextprotocol/sdk`` up to at least
1.32.2, typescript-sdk#1943) validate any ``structuredContent`` against the output schema even on an error and
throw ``-32602`` instead of handing the host the result. Leaving it out is what the spec already allows (an output
schema describes successful results) and keeps every schema exactly the success shape: widening each schema to
admit the error object too would loosen what hosts and models are told a success looks like, and cost tokens in
every host turn. :func:`result_payload` reads either form back.
"""

from __future__ import annotations

import json
from typing import Any

from mcp_types import CallToolResult, TextContent

from .errors import LLMMixerError

__all__ = ["ok_result", "error_result", "error_line", "job_result", "result_payload"]


def _dumps(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def ok_result(payload: dict[str, Any]) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=_dumps(payload))], structured_content=payload)


def error_line(error: dict[str, Any]) -> str:
    """The one plain line an error result starts with: ``KIND: message`` (``(retry after N s)`` when set)."""
    kind = str(error.get("kind") or "server")
    message = " ".join(str(error.get("message") or "").split())  # one line, whatever the message held
    line = f"{kind}: {message}" if message else kind
    retry_after = error.get("retry_after_s")
    if isinstance(retry_after, int | float) and not isinstance(retry_after, bool) and retry_after > 0:
        line += f" (retry after {f'{retry_after:.1f}'.removesuffix('.0')} s)"
    return line


def _error_blocks(payload: dict[str, Any]) -> CallToolResult:
    error = payload.get("error")
    line = error_line(error if isinstance(error, dict) else {})
    return CallToolResult(content=[TextContent(type="text", text=line), TextContent(type="text", text=_dumps(payload))],
                          is_error=True)


def error_result(error: LLMMixerError) -> CallToolResult:
    """``isError: true``: the plain line, then ``{"error": {...}}``; no structured content (see the module docstring)."""
    return _error_blocks(error.to_dict())


def job_result(payload: dict[str, Any], *, is_error: bool = False) -> CallToolResult:
    """A success, or (``is_error``) an error whose JSON block is ``payload``, which then holds an ``error`` object."""
    if not is_error:
        return ok_result(payload)
    return _error_blocks(payload)


def result_payload(result: CallToolResult) -> dict[str, Any]:
    """The object a result carries: its structured content, else the first text block that is a JSON object.

    Errors travel as text only (the plain line, then the JSON), so this is how a client reads ``{"error": {...}}``
    back; ``{}`` when there is neither (a peer that answered with prose).
    """
    if isinstance(result.structured_content, dict):
        return result.structured_content
    for block in result.content:
        if isinstance(block, TextContent) and block.text.lstrip().startswith("{"):
            try:
                value = json.loads(block.text)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return {}

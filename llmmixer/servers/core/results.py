"""Tool results on the wire: success and classified errors, shaped the same way by every server.

A success carries ``structuredContent`` (checked against the tool's output schema) and, as its first text content,
the same object as JSON, so hosts that only read text see what clients that read ``structuredContent`` see.

An error is ``isError: true`` with the JSON ``{"error": {...}}`` as its text and **no** ``structuredContent``.
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

__all__ = ["ok_result", "error_result", "job_result", "result_payload"]


def _dumps(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def ok_result(payload: dict[str, Any]) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=_dumps(payload))], structured_content=payload)


def error_result(error: LLMMixerError) -> CallToolResult:
    """``isError: true``; the text is ``{"error": {...}}``; no structured content (see the module docstring)."""
    return CallToolResult(content=[TextContent(type="text", text=_dumps(error.to_dict()))], is_error=True)


def job_result(payload: dict[str, Any], *, is_error: bool = False) -> CallToolResult:
    """A success, or (``is_error``) an error whose text is ``payload``, which then holds an ``error`` object."""
    if not is_error:
        return ok_result(payload)
    return CallToolResult(content=[TextContent(type="text", text=_dumps(payload))], is_error=True)


def result_payload(result: CallToolResult) -> dict[str, Any]:
    """The object a result carries: its structured content, else its first text content parsed as a JSON object.

    Errors travel as text only, so this is how a client reads ``{"error": {...}}`` back; ``{}`` when there is
    neither (a peer that answered with prose).
    """
    if isinstance(result.structured_content, dict):
        return result.structured_content
    for block in result.content:
        if isinstance(block, TextContent):
            try:
                value = json.loads(block.text)
            except ValueError:
                return {}
            return value if isinstance(value, dict) else {}
    return {}

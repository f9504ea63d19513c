"""Tool results on the wire: success and classified errors, shaped the same way by every server.

A result's first text content is the JSON of its structured content, so hosts that only read text see the same
object as clients that read ``structuredContent``.
"""

from __future__ import annotations

import json
from typing import Any

from mcp_types import CallToolResult, TextContent

from .errors import LLMMixerError

__all__ = ["ok_result", "error_result"]


def _dumps(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def ok_result(payload: dict[str, Any]) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=_dumps(payload))], structured_content=payload)


def error_result(error: LLMMixerError) -> CallToolResult:
    """``isError: true``; text and structured content are both ``{"error": {...}}``."""
    payload = error.to_dict()
    return CallToolResult(content=[TextContent(type="text", text=_dumps(payload))], structured_content=payload,
                          is_error=True)

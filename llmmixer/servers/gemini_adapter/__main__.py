"""``llmmixer-gemini`` / ``python -m llmmixer.servers.gemini_adapter``: the Gemini adapter as an MCP server."""

from __future__ import annotations

from collections.abc import Sequence

from ..core.mcp import adapter_main
from .adapter import GeminiAdapter


def main(argv: Sequence[str] | None = None) -> None:
    adapter_main(GeminiAdapter, argv)


if __name__ == "__main__":
    main()

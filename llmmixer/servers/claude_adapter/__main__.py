"""``llmmixer-claude`` / ``python -m llmmixer.servers.claude_adapter``: the Claude adapter as an MCP server."""

from __future__ import annotations

from collections.abc import Sequence

from ..core.mcp import adapter_main
from .adapter import ClaudeAdapter


def main(argv: Sequence[str] | None = None) -> None:
    adapter_main(ClaudeAdapter, argv)


if __name__ == "__main__":
    main()

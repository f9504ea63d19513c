"""``llmmixer-gpt`` / ``python -m llmmixer.servers.gpt_adapter``: the GPT adapter as an MCP server."""

from __future__ import annotations

from collections.abc import Sequence

from ..core.mcp import adapter_main
from .adapter import GPTAdapter


def main(argv: Sequence[str] | None = None) -> None:
    adapter_main(GPTAdapter, argv)


if __name__ == "__main__":
    main()

"""``llmmixer-gemini`` / ``python -m llmmixer.servers.gemini_adapter``: the Gemini adapter as an MCP server.

The adapter (and its SDK) is named, not imported: the server answers ``initialize`` and ``tools/list`` first
(see :mod:`llmmixer.servers.core.lazy`).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..core.mcp import LLMMixerMCPServer, adapter_main, adapter_server
from .manifest import MANIFEST

ADAPTER = "llmmixer.servers.gemini_adapter.adapter:GeminiAdapter"


def build_server(argv: Sequence[str] | None = None) -> LLMMixerMCPServer:
    """The server object ``main`` serves, for the in-process transport (transport flags are ignored)."""
    return adapter_server(ADAPTER, argv, manifest=MANIFEST)[0]


def main(argv: Sequence[str] | None = None) -> None:
    adapter_main(ADAPTER, argv, manifest=MANIFEST)


if __name__ == "__main__":
    main()

"""``llmmixer-gpt`` / ``python -m llmmixer.servers.gpt_adapter``: the GPT adapter as an MCP server.

The adapter (and its SDK) is named, not imported: the server answers ``initialize`` and ``tools/list`` first
(see :mod:`llmmixer.servers.core.lazy`).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..core.mcp import LLMMixerMCPServer, adapter_main, adapter_server
from .manifest import MANIFEST
from .options import add_arguments

ADAPTER = "llmmixer.servers.gpt_adapter.adapter:GPTAdapter"


def build_server(argv: Sequence[str] | None = None) -> LLMMixerMCPServer:
    """The server object ``main`` serves, for the in-process transport (transport flags are ignored)."""
    return adapter_server(ADAPTER, argv, manifest=MANIFEST, add_arguments=add_arguments)[0]


def main(argv: Sequence[str] | None = None) -> None:
    adapter_main(ADAPTER, argv, manifest=MANIFEST, add_arguments=add_arguments)


if __name__ == "__main__":
    main()

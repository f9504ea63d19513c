"""Every reach-in into a third-party library's internals, in one place.

LLMMixer uses public APIs everywhere else. Where a library offers no public way to do what we need, the private
attribute is touched here and only here, each through one small function that says what it needs and why. An
upgrade that moves one of them fails ``tests/test_sdk_compat.py`` loudly, naming the attribute, instead of breaking
a server at run time.

- MCP SDK (``mcp`` 2.x): the low-level server behind ``MCPServer`` (to serve it over our own stdio streams, and to
  unregister the handlers of methods we do not serve), and a registered tool's argument schema (to refuse unknown
  arguments with a message that names the known ones, before the SDK validates).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp.server.lowlevel.server import Server
    from mcp.server.mcpserver import MCPServer

__all__ = ["SDKChanged", "lowlevel_server", "unregister_requests", "tool_parameters"]


class SDKChanged(RuntimeError):
    """A library no longer has the internal this module relies on: see the module docstring."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} is gone from the installed library: update llmmixer/servers/core/sdk_compat.py "
                         "for this version")


def lowlevel_server(server: MCPServer) -> Server[Any]:
    """The SDK's low-level ``Server`` behind ``server``: what ``MCPServer.run_stdio_async`` runs, which we run over
    our own stdio streams (the SDK has no public hook for them)."""
    lowlevel = getattr(server, "_lowlevel_server", None)
    if lowlevel is None or not hasattr(lowlevel, "run") or not hasattr(lowlevel, "create_initialization_options"):
        raise SDKChanged("MCPServer._lowlevel_server (with run and create_initialization_options)")
    return lowlevel


def unregister_requests(server: MCPServer, methods: Iterable[str]) -> None:
    """Remove the request handlers of ``methods`` from ``server``, so it neither serves nor advertises them (the SDK
    wires prompts, resources, completion, logging and subscriptions into every server and has no way to
    unregister them)."""
    handlers = getattr(lowlevel_server(server), "_request_handlers", None)
    if not isinstance(handlers, dict):
        raise SDKChanged("Server._request_handlers (a dict of method -> handler)")
    for method in methods:
        handlers.pop(method, None)


def tool_parameters(server: MCPServer, name: str) -> dict[str, Any] | None:
    """The input schema of the tool ``name`` as registered (None: no such tool)."""
    manager = getattr(server, "_tool_manager", None)
    if manager is None or not hasattr(manager, "get_tool"):
        raise SDKChanged("MCPServer._tool_manager.get_tool")
    tool = manager.get_tool(name)
    if tool is None:
        return None
    parameters = getattr(tool, "parameters", None)
    if not isinstance(parameters, dict):
        raise SDKChanged("Tool.parameters (the tool's input schema)")
    return parameters

"""The ``inprocess`` transport: a registered server's own MCP server object, inside the orchestrator.

The pool connects to it the way the MCP SDK's ``Client(server)`` does, through in-memory streams: the same
JSON-RPC messages, progress notifications, cancellation (``notifications/cancelled`` cancels the handler) and error
results as over stdio, only the pipe differs. What a server entry loses is its own process: it reads the
orchestrator's environment (so an entry with ``env`` is refused when the config is read) and shares its memory and
its faults. ``llmmixer serve`` keeps one process per server unless a config asks otherwise.

A server package offers the transport by exposing ``build_server(argv) -> MCPServer`` in its ``__main__`` module
(the object its console script serves; transport flags are ignored). Every bundled server does.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
from typing import TYPE_CHECKING, Any

from ..servers.core.errors import InvalidInputError, UnavailableError
from ..servers.core.manifest import ServerManifest, load_manifests, manifest_for

if TYPE_CHECKING:
    from .config import ServerSpec

__all__ = ["build_inprocess_server", "manifest_of"]


def manifest_of(source: str, command: str | None, args: list[str]) -> tuple[ServerManifest | None, list[str]]:
    """The registered server an entry plays, and its flags: by ``source``, else by what ``command`` would launch
    (its console script, or ``python -m`` its module, whose flags follow the module)."""
    manifest = manifest_for(source)
    if manifest is not None:
        return manifest, list(args)
    name = os.path.basename(command or "")
    for candidate in load_manifests():
        if candidate.script and name == candidate.script:
            return candidate, list(args)
        if args[:2] == ["-m", candidate.module]:
            return candidate, list(args[2:])
    return None, list(args)


def build_inprocess_server(spec: ServerSpec) -> Any:
    """A fresh server object for ``spec`` (one per connection, as a process would be).

    Raises:
        UnavailableError: the server's package has no ``build_server``.
        InvalidInputError: ``args`` are not flags the server takes.
    """
    manifest, args = manifest_of(spec.source, spec.command, spec.args)
    if manifest is None:  # the config refuses this already; a plugin uninstalled since is the remaining case
        raise UnavailableError(f"server {spec.name!r}: no registered server {spec.source!r} to run in process")
    module = importlib.import_module(f"{manifest.module}.__main__")
    build = getattr(module, "build_server", None)
    if build is None:
        raise UnavailableError(f"server {spec.name!r}: {manifest.module} offers no build_server(argv) for the "
                               "inprocess transport; use \"transport\": \"stdio\"")
    usage = io.StringIO()
    try:
        with contextlib.redirect_stderr(usage):
            return build(args)
    except SystemExit:  # argparse: a flag the server does not take, or a bad value
        message = usage.getvalue().strip().splitlines()
        raise InvalidInputError(f"server {spec.name!r}: {message[-1] if message else 'bad args'}") from None

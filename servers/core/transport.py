"""The transport CLI and HTTP security shared by every LLMMixer MCP server.

``stdio`` is the default (what Claude Desktop launches). ``--transport streamable-http`` serves ``/mcp`` on
127.0.0.1 unless told otherwise; a non-loopback bind refuses to start without ``LLMMIXER_TOKEN``.

We always pass explicit :class:`TransportSecuritySettings`: the SDK switches its Host/Origin guard off by itself
for any host other than a loopback name, which is exactly when it matters most.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "TOKEN_ENV",
    "add_transport_arguments",
    "is_loopback",
    "security_settings",
    "BearerTokenMiddleware",
    "streamable_http_app",
    "serve",
    "serve_async",
]

TOKEN_ENV = "LLMMIXER_TOKEN"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def add_transport_arguments(parser: argparse.ArgumentParser, *, default_port: int = 8000) -> None:
    group = parser.add_argument_group("transport")
    group.add_argument("--transport", choices=("stdio", "streamable-http"), default="stdio",
                       help="stdio (default, what MCP hosts launch) or streamable-http (serves /mcp)")
    group.add_argument("--host", default="127.0.0.1",
                       help=f"bind address for streamable-http (default 127.0.0.1; others require ${TOKEN_ENV})")
    group.add_argument("--port", type=int, default=default_port, help="port for streamable-http")


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def security_settings(host: str) -> TransportSecuritySettings:
    """Host/Origin allow-lists for a bind address: loopback names always, plus the bound host itself."""
    from mcp.server.transport_security import TransportSecuritySettings

    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    if not is_loopback(host) and host not in ("0.0.0.0", "::"):
        bracketed = f"[{host}]" if ":" in host else host
        hosts.append(f"{bracketed}:*")
        origins += [f"http://{bracketed}:*", f"https://{bracketed}:*"]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts,
                                     allowed_origins=origins)


class BearerTokenMiddleware:
    """Pure ASGI (streaming-safe): every HTTP request must carry ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            supplied = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(supplied, self._expected):
                from starlette.responses import JSONResponse

                body = {"error": {"kind": "auth", "message": f"missing or wrong bearer token (set by ${TOKEN_ENV})",
                                  "vendor": None, "status": 401, "retry_after_s": None, "retryable": False}}
                response = JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def streamable_http_app(server: MCPServer, *, host: str = "127.0.0.1", token: str | None = None) -> ASGIApp:
    """The server's Streamable HTTP app at ``/mcp`` with our security settings and optional bearer auth.

    The SDK's app owns its lifespan (the session manager); the bearer check wraps it and lets lifespan through.
    """
    app = server.streamable_http_app(streamable_http_path="/mcp", host=host,
                                     transport_security=security_settings(host))
    return BearerTokenMiddleware(app, token) if token else app


def serve(
    server: MCPServer,
    args: argparse.Namespace,
    *,
    on_shutdown: Callable[[], Any] | None = None,
) -> None:
    """Run ``server`` on the transport chosen by ``args`` until stdin closes or the process is stopped."""
    import anyio

    try:
        anyio.run(serve_async, server, args)
    finally:
        if on_shutdown is not None:
            on_shutdown()


async def serve_async(server: MCPServer, args: argparse.Namespace) -> None:
    """:func:`serve` inside a running event loop: for servers whose state (a task group, a pool of child servers)
    must outlive every session and be closed once, by the caller, when serving ends."""
    token = os.environ.get(TOKEN_ENV) or None
    if args.transport == "stdio":
        from .stdio import run_stdio

        await run_stdio(server)
        return
    if not is_loopback(args.host) and not token:
        sys.stderr.write(f"refusing to bind {args.host}: a non-loopback bind requires ${TOKEN_ENV}\n")
        raise SystemExit(2)
    import uvicorn

    app = streamable_http_app(server, host=args.host, token=token)
    await uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning")).serve()


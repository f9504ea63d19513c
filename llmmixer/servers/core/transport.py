"""The transport CLI shared by every LLMMixer MCP server.

``stdio`` is the default (what Claude Desktop launches). ``--transport streamable-http`` serves ``/mcp`` on
127.0.0.1 unless told otherwise; a non-loopback bind refuses to start without ``LLMMIXER_TOKEN``, and a wildcard
bind (``0.0.0.0``, ``::``) answers to the machine's own addresses and names plus ``--allowed-host``. The rules
themselves live in :mod:`.security`, shared with the web app.

``/mcp`` streams are resumable (event ids, a priming event with ``retry:``, ``Last-Event-ID``): see
:mod:`.event_store`.

We always pass explicit :class:`TransportSecuritySettings` too: the SDK switches its Host/Origin guard off by
itself for any host other than a loopback name, which is exactly when it matters most.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from .security import (
    ALLOWED_HOSTS_ENV,
    TOKEN_ENV,
    BindRefused,
    HTTPGuard,
    HTTPPolicy,
    allowed_host_names,
    is_loopback,
    transport_security_settings,
)

if TYPE_CHECKING:
    import anyio
    from mcp.server.mcpserver import MCPServer
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.types import ASGIApp

__all__ = [
    "TOKEN_ENV",
    "add_transport_arguments",
    "is_loopback",
    "security_settings",
    "streamable_http_app",
    "serve",
    "serve_async",
    "exit_at_once",
]


def add_transport_arguments(parser: argparse.ArgumentParser, *, default_port: int = 8000) -> None:
    group = parser.add_argument_group("transport")
    group.add_argument("--transport", choices=("stdio", "streamable-http"), default="stdio",
                       help="stdio (default, what MCP hosts launch) or streamable-http (serves /mcp)")
    group.add_argument("--host", default="127.0.0.1",
                       help=f"bind address for streamable-http (default 127.0.0.1; others require ${TOKEN_ENV})")
    group.add_argument("--port", type=int, default=default_port, help="port for streamable-http")
    group.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                       help=f"another Host name to answer to (repeatable; also ${ALLOWED_HOSTS_ENV}, comma-separated)")


def _policy(host: str, token: str | None, allowed_hosts: Sequence[str] = ()) -> HTTPPolicy:
    return HTTPPolicy.for_bind(host, token=token, allowed_hosts=allowed_hosts)


def security_settings(host: str, allowed_hosts: Sequence[str] = ()) -> TransportSecuritySettings:
    """The SDK's Host/Origin allow-lists for a bind address (the same lists our own guard checks)."""
    return transport_security_settings(HTTPPolicy(host=host, allowed_hosts=allowed_host_names(host, allowed_hosts)))


def streamable_http_app(server: MCPServer, *, host: str = "127.0.0.1", token: str | None = None,
                        allowed_hosts: Sequence[str] = ()) -> ASGIApp:
    """The server's Streamable HTTP app at ``/mcp`` behind the shared front door (Host, Origin, bearer token).

    The SDK's app owns its lifespan (the session manager); the guard wraps it and lets lifespan through.

    Raises:
        BindRefused: ``host`` is not loopback and no token is set.
    """
    from .abandoned import AbandonedCalls
    from .event_store import RETRY_MS, MemoryEventStore

    policy = _policy(host, token, allowed_hosts)
    app = server.streamable_http_app(streamable_http_path="/mcp", host=host,
                                     transport_security=transport_security_settings(policy),
                                     event_store=MemoryEventStore(), retry_interval=RETRY_MS)
    _event_store_per_session(server.session_manager)
    return HTTPGuard(AbandonedCalls(app), policy)


def _event_store_per_session(manager: Any) -> None:
    """Give each session its own event store (resumable streams; see :mod:`.event_store`).

    The SDK hands the one ``event_store`` to every session's transport, and a stream's id is the client's own
    request id, so two clients' request 2 would share a stream and one could replay the other's messages. The SDK
    has no per-session factory; its session manager creates each transport in ``_admit_session``, so the store is
    swapped there, before the session's first request is served.
    """
    from .event_store import MemoryEventStore

    admit = manager._admit_session  # noqa: SLF001 - no public hook for a per-session store

    def admit_with_own_store(*args: Any, **kwargs: Any) -> Any:
        transport = admit(*args, **kwargs)
        if transport is not None:
            transport._event_store = MemoryEventStore()  # noqa: SLF001
            _prime_by_session(transport)
            _end_cancelled_unanswered(transport)
        return transport

    manager._admit_session = admit_with_own_store  # noqa: SLF001


def _prime_by_session(transport: Any) -> None:
    """Prime a session's POST SSE streams (an id, empty data, ``retry:``) by the protocol version the session
    negotiated, not by each request's ``MCP-Protocol-Version`` header alone.

    The SDK primes a stream when the request's header says 2025-11-25 or later (older clients cannot parse an event
    with empty data). A client that negotiated 2025-11-25 but sends an older header on a request (the conformance
    suite's resumability scenario sends 2025-03-26 on its raw POST) can parse one all the same, and without it a
    dropped stream could not be resumed. The version the ``initialize`` request asked for is kept per session
    (this transport serves one session); each request is primed by the newer of the two.
    """
    create = transport._create_session_message  # noqa: SLF001 - no public hook for how a stream is primed
    mint = transport._mint_priming_event  # noqa: SLF001
    negotiated: list[str] = []

    def newer(version: str) -> str:
        return max(version, *negotiated)  # ISO dates: the later is the greater string

    def create_session_message(message: Any, request: Any, request_id: Any, protocol_version: str) -> Any:
        if getattr(message, "method", None) == "initialize" and not negotiated:
            negotiated.append(protocol_version)
        return create(message, request, request_id, newer(protocol_version))

    async def mint_priming_event(stream_id: Any, protocol_version: str) -> Any:
        return await mint(stream_id, newer(protocol_version))

    transport._create_session_message = create_session_message  # noqa: SLF001
    transport._mint_priming_event = mint_priming_event  # noqa: SLF001


def _end_cancelled_unanswered(transport: Any) -> None:
    """End a cancelled request's POST SSE stream without an answer.

    A request settles unanswered only when it was cancelled: the client sent ``notifications/cancelled`` or dropped
    its POST (an ``AbortSignal`` in the TypeScript SDK does both). The SDK then answers it with ``-32800 Request
    cancelled`` on the 2025-era wire, which the spec's cancellation rules say not to send and which the TypeScript
    client, having dropped the request, reports as a response "for an unknown message ID". Here the request's stream
    is closed instead, and nothing is sent.
    """

    async def end_quietly(request_id: Any) -> None:
        transport.close_sse_stream(str(request_id))

    transport._terminate_unanswered_request = end_quietly  # noqa: SLF001 - no public hook for a cancelled request


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
    except KeyboardInterrupt:  # Ctrl-C on a server run by hand: it has shut down cleanly; no traceback
        if args.transport != "stdio":
            sys.stderr.write(f"{_name()}: stopped\n")
    finally:
        if on_shutdown is not None:
            on_shutdown()


def _name() -> str:
    return os.path.basename(sys.argv[0]) or "llmmixer"


def exit_at_once(code: int = 0) -> NoReturn:
    """End a server process that has finished serving: flush what is buffered, then skip the interpreter's teardown.

    Once a host closes a stdio server's input, everything the server owes has been written and its lifespan has
    closed what it holds (the SDK client, the PTY children). What remains is Python's own teardown: finalising the
    thousands of modules and objects a vendor SDK loads, 0.4-0.5 CPU-seconds per adapter, which the host (or the
    orchestrator, which closes several at once) would wait for. Call it from a console script only, never from a
    process that still has work of its own (it skips ``atexit`` handlers).
    """
    from . import telemetry

    telemetry.shutdown()  # spans still batched reach the collector (a no-op with telemetry off)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


async def serve_async(server: MCPServer, args: argparse.Namespace, *, stop: anyio.Event | None = None) -> None:
    """:func:`serve` inside a running event loop: for servers whose state (a task group, a pool of child servers)
    must outlive every session and be closed once, by the caller, when serving ends.

    ``stop``: when set, HTTP serving shuts down the way uvicorn does on a signal (open connections answered, the
    app's lifespan ended), not by cancellation, which leaves a traceback from the lifespan it cut short. The stdio
    caller cancels instead: there is nothing to shut down but reading stdin.
    """
    token = os.environ.get(TOKEN_ENV) or None
    if args.transport == "stdio":
        from .stdio import run_stdio

        await run_stdio(server)
        return
    try:
        app = streamable_http_app(server, host=args.host, token=token,
                                  allowed_hosts=getattr(args, "allowed_host", None) or ())
    except BindRefused as exc:
        sys.stderr.write(f"{exc}\n")
        raise SystemExit(2) from None
    import anyio
    import uvicorn

    http = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning"))
    done = anyio.Event()

    async def run() -> None:
        try:
            await http.serve()
        finally:
            done.set()

    async with anyio.create_task_group() as tg:
        if stop is not None:
            async def stop_when_told() -> None:
                await stop.wait()
                http.should_exit = True

            tg.start_soon(stop_when_told)
        tg.start_soon(run)
        with anyio.move_on_after(120):  # uvicorn has no "listening" event: look until it says so, or gives up
            while not (http.started or done.is_set()):
                await anyio.sleep(0.02)
        if http.started:  # said once it listens (and handles Ctrl-C itself), not before
            host = f"[{args.host}]" if ":" in args.host else args.host
            sys.stderr.write(f"{_name()}: MCP over Streamable HTTP at http://{host}:{args.port}/mcp"
                             f"{' (bearer token required)' if token else ''}; Ctrl-C stops it\n")
            sys.stderr.flush()
        await done.wait()
        tg.cancel_scope.cancel()

"""Stdio for MCP servers without a thread hop per message.

The SDK's ``stdio_server()`` wraps stdin and stdout with ``anyio.wrap_file``, so every line read and every
``write`` + ``flush`` of a response or progress notification runs in a worker thread. Profiling an adapter server
showed those hand-offs (about 170 per streamed ``generate`` call) as the largest cost between an MCP client and the
vendor request. Here the same pipes are read and written non-blocking on the event loop itself (``wait_readable`` /
``wait_writable``), and the SDK's own ``stdio_server`` does the framing and JSON-RPC parsing as before.

As the SDK does, fd 0 and fd 1 are diverted while serving (to the null device and to stderr), so a stray ``print``
in a handler or a child process cannot corrupt the wire.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

__all__ = ["FdLineReader", "FdWriter", "run_stdio"]

READ_CHUNK = 65536


class FdLineReader:
    """``async for line in reader``: UTF-8 lines (with their newline) from a non-blocking descriptor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        self._buffer = bytearray()

    async def __aiter__(self) -> AsyncIterator[str]:
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line = bytes(self._buffer[: newline + 1])
                del self._buffer[: newline + 1]
                yield line.decode("utf-8", errors="replace")
                continue
            try:
                chunk = os.read(self.fd, READ_CHUNK)
            except BlockingIOError:
                await anyio.wait_readable(self.fd)
                continue
            if not chunk:  # EOF: the client closed our stdin
                if self._buffer:
                    yield self._buffer.decode("utf-8", errors="replace")
                return
            self._buffer += chunk


class FdWriter:
    """Buffered text writes to a non-blocking descriptor; ``flush`` waits for room in the pipe, never a thread."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        self._pending = bytearray()

    async def write(self, text: str) -> None:
        self._pending += text.encode("utf-8")

    async def flush(self) -> None:
        while self._pending:
            try:
                written = os.write(self.fd, self._pending)
            except BlockingIOError:
                await anyio.wait_writable(self.fd)
                continue
            del self._pending[:written]


@contextlib.contextmanager
def _claimed_std_fds() -> Iterator[tuple[int, int]]:
    """Private duplicates of fd 0 and fd 1 for the wire; fd 0 → /dev/null and fd 1 → stderr while serving."""
    sys.stdout.flush()
    wire_in, wire_out = os.dup(0), os.dup(1)
    saved_in, saved_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(devnull, 0)
        os.dup2(2, 1)
        yield wire_in, wire_out
    finally:
        for fd in (wire_in, wire_out):  # O_NONBLOCK lives on the shared open file: leave it as we found it
            with contextlib.suppress(OSError):
                os.set_blocking(fd, True)
        os.dup2(saved_in, 0)
        os.dup2(saved_out, 1)
        for fd in (devnull, saved_in, saved_out, wire_in, wire_out):
            with contextlib.suppress(OSError):
                os.close(fd)


async def run_stdio(server: MCPServer) -> None:
    """Serve ``server`` over this process's stdin/stdout until the client closes stdin."""
    from mcp.server.stdio import stdio_server

    with _claimed_std_fds() as (wire_in, wire_out):
        reader, writer = FdLineReader(wire_in), FdWriter(wire_out)
        async with stdio_server(stdin=reader, stdout=writer) as (read_stream, write_stream):  # type: ignore[arg-type]
            # What MCPServer.run_stdio_async does, over our streams (the SDK has no public hook for them).
            lowlevel = server._lowlevel_server  # noqa: SLF001
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())

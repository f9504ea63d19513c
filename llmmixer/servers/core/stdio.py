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

import array
import collections
import contextlib
import fcntl
import json
import os
import stat
import sys
import termios
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

__all__ = ["FdLineReader", "FdWriter", "run_stdio", "unread_bytes_probe"]

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
    """The wire's writing end: coalesced writes, and no response in the same read as the notifications before it.

    The SDK's writer loop calls :meth:`write` (one JSON-RPC message) then :meth:`flush` for every message; both only
    queue it. :meth:`run` (a task beside the server) does the writing:

    - **Coalescing.** Once woken it lets every ready task run (checkpoints) for as long as that keeps adding
      messages, then writes everything queued in one ``os.write``. Notifications a handler sends back to back, or
      several handlers at once, cost one system call instead of one each.
    - **A response starts its own read.** TypeScript-SDK hosts (Claude Desktop, the Inspector) dispatch a progress
      notification a microtask later than a response read in the same chunk, and by then the response has dropped
      the progress handler: the last deltas of a stream are lost (typescript-sdk#2580). So a write never carries a
      response after a notification, and a write that starts with a response waits until the reader has taken
      every byte already in the pipe (``FIONREAD`` on a pipe, ``SIOCOUTQ`` on the socketpair Node's
      ``child_process`` uses). Node reads the response in a later read, after it has dispatched the notifications.
      The wait is the reader's own read latency (tens of microseconds with a reader that keeps up); nothing else
      delays a response. On a terminal or a file there is nothing to ask, and a response is written at once.
    """

    #: Bytes queued before :meth:`flush` makes the SDK's writer wait (backpressure, like a full pipe).
    HIGH_WATER = 1 << 20
    #: Checkpoints a wake-up may spend collecting more messages before it writes.
    MAX_COALESCE_ROUNDS = 256
    #: Loop turns in a row without a new message after which the producers count as idle.
    IDLE_TURNS = 1
    #: Loop turns spent re-checking a not yet drained pipe before sleeping between checks.
    DRAIN_SPIN_TURNS = 16

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        self._frames: collections.deque[tuple[bytes, bool]] = collections.deque()
        self._queued_bytes = 0
        self._wake = anyio.Event()
        self._room = anyio.Event()
        self._closing = False
        self._unread = unread_bytes_probe(fd)
        # On a Unix socket the count can reach 0 while the reader is still inside the read call that took the last
        # bytes, and that call would also take a response written now; a short settle, then a second look, closes
        # that window (a pipe's count is read under the pipe's lock, so a pipe needs none).
        self._settle_s = SOCKET_SETTLE_S if self._unread is not None and stat.S_ISSOCK(os.fstat(fd).st_mode) else 0.0
        #: ``os.write`` calls that wrote something (what coalescing saves; read by tests and the bench).
        self.writes = 0

    async def write(self, text: str) -> None:
        data = text.encode("utf-8")
        self._frames.append((data, _is_response(data)))
        self._queued_bytes += len(data)

    async def flush(self) -> None:
        self._wake.set()
        while self._queued_bytes > self.HIGH_WATER and not self._closing:
            self._room = anyio.Event()
            await self._room.wait()

    async def run(self) -> None:
        """Write queued messages until :meth:`close` has been called and the queue is empty."""
        while True:
            if not self._frames:
                if self._closing:
                    return
                await self._wake.wait()
                self._wake = anyio.Event()
                continue
            await self._coalesce()
            data, starts_with_response = self._take_write()
            if starts_with_response:
                await self._drained()
            await self._write_all(data)
            if self._queued_bytes <= self.HIGH_WATER:
                self._room.set()

    def close(self) -> None:
        """Stop once everything queued is written."""
        self._closing = True
        self._wake.set()
        self._room.set()

    async def _coalesce(self) -> None:
        # "Ready together": whatever the producers queue while they keep getting turns. Waiting for several idle
        # turns in a row made bigger writes but held notifications back until the producer stopped, which then
        # made the response wait for the host to read all of them at once (measured: bench/stdio_bench.py).
        idle = 0
        for _ in range(self.MAX_COALESCE_ROUNDS):
            queued = len(self._frames)
            await anyio.lowlevel.checkpoint()
            idle = idle + 1 if len(self._frames) == queued else 0
            if idle >= self.IDLE_TURNS or self._queued_bytes >= READ_CHUNK or self._frames[-1][1]:
                return  # idle, a read's worth, or a response queued (the burst it answers is over)

    def _take_write(self) -> tuple[bytes, bool]:
        """Leading responses, then notifications and requests up to (not including) the next response."""
        parts: list[bytes] = []
        starts_with_response = self._frames[0][1]
        seen_other = False
        while self._frames:
            data, is_response = self._frames[0]
            if is_response and seen_other:
                break
            seen_other = seen_other or not is_response
            self._frames.popleft()
            self._queued_bytes -= len(data)
            parts.append(data)
        return b"".join(parts), starts_with_response

    async def _drained(self) -> None:
        """Until the reader has read every byte we wrote: a few turns of the loop first (a reader that keeps up
        has read by then), then the event loop's finest sleep (a millisecond) while it has not."""
        if self._unread is None:
            return
        while True:
            turns = 0
            while self._unread():
                if turns < self.DRAIN_SPIN_TURNS:
                    turns += 1
                    await anyio.lowlevel.checkpoint()
                else:
                    await anyio.sleep(0.001)
            if not self._settle_s:
                return
            await anyio.sleep(self._settle_s)
            if not self._unread():
                return

    async def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.fd, view)
            except BlockingIOError:
                await anyio.wait_writable(self.fd)
                continue
            self.writes += 1
            view = view[written:]


def _is_response(data: bytes) -> bool:
    """Whether the JSON-RPC message ``data`` is a response: an object without ``method`` (a notification or a
    request has one). Read from the parsed message, so it holds whatever order the serializer writes the keys in;
    anything unreadable counts as a response, which at worst waits for the reader once more than it had to."""
    try:
        message = json.loads(data)
    except ValueError:
        return True
    return not (isinstance(message, dict) and "method" in message)


#: How long a response waits, once a socket's reader has taken every byte, before it is written (see FdWriter).
SOCKET_SETTLE_S = 0.001


def unread_bytes_probe(fd: int) -> Callable[[], int] | None:
    """A function that says how many bytes written to ``fd`` its reader has not read yet; ``None`` if unknowable.

    A pipe answers ``FIONREAD`` for the data in it (from either end); a Unix socket answers ``SIOCOUTQ`` (the
    ``TIOCOUTQ`` number) for what it sent that the peer has not consumed.
    """
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return None
    if stat.S_ISFIFO(mode):
        request = termios.FIONREAD
    elif stat.S_ISSOCK(mode):
        request = termios.TIOCOUTQ  # == SIOCOUTQ
    else:
        return None
    buffer = array.array("i", [0])

    def unread() -> int:
        try:
            fcntl.ioctl(fd, request, buffer, True)
        except OSError:
            return 0
        return buffer[0]

    try:
        fcntl.ioctl(fd, request, buffer, True)
    except OSError:
        return None
    return unread


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

    from .sdk_compat import lowlevel_server

    with _claimed_std_fds() as (wire_in, wire_out):
        reader, writer = FdLineReader(wire_in), FdWriter(wire_out)
        async with anyio.create_task_group() as tg:
            tg.start_soon(writer.run)
            try:
                async with stdio_server(stdin=reader, stdout=writer) as (read_stream,  # type: ignore[arg-type]
                                                                         write_stream):
                    # What MCPServer.run_stdio_async does, over our streams (the SDK has no public hook for them).
                    lowlevel = lowlevel_server(server)
                    await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
            finally:
                writer.close()  # the writer task ends once everything queued is out

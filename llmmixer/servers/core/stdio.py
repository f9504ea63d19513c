"""Stdio for MCP servers without a thread hop per message.

The SDK's ``stdio_server()`` wraps stdin and stdout with ``anyio.wrap_file``, so every line read and every
``write`` + ``flush`` of a response or progress notification runs in a worker thread. Profiling an adapter server
showed those hand-offs (about 170 per streamed ``generate`` call) as the largest cost between an MCP client and the
vendor request. Here the same pipes are read and written non-blocking on the event loop itself (``wait_readable`` /
``wait_writable``), and the SDK's own ``stdio_server`` does the framing and JSON-RPC parsing as before.

As the SDK does, fd 0 and fd 1 are diverted while serving (to the null device and to stderr), so a stray ``print``
in a handler or a child process cannot corrupt the wire.

Two promises the SDK's own stdio loop does not keep (issue 24):

- **Every line gets an answer.** A line that is not JSON (a lone ``\ud800`` escape, nesting deeper than the parser's
  bound of about 200 levels) is answered with ``-32700``, a message that is not a JSON-RPC request with ``-32600``,
  and ``params`` that is not an object with ``-32602``, carrying the request's ``id`` whenever one can be read. The
  SDK would drop such a line, and the host would wait until its own timeout.
- **No server outlives its host.** The server stops when stdin closes, when it is re-parented (its host died
  while something else still held the pipe), or when its output can no longer be delivered: the reading end is
  closed (``POLLERR``/``POLLHUP``), or a write has made no progress for :data:`STALL_S`. What is still queued when
  stdin closes gets at most :data:`DRAIN_ON_EXIT_S` to go out. Its children (adapter servers, commands) are
  closed on the way out by their owners' ``finally``, and see their own stdin close if this process is killed.
"""

from __future__ import annotations

import array
import collections
import contextlib
import fcntl
import json
import os
import select
import stat
import sys
import termios
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

__all__ = ["FdLineReader", "FdWriter", "ReaderGone", "run_stdio", "unread_bytes_probe", "error_answer"]

READ_CHUNK = 65536
#: A write (or a wait for the reader to drain) that makes no progress for this long means the reader is gone.
STALL_S = 30.0
#: How long what is queued may take to go out once stdin has closed.
DRAIN_ON_EXIT_S = 1.0
#: How often the host is checked for (re-parenting).
HOST_CHECK_S = 0.25


class ReaderGone(Exception):
    """Nobody will read this server's output any more: the host closed its end, or stopped reading."""


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
        #: Set when the reader is gone (:class:`ReaderGone`); the queue is dropped and writes are discarded.
        self.gone = anyio.Event()
        #: Set when :meth:`run` has ended, however it ended.
        self.done = anyio.Event()

    async def write(self, text: str) -> None:
        if self.gone.is_set():
            return
        data = text.encode("utf-8")
        self._frames.append((data, _is_response(data)))
        self._queued_bytes += len(data)

    async def flush(self) -> None:
        self._wake.set()
        while self._queued_bytes > self.HIGH_WATER and not self._closing and not self.gone.is_set():
            self._room = anyio.Event()
            await self._room.wait()

    async def run(self) -> None:
        """Write queued messages until :meth:`close` has been called and the queue is empty, or the reader is gone
        (then :attr:`gone` is set and the queue dropped)."""
        try:
            await self._run()
        except ReaderGone:
            self._frames.clear()
            self._queued_bytes = 0
            self.gone.set()
            self._room.set()
        finally:
            self.done.set()

    async def _run(self) -> None:
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
            stall = _Stall()
            while unread := self._unread():
                if turns < self.DRAIN_SPIN_TURNS:
                    turns += 1
                    await anyio.lowlevel.checkpoint()
                    continue
                stall.check(unread, self.fd)  # ReaderGone: the reader closed its end, or stopped reading
                await anyio.sleep(min(0.001 * 2 ** min(turns - self.DRAIN_SPIN_TURNS, 6), 0.05))
                turns += 1
            if not self._settle_s:
                return
            await anyio.sleep(self._settle_s)
            if not self._unread():
                return

    async def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        stall = _Stall()
        while view:
            try:
                written = os.write(self.fd, view)
            except BlockingIOError:
                stall.check(len(view), self.fd)
                with anyio.move_on_after(HOST_CHECK_S):  # a reader that left is seen by the next check
                    await anyio.wait_writable(self.fd)
                continue
            except (BrokenPipeError, ConnectionResetError) as exc:
                raise ReaderGone(str(exc)) from None
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


class _Stall:
    """Progress of one write: :class:`ReaderGone` once the reader has closed its end, or when ``pending`` has not
    gone down for :data:`STALL_S`."""

    def __init__(self) -> None:
        self.pending = -1
        self.since = 0.0

    def check(self, pending: int, fd: int) -> None:
        if _reader_closed(fd):
            raise ReaderGone("the reading end of the output is closed")
        now = anyio.current_time()
        if pending != self.pending:
            self.pending, self.since = pending, now
        elif now - self.since > STALL_S:
            raise ReaderGone(f"the reader took nothing for {STALL_S:g} s")


def _reader_closed(fd: int) -> bool:
    """True when nobody holds the reading end of ``fd`` (a pipe: ``POLLERR``; a socket: ``POLLHUP``)."""
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP | select.POLLNVAL) for _, events in poller.poll(0))


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
    """Serve ``server`` over this process's stdin/stdout until the client closes stdin or the host is gone."""
    from mcp.shared.message import SessionMessage

    from .sdk_compat import lowlevel_server

    with _claimed_std_fds() as (wire_in, wire_out):
        reader, writer = FdLineReader(wire_in), FdWriter(wire_out)
        # What the SDK's stdio_server does between the wire and the session, with an answer for every bad line.
        read_send, read_recv = anyio.create_memory_object_stream[SessionMessage | Exception](0)
        write_send, write_recv = anyio.create_memory_object_stream[SessionMessage](0)

        async def pump_in() -> None:
            async with read_send:
                async for line in reader:
                    message = _parse(line)
                    if isinstance(message, str):
                        await writer.write(message)
                        await writer.flush()
                    else:
                        await read_send.send(SessionMessage(message))

        async def pump_out() -> None:
            async with write_recv:
                async for outgoing in write_recv:
                    await writer.write(outgoing.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n")
                    await writer.flush()

        async with anyio.create_task_group() as tg:
            tg.start_soon(writer.run)
            tg.start_soon(_watch_host, writer, tg.cancel_scope)
            try:
                async with anyio.create_task_group() as session:
                    session.start_soon(pump_in)
                    session.start_soon(pump_out)
                    # What MCPServer.run_stdio_async does, over our streams (the SDK has no public hook for them).
                    lowlevel = lowlevel_server(server)
                    await lowlevel.run(read_recv, write_send, lowlevel.create_initialization_options())
                    session.cancel_scope.cancel()
            finally:
                writer.close()  # the writer task ends once everything queued is out, or the reader is gone
                with anyio.CancelScope(shield=True), anyio.move_on_after(DRAIN_ON_EXIT_S):
                    await writer.done.wait()
                tg.cancel_scope.cancel()


async def _watch_host(writer: FdWriter, scope: anyio.CancelScope) -> None:
    """Stop serving when the output can no longer be delivered, or when this process is re-parented (its host
    died, though something else still holds the pipes)."""
    parent = os.getppid()
    while not writer.gone.is_set() and os.getppid() == parent:
        with anyio.move_on_after(HOST_CHECK_S):
            await writer.gone.wait()
    scope.cancel()


# JSON-RPC's error codes for a message that cannot be served.
PARSE_ERROR, INVALID_REQUEST, INVALID_PARAMS = -32700, -32600, -32602


def _parse(line: str) -> Any:
    """The line as a JSON-RPC message, or (a str) the error answer to write back for it."""
    import mcp_types

    try:
        return mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False)
    except Exception as exc:  # noqa: BLE001 - every failure becomes an answer
        if not line.strip():
            return ""  # a blank line is no message: nothing to answer
        return error_answer(line, exc)


def error_answer(line: str, exc: Exception | None = None) -> str:
    """The JSON-RPC error line answering ``line``, which the SDK could not take as a message."""
    try:
        body = json.loads(line)
    except RecursionError:
        return _error_line(None, PARSE_ERROR, "Parse error: nested too deeply")
    except ValueError:
        return _error_line(None, PARSE_ERROR, "Parse error: not valid JSON")
    request_id = body.get("id") if isinstance(body, dict) else None
    if isinstance(request_id, bool) or not isinstance(request_id, (str, int)):
        request_id = None
    if not isinstance(body, dict) or body.get("jsonrpc") != "2.0" or (
            "method" in body and not isinstance(body["method"], str)):
        return _error_line(request_id, INVALID_REQUEST, "Invalid Request: not a JSON-RPC 2.0 message")
    if "params" in body and not isinstance(body["params"], dict):
        return _error_line(request_id, INVALID_PARAMS, "Invalid params: params must be an object")
    detail = "a string holds a lone surrogate or an invalid escape" if "\\u" in line else "not a valid message"
    code = PARSE_ERROR if "json_invalid" in str(exc) else INVALID_REQUEST
    return _error_line(request_id, code, f"{'Parse error' if code == PARSE_ERROR else 'Invalid Request'}: {detail}")


def _error_line(request_id: str | int | None, code: int, message: str) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}},
                      separators=(",", ":")) + "\n"

"""One command, start to finish: the ``run`` tool's engine.

The command runs under ``bash -c`` (the same language the policy parses) in a new process group. Output is read as
fast as the child writes it: every byte goes into a bounded buffer (the result keeps the last ``output_limit``
bytes, says ``truncated`` and counts them all in ``output_bytes``). The stream hands ``on_output`` the first
``stream_limit`` bytes as text while the command runs and what the buffer still holds after them once it has
ended, each byte once (:class:`_Stream`), so the result's ``output`` is always the end of the stream.

Ending: when the leader exits, any stragglers left in its group are killed (a one-shot command leaves nothing
behind) and the remaining output is drained. On timeout the whole group is killed and the result says
``timed_out``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from .backend import BackendName, ChildProcess, PtyChild, spawn
from .output import OutputBuffer, decode
from .secrets import StreamRedactor

__all__ = ["RunResult", "run_command", "shell_argv", "ProcessGroups"]

DRAIN_S = 2.0
CHUNK = 1 << 20  # most bytes of output one ``on_output`` call carries


def shell_argv(command: str) -> list[str]:
    return ["bash", "-c", command]


class ProcessGroups:
    """Every live child of this server, so that exit paths (atexit, SIGTERM, lifespan end) can kill them all."""

    def __init__(self) -> None:
        self._children: set[ChildProcess] = set()

    def add(self, child: ChildProcess) -> None:
        self._children.add(child)

    def discard(self, child: ChildProcess) -> None:
        self._children.discard(child)

    def __len__(self) -> int:
        return len(self._children)

    def kill_all_now(self) -> None:
        """Synchronous and signal-safe enough for atexit and signal handlers: SIGKILL every group."""
        for child in list(self._children):
            child.kill_group(signal.SIGKILL)


@dataclass(frozen=True, slots=True)
class RunResult:
    exit_code: int | None
    output: str
    truncated: bool
    timed_out: bool
    duration_ms: float
    backend: BackendName
    output_bytes: int = 0  # everything the command wrote; ``output`` is the last of it when ``truncated``
    sandbox: str = "off"  # "bubblewrap" when the command ran sandboxed
    refused: tuple[dict[str, Any], ...] = ()  # exec-time refusals by the guards: {program, rule, argv, cwd}

    def to_dict(self) -> dict[str, Any]:
        return {"exit_code": self.exit_code, "output": self.output, "truncated": self.truncated,
                "output_bytes": self.output_bytes, "timed_out": self.timed_out, "duration_ms": round(self.duration_ms, 3), "backend": self.backend,
                "sandbox": self.sandbox}

    def with_containment(self, sandbox: str, refused: tuple[dict[str, Any], ...]) -> RunResult:
        return dataclasses.replace(self, sandbox=sandbox, refused=refused)


def gap_marker(size: int) -> str:
    """The line the stream carries where ``size`` bytes of output were neither streamed nor kept."""
    return f"\r\n[llmmixer: {size} bytes of output not kept]\r\n"


class _Stream:
    """Hands the run's output to ``on_output`` in order, read from the run's buffer by offset: up to ``limit``
    bytes while the command runs, then, once it has ended, the rest the buffer still holds. The reader only appends
    to the buffer, so a slow consumer never slows the child; it just gets bigger chunks (at most ``CHUNK``).

    So the stream holds every byte of the output at most once, and the result's ``output`` (the buffer's last
    bytes) is the end of it. Bytes the buffer dropped before they were streamed (an output longer than ``limit``
    plus the buffer) are a :func:`gap_marker` line naming how many, never a silent hole."""

    def __init__(self, buffer: OutputBuffer, on_output: Callable[[str], Awaitable[None]], limit: int) -> None:
        self._buffer = buffer
        self._on_output = on_output
        self._limit = limit
        self._offset = 0
        self._done = False
        self._wake = anyio.Event()

    def wake(self) -> None:
        self._wake.set()

    def finish(self) -> None:
        self._done = True
        self._wake.set()

    async def pump(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            while (room := CHUNK if self._done else min(CHUNK, self._limit - self._offset)) > 0:
                piece = self._buffer.since(self._offset, final=self._done, limit=room)
                self._offset = piece.end
                if piece.dropped:
                    await self._on_output(gap_marker(piece.dropped))
                if not piece.data:
                    break
                await self._on_output(decode(piece.data))
            if self._done:
                return


async def run_command(
    command: str,
    *,
    cwd: str,
    env: Mapping[str, str],
    backend: BackendName,
    timeout_s: float,
    stdin: str | None,
    output_limit: int,
    stream_limit: int,
    groups: ProcessGroups,
    on_output: Callable[[str], Awaitable[None]] | None = None,
    cols: int = 120,
    rows: int = 40,
    argv: list[str] | None = None,
    redact: StreamRedactor | None = None,
    sandboxed: bool = False,
) -> RunResult:
    """Run ``command`` (or ``argv``, the command wrapped in its sandbox) to completion or timeout. ``redact`` sees
    every chunk before anything else does.

    Raises:
        OSError: the shell could not be started (bad ``cwd``, no ``bash``).
    """
    started = time.perf_counter()
    child = await spawn(argv or shell_argv(command), cwd=cwd, env=env, backend=backend, cols=cols, rows=rows,
                        sandboxed=sandboxed)
    groups.add(child)
    buffer = OutputBuffer(output_limit)
    stream = _Stream(buffer, on_output, stream_limit) if on_output is not None else None
    eof = anyio.Event()
    timed_out = False

    async def reader() -> None:
        while chunk := await child.read():
            if redact is not None:
                chunk = redact.feed(chunk)
            buffer.append(chunk)
            if stream is not None:
                stream.wake()
        if redact is not None and (tail := redact.flush()):
            buffer.append(tail)
        eof.set()

    async def feed_input() -> None:
        with contextlib.suppress(OSError):  # the child may exit or close its input without reading it all
            if stdin:
                await child.write(stdin.encode())
            await child.close_input()

    try:
        async with anyio.create_task_group() as outer:
            if stream is not None:
                outer.start_soon(stream.pump)
            async with anyio.create_task_group() as inner:
                inner.start_soon(reader)
                if isinstance(child, PtyChild):
                    child.set_echo(False)  # input we feed is not output the command produced
                inner.start_soon(feed_input)
                with anyio.move_on_after(timeout_s) as deadline:
                    await child.wait()
                if deadline.cancelled_caught:
                    timed_out = True
                child.kill_group(signal.SIGKILL)  # stragglers after exit, everything after a timeout
                with anyio.move_on_after(DRAIN_S):
                    await eof.wait()
                inner.cancel_scope.cancel()
            if stream is not None:
                stream.finish()
    finally:
        groups.discard(child)
        await child.aclose()
    whole = buffer.since(0, final=True)
    return RunResult(
        exit_code=None if timed_out else child.returncode,
        output=decode(whole.data),
        truncated=whole.dropped > 0,
        output_bytes=buffer.end,
        timed_out=timed_out,
        duration_ms=(time.perf_counter() - started) * 1000,
        backend=child.backend,
    )

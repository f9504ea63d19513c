"""One command, start to finish: the ``run`` tool's engine.

The command runs under ``bash -c`` (the same language the policy parses) in a new process group. Output is read as
fast as the child writes it: every byte goes into a bounded buffer (the result keeps the last ``output_limit``
bytes and says ``truncated``), and up to ``stream_limit`` bytes are also handed to ``on_output`` as text while the
command runs. The streaming side is decoupled from the reading side by a coalescing buffer, so a slow consumer
of progress notifications never slows the child down; it just gets bigger chunks.

Ending: when the leader exits, any stragglers left in its group are killed (a one-shot command leaves nothing
behind) and the remaining output is drained. On timeout the whole group is killed and the result says
``timed_out``.
"""

from __future__ import annotations

import codecs
import contextlib
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
    sandbox: str = "off"  # "bubblewrap" when the command ran sandboxed
    refused: tuple[dict[str, Any], ...] = ()  # exec-time refusals by the guards: {program, rule, argv, cwd}

    def to_dict(self) -> dict[str, Any]:
        return {"exit_code": self.exit_code, "output": self.output, "truncated": self.truncated,
                "timed_out": self.timed_out, "duration_ms": round(self.duration_ms, 3), "backend": self.backend,
                "sandbox": self.sandbox}

    def with_containment(self, sandbox: str, refused: tuple[dict[str, Any], ...]) -> RunResult:
        return RunResult(self.exit_code, self.output, self.truncated, self.timed_out, self.duration_ms,
                         self.backend, sandbox, refused)


class _Stream:
    """Coalesces output for ``on_output``: the reader appends, the sender takes whatever accumulated."""

    def __init__(self, on_output: Callable[[str], Awaitable[None]], limit: int) -> None:
        self._on_output = on_output
        self._limit = limit
        self._pending = bytearray()
        self._sent = 0
        self._over = False
        self._done = False
        self._wake = anyio.Event()
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, chunk: bytes) -> None:
        if self._over:
            return
        room = self._limit - self._sent - len(self._pending)
        if len(chunk) > room:
            chunk, self._over = chunk[:max(room, 0)], True
        self._pending += chunk
        self._wake.set()

    def finish(self) -> None:
        self._done = True
        self._wake.set()

    async def pump(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            if self._pending:
                data, self._pending = bytes(self._pending), bytearray()
                self._sent += len(data)
                text = self._decoder.decode(data, final=False)
                if text:
                    await self._on_output(text)
            if self._over and not self._pending:
                await self._on_output(f"\r\n[llmmixer: streamed the first {self._limit} bytes; the result keeps "
                                      f"the last bytes of the output]\r\n")
                return
            if self._done and not self._pending:
                tail = self._decoder.decode(b"", final=True)
                if tail:
                    await self._on_output(tail)
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
    stream = _Stream(on_output, stream_limit) if on_output is not None else None
    eof = anyio.Event()
    timed_out = False

    async def reader() -> None:
        while chunk := await child.read():
            if redact is not None:
                chunk = redact.feed(chunk)
            buffer.append(chunk)
            if stream is not None:
                stream.feed(chunk)
        if redact is not None and (tail := redact.flush()):
            buffer.append(tail)
            if stream is not None:
                stream.feed(tail)
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
        timed_out=timed_out,
        duration_ms=(time.perf_counter() - started) * 1000,
        backend=child.backend,
    )

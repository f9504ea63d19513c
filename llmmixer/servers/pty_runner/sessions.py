"""One interactive session: a child process, its output buffer, its typed line, its prompts answered.

A session reads its child's output continuously into a bounded :class:`~.output.OutputBuffer`, answers known
prompts with its ``auto_respond`` rules (each answer is an event), and wakes readers and waiters through a change
event that is replaced on every change (a level-triggered broadcast without a condition variable's lock).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import anyio

from ..core.events import Event
from .backend import BackendName, ChildProcess
from .keyboard import LineTracker
from .output import OutputBuffer, decode, plain_text
from .shell_commands import SHELLS
from .waiting import Waiting, decide, kernel_state, process_state, scan_processes

if TYPE_CHECKING:
    from .screen import VirtualScreen  # pyte: imported by the first session that keeps a screen

__all__ = ["AutoRespond", "Session", "SessionView", "ShellContext"]

log = logging.getLogger("llmmixer.pty.sessions")

AUTO_RESPOND_WINDOW = 4096  # bytes of recent output an auto_respond pattern is matched against
SETTLE_S = 0.1  # the kernel layer decides only after this long without input or output
BLANK_QUIET_S = 30.0  # with nothing drawn since the start or the last input, waiting needs this much silence
ShellContext = Literal["shell", "program", "none"]


@dataclass(slots=True)
class AutoRespond:
    pattern: re.Pattern[str]
    send: str
    once: bool = True
    fired: int = 0
    delay_s: float = 0.0  # wait this long before typing the answer (a TUI may draw before it takes keys)


@dataclass(frozen=True, slots=True)
class SessionView:
    """What ``read`` and ``wait`` return."""

    session_id: str
    output: str
    offset: int
    dropped: int
    waiting_for_input: bool
    waiting_layer: str | None
    exited: bool
    exit_code: int | None
    events: list[dict[str, Any]]
    plain: str | None = None
    timed_out: bool = False
    screen: str | None = None

    def to_dict(self) -> dict[str, Any]:
        body = {"session_id": self.session_id, "output": self.output, "offset": self.offset,
                "dropped": self.dropped, "waiting_for_input": self.waiting_for_input,
                "waiting_layer": self.waiting_layer, "exited": self.exited, "exit_code": self.exit_code,
                "events": self.events, "timed_out": self.timed_out}
        if self.plain is not None:
            body["plain"] = self.plain
        if self.screen is not None:
            body["screen"] = self.screen
        return body


@dataclass(eq=False)
class Session:
    id: str
    command: str
    cwd: str
    child: ChildProcess
    buffer: OutputBuffer
    cols: int
    rows: int
    auto_respond: list[AutoRespond] = field(default_factory=list)
    quiet_s: float = 0.5
    started_at: float = field(default_factory=time.monotonic)
    last_output_at: float = field(default_factory=time.monotonic)
    last_input_at: float = 0.0
    output_since_input: bool = False
    last_used_at: float = field(default_factory=time.monotonic)
    exited: bool = False
    cursor: int = 0  # where a ``read`` without ``since`` continues
    typed: LineTracker = field(default_factory=LineTracker)
    held: bytes = b""  # pipe backend: a partial line kept back until it ends and passes the policy
    events: list[Event] = field(default_factory=list)
    events_reported: int = 0
    redact: tuple[Callable[[bytes], bytes], Callable[[], bytes]] | None = None  # (feed, flush) for secrets
    screen: VirtualScreen | None = None  # pty sessions: the rendered terminal (screen.py)
    _changed: anyio.Event = field(default_factory=anyio.Event)
    _scan_from: int = 0

    @property
    def backend(self) -> BackendName:
        return self.child.backend

    @property
    def exit_code(self) -> int | None:
        return self.child.returncode if self.exited else None

    def changed(self) -> anyio.Event:
        """An event set at the next change (output, exit). Take it before checking state, then wait on it."""
        return self._changed

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def _record(self, event: Event) -> None:
        self.events.append(event)
        log.info("event %s", json.dumps(event.to_dict(), ensure_ascii=False))

    def record(self, event: Event) -> None:
        """An event from outside the reader (an exec-time refusal); wakes waiters."""
        self._record(event)
        self._notify()

    # -- the reader task -------------------------------------------------------------------------------------
    async def pump(self) -> None:
        """Read until the child's output closes, then reap it."""
        try:
            while chunk := await self.child.read():
                if self.redact is not None:
                    chunk = self.redact[0](chunk)
                self.buffer.append(chunk)
                if self.screen is not None and (answers := self.screen.feed(chunk)):
                    with contextlib.suppress(OSError):
                        await self.child.write(answers)  # what a terminal answers to the program's queries
                self.last_output_at = time.monotonic()
                self.output_since_input = True
                if self.auto_respond:
                    await self._auto_respond()
                self._notify()
            if self.redact is not None:
                self.buffer.append(self.redact[1]())
            await self.child.wait()
        finally:
            self.exited = self.child.returncode is not None
            if self.exited:
                self._record(Event(run=self.id, source="pty", type="pty.exit",
                                   data={"session_id": self.id, "exit_code": self.child.returncode,
                                         "offset": self.buffer.end}))
            self._notify()

    async def _auto_respond(self) -> None:
        if self.screen is not None:
            # Match what is shown; after an answer, only once the screen has changed again.
            text = self.screen.text() if self.screen.changed_since_mark else ""
        else:
            begin = max(self._scan_from, self.buffer.end - AUTO_RESPOND_WINDOW)
            text = plain_text(decode(self.buffer.since(begin, final=True).data))
        for rule in self.auto_respond:
            if rule.once and rule.fired:
                continue
            match = rule.pattern.search(text)
            if match is None:
                continue
            rule.fired += 1
            self._scan_from = self.buffer.end
            # The answer may be a password: events and logs carry its length, never its text.
            self._record(Event(run=self.id, source="pty", type="pty.waiting",
                               data={"session_id": self.id, "layer": "auto_respond",
                                     "pattern": rule.pattern.pattern, "prompt": match.group(0)[-200:],
                                     "answered_bytes": len(rule.send.encode()), "offset": self.buffer.end}))
            if rule.delay_s:
                await anyio.sleep(rule.delay_s)
            with contextlib.suppress(OSError):
                await self.child.write(rule.send.encode())
                self.last_input_at = time.monotonic()
                self.output_since_input = False
                if self.screen is not None:
                    self.screen.mark()
            return

    # -- input-wait detection --------------------------------------------------------------------------------
    def detect_waiting(self) -> Waiting:
        """Blocking (reads /proc): call it from a worker thread."""
        if self.exited or self.child.pending_output():
            return Waiting(False)  # output still on its way: whatever the child waits for, the reader is behind
        now = time.monotonic()
        quiet_for = now - max(self.last_output_at, self.last_input_at)
        kernel = kernel_state(self.child.own_processes(scan_processes()), self.child.foreground_pgid(),
                              self.child.terminal)
        if self.screen is not None and not self.screen.changed_since_mark and quiet_for < BLANK_QUIET_S:
            # Nothing drawn since the start or the last input: a TUI starting up reads the terminal (its own
            # queries' answers, its key reader thread) and goes quiet long before it shows a prompt.
            return Waiting(False, "kernel" if kernel == "busy" else None)
        if kernel is not None and quiet_for < SETTLE_S:
            # Just after input the reader may not have woken yet; just after output, more of it may still be in
            # the terminal's flip buffer (the kernel moves it to the reader asynchronously).
            return Waiting(False)
        if kernel == "reading" and not self.output_since_input and quiet_for < self.quiet_s:
            # Blocked reading, but nothing came back since the last input (or since the start): the prompt may
            # still be in flight. Silence for quiet_s settles it.
            return Waiting(False)
        # A prompt counts only if it was printed after the last input (on pipes nothing echoes the input).
        fresh = self.last_output_at > self.last_input_at
        last_line = plain_text(self.buffer.tail_text(512)).rsplit("\n", 1)[-1] if fresh else ""
        return decide(kernel, quiet_for_s=quiet_for, quiet_s=self.quiet_s, last_line=last_line)

    def shell_context(self) -> ShellContext:
        """Who will read a typed line: a shell, a program run under a shell, or no shell at all.

        Blocking (reads /proc). Where processes cannot be listed, the answer is ``shell`` (the strict one).
        """
        processes = self.child.own_processes(scan_processes())
        if processes is None:
            return "shell"
        members = [p for p in processes if p.session == self.child.pid and p.state not in ("Z", "X")]
        if not any(p.comm in SHELLS for p in members):
            return "none"
        foreground = self.child.foreground_pgid()
        readers = [p for p in members if p.pgrp == foreground
                   and process_state(p, self.child.terminal or "") != "child"]
        if not readers or any(p.comm in SHELLS for p in readers):
            return "shell"
        return "program"

    # -- views -----------------------------------------------------------------------------------------------
    def view(self, *, since: int | None, limit: int, plain: bool, waiting: Waiting,
             timed_out: bool = False, screen: bool = False) -> SessionView:
        offset = self.cursor if since is None else since
        piece = self.buffer.since(offset, final=self.exited, limit=limit)
        self.cursor = max(self.cursor, piece.end) if since is None else piece.end
        text = decode(piece.data)
        new_events = [e.to_dict() for e in self.events[self.events_reported:]]
        self.events_reported = len(self.events)
        return SessionView(session_id=self.id, output=text, offset=piece.end, dropped=piece.dropped,
                           waiting_for_input=waiting.waiting, waiting_layer=waiting.layer, exited=self.exited,
                           exit_code=self.exit_code, events=new_events, plain=plain_text(text) if plain else None,
                           timed_out=timed_out,
                           screen=(self.screen.text() if self.screen is not None else plain_text(
                               self.buffer.tail_text(8192))) if screen else None)

    def describe(self) -> dict[str, Any]:
        return {"session_id": self.id, "command": self.command, "pid": self.child.pid, "backend": self.backend,
                "exited": self.exited, "exit_code": self.exit_code, "offset": self.buffer.end,
                "idle_s": round(time.monotonic() - self.last_used_at, 3), "cols": self.cols, "rows": self.rows}

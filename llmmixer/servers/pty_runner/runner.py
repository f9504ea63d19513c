"""The runner: owns every child process of the server (one-shot runs and sessions) and their process groups.

:class:`PtyRunner` is created once per server. ``async with runner.running():`` (the MCP server's lifespan) gives it
a task group for the sessions' reader tasks and the idle reaper; leaving it kills every process group. Exit paths
that never reach the lifespan's end (SIGTERM, interpreter exit) call :meth:`PtyRunner.kill_all_now`.

The runner knows nothing of policy verdicts: the server checks a command (or a typed line, via :meth:`plan_send`)
first. What happens after the exec is :class:`~.containment.Containment`'s: the sandbox, the guards over the
programs the policy names (their refusals come back in :attr:`RunResult.refused` and as ``pty.refused`` session
events), the environment and the redaction of secrets.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import os
import re
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import anyio.abc
import anyio.to_thread

from ..core.errors import InvalidInputError, NotFoundError, UnavailableError
from ..core.events import Event
from ..core.redact import redact_inline
from .backend import BackendName, spawn
from .containment import Containment, Prepared
from .control import GuardRequest
from .exec_rules import Asker
from .secrets import EnvPolicy
from .keyboard import KEYS, TypedLine
from .output import OutputBuffer
from .roots import Roots
from .run import ProcessGroups, RunResult, run_command, shell_argv
from .sessions import AutoRespond, Session, SessionView, ShellContext
from .waiting import Waiting

__all__ = ["Limits", "PtyRunner", "SendPlan", "SIGNALS", "RunResult"]


def _virtual_screen(cols: int, rows: int) -> Any:
    """A session's rendered terminal; pyte is imported by the first session that asks for one."""
    from .screen import VirtualScreen

    return VirtualScreen(cols, rows)

log = logging.getLogger("llmmixer.pty.runner")

SIGNALS: dict[str, int] = {name: int(getattr(signal, f"SIG{name}")) for name in
                           ("TERM", "KILL", "INT", "HUP", "QUIT", "USR1", "USR2", "STOP", "CONT", "TSTP", "WINCH")}
KEEP_EXITED = 32  # exited sessions kept readable before the oldest is forgotten
POLL_S = 0.05  # how often wait(until="input") re-asks the kernel while nothing else changes
_PIPE_KEYS = {"enter": b"\n"}  # a shell reading a pipe ends lines with \n; the terminal maps \r itself


@dataclass(frozen=True, slots=True)
class Limits:
    max_sessions: int = 8
    idle_timeout_s: float = 1800.0
    output_limit: int = 8 << 20  # bytes kept per session / per run result (a coding agent's run is long)
    stream_limit: int = 8 << 20  # bytes of a run streamed as progress
    read_limit: int = 256 * 1024  # bytes one read returns; the offset says where to continue
    max_command_bytes: int = 64 * 1024
    max_send_bytes: int = 64 * 1024
    max_timeout_s: float = 24 * 3600.0
    quiet_s: float = 0.5


@dataclass(frozen=True, slots=True)
class _Segment:
    kind: Literal["write", "signal", "eof", "pause"]
    data: bytes = b""
    key: str = ""


@dataclass(frozen=True, slots=True)
class SendPlan:
    segments: tuple[_Segment, ...]
    typed: str  # what the line tracker sees, in order
    lines: tuple[TypedLine, ...] = field(default=())  # lines this send would end (or put at risk)

    @property
    def size(self) -> int:
        return sum(len(s.data) for s in self.segments)


class PtyRunner:
    """Owns every child of the server: sessions, one-shot runs, and their process groups."""

    def __init__(
        self,
        *,
        backend: BackendName = "pty",
        limits: Limits | None = None,
        env_policy: EnvPolicy | None = None,
        cwd: str | None = None,
        environ: Mapping[str, str] | None = None,
        sandbox: str | None = None,
        protect: tuple[str, ...] = (),
        containment: Containment | None = None,
        roots: tuple[str, ...] = (),
    ) -> None:
        """``sandbox``: auto | on | off (default ``$LLMMIXER_PTY_SANDBOX``, else auto).

        Raises: UnavailableError for ``sandbox="on"`` where bubblewrap does not work.
        """
        self.backend: BackendName = backend
        self.limits = limits or Limits()
        self.containment = containment or Containment(mode=sandbox, env_policy=env_policy, environ=environ,
                                                      protect=protect)
        self.cwd = os.path.abspath(cwd or os.getcwd())
        self.extra_roots = roots
        self._roots: tuple[tuple[str, ...], Roots] | None = None
        self.groups = ProcessGroups()
        self.sessions: dict[str, Session] = {}
        self._prepared: dict[str, Prepared] = {}
        self._tg: anyio.abc.TaskGroup | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[PtyRunner]:
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._reap_idle)
                try:
                    yield self
                finally:
                    tg.cancel_scope.cancel()
        finally:
            self._tg = None
            await self.close_all()

    async def close_all(self) -> None:
        self.groups.kill_all_now()
        with anyio.CancelScope(shield=True):
            for session in list(self.sessions.values()):
                await session.child.aclose()
        self.sessions.clear()

    def kill_all_now(self) -> None:
        """Synchronous: SIGKILL every process group (for signal handlers and atexit)."""
        self.groups.kill_all_now()

    async def _reap_idle(self) -> None:
        while True:
            await anyio.sleep(min(30.0, max(self.limits.idle_timeout_s / 4, 0.05)))
            now = time.monotonic()
            for session in list(self.sessions.values()):
                if now - session.last_used_at > self.limits.idle_timeout_s:
                    log.info("session %s idle for %.0fs: closing", session.id, now - session.last_used_at)
                    await self._forget(session)

    # -- shared checks ---------------------------------------------------------------------------------------
    @property
    def sandbox_info(self) -> str:
        """``bubblewrap`` when children are sandboxed, else ``off`` and why."""
        return self.containment.info

    @property
    def roots(self) -> Roots:
        """Where a call's ``cwd`` and ``writable`` may point (:mod:`.roots`), from the policy and ``--root``."""
        configured = (*self.containment.settings.roots, *self.extra_roots)
        if self._roots is None or self._roots[0] != configured:
            self._roots = (configured, Roots.build(self.cwd, configured))
        return self._roots[1]

    def resolve_cwd(self, cwd: str | None) -> str:
        """Raises: InvalidInputError when ``cwd`` is not a directory; PolicyError when it is outside the roots."""
        path = os.path.abspath(os.path.join(self.cwd, os.path.expanduser(cwd))) if cwd else self.cwd
        if not os.path.isdir(path):
            raise InvalidInputError(f"cwd {path!r} is not a directory")
        return self.roots.check(path, "cwd")

    def resolve_writable(self, writable: tuple[str, ...]) -> tuple[str, ...]:
        """A call's extra writable directories, each resolved once: absolute, existing, not a symbolic link, and
        inside the roots.

        Raises: InvalidInputError (relative, missing or a link), PolicyError (outside the roots).
        """
        resolved: list[str] = []
        for entry in writable:
            if not os.path.isabs(entry):
                raise InvalidInputError(f"writable path {entry!r} must be absolute")
            if os.path.islink(entry) or not os.path.isdir(entry):
                raise InvalidInputError(f"writable path {entry!r} must be an existing directory, not a link")
            resolved.append(self.roots.check(entry, "writable"))
        return tuple(resolved)

    def check_command(self, command: str) -> None:
        """Raises: InvalidInputError (too long, empty, NUL byte)."""
        size = len(command.encode("utf-8", errors="surrogatepass"))
        if size > self.limits.max_command_bytes:
            raise InvalidInputError(f"command is {size} bytes; the limit is {self.limits.max_command_bytes}")
        if not command.strip():
            raise InvalidInputError("command is empty")
        if "\x00" in command:
            raise InvalidInputError("command contains a NUL byte")

    def check_timeout(self, timeout_s: float, name: str = "timeout_s") -> float:
        """Raises: InvalidInputError for negative, NaN or too large values."""
        if not timeout_s >= 0:  # also rejects NaN
            raise InvalidInputError(f"{name} must be >= 0 (got {timeout_s})")
        if timeout_s > self.limits.max_timeout_s:
            raise InvalidInputError(f"{name} must be <= {self.limits.max_timeout_s:g}")
        return timeout_s

    # -- one-shot --------------------------------------------------------------------------------------------
    async def run(self, command: str, *, cwd: str | None = None, timeout_s: float = 30.0, stdin: str | None = None,
                  on_output: Callable[[str], Awaitable[None]] | None = None, writable: tuple[str, ...] = (),
                  env: Mapping[str, str] | None = None, secrets: Mapping[str, str] | None = None,
                  asker: Asker | None = None, approvals: tuple[str, ...] = ()) -> RunResult:
        """Run ``command`` under ``bash -c`` to its end or ``timeout_s``.

        ``writable``, ``env`` and ``secrets`` are this call's extras (see :mod:`.sandbox`); ``approvals`` are the
        ``ask`` rules the host approved for it, and ``asker`` may ask the host about others at exec time.

        Raises:
            InvalidInputError: bad command, cwd, stdin, timeout, env or writable paths; the shell could not start.
            UnavailableError: the sandbox is required and cannot be set up.
        """
        self.check_command(command)
        self.check_timeout(timeout_s)
        if stdin is not None and "\x00" in stdin:
            raise InvalidInputError("stdin contains a NUL byte")
        path = self.resolve_cwd(cwd)
        prepared = self.containment.prepare(shell_argv(command), cwd=path, cols=120, rows=40,
                                            writable=self.resolve_writable(writable), env=env, secrets=secrets,
                                            asker=asker, approvals=approvals, roots=self.roots)
        try:
            async with anyio.create_task_group() as tg:
                await prepared.start_control(tg)
                try:
                    result = await run_command(command, cwd=path, env=prepared.env, backend=self.backend,
                                               timeout_s=timeout_s, stdin=stdin,
                                               output_limit=self.limits.output_limit,
                                               stream_limit=self.limits.stream_limit, groups=self.groups,
                                               on_output=on_output, argv=prepared.argv,
                                               redact=prepared.redactor.stream(),
                                               sandboxed=prepared.jail is not None)
                finally:
                    tg.cancel_scope.cancel()
        except OSError as exc:
            raise InvalidInputError(f"could not start the command: {exc.strerror or exc}") from exc
        finally:
            await prepared.aclose()
        refused = tuple(r.to_dict() for r in prepared.control.refusals) if prepared.control else ()
        return result.with_containment(self.sandbox_info if prepared.jail is not None else "off", refused)

    # -- sessions --------------------------------------------------------------------------------------------
    async def start(self, command: str, *, cwd: str | None = None, cols: int = 120, rows: int = 40,
                    auto_respond: list[dict[str, Any]] | None = None, writable: tuple[str, ...] = (),
                    env: Mapping[str, str] | None = None, secrets: Mapping[str, str] | None = None,
                    approvals: tuple[str, ...] = (), screen: bool = False) -> Session:
        """``screen``: keep a rendered virtual terminal for the session (screen.py; pty backend only).

        Raises: InvalidInputError, UnavailableError (too many sessions, runner not running, no sandbox)."""
        self.check_command(command)
        if not (1 <= cols <= 1000 and 1 <= rows <= 1000):
            raise InvalidInputError("cols and rows must be between 1 and 1000")
        rules = [self._rule(item) for item in auto_respond or ()]
        path = self.resolve_cwd(cwd)
        if self._tg is None:
            raise UnavailableError("the runner is not running")
        live = sum(not s.exited for s in self.sessions.values())
        if live >= self.limits.max_sessions:
            raise UnavailableError(f"{live} sessions are running; the limit is {self.limits.max_sessions} "
                                   "(kill one first)")
        prepared = self.containment.prepare(shell_argv(command), cwd=path, cols=cols, rows=rows,
                                            writable=self.resolve_writable(writable), env=env, secrets=secrets,
                                            approvals=approvals, roots=self.roots)
        try:
            if prepared.control is not None:
                await prepared.control.open()
            child = await spawn(prepared.argv, cwd=path, env=prepared.env, backend=self.backend, cols=cols,
                                rows=rows, sandboxed=prepared.jail is not None)
        except OSError as exc:
            await prepared.aclose()
            raise InvalidInputError(f"could not start the command: {exc.strerror or exc}") from exc
        except BaseException:
            await prepared.aclose()
            raise
        self.groups.add(child)
        stream = prepared.redactor.stream()
        session = Session(id=uuid.uuid4().hex[:12], command=command, cwd=path, child=child,
                          buffer=OutputBuffer(self.limits.output_limit), cols=cols, rows=rows,
                          auto_respond=rules, quiet_s=self.limits.quiet_s, redact=(stream.feed, stream.flush),
                          screen=_virtual_screen(cols, rows) if screen and child.backend == "pty" else None)
        self.sessions[session.id] = session
        self._prepared[session.id] = prepared
        if prepared.control is not None:
            prepared.control.on_refusal = lambda request: self._refused(session, request)
            self._tg.start_soon(prepared.control.serve)
        self._trim_exited()
        self._tg.start_soon(self._pump, session)
        return session

    @staticmethod
    def _rule(item: Mapping[str, Any]) -> AutoRespond:
        try:
            pattern = re.compile(str(item["pattern"]))
            send = str(item["send"])
        except KeyError as exc:
            raise InvalidInputError(f"auto_respond rule needs {exc.args[0]!r}") from exc
        except re.error as exc:
            raise InvalidInputError(f"auto_respond pattern {item.get('pattern')!r} is not a regex: {exc}") from exc
        delay = float(item.get("delay_ms") or 0) / 1000
        if not 0 <= delay <= 60:
            raise InvalidInputError("auto_respond delay_ms must be between 0 and 60000")
        return AutoRespond(pattern=pattern, send=send, once=bool(item.get("once", True)), delay_s=delay)

    async def _pump(self, session: Session) -> None:
        try:
            await session.pump()
        finally:
            self.groups.discard(session.child)
            session.child.kill_group(signal.SIGKILL)  # stragglers of an exited leader
            if not session.exited:  # cancelled: the server is closing
                await session.child.aclose()
            prepared = self._prepared.pop(session.id, None)
            if prepared is not None:
                with anyio.CancelScope(shield=True):
                    await prepared.aclose()

    def _refused(self, session: Session, request: GuardRequest) -> None:
        session.record(Event(run=session.id, source="pty", type="pty.refused",
                             data={"session_id": session.id, **request.to_dict()}))

    def set_approvals(self, session: Session, rules: tuple[str, ...]) -> None:
        """The ``ask`` rules the host approved for the line being sent (replacing the previous line's)."""
        prepared = self._prepared.get(session.id)
        if prepared is not None:
            prepared.approvals.replace(rules)

    def _trim_exited(self) -> None:
        exited = [s for s in self.sessions.values() if s.exited]
        for session in exited[:max(0, len(exited) - KEEP_EXITED)]:
            self.sessions.pop(session.id, None)

    def get(self, session_id: str) -> Session:
        """Raises: NotFoundError for an unknown (or reaped) session id."""
        session = self.sessions.get(session_id)
        if session is None:
            raise NotFoundError(f"no session {session_id!r} (list_sessions shows the live ones)")
        session.last_used_at = time.monotonic()
        return session

    def list(self) -> list[dict[str, Any]]:
        redact = self.containment.redactor.redact
        return [{**info, "command": redact_inline(redact(info["command"]))}
                for info in (session.describe() for session in self.sessions.values())]

    async def _forget(self, session: Session) -> None:
        self.sessions.pop(session.id, None)
        self.groups.discard(session.child)
        await session.child.aclose()
        prepared = self._prepared.pop(session.id, None)
        if prepared is not None:
            await prepared.aclose()

    # -- input -----------------------------------------------------------------------------------------------
    def plan_send(self, session: Session, text: str | None, keys: builtins.list[str] | None,
                  keys_delay_s: float = 0.0) -> SendPlan:
        """What sending ``text`` then ``keys`` would write, and which typed lines it would end.

        With ``keys_delay_s``, the keys go out that long after the text: a TUI reads text and Enter arriving
        together as a paste and does not submit it.

        Raises: InvalidInputError (nothing to send, unknown key, too much, exited session).
        """
        if not text and not keys:
            raise InvalidInputError("give text, keys or both")
        if session.exited:
            raise InvalidInputError(f"session {session.id} has exited (exit code {session.exit_code})")
        segments: builtins.list[_Segment] = []
        typed = ""
        if text:
            if "\x00" in text:
                raise InvalidInputError("text contains a NUL byte")
            segments.append(_Segment("write", text.encode()))
            typed += text
            if keys and keys_delay_s > 0:
                segments.append(_Segment("pause", key=str(keys_delay_s)))
        for name in keys or ():
            key = name.strip().lower()
            if key not in KEYS:
                raise InvalidInputError(f"unknown key {name!r}; one of {', '.join(KEYS)}")
            data = KEYS[key]
            typed += data.decode()
            if session.backend == "pipe" and key in ("ctrl-c", "ctrl-z", "ctrl-\\"):
                segments.append(_Segment("signal", key=key))
            elif session.backend == "pipe" and key == "ctrl-d":
                segments.append(_Segment("eof"))
            else:
                segments.append(_Segment("write", _PIPE_KEYS.get(key, data) if session.backend == "pipe" else data))
        plan = SendPlan(tuple(segments), typed, tuple(session.typed.preview(typed)))
        if plan.size > self.limits.max_send_bytes:
            raise InvalidInputError(f"send is {plan.size} bytes; the limit is {self.limits.max_send_bytes}")
        return plan

    async def shell_context(self, session: Session) -> ShellContext:
        return await anyio.to_thread.run_sync(session.shell_context)

    async def send(self, session: Session, plan: SendPlan, *, hold_partial_lines: bool) -> None:
        """Deliver ``plan``. ``hold_partial_lines`` (pipes into a shell): a line is written only once it ends.

        Raises: InvalidInputError when the child no longer takes input.
        """
        session.typed.feed(plan.typed)
        try:
            for segment in plan.segments:
                if segment.kind == "pause":
                    await anyio.sleep(float(segment.key))
                elif segment.kind == "signal":
                    session.held = b""
                    session.child.send_key_signal(segment.key)
                elif segment.kind == "eof":
                    await self._write(session, session.held)
                    session.held = b""
                    await session.child.close_input()
                elif hold_partial_lines:
                    session.held += segment.data
                    cut = max(session.held.rfind(b"\n"), session.held.rfind(b"\r")) + 1
                    if cut:
                        ready, session.held = session.held[:cut], session.held[cut:]
                        await self._write(session, ready)
                else:
                    await self._write(session, segment.data)
        finally:
            session.last_input_at = time.monotonic()
            session.output_since_input = False
            if session.screen is not None:
                session.screen.mark()

    async def refuse_send(self, session: Session) -> None:
        """Throw away the refused line: what was held back, and what a terminal's line editor already has."""
        had_partial = bool(session.typed.text) or not session.typed.certain
        session.typed.reset()
        session.held = b""
        if had_partial and session.backend == "pty" and not session.exited:
            # ctrl-e ctrl-u: to the end of the line, then erase it (readline and the tty's own line editing).
            # Not ctrl-c: the interrupt makes readline reset the terminal, which can drop the next keys typed.
            with contextlib.suppress(InvalidInputError):
                await self._write(session, b"\x05\x15")

    async def _write(self, session: Session, data: bytes) -> None:
        if not data:
            return
        try:
            with anyio.fail_after(10):
                await session.child.write(data)
        except (OSError, TimeoutError) as exc:
            raise InvalidInputError(f"session {session.id} does not take input: {exc}") from exc

    # -- output ----------------------------------------------------------------------------------------------
    async def detect(self, session: Session) -> Waiting:
        return await anyio.to_thread.run_sync(session.detect_waiting)

    async def read(self, session: Session, *, since: int | None = None, wait_s: float = 0.0,
                   plain: bool = False, screen: bool = False) -> SessionView:
        """Output after ``since`` (default: where the last read ended), waiting up to ``wait_s`` for some."""
        self.check_timeout(wait_s, "wait_s")
        if since is not None and since < 0:
            raise InvalidInputError(f"since must be >= 0 (got {since})")
        offset = session.cursor if since is None else since
        with anyio.move_on_after(wait_s):
            while session.buffer.end <= offset and not session.exited:
                await session.changed().wait()
        return session.view(since=since, limit=self.limits.read_limit, plain=plain,
                            waiting=await self.detect(session), screen=screen)

    async def wait(self, session: Session, *, until: Literal["input", "exit"], timeout_s: float,
                   plain: bool = False, screen: bool = False) -> SessionView:
        """Until the child waits for input (or exits), or ``timeout_s``; returns the output since the last read."""
        self.check_timeout(timeout_s)
        waiting = Waiting(False)
        reached = False
        with anyio.move_on_after(timeout_s):
            while True:
                changed = session.changed()
                if session.exited:
                    reached = True
                    break
                if until == "input":
                    waiting = await self.detect(session)
                    if waiting.waiting:
                        reached = True
                        break
                with anyio.move_on_after(POLL_S if until == "input" else 3600):
                    await changed.wait()
        if session.exited:
            waiting = Waiting(False)
        return session.view(since=None, limit=self.limits.read_limit, plain=plain, waiting=waiting,
                            timed_out=not reached, screen=screen)

    # -- control ---------------------------------------------------------------------------------------------
    def resize(self, session: Session, cols: int, rows: int) -> None:
        if not (1 <= cols <= 1000 and 1 <= rows <= 1000):
            raise InvalidInputError("cols and rows must be between 1 and 1000")
        if not session.exited:
            with contextlib.suppress(OSError):
                session.child.resize(cols, rows)
        if session.screen is not None:
            session.screen.resize(cols, rows)
        session.cols, session.rows = cols, rows

    async def kill(self, session: Session, sig: str = "TERM", grace_s: float = 2.0) -> Session:
        """Signal the session's process group; TERM/HUP/QUIT escalate to KILL after ``grace_s``.

        Raises: InvalidInputError for an unknown signal name.
        """
        number = SIGNALS.get(sig.upper().removeprefix("SIG"))
        if number is None:
            raise InvalidInputError(f"unknown signal {sig!r}; one of {', '.join(sorted(SIGNALS))}")
        if session.exited:
            return session
        session.child.kill_group(number)
        if number in (signal.SIGTERM, signal.SIGKILL, signal.SIGHUP, signal.SIGQUIT):
            with anyio.move_on_after(grace_s):
                await self.wait_exit(session)
            if not session.exited:
                session.child.kill_group(signal.SIGKILL)
                with anyio.move_on_after(grace_s):
                    await self.wait_exit(session)
        return session

    async def wait_exit(self, session: Session) -> None:
        while not session.exited:
            changed = session.changed()
            if session.exited:
                return
            await changed.wait()


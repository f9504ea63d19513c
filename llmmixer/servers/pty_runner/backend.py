"""Child processes behind one interface: a real pseudo-terminal, or plain pipes when no PTY can be had.

``ptyprocess`` is imported on first use, not at import time, so a platform without it (or without ``/dev/ptmx``)
still serves every tool: :func:`spawn` falls back to anyio subprocess pipes, logs one warning, and the results say
``backend: "pipe"``. Both backends start the child as the leader of a new session (and so of a new process group),
which is what lets :meth:`ChildProcess.kill_group` take down everything the command spawned.

Child hygiene: whatever dispositions the server inherited or set (Python ignores ``SIGPIPE``; a server started from
a background job ignores ``SIGINT`` and ``SIGQUIT``), the child starts with ``SIGPIPE``, ``SIGINT``, ``SIGQUIT`` and
``SIGXFSZ`` at their defaults and no signal blocked: reset in the forked child on the PTY backend, and by
``subprocess`` (``PIPE``, ``XFSZ``) plus ``env --default-signal`` (``INT``, ``QUIT``, where coreutils has it) on pipes.
A sandboxed child is bwrap, in the command's process group: it ignores ``SIGINT`` and ``SIGQUIT`` (a ctrl-c is the
command's to handle, not a reason to tear the sandbox down) and the command inside gets them back at their defaults
(:meth:`.sandbox.Jail.wrap`).

The differences a caller can see are the terminal's: on the PTY backend the child sees ``isatty()``, output passes
the line discipline (``\\n`` becomes ``\\r\\n``) and control characters are signals; on the pipe backend stderr is
merged into stdout and the control keys are mapped to the signals a terminal would have sent.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import struct
import subprocess
import termios
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import anyio

__all__ = ["BackendName", "ChildProcess", "PtyChild", "PipeChild", "spawn", "resolve_backend", "BACKEND_ENV"]

log = logging.getLogger("llmmixer.pty.backend")

BackendName = Literal["pty", "pipe"]
BACKEND_ENV = "LLMMIXER_PTY_BACKEND"
READ_SIZE = 65536
PIPE_BUFFER = 256 * 1024  # the pipe backend's output pipe size and read size (1 MiB reads measured slower)

_fallback_warned = False


def resolve_backend(requested: str | None) -> BackendName:
    """The backend asked for by flag, else by ``$LLMMIXER_PTY_BACKEND``, else ``pty``."""
    name = (requested or os.environ.get(BACKEND_ENV) or "pty").strip().lower()
    if name not in ("pty", "pipe"):
        raise ValueError(f"unknown PTY backend {name!r} (expected 'pty' or 'pipe')")
    return name  # type: ignore[return-value]


class ChildProcess(ABC):
    """One running child. ``read`` returns ``b""`` once the child's output is closed."""

    backend: BackendName
    pid: int
    #: What the child's fd 0 pointed at when it started (``/dev/pts/N`` or ``pipe:[inode]``): the input-wait
    #: detector looks for processes blocked reading exactly this file.
    terminal: str | None = None

    #: Runs bwrap, which exits 128+N when its command dies of signal N: reported as -N like an unsandboxed child
    #: (an explicit ``exit 130`` cannot be told apart from SIGINT then).
    sandboxed: bool = False

    def __init__(self) -> None:
        self._returncode: int | None = None

    @property
    def pgid(self) -> int:
        return self.pid

    @property
    def returncode(self) -> int | None:
        """Exit code once reaped; negative signal number when killed by a signal (``subprocess`` convention)."""
        code = self._returncode
        if self.sandboxed and code is not None and 128 < code <= 128 + 64:
            return 128 - code
        return code

    @abstractmethod
    async def read(self, max_bytes: int = READ_SIZE) -> bytes: ...

    @abstractmethod
    async def write(self, data: bytes) -> None: ...

    @abstractmethod
    async def close_input(self) -> None:
        """End of input: EOF on a pipe, ``ctrl-d`` at the start of a line on a terminal."""

    @abstractmethod
    def resize(self, cols: int, rows: int) -> None: ...

    @abstractmethod
    def foreground_pgid(self) -> int:
        """The process group the terminal delivers input to (the child's own group on pipes)."""

    @abstractmethod
    async def wait(self) -> int: ...

    @abstractmethod
    async def _release(self) -> None:
        """Close file descriptors; the process is already reaped or killed."""

    def own_processes(self, processes: list[Any] | None) -> list[Any] | None:
        """``processes`` (from :func:`.waiting.scan_processes`) without the sandbox's own: bwrap and its init
        process are in the child's group but never read the terminal, and are opaque to /proc (not dumpable)."""
        if not self.sandboxed or processes is None:
            return processes
        return [p for p in processes if not (p.comm == "bwrap" and (p.pid == self.pid or p.ppid == self.pid))]

    def send_key_signal(self, key: str) -> bool:
        """On pipes, deliver what the terminal would have for a control key. True when handled."""
        return False

    def pending_output(self) -> int:
        """Bytes the child wrote that this side has not read yet (0 when unknown)."""
        fd = getattr(self, "_fd", None)
        if fd is None or getattr(self, "_closed", False):
            return 0
        try:
            return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0])
        except OSError:
            return 0

    def kill_group(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group; a group that is already gone is not an error.

        A sandboxed child's ``SIGKILL`` ends its whole PID namespace (the namespace's init is killed, and the kernel
        kills every process in it, daemons that left the group included); ``SIGTERM`` and ``SIGHUP`` go to every
        process in the namespace but bwrap's own, so each can clean up before the ``SIGKILL`` that follows.
        """
        if self.sandboxed and sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGHUP):
            init = self._namespace_init()
            targets = [] if init is None else [init] if sig == signal.SIGKILL else _namespace_members(init)
            for pid in targets:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            if targets and sig != signal.SIGKILL:
                return  # (no member yet: the sandbox is still starting, and bwrap's group takes the signal)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, sig)

    def _namespace_init(self) -> int | None:
        """The host pid of the sandbox's PID-namespace init (bwrap's child), if it is still there."""
        try:
            with open(f"/proc/{self.pid}/task/{self.pid}/children") as handle:
                children = handle.read().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    async def aclose(self) -> None:
        """Kill the group if still running, reap the child, release descriptors. Safe to call twice."""
        with anyio.CancelScope(shield=True):
            if self._returncode is None:
                self.kill_group(signal.SIGKILL)
                with anyio.move_on_after(5):
                    await self.wait()
            else:
                # The leader is gone but stragglers in its group may not be.
                self.kill_group(signal.SIGKILL)
            await self._release()


def _read_link(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _namespace_members(init: int) -> list[int]:
    """Every process in ``init``'s PID namespace except bwrap's own (its init)."""
    try:
        namespace = os.readlink(f"/proc/{init}/ns/pid")
    except OSError:
        return []
    members = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != init:
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{name}/ns/pid") == namespace:
                    members.append(int(name))
    return members


class PtyChild(ChildProcess):
    backend: BackendName = "pty"

    def __init__(self, proc: object) -> None:
        super().__init__()
        self._proc = proc
        self.pid = proc.pid  # type: ignore[attr-defined]
        self._fd: int = proc.fd  # type: ignore[attr-defined]
        os.set_blocking(self._fd, False)
        self._closed = False
        self.terminal = self._slave_name()
        self._pidfd: int | None = None
        with contextlib.suppress(OSError, AttributeError):
            self._pidfd = os.pidfd_open(self.pid)

    @property
    def fd(self) -> int:
        return self._fd

    def _slave_name(self) -> str | None:
        try:
            number = struct.unpack("I", fcntl.ioctl(self._fd, getattr(termios, "TIOCGPTN"), b"\0\0\0\0"))[0]
            return f"/dev/pts/{number}"
        except (OSError, AttributeError):
            return _read_link(f"/proc/{self.pid}/fd/0")

    async def read(self, max_bytes: int = READ_SIZE) -> bytes:
        while True:
            if self._closed:
                return b""
            try:
                return os.read(self._fd, max_bytes)
            except BlockingIOError:
                await anyio.wait_readable(self._fd)
            except OSError:  # EIO: every slave descriptor is closed, the terminal is gone
                return b""

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._fd, view)
                view = view[written:]
            except BlockingIOError:
                await anyio.wait_writable(self._fd)

    async def close_input(self) -> None:
        # VEOF only ends input at the start of a line; a second one covers a partial line.
        await self.write(b"\x04\x04")

    def set_echo(self, enabled: bool) -> None:
        attrs = termios.tcgetattr(self._fd)
        attrs[3] = attrs[3] | termios.ECHO if enabled else attrs[3] & ~termios.ECHO
        termios.tcsetattr(self._fd, termios.TCSANOW, attrs)

    def resize(self, cols: int, rows: int) -> None:
        # TIOCSWINSZ on the master also sends SIGWINCH to the foreground group.
        fcntl.ioctl(self._fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def foreground_pgid(self) -> int:
        try:
            return os.tcgetpgrp(self._fd)
        except OSError:
            return self.pid

    async def wait(self) -> int:
        while self._returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere; the exit status is lost
                self._returncode = -1
                break
            if pid:
                self._returncode = os.waitstatus_to_exitcode(status)
                break
            if self._pidfd is not None:
                await anyio.wait_readable(self._pidfd)
            else:
                await anyio.sleep(0.02)
        return self.returncode  # type: ignore[return-value]

    async def _release(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(OSError):
                anyio.notify_closing(self._fd)
            # Close through ptyprocess's file object (it owns the fd) and mark it closed so its __del__
            # does not try to reap a child we already reaped.
            with contextlib.suppress(OSError):
                self._proc.fileobj.close()  # type: ignore[attr-defined]
            self._proc.closed = True  # type: ignore[attr-defined]
        if self._pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(self._pidfd)
            self._pidfd = None


class PipeChild(ChildProcess):
    backend: BackendName = "pipe"

    def __init__(self, process: anyio.abc.Process, output_fd: int) -> None:
        super().__init__()
        self._process = process
        self.pid = process.pid
        self.terminal = _read_link(f"/proc/{self.pid}/fd/0")
        self._fd = output_fd
        os.set_blocking(self._fd, False)
        self._closed = False

    async def read(self, max_bytes: int = PIPE_BUFFER) -> bytes:
        # Straight os.read on a non-blocking fd: one wake-up drains up to a whole pipe buffer.
        while not self._closed:
            try:
                return os.read(self._fd, max_bytes)
            except BlockingIOError:
                await anyio.wait_readable(self._fd)
            except OSError:
                return b""
        return b""

    async def write(self, data: bytes) -> None:
        assert self._process.stdin is not None
        try:
            await self._process.stdin.send(data)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, BrokenPipeError) as exc:
            raise BrokenPipeError("the child closed its input") from exc

    async def close_input(self) -> None:
        if self._process.stdin is not None:
            with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError, BrokenPipeError):
                await self._process.stdin.aclose()

    def resize(self, cols: int, rows: int) -> None:
        """Pipes have no window size; the call is accepted and changes nothing."""

    def foreground_pgid(self) -> int:
        return self.pid

    def send_key_signal(self, key: str) -> bool:
        sig = {"ctrl-c": signal.SIGINT, "ctrl-z": signal.SIGTSTP, "ctrl-\\": signal.SIGQUIT}.get(key)
        if sig is None:
            return False
        self.kill_group(sig)
        return True

    async def wait(self) -> int:
        if self._returncode is None:
            self._returncode = await self._process.wait()
        return self.returncode  # type: ignore[return-value]

    async def _release(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(OSError):
                anyio.notify_closing(self._fd)
            with contextlib.suppress(OSError):
                os.close(self._fd)
        with contextlib.suppress(Exception):
            await self._process.aclose()


RESET_SIGNALS = (signal.SIGPIPE, signal.SIGINT, signal.SIGQUIT, signal.SIGXFSZ)


KEYBOARD_SIGNALS = (signal.SIGINT, signal.SIGQUIT)


def reset_signals(ignore_keyboard: bool = False) -> None:
    """In the forked child, before exec: default dispositions and an empty signal mask. ``ignore_keyboard``: the
    child is bwrap, which must outlive a ctrl-c meant for the command (the command resets them itself)."""
    for sig in RESET_SIGNALS:
        signal.signal(sig, signal.SIG_IGN if ignore_keyboard and sig in KEYBOARD_SIGNALS else signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


_signal_env: str | None | bool = False  # False: not probed yet


def signal_env() -> str | None:
    """The ``env`` program when it has ``--default-signal``/``--ignore-signal`` (coreutils 9+), else None."""
    global _signal_env
    if _signal_env is False:
        env = "/usr/bin/env" if os.path.exists("/usr/bin/env") else "/bin/env"
        try:
            done = subprocess.run([env, "--default-signal=INT,QUIT", "--ignore-signal=TTOU", "true"],
                                  capture_output=True, timeout=10, check=False)
            _signal_env = env if done.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired):
            _signal_env = None
    return _signal_env  # type: ignore[return-value]


def _pipe_prefix(sandboxed: bool) -> list[str]:
    env = signal_env()
    if env is None:
        return []
    return [env, "--ignore-signal=INT,QUIT" if sandboxed else "--default-signal=INT,QUIT"]


def _spawn_pty(argv: Sequence[str], cwd: str, env: Mapping[str, str], cols: int, rows: int,
               sandboxed: bool) -> PtyChild:
    import ptyprocess  # lazily: only the PTY backend needs it

    ignore = sandboxed and signal_env() is not None
    proc = ptyprocess.PtyProcess.spawn(list(argv), cwd=cwd, env=dict(env), dimensions=(rows, cols),
                                       preexec_fn=lambda: reset_signals(ignore))
    return PtyChild(proc)


async def _spawn_pipe(argv: Sequence[str], cwd: str, env: Mapping[str, str], sandboxed: bool) -> PipeChild:
    read_end, write_end = os.pipe()
    # A bigger pipe means fewer wake-ups per megabyte read (Linux; elsewhere the default size stays).
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_BUFFER)
    try:
        process = await anyio.open_process([*_pipe_prefix(sandboxed), *argv], stdin=subprocess.PIPE, stdout=write_end,
                                           stderr=subprocess.STDOUT, cwd=cwd, env=dict(env),
                                           start_new_session=True)
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    return PipeChild(process, read_end)


async def spawn(
    argv: Sequence[str],
    *,
    cwd: str,
    env: Mapping[str, str],
    backend: BackendName = "pty",
    cols: int = 120,
    rows: int = 40,
    sandboxed: bool = False,
) -> ChildProcess:
    """Start ``argv`` in a new session on ``backend``; fall back to pipes (once warned) if no PTY can be opened.
    ``sandboxed``: ``argv`` is a bwrap command line (see :attr:`ChildProcess.sandboxed`).

    Raises:
        OSError: the program could not be started at all (on either backend).
    """
    child = await _spawn(argv, cwd=cwd, env=env, backend=backend, cols=cols, rows=rows, sandboxed=sandboxed)
    child.sandboxed = sandboxed
    return child


async def _spawn(argv: Sequence[str], *, cwd: str, env: Mapping[str, str], backend: BackendName, cols: int,
                 rows: int, sandboxed: bool) -> ChildProcess:
    global _fallback_warned
    if backend == "pty":
        try:
            return _spawn_pty(argv, cwd, env, cols, rows, sandboxed)
        except ImportError as exc:
            reason = f"ptyprocess is not importable ({exc})"
        except OSError as exc:
            if exc.errno in (2, 13, 20):  # ENOENT/EACCES/ENOTDIR: the program or cwd, not the terminal
                raise
            reason = f"a pseudo-terminal could not be opened ({exc})"
        if not _fallback_warned:
            _fallback_warned = True
            log.warning("PTY backend unavailable, using pipes: %s", reason)
    return await _spawn_pipe(argv, cwd, env, sandboxed)

"""Is a session's child waiting for input? Three layers, each reporting itself as the one that decided.

1. ``kernel`` (Linux): the processes of the terminal's foreground process group (the child's own group on pipes),
   read from ``/proc``, every thread of each: a thread blocked in ``read`` on the session's terminal, or in
   ``select``/``poll`` on a set that includes it, makes its process wait (Codex's main thread sits in ``futex``
   while another thread reads the terminal); a running thread makes it busy; threads blocked in ``epoll`` (whose fd
   set lives in the kernel) leave it undecided, and it falls through; blocked on anything else, it is busy.
2. ``quiescence``: no output and no input for ``quiet_s``.
3. ``prompt``: the last line of output looks like a prompt (``[y/N]``, ``Password:``, ``? ``, ``> ``).

Just after input was sent, the kernel layer is not trusted for ``settle_s``: the reader may not have been woken yet.
"""

from __future__ import annotations

import fcntl
import os
import platform
import re
import struct
import termios
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = ["Waiting", "ProcessInfo", "KernelState", "scan_processes", "process_state", "kernel_state",
           "prompt_match", "decide", "PROMPT_PATTERNS"]

Layer = Literal["kernel", "quiescence", "prompt"]
KernelState = Literal["reading", "polling", "busy"]

PROMPT_PATTERNS: tuple[re.Pattern[str], ...] = tuple(re.compile(p) for p in (
    r"\[[yY]/[nN]\]\s*$",
    r"\([yY]/[nN]\)\s*$",
    r"(?i)\b(password|passphrase|passcode)[^\n:]*:\s*$",
    r"\?\s$",
    r">\s$",
    r"[$#%]\s$",
))


@dataclass(frozen=True, slots=True)
class Waiting:
    waiting: bool
    layer: Layer | None = None


# Syscall numbers by machine: the ones that read, the ones that multiplex (and where their fd set is), waits.
_SYSCALLS: dict[str, dict[str, frozenset[int]]] = {
    "x86_64": {"read": frozenset({0, 17, 19, 295}), "select": frozenset({23, 270}), "poll": frozenset({7, 271}),
               "epoll": frozenset({232, 281, 441}), "wait": frozenset({61, 247})},
    "aarch64": {"read": frozenset({63, 65, 67, 69}), "select": frozenset({72}), "poll": frozenset({73}),
                "epoll": frozenset({22, 441}), "wait": frozenset({260, 95})},
}
_SYSCALL_TABLE = _SYSCALLS.get(platform.machine())
_TTY_READ_WCHAN = ("n_tty_read", "wait_woken", "tty_read", "pipe_read", "anon_pipe_read", "pipe_wait")
_POLL_WCHAN = ("poll_schedule_timeout", "do_select", "do_sys_poll", "core_sys_select")
_EPOLL_WCHAN = ("ep_poll",)
_WAIT_WCHAN = ("do_wait",)
POLLIN = 0x001


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    pid: int
    comm: str
    state: str
    ppid: int
    pgrp: int
    session: int


def _read(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def scan_processes() -> list[ProcessInfo] | None:
    """Every process this user can see, from ``/proc``; None where there is no ``/proc``."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    found: list[ProcessInfo] = []
    for name in names:
        if not name.isdigit():
            continue
        stat = _read(f"/proc/{name}/stat")
        if stat is None:
            continue
        head, _, tail = stat.rpartition(")")
        fields = tail.split()
        if len(fields) < 4:
            continue
        comm = head.partition("(")[2]
        found.append(ProcessInfo(pid=int(name), comm=comm, state=fields[0], ppid=int(fields[1]),
                                 pgrp=int(fields[2]), session=int(fields[3])))
    return found


def _fd_target(pid: int, fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        return None


def _read_memory(pid: int, address: int, size: int) -> bytes | None:
    if address == 0 or size <= 0:
        return None
    try:
        with open(f"/proc/{pid}/mem", "rb", buffering=0) as handle:
            handle.seek(address)
            return handle.read(size)
    except (OSError, OverflowError, ValueError):
        return None


def _selected_fds(pid: int, nfds: int, readfds: int) -> list[int] | None:
    nfds = min(nfds, 1024)
    data = _read_memory(pid, readfds, (nfds + 7) // 8)
    if data is None:
        return None
    return [fd for fd in range(nfds) if data[fd // 8] >> (fd % 8) & 1]


def _polled_fds(pid: int, address: int, nfds: int) -> list[int] | None:
    nfds = min(nfds, 64)
    data = _read_memory(pid, address, 8 * nfds)
    if data is None or len(data) < 8 * nfds:
        return None
    fds = []
    for index in range(nfds):
        fd, events, _ = struct.unpack_from("ihh", data, 8 * index)
        if fd >= 0 and events & POLLIN:
            fds.append(fd)
    return fds


def _unread_bytes(pid: int, fd: int) -> int:
    """Input already queued on the process's ``fd`` that it has not read yet (0 when unknown).

    Opened through /proc for one ioctl and closed at once: holding a terminal open would keep its master from
    ever seeing the end of the session.
    """
    try:
        handle = os.open(f"/proc/{pid}/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        return 0
    try:
        return int(struct.unpack("i", fcntl.ioctl(handle, termios.FIONREAD, b"\0\0\0\0"))[0])
    except OSError:
        return 0
    finally:
        os.close(handle)


def _reading(pid: int, fds: Iterable[int], terminal: str) -> KernelState:
    """Blocked on ``fds``: reading the terminal unless none of them is it, or input is queued it has not taken."""
    # /dev/tty is the controlling terminal, which for a session's processes is the session's own (crossterm opens it).
    mine = [fd for fd in fds if _fd_target(pid, fd) in (terminal, "/dev/tty")]
    if not mine:
        return "busy"
    return "busy" if any(_unread_bytes(pid, fd) for fd in mine) else "reading"


def process_state(process: ProcessInfo, terminal: str) -> KernelState | Literal["child"]:
    """What one process of the foreground group is doing with respect to ``terminal``, judged over its threads."""
    if process.state in ("T", "t"):
        return "busy"
    try:
        threads = [int(tid) for tid in os.listdir(f"/proc/{process.pid}/task") if tid.isdigit()]
    except OSError:
        threads = [process.pid]
    states = {_thread_state(process.pid, tid, terminal) for tid in threads or [process.pid]}
    for verdict in ("reading", "running", "polling", "child"):
        if verdict in states:
            return "busy" if verdict == "running" else verdict
    return "busy"


def _thread_state(pid: int, tid: int, terminal: str) -> KernelState | Literal["child", "running"]:
    """One thread: ``running`` (on a CPU or in uninterruptible sleep), or what it is blocked in."""
    base = f"/proc/{pid}/task/{tid}"
    stat = _read(f"{base}/stat") or ""
    state = stat.rpartition(")")[2].split()[:1]
    if not state or state[0] in ("R", "D"):
        return "running" if state else "busy"
    syscall = (_read(f"{base}/syscall") or "").split()
    if _SYSCALL_TABLE is not None and syscall and syscall[0].lstrip("-").isdigit() and len(syscall) >= 3:
        number = int(syscall[0])
        args = [int(a, 16) for a in syscall[1:7]]
        if number in _SYSCALL_TABLE["read"]:
            return _reading(pid, [args[0]], terminal)
        if number in _SYSCALL_TABLE["wait"]:
            return "child"
        if number in _SYSCALL_TABLE["epoll"]:
            return "polling"
        fds: list[int] | None = None
        if number in _SYSCALL_TABLE["select"]:
            fds = _selected_fds(pid, args[0], args[1])
        elif number in _SYSCALL_TABLE["poll"]:
            fds = _polled_fds(pid, args[0], args[1])
        else:
            return "busy"
        if fds is None:
            return "polling"  # the fd set is not readable here: undecided
        return _reading(pid, fds, terminal)
    wchan = _read(f"{base}/wchan") or ""
    if wchan.startswith(_WAIT_WCHAN):
        return "child"
    if wchan.startswith(_TTY_READ_WCHAN):
        return _reading(pid, [0], terminal)
    if wchan.startswith(_POLL_WCHAN + _EPOLL_WCHAN):
        return "polling"
    return "busy"


def kernel_state(processes: Iterable[ProcessInfo] | None, pgid: int, terminal: str | None) -> KernelState | None:
    """The foreground group's verdict, or None when the kernel layer cannot tell (no /proc, no group)."""
    if processes is None or terminal is None:
        return None
    group = [p for p in processes if p.pgrp == pgid and p.state not in ("Z", "X")]
    if not group:
        return None
    states = {process_state(p, terminal) for p in group}
    if "reading" in states:
        return "reading"
    if "busy" in states:
        return "busy"
    if "polling" in states:
        return None
    return "busy"  # every process waits for a child that is not in this group: not reading the terminal


def prompt_match(last_line: str) -> bool:
    return any(pattern.search(last_line) for pattern in PROMPT_PATTERNS)


def decide(kernel: KernelState | None, *, quiet_for_s: float, quiet_s: float, last_line: str) -> Waiting:
    if kernel == "reading":
        return Waiting(True, "kernel")
    if kernel == "busy":
        return Waiting(False, "kernel")
    if quiet_for_s >= quiet_s:
        return Waiting(True, "quiescence")
    if prompt_match(last_line):
        return Waiting(True, "prompt")
    return Waiting(False, None)

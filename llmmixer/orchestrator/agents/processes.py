"""The last line of containment for a stopped leg: every process that carries the leg's marker, wherever it went.

A CLI may leave helpers behind that escaped its process group (Codex starts a daemon in a session of its own). Each
leg's environment carries ``LLMMIXER_AGENT_LEG=<id>``, which every descendant inherits, so after the runner has
stopped the leg, the processes still carrying it are found in ``/proc`` and killed: TERM, then KILL after a short
grace. Where the runner already stopped the whole sandbox this finds nothing and costs one scan.
"""

from __future__ import annotations

import os
import signal
import time

import anyio
import anyio.to_thread

from .launch import LEG_MARKER

__all__ = ["leg_processes", "stop_leg_processes", "GRACE_S"]

GRACE_S = 0.2


def leg_processes(leg_id: str) -> list[int]:
    """Pids of live processes whose environment carries this leg's marker."""
    needle = f"{LEG_MARKER}={leg_id}".encode() + b"\0"
    found = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as handle:
                environ = handle.read() + b"\0"
            with open(f"/proc/{name}/stat", "rb") as handle:
                state = handle.read().rpartition(b")")[2].split()[0]
        except (OSError, IndexError):
            continue
        if needle in environ and state not in (b"Z", b"X"):
            found.append(int(name))
    return found


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


async def stop_leg_processes(leg_id: str, grace_s: float = GRACE_S, timeout_s: float = 10.0) -> int:
    """TERM every process of the leg, KILL what is left after ``grace_s``; returns how many were found."""
    with anyio.CancelScope(shield=True):
        pids = await anyio.to_thread.run_sync(leg_processes, leg_id)
        if not pids:
            return 0
        _signal_all(pids, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        killed = False
        while True:
            await anyio.sleep(0.02)
            left = await anyio.to_thread.run_sync(leg_processes, leg_id)
            if not left or time.monotonic() > deadline:
                return len(pids)
            if not killed and time.monotonic() > deadline - timeout_s + grace_s:
                _signal_all(left, signal.SIGKILL)
                killed = True
    return 0  # not reached: the shielded loop above returns

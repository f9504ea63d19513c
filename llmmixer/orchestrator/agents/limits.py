"""Per-leg resource limits (``settings.agent_limits``): memory, CPU time and processes of one agent leg's CLI run.

This machine class (and many containers) has no cgroup v2 controllers to hand to a leg, so the limits hold two ways
that work anywhere, for the CLI and every process it starts:

- **rlimits**, set by the leg's own shell before it ``exec``s the CLI (:func:`ulimit_prefix`, ``setrlimit`` inherited
  by every child): ``RLIMIT_DATA`` for memory (not ``RLIMIT_AS``: V8 reserves far more address space than it uses,
  and node would not start) and ``RLIMIT_CPU``, each a ceiling for one process. (``RLIMIT_NPROC`` counts every
  process of the user on the machine, not the leg's, so it is not used.)
- **a watch** over the leg's processes together (those carrying its marker, as :mod:`.processes` finds them): their
  resident memory, their CPU time (children reaped included) and how many are alive, sampled every
  :data:`SAMPLE_S`. The first limit crossed stops the leg (its runner call is cancelled, so its sandbox is killed)
  with a :class:`LimitExceeded` that names the limit and what the leg used; the other legs go on.

The CPU ceiling per process is a little above the leg's (:data:`CPU_MARGIN_S`), so the watch, which sees the whole
leg, is the one that names a breach.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
import anyio.to_thread

from ...servers.core.errors import PolicyError
from ..config import AgentLimits
from .processes import leg_processes

__all__ = ["LimitExceeded", "LegUsage", "leg_usage", "ulimit_prefix", "within_limits", "SAMPLE_S"]

SAMPLE_S = 0.1
CPU_MARGIN_S = 2
_PAGE = os.sysconf("SC_PAGE_SIZE")
_TICKS = os.sysconf("SC_CLK_TCK")
_MIB = 1024 * 1024


class LimitExceeded(PolicyError):
    """A leg used more than ``settings.agent_limits`` allows (``details``: the limit, its value, what was used)."""


@dataclass(frozen=True, slots=True)
class LegUsage:
    memory_bytes: int = 0
    cpu_s: float = 0.0
    processes: int = 0


def leg_usage(leg_id: str) -> LegUsage:
    """What the leg's live processes use together (a process gone between two reads counts for nothing)."""
    memory, ticks, alive = 0, 0, 0
    for pid in leg_processes(leg_id):
        try:
            with open(f"/proc/{pid}/statm", "rb") as handle:
                resident = int(handle.read().split()[1])
            with open(f"/proc/{pid}/stat", "rb") as handle:
                fields = handle.read().rpartition(b")")[2].split()
        except (OSError, IndexError, ValueError):
            continue
        memory += resident * _PAGE
        ticks += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
        alive += 1
    return LegUsage(memory_bytes=memory, cpu_s=ticks / _TICKS, processes=alive)


def breach(limits: AgentLimits, usage: LegUsage, agent: str) -> LimitExceeded | None:
    """The first limit ``usage`` is over, as the leg's error; None within every limit."""
    checks = (("memory", limits.memory_mb, usage.memory_bytes / _MIB, "memory_mb", "MiB of resident memory"),
              ("CPU", limits.cpu_s, usage.cpu_s, "cpu_s", "CPU seconds"),
              ("process", limits.processes, usage.processes, "processes", "processes alive at once"))
    for name, limit, used, key, unit in checks:
        if limit is not None and used > limit:
            return LimitExceeded(f"{agent} exceeded its {name} limit: {used:.0f} {unit}, over the {limit:g} that "
                                 f"settings.agent_limits.{key} allows; the leg was stopped",
                                 details={"limit": key, "allowed": limit, "used": round(used, 1)})
    return None


def ulimit_prefix(limits: AgentLimits) -> str:
    """The shell's ``ulimit`` commands for the per-process ceilings, then ``&&``; empty without any."""
    parts = []
    if limits.memory_mb is not None:
        parts.append(f"ulimit -d {limits.memory_mb * 1024}")  # KiB
    if limits.cpu_s is not None:
        parts.append(f"ulimit -t {int(limits.cpu_s) + CPU_MARGIN_S}")
    return "".join(f"{part} && " for part in parts)


async def within_limits(limits: AgentLimits, leg_id: str, agent: str, run: Callable[[], Awaitable[None]]) -> None:
    """``run()`` (the leg's CLI run) while its processes are watched; at a breach it is cancelled.

    Raises:
        LimitExceeded: the leg crossed a limit.
    """
    if limits.memory_mb is None and limits.cpu_s is None and limits.processes is None:
        await run()
        return
    crossed: LimitExceeded | None = None
    failed: Exception | None = None
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            nonlocal crossed
            while crossed is None:
                await anyio.sleep(SAMPLE_S)
                crossed = breach(limits, await anyio.to_thread.run_sync(leg_usage, leg_id), agent)
            tg.cancel_scope.cancel()

        tg.start_soon(watch)
        try:
            await run()
        except Exception as exc:  # noqa: BLE001 - raised below as it is: the task group would wrap it in a group
            failed = exc
        tg.cancel_scope.cancel()
    if crossed is not None:
        raise crossed
    if failed is not None:
        raise failed

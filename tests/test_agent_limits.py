"""Per-leg limits (agents/limits.py) on real processes: the watch over a leg's processes, its error, and the
per-process ceilings the leg's shell sets."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid

import anyio
import pytest

from llmmixer.orchestrator.agents.launch import LEG_MARKER
from llmmixer.orchestrator.agents.limits import LimitExceeded, leg_usage, ulimit_prefix, within_limits
from llmmixer.orchestrator.config import AgentLimits
from llmmixer.servers.core.errors import InvalidInputError

pytestmark = pytest.mark.anyio


def _marked(leg_id: str, command: str) -> subprocess.Popen[bytes]:
    """``command`` as a leg's process would run: with the leg's marker, in a process group of its own."""
    return subprocess.Popen(["bash", "-c", command], env={**os.environ, LEG_MARKER: leg_id}, start_new_session=True)


def _end(shell: subprocess.Popen[bytes]) -> None:
    os.killpg(shell.pid, signal.SIGKILL)
    shell.wait()


async def test_a_leg_with_more_processes_than_allowed_is_stopped_with_an_error_naming_the_limit() -> None:
    leg_id = f"limits-{uuid.uuid4().hex[:8]}"
    ran_to_its_end = False
    shell = _marked(leg_id, "sleep 300 & sleep 300 & sleep 300 & wait")
    try:
        async def run() -> None:
            nonlocal ran_to_its_end
            await anyio.sleep(300)
            ran_to_its_end = True

        with anyio.fail_after(60), pytest.raises(LimitExceeded) as stopped:
            await within_limits(AgentLimits(processes=2), leg_id, "codex", run)
    finally:
        _end(shell)
    assert not ran_to_its_end
    error = stopped.value.to_dict()["error"]
    assert error["kind"] == "policy" and error["details"]["limit"] == "processes"
    assert error["details"]["used"] >= 3 and error["details"]["allowed"] == 2
    assert "codex exceeded its process limit" in error["message"]
    assert "settings.agent_limits.processes" in error["message"]


async def test_within_its_limits_a_leg_runs_to_its_end_and_its_own_error_comes_through_as_it_is() -> None:
    limits = AgentLimits(memory_mb=4096, cpu_s=600, processes=64)
    finished: list[str] = []

    async def fine() -> None:
        await anyio.sleep(0.3)
        finished.append("yes")

    await within_limits(limits, "no-such-leg", "codex", fine)
    assert finished == ["yes"]

    async def refused() -> None:
        raise InvalidInputError("the runner refused")

    with pytest.raises(InvalidInputError, match="the runner refused"):
        await within_limits(limits, "no-such-leg", "codex", refused)


async def test_the_usage_sums_the_legs_processes_only() -> None:
    leg_id = f"limits-{uuid.uuid4().hex[:8]}"
    assert leg_usage(leg_id).processes == 0
    shell = _marked(leg_id, "sleep 300 & wait")
    try:
        with anyio.fail_after(30):
            while (usage := leg_usage(leg_id)).processes < 2:
                await anyio.sleep(0.05)
    finally:
        _end(shell)
    assert usage.memory_bytes > 0 and usage.cpu_s >= 0


def test_the_per_process_ceilings_are_set_by_the_legs_shell() -> None:
    assert ulimit_prefix(AgentLimits()) == ""
    prefix = ulimit_prefix(AgentLimits(memory_mb=512, cpu_s=30))
    assert prefix == "ulimit -d 524288 && ulimit -t 32 && "
    shown = subprocess.run(["bash", "-c", prefix + "ulimit -d; ulimit -t"], capture_output=True, text=True,
                           check=True).stdout.split()
    assert shown == ["524288", "32"]

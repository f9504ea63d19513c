"""Coding-agent legs: how fast a lost race's agent is gone, and what a leg costs over running its CLI directly.

- **Stop**: races of Codex (its scripted shell command passes the check) against Claude Code (its scripted command
  sleeps for ten minutes, a child process of its Bash tool). For each race, the time from the moment the winner is
  decided to the moment no process of the loser is left (``stopped_ms``, measured by the leg: the runner kills its
  sandbox, then the leg's marker sweep finds nothing). p95 over 20 races (goal ≤ 500 ms).
- **Pick best**: Codex and Claude Code both pass; the same legs with ``--pick best`` (a judge model on the emulator
  ranks the two) against ``--pick first``, in ``race`` mode (best waits for the second passer, then judges) and in
  ``all`` mode (every leg runs either way: the judge alone). Interleaved; medians of the whole run (reported).
- **Overhead**: the same scripted task for Codex, as an agent leg (worktree, seeded HOME, the CLI through the PTY
  runner over MCP, the check through the runner, the diff) against the same CLI command with the same environment
  and HOME run directly with ``subprocess``, followed by the same check. Interleaved; medians (goal ≤ 1.10×).

Both use the real CLIs under ``.ci/node`` and the bundled emulators in this process.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.stats import percentile, row
from llmmixer.orchestrator.modes import AGENT_MODES

__all__ = ["run_bench"]

RACES, QUICK_RACES = 20, 3
PICK_RUNS, QUICK_PICK_RUNS = 5, 2
OVERHEAD_RUNS, QUICK_OVERHEAD_RUNS = 6, 2
TASK = "Create created.txt and change old to new in edit.txt."
FIX = "echo created > created.txt && sed -i s/old/new/ edit.txt"
CHECK = "test -f created.txt && grep -qx new edit.txt"
KEYS = {"ANTHROPIC_API_KEY": "bench-anthropic-key", "OPENAI_API_KEY": "bench-openai-key",
        "GEMINI_API_KEY": "bench-gemini-key"}


def _repo(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "edit.txt").write_text("old\n")
    git = ["git", "-C", str(root), "-c", "user.email=b@example.com", "-c", "user.name=b"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "init"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    return root


def _turns(tool: str, argument: str, command: str, **extra: str) -> list[dict[str, Any]]:
    return [{"tool": tool, "args": {argument: command, **extra}}, {"say": "Done."}]


async def _agent_run(runs: Any, repo: Path, agents: list[str], **fields: Any) -> dict[str, Any]:
    from llmmixer.orchestrator.agents import AgentRequest

    run_id = await runs.start_agents(AgentRequest(task=TASK, agents=agents, check=CHECK, cwd=str(repo), **fields))
    await runs.wait(run_id, 600)
    return await runs.snapshot(run_id)


def _direct(work_root: Path) -> float:
    """The Codex command a leg runs, with the leg's HOME and environment, run directly; then the check."""
    from llmmixer.orchestrator.agents.launch import (LegLayout, endpoint_for, leg_environment, prepare_home,
                                                     secrets_for, shell_command)
    from llmmixer.orchestrator.agents.spec import AgentSpec, find_command

    spec = AgentSpec.default("codex")
    adapter = spec.adapter()
    layout = LegLayout(root=work_root, leg_id=f"bench-direct-{time.time_ns()}")
    started = time.perf_counter()
    _repo(layout.work)
    base_url = endpoint_for(adapter, spec)
    binary = find_command(spec)
    prepare_home(adapter, spec, layout, base_url=base_url)
    env = {**os.environ, **leg_environment(adapter, spec, layout, base_url=base_url, binary=binary),
           **secrets_for(adapter)}
    command = shell_command(adapter, spec, layout, binary=binary, task=TASK)
    subprocess.run(["bash", "-c", command], cwd=layout.root, env=env, stdin=subprocess.DEVNULL,
                   capture_output=True, timeout=600, check=True)
    subprocess.run(["bash", "-c", CHECK], cwd=layout.work, check=True, timeout=60)
    return (time.perf_counter() - started) * 1000


async def _pick_rows(runs: Any, emulator: Any, scratch: Path, count: int) -> list[dict[str, Any]]:
    """--pick best against --pick first, the same two passing legs, in race and in all mode."""
    emulator.set_script("anthropic", _turns("Bash", "command", FIX, description="fix"))
    emulator.set_behaviour("gemini", reply_json={"winner": "A", "reason": "both pass; A is as small",
                                                 "scores": [{"candidate": "A", "score": 8},
                                                            {"candidate": "B", "score": 7}]})
    rows = []
    for mode in AGENT_MODES:
        times: dict[str, list[float]] = {"first": [], "best": []}
        judged = 0
        for index in range(count):
            for pick in ("first", "best"):
                started = time.perf_counter()
                result = await _agent_run(runs, _repo(scratch / f"pick-{mode}-{pick}-{index}"),
                                          ["codex", "claude-code"], mode=mode, pick=pick, judge="gemini")
                if result.get("winner"):
                    times[pick].append((time.perf_counter() - started) * 1000)
                judged += bool(pick == "best" and (result.get("verdict") or {}).get("scores"))
        if times["first"] and times["best"]:
            best, first = statistics.median(times["best"]), statistics.median(times["first"])
            rows.append(row(f"agents: --pick best over first, {mode} mode, Codex + Claude Code both passing, median",
                            best, first, "reported", unit="ms", ratio=best / first, passed=None,
                            note=f"+{best - first:.0f} ms; {len(times['best'])}/{len(times['first'])} runs, "
                                 f"{judged} judged"))
        else:
            rows.append(row(f"agents: --pick best over first, {mode} mode", None, None, "reported", passed=False,
                            note="no run had a winner"))
    return rows


async def run_bench(quick: bool) -> list[dict[str, Any]]:
    from llmmixer.orchestrator.agents.spec import AgentSpec, find_command
    from llmmixer.orchestrator.config import Config, default_servers
    from llmmixer.orchestrator.runs import Runs
    from llmmixer.orchestrator.stores import open_store
    from llmmixer.servers.core.workspace import ROOTS_ENV
    from llmmixer.servers.emulators.server import EmulatorServer

    try:
        for agent in ("codex", "claude-code"):
            find_command(AgentSpec.default(agent))
    except Exception as exc:  # noqa: BLE001 - no CLIs: the rows say so
        return [row("agents: suite skipped", None, None, "", passed=None, note=str(exc)[:200])]
    scratch = Path(tempfile.mkdtemp(prefix="llmmixer-bench-agents-"))
    saved = dict(os.environ)
    rows: list[dict[str, Any]] = []
    try:
        with EmulatorServer(seed=5) as emulator:
            # The repositories live in the scratch directory: the runner may name their worktrees' admin dirs.
            os.environ.update({**emulator.env, **KEYS, "LLMMIXER_AGENTS_DIR": str(scratch / "legs"),
                               ROOTS_ENV: str(scratch)})
            emulator.set_script("openai", _turns("exec_command", "cmd", FIX))
            async with Runs(Config(servers=default_servers()), open_store("memory")) as runs:
                # -- stop: loser decided -> its last process gone --------------------------------------------
                emulator.set_script("anthropic", _turns("Bash", "command", "sleep 600", description="wait"))
                stopped: list[float] = []
                decided = 0
                for index in range(QUICK_RACES if quick else RACES):
                    result = await _agent_run(runs, _repo(scratch / f"race-{index}"), ["codex", "claude-code"])
                    legs = {leg["agent"]: leg for leg in result.get("legs", [])}
                    loser = legs.get("claude-code", {})
                    if result.get("winner") == "codex" and loser.get("status") == "cancelled":
                        decided += 1
                        stopped.append(float(loser["stopped_ms"]))
                if stopped:
                    p95 = percentile(stopped, 95)
                    rows.append(row(f"agents: loser decided -> last process gone, p95 over {len(stopped)} races",
                                    p95, None, "≤ 500 ms", unit="ms", passed=p95 <= 500,
                                    note=f"p50 {statistics.median(stopped):.0f} ms, max {max(stopped):.0f} ms"))
                else:
                    rows.append(row("agents: loser decided -> last process gone", None, None, "≤ 500 ms",
                                    passed=False, note="no race was decided with a cancelled loser"))
                rows += await _pick_rows(runs, emulator, scratch, QUICK_PICK_RUNS if quick else PICK_RUNS)
                # -- overhead: a leg vs the same CLI command run directly -----------------------------------
                ours: list[float] = []
                direct: list[float] = []
                for index in range(QUICK_OVERHEAD_RUNS if quick else OVERHEAD_RUNS):
                    started = time.perf_counter()
                    result = await _agent_run(runs, _repo(scratch / f"leg-{index}"), ["codex"])
                    if result.get("winner") == "codex":
                        ours.append((time.perf_counter() - started) * 1000)
                    direct.append(_direct(scratch / f"direct-{index}"))
                if ours and direct:
                    ratio = statistics.median(ours) / statistics.median(direct)
                    rows.append(row("agents: Codex scripted task as a leg vs the same CLI command directly, median",
                                    statistics.median(ours), statistics.median(direct), "≤ 1.10×", unit="ms",
                                    ratio=ratio, passed=ratio <= 1.10,
                                    note=f"{len(ours)} legs / {len(direct)} direct runs, interleaved"))
    finally:
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(scratch, ignore_errors=True)
    return rows


if __name__ == "__main__":
    import sys

    import anyio

    for entry in anyio.run(run_bench, "--quick" in sys.argv):
        print(entry)

"""How fast each LLMMixer server answers: spawn to a completed ``tools/list`` over stdio.

Each server (the three adapters, the PTY runner, ``llmmixer mcp``) against the smallest MCP stdio server the same
SDK builds (:mod:`bench.minimal_server`, one tool), through the SDK's own client: spawn, ``initialize``,
``tools/list``. Runs interleave (baseline, then each server, five rounds) so load on the machine hits every side
alike, and each figure is the median of its five. Goal: at most 2.0x the minimal server.

``python -m bench.startup_bench [--quick]`` prints the rows; ``python -m bench --only startup`` puts them in the table.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

from .stats import row
from llmmixer.orchestrator.desktop_config import script_path

ROUNDS = 5
GOAL = 2.0
SERVERS = {
    "llmmixer-claude": [script_path("llmmixer-claude")],
    "llmmixer-gpt": [script_path("llmmixer-gpt")],
    "llmmixer-gemini": [script_path("llmmixer-gemini")],
    "llmmixer-pty": [script_path("llmmixer-pty")],
    "llmmixer mcp": [script_path("llmmixer"), "mcp"],
}
BASELINE = "minimal MCPServer"


async def spawn_to_tools_list(argv: list[str], env: dict[str, str]) -> float:
    """Seconds from spawning ``argv`` to a completed ``tools/list`` (the session is then closed)."""
    started = time.perf_counter()
    async with Client(StdioServerParameters(command=argv[0], args=argv[1:], env=env)) as client:
        tools = await client.list_tools()
        elapsed = time.perf_counter() - started
    if not tools.tools:
        raise RuntimeError(f"{' '.join(argv)} listed no tools")
    return elapsed


async def measure(rounds: int = ROUNDS) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory(prefix="llmmixer-startup-") as home:
        env = {**os.environ, "XDG_CONFIG_HOME": home, "XDG_DATA_HOME": home, "XDG_STATE_HOME": home,
               "XDG_CACHE_HOME": home}
        argvs = {BASELINE: [sys.executable, "-m", "bench.minimal_server"], **SERVERS}
        samples: dict[str, list[float]] = {name: [] for name in argvs}
        for _ in range(rounds):
            for name, argv in argvs.items():
                samples[name].append(await spawn_to_tools_list(argv, env))
    return samples


async def run_bench(quick: bool = False) -> list[dict[str, Any]]:
    samples = await measure(3 if quick else ROUNDS)
    baseline = statistics.median(samples[BASELINE])
    rows = []
    for name in SERVERS:
        ours = statistics.median(samples[name])
        rows.append(row(f"spawn to tools/list over stdio: {name} vs {BASELINE} (median of {len(samples[name])})",
                        ours, baseline, f"<= {GOAL}x", unit="s", passed=ours / baseline <= GOAL))
    return rows


if __name__ == "__main__":
    for item in anyio.run(run_bench, "--quick" in sys.argv):
        print(f"{item['figure']}: {item['ours']:.3f} s vs {item['baseline']:.3f} s = {item['ratio']:.2f}x")

"""What ``ask`` through ``llmmixer mcp`` costs over ``llmmixer ask --json``, on the same emulator, in one run.

Both paths end in the same adapter server, SDK and emulator (its own process, zero TTFT, a short reply), so the
difference is the orchestrator's MCP face: JSON-RPC framing, a progress notification per delta, the job layer.

- cold: a fresh ``llmmixer mcp`` (spawn, initialize, one ``ask``, exit) vs a fresh ``llmmixer ask --json`` process.
- warm: one more ``ask`` on an open ``llmmixer mcp`` session (what a host such as Claude Desktop does on every
  call after the first) vs the same ask on a started :class:`Runs` in this process (what ``llmmixer ask`` does once
  it is up): the MCP face alone. Runs interleave, so drift on the machine hits both sides alike.
- size: bytes and estimated tokens (4 characters per token) of each server's ``tools/list`` result, the context a
  host spends on the schemas on every turn.

``python -m bench.mcp_bench [--quick]`` prints the rows; ``python -m bench --only mcp`` puts them in the table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

from .emulator import emulator_process
from .stats import percentile, row
from llmmixer.orchestrator.desktop_config import script_path, servers
from llmmixer.servers.emulators import EmulatorClient

DUMMY_KEYS = {"ANTHROPIC_API_KEY": "bench-anthropic-key", "OPENAI_API_KEY": "bench-openai-key",
              "GEMINI_API_KEY": "bench-gemini-key"}
PROMPT = "Say hello"
MODEL = "claude"
REPLY = "Hello from the bench emulator!"
TOKEN_BUDGET = 2_000  # the orchestrator's tools/list, from the issue


def bench_env(emu: EmulatorClient, home: str) -> dict[str, str]:
    """Fake keys, the emulator's base URLs, and a config dir of our own so no user config changes the path."""
    return {**os.environ, **DUMMY_KEYS, **emu.env, "XDG_CONFIG_HOME": home, "XDG_DATA_HOME": home,
            "LLMMIXER_MAX_RETRIES": "0"}


# -- the two ways in ---------------------------------------------------------------------------------------------


def cli_ask(env: dict[str, str], cwd: str) -> float:
    """Seconds for one ``llmmixer ask --json`` process, start to exit; raises if it did not produce a winner."""
    started = time.perf_counter()
    done = subprocess.run([script_path("llmmixer"), "ask", PROMPT, "--models", MODEL, "--mode", "race", "--json"],
                          env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or json.loads(done.stdout).get("winner") != MODEL:
        raise RuntimeError(f"llmmixer ask --json failed ({done.returncode}): {done.stderr[-500:]}")
    return elapsed


def mcp_params(env: dict[str, str], cwd: str) -> StdioServerParameters:
    return StdioServerParameters(command=script_path("llmmixer"), args=["mcp"], env=env, cwd=cwd)


async def _ignore_progress(progress: float, total: float | None, message: str | None) -> None:
    return None


async def mcp_ask(client: Client) -> float:
    started = time.perf_counter()
    result = await client.call_tool("ask", {"prompt": PROMPT, "models": [MODEL], "mode": "race"},
                                    progress_callback=_ignore_progress)
    elapsed = time.perf_counter() - started
    if result.is_error or (result.structured_content or {}).get("winner") != MODEL:
        raise RuntimeError(f"ask through llmmixer mcp failed: {result.content[0].text[:500]}")
    return elapsed


async def mcp_cold(env: dict[str, str], cwd: str) -> float:
    started = time.perf_counter()
    with anyio.fail_after(120):
        async with Client(mcp_params(env, cwd)) as client:
            await mcp_ask(client)
    return time.perf_counter() - started


async def runs_ask(runs: Any) -> float:
    """One ask on a started Runs, the way ``llmmixer ask --json`` follows it: start, wait for the end, snapshot."""
    started = time.perf_counter()
    run_id = await runs.start_ask(PROMPT, models=MODEL, mode="race")
    await runs.wait(run_id, 120)
    result = await runs.snapshot(run_id)
    elapsed = time.perf_counter() - started
    if result.get("winner") != MODEL:
        raise RuntimeError(f"ask through Runs failed: {json.dumps(result)[:500]}")
    return elapsed


@contextlib.asynccontextmanager
async def in_process_runs(env: dict[str, str]) -> Any:
    from llmmixer.orchestrator.config import Config, Settings, default_servers
    from llmmixer.orchestrator.runs import Runs
    from llmmixer.orchestrator.stores import open_store

    # The pool hands each child its key from this process's environment, as the CLI's would.
    os.environ.update({k: env[k] for k in (*DUMMY_KEYS, "ANTHROPIC_BASE_URL", "OPENAI_BASE_URL",
                                           "GOOGLE_GEMINI_BASE_URL", "LLMMIXER_MAX_RETRIES")})
    async with Runs(Config(servers=default_servers(), settings=Settings()), open_store("memory")) as runs:
        yield runs


# -- tools/list size ---------------------------------------------------------------------------------------------


async def tools_list_size(env: dict[str, str], cwd: str, name: str) -> tuple[int, int, int]:
    """(tools, bytes, estimated tokens) of one server's ``tools/list`` result as compact JSON."""
    spec = servers()[name]
    params = StdioServerParameters(command=script_path(spec.script), args=list(spec.args), env=env, cwd=cwd)
    with anyio.fail_after(60):
        async with Client(params) as client:
            tools = (await client.list_tools()).tools
    text = json.dumps({"tools": [t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in tools]},
                      ensure_ascii=False, separators=(",", ":"))
    return len(tools), len(text.encode()), -(-len(text) // 4)


# -- the suite ---------------------------------------------------------------------------------------------------


async def run_bench(quick: bool) -> list[dict[str, Any]]:
    cold_n, warm_n = (2, 20) if quick else (10, 200)  # a cold pair costs ~10 s on a small box
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="llmmixer-mcp-bench-") as home, emulator_process() as emu:
        emu.set_behaviour("anthropic", ttft_ms=0, inter_token_ms=0, reply=REPLY)
        env = bench_env(emu, home)

        if not quick:
            await anyio.to_thread.run_sync(cli_ask, env, home)  # warm the file cache for both sides
        cli, cold = [], []
        for _ in range(cold_n):
            cli.append(await anyio.to_thread.run_sync(cli_ask, env, home))
            cold.append(await mcp_cold(env, home))

        warm, direct = [], []
        with anyio.fail_after(600):
            async with Client(mcp_params(env, home)) as client, in_process_runs(env) as runs:
                await mcp_ask(client)  # each side's first call starts its adapter server
                await runs_ask(runs)
                for _ in range(warm_n):
                    warm.append(await mcp_ask(client))
                    direct.append(await runs_ask(runs))

        for name in servers():
            count, size, tokens = await tools_list_size(env, home, name)
            is_orchestrator = name == "orchestrator"
            figure = f"tools/list tokens (chars/4), {servers()[name].entry_name} ({count} tools)"
            rows.append(row(figure, tokens, None, f"< {TOKEN_BUDGET}" if is_orchestrator else "",
                            passed=tokens < TOKEN_BUDGET if is_orchestrator else None,
                            note=f"{size} bytes"))

    cli_ms, cold_ms = statistics.median(cli) * 1000, statistics.median(cold) * 1000
    warm_ms, direct_ms = statistics.median(warm) * 1000, statistics.median(direct) * 1000
    return [
        row("ask via llmmixer mcp vs llmmixer ask --json, cold process, median", cold_ms, cli_ms, "<= 1.25x",
            unit="ms", passed=cold_ms <= 1.25 * cli_ms, note=f"spawn + initialize + ask + exit; n={cold_n}"),
        row("ask via a warm llmmixer mcp session vs the same ask in process, median", warm_ms, direct_ms,
            "<= +10 ms", unit="ms", passed=warm_ms - direct_ms <= 10,
            note=f"n={warm_n}; MCP face adds {warm_ms - direct_ms:.1f} ms; p95 {percentile(warm, 95) * 1000:.1f} "
                 f"vs {percentile(direct, 95) * 1000:.1f} ms"),
        row("ask via a warm llmmixer mcp session vs llmmixer ask --json (cold), median", warm_ms, cli_ms, "<= 1.0x",
            unit="ms", passed=warm_ms <= cli_ms, note="what keeping the orchestrator resident saves a host"),
        *rows,
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mcp_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    for item in anyio.run(run_bench, args.quick):
        print(json.dumps(item))
    return 0


if __name__ == "__main__":
    sys.exit(main())

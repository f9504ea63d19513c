"""P1: what an adapter MCP server adds over calling the vendor SDK directly, measured side by side in one run.

For each vendor, the same emulator (its own process: 50 ms to the first token, then 20 tokens 5 ms apart) answers
two paths, called alternately so drift on the machine hits both alike:

- ours: ``mcp.Client`` over stdio -> ``python -m llmmixer.servers.<x>_adapter`` -> official SDK -> emulator;
  time to first token is the first progress notification, total time is the ``tools/call`` result;
- baseline: the same official SDK streaming call made directly in this process, on one reused client.

The emulator stands in for a remote vendor, whose speed does not depend on how busy this machine is. So where the
machine has two or more CPUs the emulator process gets one to itself, and this process (with the adapter server it
launches) the others; unpinned, on a two-core box the CPU the MCP path spends is taken from the emulator and shows
up as a slower *vendor* (``--no-pin`` measures that way).

Goals (issue 3 "Measure", issue 8 P1): ours ≤ 1.05× the baseline at p50 and ≤ 1.10× at p95, for both figures.
A vendor whose adapter does not import yet gets a failed row instead of figures.

``python -m bench.adapter_bench [--quick]`` prints the rows; ``python -m bench --only adapters`` puts them in the
table.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

from bench.emulator import emulator_process
from bench.stats import percentile, row
from llmmixer.servers.core.adapter import BaseAdapter
from llmmixer.servers.emulators import EmulatorClient
from llmmixer.servers.emulators.app import base_urls

__all__ = ["run_bench"]

PROMPT = "Say hello"
BEHAVIOUR = {"ttft_ms": 50, "tokens": 20, "inter_token_ms": 5}
KEYS = {"ANTHROPIC_API_KEY": "bench-anthropic-key", "OPENAI_API_KEY": "bench-openai-key",
        "GEMINI_API_KEY": "bench-gemini-key"}
CALLS, QUICK_CALLS = 200, 20
WARMUP_CALLS = 5
CALL_TIMEOUT_S = 30

# One timed call: (seconds to the first text delta, seconds to the end).
Timing = tuple[float, float]
Caller = Callable[[], Awaitable[Timing]]


# -- the baseline: each vendor's SDK called directly ------------------------------------------------------------------

@contextlib.asynccontextmanager
async def anthropic_direct(urls: dict[str, str], model: str) -> AsyncIterator[Caller]:
    import anthropic

    client = anthropic.AsyncAnthropic(api_key=KEYS["ANTHROPIC_API_KEY"], base_url=urls["ANTHROPIC_BASE_URL"],
                                      max_retries=0)

    async def call() -> Timing:
        started = time.perf_counter()
        first = None
        stream = await client.messages.create(model=model, max_tokens=4096, stream=True,
                                              messages=[{"role": "user", "content": PROMPT}])
        async for event in stream:
            if first is None and event.type == "content_block_delta" and event.delta.type == "text_delta":
                first = time.perf_counter()
        return _timing(started, first)

    try:
        yield call
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def openai_direct(urls: dict[str, str], model: str) -> AsyncIterator[Caller]:
    import openai

    client = openai.AsyncOpenAI(api_key=KEYS["OPENAI_API_KEY"], base_url=urls["OPENAI_BASE_URL"], max_retries=0)

    async def call() -> Timing:
        started = time.perf_counter()
        first = None
        stream = await client.responses.create(model=model, input=[{"role": "user", "content": PROMPT}],
                                               stream=True, store=False)
        async for event in stream:
            if first is None and event.type == "response.output_text.delta":
                first = time.perf_counter()
        return _timing(started, first)

    try:
        yield call
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def gemini_direct(urls: dict[str, str], model: str) -> AsyncIterator[Caller]:
    from google import genai
    from google.genai import types

    client = genai.Client(api_key=KEYS["GEMINI_API_KEY"],
                          http_options=types.HttpOptions(base_url=urls["GOOGLE_GEMINI_BASE_URL"]))

    async def call() -> Timing:
        started = time.perf_counter()
        first = None
        stream = await client.aio.models.generate_content_stream(model=model, contents=PROMPT)
        async for chunk in stream:
            parts = chunk.candidates[0].content.parts if chunk.candidates and chunk.candidates[0].content else None
            if first is None and any(part.text for part in parts or []):
                first = time.perf_counter()
        return _timing(started, first)

    try:
        yield call
    finally:
        await client.aio.aclose()


@dataclass(frozen=True)
class Vendor:
    name: str  # the emulator's vendor name
    source: str  # the adapter package: llmmixer.servers.<source>_adapter
    direct: Callable[[dict[str, str], str], contextlib.AbstractAsyncContextManager[Caller]]


VENDORS = (
    Vendor("anthropic", "claude", anthropic_direct),
    Vendor("openai", "gpt", openai_direct),
    Vendor("gemini", "gemini", gemini_direct),
)


def _timing(started: float, first: float | None) -> Timing:
    ended = time.perf_counter()
    if first is None:
        raise RuntimeError("the stream ended without a text delta")
    return first - started, ended - started


# -- ours: the adapter server over MCP stdio -------------------------------------------------------------------------

@contextlib.asynccontextmanager
async def through_mcp(vendor: Vendor, env: dict[str, str]) -> AsyncIterator[Caller]:
    params = StdioServerParameters(command=sys.executable, args=["-m", f"llmmixer.servers.{vendor.source}_adapter"],
                                   env=env)
    async with Client(params) as client:

        async def call() -> Timing:
            first: float | None = None

            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                nonlocal first
                if first is None:
                    first = time.perf_counter()

            started = time.perf_counter()
            result = await client.call_tool("generate", {"prompt": PROMPT}, progress_callback=on_progress)
            if result.is_error:
                raise RuntimeError(f"generate failed: {result.content[0].text[:300]}")
            return _timing(started, first)

        yield call


# -- the run -----------------------------------------------------------------------------------------------------------

def default_model(source: str) -> str:
    """The adapter's default model (importing the adapter is also the check that it exists yet)."""
    module = importlib.import_module(f"llmmixer.servers.{source}_adapter.adapter")
    for value in vars(module).values():
        if inspect.isclass(value) and issubclass(value, BaseAdapter) and value is not BaseAdapter \
                and value.__module__ == module.__name__:
            return value.default_model
    raise RuntimeError(f"no adapter class in {module.__name__}")


async def measure(vendor: Vendor, emu: EmulatorClient, calls: int) -> tuple[list[Timing], list[Timing]]:
    """``calls`` timings per path, interleaved (the order flips every round), after a warm-up of each."""
    model = default_model(vendor.source)
    urls = base_urls(emu.root)
    emu.set_behaviour(vendor.name, **BEHAVIOUR)
    env = {**{k: v for k, v in os.environ.items() if k not in ("GOOGLE_API_KEY",)}, **urls, **KEYS}
    ours: list[Timing] = []
    baseline: list[Timing] = []
    async with through_mcp(vendor, env) as call_ours, vendor.direct(urls, model) as call_direct:
        for _ in range(WARMUP_CALLS):
            with anyio.fail_after(CALL_TIMEOUT_S):
                await call_ours()
                await call_direct()
        for index in range(calls):
            pair = ((call_ours, ours), (call_direct, baseline))
            for call, into in pair if index % 2 == 0 else reversed(pair):
                with anyio.fail_after(CALL_TIMEOUT_S):
                    into.append(await call())
    return ours, baseline


def rows_for(source: str, ours: list[Timing], baseline: list[Timing], setup: str) -> list[dict[str, Any]]:
    out = []
    for figure, index in (("TTFT", 0), ("total", 1)):
        for q, limit in ((50, 1.05), (95, 1.10)):
            mine = percentile([t[index] for t in ours], q) * 1000
            theirs = percentile([t[index] for t in baseline], q) * 1000
            out.append(row(f"P1 {source} via MCP stdio vs SDK: {figure} p{q}", round(mine, 2), round(theirs, 2),
                           f"≤ {limit:.2f}×", unit="ms", passed=mine <= limit * theirs,
                           note=f"{len(ours)} calls each, interleaved; {setup}"))
    return out


async def run_bench(quick: bool, pin: bool = True) -> list[dict[str, Any]]:
    calls = QUICK_CALLS if quick else CALLS
    rows: list[dict[str, Any]] = []
    pinned = pin and len(getattr(os, "sched_getaffinity", lambda _: set())(0)) >= 2
    setup = "emulator on its own CPU" if pinned else "emulator shares the CPUs"
    with emulator_process(pin) as emu:
        for vendor in VENDORS:
            try:
                ours, baseline = await measure(vendor, emu, calls)
            except Exception as exc:  # noqa: BLE001 - one vendor's failure is a row, the others still run
                rows.append(row(f"P1 {vendor.source} via MCP stdio vs SDK", None, None, "≤ 1.05× p50, ≤ 1.10× p95",
                                passed=False, note=f"{type(exc).__name__}: {exc}"[:300]))
                continue
            rows += rows_for(vendor.source, ours, baseline, setup)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.adapter_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_CALLS} calls per path instead of {CALLS}")
    parser.add_argument("--no-pin", action="store_true", help="let the emulator share the CPUs with both paths")
    args = parser.parse_args(argv)
    for entry in anyio.run(run_bench, args.quick, not args.no_pin):
        ratio = f"{entry['ratio']:.3f}×" if entry["ratio"] else "-"
        print(f"{entry['figure']:<50} ours {entry['ours']} ms  sdk {entry['baseline']} ms  {ratio:>8}  "
              f"{entry['goal']}  {'pass' if entry['passed'] else 'FAIL'}  {entry['note']}")


if __name__ == "__main__":
    main()

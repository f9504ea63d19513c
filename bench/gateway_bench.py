"""The gateway (``llmmixer serve`` speaking the vendors' APIs) against calling the vendor directly, on one emulator
process in one run: ``python -m bench --only gateway`` (with ``--peers``, LiteLLM's proxy beside us when the
``litellm[proxy]`` extra is installed).

- TTFT overhead: the openai SDK streaming Chat Completions through the gateway (``first-token/gpt``) minus the same
  SDK call straight to the emulator, interleaved sample by sample; the peer row does the same through LiteLLM's
  proxy (``litellm --config``) on the same emulator.
- A race of 3 through the gateway (``race/claude,gpt,gemini``, non-streaming) against the fastest leg alone
  through the vendor's SDK straight to the emulator (emulated TTFT 40 / 80 / 120 ms): goal ≤ 1.05×.
- Hedged p99: ``hedge/gpt,claude`` (hedge delay 100 ms) against ``gpt`` alone through the gateway, GPT's emulator
  sending 10 % of replies after 600 ms: reported.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from typing import Any

from .emulator import emulator_process
from .stats import percentile, row, supported_percentile

TOKEN = "bench-gateway-token"
MESSAGES = [{"role": "user", "content": "bench prompt"}]


@contextlib.asynccontextmanager
async def _gateway(**settings: Any) -> AsyncIterator[str]:
    from llmmixer.orchestrator.config import Config, Settings, default_servers
    from llmmixer.orchestrator.runs import Runs
    from llmmixer.orchestrator.stores import open_store
    from llmmixer.orchestrator.web.app import create_app, running

    config = Config(servers=default_servers(), settings=Settings(**settings))
    async with Runs(config, open_store("memory")) as runs:
        await runs.pool.check()
        async with running(create_app(runs, runs.store, token=TOKEN)) as url:
            yield url


async def _ttft(client: Any, model: str) -> float:
    started = time.perf_counter()
    stream = await client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
    first = None
    async for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter()
    return ((first or time.perf_counter()) - started) * 1000


@contextlib.contextmanager
def _litellm_proxy(emulator: Any) -> Any:
    """LiteLLM's proxy on the emulator's OpenAI API, or None when it is not installed."""
    binary = shutil.which("litellm", path=os.path.dirname(sys.executable))
    try:
        import litellm.proxy.proxy_server  # noqa: F401
    except ImportError:
        binary = None
    if binary is None:
        yield None
        return
    from llmmixer.servers.emulators import free_port

    port = free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write("model_list:\n  - model_name: gpt\n    litellm_params:\n      model: openai/gpt-5-mini\n"
                     f"      api_base: {emulator.env['OPENAI_BASE_URL']}\n      api_key: bench\n")
    proc = subprocess.Popen([binary, "--config", handle.name, "--port", str(port), "--host", "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    try:
        import httpx2

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if httpx2.get(f"http://127.0.0.1:{port}/health/liveliness", timeout=1).status_code == 200:
                    break
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        os.unlink(handle.name)


async def bench_ttft(emulator: Any, url: str, n: int, peers: bool) -> list[dict[str, Any]]:
    import openai

    emulator.reset()
    emulator.set_behaviour("openai", ttft_ms=50, inter_token_ms=5, tokens=20)
    async with (openai.AsyncOpenAI(api_key="bench", base_url=emulator.env["OPENAI_BASE_URL"], max_retries=0,
                                   timeout=60) as direct,
                openai.AsyncOpenAI(api_key=TOKEN, base_url=f"{url}/v1", max_retries=0, timeout=60) as through):
        await _ttft(direct, "gpt-5-mini")
        await _ttft(through, "first-token/gpt")
        ours, base = [], []
        for _ in range(n):
            base.append(await _ttft(direct, "gpt-5-mini"))
            ours.append(await _ttft(through, "first-token/gpt"))
        overhead = percentile(ours, 50) - percentile(base, 50)
        rows = [row("gateway: TTFT overhead over a direct SDK call, p50", overhead, None, "≤ LiteLLM proxy's",
                    unit="ms", note=f"gateway {percentile(ours, 50):.1f} ms vs direct {percentile(base, 50):.1f} ms "
                                    f"(emulated TTFT 50 ms), {n} samples")]
        if not peers:
            return rows
        with _litellm_proxy(emulator) as proxy_url:
            if proxy_url is None:
                rows.append(row("gateway: LiteLLM proxy not installed", None, None,
                                "pip install 'litellm[proxy]'", passed=None))
                return rows
            async with openai.AsyncOpenAI(api_key="bench", base_url=proxy_url, max_retries=0, timeout=60) as proxy:
                await _ttft(proxy, "gpt")
                peer, base2, ours2 = [], [], []
                for _ in range(n):
                    base2.append(await _ttft(direct, "gpt-5-mini"))
                    ours2.append(await _ttft(through, "first-token/gpt"))
                    peer.append(await _ttft(proxy, "gpt"))
            mine = percentile(ours2, 50) - percentile(base2, 50)
            theirs = percentile(peer, 50) - percentile(base2, 50)
            rows.append(row("gateway: TTFT overhead vs LiteLLM proxy's, p50", mine, theirs, "≤ LiteLLM proxy's",
                            unit="ms", passed=mine <= theirs,
                            note=f"LiteLLM proxy {percentile(peer, 50):.1f} ms, direct {percentile(base2, 50):.1f} ms"))
        return rows


async def bench_race(emulator: Any, url: str, n: int) -> list[dict[str, Any]]:
    import anthropic
    import openai

    emulator.reset()
    ttfts = {"anthropic": 40, "openai": 80, "gemini": 120}
    for vendor, ttft in ttfts.items():
        emulator.set_behaviour(vendor, ttft_ms=ttft, inter_token_ms=2, tokens=10)
    async with (anthropic.AsyncAnthropic(api_key="bench", base_url=emulator.env["ANTHROPIC_BASE_URL"],
                                         max_retries=0) as fastest,
                openai.AsyncOpenAI(api_key=TOKEN, base_url=f"{url}/v1", max_retries=0, timeout=60) as through):
        async def alone() -> float:
            started = time.perf_counter()
            await fastest.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=MESSAGES)
            return (time.perf_counter() - started) * 1000

        async def raced() -> float:
            started = time.perf_counter()
            await through.chat.completions.create(model="race/claude,gpt,gemini", messages=MESSAGES)
            return (time.perf_counter() - started) * 1000

        await alone()
        await raced()
        ours, base = [], []
        for _ in range(n):
            base.append(await alone())
            ours.append(await raced())
    ratio = percentile(ours, 50) / percentile(base, 50)
    return [row("gateway: race of 3 vs the fastest leg alone, p50", percentile(ours, 50), percentile(base, 50),
                "≤ 1.05×", unit="ms", passed=ratio <= 1.05,
                note=f"emulated TTFT 40/80/120 ms; p95 {percentile(ours, 95):.1f} vs {percentile(base, 95):.1f} ms")]


async def bench_hedge(emulator: Any, n: int) -> list[dict[str, Any]]:
    import openai

    emulator.reset()
    emulator.set_behaviour("openai", ttft_ms=40, slow_fraction=0.1, slow_ttft_ms=600, inter_token_ms=2, tokens=10)
    emulator.set_behaviour("anthropic", ttft_ms=60, inter_token_ms=2, tokens=10)
    async with _gateway(hedge_delay_ms=100, hedge_budget=1.0) as url, openai.AsyncOpenAI(
            api_key=TOKEN, base_url=f"{url}/v1", max_retries=0, timeout=60) as client:
        async def once(model: str) -> float:
            started = time.perf_counter()
            await client.chat.completions.create(model=model, messages=MESSAGES)
            return (time.perf_counter() - started) * 1000

        await once("gpt")
        hedged, single = [], []
        for _ in range(n):
            single.append(await once("gpt"))
            hedged.append(await once("hedge/gpt,claude"))
    q = supported_percentile(n, 99)
    return [row(f"gateway: hedged p{q:g} vs a single leg", percentile(hedged, q), percentile(single, q),
                "reported", unit="ms", passed=None,
                note=f"GPT slow (600 ms) on 10 % of calls, hedge after 100 ms to Claude; p50 "
                     f"{percentile(hedged, 50):.1f} vs {percentile(single, 50):.1f} ms; {n} samples each")]


@contextlib.contextmanager
def _environment(emulator: Any) -> Any:
    saved = dict(os.environ)
    os.environ.update({**emulator.env, "ANTHROPIC_API_KEY": "bench", "OPENAI_API_KEY": "bench",
                       "GEMINI_API_KEY": "bench", "LLMMIXER_MAX_RETRIES": "0"})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


async def run_bench(quick: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with emulator_process() as emulator, _environment(emulator):
        async with _gateway() as url:
            rows += await bench_ttft(emulator, url, 10 if quick else 50, peers=False)
            rows += await bench_race(emulator, url, 5 if quick else 30)
        rows += await bench_hedge(emulator, 20 if quick else 100)
    return rows


async def peer_rows(quick: bool) -> list[dict[str, Any]]:
    """``--peers``: the TTFT overhead beside LiteLLM's proxy's, on one emulator in one run."""
    with emulator_process() as emulator, _environment(emulator):
        async with _gateway() as url:
            rows = await bench_ttft(emulator, url, 10 if quick else 50, peers=True)
    return rows[1:]

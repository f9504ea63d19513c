"""P2 race overhead and loser close delay, P3 hedging on a heavy tail, the racing benchmark, P6 CLI cold start.

Everything runs against one emulator process on 127.0.0.1; the orchestrator runs in this process and launches the
three adapter servers over stdio exactly as ``llmmixer ask`` does. Baselines run in the same minute, interleaved
with ours.

Racing benchmark assumptions (per vendor; times are a fifth of typical public-API figures so a full run stays
short — every ratio is unchanged by the scale): time to first token lognormal with the median and sigma below, a
5% tail at 4× the median, and a fixed token rate; replies of 40 tokens.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from .emulator import emulator_process
from .stats import percentile, row, supported_percentile

VENDOR = {"claude": "anthropic", "gpt": "openai", "gemini": "gemini"}
# median TTFT ms, lognormal sigma, inter-token ms (all at 1/5 scale)
LATENCY_MIX = {"claude": (120.0, 0.4, 8.0), "gpt": (90.0, 0.6, 6.0), "gemini": (70.0, 0.7, 4.0)}
TAIL_FRACTION, TAIL_FACTOR, REPLY_TOKENS = 0.05, 4.0, 40
RESULTS = Path(__file__).parent / "results"


async def _runs(emulator: Any, **settings: Any) -> Any:
    from llmmixer.orchestrator.config import Config, Settings, default_servers
    from llmmixer.orchestrator.runs import Runs
    from llmmixer.orchestrator.stores import open_store

    os.environ.update({**emulator.env, "ANTHROPIC_API_KEY": "bench", "OPENAI_API_KEY": "bench",
                       "GEMINI_API_KEY": "bench", "LLMMIXER_MAX_RETRIES": "0"})
    runs = Runs(Config(servers=default_servers(), settings=Settings(**settings)), open_store("memory"))
    await runs.__aenter__()
    await runs.pool.check()
    return runs


async def _ask(runs: Any, **kwargs: Any) -> tuple[dict[str, Any], list[Any]]:
    run_id = await runs.start_ask("bench prompt", **kwargs)
    await runs.wait(run_id, 120)
    await runs.flush()
    return await runs.snapshot(run_id), await runs.store.read_after(None, 100_000, run=run_id)


async def bench_race(emulator: Any, n: int) -> list[dict[str, Any]]:
    emulator.reset()
    for source, ttft in (("claude", 50), ("gpt", 150), ("gemini", 250)):
        emulator.set_behaviour(VENDOR[source], ttft_ms=ttft, inter_token_ms=5, tokens=20)
    runs = await _runs(emulator)
    race, alone, close_ms = [], [], []
    try:
        for _ in range(n):
            single, _ = await _ask(runs, models="claude")
            alone.append(single["latency_ms"])
            before = {r["id"] for r in emulator.requests()}
            result, events = await _ask(runs, models="claude,gpt,gemini", mode="race")
            race.append(result["latency_ms"])
            won_at = next(e.ts for e in events if e.type == "leg.done" and e.source == result["winner"])
            for record in emulator.requests():
                if record["id"] not in before and record["closed_at"]:
                    close_ms.append((record["closed_at"] - won_at) * 1000)
    finally:
        await runs.__aexit__(None, None, None)
    return [
        row("P2 race latency p50 vs fastest leg alone", percentile(race, 50), percentile(alone, 50), "≤ 1.05×",
            unit="ms", passed=percentile(race, 50) <= 1.05 * percentile(alone, 50)),
        row("P2 race latency p95 vs fastest leg alone", percentile(race, 95), percentile(alone, 95), "≤ 1.05×",
            unit="ms", passed=percentile(race, 95) <= 1.05 * percentile(alone, 95)),
        row("P2 loser upstream close after the win, p95", percentile(close_ms, 95), None, "≤ 50 ms", unit="ms",
            passed=percentile(close_ms, 95) <= 50, note=f"{len(close_ms)} closes, max {max(close_ms):.1f} ms"),
    ]


async def bench_hedge(emulator: Any, n: int) -> list[dict[str, Any]]:
    emulator.reset()
    for source in ("claude", "gpt"):
        emulator.set_behaviour(VENDOR[source], ttft_ms=50, slow_fraction=0.05, slow_ttft_ms=2000, tokens=5)
    # The hedge delay is configured at 3× the typical TTFT: with exactly 5% slow replies the observed p95 sits on
    # the edge of the tail, where it would wait as long as the slow replies themselves.
    runs = await _runs(emulator, hedge_delay_ms=150)
    single, hedged = [], []
    try:
        for _ in range(n):
            result, _ = await _ask(runs, models="claude")
            single.append(result["latency_ms"])
        hedges_before = runs.mixer.budget.hedges
        for _ in range(n):
            result, _ = await _ask(runs, models="claude,gpt", mode="hedge")
            hedged.append(result["latency_ms"])
        extra = (runs.mixer.budget.hedges - hedges_before) / n
    finally:
        await runs.__aexit__(None, None, None)
    q = supported_percentile(n, 99)
    gain = percentile(single, q) / percentile(hedged, q)
    return [
        row(f"P3 hedged p{q:g} vs single p{q:g} (5% at 2 s, {n} samples)", percentile(hedged, q),
            percentile(single, q),
            "≥ 3× lower", unit="ms", ratio=gain, passed=gain >= 3 and extra <= 0.15,
            note=f"extra requests {extra:.1%} (goal ≤ 15%); hedge delay 150 ms"),
    ]


async def bench_rewarm(n: int) -> list[dict[str, Any]]:
    """Over TLS: the next call of a race's loser (its connection was cut by the cancel) vs a call on a connection
    that a completed call left warm. The adapter opens a replacement in the background after a cancelled stream."""
    loser_next, warm = [], []
    with emulator_process(tls=True) as emulator:
        runs = await _runs(emulator)
        try:
            await _ask(runs, models="claude,gpt", mode="all")  # each adapter's SDK loaded, so claude can win
            for _ in range(n):
                emulator.set_behaviour("anthropic", ttft_ms=20, inter_token_ms=2, tokens=5)
                emulator.set_behaviour("openai", ttft_ms=150, inter_token_ms=10, tokens=20)
                result, _ = await _ask(runs, models="claude,gpt", mode="race")
                assert result["winner"] == "claude", result
                await anyio.sleep(0.2)  # the user's next question comes later than this
                emulator.set_behaviour("openai", ttft_ms=20, inter_token_ms=2, tokens=5)
                after_loss, _ = await _ask(runs, models="gpt")
                loser_next.append(after_loss["legs"][0]["ttft_ms"])
                again, _ = await _ask(runs, models="gpt")
                warm.append(again["legs"][0]["ttft_ms"])
        finally:
            await runs.__aexit__(None, None, None)
    ratio = percentile(loser_next, 50) / percentile(warm, 50)
    return [row("P2 TLS: a loser's next call TTFT p50 vs a warm call", percentile(loser_next, 50),
                percentile(warm, 50), "≤ 1.05×", unit="ms", passed=ratio <= 1.05,
                note=f"p95 {percentile(loser_next, 95):.1f} vs {percentile(warm, 95):.1f} ms; {n} races")]


def _sample_behaviour(source: str, rng: random.Random) -> dict[str, Any]:
    median, sigma, inter = LATENCY_MIX[source]
    ttft = rng.lognormvariate(0, sigma) * median
    if rng.random() < TAIL_FRACTION:
        ttft *= TAIL_FACTOR
    return {"ttft_ms": round(ttft, 2), "inter_token_ms": inter, "tokens": REPLY_TOKENS,
            "reply": "x" * (REPLY_TOKENS * 4)}


async def bench_strategies(emulator: Any, n: int) -> list[dict[str, Any]]:
    """The racing benchmark: p50/p95/p99 per single model and per strategy, with extra tokens and cost."""
    emulator.reset()
    runs = await _runs(emulator, hedge_budget=0.2)
    rng = random.Random(42)
    plans = [("claude alone", "claude", "race"), ("gpt alone", "gpt", "race"), ("gemini alone", "gemini", "race"),
             ("race", "claude,gpt,gemini", "race"), ("first-token", "claude,gpt,gemini", "first-token"),
             ("hedge", "claude,gpt,gemini", "hedge"), ("synthesize", "claude,gpt,gemini", "synthesize"),
             ("judge", "claude,gpt,gemini", "judge")]
    figures: dict[str, dict[str, list[float]]] = {name: {"latency": [], "extra_tokens": [], "cost": []}
                                                  for name, _, _ in plans}
    try:
        for _ in range(n):
            for name, models, mode in plans:
                for source in VENDOR:
                    emulator.set_behaviour(VENDOR[source], **_sample_behaviour(source, rng))
                result, _ = await _ask(runs, models=models, mode=mode)
                figures[name]["latency"].append(result["latency_ms"])
                losers = [leg for leg in result["legs"] if leg["status"] != "won"]
                figures[name]["extra_tokens"].append(sum((leg.get("usage") or {}).get("output_tokens") or 0
                                                         for leg in losers))
                figures[name]["cost"].append(result.get("total_cost_usd") or 0.0)
    finally:
        await runs.__aexit__(None, None, None)
    best_single = min(percentile(figures[f"{s} alone"]["latency"], 99) for s in VENDOR)
    rows = []
    for name, _, _ in plans:
        latency = figures[name]["latency"]
        note = (f"p50 {percentile(latency, 50):.0f} / p95 {percentile(latency, 95):.0f} ms; "
                f"extra tokens/run {sum(figures[name]['extra_tokens']) / n:.1f}; "
                f"cost/run ${sum(figures[name]['cost']) / n:.6f}")
        rows.append(row(f"racing: {name} p99", percentile(latency, 99), best_single,
                        "vs best single p99", unit="ms", note=note))
    _plot(figures)
    return rows


def _plot(figures: dict[str, dict[str, list[float]]]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    RESULTS.mkdir(exist_ok=True)
    names = list(figures)
    fig, ax = plt.subplots(figsize=(8, 4))
    for offset, q in zip((-0.25, 0, 0.25), (50, 95, 99)):
        ax.bar([i + offset for i in range(len(names))], [percentile(figures[n]["latency"], q) for n in names],
               width=0.25, label=f"p{q}")
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.set_ylabel("latency (ms, emulated at 1/5 scale)")
    ax.set_title("LLMMixer strategies across a three-vendor latency mix")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "racing.png", dpi=120)
    plt.close(fig)


async def bench_scaling(emulator: Any, levels: tuple[int, ...]) -> list[dict[str, Any]]:
    """P1 under load: N concurrent one-model asks through the orchestrator vs N concurrent direct SDK calls."""
    import anthropic

    emulator.reset()
    emulator.set_behaviour("anthropic", ttft_ms=50, inter_token_ms=5, tokens=20)
    runs = await _runs(emulator)
    sdk = anthropic.AsyncAnthropic(max_retries=0)
    rows = []

    async def direct() -> float:
        started = time.perf_counter()
        stream = await sdk.messages.create(model="claude-haiku-4-5", max_tokens=64, stream=True,
                                           messages=[{"role": "user", "content": "bench prompt"}])
        async for _ in stream:
            pass
        return (time.perf_counter() - started) * 1000

    async def ours() -> float:
        result, _ = await _ask(runs, models="claude")
        return result["latency_ms"]

    async def burst(call: Any, n: int) -> list[float]:
        out: list[float] = []

        async def one() -> None:
            out.append(await call())

        async with anyio.create_task_group() as tg:
            for _ in range(n):
                tg.start_soon(one)
        return out

    try:
        await burst(ours, 2)
        await burst(direct, 2)
        for level in levels:
            mine, base = [], []
            for _ in range(max(1, 200 // level)):
                mine += await burst(ours, level)
                base += await burst(direct, level)
            rows.append(row(f"P1 scaling: {level} concurrent asks, total p50", percentile(mine, 50),
                            percentile(base, 50), "report", unit="ms",
                            note=f"p95 {percentile(mine, 95):.0f} vs {percentile(base, 95):.0f} ms"))
    finally:
        await sdk.close()
        await runs.__aexit__(None, None, None)
    return rows


def bench_cold_start(n: int) -> list[dict[str, Any]]:
    """P6: ``llmmixer --help`` against ``python -c pass``, interleaved."""
    script = str(Path(sys.executable).parent / "llmmixer")
    ours, base = [], []
    for _ in range(n):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True, capture_output=True)
        base.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        subprocess.run([script, "--help"], check=True, capture_output=True)
        ours.append((time.perf_counter() - started) * 1000)
    ratio = percentile(ours, 50) / percentile(base, 50)
    return [row("P6 `llmmixer --help` cold start, p50", percentile(ours, 50), percentile(base, 50), "≤ 3×",
                unit="ms", passed=ratio <= 3)]


async def run_bench(quick: bool) -> list[dict[str, Any]]:
    rows = bench_cold_start(5 if quick else 20)
    with emulator_process() as emulator:
        rows += await bench_race(emulator, 10 if quick else 100)
        rows += await bench_hedge(emulator, 40 if quick else 300)
        rows += await bench_strategies(emulator, 10 if quick else 100)
        rows += await bench_scaling(emulator, (1, 10) if quick else (1, 10, 100))
    rows += await bench_rewarm(5 if quick else 40)
    return rows

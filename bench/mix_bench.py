"""The combining modes: ``synthesize`` latency against its floor, the slowest proposer plus the aggregator alone.

A synthesize run cannot end before its slowest proposer has answered and the aggregator has then written its
answer; the baseline runs exactly those two calls one after the other, through the same orchestrator, in the same
loop (interleaved with ours), so the ratio is the cost of the strategy itself: fan-out, gathering, building the
aggregation prompt, and one extra leg. Per vendor (1/5 of public-API times, as in race_bench): TTFT 50 / 150 /
250 ms, 20 tokens 5 ms apart; the aggregator is claude.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from .emulator import emulator_process
from .race_bench import VENDOR, _ask, _runs
from .stats import percentile, row

TTFT = {"claude": 50, "gpt": 150, "gemini": 250}


async def bench_synthesize(emulator: Any, n: int) -> list[dict[str, Any]]:
    from llmmixer.orchestrator.aggregation import aggregation_system

    emulator.reset()
    for source, ttft in TTFT.items():
        emulator.set_behaviour(VENDOR[source], ttft_ms=ttft, inter_token_ms=5, tokens=20)
    with tempfile.TemporaryDirectory(prefix="mix-bench-") as tmp:
        runs = await _runs(emulator, cooldown_file=str(Path(tmp) / "cooldowns.json"))
        ours, floor, costs = [], [], []
        try:
            await _ask(runs, mode="synthesize")  # warm every leg once
            for _ in range(n):
                result, _ = await _ask(runs, mode="synthesize")
                ours.append(result["latency_ms"])
                costs.append(result.get("total_cost_usd") or 0.0)
                answers = [leg["text"] for leg in result["legs"] if leg.get("role") == "proposer"]
                slowest, _ = await _ask(runs, models="gemini")
                aggregator, _ = await _ask(runs, models="claude", system=aggregation_system(answers))
                floor.append(slowest["latency_ms"] + aggregator["latency_ms"])
        finally:
            await runs.__aexit__(None, None, None)
    note = f"cost/run ${sum(costs) / n:.6f}; aggregator claude; proposers TTFT 50/150/250 ms"
    return [
        row("synthesize latency p50 vs slowest proposer + aggregator alone", percentile(ours, 50),
            percentile(floor, 50), "≤ 1.05×", unit="ms", passed=percentile(ours, 50) <= 1.05 * percentile(floor, 50),
            note=note),
        row("synthesize latency p95 vs slowest proposer + aggregator alone", percentile(ours, 95),
            percentile(floor, 95), "≤ 1.05×", unit="ms", passed=percentile(ours, 95) <= 1.05 * percentile(floor, 95)),
    ]


async def run_bench(quick: bool) -> list[dict[str, Any]]:
    with emulator_process() as emulator:
        return await bench_synthesize(emulator, 10 if quick else 60)

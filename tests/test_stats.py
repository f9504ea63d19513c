"""``llmmixer logs --stats`` over a seeded run log: per mode and model, runs, p50/p95 against the best single model,
and the dollars spent on cancelled legs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from llmmixer.orchestrator import history, stats
from llmmixer.orchestrator.results import AskResult
from llmmixer.orchestrator.stores import open_store
from llmmixer.servers.core.errors import InvalidInputError

LLMMIXER = str(Path(sys.executable).parent / "llmmixer")


def leg(source: str, status: str, latency_ms: float, cost: float, model: str | None = None) -> dict[str, Any]:
    return {"source": source, "model": model or f"{source}-model", "status": status, "latency_ms": latency_ms,
            "cost_usd": cost}


def record(run_id: str, mode: str, latency_ms: float, legs: list[dict[str, Any]], *, winner: str | None = None,
           age_s: float = 60.0) -> dict[str, Any]:
    base = history.new_record(run_id, "ask", prompt="p", models=[leg["source"] for leg in legs], mode=mode)
    result = {"mode": mode, "winner": winner, "latency_ms": latency_ms, "legs": legs,
              "total_cost_usd": sum(leg["cost_usd"] for leg in legs)}
    typed = AskResult.model_validate(result)
    return history.finish_record({**base, "created": time.time() - age_s}, "done", typed, typed.wire())


SEEDED = [
    # Four races: claude wins each; the losers are cancelled, and their cost is what racing spent for nothing.
    *(record(f"race{i}", "race", 100 + 10 * i,
             [leg("claude", "won", 100 + 10 * i, 0.01), leg("gpt", "cancelled", 100 + 10 * i, 0.002),
              leg("gemini", "cancelled", 100 + 10 * i, 0.003)], winner="claude") for i in range(4)),
    # Two single-model runs of gpt: slower than claude.
    record("single0", "all", 400, [leg("gpt", "done", 400, 0.02)]),
    record("single1", "all", 600, [leg("gpt", "done", 600, 0.02)]),
    # Outside the period asked for: must not count.
    record("old", "race", 9_999, [leg("claude", "won", 9_999, 5.0)], winner="claude", age_s=30 * 86400),
]


def test_compute_gives_the_expected_figures() -> None:
    since = stats.parse_since("7d")
    figures = stats.compute([r for r in SEEDED if r["created"] >= since], since).to_dict()
    assert figures["best_single"] == {"model": "claude-model", "p50_ms": 110.0, "p95_ms": 130.0}
    race = figures["modes"]["race"]
    assert race["runs"] == 4 and race["p50_ms"] == 110.0 and race["p95_ms"] == 130.0
    assert race["spend_usd"] == pytest.approx(4 * 0.015) and race["cancelled_spend_usd"] == pytest.approx(4 * 0.005)
    assert race["p50_vs_best_single"] == 1.0
    single = figures["modes"]["all"]
    assert single["runs"] == 2 and single["p50_ms"] == 400.0 and single["p95_ms"] == 600.0
    assert single["cancelled_spend_usd"] == 0
    gpt = figures["models"]["gpt-model"]
    assert gpt["runs"] == 6 and gpt["wins"] == 0 and gpt["p50_ms"] == 400.0
    assert gpt["cancelled_spend_usd"] == pytest.approx(4 * 0.002)
    assert figures["models"]["claude-model"]["wins"] == 4


def test_since_is_parsed_or_refused() -> None:
    assert stats.parse_since("2h", now=10_000.0) == 10_000.0 - 7200
    assert stats.parse_since("") is None
    for bad in ("7 days", "-1d", "d", "1y"):
        with pytest.raises(InvalidInputError):
            stats.parse_since(bad)


@pytest.mark.e2e
def test_logs_stats_reads_the_log(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"

    async def seed() -> None:
        async with open_store(url) as store:
            for item in SEEDED:
                await store.put_run(item)

    anyio.run(seed)
    done = subprocess.run([LLMMIXER, "logs", "--stats", "--since", "7d", "--json", "--store", url],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["modes"]["race"]["runs"] == 4 and "old" not in json.dumps(figures)
    assert figures["modes"]["race"]["cancelled_spend_usd"] == pytest.approx(0.02)
    text = subprocess.run([LLMMIXER, "logs", "--stats", "--store", url], capture_output=True, text=True, timeout=60)
    assert text.returncode == 0 and "best single model: claude-model" in text.stdout
    bad = subprocess.run([LLMMIXER, "logs", "--stats", "--since", "soon", "--store", url], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "--since" in bad.stderr


def test_spend_over_time_buckets_each_models_spend() -> None:
    now = 10 * 86400.0 + 5000  # 5000 s into day 10 (UTC)
    runs = [record("a", "race", 100, [leg("claude", "won", 100, 0.01), leg("gpt", "cancelled", 100, 0.002)],
                   winner="claude"),
            record("b", "all", 100, [leg("gpt", "done", 100, 0.02)]),
            record("c", "all", 100, [leg("gpt", "done", 100, 0.04)])]
    for item, age_days in zip(runs, (2, 2, 0)):
        item["created"] = now - age_days * 86400
    week = stats.compute(runs, stats.parse_since("7d", now=now), now=now).to_dict()["spend_over_time"]
    assert week["bucket_s"] == 86400
    assert week["starts"] == [8 * 86400.0, 9 * 86400.0, 10 * 86400.0]  # contiguous: the empty day is there
    assert week["models"] == {"claude-model": [0.01, 0.0, 0.0], "gpt-model": [pytest.approx(0.022), 0.0, 0.04]}
    day = stats.compute(runs[2:], stats.parse_since("1d", now=now), now=now).to_dict()["spend_over_time"]
    assert day["bucket_s"] == 3600 and day["starts"] == [10 * 86400.0 + 3600] and day["models"]["gpt-model"] == [0.04]
    assert stats.compute([], None).to_dict()["spend_over_time"] == {"bucket_s": 86400, "starts": [], "models": {}}


def test_a_dated_snapshot_counts_under_its_undated_model() -> None:
    run = record("r", "race", 100, [leg("gpt", "won", 100, 0.01, model="gpt-5-mini-2025-08-07"),
                                    leg("claude", "cancelled", 100, 0.002, model="claude-haiku-4-5")], winner="gpt")
    again = record("s", "all", 100, [leg("gpt", "done", 100, 0.03, model="gpt-5-mini")])
    models = stats.compute([run, again]).to_dict()["models"]
    assert sorted(models) == ["claude-haiku-4-5", "gpt-5-mini"]
    assert models["gpt-5-mini"]["runs"] == 2 and models["gpt-5-mini"]["spend_usd"] == pytest.approx(0.04)

"""End to end: Runs → MCP → adapter servers → official SDKs → emulators.

The servers run in process (``"transport": "inprocess"``: the same MCP messages over the SDK's in-memory streams),
except where a test needs their processes (killing one); those are marked ``e2e``.

A leg that must lose is made to wait far longer than any test runs (:data:`NEVER_MS`), so what is asserted is the
order of things (a loser's upstream is closed after the win and before the run ends, with no token sent), never a
bound on wall-clock time, which a loaded machine can break. How fast a cancel closes the upstream is measured in
``bench/`` instead.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import anyio
import psutil
import pytest

from llmmixer.orchestrator.config import Config, Settings, default_servers
from llmmixer.orchestrator.runs import Runs
from llmmixer.orchestrator.stores import open_store

pytestmark = pytest.mark.anyio

VENDOR = {"claude": "anthropic", "gpt": "openai", "gemini": "gemini"}
NEVER_MS = 600_000  # a loser's time to first token: it can only end by being cancelled


def config(*, processes: bool = False, **settings: Any) -> Config:
    return Config(servers=default_servers(inprocess=not processes), settings=Settings(**settings))


async def ask(runs: Runs, prompt: str = "hello", **kwargs: Any) -> tuple[dict[str, Any], list[Any]]:
    run_id = await runs.start_ask(prompt, **kwargs)
    assert await runs.wait(run_id, 60)
    await runs.flush()
    events = await runs.store.read_after(None, 10_000, run=run_id)
    return await runs.snapshot(run_id), events


async def warm_up(runs: Runs, emu: Any) -> None:
    """Start every server and let each make one vendor call, so SDK imports and connections are not raced."""
    await ask(runs, "warm-up", mode="all")
    emu.reset()


def legs_by_source(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {leg["source"]: leg for leg in result["legs"]}


def event_ts(events: list[Any], type_: str, source: str) -> float:
    return next(e.ts for e in events if e.type == type_ and e.source == source)


def record_for(emu: Any, source: str) -> dict[str, Any]:
    records = emu.requests(VENDOR[source])
    assert len(records) == 1, records
    return records[0]


async def test_race_fastest_wins_and_losers_upstream_closes_at_once(emu):
    async with Runs(config(), open_store("memory")) as runs:
        await warm_up(runs, emu)  # the race measures the models, not process spawns
        emu.set_behaviour("anthropic", ttft_ms=50, inter_token_ms=5, reply="claude answers 안녕 👋", tokens=6)
        emu.set_behaviour("openai", ttft_ms=NEVER_MS, inter_token_ms=5, tokens=6)
        emu.set_behaviour("gemini", ttft_ms=NEVER_MS, inter_token_ms=5, tokens=6)
        result, events = await ask(runs, mode="race")

    assert result["status"] == "done" and result["winner"] == "claude"
    legs = legs_by_source(result)
    assert legs["claude"]["status"] == "won" and legs["claude"]["text"] == "claude answers 안녕 👋"
    assert legs["gpt"]["status"] == legs["gemini"]["status"] == "cancelled"
    won_at = event_ts(events, "leg.done", "claude")
    for loser in ("gpt", "gemini"):
        record = record_for(emu, loser)
        assert record["outcome"] == "client_closed"
        assert won_at <= record["closed_at"], loser
        assert record["tokens_sent"] == 0 and legs[loser]["usage"]["estimated"] is True
    # The run ends with its winner: each loser is cancelled (its leg.cancelled) before run.done.
    types = [(e.type, e.source) for e in events]
    assert all(types.index(("leg.cancelled", loser)) < types.index(("run.done", "orchestrator"))
               for loser in ("gpt", "gemini"))
    assert [e.type for e in events].count("race.won") == 1
    assert events[-1].type == "run.done"
    assert [int(e.id) for e in events] == sorted(int(e.id) for e in events)


async def test_race_skips_a_failed_leg_and_reports_every_error_when_all_fail(emu, monkeypatch):
    monkeypatch.setenv("LLMMIXER_MAX_RETRIES", "0")
    async with Runs(config(), open_store("memory")) as runs:
        await warm_up(runs, emu)
        emu.set_behaviour("anthropic", error={"status": 429, "retry_after_s": 3})
        emu.set_behaviour("openai", ttft_ms=100)
        emu.set_behaviour("gemini", ttft_ms=NEVER_MS)
        result, _ = await ask(runs, mode="race")
        assert result["winner"] == "gpt"
        legs = legs_by_source(result)
        assert legs["claude"]["status"] == "error"
        assert legs["claude"]["error"]["kind"] == "rate_limit" and legs["claude"]["error"]["retry_after_s"] == 3

        emu.set_behaviour("openai", error={"status": 401})
        emu.set_behaviour("gemini", error={"status": 503})
        result, _ = await ask(runs, mode="race")
    assert result["status"] == "error" and result["winner"] is None
    legs = legs_by_source(result)
    # claude asked for 3 s: it cools down and is skipped (not called again); the others report their errors
    assert legs["claude"]["status"] == "skipped" and legs["claude"]["reason"].startswith("cooling down until")
    kinds = {leg["source"]: leg["error"]["kind"] for leg in result["legs"] if leg["status"] == "error"}
    assert kinds == {"gpt": "auth", "gemini": "unavailable"}


async def test_first_token_commits_to_the_first_streaming_leg(emu):
    async with Runs(config(), open_store("memory")) as runs:
        await warm_up(runs, emu)
        emu.set_behaviour("anthropic", ttft_ms=50, inter_token_ms=60, tokens=8)
        emu.set_behaviour("openai", ttft_ms=NEVER_MS)
        emu.set_behaviour("gemini", ttft_ms=NEVER_MS)
        result, events = await ask(runs, mode="first-token")
    assert result["winner"] == "claude"
    committed_at = event_ts(events, "leg.first_token", "claude")
    for loser in ("gpt", "gemini"):
        record = record_for(emu, loser)
        # Cancelled at the winner's first token (its upstream closed after it, as cancelled, at the latest).
        assert committed_at <= record["closed_at"]
        assert record["tokens_sent"] == 0  # no token was ever streamed for nobody


async def test_hedge_starts_a_second_leg_only_when_the_primary_is_slow(emu):
    emu.queue("anthropic", {"ttft_ms": NEVER_MS}, {"ttft_ms": 20})
    emu.set_behaviour("openai", ttft_ms=30)
    # A delay far above a loaded machine's 20 ms: the fast run's claude streams long before it.
    async with Runs(config(hedge_delay_ms=3000, hedge_budget=0.5), open_store("memory")) as runs:
        await runs.pool.check()
        slow, _ = await ask(runs, mode="hedge", models="claude,gpt")
        fast, _ = await ask(runs, mode="hedge", models="claude,gpt")
    assert slow["winner"] == "gpt"
    assert legs_by_source(slow)["claude"]["status"] == "cancelled"  # it could only end by being cancelled
    assert fast["winner"] == "claude" and [leg["source"] for leg in fast["legs"]] == ["claude"]
    assert len(emu.requests("openai")) == 1  # the fast run never paid for a hedge


async def test_hedge_budget_caps_extra_requests(emu):
    emu.set_behaviour("anthropic", ttft_ms=400)
    emu.set_behaviour("openai", ttft_ms=10)
    async with Runs(config(hedge_delay_ms=50, hedge_budget=0.1), open_store("memory")) as runs:
        await runs.pool.check()
        for _ in range(10):
            await ask(runs, mode="hedge", models="claude,gpt")
        hedges = runs.mixer.budget.hedges
    # One hedge is allowed up front, then one per ten runs.
    assert 1 <= hedges <= 2
    assert len(emu.requests("openai")) == hedges


async def test_fallback_moves_on_for_availability_errors_only(emu, monkeypatch):
    monkeypatch.setenv("LLMMIXER_MAX_RETRIES", "0")
    emu.set_behaviour("anthropic", error={"status": 529, "type": "overloaded_error"})
    emu.set_behaviour("openai", error={"status": 503})
    async with Runs(config(), open_store("memory")) as runs:
        result, _ = await ask(runs, mode="fallback")
        assert result["winner"] == "gemini"
        assert [leg["status"] for leg in result["legs"]] == ["error", "error", "won"]
        assert [leg["error"]["kind"] for leg in result["legs"][:2]] == ["overloaded", "unavailable"]

        emu.set_behaviour("anthropic", error={"status": 401})
        result, _ = await ask(runs, mode="fallback")
        assert [leg["source"] for leg in result["legs"]] == ["claude"]
        assert result["legs"][0]["error"]["kind"] == "auth" and result["status"] == "error"

        emu.set_behaviour("anthropic", error={"status": 400})
        result, _ = await ask(runs, mode="fallback")
        assert [leg["source"] for leg in result["legs"]] == ["claude"]
        assert result["legs"][0]["error"]["kind"] == "bad_request"


@pytest.mark.e2e
async def test_an_adapter_killed_mid_call_is_a_connection_error_and_the_next_call_works(emu):
    emu.set_behaviour("anthropic", ttft_ms=5000)
    async with Runs(config(processes=True), open_store("memory")) as runs:
        await runs.pool.check()
        run_id = await runs.start_ask("hi", models="claude")
        with anyio.fail_after(120):  # a hang guard: the adapter imports its SDK on the first call
            while not emu.requests("anthropic"):
                await anyio.sleep(0.02)
        children = [p for p in psutil.Process().children(recursive=True)
                    if "llmmixer.servers.claude_adapter" in " ".join(p.cmdline())]
        assert len(children) == 1
        os.kill(children[0].pid, signal.SIGKILL)
        assert await runs.wait(run_id, 10)
        killed = await runs.snapshot(run_id)
        assert killed["legs"][0]["error"]["kind"] == "connection"

        emu.set_behaviour("anthropic", ttft_ms=0)
        result, _ = await ask(runs, models="claude")
    assert result["winner"] == "claude"


async def test_cancel_stops_every_leg_end_to_end(emu):
    for vendor in VENDOR.values():
        emu.set_behaviour(vendor, ttft_ms=10, inter_token_ms=200, tokens=50)
    async with Runs(config(), open_store("memory")) as runs:
        run_id = await runs.start_ask("hi", mode="all")
        with anyio.fail_after(20):
            while len([r for r in emu.requests() if r["tokens_sent"]]) < 3:
                await anyio.sleep(0.02)
        snapshot = await runs.cancel(run_id)
    assert snapshot["status"] == "cancelled"
    assert {leg["status"] for leg in snapshot["legs"]} == {"cancelled"}
    assert all(r["outcome"] == "client_closed" for r in emu.requests())


async def test_bad_arguments_are_invalid_input(emu):
    from llmmixer.servers.core.errors import InvalidInputError, NotFoundError

    async with Runs(config(), open_store("memory")) as runs:
        with pytest.raises(InvalidInputError, match="mode"):
            await runs.start_ask("hi", mode="fastest")
        with pytest.raises(InvalidInputError, match="unknown model"):
            await runs.start_ask("hi", models="claude,llama")
        with pytest.raises(InvalidInputError, match="empty"):
            await runs.start_ask("   ")
        with pytest.raises(InvalidInputError, match="malformed"):
            await runs.snapshot("../etc/passwd")
        with pytest.raises(NotFoundError):
            await runs.snapshot("0123456789abcdef")


async def test_model_for_picks_each_sources_model_for_one_run(emu):
    async with Runs(config(model_for={"gpt": "gpt-5"}), open_store("memory")) as runs:
        await ask(runs, models="claude,gpt", mode="all", model_for={"claude": "claude-opus-4-1"})
        await ask(runs, models="claude,gpt", mode="all")
    claude_models = [r["body"]["model"] for r in emu.requests("anthropic")]
    gpt_models = [r["body"]["model"] for r in emu.requests("openai")]
    assert claude_models[0] == "claude-opus-4-1" and claude_models[1] != "claude-opus-4-1"
    assert gpt_models == ["gpt-5", "gpt-5"]

"""Cost caps (costcap.py): a run refused before dispatch when its certain spend is over ``max_cost_usd``, a run whose
spend crosses its cap mid-race with its remaining legs cancelled (their upstream closed at the emulator), and the
daily budget read from the run log."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from llmmixer.orchestrator import costcap, history
from llmmixer.orchestrator.results import AskResult
from llmmixer.orchestrator.config import Config, Settings, default_servers
from llmmixer.orchestrator.runs import Runs
from llmmixer.orchestrator.stores import open_store
from llmmixer.servers.core.errors import BudgetError

pytestmark = pytest.mark.anyio

# Prices that make every streamed token count: cheap prompts, dear replies (USD per million tokens).
DEAR = {"claude-haiku-4-5": [1.0, 2_000_000.0], "gpt-5-mini": [1.0, 2_000_000.0]}


def logged(run_id: str, created: float, cost: float) -> dict[str, Any]:
    """A finished run's record in the run log, as Runs writes it."""
    record = history.new_record(run_id, "ask", prompt="p", models=["claude"], mode="race")
    result = AskResult(total_cost_usd=cost, legs=[])
    return history.finish_record({**record, "created": created}, "done", result, result.wire())


def config(**settings: Any) -> Config:
    return Config(servers=default_servers(inprocess=True), settings=Settings(**settings))


async def test_a_run_whose_estimate_is_over_its_cap_is_refused_before_any_vendor_call(emu):
    async with Runs(config(prices={"claude-haiku-4-5": [1.0, 10.0], "gpt-5-mini": [1.0, 10.0]}),
                    open_store("memory")) as runs:
        with pytest.raises(BudgetError) as refused:
            await runs.start_ask("hello", models=["claude", "gpt"], max_tokens=1000, max_cost_usd=0.001)
    assert refused.value.kind.value == "budget" and "max_cost_usd" in refused.value.message
    assert refused.value.details["estimate_usd"] > 0.001
    assert emu.requests() == []


async def test_a_cap_crossed_mid_race_cancels_the_remaining_legs_upstream(emu):
    async with Runs(config(prices=DEAR), open_store("memory")) as runs:
        warm = await runs.start_ask("warm-up", models=["claude", "gpt"], mode="all")  # both servers started
        assert await runs.wait(warm, 60)
        emu.reset()
        emu.set_behaviour("anthropic", ttft_ms=10, inter_token_ms=40, tokens=200, reply="word " * 200)
        emu.set_behaviour("openai", ttft_ms=10, inter_token_ms=40, tokens=200, reply="word " * 200)
        # Each streamed word costs $2 at these prices: the cap is crossed 15 words in.
        run_id = await runs.start_ask("hello", models=["claude", "gpt"], mode="all", max_cost_usd=30.0)
        assert await runs.wait(run_id, 60)
        result = await runs.snapshot(run_id)
    cap = result["cost_cap"]
    assert cap["stopped"] is True and cap["max_cost_usd"] == 30.0 and cap["spent_usd"] > 30.0
    assert result["status"] == "cancelled"
    assert {leg["status"] for leg in result["legs"]} == {"cancelled"}
    records = emu.requests()
    assert {r["vendor"] for r in records} == {"anthropic", "openai"}
    assert all(r["outcome"] == "client_closed" for r in records), records
    # Stopped early: nowhere near the 200 tokens each leg would have streamed.
    assert all(len(leg["text"]) < len("word " * 200) / 2 for leg in result["legs"])


async def test_a_run_under_its_cap_reports_its_spend(emu):
    emu.set_behaviour("anthropic", reply="short")
    async with Runs(config(), open_store("memory")) as runs:
        run_id = await runs.start_ask("hello", models=["claude"], max_cost_usd=1.0)
        assert await runs.wait(run_id, 60)
        result = await runs.snapshot(run_id)
    assert result["status"] == "done" and result["cost_cap"]["stopped"] is False
    assert result["cost_cap"]["spent_usd"] == pytest.approx(result["total_cost_usd"])


async def test_the_daily_budget_reads_the_run_log_and_refuses_once_used_up(emu, tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'runs.db'}")
    async with store:
        await store.put_run(logged("yesterday", time.time() - 2 * 86400, 50.0))
        await store.put_run(logged("today", time.time(), 0.75))
    day = costcap.day_start()
    async with Runs(config(budget=1.0), open_store(f"sqlite:///{tmp_path / 'runs.db'}")) as runs:
        assert await runs.spent_today() == pytest.approx(0.75)  # yesterday's 50 dollars do not count
        run_id = await runs.start_ask("hello", models=["claude"])
        assert await runs.wait(run_id, 60)
        spent = await runs.snapshot(run_id)
        if costcap.day_start() != day:
            pytest.skip("the test ran across midnight: the day's spend started again, as it should")
        assert spent["status"] == "done", spent
        assert await runs.spent_today() == pytest.approx(0.75 + spent["total_cost_usd"])
        await runs.store.put_run(logged("dear", time.time(), 0.5))
        runs._spent_today = None  # noqa: SLF001 - another replica's run: read the log again
        with pytest.raises(BudgetError) as refused:
            await runs.start_ask("hello", models=["claude"])
    assert "settings.budget" in refused.value.message
    assert len(emu.requests()) == 1


async def test_cost_cap_must_be_a_positive_number(emu):
    from llmmixer.servers.core.errors import InvalidInputError

    async with Runs(config(), open_store("memory")) as runs:
        for bad in (0.0, -1.0, float("inf"), float("nan")):
            with pytest.raises(InvalidInputError):
                await runs.start_ask("hello", models=["claude"], max_cost_usd=bad)
    await anyio.sleep(0)


async def test_agents_are_refused_once_the_daily_budget_is_used_up_and_their_cap_must_be_positive(emu, tmp_path):
    """No agent run is estimated before it starts (what it spends depends on its turns), so only a used-up daily
    budget or a cap that is not a positive number refuses one; both before any worktree or CLI."""
    from llmmixer.orchestrator.agents import AgentRequest
    from llmmixer.orchestrator.requests import validate_request
    from llmmixer.servers.core.errors import InvalidInputError

    store = open_store(f"sqlite:///{tmp_path / 'runs.db'}")
    async with store:
        await store.put_run(logged("today", time.time(), 2.0))
    # tmp_path is no git repository: a run that got as far as planning would be refused for that instead.
    request = AgentRequest(task="fix it", check="true", agents=["codex"], cwd=str(tmp_path), max_cost_usd=0.01)
    async with Runs(config(budget=1.0), open_store(f"sqlite:///{tmp_path / 'runs.db'}")) as runs:
        with pytest.raises(BudgetError) as refused:
            await runs.start_agents(request)
        assert "settings.budget" in refused.value.message
    for cap in (0, -1, float("nan")):
        with pytest.raises(InvalidInputError, match="max_cost_usd"):
            validate_request(AgentRequest, {"task": "t", "check": "true", "max_cost_usd": cap})

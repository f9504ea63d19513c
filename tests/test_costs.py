"""Costs you can trust: every leg knows its model before it starts, so a default race prices its cancelled legs;
an unpriced leg says so and the total is marked partial; ``settings.prices`` adds prices; the table covers the
models the installed SDKs and the emulators list."""

from __future__ import annotations

import json
import typing
from importlib import resources
from typing import Any

import pytest

from llmmixer.orchestrator.config import Config, Settings, default_servers
from llmmixer.orchestrator.runs import Runs
from llmmixer.orchestrator.stores import open_store
from llmmixer.servers.core import pricing

pytestmark = pytest.mark.anyio


async def race(settings: Settings, **kwargs: Any) -> dict[str, Any]:
    async with Runs(Config(servers=default_servers(inprocess=True), settings=settings), open_store("memory")) as runs:
        await runs.pool.prepare(["claude", "gpt", "gemini"])
        run_id = await runs.start_ask("Say something long " * 10, mode="race", **kwargs)
        assert await runs.wait(run_id, 60)
        return await runs.snapshot(run_id)


def slow_losers(emu: Any) -> None:
    emu.set_behaviour("anthropic", ttft_ms=10, inter_token_ms=5, tokens=10)
    emu.set_behaviour("openai", ttft_ms=50, inter_token_ms=200, tokens=40)
    emu.set_behaviour("gemini", ttft_ms=50, inter_token_ms=200, tokens=40)


async def test_a_default_race_prices_its_cancelled_legs(emu):
    slow_losers(emu)
    result = await race(Settings())  # no model_for anywhere: each adapter's default model
    legs = {leg["source"]: leg for leg in result["legs"]}
    assert result["winner"] == "claude"
    for loser in ("gpt", "gemini"):
        leg = legs[loser]
        assert leg["status"] == "cancelled" and leg["usage"]["estimated"] is True
        assert leg["model"] and leg["cost_usd"] is not None and leg["cost_usd"] > 0 and leg["priced"] is True
        assert leg["cost_usd"] == pricing.cost_usd(leg["model"], leg["usage"]["input_tokens"],
                                                   leg["usage"]["output_tokens"])
    assert result["total_cost_partial"] is False
    assert result["total_cost_usd"] == pytest.approx(sum(leg["cost_usd"] for leg in legs.values()))
    # The model each leg runs is known when it starts (from the adapter's default, not from its answer).
    assert {leg["model"] for leg in legs.values()} >= {"gpt-5-mini", "gemini-2.5-flash"}


async def test_an_unpriced_leg_marks_the_total_partial_and_settings_prices_fill_it_in(emu):
    slow_losers(emu)
    emu.set_behaviour("openai", ttft_ms=10, inter_token_ms=5, tokens=10)
    emu.set_behaviour("anthropic", ttft_ms=50, inter_token_ms=200, tokens=40)
    unpriced = await race(Settings(), model_for={"gpt": "gpt-5.4"})
    legs = {leg["source"]: leg for leg in unpriced["legs"]}
    assert unpriced["winner"] == "gpt" and legs["gpt"]["model"].startswith("gpt-5.4")
    assert legs["gpt"]["cost_usd"] is None and legs["gpt"]["priced"] is False
    assert unpriced["total_cost_partial"] is True
    assert unpriced["total_cost_usd"] == pytest.approx(legs["claude"]["cost_usd"] + legs["gemini"]["cost_usd"])

    priced = await race(Settings.from_json({"prices": {"gpt-5.4": [2.0, 16.0],
                                                        "claude-haiku-4-5": {"input": 10, "output": 50}}}),
                        model_for={"gpt": "gpt-5.4"})
    legs = {leg["source"]: leg for leg in priced["legs"]}
    usage = legs["gpt"]["usage"]
    assert legs["gpt"]["priced"] is True and priced["total_cost_partial"] is False
    assert legs["gpt"]["cost_usd"] == pytest.approx((usage["input_tokens"] * 2 + usage["output_tokens"] * 16) / 1e6)
    claude = legs["claude"]["usage"]  # an override replaces the table's price, for cancelled legs too
    assert legs["claude"]["cost_usd"] == pytest.approx((claude["input_tokens"] * 10 + claude["output_tokens"] * 50) / 1e6)


def test_bad_prices_in_settings_are_refused():
    from llmmixer.servers.core.errors import InvalidInputError

    for bad in ({"gpt-5": [1]}, {"gpt-5": "cheap"}, {"gpt-5": [-1, 2]}, ["gpt-5"]):
        with pytest.raises(InvalidInputError, match="prices"):
            Settings.from_json({"prices": bad})


def _table_covers(models: list[str]) -> list[str]:
    raw = json.loads(resources.files("llmmixer.servers.core").joinpath("prices.json").read_text())
    unpriced = set(raw["unpriced"])
    from llmmixer.orchestrator.models import undated

    def known(model: str) -> bool:
        name = model.removeprefix("models/")
        return pricing.price_per_million(name) is not None or name in unpriced or undated(name) in unpriced

    return [m for m in models if not known(m)]


def test_the_price_table_covers_the_sdks_and_emulators_models():
    from anthropic.types.model_param import ModelParam
    from openai.types.shared.chat_model import ChatModel

    from llmmixer.servers.emulators import anthropic as emu_anthropic
    from llmmixer.servers.emulators import gemini as emu_gemini
    from llmmixer.servers.emulators import openai as emu_openai

    claude = [m for arg in typing.get_args(ModelParam) for m in typing.get_args(arg) if isinstance(m, str)]
    gpt = [m for m in typing.get_args(ChatModel) if m.startswith(("gpt-5", "gpt-6", "o3", "o4"))]
    listed = [m["id"] for m in emu_anthropic.MODELS] + [m["id"] for m in emu_openai.MODELS if m["id"].startswith("gpt")]
    listed += [m["name"] for m in emu_gemini.MODELS if "generateContent" in m["supportedGenerationMethods"]]
    assert {"claude-opus-4-6", "claude-sonnet-4-6"} <= set(claude + listed)
    assert _table_covers(claude + gpt + listed) == []
    for model in ("claude-opus-4-6", "claude-sonnet-4-6", "gpt-5.1", "gpt-5.2", "gemini-3-pro-preview"):
        assert pricing.price_per_million(model) is not None, model

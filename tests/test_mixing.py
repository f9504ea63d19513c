"""synthesize, judge, cooldowns, fast fallback and first-token recovery, end to end:
Runs → MCP (stdio) → adapter servers → official SDKs → emulators, with what each vendor received checked there."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from test_orchestrator import ask, config, legs_by_source, warm_up

from llmmixer.orchestrator.cooldown import Cooldowns, default_path
from llmmixer.orchestrator.runs import Runs
from llmmixer.orchestrator.stores import open_store

pytestmark = pytest.mark.anyio

MARK = "Responses from models:"


def request_text(record: dict[str, Any]) -> str:
    return json.dumps(record["body"], ensure_ascii=False)


async def test_synthesize_aggregates_the_answers_that_arrived_and_names_the_failed_proposer(emu):
    async with Runs(config(), open_store("memory")) as runs:
        await warm_up(runs, emu)
        emu.queue("anthropic", {"reply": "Claude proposes: water boils at 100 C at sea level.", "ttft_ms": 20},
                  {"reply": "Synthesis: 100 C at sea level, lower up a mountain.", "tokens": 6})
        emu.set_behaviour("openai", reply="GPT proposes: it is lower at altitude.", ttft_ms=60)
        emu.set_behaviour("gemini", error={"status": 400, "message": "bad gemini request"})
        result, events = await ask(runs, "When does water boil?", mode="synthesize")

    assert result["status"] == "done" and result["winner"] == "aggregator"
    legs = legs_by_source(result)
    assert legs["aggregator"]["role"] == "aggregator" and legs["aggregator"]["server"] == "claude"
    assert legs["aggregator"]["status"] == "won"
    assert legs["aggregator"]["text"] == "Synthesis: 100 C at sea level, lower up a mountain."
    assert [legs[s]["role"] for s in ("claude", "gpt", "gemini")] == ["proposer"] * 3
    assert legs["gemini"]["status"] == "error"
    synthesis = result["synthesis"]
    assert synthesis["answers"] == ["claude", "gpt"] and synthesis["prompt_version"] == "moa-1"
    assert [item["source"] for item in synthesis["left_out"]] == ["gemini"]
    # The aggregator's request, as the Anthropic emulator received it, holds both answers and not the failure.
    aggregate = [r for r in emu.requests("anthropic") if MARK in request_text(r)]
    assert len(aggregate) == 1
    body = request_text(aggregate[0])
    assert "Claude proposes: water boils" in body and "GPT proposes: it is lower" in body
    assert "bad gemini request" not in body
    assert aggregate[0]["body"]["messages"][-1]["content"] == "When does water boil?"
    # The aggregator starts only after the proposers ended, streams as its own leg, and every leg is paid for.
    started = next(e for e in events if e.type == "leg.started" and e.source == "aggregator")
    assert started.data["role"] == "aggregator"
    assert all(e.ts <= started.ts for e in events if e.type in ("leg.done", "leg.error") and e.source != "aggregator")
    assert any(e.type == "delta" and e.source == "aggregator" for e in events)
    costs = [leg["cost_usd"] for leg in result["legs"] if leg["cost_usd"] is not None]
    assert len(costs) == 3 and result["total_cost_usd"] == pytest.approx(sum(costs))


async def test_synthesize_rounds_and_deadline(emu):
    async with Runs(config(), open_store("memory")) as runs:
        await warm_up(runs, emu)
        emu.set_behaviour("anthropic", reply="claude says", ttft_ms=10)
        emu.set_behaviour("openai", reply="gpt says", ttft_ms=10)
        result, _ = await ask(runs, "q", models="claude,gpt", mode="synthesize",
                              rounds=2, aggregator="gpt")
        legs = legs_by_source(result)
        assert {"claude.r2", "gpt.r2", "aggregator"} <= set(legs) and legs["claude.r2"]["round"] == 2
        assert legs["aggregator"]["server"] == "gpt" and result["winner"] == "aggregator"
        assert result["synthesis"]["answers"] == ["claude.r2", "gpt.r2"]
        second_round = [r for r in emu.requests("anthropic") if MARK in request_text(r)]
        assert len(second_round) == 1 and "gpt says" in request_text(second_round[0])

        # A proposer still silent at the deadline is cancelled and named; the rest are aggregated.
        emu.reset()
        emu.set_behaviour("anthropic", reply="claude on time", ttft_ms=10)
        emu.set_behaviour("openai", reply="gpt on time", ttft_ms=10)
        emu.set_behaviour("gemini", ttft_ms=30_000)
        result, _ = await ask(runs, "q", mode="synthesize", deadline_s=1.5)
    legs = legs_by_source(result)
    assert legs["gemini"]["status"] == "cancelled" and "deadline" in legs["gemini"]["reason"]
    assert result["synthesis"]["answers"] == ["claude", "gpt"] and result["winner"] == "aggregator"
    assert emu.requests("gemini")[0]["outcome"] == "client_closed"


async def test_judge_picks_by_a_structured_verdict_over_shuffled_anonymous_answers(emu):
    answers = {"claude": "Answer one: 42.", "gpt": "Answer two: forty-two.", "gemini": "Answer three: 6 x 7."}
    orders = set()
    async with Runs(config(), open_store("memory")) as runs:
        await warm_up(runs, emu)
        emu.set_behaviour("openai", reply=answers["gpt"])
        emu.set_behaviour("gemini", reply=answers["gemini"])
        for _ in range(6):
            emu.reset()
            emu.set_behaviour("openai", reply=answers["gpt"])
            emu.set_behaviour("gemini", reply=answers["gemini"])
            emu.queue("anthropic", {"reply": answers["claude"]},
                      {"reply_json": {"winner": "B", "scores": {"A": 4, "B": 9, "C": 6}, "reason": "B is exact."}})
            result, _ = await ask(runs, "What is six times seven?", mode="judge")
            verdict = result["verdict"]
            assert result["status"] == "done"
            shown = verdict["order"]
            assert sorted(shown) == ["claude", "gemini", "gpt"]
            # The chosen answer is the result; the judge's reasoning and scores are kept, by source.
            assert result["winner"] == verdict["winner"] == shown[1] == verdict["labels"]["B"]
            assert legs_by_source(result)[shown[1]]["status"] == "won"
            assert verdict["reason"] == "B is exact." and verdict["scores"][shown[1]] == 9
            judge_leg = legs_by_source(result)["judge"]
            assert judge_leg["role"] == "judge" and judge_leg["data"]["winner"] == "B"
            # What the judge saw (at the emulator): the answers in the shown order, with no vendor named.
            judged = [r for r in emu.requests("anthropic") if "output_config" in r["body"]]
            assert len(judged) == 1
            text = json.dumps([judged[0]["body"].get("system"), judged[0]["body"]["messages"]], ensure_ascii=False)
            positions = [text.index(answers[source]) for source in shown]
            assert positions == sorted(positions)
            for name in ("claude", "gpt", "gemini", "anthropic", "openai", "google"):
                assert name not in text.lower()
            assert judged[0]["body"]["output_config"]["format"]["schema"]["required"] == ["winner", "scores", "reason"]
            orders.add(tuple(shown))
    assert len(orders) > 1  # shuffled across runs (6 runs, 6 orders: all alike has odds 1 in 7776)


async def test_cooldown_skips_a_rate_limited_server_then_uses_it_again(emu):
    async with Runs(config(), open_store("memory")) as runs:
        await warm_up(runs, emu)
        emu.set_behaviour("anthropic", error={"status": 429, "retry_after_s": 30})
        emu.set_behaviour("openai", ttft_ms=300)  # claude's 429 arrives before gpt could win
        first, _ = await ask(runs, models="claude,gpt", mode="race")
        assert legs_by_source(first)["claude"]["error"]["kind"] == "rate_limit"
        assert len(emu.requests("anthropic")) == 1  # no retry slept through: gpt was there
        emu.set_behaviour("anthropic", reply="claude is back")

        second, events = await ask(runs, models="claude,gpt", mode="race")
        claude = legs_by_source(second)["claude"]
        assert claude["status"] == "skipped" and claude["reason"].startswith("cooling down until ")
        assert second["winner"] == "gpt" and len(emu.requests("anthropic")) == 1
        assert any(e.type == "leg.skipped" and e.source == "claude" for e in events)
        listed = {s["source"]: s for s in await runs.servers()}
        assert listed["claude"]["cooling_until"] and "rate_limit" in listed["claude"]["cooldown_reason"]
        assert listed["gpt"]["cooling_until"] is None
        # the cooldown outlives the process: the next `llmmixer ask` reads it
        assert Cooldowns(path=default_path()).cooling_until("claude") is not None
        # every server cooling: the run still asks them rather than fail unasked
        alone, _ = await ask(runs, models="claude", mode="race")
        assert alone["winner"] == "claude" and len(emu.requests("anthropic")) == 2

        emu.set_behaviour("anthropic", error={"status": 429, "retry_after_s": 1})
        await ask(runs, models="claude,gpt", mode="race")
        calls = len(emu.requests("anthropic"))
        with anyio.fail_after(10):
            while runs.mixer.cooldowns.cooling_until("claude") is not None:
                await anyio.sleep(0.1)
        emu.set_behaviour("anthropic", reply="claude is back", ttft_ms=0)
        emu.set_behaviour("openai", ttft_ms=500)
        third, _ = await ask(runs, models="claude,gpt", mode="race")
    assert len(emu.requests("anthropic")) == calls + 1
    assert third["winner"] == "claude"


async def test_fallback_moves_on_at_once_after_a_long_retry_after(emu):
    async with Runs(config(), open_store("memory")) as runs:
        await warm_up(runs, emu)
        emu.set_behaviour("anthropic", error={"status": 429, "retry_after_s": 600})
        emu.set_behaviour("openai", reply="gpt answers")
        # Sleeping through the retry-after would take 10 minutes: ending at all means the run moved on.
        with anyio.fail_after(300):
            result, _ = await ask(runs, models="claude,gpt", mode="fallback")
        assert result["winner"] == "gpt"
        assert legs_by_source(result)["claude"]["error"]["retry_after_s"] == 600
        assert len(emu.requests("anthropic")) == 1  # no retry either
        # The retry-after is honoured on the next use instead: the next run goes straight to gpt.
        again, _ = await ask(runs, models="claude,gpt", mode="fallback")
    assert legs_by_source(again)["claude"]["status"] == "skipped" and again["winner"] == "gpt"
    assert len(emu.requests("anthropic")) == 1


async def test_first_token_recovers_when_the_committed_leg_fails_mid_stream(emu):
    async with Runs(config(), open_store("memory")) as runs:
        await warm_up(runs, emu)
        emu.set_behaviour("anthropic", ttft_ms=10, inter_token_ms=20, tokens=8, error_after_tokens=3,
                          error={"type": "overloaded_error"})
        emu.set_behaviour("openai", ttft_ms=300, reply="gpt recovers the answer")
        emu.set_behaviour("gemini", ttft_ms=300, reply="gemini recovers the answer")
        result, events = await ask(runs, mode="first-token")
    assert result["status"] == "done" and result["winner"] in ("gpt", "gemini")
    [step] = result["recovery"]
    assert step["from"] == "claude" and step["error"] == "overloaded" and step["streamed_chars"] > 0
    assert sorted(step["to"]) == ["gemini", "gpt"]
    claude = [leg for leg in result["legs"] if leg["source"] == "claude"]
    assert claude[0]["status"] == "error"
    winner = [leg for leg in result["legs"] if leg["status"] == "won"]
    assert len(winner) == 1 and winner[0]["role"] == "recovery"
    assert winner[0]["text"] == f"{result['winner']} recovers the answer"
    assert any(e.type == "leg.recovery" for e in events)

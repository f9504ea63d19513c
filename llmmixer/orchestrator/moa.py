"""The combining strategies: ``synthesize`` (mixture of agents) and ``judge``.

``synthesize``: the proposers answer in parallel (streamed as in ``all``); then an aggregator leg
(``source: "aggregator"``, ``role: "aggregator"``, on ``--aggregator``'s server, by default the first model's)
gets the prompt and every answer (:mod:`.aggregation`) and writes the final answer, streamed as its own leg. With
``rounds`` > 1 the proposers answer again over the previous round's answers first (MoA layers; legs
``claude.r2``...). The aggregator runs once ``min_answers`` proposers (default 2, or 1 with one proposer) have
answered; with ``deadline_s`` it stops waiting at the deadline and works with what has arrived (the rest are
cancelled and named as timed out). With fewer answers than ``min_answers`` and no deadline, it does not run: a
single answer is the result as it stands, and ``synthesis.skipped`` says why.

``judge``: every leg answers; a judge leg (``source: "judge"``) gets the answers shuffled and under letters, with
no vendor or model name, and returns ``{"winner", "scores", "reason"}`` by structured output. The chosen answer's
leg wins; ``verdict`` keeps the judge's scores and reason by source, and the order it was shown.

Failed and timed-out proposers are left out and named (``left_out``); the cost is the sum of every leg.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from .aggregation import AGGREGATION_VERSION, JUDGE_VERSION, aggregation_system, judge_prompt, labels, verdict_schema
from .mixer import Emit, Leg, MixResult
from .requests import MixOptions
from .strategies import register

if TYPE_CHECKING:
    from .mixer import Mixer

__all__ = ["Synthesize", "Judge", "synthesize_answers", "judge_answers"]


async def _gather(mixer: Mixer, legs: list[Leg], arguments: dict[str, Any], emit: Emit,
                  deadline_s: float | None) -> bool:
    """Run ``legs`` in parallel to their end, or to the deadline; True when the deadline cut some off."""
    with anyio.move_on_after(deadline_s if deadline_s is not None else float("inf")) as waited:
        async with anyio.create_task_group() as tg:
            for leg in legs:
                tg.start_soon(mixer.run_leg, leg, arguments, emit)
    if not waited.cancelled_caught:
        return False
    for leg in legs:
        if leg.status in ("running", "queued", "pending", "cancelled") and not leg.succeeded:
            leg.status, leg.reason = "cancelled", f"timed out at the {deadline_s:g} s deadline"
    return True


def _left_out(legs: list[Leg]) -> list[dict[str, Any]]:
    return [{"source": leg.source, "status": leg.status,
             "why": leg.reason or (leg.error or {}).get("kind") or leg.status} for leg in legs if not leg.succeeded]


def _model_of(mixer: Mixer, legs: list[Leg], server: str) -> str | None:
    """The model this run asked of ``server`` (its legs carry it), else the configured one."""
    return next((leg.requested_model for leg in legs if leg.target == server and leg.requested_model),
                mixer.model_for.get(server))


def _combiner(mixer: Mixer, legs: list[Leg], options: MixOptions) -> str:
    """The aggregating/judging server: the one asked for, else the first leg's that is not cooling down."""
    if options.aggregator:
        return options.aggregator
    servers = [leg.target for leg in legs]
    return next((s for s in servers if mixer.cooldowns.cooling_until(s) is None), servers[0])


async def synthesize_answers(mixer: Mixer, legs: list[Leg], arguments: dict[str, Any], emit: Emit, result: MixResult,
                     options: MixOptions) -> None:
    if not legs:
        return
    need = options.min_answers or min(2, len(legs))
    current = legs
    for leg in legs:
        leg.role, leg.round = "proposer", 1
    cut = await _gather(mixer, current, arguments, emit, options.deadline_s)
    proposers = list(current)
    for round_ in range(2, max(1, options.rounds) + 1):
        answers = [leg for leg in current if leg.succeeded]
        if len(answers) < need:
            break
        layer_args = {**arguments, "system": aggregation_system([leg.text or "" for leg in answers],
                                                                 arguments.get("system"))}
        current = [Leg(source=f"{leg.source}.r{round_}", server=leg.target, requested_model=leg.requested_model,
                       role="proposer", round=round_, admission=leg.admission) for leg in legs]
        result.legs.extend(current)
        proposers.extend(current)
        cut = await _gather(mixer, current, layer_args, emit, options.deadline_s) or cut
    answers = [leg for leg in current if leg.succeeded]
    server = _combiner(mixer, legs, options)
    synthesis: dict[str, Any] = {"prompt_version": AGGREGATION_VERSION, "aggregator": server,
                                 "rounds": options.rounds, "answers": [leg.source for leg in answers],
                                 "left_out": _left_out(proposers), "min_answers": need}
    result.extra["synthesis"] = synthesis
    if not answers:
        synthesis["skipped"] = "no proposer answered"
        return
    if len(answers) < need and not cut:
        synthesis["skipped"] = f"only {len(answers)} of {len(current)} proposers answered (min {need})"
        mixer.win(answers[0], [], result, emit)
        return
    aggregator = Leg(source="aggregator", server=server, requested_model=_model_of(mixer, legs, server),
                     role="aggregator", admission=legs[0].admission)
    result.legs.append(aggregator)
    aggregate_args = {**arguments, "system": aggregation_system([leg.text or "" for leg in answers],
                                                                 arguments.get("system"))}
    await mixer.run_leg(aggregator, aggregate_args, emit)
    if aggregator.succeeded:
        mixer.win(aggregator, [], result, emit)


async def judge_answers(mixer: Mixer, legs: list[Leg], arguments: dict[str, Any], emit: Emit, result: MixResult,
                options: MixOptions) -> None:
    if not legs:
        return
    await _gather(mixer, legs, arguments, emit, options.deadline_s)
    answers = [leg for leg in legs if leg.succeeded]
    server = _combiner(mixer, legs, options)
    verdict: dict[str, Any] = {"prompt_version": JUDGE_VERSION, "judge": server, "left_out": _left_out(legs)}
    result.extra["verdict"] = verdict
    if not answers:
        verdict["skipped"] = "no leg answered"
        return
    if len(answers) == 1:
        verdict.update(winner=answers[0].source, skipped="only one answer: nothing to judge")
        mixer.win(answers[0], [], result, emit)
        return
    shown = list(answers)
    mixer.rng.shuffle(shown)
    names = labels(len(shown))
    system, prompt = judge_prompt(arguments["prompt"], [leg.text or "" for leg in shown])
    judge_args: dict[str, Any] = {"prompt": prompt, "system": system, "response_schema": verdict_schema(len(shown))}
    for key in ("images", "reasoning"):
        if key in arguments:
            judge_args[key] = arguments[key]
    judge_leg = Leg(source="judge", server=server, requested_model=_model_of(mixer, legs, server),
                    role="judge", admission=legs[0].admission)
    result.legs.append(judge_leg)
    verdict["order"] = [leg.source for leg in shown]
    await mixer.run_leg(judge_leg, judge_args, emit)
    if not judge_leg.succeeded or not isinstance(judge_leg.data, dict):
        verdict["error"] = judge_leg.error or {"kind": "invalid_output", "message": "the judge gave no verdict"}
        return
    by_label = dict(zip(names, shown))
    chosen = by_label.get(str(judge_leg.data.get("winner")))
    if chosen is None:
        verdict["error"] = {"kind": "invalid_output", "message": f"the judge chose {judge_leg.data.get('winner')!r}"}
        return
    scores = judge_leg.data.get("scores") or {}
    verdict.update(winner=chosen.source, label=judge_leg.data["winner"], reason=judge_leg.data.get("reason"),
                   scores={leg.source: scores.get(name) for name, leg in by_label.items()},
                   labels={name: leg.source for name, leg in by_label.items()})
    judge_leg.status = "done"
    mixer.win(chosen, [], result, emit)


@register("synthesize")
class Synthesize:
    """Every proposer answers (in ``rounds`` layers), then an aggregator writes one answer from them."""

    async def run(self, mixer: Mixer, legs: list[Leg], arguments: dict[str, Any], emit: Emit, result: MixResult,
                  options: MixOptions) -> None:
        await synthesize_answers(mixer, legs, arguments, emit, result, options)


@register("judge")
class Judge:
    """Every leg answers; a judge picks the best of the anonymised, shuffled answers."""

    async def run(self, mixer: Mixer, legs: list[Leg], arguments: dict[str, Any], emit: Emit, result: MixResult,
                  options: MixOptions) -> None:
        await judge_answers(mixer, legs, arguments, emit, result, options)

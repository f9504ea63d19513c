"""The mixing strategies as objects: one per mode of :mod:`.modes`, registered against that one list.

A strategy decides which legs run when, and who wins. It runs each leg through the mixer's public leg runner
(:meth:`~.mixer.Mixer.run_leg`, which streams, prices and records the leg and never raises) and declares the winner
with :meth:`~.mixer.Mixer.win` (which cancels the other legs). Adding a mode is its line in ``modes.MODE_HELP`` and
a class here (or in its own module, as :mod:`.moa` does for ``synthesize`` and ``judge``) decorated with
``@register("<mode>")``; ``tests/test_one_list.py`` fails when a mode has no strategy or a strategy no mode.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import anyio

from .modes import MODES, check_mode

if TYPE_CHECKING:
    from .mixer import Emit, Leg, Mixer, MixResult
    from .requests import MixOptions

__all__ = ["Strategy", "STRATEGIES", "register", "strategy_for", "DEFAULT_HEDGE_DELAY_MS"]

DEFAULT_HEDGE_DELAY_MS = 1000.0


class Strategy(Protocol):
    async def run(self, mixer: Mixer, legs: list[Leg], arguments: dict[str, Any], emit: Emit, result: MixResult,
                  options: MixOptions) -> None:
        """Run ``legs`` (those the mode asks, cooling servers already left out) and set ``result.winner``."""
        ...


STRATEGIES: dict[str, Strategy] = {}
S = TypeVar("S")


def register(mode: str) -> Callable[[type[S]], type[S]]:
    """Class decorator: the strategy of ``mode`` (one of ``modes.MODES``)."""

    def add(cls: type[S]) -> type[S]:
        STRATEGIES[check_mode(mode)] = cls()  # type: ignore[assignment]
        return cls

    return add


def strategy_for(mode: str) -> Strategy:
    """The strategy that runs ``mode``.

    Raises:
        InvalidInputError: ``mode`` is not a mode.
    """
    from . import moa  # noqa: F401 - registers the combining strategies

    return STRATEGIES[check_mode(mode)]


def registered_modes() -> list[str]:
    """The modes with a strategy, in the mode list's order (for the drift test)."""
    strategy_for(MODES[0])
    return [mode for mode in MODES if mode in STRATEGIES]


@register("all")
class All:
    """Every leg to its end."""

    async def run(self, mixer: Mixer, legs: list[Leg], arguments: dict[str, Any], emit: Emit, result: MixResult,
                  options: MixOptions) -> None:
        async with anyio.create_task_group() as tg:
            for leg in legs:
                tg.start_soon(mixer.run_leg, leg, arguments, emit)


@register("race")
class Race:
    """The first leg to complete wins; the rest are cancelled."""

    async def run(self, mixer: Mixer, legs: list[Leg], arguments: dict[str, Any], emit: Emit, result: MixResult,
                  options: MixOptions) -> None:
        first: list[Leg] = []

        def decided(leg: Leg) -> None:  # the first success: the others are cancelled before anything else
            if not first:
                first.append(leg)
                mixer.cancel_others(leg, legs)

        async def run(leg: Leg) -> None:
            await mixer.run_leg(leg, arguments, emit, fast=len(legs) > 1, on_success=decided)
            if leg.status == "done" and result.winner is None and (not first or first[0] is leg):
                mixer.win(leg, legs, result, emit)

        async with anyio.create_task_group() as tg:
            for leg in legs:
                tg.start_soon(run, leg)


@register("first-token")
class FirstToken:
    """Commit to the first leg that streams; if it then fails, recover on the fastest of the others."""

    async def run(self, mixer: Mixer, legs: list[Leg], arguments: dict[str, Any], emit: Emit, result: MixResult,
                  options: MixOptions) -> None:
        from .mixer import Leg

        committed: list[Leg] = []
        fast = len(legs) > 1

        def commit(leg: Leg) -> None:
            if not committed:
                committed.append(leg)
                mixer.cancel_others(leg, legs)

        async def run(leg: Leg) -> None:
            await mixer.run_leg(leg, arguments, emit, on_first_token=commit, fast=fast)
            if leg.status == "done" and result.winner is None and (not committed or committed[0] is leg):
                mixer.win(leg, legs, result, emit)

        async with anyio.create_task_group() as tg:
            for leg in legs:
                tg.start_soon(run, leg)
        failed = committed[0] if committed else None
        if result.winner is not None or failed is None or failed.status != "error":
            return
        # Recovery: the committed leg failed before completing. The others were cancelled at its first token;
        # start them again, fastest first by observed time to first token, and commit to the first that streams.
        others = sorted((leg for leg in legs if leg is not failed and leg.status == "cancelled"),
                        key=lambda leg: mixer.ttft.p50(leg.target) or math.inf)
        if not others:
            return
        retry = [Leg(source=leg.source, server=leg.server, requested_model=leg.requested_model, role="recovery",
                     admission=leg.admission)
                 for leg in others]
        result.extra.setdefault("recovery", []).append(
            {"from": failed.source, "error": (failed.error or {}).get("kind"), "streamed_chars": len(failed.streamed),
             "to": [leg.source for leg in retry]})
        emit("leg.recovery", failed.source, {"from": failed.source, "error": failed.error,
                                             "to": [leg.source for leg in retry]})
        result.legs.extend(retry)
        await self.run(mixer, retry, arguments, emit, result, options)


@register("hedge")
class Hedge:
    """Start one leg; add the next only while none streams after the hedge delay, within the hedge budget."""

    async def run(self, mixer: Mixer, legs: list[Leg], arguments: dict[str, Any], emit: Emit, result: MixResult,
                  options: MixOptions) -> None:
        mixer.budget.note_run()
        primary = legs[0].source
        delay_ms = mixer.hedge_delay_ms or mixer.ttft.p95(primary) or DEFAULT_HEDGE_DELAY_MS
        changed = anyio.Event()
        started: list[Leg] = []

        def poke(_leg: Leg | None = None) -> None:
            changed.set()

        async def run(leg: Leg) -> None:
            await mixer.run_leg(leg, arguments, emit, on_first_token=poke, fast=len(legs) > 1)
            if leg.status == "done" and result.winner is None:
                mixer.win(leg, legs, result, emit)
            poke()

        async with anyio.create_task_group() as tg:
            last_launch = 0.0

            def launch(leg: Leg) -> None:
                nonlocal last_launch
                started.append(leg)
                last_launch = time.perf_counter()
                tg.start_soon(run, leg)

            launch(legs[0])
            while result.winner is None:
                running = [leg for leg in started if leg.status in ("pending", "queued", "running")]
                remaining = legs[len(started):]
                if not remaining and not running:
                    break
                if remaining and not running:  # every started leg failed: move on now, no budget needed
                    launch(remaining[0])
                    continue
                streaming = any(leg.ttft_ms is not None for leg in running)
                wait_s = math.inf
                if remaining and not streaming:
                    wait_s = max(0.0, last_launch + delay_ms / 1000 - time.perf_counter())
                with anyio.move_on_after(wait_s) as waited:
                    await changed.wait()
                changed = anyio.Event()
                if waited.cancelled_caught and remaining and mixer.budget.try_spend():
                    launch(remaining[0])
                elif waited.cancelled_caught:
                    delay_ms = math.inf  # the budget is spent: no more hedges in this run


@register("fallback")
class Fallback:
    """One leg at a time; the next only after an error the next vendor may not share."""

    async def run(self, mixer: Mixer, legs: list[Leg], arguments: dict[str, Any], emit: Emit, result: MixResult,
                  options: MixOptions) -> None:
        from .mixer import FALLBACK_KINDS, error_kind

        for index, leg in enumerate(legs):
            await mixer.run_leg(leg, arguments, emit, fast=index < len(legs) - 1)
            if leg.status == "done":
                mixer.win(leg, legs, result, emit)
                break
            if leg.status != "error" or error_kind(leg.error) not in FALLBACK_KINDS:
                break

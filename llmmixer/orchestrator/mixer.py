"""One prompt across several model servers: the legs, the leg runner, and the mix that runs a mode's strategy (one
object per mode of :mod:`.modes`, in :mod:`.strategies`; the combining ones in :mod:`.moa`).

A *leg* is one ``generate`` call on one adapter server. Every strategy runs legs in their own cancel scopes;
cancelling a leg cancels its MCP ``tools/call``, which makes the adapter close its upstream HTTP stream, so a lost
race stops costing money at once. A leg that errors never wins. Each leg reports usage and cost; a cancelled leg
reports what it had streamed so far (output tokens counted from its deltas, marked ``estimated``).

Every strategy but ``all`` skips a server that cools down (:mod:`.cooldown`) while another leg exists, and tells
each leg that has another to fall back on not to sleep through long retry waits (``max_retry_wait_s``): the run
moves on at once, and the wait is honoured by the cooldown on the server's next use. ``first-token`` recovers
when its committed leg fails before completing: it moves on to the fastest of the others, and says so.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from pydantic import ValidationError

from ..servers.core import pricing
from ..servers.core.errors import ErrorKind, InvalidInputError, InvalidOutputError, LLMMixerError, ServerError
from ..servers.core.generation import GenerateResult
from ..servers.core.events import EventType
from ..servers.core.messages import ToolCall, ToolCallDelta, read_progress
from ..servers.core.results import result_payload
from .cooldown import Cooldowns
from .costcap import estimated_tokens
from .legs import parse_leg, server_of
from .modes import COMBINING_MODES, MODES, SKIPPING_MODES
from .statuses import LegStatus
from .pool import Admission, CallState, ServerPool
from .requests import MixOptions
from .results import AskResult, LegResult
from .strategies import strategy_for

__all__ = ["MODES", "Leg", "MixResult", "MixOptions", "Mixer", "HedgeBudget", "FALLBACK_KINDS"]

# Errors after which `fallback` moves on to the next model: the next vendor may well be up.
FALLBACK_KINDS = frozenset({ErrorKind.RATE_LIMIT, ErrorKind.QUOTA, ErrorKind.OVERLOADED, ErrorKind.SERVER,
                            ErrorKind.UNAVAILABLE, ErrorKind.TIMEOUT, ErrorKind.CONNECTION, ErrorKind.NOT_FOUND})
MIN_TTFT_SAMPLES = 20
# A leg with another to fall back on waits at most this long between retries; a longer retry-after ends it at once.
FAST_RETRY_WAIT_S = 0.5


Emit = Callable[[EventType, str, dict[str, Any]], None]  # (type, source, data)


@dataclass
class Leg:
    source: str  # the leg's name in events and results (a server's role, or "aggregator" / "judge")
    requested_model: str | None = None  # the model asked for (None: the adapter's default)
    status: LegStatus = "pending"
    parts: list[str] = field(default_factory=list)
    text: str | None = None
    model: str | None = None
    stop_reason: str | None = None
    usage: dict[str, Any] | None = None
    cost_usd: float | None = None
    ttft_ms: float | None = None
    latency_ms: float | None = None
    error: dict[str, Any] | None = None
    data: Any = None
    has_data: bool = False
    server: str | None = None  # the server called (None: ``source``)
    role: str | None = None  # proposer | aggregator | judge | recovery (None: a plain leg)
    round: int | None = None
    reason: str | None = None  # why it was skipped or left out
    dropped: list[dict[str, Any]] | None = None  # parameters the model refuses, not sent
    tool_calls: list[dict[str, Any]] | None = None  # the tools the reply calls ({id, name, arguments})
    # The run's places in its servers' queues (pool.Admission): the leg gives back its own when it gets its slot.
    # A leg a strategy adds (a later round, an aggregator, a recovery) carries its run's too.
    admission: Admission | None = None
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)

    @property
    def target(self) -> str:
        return self.server or self.source

    @property
    def succeeded(self) -> bool:
        return self.status in ("done", "won")

    @property
    def streamed(self) -> str:
        return "".join(self.parts)

    @property
    def priced(self) -> bool | None:
        """Whether ``cost_usd`` covers the tokens used; None for a leg that used none (skipped, or failed early)."""
        if self.status != "skipped" and (self.usage or self.status in ("won", "done", "cancelled")):
            return self.cost_usd is not None
        return None

    def result(self) -> LegResult:
        """The leg's outcome (a leg that never streamed nor finished has ``text`` None)."""
        fields: dict[str, Any] = {
            "source": self.source, "status": self.status, "model": self.model,
            "text": self.text if self.text is not None else self.streamed, "usage": self.usage,
            "cost_usd": self.cost_usd, "ttft_ms": self.ttft_ms, "latency_ms": self.latency_ms,
            "stop_reason": self.stop_reason, "error": self.error}
        if self.priced is not None:
            fields["priced"] = self.priced
        if self.has_data:
            fields["data"] = self.data
        for key in ("server", "role", "round", "reason", "dropped", "tool_calls"):
            if getattr(self, key) is not None:
                fields[key] = getattr(self, key)
        return LegResult(**fields)


@dataclass
class MixResult:
    mode: str
    legs: list[Leg]
    winner: str | None = None
    latency_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # mode-specific: synthesis, verdict, recovery

    @property
    def ok(self) -> bool:
        if self.mode in COMBINING_MODES:
            return self.winner is not None
        return any(leg.succeeded for leg in self.legs)

    @property
    def total_cost_usd(self) -> float | None:
        costs = [leg.cost_usd for leg in self.legs if leg.cost_usd is not None]
        return round(sum(costs), 10) if costs else None

    @property
    def total_cost_partial(self) -> bool:
        """True when some leg used tokens that have no price, so the total leaves them out."""
        return any(leg.priced is False for leg in self.legs)

    def result(self) -> AskResult:
        """The ask's outcome so far (the whole of it once :meth:`Mixer.mix` has returned)."""
        fields: dict[str, Any] = {
            "mode": self.mode, "winner": self.winner, "legs": [leg.result() for leg in self.legs],
            "total_cost_usd": self.total_cost_usd, "total_cost_partial": self.total_cost_partial,
            "latency_ms": self.latency_ms, **self.extra}
        winner = next((leg for leg in self.legs if leg.source == self.winner), None)
        if winner is not None and winner.has_data:
            fields["data"] = winner.data
        return AskResult(**fields)


class HedgeBudget:
    """Caps extra hedge legs to ``ratio`` of runs over time (a token bucket holding at most ``burst`` hedges)."""

    def __init__(self, ratio: float = 0.15, burst: float = 3.0) -> None:
        self.ratio, self.burst = ratio, burst
        self.tokens = 1.0
        self.runs = self.hedges = 0

    def note_run(self) -> None:
        self.runs += 1
        self.tokens = min(self.burst, self.tokens + self.ratio)

    def try_spend(self) -> bool:
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        self.hedges += 1
        return True


class TtftStats:
    """Observed time to first token per source, for the hedge delay (p95 of the last 200 legs)."""

    def __init__(self) -> None:
        self._samples: dict[str, deque[float]] = {}

    def add(self, source: str, ttft_ms: float) -> None:
        self._samples.setdefault(source, deque(maxlen=200)).append(ttft_ms)

    def p50(self, source: str) -> float | None:
        samples = sorted(self._samples.get(source, ()))
        return samples[len(samples) // 2] if samples else None

    def p95(self, source: str) -> float | None:
        samples = sorted(self._samples.get(source, ()))
        if len(samples) < MIN_TTFT_SAMPLES:
            return None
        return samples[min(len(samples) - 1, math.ceil(0.95 * len(samples)) - 1)]


class Mixer:
    """Runs one prompt with one strategy; see the module docstring."""

    def __init__(self, pool: ServerPool, *, hedge_delay_ms: float | None = None, hedge_budget: float = 0.15,
                 model_for: dict[str, str] | None = None, prices: pricing.Prices | None = None,
                 cooldowns: Cooldowns | None = None, fast_retry_wait_s: float = FAST_RETRY_WAIT_S,
                 rng: random.Random | None = None) -> None:
        self.pool = pool
        self.prices = dict(prices or {})  # settings.prices: added or overridden per model
        self.cooldowns = cooldowns or Cooldowns()
        self.fast_retry_wait_s = fast_retry_wait_s
        self.rng = rng or random.Random()
        self.hedge_delay_ms = hedge_delay_ms
        self.budget = HedgeBudget(hedge_budget)
        self.ttft = TtftStats()
        self.model_for = dict(model_for or {})
        self._models_seen: dict[str, str] = {}

    async def mix(self, arguments: dict[str, Any], sources: list[str], mode: str, emit: Emit,
                  result: MixResult | None = None, model_for: dict[str, str] | None = None,
                  options: MixOptions | None = None, admission: Admission | None = None) -> MixResult:
        """Run the strategy; ``result`` (filled in as it goes) lets a caller that cancels the run keep its legs.

        ``model_for`` picks a model per source for this run, over the mixer's configured ones; ``options`` holds
        the combining modes' settings; ``admission`` holds the run's places in its servers' queues (each leg
        gives back its own as it gets its slot).
        """
        strategy = strategy_for(mode)  # raises InvalidInputError for a mode that is not one
        if not sources:
            raise InvalidInputError("no models to ask")
        await self.pool.prepare([server_of(source) for source in sources])
        models = {**self.model_for, **(model_for or {})}
        legs = []
        for source in sources:  # a leg name: a server, SERVER:MODEL, or either with #N (see legs.py)
            server, model = parse_leg(source)
            legs.append(Leg(source=source, server=server if server != source else None,
                            requested_model=model or models.get(source) or models.get(server), admission=admission))
        started = time.perf_counter()
        if result is None:
            result = MixResult(mode=mode, legs=legs)
        else:
            result.mode, result.legs = mode, legs
        active = self._skip_cooling(legs, emit) if mode in SKIPPING_MODES else legs
        try:
            await strategy.run(self, active, arguments, emit, result, options or MixOptions())
        finally:
            for leg in result.legs:  # a run cancelled as a whole: each leg still says how it ended
                if leg.status in ("pending", "queued", "running") and leg.parts:
                    leg.status = "cancelled"
            result.legs[:] = [leg for leg in result.legs if leg.status != "pending"]  # never started: not part of it
            result.latency_ms = round((time.perf_counter() - started) * 1000, 3)
        return result

    def _skip_cooling(self, legs: list[Leg], emit: Emit) -> list[Leg]:
        """The legs to run: those whose server cools down are skipped, as long as one other leg is left."""
        reasons = {id(leg): self.cooldowns.skip_reason(leg.target) for leg in legs}
        if all(reasons.values()):
            return legs  # every server cools down: try them anyway rather than fail without asking
        for leg in legs:
            if reasons[id(leg)]:
                leg.status, leg.reason = "skipped", reasons[id(leg)]
                emit("leg.skipped", leg.source, {"reason": leg.reason})
        return [leg for leg in legs if leg.status != "skipped"]

    # -- one leg ------------------------------------------------------------------------------------------------------

    async def run_leg(self, leg: Leg, arguments: dict[str, Any], emit: Emit,
                      on_first_token: Callable[[Leg], None] | None = None, *, fast: bool = False,
                      on_success: Callable[[Leg], None] | None = None) -> None:
        """The leg runner every strategy uses: run ``leg`` to its end inside ``leg.scope``, streaming its deltas,
        recording its outcome, usage and cost; never raises (cancellation is recorded, then absorbed).

        ``fast``: another leg can take over, so the adapter must not sleep through a long retry wait.
        ``on_success``: called the moment the leg's successful result arrives, before any bookkeeping, so a race
        sends its losers' cancellation first (pricing, cooldowns and events can wait; an open upstream cannot).
        """
        call_args = dict(arguments)
        if leg.requested_model and "model" not in call_args:
            call_args["model"] = leg.requested_model
        if fast:
            call_args.setdefault("max_retry_wait_s", self.fast_retry_wait_s)
        started = time.perf_counter()
        # Known before the first token (asked for, or the adapter's default), so a cancelled leg is priced too.
        leg.model = call_args.get("model") or self.pool.default_model(leg.target) or self._models_seen.get(leg.target)
        labels = {k: v for k, v in (("role", leg.role), ("server", leg.server), ("round", leg.round)) if v is not None}

        def on_state(state: CallState) -> None:
            # A leg waiting for a slot of a busy server is "queued"; its clock starts when it gets the slot, so
            # ttft and latency measure the model (and the hedge delay is not skewed by our own queue).
            nonlocal started
            leg.status = state
            if state == "running":
                started = time.perf_counter()
            emit("leg.started" if state == "running" else "leg.queued", leg.source, {"model": leg.model, **labels})

        async def progress(_progress: float, _total: float | None, message: str | None) -> None:
            if not message or leg.status != "running" or leg.scope.cancel_called:
                return  # a leg that lost streams nothing more (its cancellation is on its way)
            item = read_progress(message)
            if isinstance(item, ToolCallDelta):
                return  # a tool call counts once complete: a half-written call is not an answer yet
            if leg.ttft_ms is None:  # the first token, or the first complete tool call of a reply without text
                leg.ttft_ms = round((time.perf_counter() - started) * 1000, 3)
                emit("leg.first_token", leg.source, {"ttft_ms": leg.ttft_ms})
                if on_first_token is not None:
                    on_first_token(leg)
            if isinstance(item, ToolCall):
                leg.tool_calls = [*(leg.tool_calls or []), item.model_dump()]
                emit("leg.tool_call", leg.source, item.model_dump())
                return
            leg.parts.append(item)
            emit("delta", leg.source, {"text": item})

        with leg.scope:
            try:
                result = await self.pool.call(leg.target, "generate", call_args, progress, admission=leg.admission,
                                              on_state=on_state,
                                              idle_timeout_s=self.pool.config.settings.idle_timeout_s)
            except LLMMixerError as error:
                self._fail(leg, error.to_dict()["error"], started, emit)
                return
            except anyio.get_cancelled_exc_class():
                self._cancelled(leg, call_args, started, emit)
                raise
            if on_success is not None and not result.is_error:
                on_success(leg)
            payload = result_payload(result)
            if result.is_error:
                wire = payload.get("error") if isinstance(payload.get("error"), dict) else None
                self._fail(leg, wire or ServerError(_first_text(result)).to_dict()["error"], started, emit)
                return
            try:
                reply = GenerateResult.from_wire(payload)
            except ValidationError as exc:
                malformed = InvalidOutputError(f"{leg.target} answered generate with a malformed result: "
                                               f"{exc.errors()[0].get('msg', exc)}")
                self._fail(leg, malformed.to_dict()["error"], started, emit)
                return
            self._done(leg, reply, started, emit)
        if leg.scope.cancelled_caught and leg.status in ("running", "queued"):
            self._cancelled(leg, call_args, started, emit)

    def _done(self, leg: Leg, reply: GenerateResult, started: float, emit: Emit) -> None:
        leg.status = "done"
        leg.text = reply.text
        leg.model = reply.model
        leg.stop_reason = reply.stop_reason
        leg.usage = reply.usage.to_dict()
        leg.cost_usd = reply.cost_usd
        if leg.cost_usd is None or pricing.price_per_million(leg.model, self.prices) != pricing.price_per_million(
                leg.model):
            leg.cost_usd = pricing.cost_usd(leg.model, reply.usage.input_tokens, reply.usage.output_tokens,
                                            self.prices)
        leg.ttft_ms = reply.ttft_ms if leg.ttft_ms is None else leg.ttft_ms
        leg.latency_ms = round((time.perf_counter() - started) * 1000, 3)
        if reply.has_data:
            leg.data, leg.has_data = reply.data, True
        leg.dropped = [item.model_dump() for item in reply.dropped] if reply.dropped else None
        leg.tool_calls = [call.model_dump() for call in reply.tool_calls] if reply.tool_calls else leg.tool_calls
        if leg.model:
            self._models_seen[leg.target] = leg.model
        self.cooldowns.note_success(leg.target)
        if leg.ttft_ms is not None:
            self.ttft.add(leg.target, leg.ttft_ms)
        emit("leg.done", leg.source, leg.result().wire())

    def _fail(self, leg: Leg, error: dict[str, Any], started: float, emit: Emit) -> None:
        leg.status = "error"
        leg.error = error
        leg.latency_ms = round((time.perf_counter() - started) * 1000, 3)
        self.cooldowns.note_error(leg.target, error)
        emit("leg.error", leg.source, {"error": error})

    def _cancelled(self, leg: Leg, call_args: dict[str, Any], started: float, emit: Emit) -> None:
        if leg.status not in ("running", "queued"):
            return
        never_sent = leg.status == "queued"  # cancelled while waiting for a slot: the vendor saw nothing
        leg.status = "cancelled"
        leg.latency_ms = round((time.perf_counter() - started) * 1000, 3)
        leg.model = leg.model or call_args.get("model") or self._models_seen.get(leg.target)
        prompt_chars = len(call_args.get("prompt", "")) + len(call_args.get("system") or "")
        prompt_chars += sum(_chars(m.get("content", "")) for m in call_args.get("messages") or ())
        prompt_chars += _chars(call_args.get("tools") or "")
        if never_sent:
            prompt_chars = 0
        leg.usage = {"input_tokens": estimated_tokens(prompt_chars), "output_tokens": len(leg.parts),
                     "estimated": True}
        if leg.model:
            leg.cost_usd = pricing.cost_usd(leg.model, leg.usage["input_tokens"], leg.usage["output_tokens"],
                                            self.prices)
        emit("leg.cancelled", leg.source, {"usage": leg.usage, "cost_usd": leg.cost_usd,
                                           "text_chars": len(leg.streamed)})

    @staticmethod
    def cancel_others(leg: Leg, legs: list[Leg]) -> None:
        """Cancel every leg of ``legs`` but ``leg``: their calls are cancelled on their servers, which close the
        upstreams (a race decided, a first token committed to)."""
        for other in legs:
            if other is not leg:
                other.scope.cancel()

    def win(self, leg: Leg, legs: list[Leg], result: MixResult, emit: Emit) -> None:
        """``leg`` wins: the run's winner, said at once (``race.won``, before the losers have closed); every other leg
        of ``legs`` is cancelled."""
        leg.status = "won"
        result.winner = leg.source
        self.cancel_others(leg, legs)
        emit("race.won", leg.source, {"winner": leg.source, "mode": result.mode})


def error_kind(error: dict[str, Any] | None) -> ErrorKind | None:
    """The kind of a wire error, None when it names none we know."""
    try:
        return ErrorKind((error or {}).get("kind"))
    except ValueError:
        return None


def _chars(content: Any) -> int:
    """Characters of a turn's content: its text, or its parts (tool calls and results) as JSON."""
    return len(content) if isinstance(content, str) else len(json.dumps(content, ensure_ascii=False))


def _first_text(result: Any) -> str:
    for block in getattr(result, "content", None) or []:
        if getattr(block, "type", None) == "text":
            return block.text
    return "the server returned an error with no message"

"""Cost caps: a run's own cap (``max_cost_usd``) and a daily budget over the run log (``settings.budget``).

Before dispatch, :func:`estimate_usd` prices what a run will spend for certain: every leg's prompt (about four
characters a token), plus ``max_tokens`` of output per leg when the caller bounded it. A run whose estimate is over
its cap is refused with a ``budget`` error, and nothing is sent to any vendor.

While it runs, :class:`SpendMeter` follows the run's events and keeps each leg's best-known spend: its prompt from
``leg.started``, its streamed deltas as they arrive (a token each), then the exact cost from the leg's end. The moment the total
crosses the cap, the run's remaining legs are cancelled (their upstream streams close, as in any lost race) and the
result carries ``cost_cap: {"max_cost_usd", "spent_usd", "stopped": true}``.

Coding agents (``llmmixer agent``) are metered the same way from each CLI's own report (:meth:`SpendMeter.record`):
its usage or cost as the CLI reports it. Nothing is refused before dispatch there: what an agent will spend depends on
how many turns it takes, which nothing knows beforehand, so only a cap that is not a positive number is refused.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

from ..servers.core import pricing
from ..servers.core.errors import BudgetError
from ..servers.core.events import LEG_ENDS, Event

__all__ = ["CHARS_PER_TOKEN", "estimated_tokens", "estimate_usd", "SpendMeter", "check_budget", "day_start"]

CHARS_PER_TOKEN = 4  # a rough rate, where no vendor has counted: a cancelled leg's prompt, a cap, count_tokens


def estimated_tokens(chars: int) -> int:
    """The tokens ``chars`` characters make at :data:`CHARS_PER_TOKEN`, rounded up."""
    return math.ceil(chars / CHARS_PER_TOKEN)


def estimate_usd(prompt_chars: int, models: list[str | None], max_tokens: int | None,
                 prices: pricing.Prices | None = None) -> float:
    """What a run will spend at least: each leg's prompt, and ``max_tokens`` of output when it is set.

    A leg whose model has no known price counts as free here (its spend is unknown, never guessed).
    """
    total = 0.0
    for model in models:
        price = pricing.price_per_million(model, prices) if model else None
        if price is None:
            continue
        total += estimated_tokens(prompt_chars) * price[0] / 1e6 + (max_tokens or 0) * price[1] / 1e6
    return round(total, 10)


@dataclass
class SpendMeter:
    """The running spend of one run against its cap, from the run's events (see the module docstring)."""

    max_cost_usd: float
    prompt_chars: int
    prices: pricing.Prices = field(default_factory=dict)
    stopped: bool = False
    _models: dict[str, str] = field(default_factory=dict)
    _spent: dict[str, float] = field(default_factory=dict)
    _settled: set[str] = field(default_factory=set)

    @property
    def spent_usd(self) -> float:
        return round(sum(self._spent.values()), 10)

    def observe(self, event: Event) -> bool:
        """Account for ``event``; True exactly once: when the spend has just crossed the cap."""
        source, data = event.source, event.data
        if event.type == "leg.started" and data.get("model"):
            self._models[source] = str(data["model"])
            self._settled.discard(source)
            prompt = estimated_tokens(self.prompt_chars)
            self._spent[source] = self._spent.get(source, 0.0) + self._price(source, prompt, 0)
        elif event.type == "delta" and source not in self._settled:
            # One token a delta, as the mixer prices a cancelled leg, so the meter and the final figures agree.
            self._spent[source] = self._spent.get(source, 0.0) + self._price(source, 0, 1)
        elif LEG_ENDS.get(event.type) in ("done", "cancelled") and isinstance(data.get("cost_usd"), (int, float)):
            self._spent[source] = float(data["cost_usd"])
            self._settled.add(source)
        return self._crossed()

    def record(self, source: str, spent_usd: float) -> bool:
        """A leg's spend so far, as its own report gives it (a coding CLI's usage or cost); True exactly once, as
        :meth:`observe`."""
        self._spent[source] = spent_usd
        return self._crossed()

    def _crossed(self) -> bool:
        if not self.stopped and self.spent_usd > self.max_cost_usd:
            self.stopped = True
            return True
        return False

    def stop_error(self) -> BudgetError:
        """Why a leg was cancelled when the run crossed its cap."""
        return BudgetError(f"cancelled: the run's spend (${self.spent_usd:.6f}) crossed its max_cost_usd of "
                           f"${self.max_cost_usd:.6f}", details=self.to_dict())

    def _price(self, source: str, input_tokens: int, output_tokens: int) -> float:
        model = self._models.get(source)
        price = pricing.price_per_million(model, self.prices) if model else None
        if price is None:
            return 0.0
        return input_tokens * price[0] / 1e6 + output_tokens * price[1] / 1e6

    def to_dict(self) -> dict[str, Any]:
        return {"max_cost_usd": self.max_cost_usd, "spent_usd": self.spent_usd, "stopped": self.stopped}


def day_start(now: dt.datetime | None = None) -> float:
    """The epoch time of this calendar day's start, in local time."""
    now = now or dt.datetime.now().astimezone()
    return now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def check_budget(budget_usd: float | None, spent_today_usd: float, estimate: float = 0.0) -> None:
    """Refuse a run when today's spend (from the run log), plus what it will spend for certain, reaches the budget.

    Raises:
        BudgetError: the daily budget is used up.
    """
    if budget_usd is None:
        return
    if spent_today_usd >= budget_usd or spent_today_usd + estimate > budget_usd:
        raise BudgetError(f"the daily budget of ${budget_usd:.2f} (settings.budget) is used up: ${spent_today_usd:.4f} "
                          f"spent today" + (f", and this run needs at least ${estimate:.4f}" if estimate else "")
                          + "; it resets at midnight, or raise settings.budget",
                          details={"budget_usd": budget_usd, "spent_today_usd": round(spent_today_usd, 6),
                                   "estimate_usd": estimate})

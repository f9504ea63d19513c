"""Price per model -> ``cost_usd``. A model with no known price costs ``None``, never a guess.

Dated snapshots (``claude-sonnet-4-5-20250929``, ``gpt-4o-2024-08-06``) take the price of their family; the longest
listed family wins so ``gpt-4o-mini-…`` is never priced as ``gpt-4o``.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import cast

__all__ = ["price_per_million", "cost_usd", "parse_prices", "Prices"]

_SNAPSHOT_SUFFIX = re.compile(r"^-(\d{4}-\d{2}-\d{2}|\d{8}|latest|preview(-[\w-]+)?|\d{3})$")


@functools.cache
def _table() -> dict[str, tuple[float, float]]:
    raw = json.loads(resources.files(__name__.rpartition(".")[0]).joinpath("prices.json").read_text())
    return {name: (float(p[0]), float(p[1])) for name, p in raw["models"].items()}


Prices = dict[str, tuple[float, float]]


def price_per_million(model: str, overrides: Prices | None = None) -> tuple[float, float] | None:
    """``(input, output)`` USD per million tokens, or ``None`` when the model has no known price.

    ``overrides`` (``settings.prices``) adds models or replaces their prices, snapshots included.
    """
    table = {**_table(), **overrides} if overrides else _table()
    name = model.removeprefix("models/")
    if name in table:
        return table[name]
    for family in sorted(table, key=len, reverse=True):
        if name.startswith(family) and _SNAPSHOT_SUFFIX.match(name[len(family):]):
            return table[family]
    return None


def cost_usd(model: str, input_tokens: int | None, output_tokens: int | None,
             overrides: Prices | None = None) -> float | None:
    price = price_per_million(model, overrides)
    if price is None or input_tokens is None or output_tokens is None:
        return None
    return round((input_tokens * price[0] + output_tokens * price[1]) / 1_000_000, 10)


def parse_prices(raw: object) -> Prices:
    """``settings.prices``: ``{"model": [input, output]}`` (or ``{"input": x, "output": y}``), USD per million.

    Raises:
        ValueError: not that shape, or a negative price; the message says what is wrong.
    """
    if not isinstance(raw, dict):
        raise ValueError("prices must map model ids to [input, output] USD per million tokens")
    out: Prices = {}
    for model, price in raw.items():
        if isinstance(price, dict):
            price = [price.get("input"), price.get("output")]
        if (not isinstance(price, list | tuple) or len(price) != 2
                or not all(isinstance(p, int | float) and not isinstance(p, bool) and p >= 0 for p in price)):
            raise ValueError(f"prices.{model} must be [input, output] USD per million tokens, e.g. [1.0, 5.0]")
        low, high = cast("tuple[float, float]", tuple(price))  # checked just above
        out[str(model)] = (float(low), float(high))
    return out

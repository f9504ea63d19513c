"""Numbers from outside (a vendor's Retry-After, a config file, a state file) bounded where they enter.

A wait or a timeout that nobody inside LLMMixer chose is parsed as a finite number of seconds and clamped to
:data:`MAX_WAIT_S` (one hour) or :data:`MAX_TIMEOUT_S` (one day). A clamp is logged once per value with where the
number came from, so ``Retry-After: 1e300`` or ``breaker_s: Infinity`` cools a server for an hour, not forever,
and never reaches arithmetic that overflows (``time.gmtime(1e300)``).
"""

from __future__ import annotations

import logging
import math
from typing import Any

__all__ = ["MAX_WAIT_S", "MAX_TIMEOUT_S", "bounded_seconds", "finite_number"]

log = logging.getLogger("llmmixer.bounds")

MAX_WAIT_S = 3600.0  # the longest a server is told to wait (retry-after, cooldown, circuit breaker)
MAX_TIMEOUT_S = 86400.0  # the longest any configured timeout may be


def finite_number(value: Any) -> float | None:
    """``value`` as a float when it is a real number (a bool is not; nor is a string), else None.

    ``Infinity`` counts as a number here (it is clamped later); NaN does not.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int with more digits than a float holds
        number = math.inf if value > 0 else -math.inf
    return None if math.isnan(number) else number


def bounded_seconds(value: Any, what: str, maximum: float = MAX_WAIT_S) -> float | None:
    """A duration in seconds within ``[0, maximum]``; None when ``value`` is not a number at all.

    Negative becomes 0; above ``maximum`` (Infinity included) becomes ``maximum`` and is logged, naming ``what``.
    """
    number = finite_number(value)
    if number is None:
        return None
    if number > maximum:
        log.warning("%s of %s s is clamped to %g s", what, _shown(number), maximum)
        return maximum
    return max(number, 0.0)


def _shown(number: float) -> str:
    return "infinite" if math.isinf(number) else f"{number:g}"

"""Small statistics shared by the bench suites."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["percentile", "supported_percentile", "row"]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def supported_percentile(samples: int, wanted: float) -> float:
    """The highest of p99/p95/p90/p50, at most ``wanted``, that ``samples`` values can show without it being
    their maximum (nearest rank below ``samples``): p99 needs 100 samples or more, p95 needs 20."""
    for q in (99.0, 95.0, 90.0, 50.0):
        if q <= wanted and math.ceil(q / 100 * samples) < samples:
            return q
    return 50.0


def row(figure: str, ours: float | None, baseline: float | None, goal: str, *, unit: str = "",
        passed: bool | None = None, ratio: float | None = None, note: str = "") -> dict[str, Any]:
    """A table row; ``ratio`` defaults to ours / baseline."""
    if ratio is None and ours is not None and baseline:
        ratio = ours / baseline
    return {"figure": figure, "ours": ours, "baseline": baseline, "ratio": ratio, "goal": goal, "unit": unit,
            "passed": passed, "note": note}

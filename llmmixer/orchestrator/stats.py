"""What racing bought against what it spent, from the run log (``llmmixer logs --stats``, ``GET /api/stats``).

Per mode: runs, the run's latency p50/p95, and the same figures for the best single model over the same period (the
model whose own legs had the lowest p50), so a race's latency reads against what one model alone would have given;
spend, and the part of it paid for cancelled legs. Per model (a dated snapshot counts under its undated id): legs,
wins, latency p50/p95 of its finished legs, spend and cancelled spend. Over time: each model's spend per hour (a
period of two days or less) or per day, the buckets contiguous from the first run to the last (the dashboard's
spend chart).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..servers.core.errors import InvalidInputError
from .models import undated

__all__ = ["parse_since", "Stats", "SpendSeries", "compute", "records_since", "render", "usd"]

_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
PAGE = 200
HOUR_S, DAY_S = 3600, 86400
MAX_BUCKETS = 400  # a longer series is drawn in wider buckets


def parse_since(text: str | None, now: float | None = None) -> float | None:
    """``7d``, ``12h``, ``30m``... as the epoch time that long ago; None for no bound.

    Raises:
        InvalidInputError: not a number followed by one of s, m, h, d, w.
    """
    if text is None or not text.strip():
        return None
    match = _SINCE.match(text)
    if match is None:
        raise InvalidInputError(f"--since {text!r}: give a number and a unit, such as 7d, 12h or 30m")
    return (now if now is not None else time.time()) - float(match.group(1)) * _UNIT_S[match.group(2)]


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass
class _Group:
    runs: int = 0
    wins: int = 0
    latencies: list[float] = field(default_factory=list)
    spend: float = 0.0
    cancelled_spend: float = 0.0

    def to_dict(self, *, wins: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"runs": self.runs, "p50_ms": _percentile(self.latencies, 0.5),
                               "p95_ms": _percentile(self.latencies, 0.95), "spend_usd": round(self.spend, 6),
                               "cancelled_spend_usd": round(self.cancelled_spend, 6)}
        if wins:
            out["wins"] = self.wins
        return out


@dataclass
class SpendSeries:
    """Each model's spend per bucket: ``starts[i]`` is the epoch start of bucket ``i``, ``models[name][i]`` its USD."""

    bucket_s: int
    starts: list[float] = field(default_factory=list)
    models: dict[str, list[float]] = field(default_factory=dict)

    @classmethod
    def of(cls, points: list[tuple[float, str, float]], bucket_s: int) -> SpendSeries:
        """The series of ``(time, model, usd)`` points, in buckets of ``bucket_s`` (widened to keep at most
        :data:`MAX_BUCKETS`)."""
        if not points:
            return cls(bucket_s)
        first, last = min(t for t, _, _ in points), max(t for t, _, _ in points)
        while (last - first) / bucket_s >= MAX_BUCKETS:
            bucket_s *= 2
        origin = math.floor(first / bucket_s) * bucket_s
        count = int((last - origin) // bucket_s) + 1
        models: dict[str, list[float]] = {}
        for at, name, cost in points:
            row = models.setdefault(name, [0.0] * count)
            row[int((at - origin) // bucket_s)] += cost
        return cls(bucket_s, [origin + i * bucket_s for i in range(count)],
                   {name: [round(v, 6) for v in row] for name, row in sorted(models.items())})

    def to_dict(self) -> dict[str, Any]:
        return {"bucket_s": self.bucket_s, "starts": self.starts, "models": self.models}


@dataclass
class Stats:
    since: float | None
    modes: dict[str, dict[str, Any]]
    models: dict[str, dict[str, Any]]
    best_single: dict[str, Any] | None
    spend_over_time: SpendSeries = field(default_factory=lambda: SpendSeries(DAY_S))

    def to_dict(self) -> dict[str, Any]:
        return {"since": self.since, "modes": self.modes, "models": self.models, "best_single": self.best_single,
                "spend_over_time": self.spend_over_time.to_dict()}


def usd(value: Any) -> float:
    """A logged cost as dollars: 0 for a cost that is unknown (None) or not a finite number."""
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else 0.0


def compute(records: Iterable[dict[str, Any]], since: float | None = None, now: float | None = None) -> Stats:
    """The figures of the ask runs in ``records`` (run-log records, any order)."""
    modes: dict[str, _Group] = {}
    models: dict[str, _Group] = {}
    points: list[tuple[float, str, float]] = []
    for record in records:
        result = record.get("result")
        if record.get("kind", "ask") != "ask" or not isinstance(result, dict):
            continue
        mode = str(record.get("mode") or result.get("mode") or "?")
        group = modes.setdefault(mode, _Group())
        group.runs += 1
        if isinstance(result.get("latency_ms"), (int, float)) and record.get("status") == "done":
            group.latencies.append(float(result["latency_ms"]))
        for leg in result.get("legs") or ():
            if not isinstance(leg, dict) or leg.get("status") == "skipped":
                continue
            name = str(leg.get("model") or leg.get("source") or "?")
            name = undated(name) or name  # a leg asked for gpt-5-mini is answered by gpt-5-mini-2025-08-07
            per_model = models.setdefault(name, _Group())
            per_model.runs += 1
            cost = usd(leg.get("cost_usd"))
            if cost and isinstance(record.get("created"), (int, float)):
                points.append((float(record["created"]), name, cost))
            group.spend += cost
            per_model.spend += cost
            if leg.get("status") == "cancelled":
                group.cancelled_spend += cost
                per_model.cancelled_spend += cost
            if leg.get("status") == "won" or (leg.get("source") and leg.get("source") == result.get("winner")):
                per_model.wins += 1
            if leg.get("status") in ("won", "done") and isinstance(leg.get("latency_ms"), (int, float)):
                per_model.latencies.append(float(leg["latency_ms"]))
    best_name, best = None, None
    for name, per_model in models.items():
        p50 = _percentile(per_model.latencies, 0.5)
        if p50 is not None and (best is None or p50 < best[0]):
            best_name, best = name, (p50, _percentile(per_model.latencies, 0.95))
    best_single = None if best is None else {"model": best_name, "p50_ms": best[0], "p95_ms": best[1]}
    mode_out = {}
    for mode, group in sorted(modes.items()):
        entry = group.to_dict()
        if best is not None and entry["p50_ms"] is not None and best[0]:
            entry["p50_vs_best_single"] = round(entry["p50_ms"] / best[0], 3)
        if best is not None and entry["p95_ms"] is not None and best[1]:
            entry["p95_vs_best_single"] = round(entry["p95_ms"] / best[1], 3)
        mode_out[mode] = entry
    model_out = {name: group.to_dict(wins=True) for name, group in sorted(models.items())}
    short = since is not None and (now if now is not None else time.time()) - since <= 2 * DAY_S
    return Stats(since=since, modes=mode_out, models=model_out, best_single=best_single,
                 spend_over_time=SpendSeries.of(points, HOUR_S if short else DAY_S))


async def records_since(runlog: Any, since: float | None, *, limit: int = 100_000) -> AsyncIterator[dict[str, Any]]:
    """The run log's records created at or after ``since``, newest first (paged; at most ``limit`` read).

    The log lists runs newest first as they were written; reading stops at the first page holding none of the period.
    """
    offset = 0
    while offset < limit:
        page = await runlog.list_runs(limit=PAGE, offset=offset)
        inside = [r for r in page if since is None or not isinstance(r.get("created"), (int, float))
                  or r["created"] >= since]
        for record in inside:
            yield record
        if len(page) < PAGE or not inside:
            return
        offset += PAGE


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} ms"


def render(stats: Stats) -> str:
    """Plain text: one table of modes, one of models."""
    lines = []
    best = stats.best_single
    if best is not None:
        lines.append(f"best single model: {best['model']}  p50 {_ms(best['p50_ms'])}  p95 {_ms(best['p95_ms'])}")
    lines.append(f"{'mode':<12} {'runs':>6} {'p50':>10} {'p95':>10} {'p50/best':>9} {'p95/best':>9} "
                 f"{'spend':>11} {'on cancelled':>13}")
    for mode, entry in stats.modes.items():
        lines.append(f"{mode:<12} {entry['runs']:>6} {_ms(entry['p50_ms']):>10} {_ms(entry['p95_ms']):>10} "
                     f"{entry.get('p50_vs_best_single', '—'):>9} {entry.get('p95_vs_best_single', '—'):>9} "
                     f"${entry['spend_usd']:>10.6f} ${entry['cancelled_spend_usd']:>12.6f}")
    lines.append("")
    lines.append(f"{'model':<28} {'legs':>6} {'wins':>6} {'p50':>10} {'p95':>10} {'spend':>11} {'on cancelled':>13}")
    for name, entry in stats.models.items():
        lines.append(f"{name:<28} {entry['runs']:>6} {entry['wins']:>6} {_ms(entry['p50_ms']):>10} "
                     f"{_ms(entry['p95_ms']):>10} ${entry['spend_usd']:>10.6f} ${entry['cancelled_spend_usd']:>12.6f}")
    if not stats.modes:
        lines = ["no ask runs in this period"]
    return "\n".join(lines) + "\n"

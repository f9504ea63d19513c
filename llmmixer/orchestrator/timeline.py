"""A run's timeline: when each leg started, streamed its first token and ended (won, done, cancelled, error), on
one time axis that starts with the run. It shows at a glance why the winner won and when the losers stopped.

Built from the run's own events (their ``ts``), as the run goes (:class:`~.runs.Runs` keeps the marks) or later
from the store. The shape, kept in the run's result and record::

    {"duration_ms": 812.0, "setup_ms": 3.1,      # setup: from the run's start to its first leg's (server start-up)
     "legs": [{"source": "claude", "model": "…", "start_ms": 1.2, "first_token_ms": 301.5, "end_ms": 610.0,
               "end": "won"}, …]}

:func:`render_text` draws it for a terminal (``llmmixer logs show ID --timeline``); the dashboard draws the same
data.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..servers.core.events import LEG_ENDS, TIMELINE_TYPES

__all__ = ["MARK_TYPES", "build", "from_events", "render_text"]

MARK_TYPES = TIMELINE_TYPES
_ENDS = LEG_ENDS
BAR_WIDTH = 60


def build(marks: Iterable[tuple[str, str, float]], legs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The timeline from ``(type, source, ts)`` marks; ``legs`` (the result's) settle each leg's final status."""
    marks = list(marks)
    if not marks:
        return {"duration_ms": 0.0, "legs": []}
    # The axis starts when the first leg does: starting the servers (once per process) is not part of the race.
    run_start = next((ts for type_, _, ts in marks if type_ == "run.started"), marks[0][2])
    origin = min((ts for type_, _, ts in marks if type_ == "leg.started"), default=run_start)
    finish = next((ts for type_, _, ts in reversed(marks) if type_ == "run.done"), marks[-1][2])

    def ms(ts: float) -> float:
        return round((ts - origin) * 1000, 1)

    rows: dict[str, dict[str, Any]] = {}
    for type_, source, ts in marks:
        if not type_.startswith("leg."):  # the run's own bounds
            continue
        row = rows.setdefault(source, {"source": source, "start_ms": None, "first_token_ms": None, "end_ms": None,
                                       "end": None})
        if type_ == "leg.started" and row["start_ms"] is None:
            row["start_ms"] = ms(ts)
        elif type_ == "leg.first_token" and row["first_token_ms"] is None:
            row["first_token_ms"] = ms(ts)
        elif type_ in _ENDS:
            row["end_ms"], row["end"] = ms(ts), _ENDS[type_]
    for leg in legs or []:
        found = rows.get(leg.get("source", ""))
        if found is None:
            continue
        if leg.get("status") in ("won", "cancelled", "error", "done"):
            found["end"] = leg["status"]
        if leg.get("model"):
            found["model"] = leg["model"]
    for row in rows.values():  # a leg still open when the run ended (cancelled with the run) ends with it
        if row["end_ms"] is None:
            row["end_ms"], row["end"] = ms(finish), row["end"] or "cancelled"
    return {"duration_ms": ms(finish), "setup_ms": round((origin - run_start) * 1000, 1),
            "legs": list(rows.values())}


def from_events(events: Iterable[Any], legs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The timeline of stored events (objects with ``type``, ``source``, ``ts``)."""
    return build(((e.type, e.source, e.ts) for e in events if e.type in MARK_TYPES), legs)


def render_text(timeline: dict[str, Any], width: int = BAR_WIDTH) -> str:
    """The timeline as text: one bar per leg on a shared axis. ``·`` waiting for the first token, ``━`` streaming,
    then the end marker: ``★`` won, ``✓`` done, ``✗`` cancelled, ``!`` error."""
    duration = max(float(timeline.get("duration_ms") or 0.0), 1.0)
    legs = timeline.get("legs") or []
    if not legs:
        return "(no legs)"
    name_width = max(len(leg["source"]) for leg in legs)
    ends = {"won": "★", "done": "✓", "cancelled": "✗", "error": "!"}

    def col(value: float | None) -> int:
        return 0 if value is None else min(width - 1, max(0, round(value / duration * (width - 1))))

    lines = []
    for leg in legs:
        start, first, end = col(leg.get("start_ms")), leg.get("first_token_ms"), col(leg.get("end_ms"))
        cells = [" "] * width
        streaming_from = col(first) if first is not None else end
        for i in range(start, end):
            cells[i] = "━" if i >= streaming_from else "·"
        cells[end] = ends.get(leg.get("end") or "", "|")
        figures = [f"start {leg.get('start_ms') or 0:.0f}"]
        if first is not None:
            figures.append(f"first token {first:.0f}")
        figures.append(f"{leg.get('end') or 'end'} {leg.get('end_ms') or 0:.0f} ms")
        lines.append(f"{leg['source']:<{name_width}} |{''.join(cells)}| {', '.join(figures)}")
    axis = f"{'':<{name_width}}  0{'':<{width - 2}}{duration:.0f} ms"
    legend = f"{'':<{name_width}} · waiting  ━ streaming  ★ won  ✓ done  ✗ cancelled  ! error"
    return "\n".join([*lines, axis, legend])

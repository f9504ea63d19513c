"""The terminal view of a running ``llmmixer agent``: one line per thing an agent did, prefixed by its name, then a
summary table. Lines come from the run's events in the store, so they are what SSE and the dashboard show too."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from ...servers.core.events import Event
    from ..runs import Runs

__all__ = ["follow_agents", "follow_agent_events", "describe", "summary"]


def describe(event: Event) -> str | None:
    """One human line for an event, or None for those not worth a line (raw terminal output)."""
    data = event.data
    kind = event.type
    if kind == "agent.text":
        return None if data.get("delta") else f"says: {data.get('text', '')}".strip()
    if kind == "agent.command":
        return f"$ {data.get('command')}"
    if kind == "agent.tool_call" and data.get("tool") not in ("Bash", "exec_command", "run_shell_command"):
        return f"→ {data.get('tool')}"
    if kind == "agent.file_changed":
        return f"changed {data.get('path')}"
    if kind == "agent.check" and data.get("phase") == "done":
        verdict = "passed" if data.get("passed") else f"failed (exit {data.get('exit_code')})"
        return f"check {verdict}"
    if kind == "agent.exit":
        return f"exited {data.get('exit_code')}" + (" (timed out)" if data.get("timed_out") else "")
    if kind == "race.won":
        return "WON"
    if kind == "leg.cancelled":
        return f"stopped ({data.get('stopped_ms')} ms after the decision)"
    if kind == "leg.error":
        error = data.get("error") or {}
        return f"error: {error.get('kind')}: {error.get('message')}"
    return None


async def follow_agents(runs: Runs, run_id: str, out: TextIO | None = None) -> dict[str, Any]:
    """Print the run's lines as they happen; return its final result."""
    out = out if out is not None else sys.stderr
    assert out is not None  # sys.stderr is None only without a console, where nothing calls this
    after: str | None = None
    while True:
        finished = await runs.wait(run_id, 0.2)
        batch = await runs.store.read_after(after, 1000, run=run_id)
        for event in batch:
            after = event.id
            line = describe(event)
            if line:
                out.write(f"[{event.source}] {line}\n")
                out.flush()
        if finished and not batch:
            return await runs.snapshot(run_id)


async def follow_agent_events(events: AsyncIterator[dict[str, Any]], out: TextIO | None = None) -> None:
    """Print the lines of a run's events (as the resident service streams them) until the run is done."""
    from ...servers.core.events import Event

    out = out if out is not None else sys.stderr
    assert out is not None  # sys.stderr is None only without a console, where nothing calls this
    async for raw in events:
        line = describe(Event.from_dict(raw))
        if line:
            out.write(f"[{raw.get('source')}] {line}\n")
            out.flush()


def summary(result: dict[str, Any]) -> str:
    lines = []
    for leg in result.get("legs", []):
        check = leg.get("check") or {}
        usage = leg.get("usage") or {}
        cost = "" if leg.get("cost_usd") is None else f" ${leg['cost_usd']:.4f}"
        tokens = f" {usage.get('input_tokens', 0)}→{usage.get('output_tokens', 0)} tok" if usage else ""
        took = "" if leg.get("duration_ms") is None else f" {leg['duration_ms'] / 1000:.1f}s"
        verdict = "" if not check else (" check ok" if check.get("passed") else f" check exit {check.get('exit_code')}")
        lines.append(f"  {leg['agent']:<12} {leg['status']:<10}{took}{tokens}{cost}{verdict}")
        if leg.get("status") == "error" and leg.get("error"):
            lines.append(f"    {leg['error'].get('message')}")  # a setup that failed, a limit crossed...
    winner = result.get("winner")
    head = f"winner: {winner}" if winner else "no agent passed the check"
    if result.get("continued"):
        kept = [str((leg.get("kept") or {}).get("branch")) for leg in result.get("legs", []) if leg.get("kept")]
        head = (f"continued: {', '.join(kept) or 'nothing kept'}; "
                + ("the follow-up succeeded" if winner else "the follow-up did not succeed"))
    if result.get("applied"):
        head += " (diff applied)"
    cap = result.get("cost_cap") or {}
    if cap.get("stopped"):
        head += (f"; stopped at ${cap['spent_usd']:.4f} spent, over --max-cost ${cap['max_cost_usd']:g}: the legs "
                 "still running were cancelled")
    return "\n".join([head, *lines])

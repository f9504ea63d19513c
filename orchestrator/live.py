"""The terminal view of a running ask: one rich panel per model, streaming, then a badge and the figures."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import RenderableType

    from .runs import Runs

__all__ = ["follow_ask", "render_columns"]

BADGES = {"won": ("WON", "bold green"), "done": ("done", "green"), "cancelled": ("cancelled", "yellow"),
          "error": ("error", "bold red"), "running": ("…", "cyan"), "skipped": ("skipped", "yellow")}


def render_columns(sources: list[str], texts: dict[str, str], legs: dict[str, dict[str, Any]]) -> RenderableType:
    from rich.columns import Columns
    from rich.panel import Panel
    from rich.text import Text

    panels = []
    width = max(30, 120 // max(1, len(sources)))
    for source in sources:
        leg = legs.get(source, {})
        status = leg.get("status", "running")
        badge, style = BADGES.get(status, (status, "white"))
        body = Text(texts.get(source, "") or leg.get("text") or "")
        if leg.get("error"):
            body.append(f"\n{leg['error'].get('kind')}: {leg['error'].get('message')}", style="red")
        if leg.get("reason"):
            body.append(f"\n{leg['reason']}", style="yellow")
        figures = []
        if leg.get("ttft_ms") is not None:
            figures.append(f"ttft {leg['ttft_ms']:.0f} ms")
        usage = leg.get("usage") or {}
        if usage.get("output_tokens") is not None:
            figures.append(f"{usage['output_tokens']} tok{'~' if usage.get('estimated') else ''}")
        if leg.get("cost_usd") is not None:
            figures.append(f"${leg['cost_usd']:.6f}")
        title = Text.assemble((source, "bold"), "  ", (badge, style))
        panels.append(Panel(body, title=title, subtitle=" · ".join(figures) or None, width=width))
    return Columns(panels)


async def follow_ask(runs: Runs, run_id: str, *, live: bool) -> dict[str, Any]:
    """Stream the run's deltas into panels (when ``live``) and return its final snapshot."""
    if not live:
        await runs.wait(run_id, float("inf"))
        return await runs.snapshot(run_id)

    from rich.console import Console
    from rich.live import Live

    console = Console(stderr=False)
    texts: dict[str, str] = {}
    sources = list(dict.fromkeys(runs.config.settings.models))
    with Live(console=console, refresh_per_second=12, transient=False) as view:
        async for source, text in runs.deltas(run_id):
            texts[source] = texts.get(source, "") + text
            if source not in sources:
                sources.append(source)
            view.update(render_columns([s for s in sources if s in texts], texts, {}))
        final = await runs.snapshot(run_id)
        legs = {leg["source"]: leg for leg in final.get("legs", [])}
        shown = [leg["source"] for leg in final.get("legs", [])] or sources
        view.update(render_columns(shown, {}, legs))
    console.print()
    summary = [f"mode {final.get('mode')}", f"winner {final.get('winner') or '—'}"]
    if final.get("latency_ms") is not None:
        summary.append(f"{final['latency_ms']:.0f} ms")
    if final.get("total_cost_usd") is not None:
        summary.append(f"total ${final['total_cost_usd']:.6f}")
    console.print("  ".join(summary), style="bold")
    verdict = final.get("verdict") or {}
    if verdict.get("reason"):
        console.print(f"judge: {verdict['winner']} — {verdict['reason']}")
    for step in final.get("recovery") or []:
        console.print(f"recovered: {step['from']} failed ({step['error']}) after streaming; moved on to "
                      f"{', '.join(step['to'])}", style="yellow")
    return final

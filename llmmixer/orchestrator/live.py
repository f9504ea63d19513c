"""The terminal view of a running ask: one panel per model from the start, streaming, then a badge and figures.

On a terminal the layout is fixed when the run starts: one column per leg, each in the state ``starting`` until
its first token, so nothing jumps from one panel to halves to thirds. A panel shows the newest lines that fit the
terminal (the answer scrolls); when the run ends the live view is replaced by the final panels in full, so the
whole answer stays in the scrollback. When stdout is not a terminal (a pipe, a file) the output is plain text: a
single model's text as it streams, or each model's final text under a one-line header.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from .remote import RemoteRuns
    from .runs import Runs

__all__ = ["follow_ask", "render_columns", "summary_line", "print_plain"]

BADGES = {"won": ("WON", "bold green"), "done": ("done", "green"), "cancelled": ("cancelled", "yellow"),
          "error": ("error", "bold red"), "running": ("streaming", "cyan"), "streaming": ("streaming", "cyan"),
          "starting": ("starting", "dim"), "skipped": ("skipped", "dim"), "queued": ("queued", "dim"),
          "interrupted": ("interrupted", "bold yellow"), "stopping": ("stopping", "yellow")}
CHROME_LINES = 5  # panel borders, the summary line and a margin


def _figures(leg: dict[str, Any]) -> list[str]:
    figures = []
    if leg.get("model"):
        figures.append(str(leg["model"]))
    if leg.get("ttft_ms") is not None:
        figures.append(f"ttft {leg['ttft_ms']:.0f} ms")
    usage = leg.get("usage") or {}
    if usage.get("output_tokens") is not None:
        figures.append(f"{usage['output_tokens']} tok{'~' if usage.get('estimated') else ''}")
    if leg.get("cost_usd") is not None:
        figures.append(f"${leg['cost_usd']:.6f}")
    elif leg.get("priced") is False:
        figures.append("no price")
    return figures


def _footer(figures: list[str], panel_width: int | None) -> tuple[str | None, list[str]]:
    """The figures as the panel's bottom border when they fit in it, else packed into lines for the body."""
    joined = " · ".join(figures)
    if not figures:
        return None, []
    if panel_width is None or len(joined) + 6 <= panel_width:  # "╰─ " + figures + " ─╯"
        return joined, []
    inner = max(1, panel_width - 4)
    lines = [figures[0]]
    for figure in figures[1:]:
        if len(lines[-1]) + 3 + len(figure) <= inner:
            lines[-1] += " · " + figure
        else:
            lines.append(figure)
    return None, lines


def render_columns(sources: list[str], texts: dict[str, str], legs: dict[str, dict[str, Any]], *,
                   console: Console | None = None, max_lines: int | None = None) -> RenderableType:
    """One panel per source, side by side in equal columns; with ``max_lines``, each shows its newest lines."""
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(expand=True, padding=(0, 1))
    for _ in sources:
        grid.add_column(ratio=1)
    width = panel_width = None
    if console is not None:
        panel_width = (console.width - (len(sources) - 1)) // max(1, len(sources))  # the grid's one-cell gutters
        width = max(10, panel_width - 5)
    panels = []
    for source in sources:
        leg = legs.get(source, {})
        status = leg.get("status") or ("streaming" if texts.get(source) else "starting")
        badge, style = BADGES.get(status, (status, "white"))
        body = Text(texts.get(source) or leg.get("text") or "", overflow="fold")
        if leg.get("error"):
            body.append(f"\n{leg['error'].get('kind')}: {leg['error'].get('message')}", style="red")
        if leg.get("reason"):  # skipped (cooling down) or left out at a deadline
            body.append(f"\n{leg['reason']}", style="yellow")
        if max_lines is not None and console is not None and width is not None:
            lines = body.wrap(console, width)
            if len(lines) > max_lines:
                body = Text("\n").join(lines[-max_lines:])
        subtitle, footer_lines = _footer(_figures(leg), panel_width)
        if footer_lines:  # too wide for the bottom border: the figures close the body instead, none cut
            body.append(("\n" if body.plain else "") + "\n".join(footer_lines), style="dim")
        title = Text.assemble((source, "bold"), "  ", (badge, style))
        panels.append(Panel(body, title=title, subtitle=subtitle))
    grid.add_row(*panels)
    return grid


def summary_line(final: dict[str, Any]) -> str:
    summary = [f"mode {final.get('mode')}", f"winner {final.get('winner') or '—'}"]
    if final.get("latency_ms") is not None:
        summary.append(f"{final['latency_ms']:.0f} ms")
    if final.get("total_cost_usd") is not None:
        partial = " (partial: some legs have no price)" if final.get("total_cost_partial") else ""
        summary.append(f"total ${final['total_cost_usd']:.6f}{partial}")
    if final.get("conversation_id"):
        summary.append(f"conversation {final['conversation_id']}")
    verdict = final.get("verdict") or {}
    if verdict.get("reason"):
        summary.append(f"judge: {verdict['winner']} ({verdict['reason']})")
    for step in final.get("recovery") or []:
        summary.append(f"recovered: {step['from']} failed ({step['error']}), moved on to {', '.join(step['to'])}")
    return "  ".join(summary)


def print_plain(final: dict[str, Any], out: Any = None, *, texts_shown: bool = False) -> None:
    """The final result as plain text: each leg under a header, then the summary."""
    out = out or sys.stdout
    legs = final.get("legs") or []
    if not texts_shown:
        for leg in legs:
            figures = " · ".join(_figures(leg))
            out.write(f"== {leg.get('source')} [{leg.get('status')}]{' ' + figures if figures else ''}\n")
            text = leg.get("text") or ""
            out.write(text + ("\n" if text and not text.endswith("\n") else ""))
            if leg.get("error"):
                out.write(f"{leg['error'].get('kind')}: {leg['error'].get('message')}\n")
    if final.get("error") and not legs:
        out.write(f"error: {final['error'].get('kind')}: {final['error'].get('message')}\n")
    out.write(summary_line(final) + "\n")
    out.flush()


async def _sources(runs: Runs | RemoteRuns, run_id: str) -> list[str]:
    """The run's servers, in order, from the moment it starts (the panels' layout)."""
    snapshot = await runs.snapshot(run_id)
    return list(snapshot.get("models") or [leg["source"] for leg in snapshot.get("legs") or []])


async def follow_ask(runs: Runs | RemoteRuns, run_id: str, *, live: bool, console: Console | None = None
                     ) -> dict[str, Any]:
    """Show the run (when ``live``) and return its final snapshot. Ctrl-C cancels the run and keeps what it
    streamed: the returned snapshot then has ``"interrupted": True``, and (when ``live``) the view ends with every
    panel in full, each cancelled leg marked ``interrupted``, and a line saying what was cancelled and what it cost."""
    from .ctrl_c import ctrl_c_cancels, interrupted_line

    async with ctrl_c_cancels(lambda: runs.cancel(run_id)) as ctrl_c:
        if not live:
            await runs.wait(run_id, float("inf"))
            final = await runs.snapshot(run_id)
        else:
            from rich.console import Console

            console = console or Console()
            if console.is_terminal:
                final = await _follow_live(runs, run_id, console, ctrl_c)
            else:
                final = await _follow_plain(runs, run_id, await _sources(runs, run_id))
    if not ctrl_c.pressed:
        return final
    final = {**final, "interrupted": True}
    if live:
        line = interrupted_line(final)
        if console is not None and console.is_terminal:
            console.print(line, style="bold yellow", markup=False, highlight=False)
        else:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    return final


async def _follow_live(runs: Runs | RemoteRuns, run_id: str, console: Console, ctrl_c: Any) -> dict[str, Any]:
    from rich.live import Live

    sources = await _sources(runs, run_id)
    texts: dict[str, str] = {}
    statuses: dict[str, str] = {}
    max_lines = max(3, console.height - CHROME_LINES)

    def view() -> RenderableType:
        legs = {source: {"status": _live_status(status, texts.get(source), ctrl_c.pressed)}
                for source, status in statuses.items()}
        return render_columns(sources, texts, legs, console=console, max_lines=max_lines)

    from .ctrl_c import no_echoctl

    with no_echoctl(), Live(view(), console=console, refresh_per_second=12, transient=True,
                            vertical_overflow="crop") as shown:
        async for fresh, now in runs.follow(run_id):
            for source, text in fresh:
                texts[source] = texts.get(source, "") + text
                if source not in sources:
                    sources.append(source)
            statuses = now
            shown.update(view())
        final = await runs.snapshot(run_id)
    legs = {leg["source"]: _as_interrupted(leg) if ctrl_c.pressed else leg for leg in final.get("legs", [])}
    shown_sources = [leg["source"] for leg in final.get("legs", [])] or sources
    console.print(render_columns(shown_sources, {}, legs, console=console))
    if not ctrl_c.pressed:
        console.print(summary_line(final), style="bold", markup=False, highlight=False)
    return final


def _live_status(status: str, text: str | None, interrupted: bool) -> str:
    if interrupted and status in ("pending", "running", "queued"):
        return "stopping"
    if status in ("pending", "running"):
        return "streaming" if text else "starting"
    return status


def _as_interrupted(leg: dict[str, Any]) -> dict[str, Any]:
    return {**leg, "status": "interrupted"} if leg.get("status") == "cancelled" else leg


async def _follow_plain(runs: Runs | RemoteRuns, run_id: str, sources: list[str]) -> dict[str, Any]:
    streamed = len(sources) == 1
    async for _source, text in runs.deltas(run_id):
        if streamed:
            sys.stdout.write(text)
            sys.stdout.flush()
    final = await runs.snapshot(run_id)
    if streamed:
        leg = (final.get("legs") or [{}])[0]
        text = leg.get("text") or ""
        sys.stdout.write("\n" if text and not text.endswith("\n") else "")
        if leg.get("error"):
            sys.stdout.write(f"{leg['error'].get('kind')}: {leg['error'].get('message')}\n")
    print_plain(final, texts_shown=streamed)
    return final

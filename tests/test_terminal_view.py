"""issue 27, item 5: the terminal view. Footers fit at 80-200 columns; a long answer scrolls its tail instead of being
cropped; every leg's status is live in every mode."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from rich.console import Console

from conftest import server_env
from llmmixer.orchestrator.live import CHROME_LINES, render_columns
from llmmixer.servers.emulators.server import EmulatorServer
from tmux_support import Tmux, needs_tmux

LEG = {"status": "done", "model": "claude-haiku-4-5-20251001", "ttft_ms": 571.2,
       "usage": {"output_tokens": 1234, "estimated": True}, "cost_usd": 0.000132}
FIGURES = ("claude-haiku-4-5-20251001", "ttft 571 ms", "1234 tok~", "$0.000132")


def _render(width: int, height: int, sources: list[str], texts: dict[str, str], legs: dict[str, dict],
            max_lines: int | None = None) -> str:
    console = Console(width=width, height=height, force_terminal=False)
    with console.capture() as capture:
        console.print(render_columns(sources, texts, legs, console=console, max_lines=max_lines))
    return capture.get()


@pytest.mark.parametrize("width", [80, 81, 99, 100, 120, 121, 150, 200])
@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_every_figure_of_every_leg_is_shown_whole(width: int, count: int) -> None:
    sources = [f"leg{i}" for i in range(count)]
    out = _render(width, 40, sources, {}, {s: LEG for s in sources})
    joined = out.replace("│", " ")  # a figure folded across lines would not be found whole
    for figure in FIGURES[1:]:
        assert joined.count(figure) == count, (figure, out)
    # A model id longer than the column folds onto the next line; read each panel's body back whole.
    bodies = [""] * count
    for line in out.splitlines():
        cells = line.split("│")[1::2]
        if len(cells) == count:
            for i, cell in enumerate(cells):
                bodies[i] += cell.strip()
    assert all(FIGURES[0] in body or joined.count(FIGURES[0]) == count for body in bodies), out
    assert all(len(line) <= width for line in out.splitlines())


@pytest.mark.parametrize(("width", "height"), [(80, 24), (120, 40), (200, 50)])
def test_a_tall_answer_shows_its_newest_lines_within_the_screen(width: int, height: int) -> None:
    text = "\n".join(f"line {i:03d} " + "word " * (i % 7) for i in range(300))
    sources = ["claude", "gpt"]
    out = _render(width, height, sources, {s: text for s in sources}, {}, max_lines=max(3, height - CHROME_LINES))
    lines = out.splitlines()
    assert len(lines) <= height - 1  # room for the summary line: nothing for the live view to crop
    assert out.count("line 299") == 2 and "line 000" not in out
    assert "..." not in out


LLMMIXER = str(Path(sys.executable).parent / "llmmixer")


@pytest.mark.e2e
@needs_tmux
def test_in_first_token_mode_the_losers_show_cancelled_while_the_winner_streams(
        tmp_path: Path, emu: EmulatorServer) -> None:
    emu.set_behaviour("anthropic", ttft_ms=0, inter_token_ms=80, tokens=300,
                      reply=" ".join(f"w{i:03d}" for i in range(300)))
    emu.set_behaviour("openai", ttft_ms=60_000, reply="never")
    with Tmux(tmp_path, server_env(emu, TERM="xterm-256color"), cols=120, rows=30) as term:
        term.run([LLMMIXER, "ask", "count", "--models", "claude,gpt", "--mode", "first-token"])
        # While claude still streams, gpt's panel already says it was cancelled (not "starting").
        screen = term.wait_for("gpt  cancelled")
        assert "w299" not in screen
        code, _ = term.wait_exit(timeout_s=120)
    assert code == 0

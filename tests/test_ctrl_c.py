"""issue 27, item 1: Ctrl-C in ``ask`` and ``chat`` keeps what streamed, in a real terminal (tmux)."""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import server_env
from llmmixer.orchestrator.ctrl_c import interrupted_line
from llmmixer.servers.emulators.server import EmulatorServer
from tmux_support import Tmux, needs_tmux

pytestmark = needs_tmux

LLMMIXER = str(Path(sys.executable).parent / "llmmixer")
# Numbered words stream one delta each, slowly enough that Ctrl-C lands mid-answer.
SLOW = {"ttft_ms": 50, "inter_token_ms": 60, "tokens": 400,
        "reply": " ".join(f"w{i:03d}" for i in range(400))}
FAST = {"ttft_ms": 0, "inter_token_ms": 0, "reply": "The second answer, whole."}


def _term(tmp_path: Path, emu: EmulatorServer, cols: int = 120) -> Tmux:
    return Tmux(tmp_path, server_env(emu, TERM="xterm-256color"), cols=cols, rows=40)


def test_ctrl_c_in_ask_keeps_the_text_and_says_what_it_cost(tmp_path: Path, emu: EmulatorServer) -> None:
    for vendor in ("anthropic", "openai"):
        emu.set_behaviour(vendor, **SLOW)
    with _term(tmp_path, emu) as term:
        term.run([LLMMIXER, "ask", "count", "--models", "claude,gpt", "--mode", "all"])
        term.wait_for("w012", after=1)  # both legs are streaming
        term.keys("C-c")
        code, screen = term.wait_exit()
    assert code == 130
    tail = screen[screen.index("w012"):]  # the final panels, printed after the live view ended
    assert "interrupted" in tail
    line = next(line for line in screen.splitlines() if line.startswith("interrupted:"))
    assert "cancelled claude" in line and "gpt" in line and "cost $" in line
    # Every word streamed before the key press is still on screen, in order, in the final panels.
    final_panels = screen[:screen.index(line)]
    assert final_panels.count("w000") >= 2  # one per leg
    assert "w012" in final_panels
    # The answers were really cut: the emulator saw both streams close before their end.
    records = emu.requests()
    assert {r["vendor"] for r in records} >= {"anthropic", "openai"}
    assert all(r.get("closed_at") for r in records)
    assert "w399" not in screen


def test_ctrl_c_in_chat_stops_the_answer_and_keeps_the_session(tmp_path: Path, emu: EmulatorServer) -> None:
    emu.set_behaviour("anthropic", **SLOW)
    with _term(tmp_path, emu) as term:
        term.run([LLMMIXER, "chat", "--models", "claude"])
        term.wait_for("> ")
        term.send_line("count for me")
        term.wait_for("w010")
        term.keys("C-c")
        term.wait_for("interrupted:")
        term.wait_for("> ", after=1)  # the prompt is back: the session goes on
        emu.set_behaviour("anthropic", **FAST)
        term.send_line("and now?")
        screen = term.wait_for("The second answer, whole.")
        assert "w010" in screen  # the interrupted answer is still on screen above it
        term.wait_for("> ", after=2)
        term.keys("C-c")  # Ctrl-C at the prompt leaves
        code, screen = term.wait_exit()
    assert code == 0
    first, second = emu.requests("anthropic")
    assert first["outcome"] != "completed" and second["outcome"] == "completed"


def test_ctrl_d_leaves_chat(tmp_path: Path, emu: EmulatorServer) -> None:
    emu.set_behaviour("anthropic", **FAST)
    with _term(tmp_path, emu) as term:
        term.run([LLMMIXER, "chat", "--models", "claude"])
        term.wait_for("> ")
        term.send_line("hello")
        term.wait_for("The second answer, whole.")
        term.wait_for("> ", after=1)
        term.keys("C-d")
        code, screen = term.wait_exit()
    assert code == 0


def test_the_interrupted_line_names_each_cancelled_leg_and_the_cost() -> None:
    final = {"legs": [{"source": "claude", "status": "cancelled", "text": "abc",
                       "usage": {"output_tokens": 1, "estimated": True}},
                      {"source": "gpt", "status": "cancelled", "text": ""},
                      {"source": "gemini", "status": "done", "text": "whole"}],
             "total_cost_usd": 0.000041, "total_cost_partial": False}
    line = interrupted_line(final)
    assert line.startswith("interrupted: cancelled claude (3 chars kept), gpt;")
    assert "finished before: gemini" in line
    assert "cost $0.000041 (estimated from the text streamed)" in line

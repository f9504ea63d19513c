"""Each real coding CLI driven interactively through the PTY runner, the way a person would through start / send /
read: its trust or first-run prompts answered by auto_respond rules matched on the rendered screen, a question typed,
the answer read back from the screen. Inside the loopback-only namespace, on the emulators."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from llmmixer.orchestrator.agents.launch import LegLayout, endpoint_for, leg_environment, prepare_home, secrets_for
from llmmixer.orchestrator.agents.processes import leg_processes
from llmmixer.orchestrator.agents.spec import AgentSpec, find_command
from tests.agent_support import AgentWorld, agent_world, needs_clis
from tests.conftest import FAKE_KEYS

__all__ = ["agent_world"]

pytestmark = [needs_clis, pytest.mark.timeout(600), pytest.mark.anyio]

# What each CLI asks on a first start in a fresh HOME, and the keys that answer it; then what its idle prompt shows.
FIRST_RUN: dict[str, tuple[list[dict[str, Any]], str]] = {
    "claude-code": ([{"pattern": r"Yes, I trust this folder", "send": "\r", "delay_ms": 500},
                     {"pattern": r"Do you want to use this API key", "send": "1", "delay_ms": 500}],
                    "? for shortcuts"),
    "codex": ([{"pattern": r"Trust this folder\?", "send": "\r", "delay_ms": 500}], "Ask Codex to do anything"),
    # Started without GEMINI_API_KEY, it asks for one (typed like a password: events keep only its length).
    "gemini-cli": ([{"pattern": r"Enter Gemini API Key", "send": FAKE_KEYS["GEMINI_API_KEY"], "delay_ms": 800},
                    {"pattern": r"Press Enter to submit", "send": "\r", "delay_ms": 500}],
                   "Type your message"),
}
REPLY = "Hello from the interactive emulator, word by word."
# Codex's TUI fetches a tip from GitHub on every interactive start, with no setting to stop it (codex-rs/tui
# `tooltips::announcement::prewarm`); `codex exec`, which agent legs use, does not. Inside the namespace the lookup
# gets NXDOMAIN and nothing leaves; any other attempt still fails the test.
UNAVOIDABLE = {"codex": frozenset({"raw.githubusercontent.com"})}


def _structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return result.structured_content


def _layout(agent: str, tmp: Path) -> tuple[str, LegLayout, dict[str, Any]]:
    """The command, its leg layout, and the start call's env / secrets / writable, as an agent leg prepares them."""
    spec = AgentSpec.default(agent)
    adapter = spec.adapter()
    layout = LegLayout(root=tmp / agent, leg_id=f"interactive-{agent}-{os.getpid()}")
    layout.work.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(layout.work)], check=True)
    environ = {**os.environ, **FAKE_KEYS}
    binary = find_command(spec)
    base_url = endpoint_for(adapter, spec, environ)
    prepare_home(adapter, spec, layout, base_url=base_url)
    extras: dict[str, Any] = {"env": leg_environment(adapter, spec, layout, base_url=base_url, binary=binary),
                              "writable": [str(layout.work / ".git")]}
    if agent != "gemini-cli":  # started without GEMINI_API_KEY, Gemini CLI's first-run dialog asks for one
        extras["secrets"] = secrets_for(adapter, environ)
    return f"cd {layout.work} && exec {binary}", layout, extras


@pytest.mark.parametrize("agent", list(FIRST_RUN))
async def test_an_interactive_start_answers_first_run_prompts_and_shows_the_answer(
        agent: str, agent_world: AgentWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mcp import Client, StdioServerParameters

    world = agent_world
    world.reset()
    world.emulator.set_behaviour({"claude-code": "anthropic", "codex": "openai", "gemini-cli": "gemini"}[agent],
                                 reply=REPLY)
    for name, value in world.emulator.env.items():
        monkeypatch.setenv(name, value)
    command, layout, extras = _layout(agent, tmp_path)
    rules, idle = FIRST_RUN[agent]
    params = StdioServerParameters(command=world.ns.exec_prefix[0],
                                   args=[*world.ns.exec_prefix[1:], sys.executable, "-m",
                                         "llmmixer.servers.pty_runner"], env=world.env(),
                                   cwd=str(tmp_path))  # the runner's roots: where the legs live
    try:
        with anyio.fail_after(480):
            async with Client(params) as client:
                started = _structured(await client.call_tool("start", {
                    "command": command, "cwd": str(layout.root), "cols": 110, "rows": 34, "auto_respond": rules,
                    "screen": True,
                    **extras}))
                sid = started["session_id"]
                # The first time it is said to wait for input, something is on the screen: start-up silence
                # does not count.
                first = _structured(await client.call_tool("wait", {"session_id": sid, "until": "input",
                                                                     "timeout_s": 120, "screen": True}))
                assert first["exited"] is False and first["screen"].strip(), first["screen"]
                events: list[dict[str, Any]] = list(first["events"])
                screen = first["screen"]
                while idle not in screen or len([e for e in events if e["type"] == "pty.waiting"]) < len(rules):
                    view = _structured(await client.call_tool("read", {"session_id": sid, "wait_s": 2,
                                                                        "screen": True}))
                    assert not view["exited"], view["screen"]
                    events += view["events"]
                    screen = view["screen"]
                answered = [e["data"]["pattern"] for e in events if e["type"] == "pty.waiting"]
                assert answered == [rule["pattern"] for rule in rules]
                await client.call_tool("wait", {"session_id": sid, "until": "input", "timeout_s": 60})
                # Text, then Enter a moment later: typed at once, a TUI would take both as one paste.
                _structured(await client.call_tool("send", {"session_id": sid, "text": "say hello",
                                                            "keys": ["enter"]}))
                while "word by word" not in screen:
                    view = _structured(await client.call_tool("read", {"session_id": sid, "wait_s": 2,
                                                                        "screen": True}))
                    assert not view["exited"], view["screen"]
                    screen = view["screen"]
                # Rendered, not stripped: the words keep their spaces (TUIs draw spaces as cursor moves), wherever
                # the TUI wrapped the line.
                assert "Hello from the interactive emulator, word by word." in " ".join(screen.split())
                await client.call_tool("kill", {"session_id": sid, "signal": "TERM"})
    finally:
        for pid in leg_processes(layout.leg_id):  # e.g. Codex's daemon, which leaves the process group
            os.kill(pid, signal.SIGKILL)
    prompts = [r for r in world.emulator.requests() if r["method"] == "POST" and r["vendor"] != "unserved"]
    assert prompts, "the question reached the emulated model"
    world.assert_stayed_home(UNAVOIDABLE.get(agent, frozenset()))

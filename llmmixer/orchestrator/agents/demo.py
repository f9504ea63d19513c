"""``llmmixer demo agents``: the three installed coding CLIs race on a scripted task in a throwaway repository, on
the bundled emulators: no key, no network.

The task: ``greet.py`` says "Hello, wrold!"; fix the typo. ``--check`` runs the script and compares its output. The
emulated models play three different agents: Claude Code's "fixes" the wrong thing (its check fails), Codex's fixes
the typo (its check passes: it wins), and Gemini CLI's takes its time in a long command, so it is still working when
the race is decided and is stopped, its whole process tree with it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ...servers.core.workspace import ROOTS_ENV

__all__ = ["run_agents_demo", "DEMO_SCRIPTS", "DEMO_CHECK"]

FIX = "sed -i s/wrold/world/ greet.py && python3 greet.py"
DEMO_CHECK = 'test "$(python3 greet.py)" = "Hello, world!"'
DEMO_TASK = "greet.py prints a typo. Fix it so it prints exactly: Hello, world!"
# (tool, argument, command) per CLI: each CLI's own shell tool.
DEMO_SCRIPTS: dict[str, tuple[str, str, str, str]] = {
    "claude-code": ("anthropic", "Bash", "command", "sed -i s/Hello/Howdy/ greet.py && python3 greet.py"),
    "codex": ("openai", "exec_command", "cmd", FIX),
    "gemini-cli": ("gemini", "run_shell_command", "command", "sleep 300; " + FIX),
}
DEMO_KEYS = {"ANTHROPIC_API_KEY": "demo", "OPENAI_API_KEY": "demo", "GEMINI_API_KEY": "demo"}


def _turns(agent: str) -> tuple[str, list[dict[str, Any]]]:
    vendor, tool, argument, command = DEMO_SCRIPTS[agent]
    extra = {"description": "fix the greeting"} if agent == "claude-code" else {}
    return vendor, [{"say": "Let me fix that.", "tool": tool, "args": {argument: command, **extra}},
                    {"say": f"Fixed: {command.split(' && ')[0]}"}]


def _throwaway_repo() -> Path:
    repo = Path(tempfile.mkdtemp(prefix="llmmixer-demo-agents-"))
    (repo / "greet.py").write_text('print("Hello, wrold!")\n')
    git = ["git", "-C", str(repo), "-c", "user.email=demo@llmmixer.invalid", "-c", "user.name=llmmixer demo"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "A greeting with a typo"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    return repo


async def run_agents_demo(as_json: bool) -> int:
    from ...servers.core.errors import NotFoundError
    from ...servers.emulators.server import EmulatorServer
    from ..config import Config, default_servers
    from ..runs import Runs
    from ..stores import open_store
    from . import AgentRequest, AgentSpec, find_command
    from .view import follow_agents, summary

    installed = []
    for agent in DEMO_SCRIPTS:
        try:
            find_command(AgentSpec.default(agent))
            installed.append(agent)
        except NotFoundError as error:
            print(f"skipping {agent}: {error.message}", file=sys.stderr)
    if not installed:
        print("error: none of the coding CLIs is installed", file=sys.stderr)
        return 1
    repo = _throwaway_repo()
    try:
        with EmulatorServer(seed=1) as emulator:
            for agent in installed:
                vendor, turns = _turns(agent)
                emulator.set_script(vendor, turns)
            # The throwaway repository is a root of the runner: its legs' git admin directories are in it.
            os.environ.update({**emulator.env, **DEMO_KEYS, ROOTS_ENV: str(repo)})
            request = AgentRequest(task=DEMO_TASK, agents=installed, check=DEMO_CHECK, mode="race", cwd=str(repo))
            async with Runs(Config(servers=default_servers()), open_store("memory")) as runs:
                if not as_json:
                    print(f"Emulated vendors on {emulator.root}; a throwaway repository in {repo}.\n"
                          f"Racing {', '.join(installed)} on: {DEMO_TASK}\n", file=sys.stderr)
                run_id = await runs.start_agents(request)
                final = await follow_agents(runs, run_id, out=open(os.devnull, "w") if as_json else sys.stderr)
    finally:
        shutil.rmtree(repo, ignore_errors=True)
    if as_json:
        keys = ("mode", "winner", "diff", "applied", "legs", "total_cost_usd", "duration_ms", "run_id", "status")
        print(json.dumps({k: final[k] for k in keys if k in final}, ensure_ascii=False, indent=2))
    else:
        print(summary(final))
        if final.get("diff"):
            print(f"\nthe winner's diff:\n{final['diff']}")
    return 0 if final.get("winner") else 1

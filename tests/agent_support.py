"""Shared by the tests that drive the real coding CLIs: a loopback-only network namespace with the emulators in it,
scripted tasks in each CLI's own tool vocabulary, throwaway repositories, and a way to run ``llmmixer`` inside."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmmixer.servers.emulators.server import EmulatorServer, free_port
from tests.conftest import FAKE_KEYS
from tests.netns_support import LoopbackNetns, netns_available

__all__ = ["LLMMIXER", "NODE_BIN", "SHELL_TOOLS", "VENDOR_OF", "shell_turns", "make_repo", "AgentWorld", "agent_world",
           "needs_clis"]

NODE_BIN = Path(__file__).resolve().parents[1] / ".ci" / "node" / "node_modules" / ".bin"
# The tool each CLI's model calls to run a shell command, and the argument holding the command.
SHELL_TOOLS = {"claude-code": ("Bash", "command"), "codex": ("exec_command", "cmd"),
               "gemini-cli": ("run_shell_command", "command")}
VENDOR_OF = {"claude-code": "anthropic", "codex": "openai", "gemini-cli": "gemini"}
LLMMIXER = str(Path(sys.executable).with_name("llmmixer"))

needs_clis = pytest.mark.skipif(
    not all((NODE_BIN / name).exists() for name in ("claude", "codex", "gemini")) or not netns_available(),
    reason="needs the three CLIs under .ci/node (see .ci/run) and root for `ip netns`")


def shell_turns(agent: str, command: str, say: str = "Done.") -> list[dict[str, object]]:
    tool, argument = SHELL_TOOLS[agent]
    extra = {"description": "scripted step"} if agent == "claude-code" else {}
    return [{"tool": tool, "args": {argument: command, **extra}}, {"say": say}]


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "edit.txt").write_text("old\n")
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "-C", str(path)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    return path


class AgentWorld:
    def __init__(self, ns: LoopbackNetns, emulator: EmulatorServer, tmp: Path) -> None:
        self.ns = ns
        self.emulator = emulator
        self.tmp = tmp
        self.legs_dir = tmp / "legs"

    def reset(self) -> None:
        """A fresh start for one test: default emulator behaviours, no scripts or records, no escapes noted."""
        self.emulator.reset()
        self.ns.clear()

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in FAKE_KEYS and k != "GOOGLE_API_KEY"}
        env.update(self.emulator.env)
        env.update(FAKE_KEYS)
        env["LLMMIXER_AGENTS_DIR"] = str(self.legs_dir)
        env["PATH"] = os.pathsep.join([str(NODE_BIN), env.get("PATH", "")])
        env.update(extra)
        return env

    def command(self, *argv: str) -> list[str]:
        """``argv`` run inside the namespace."""
        return [*self.ns.exec_prefix, *argv]

    def llmmixer(self, *args: str, cwd: Path, timeout: float = 600,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(LLMMIXER, *args), cwd=cwd, env=self.env(**(env or {})),
                              capture_output=True, text=True, timeout=timeout)

    def assert_stayed_home(self, allowed: frozenset[str] = frozenset()) -> None:
        """Nothing left loopback (but for ``allowed`` DNS names, which the namespace answers NXDOMAIN), and every
        request went to an endpoint the emulators serve."""
        escapes = [e for e in self.ns.escapes() if e.removeprefix("dns ").rstrip(".") not in allowed]
        assert escapes == [], escapes
        unserved = [(r["method"], r["path"]) for r in self.emulator.requests() if r["outcome"] == "unserved"]
        assert unserved == [], unserved


@pytest.fixture(scope="module")
def agent_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentWorld]:
    port = free_port()
    with LoopbackNetns(f"agents-{os.getpid()}") as ns:
        with EmulatorServer(port=port, seed=3, extra_sockets=[ns.listener(port)]) as emulator:
            yield AgentWorld(ns, emulator, tmp_path_factory.mktemp("agents"))

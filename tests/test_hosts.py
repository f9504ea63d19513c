"""Issue 25: the three CLI hosts (Claude Code, Codex, Gemini CLI) run ``llmmixer mcp`` from the config that
``llmmixer config HOST --write`` merged into their own config file, with a scripted model, offline (inside the
loopback-only namespace of ``agent_support``).

For each host: the tools are listed (the model is offered them), a call is made and its result reaches the model
intact, an error's kind reaches the model (as the plain first line, also through Gemini CLI, which turns a JSON
first block into structured content), and a cancel (the host's own tool timeout) stops the run end to end: the
vendor stream behind it closes. Codex runs at its defaults (no approval flags): ``ask`` is read-only, so it runs.

Keys travel the way the written config says: Claude Code passes its environment on; Codex passes only what
``env_vars`` names; Gemini CLI strips ``*_API_KEY`` unless ``env`` names it.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from llmmixer.orchestrator.agents.base import AgentCLI
from llmmixer.orchestrator.agents.claude_code import ClaudeCode
from llmmixer.orchestrator.agents.codex import Codex
from llmmixer.orchestrator.agents.gemini_cli import GeminiCLI
from tests.agent_support import LLMMIXER, VENDOR_OF, AgentWorld, agent_world, needs_clis

__all__ = ["agent_world"]

pytestmark = [needs_clis, pytest.mark.timeout(900)]

CLIS: dict[str, AgentCLI] = {"claude-code": ClaudeCode(), "codex": Codex(), "gemini-cli": GeminiCLI()}
# How each host names an MCP tool to its model.
TOOL_NAME = {"claude-code": "mcp__llmmixer__{}", "codex": "mcp__llmmixer__{}", "gemini-cli": "mcp_llmmixer_{}"}
# The ask leg runs on another vendor than the host's own, so its behaviours never touch the host's model.
LEG_OF = {"claude-code": ("gpt", "openai"), "codex": ("gemini", "gemini"), "gemini-cli": ("claude", "anthropic")}
CONFIG_FILE = {"claude-code": ".claude.json", "codex": ".codex/config.toml", "gemini-cli": ".gemini/settings.json"}
REPLY = "Forty-two, from the mixer."
# Turns a host's model takes before ours: none. Claude Code's entry says alwaysLoad, so its first turn waits for our
# server, up to the MCP_CONNECT_TIMEOUT_MS the written config sets (see the first-turn test at the end).
FIRST_TURNS: dict[str, list[dict[str, Any]]] = {}


class Host:
    """One CLI host in a fresh HOME, configured by ``llmmixer config HOST --write``."""

    def __init__(self, world: AgentWorld, name: str, root: Path) -> None:
        self.world, self.name, self.cli = world, name, CLIS[name]
        self.home = root / "home"
        self.work = root / "work"
        self.work.mkdir(parents=True)
        vendor = VENDOR_OF[name]
        self.base_url = world.emulator.env.get(self.cli.base_url_var) or world.emulator.env.get(
            {"anthropic": "ANTHROPIC_BASE_URL", "openai": "OPENAI_BASE_URL", "gemini": "GOOGLE_GEMINI_BASE_URL"}[vendor])
        for relative, content in self.cli.home_files(self.home, base_url=self.base_url, model=None).items():
            path = self.home / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            if name == "codex":  # Codex at its defaults: no approval policy or sandbox of ours
                content = "\n".join(line for line in content.splitlines()
                                    if not line.startswith(("approval_policy", "sandbox_mode")))
            path.write_text(content, encoding="utf-8")

    def env(self) -> dict[str, str]:
        home = self.home
        return self.world.env(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
                              XDG_CACHE_HOME=str(home / ".cache"), XDG_DATA_HOME=str(home / ".local" / "share"),
                              XDG_STATE_HOME=str(home / ".local" / "state"), LLMMIXER_STORE="memory",
                              **self.cli.environment(home, base_url=self.base_url))

    @property
    def config_path(self) -> Path:
        return self.home / CONFIG_FILE[self.name]

    def configure(self) -> None:
        """``llmmixer config HOST --write`` into the host's own file (keys by name only)."""
        done = subprocess.run([LLMMIXER, "config", self.name, "--write", "--servers", "orchestrator",
                               "--config-path", str(self.config_path)], env=self.env(), capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr

    def argv(self, task: str) -> list[str]:
        if self.name == "codex":  # its defaults: approvals as shipped
            return ["codex", "exec", "--json", "--skip-git-repo-check", task]
        return [self.cli.binary, *self.cli.argv(task, model=None, extra=[])]

    def run(self, task: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.world.command(*self.argv(task)), cwd=self.work, env=self.env(),
                              capture_output=True, text=True, timeout=timeout)

    def tool(self, name: str) -> str:
        return TOOL_NAME[self.name].format(name)


def _outputs(world: AgentWorld, vendor: str) -> list[str]:
    return [r["output"] for r in world.emulator.tool_results(vendor)]


def _declared_tools(world: AgentWorld, vendor: str) -> set[str]:
    """Every tool name the host offered its model, from the requests the emulator recorded."""
    names: set[str] = set()
    for record in world.emulator.requests(vendor):
        body = record.get("body")
        text = json.dumps(body) if body is not None else ""
        names.update(re.findall(r'"name": "([A-Za-z0-9_\-]+)"', text))
    return names


@pytest.mark.parametrize("name", list(CLIS))
def test_a_cli_host_lists_calls_reads_errors_and_cancels(agent_world: AgentWorld, tmp_path: Path, name: str) -> None:
    world = agent_world
    world.reset()
    host = Host(world, name, tmp_path)
    vendor = VENDOR_OF[name]
    leg, leg_vendor = LEG_OF[name]
    host.configure()

    # A call, then an error of the mixer's own (a rate limit with a retry delay, from the leg's vendor).
    world.emulator.set_behaviour(leg_vendor, reply=REPLY)
    # The leg's adapter retries a 429 twice (waiting the 2 s it is told) before it gives up.
    world.emulator.queue(leg_vendor, {"reply": REPLY}, *[{"error": {"status": 429, "retry_after_s": 2}}] * 3)
    first = FIRST_TURNS.get(name, [])
    # Codex at its defaults also gets a destructive call: refused for want of approval, and nothing runs.
    marker = tmp_path / "ran"
    refused = [{"tool": host.tool("run_command"), "args": {"command": f"touch {marker}"}}] if name == "codex" else []
    world.emulator.set_script(vendor, [
        *first,
        {"tool": host.tool("ask"), "args": {"prompt": "What is six times seven?", "models": [leg]}},
        {"tool": host.tool("ask"), "args": {"prompt": "And again?", "models": [leg]}},
        *refused,
        {"say": "All done."},
    ])
    done = host.run("Ask the mixer, twice.")
    outputs = _outputs(world, vendor)[len(first):]
    assert len(outputs) == 2 + len(refused), (outputs, done.stdout[-3000:], done.stderr[-3000:])
    if refused:
        assert "approval" in outputs[2] and not marker.exists(), outputs[2]
    declared = _declared_tools(world, vendor)
    assert {"ask", "job", "cancel"} <= declared or host.tool("ask") in declared, declared  # Codex: namespaced
    assert REPLY in outputs[0], outputs[0]
    # The model reads the kind and the delay in the first line the host hands it, not an opaque -32602.
    assert "rate_limit: " in outputs[1] and "retry after 2 s" in outputs[1], outputs[1]
    assert "-32602" not in outputs[1] and "does not match" not in outputs[1], outputs[1]
    assert done.returncode == 0, done.stderr[-2000:]

    # A cancel: the user interrupts the host (SIGINT) while a call waits on a leg that hangs mid-stream; the run
    # is cancelled end to end, so the leg's vendor stream closes, and no server of ours outlives the host.
    world.reset()
    world.emulator.set_behaviour(leg_vendor, reply=REPLY, tokens=20, hang_after_tokens=2)
    world.emulator.set_script(vendor, [
        *first,
        {"tool": host.tool("ask"), "args": {"prompt": "Think long.", "models": [leg], "wait_s": 120}},
        {"say": "Gave up."},
    ])
    process = subprocess.Popen(world.command(*host.argv("Ask the mixer something slow.")), cwd=host.work,
                               env=host.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def streaming() -> list[dict[str, Any]]:
            return [r for r in world.emulator.requests(leg_vendor) if r["tokens_sent"] >= 2]

        wait_for(streaming, timeout_s=240)
        servers = _our_servers(process.pid)
        assert servers, "no llmmixer server under the host"
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    wait_for(lambda: all(r["closed_at"] is not None for r in streaming()), timeout_s=30)
    wait_for(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in servers), timeout_s=30)
    world.assert_stayed_home()


def _our_servers(pid: int) -> list[psutil.Process]:
    """The llmmixer processes (the orchestrator and the adapters it started) under the host's process."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [c for c in children if "llmmixer" in " ".join(c.cmdline())]


def wait_for(probe: Any, timeout_s: float) -> Any:
    """Poll state another process owns (the emulator's records, the host's children): nothing to await across them."""
    deadline = time.monotonic() + timeout_s
    while not (value := probe()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


FIRST_TURN_RUNS = 10
FIRST_TURN_AT_ONCE = 2  # concurrent Claude Code processes: a loaded machine is the condition the claim is about


def test_claude_code_offers_our_tools_in_its_first_turn(agent_world: AgentWorld, tmp_path: Path) -> None:
    """Issue 22: Claude Code ``-p`` with the config ``llmmixer config claude-code --write`` gives it, and nothing
    else (Claude Code's own defaults otherwise), offers our tools in its first model turn in at least 9 of 10 runs:
    each run a fresh Claude Code and a fresh ``llmmixer mcp``. A miss is a first turn that offers only Claude Code's
    own tools (and ``WaitForMcpServers``), because the server was not up when the turn was built: with Claude
    Code's default wait (5 s) a loaded machine missed in every run, so the config raises it (its ``env``)."""
    world = agent_world
    world.reset()
    world.emulator.set_script("anthropic", [{"say": "Done."}])
    hosts = []
    for index in range(FIRST_TURN_RUNS):
        host = Host(world, "claude-code", tmp_path / f"run{index}")
        host.configure()
        hosts.append(host)
    for start in range(0, FIRST_TURN_RUNS, FIRST_TURN_AT_ONCE):
        batch = [subprocess.Popen(world.command(*host.argv(f"{_run_mark(index)} Say done.")), cwd=host.work,
                                  env=host.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for index, host in enumerate(hosts[start:start + FIRST_TURN_AT_ONCE], start)]
        for process in batch:
            try:
                process.wait(timeout=300)
            finally:
                if process.poll() is None:
                    process.kill()
    requests = world.emulator.requests("anthropic")
    offered = {index: _first_turn_tools(requests, _run_mark(index)) for index in range(FIRST_TURN_RUNS)}
    ours = [index for index, names in offered.items() if names is not None and "mcp__llmmixer__ask" in names]
    missed = {index: sorted(n for n in names or [] if n.startswith("mcp__") or "Mcp" in n)
              for index, names in offered.items() if index not in ours}
    assert len(ours) >= 9, f"{len(ours)} of {FIRST_TURN_RUNS} first turns offered our tools; the others: {missed}"


def _run_mark(index: int) -> str:
    return f"[first-turn run {index}]"


def _first_turn_tools(requests: list[dict[str, Any]], mark: str) -> set[str] | None:
    """The tools offered in the first model turn of the run whose prompt carries ``mark`` (None: no turn at all).
    A turn is a request that offers tools: title and quota requests offer none."""
    for record in sorted(requests, key=lambda r: r["id"]):
        body = record.get("body")
        if isinstance(body, dict) and body.get("tools") and mark in json.dumps(body.get("messages")):
            return {str(tool.get("name")) for tool in body["tools"]}
    return None

"""The real Claude Code, Codex and Gemini CLI with ``llmmixer serve`` as their model, inside a network namespace that
has only loopback. Each does a task that needs a shell tool call, and the leg that wins is of another vendor than
the CLI's own dialect: the CLI's tool definitions go to that vendor translated, and its call comes back translated.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmmixer.servers.emulators.server import free_port
from tests.agent_support import LLMMIXER, SHELL_TOOLS, AgentWorld, agent_world, make_repo, needs_clis
from tests.conftest import FAKE_KEYS

__all__ = ["agent_world"]

pytestmark = [needs_clis, pytest.mark.timeout(900)]

TOKEN = "gateway-cli-token-0123456789"
TASK_COMMAND = "echo created > created.txt && echo ok-from-tool"
CHECK = "test -f created.txt"
# CLI -> (its endpoint variable and the URL path under serve, the virtual model, the vendor whose leg wins)
CASES = {
    "claude-code": ("ANTHROPIC_BASE_URL", "", "race/gpt,gemini", "openai"),
    "codex": ("OPENAI_BASE_URL", "/v1", "race/claude", "anthropic"),
    "gemini-cli": ("GOOGLE_GEMINI_BASE_URL", "", "race/gpt", "openai"),
}
KEYS = {"claude-code": "ANTHROPIC_API_KEY", "codex": "OPENAI_API_KEY", "gemini-cli": "GEMINI_API_KEY"}


@pytest.fixture(scope="module")
def served(agent_world: AgentWorld) -> Iterator[str]:
    """``llmmixer serve`` inside the namespace (its adapters on the emulators), with a token; its base URL."""
    port = free_port()
    env = {**agent_world.env(), "LLMMIXER_TOKEN": TOKEN, "LLMMIXER_STORE": "memory"}
    process = subprocess.Popen(agent_world.command(LLMMIXER, "serve", "--port", str(port)), env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               cwd=str(agent_world.tmp))
    try:
        assert process.stdout is not None
        for line in process.stdout:  # the service prints its address once it listens
            if f":{port}" in line:
                break
        else:
            raise AssertionError("llmmixer serve did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.parametrize("cli", list(CASES))
def test_each_cli_completes_a_shell_task_on_a_leg_of_another_vendor(agent_world: AgentWorld, served: str,
                                                                     tmp_path: Path, cli: str) -> None:
    world = agent_world
    world.reset()
    variable, path, model, winner_vendor = CASES[cli]
    tool, argument = SHELL_TOOLS[cli]
    extra = {"description": "scripted step"} if cli == "claude-code" else {}
    # The winning vendor's script calls the CLI's own shell tool: it is in the tools the CLI declared.
    world.emulator.set_script(winner_vendor, [{"tool": tool, "args": {argument: TASK_COMMAND, **extra}},
                                              {"say": f"{cli} finished through the gateway."}])
    if "gemini" in model and winner_vendor != "gemini":
        world.emulator.set_behaviour("gemini", hang=True)  # the loser of the race
    config = tmp_path / "llmmixer.json"
    config.write_text(json.dumps({"agents": {cli: {"model": model, "env": {variable: served + path}}}}))
    repo = make_repo(tmp_path / "repo")
    env = {**world.env(), KEYS[cli]: TOKEN}
    env = {k: v for k, v in env.items() if k not in FAKE_KEYS or k == KEYS[cli]}
    done = subprocess.run(world.command(LLMMIXER, "agent", "Create created.txt.", "--check", CHECK, "--json",
                                        "--agents", cli, "--config", str(config)),
                          cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert done.stdout.strip(), done.stderr
    result = json.loads(done.stdout)
    [leg] = result["legs"]
    assert leg["status"] == "won", (leg, done.stderr[-3000:])
    assert leg["check"]["exit_code"] == 0
    # The command really ran (in the agent's worktree), and its output went back to the winning vendor's leg as a
    # tool result in that vendor's own dialect.
    outputs = [r for r in world.emulator.tool_results(winner_vendor) if "ok-from-tool" in r["output"]]
    assert outputs, world.emulator.tool_results()
    assert outputs[0]["name"] in (tool, None)
    # The CLI's own vendor was never asked for the task: the calls came from the gateway's legs.
    scripted = [r for r in world.emulator.requests(winner_vendor) if r["method"] == "POST"]
    assert len(scripted) >= 2
    assert os.path.exists(repo)
    world.assert_stayed_home(allowed=frozenset({"downloads.claude.ai", "github.com", "registry.npmjs.org"}))


def test_agent_model_points_the_cli_at_the_mixers_own_gateway(agent_world: AgentWorld, tmp_path: Path) -> None:
    """``llmmixer agent --model race/gpt``: the agent's model is the mixer's own gateway (here the command's own
    process serves it, as no resident service runs), so Claude Code's calls are answered by the GPT leg."""
    world = agent_world
    world.reset()
    tool, argument = SHELL_TOOLS["claude-code"]
    world.emulator.set_script("openai", [{"tool": tool, "args": {argument: TASK_COMMAND,
                                                                 "description": "scripted step"}},
                                         {"say": "done through the mixer's gateway"}])
    repo = make_repo(tmp_path / "repo")
    done = world.llmmixer("agent", "Create created.txt.", "--check", CHECK, "--json", "--agents", "claude-code",
                          "--model", "race/gpt", cwd=repo)
    assert done.stdout.strip(), done.stderr
    [leg] = json.loads(done.stdout)["legs"]
    assert leg["status"] == "won", (leg, done.stderr[-3000:])
    assert any("ok-from-tool" in r["output"] for r in world.emulator.tool_results("openai"))
    # Claude Code spoke Anthropic's dialect to the gateway, never to the Anthropic emulator.
    assert not [r for r in world.emulator.requests("anthropic") if r["method"] == "POST"]

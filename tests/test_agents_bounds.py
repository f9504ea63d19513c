"""``llmmixer agent`` within bounds, with the real CLIs on the emulators: legs that start from the user's
uncommitted work without touching it, an agents' directory inside the repository that ``git status`` never sees,
a file that is not UTF-8 in a leg's diff, per-leg resource limits, and a cost cap that stops a race."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import anyio
import pytest

from tests.agent_support import LLMMIXER, AgentWorld, agent_world, make_repo, needs_clis, shell_turns

__all__ = ["agent_world"]
T = TypeVar("T")

pytestmark = [needs_clis, pytest.mark.timeout(900)]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def _user_state(repo: Path) -> dict[str, str]:
    """What the user's repository shows of itself: branch, HEAD, index, refs, status."""
    return {"branch": _git(repo, "symbolic-ref", "HEAD"), "head": _git(repo, "rev-parse", "HEAD"),
            "index": _git(repo, "ls-files", "--stage"), "refs": _git(repo, "for-each-ref"),
            "status": _git(repo, "status", "--porcelain", "--untracked-files=all")}


async def _wait_for(found: Callable[[], list[T]], process: subprocess.Popen[str], timeout: float = 300) -> list[T]:
    """What ``found()`` finds, once it finds something, while ``process`` (the run) is still going."""
    with anyio.fail_after(timeout):
        while not (items := found()):
            if process.poll() is not None:
                out, err = process.communicate()
                pytest.fail(f"the run ended first: {out[-3000:]}\n{err[-3000:]}")
            await anyio.sleep(0.1)
    return items


def _hold(agent: str, then: str) -> list[dict[str, object]]:
    """``then``, once the test has let the leg go (a ``go`` file in its worktree)."""
    return shell_turns(agent, f"touch started; while [ ! -f go ]; do sleep 0.1; done; rm -f started go; {then}")


@pytest.mark.anyio
async def test_base_worktree_starts_from_uncommitted_work_and_git_status_stays_clean(
        agent_world: AgentWorld, tmp_path: Path) -> None:
    """--base worktree: the legs see the user's uncommitted edit and untracked file (through a commit no ref, HEAD
    or index ever sees); the agents' directory lives inside the repository and `git status` stays as the user left
    it during and after the run; a leg writes a Latin-1 file and its diff still comes back (and applies exactly)."""
    world = agent_world
    world.reset()
    task = "sed -i s/old/new/ edit.txt && printf 'caf\\351\\n' > latin1.txt"
    # Claude Code holds on in its tool until the test has looked at the user's repository mid-run.
    world.emulator.set_script("anthropic", _hold("claude-code", task))
    world.emulator.set_script("openai", shell_turns("codex", task))
    repo = make_repo(tmp_path / "repo")
    (repo / "edit.txt").write_text("old\nmine\n")  # a tracked change, not committed
    (repo / "notes.txt").write_text("untracked\n")  # an untracked file
    legs_dir = repo / ".llmmixer-legs"  # the agents' directory inside the repository
    before = _user_state(repo)
    check = "grep -qx mine edit.txt && grep -qx untracked notes.txt && grep -qx new edit.txt"
    command = world.command(LLMMIXER, "agent", "Change old to new.", "--check", check, "--agents", "codex,claude-code",
                            "--mode", "all", "--no-keep", "--base", "worktree", "--apply", "--json")
    with subprocess.Popen(command, cwd=repo, env=world.env(LLMMIXER_AGENTS_DIR=str(legs_dir)),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        started = await _wait_for(lambda: list(legs_dir.glob("*/claude-code/work/started")), process)
        assert _user_state(repo) == before  # mid-run: the worktrees in the repository do not show
        (started[0].parent / "go").touch()
        out, err = process.communicate(timeout=600)
    result = json.loads(out or "null") or pytest.fail(err)
    legs = {leg["agent"]: leg for leg in result["legs"]}
    assert result["base"] == "worktree" and result["winner"] in legs, result
    for agent, leg in legs.items():
        assert leg["check"]["passed"] is True, (agent, leg["check"], leg["error"])
        diff = leg["diff"]
        assert "+new" in diff and "latin1.txt" in diff and "+caf\ufffd" in diff, (agent, diff)
        assert "+mine" not in diff and "notes.txt" not in diff  # the snapshot is the base, not part of the change
    after = _user_state(repo)
    # --apply changed the files, and nothing else of the user's: branch, HEAD, index and refs are as they were.
    assert {k: v for k, v in after.items() if k != "status"} == {k: v for k, v in before.items() if k != "status"}
    assert after["status"].splitlines() == sorted([" M edit.txt", "?? latin1.txt", "?? notes.txt"])
    assert (repo / "edit.txt").read_text() == "new\nmine\n"
    assert (repo / "latin1.txt").read_bytes() == b"caf\xe9\n"  # applied byte for byte
    assert not [p for p in legs_dir.iterdir() if p.name != ".gitignore"]
    world.assert_stayed_home()


def test_a_leg_over_its_memory_limit_ends_with_a_clear_error_while_the_others_finish(
        agent_world: AgentWorld, tmp_path: Path) -> None:
    world = agent_world
    world.reset()
    task = "echo created > created.txt && sed -i s/old/new/ edit.txt"
    # Claude Code's model has it run a command that grows to 3 GB, 20 MB at a time.
    hog = ("python3 -c \"import time\nheld = []\nfor _ in range(150):\n    held.append(b'x' * 20_000_000)\n"
           "    time.sleep(0.1)\"")
    world.emulator.set_script("anthropic", shell_turns("claude-code", f"{hog}; {task}"))
    world.emulator.set_script("openai", shell_turns("codex", task))
    world.emulator.set_script("gemini", shell_turns("gemini-cli", task))
    config = tmp_path / "llmmixer.json"
    config.write_text(json.dumps({"settings": {"agent_limits": {"memory_mb": 1024, "processes": 64}}}))
    repo = make_repo(tmp_path / "repo")
    done = world.llmmixer("agent", "Create created.txt and change old to new.", "--check",
                          "test -f created.txt && grep -qx new edit.txt", "--mode", "all", "--json", "--config",
                          str(config), cwd=repo)
    result = json.loads(done.stdout or "null") or pytest.fail(done.stderr)
    legs = {leg["agent"]: leg for leg in result["legs"]}
    hogged = legs["claude-code"]
    assert hogged["status"] == "error", hogged
    assert hogged["error"]["kind"] == "policy" and hogged["error"]["details"]["limit"] == "memory_mb"
    assert "exceeded its memory limit" in hogged["error"]["message"]
    assert "settings.agent_limits.memory_mb" in hogged["error"]["message"]
    for agent in ("codex", "gemini-cli"):
        assert legs[agent]["check"]["passed"] is True, (agent, legs[agent])
    assert result["winner"] in ("codex", "gemini-cli")
    world.assert_stayed_home()


@pytest.mark.anyio
async def test_a_race_over_its_cost_cap_cancels_the_remaining_legs_upstream(
        agent_world: AgentWorld, tmp_path: Path) -> None:
    """--max-cost: Claude Code reports its spend, which crosses a tiny cap; Codex, still waiting on its model, is
    cancelled at once (its upstream request is closed), and the result says why."""
    world = agent_world
    world.reset()
    world.emulator.set_script("anthropic", _hold("claude-code", "echo created > created.txt"))
    world.emulator.set_behaviour("openai", hang=True)  # codex's model never answers
    repo = make_repo(tmp_path / "repo")
    command = world.command(LLMMIXER, "agent", "Create created.txt.", "--check", "test -f created.txt", "--agents",
                            "claude-code,codex", "--mode", "all", "--max-cost", "0.000001", "--json")
    with subprocess.Popen(command, cwd=repo, env=world.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as process:
        started = await _wait_for(lambda: list(world.legs_dir.glob("*/claude-code/work/started")), process)
        await _wait_for(lambda: [r for r in world.emulator.requests("openai") if r["outcome"] == "hang"], process)
        (started[0].parent / "go").touch()
        out, err = process.communicate(timeout=600)
    result = json.loads(out or "null") or pytest.fail(err)
    legs = {leg["agent"]: leg for leg in result["legs"]}
    cap = result["cost_cap"]
    assert cap["stopped"] is True and cap["max_cost_usd"] == 0.000001 and cap["spent_usd"] > 0.000001, cap
    assert legs["codex"]["status"] == "cancelled"
    assert legs["codex"]["error"]["kind"] == "budget" and "max_cost_usd" in legs["codex"]["error"]["message"]
    # Claude Code had reported its last turn when it crossed the cap: its check still ran, and it won.
    assert result["winner"] == "claude-code" and legs["claude-code"]["cost_usd"] > 0
    with anyio.fail_after(60):
        while not (records := world.emulator.requests("openai")) or \
                any(r["outcome"] != "client_closed" for r in records):
            await anyio.sleep(0.1)
    world.assert_stayed_home()

"""``llmmixer agent`` with the real Claude Code, Codex and Gemini CLI on the emulators, inside a network namespace
that has only loopback (any attempt to reach elsewhere is recorded and fails the test)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import psutil
import pytest

from llmmixer.orchestrator.agents.launch import LEG_MARKER
from tests.agent_support import LLMMIXER, VENDOR_OF, AgentWorld, agent_world, make_repo, needs_clis, shell_turns

__all__ = ["agent_world"]

pytestmark = [needs_clis, pytest.mark.timeout(900)]

TASK_COMMAND = "echo created > created.txt && sed -i s/old/new/ edit.txt && echo ok-from-tool"
CHECK = "test -f created.txt && grep -qx new edit.txt"


def _leg_processes(legs_dir: Path) -> list[psutil.Process]:
    """Processes of this world's legs (their TMPDIR is under its legs directory), not another test run's."""
    found = []
    for process in psutil.process_iter():
        try:
            environ = process.environ()
            if LEG_MARKER in environ and environ.get("TMPDIR", "").startswith(str(legs_dir)):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _worktrees(repo: Path) -> list[str]:
    listing = subprocess.run(["git", "-C", str(repo), "worktree", "list", "--porcelain"], capture_output=True,
                             text=True, check=True).stdout
    return [line.split(" ", 1)[1] for line in listing.splitlines() if line.startswith("worktree ")]


def _run(world: AgentWorld, repo: Path, *args: str) -> dict:
    done = world.llmmixer("agent", "Create created.txt and change old to new in edit.txt.", "--check", CHECK,
                          "--json", *args, cwd=repo)
    assert done.stdout.strip(), done.stderr
    return json.loads(done.stdout)


def test_each_cli_does_a_scripted_task(agent_world: AgentWorld, tmp_path: Path) -> None:
    world = agent_world
    world.reset()
    for agent, vendor in VENDOR_OF.items():
        world.emulator.set_script(vendor, shell_turns(agent, TASK_COMMAND, say=f"{agent} finished."))
    repo = make_repo(tmp_path / "repo")
    result = _run(world, repo, "--mode", "all")
    legs = {leg["agent"]: leg for leg in result["legs"]}
    assert set(legs) == set(VENDOR_OF)
    for agent, leg in legs.items():
        assert leg["status"] in ("won", "done"), (agent, leg)
        assert leg["exit_code"] == 0 and leg["check"]["exit_code"] == 0
        assert leg["usage"]["input_tokens"] > 0 and leg["usage"]["output_tokens"] > 0
        assert f"{agent} finished." in leg["text"]
        assert "created.txt" in leg["diff"] and "+new" in leg["diff"]
    assert legs["claude-code"]["cost_usd"] > 0  # Claude Code prices its own run
    assert result["winner"] in VENDOR_OF and "+created" in result["diff"]
    # Every CLI really ran the tool and sent its output back to its model.
    for agent, vendor in VENDOR_OF.items():
        outputs = [r["output"] for r in world.emulator.tool_results(vendor)]
        assert any("ok-from-tool" in output for output in outputs), (agent, outputs)
    # The user's tree is untouched, every worktree is gone, and nothing left loopback.
    assert (repo / "edit.txt").read_text() == "old\n" and not (repo / "created.txt").exists()
    assert _worktrees(repo) == [str(repo)]
    world.assert_stayed_home()
    assert "sk-" not in json.dumps(result)


def test_race_the_passing_agent_wins_and_the_loser_is_killed(agent_world: AgentWorld, tmp_path: Path) -> None:
    world = agent_world
    world.reset()
    world.emulator.set_script("anthropic", shell_turns("claude-code", "echo wrong > edit.txt"))  # check fails
    world.emulator.set_script("openai", shell_turns("codex", TASK_COMMAND))  # check passes
    # Still busy in its tool (a child process of its shell) when the race is decided.
    world.emulator.set_script("gemini", shell_turns("gemini-cli", "sleep 600; " + TASK_COMMAND))
    repo = make_repo(tmp_path / "repo")
    result = _run(world, repo, "--apply")
    legs = {leg["agent"]: leg for leg in result["legs"]}
    assert result["winner"] == "codex" and legs["codex"]["status"] == "won"
    assert legs["gemini-cli"]["status"] == "cancelled" and legs["gemini-cli"]["stopped_ms"] is not None, legs["gemini-cli"].get("error")
    assert legs["claude-code"]["status"] in ("failed", "cancelled"), legs["claude-code"].get("error")
    if legs["claude-code"]["status"] == "failed":
        assert legs["claude-code"]["check"]["exit_code"] != 0
    assert _leg_processes(world.legs_dir) == []
    # Nothing is left in the agents' directory but the .gitignore that keeps it out of any repository, and the
    # sessions of earlier tests' kept legs (this race kept none).
    assert [p.name for p in world.legs_dir.iterdir() if p.name != ".sessions"] == [".gitignore"]
    assert not (world.legs_dir / ".sessions" / result["run_id"]).exists()
    assert _worktrees(repo) == [str(repo)]
    # --apply: the winner's diff is now in the user's tree.
    assert result["applied"] is True
    assert (repo / "edit.txt").read_text() == "new\n" and (repo / "created.txt").read_text() == "created\n"
    world.assert_stayed_home()


def test_a_missing_cli_names_its_npm_package(agent_world: AgentWorld, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    config = tmp_path / "llmmixer.json"
    config.write_text(json.dumps({"agents": {"codex": {"command": "codex-not-installed"}}}))
    done = agent_world.llmmixer("agent", "x", "--check", "true", "--agents", "codex", "--config", str(config),
                                cwd=repo, timeout=120)
    assert done.returncode == 1
    assert "npm install -g @openai/codex" in done.stderr


@pytest.mark.anyio
async def test_the_mcp_agent_tool_runs_as_a_job(agent_world: AgentWorld, tmp_path: Path) -> None:
    import anyio
    from mcp import Client, StdioServerParameters

    world = agent_world
    world.reset()
    world.emulator.set_script("openai", shell_turns("codex", TASK_COMMAND))
    world.emulator.set_script("anthropic", shell_turns("claude-code", TASK_COMMAND))
    repo = make_repo(tmp_path / "repo")
    params = StdioServerParameters(command=world.ns.exec_prefix[0], args=[*world.ns.exec_prefix[1:], LLMMIXER, "mcp"],
                                   env=world.env(), cwd=str(repo))
    with anyio.fail_after(600):
        async with Client(params) as client:
            first = await client.call_tool("agent", {"task": "Create created.txt", "check": CHECK,
                                                     "agents": ["codex", "claude-code"], "cwd": str(repo),
                                                     "wait_s": 0})
            started = first.structured_content
            assert not first.is_error, started
            assert started["status"] == "running" and started["kind"] == "agent"
            final = started
            while final["status"] == "running":
                final = (await client.call_tool("job", {"job_id": started["job_id"], "wait_s": 30})
                         ).structured_content
    assert final["status"] == "done", final
    assert final["winner"] in ("codex", "claude-code") and "created.txt" in final["diff"]
    assert {leg["agent"] for leg in final["legs"]} == {"codex", "claude-code"}
    assert (repo / "edit.txt").read_text() == "old\n"  # no apply: the user's tree is untouched
    world.assert_stayed_home()


def test_demo_agents_races_the_installed_clis_without_a_key(agent_world: AgentWorld, tmp_path: Path) -> None:
    world = agent_world
    world.reset()
    env = {k: v for k, v in world.env().items() if not k.endswith("_API_KEY") and not k.endswith("_BASE_URL")}
    done = subprocess.run(world.command(LLMMIXER, "demo", "agents", "--json"), cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["winner"] == "codex" and "+print(\"Hello, world!\")" in result["diff"]
    legs = {leg["agent"]: leg for leg in result["legs"]}
    assert set(legs) == {"claude-code", "codex", "gemini-cli"}
    assert legs["codex"]["check"]["passed"] is True and legs["codex"]["usage"]["output_tokens"] > 0
    assert legs["gemini-cli"]["status"] == "cancelled"
    assert legs["claude-code"]["status"] in ("failed", "cancelled"), legs["claude-code"].get("error")
    for leg in legs.values():
        assert {"status", "check", "usage", "cost_usd", "duration_ms"} <= set(leg)
    assert world.ns.escapes() == []


def test_every_candidate_is_kept_passed_or_failed(agent_world: AgentWorld, tmp_path: Path) -> None:
    """Two agents pass and one fails: every leg ends with its diff, stat and check output, kept as a branch the
    user can show and apply after the worktrees are gone."""
    world = agent_world
    world.reset()
    world.emulator.set_script("anthropic", shell_turns("claude-code", TASK_COMMAND))
    world.emulator.set_script("openai", shell_turns("codex", TASK_COMMAND + " && echo extra > extra.txt"))
    world.emulator.set_script("gemini", shell_turns("gemini-cli", "echo wrong > edit.txt"))  # its check fails
    repo = make_repo(tmp_path / "repo")
    result = _run(world, repo, "--mode", "all")
    legs = {leg["agent"]: leg for leg in result["legs"]}
    assert result["kept"] is True
    assert legs["gemini-cli"]["status"] == "failed" and legs["gemini-cli"]["check"]["exit_code"] != 0
    assert "+wrong" in legs["gemini-cli"]["diff"]  # a failed leg keeps its diff too
    assert legs["codex"]["kept"]["files_changed"] == ["created.txt", "edit.txt", "extra.txt"]
    for agent, leg in legs.items():
        branch = f"llmmixer/{result['run_id']}/{agent}"
        assert leg["kept"]["branch"] == branch
        assert subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "-q", branch],
                              capture_output=True).returncode == 0
    assert _worktrees(repo) == [str(repo)]
    shown = world.llmmixer("agent", "show", result["run_id"], "gemini-cli", cwd=repo)
    assert shown.returncode == 0 and "+wrong" in shown.stdout
    applied = world.llmmixer("agent", "apply", result["run_id"], "codex", cwd=repo)
    assert applied.returncode == 0, applied.stderr
    assert (repo / "extra.txt").read_text() == "extra\n" and (repo / "edit.txt").read_text() == "new\n"


def test_worktrees_build_with_worktreeinclude_and_setup(agent_world: AgentWorld, tmp_path: Path) -> None:
    """The check needs a git-ignored .env (brought by .worktreeinclude) and a file the --setup step makes."""
    world = agent_world
    world.reset()
    for agent, vendor in VENDOR_OF.items():
        world.emulator.set_script(vendor, shell_turns(agent, TASK_COMMAND))
    repo = make_repo(tmp_path / "repo")
    (repo / ".gitignore").write_text(".env\nbuild/\n")
    (repo / ".worktreeinclude").write_text(".env\n")
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "-C", str(repo), "add", "."],
                   check=True)
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "-C", str(repo), "commit", "-qm",
                    "ignores"], check=True)
    (repo / ".env").write_text("SECRET_VALUE=ok\n")
    check = f"grep -qx SECRET_VALUE=ok .env && test -f build/ready && {CHECK}"
    done = world.llmmixer("agent", "Create created.txt and change old to new in edit.txt.", "--check", check,
                          "--setup", "mkdir -p build && touch build/ready", "--mode", "all", "--json", cwd=repo)
    result = json.loads(done.stdout)
    legs = {leg["agent"]: leg for leg in result["legs"]}
    for agent, leg in legs.items():
        assert leg["check"]["passed"] is True, (agent, leg["check"])
        assert leg["included"] == [".env"] and leg["setup"]["exit_code"] == 0
        assert ".env" not in leg["diff"] and "build/" not in leg["diff"]  # ignored files stay out of the diff


def test_pick_best_lets_the_judge_choose_among_the_passers(agent_world: AgentWorld, tmp_path: Path) -> None:
    """Two agents pass and one fails; with --pick best the judge (a model server, on the emulator) sees the passers
    anonymized and its choice wins, with every leg's diff in the result and every leg kept."""
    world = agent_world
    world.reset()
    world.emulator.set_script("anthropic", shell_turns("claude-code", TASK_COMMAND))
    world.emulator.set_script("openai", shell_turns("codex", TASK_COMMAND + " && echo extra > extra.txt"))
    world.emulator.set_script("gemini", shell_turns("gemini-cli", "echo wrong > edit.txt"))  # its check fails
    verdict = {"winner": "B", "scores": [{"candidate": "A", "score": 4}, {"candidate": "B", "score": 9}],
               "reason": "B is the cleaner change"}
    world.emulator.set_behaviour("gemini", reply_json=verdict)  # the judge's answer (its request has no tools)
    repo = make_repo(tmp_path / "repo")
    result = _run(world, repo, "--mode", "all", "--pick", "best", "--judge", "gemini")
    legs = {leg["agent"]: leg for leg in result["legs"]}
    passed = {agent for agent, leg in legs.items() if (leg.get("check") or {}).get("passed")}
    assert passed == {"claude-code", "codex"}, {a: (l["status"], l.get("error"), l.get("check")) for a, l in legs.items()}
    judged = result["verdict"]
    assert judged["judge"] == "gemini" and set(judged["labels"].values()) == {"claude-code", "codex"}
    assert result["winner"] == judged["labels"]["B"] == judged["winner"]
    assert judged["scores"] == {judged["labels"]["A"]: 4, judged["labels"]["B"]: 9}
    assert legs[result["winner"]]["status"] == "won" and legs["gemini-cli"]["status"] == "failed"
    assert all(leg["diff"] and leg["kept"]["branch"] for leg in legs.values())
    # The judge saw the work, not who did it.
    asked = [r for r in world.emulator.requests("gemini") if "Candidate A" in json.dumps(r["body"])]
    assert len(asked) == 1
    body = json.dumps(asked[0]["body"])
    assert "+extra" in body and "claude-code" not in body and "codex" not in body


FOLLOW_UP = "Also write notes.txt."


def _git_out(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def test_continue_resumes_each_cli_session_and_commits_on_its_branch(agent_world: AgentWorld, tmp_path: Path) -> None:
    """A kept leg continued: its CLI resumes its own session (the follow-up request carries the first run's
    conversation), in a fresh worktree of its branch, and the follow-up's work is a new commit on that branch."""
    world = agent_world
    world.reset()
    for agent, vendor in VENDOR_OF.items():
        world.emulator.set_script(vendor, shell_turns(agent, TASK_COMMAND))
    repo = make_repo(tmp_path / "repo")
    first = _run(world, repo, "--mode", "all")
    run_id = first["run_id"]
    kept = {leg["agent"]: leg["kept"]["commit"] for leg in first["legs"]}
    for agent, vendor in VENDOR_OF.items():
        # The resumed conversation already holds the first run's tool result, so turn 1 answers the follow-up.
        world.emulator.set_script(vendor, [{"say": "not used"}, *shell_turns(
            agent, "echo more > notes.txt && echo ok-from-follow-up", say=f"{agent} followed up.")])
        done = world.llmmixer("agent", "continue", run_id, agent, FOLLOW_UP, "--check",
                              "test -f notes.txt && " + CHECK, "--json", cwd=repo)
        assert done.stdout.strip(), done.stderr
        result = json.loads(done.stdout)
        assert done.returncode == 0, (agent, result)
        (leg,) = result["legs"]
        assert result["continued"] == run_id and leg["agent"] == agent and leg["status"] == "won", leg
        assert f"{agent} followed up." in leg["text"]
        # The CLI resumed its session: the follow-up went to the model with the first run's turns before it.
        asked = [json.dumps(r["body"]) for r in world.emulator.requests(vendor) if FOLLOW_UP in json.dumps(r["body"])]
        assert asked, agent
        assert all("ok-from-tool" in body and "Create created.txt" in body for body in asked), agent
        assert any("ok-from-follow-up" in r["output"] for r in world.emulator.tool_results(vendor)), agent
        # A new commit on the leg's branch, on top of the first; the leg's diff is its whole work.
        branch = f"llmmixer/{run_id}/{agent}"
        assert _git_out(repo, "rev-parse", f"{branch}^").strip() == kept[agent]
        assert _git_out(repo, "show", f"{branch}:notes.txt") == "more\n"
        assert leg["kept"]["branch"] == branch and set(leg["kept"]["files_changed"]) == {
            "created.txt", "edit.txt", "notes.txt"}
        shown = world.llmmixer("agent", "show", run_id, agent, cwd=repo)
        assert "+more" in shown.stdout and "+created" in shown.stdout
    assert _worktrees(repo) == [str(repo)]
    world.assert_stayed_home()


def test_continue_names_what_is_missing(agent_world: AgentWorld, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    done = agent_world.llmmixer("agent", "continue", "0123456789abcdef", "codex", FOLLOW_UP, cwd=repo, timeout=120)
    assert done.returncode == 1
    assert "not_found" in done.stderr and "no kept leg 'codex' for run 0123456789abcdef" in done.stderr


def _followed_up(repo: Path, run_id: str, agent: str, first_commit: str) -> None:
    branch = f"llmmixer/{run_id}/{agent}"
    assert _git_out(repo, "rev-parse", f"{branch}^").strip() == first_commit
    assert _git_out(repo, "show", f"{branch}:notes.txt") == "more\n"


@pytest.mark.anyio
async def test_continue_over_mcp_and_http(agent_world: AgentWorld) -> None:
    """The MCP agent tool continues a kept leg with continue_run; so does the HTTP API (the CLI on the resident
    service posts the request to /api/agents)."""
    import os

    import anyio
    from mcp import Client, StdioServerParameters

    world = agent_world
    world.reset()
    for agent in ("claude-code", "codex"):
        world.emulator.set_script(VENDOR_OF[agent], shell_turns(agent, TASK_COMMAND))
    # In HOME: a resident service's runner takes HOME and the agents' directory as its roots, and a leg's
    # worktree admin directory (in the repository's .git) must be inside them.
    repo = make_repo(Path(os.environ["HOME"]) / "repo")
    first = _run(world, repo, "--mode", "all", "--agents", "claude-code,codex")
    run_id = first["run_id"]
    kept = {leg["agent"]: leg["kept"]["commit"] for leg in first["legs"]}
    for agent in ("claude-code", "codex"):
        world.emulator.set_script(VENDOR_OF[agent], [{"say": "not used"}, *shell_turns(
            agent, "echo more > notes.txt && echo ok-from-follow-up", say=f"{agent} followed up.")])
    check = "test -f notes.txt && " + CHECK
    params = StdioServerParameters(command=world.ns.exec_prefix[0], args=[*world.ns.exec_prefix[1:], LLMMIXER, "mcp"],
                                   env=world.env(), cwd=str(repo))
    with anyio.fail_after(600):
        async with Client(params) as client:
            started = (await client.call_tool("agent", {"task": FOLLOW_UP, "continue_run": run_id, "agents": ["codex"],
                                                        "check": check, "cwd": str(repo), "wait_s": 0})
                       ).structured_content
            final = started
            while final["status"] == "running":
                final = (await client.call_tool("job", {"job_id": started["job_id"], "wait_s": 30})
                         ).structured_content
    assert final["status"] == "done" and final["winner"] == "codex", final
    _followed_up(repo, run_id, "codex", kept["codex"])
    # HTTP: the CLI starts the resident service and posts the continuation to its API.
    runtime = Path(os.environ["XDG_RUNTIME_DIR"]) / "llmmixer"
    try:
        done = world.llmmixer("agent", "continue", run_id, "claude-code", FOLLOW_UP, "--check", check, "--json",
                              cwd=repo, env={"LLMMIXER_RESIDENT": "1"})
        assert list(runtime.glob("serve-*.json")), "no resident service served the continuation"
    finally:
        world.llmmixer("serve", "--stop", cwd=repo, env={"LLMMIXER_RESIDENT": "1"}, timeout=120)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert json.loads(done.stdout)["continued"] == run_id
    _followed_up(repo, run_id, "claude-code", kept["claude-code"])
    world.assert_stayed_home()

"""Continuing a kept leg (agents/sessions.py, agents/resume.py): its CLI session kept beside its branch, carried
into the next sandbox as data only, and a follow-up committed on the same branch whose diff stays the leg's whole
work."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from llmmixer.orchestrator.agents.candidates import keep_leg, leg_base, leg_diff, prune_branches
from llmmixer.orchestrator.agents.resume import plan_continuation
from llmmixer.orchestrator.agents.sessions import copy_files, load_session, save_session, sessions_dir
from llmmixer.orchestrator.agents.spec import AgentSpec
from llmmixer.orchestrator.agents.worktree import add_worktree, remove_worktree, repo_root
from llmmixer.servers.core.errors import ConflictError, InvalidInputError, NotFoundError
from tests.test_agent_candidates import git, kept_leg, repo

__all__ = ["repo"]

SPECS = {name: AgentSpec.default(name) for name in ("claude-code", "codex")}


@pytest.fixture(autouse=True)
def agents_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LLMMIXER_AGENTS_DIR", str(tmp_path / "agents"))
    return tmp_path / "agents"


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / ".claude" / "projects").mkdir(parents=True)
    (home / ".claude" / "projects" / "s.jsonl").write_text('{"turn": 1}\n')
    return home


def test_copy_files_carries_regular_files_only(tmp_path: Path) -> None:
    """A link the agent left in its HOME (to a host file, or a directory) is not followed, copied or written
    through, and a FIFO does not block the copy."""
    home = _home(tmp_path)
    secret = tmp_path / "host-secret"
    secret.write_text("host only\n")
    os.symlink(secret, home / ".claude" / "settings.json")
    os.symlink(tmp_path, home / "up")
    os.mkfifo(home / "pipe")
    target = tmp_path / "copy"
    copy_files(home, target)
    assert (target / ".claude" / "projects" / "s.jsonl").read_text() == '{"turn": 1}\n'
    assert sorted(p.name for p in target.rglob("*")) == [".claude", "projects", "s.jsonl"]


def test_a_session_is_saved_loaded_and_forgotten_with_its_branch(repo: Path, tmp_path: Path) -> None:
    kept_leg(repo, tmp_path, "codex", {"edit.txt": b"new\n"})
    saved = save_session(_home(tmp_path), "r1", "codex", "codex", "0199-thread-id")
    assert saved is not None and load_session("r1", "codex") == saved
    assert (saved.home / ".claude" / "projects" / "s.jsonl").is_file()
    assert save_session(_home(tmp_path / "x"), "r1", "claude-code", "claude-code", "--evil; rm -rf /") is None
    prune_branches(repo_root(repo), run_id="r1")
    with pytest.raises(NotFoundError, match="no session kept for 'codex' in run r1"):
        load_session("r1", "codex")
    assert not (sessions_dir() / "r1").exists()


def test_a_follow_up_commits_on_the_branch_and_the_diff_is_the_whole_leg(repo: Path, tmp_path: Path) -> None:
    first = kept_leg(repo, tmp_path, "codex", {"edit.txt": b"new\n"})
    found = repo_root(repo)
    assert leg_base(found, "r1", "codex") == first["base"]

    async def follow_up() -> dict:
        tree = await add_worktree(found, tmp_path / "again" / "work", first["commit"])
        (tree.work / "notes.txt").write_text("more\n")
        try:
            return (await keep_leg(tree, "r1", "codex", "follow-up", origin=first["base"])).to_dict()
        finally:
            await remove_worktree(tree)

    second = anyio.run(follow_up)
    assert git(repo, "rev-parse", "llmmixer/r1/codex^").strip() == first["commit"]
    assert second["base"] == first["base"] and sorted(second["files_changed"]) == ["edit.txt", "notes.txt"]
    assert leg_base(found, "r1", "codex") == first["base"]
    diff = leg_diff(found, "r1", "codex")
    assert "+new" in diff and "+more" in diff


def test_continuing_names_what_is_missing(repo: Path, tmp_path: Path, agents_dir: Path) -> None:
    found = repo_root(repo)
    with pytest.raises(InvalidInputError, match="run r1 kept no legs"):
        plan_continuation(found, "r1", list(SPECS), SPECS, True, agents_dir / "r1")
    with pytest.raises(NotFoundError, match="no kept leg 'codex' for run r1"):
        plan_continuation(found, "r1", ["codex"], SPECS, False, agents_dir / "r1")
    kept_leg(repo, tmp_path, "codex", {"edit.txt": b"new\n"})
    with pytest.raises(NotFoundError, match="no session kept"):
        plan_continuation(found, "r1", ["codex"], SPECS, False, agents_dir / "r1")
    save_session(_home(tmp_path), "r1", "codex", "codex", "0199-thread-id")
    planned = plan_continuation(found, "r1", list(SPECS), SPECS, True, agents_dir / "r1")
    assert list(planned) == ["codex"] and planned["codex"].session.session_id == "0199-thread-id"
    assert planned["codex"].tip == git(repo, "rev-parse", "llmmixer/r1/codex").strip()
    with pytest.raises(InvalidInputError, match="runs another CLI"):
        plan_continuation(found, "r1", ["codex"], {"codex": AgentSpec.default("claude-code")}, False,
                          agents_dir / "r1")
    (agents_dir / "r1" / "codex").mkdir(parents=True)
    with pytest.raises(ConflictError, match="is running now"):
        plan_continuation(found, "r1", ["codex"], SPECS, False, agents_dir / "r1")

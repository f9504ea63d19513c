"""Every agent leg kept (agents/candidates.py): a leg's tree becomes a commit on ``llmmixer/<run>/<agent>``, whose
diff and stat survive the worktree; ``llmmixer agent show|apply|prune`` read, apply and remove them. Files that are
not UTF-8 survive byte for byte."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from llmmixer.orchestrator.agents.candidates import (apply_leg, branch_name, forget_leg, keep_leg, kept_branches,
                                                     leg_diff, prune_branches, restore_leg)
from llmmixer.orchestrator.agents.worktree import add_worktree, remove_worktree, repo_root
from llmmixer.servers.core.errors import ConflictError, NotFoundError

LLMMIXER = str(Path(sys.executable).with_name("llmmixer"))
LATIN1 = "caf\xe9 cr\xe8me\n".encode("latin-1")  # not UTF-8


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "-C", str(repo), *args],
                          capture_output=True, text=True, check=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    (path / "edit.txt").write_text("old\n")
    git(path, "init", "-q")
    git(path, "add", ".")
    git(path, "commit", "-qm", "init")
    return path


def kept_leg(repo: Path, tmp: Path, agent: str, change: dict[str, bytes]) -> dict:
    """A leg's worktree with ``change`` written into it, kept as run ``r1``; the worktree is gone afterwards."""
    async def go() -> dict:
        found = repo_root(repo)
        tree = await add_worktree(found, tmp / f"legs/{agent}")
        for name, content in change.items():
            (tree.work / name).write_bytes(content)
        try:
            kept = await keep_leg(tree, "r1", agent, f"{agent} did it")
        finally:
            await remove_worktree(tree)
        return kept.to_dict()

    return anyio.run(go)


def test_a_kept_leg_outlives_its_worktree_with_its_diff_and_stat(repo: Path, tmp_path: Path) -> None:
    kept = kept_leg(repo, tmp_path, "codex", {"edit.txt": b"new\n", "created.txt": b"created\n",
                                               "menu.txt": LATIN1})
    assert kept["branch"] == branch_name("r1", "codex") == "llmmixer/r1/codex"
    assert sorted(kept["files_changed"]) == ["created.txt", "edit.txt", "menu.txt"]
    assert kept["insertions"] == 3 and kept["deletions"] == 1
    assert git(repo, "worktree", "list").count("\n") == 1  # only the user's own tree
    diff = leg_diff(repo_root(repo), "r1", "codex")
    assert "+new" in diff and "+created" in diff and "menu.txt" in diff
    # The user's branch and tree are untouched; the leg is a branch of its own.
    assert (repo / "edit.txt").read_text() == "old\n" and not (repo / "created.txt").exists()
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD").strip() in ("master", "main")
    assert [k["agent"] for k in kept_branches(repo_root(repo), "r1")] == ["codex"]


@pytest.mark.e2e
def test_apply_brings_a_leg_into_the_tree_byte_for_byte(repo: Path, tmp_path: Path) -> None:
    kept_leg(repo, tmp_path, "codex", {"edit.txt": b"new\n", "menu.txt": LATIN1})
    done = subprocess.run([LLMMIXER, "agent", "apply", "r1", "codex"], cwd=repo, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert (repo / "edit.txt").read_text() == "new\n"
    assert (repo / "menu.txt").read_bytes() == LATIN1


def test_apply_reports_conflicts(repo: Path, tmp_path: Path) -> None:
    kept_leg(repo, tmp_path, "codex", {"edit.txt": b"from the agent\n"})
    (repo / "edit.txt").write_text("from the user\n")
    git(repo, "commit", "-qam", "the user moved on")
    outcome = apply_leg(repo_root(repo), "r1", "codex")
    assert outcome["applied"] is False and outcome["conflicts"] == ["edit.txt"]
    assert "<<<<<<<" in (repo / "edit.txt").read_text()


def test_a_diff_that_cannot_apply_is_a_conflict(repo: Path, tmp_path: Path) -> None:
    kept_leg(repo, tmp_path, "codex", {"created.txt": b"from the agent\n"})
    (repo / "created.txt").write_text("the user's own, not committed\n")
    with pytest.raises(ConflictError, match="does not apply"):
        apply_leg(repo_root(repo), "r1", "codex")
    assert (repo / "created.txt").read_text() == "the user's own, not committed\n"


def test_a_leg_not_kept_gets_its_branch_back_from_its_commit(repo: Path, tmp_path: Path) -> None:
    """A run without --keep still wrote the leg's commit; restore_leg points the branch at it again, once."""
    found = repo_root(repo)
    commit = kept_leg(repo, tmp_path, "codex", {"edit.txt": b"new\n"})["commit"]
    forget_leg(found, "r1", "codex")
    assert kept_branches(found, "r1") == []
    assert restore_leg(found, "r1", "codex", commit) == "llmmixer/r1/codex"
    assert restore_leg(found, "r1", "codex", "0" * 40) == "llmmixer/r1/codex"  # it exists: left as it is
    assert [k["commit"] for k in kept_branches(found, "r1")] == [commit]
    assert "+new" in leg_diff(found, "r1", "codex")
    with pytest.raises(NotFoundError, match="no longer in"):
        restore_leg(found, "r1", "gemini-cli", "0" * 40)


@pytest.mark.e2e
def test_show_lists_and_prints_and_prune_removes(repo: Path, tmp_path: Path) -> None:
    kept_leg(repo, tmp_path, "codex", {"edit.txt": b"new\n"})
    kept_leg(repo, tmp_path, "gemini-cli", {"edit.txt": b"other\n"})
    listing = subprocess.run([LLMMIXER, "agent", "show", "r1"], cwd=repo, capture_output=True, text=True,
                             timeout=60)
    assert listing.returncode == 0 and "llmmixer/r1/codex" in listing.stdout and "gemini-cli" in listing.stdout
    shown = subprocess.run([LLMMIXER, "agent", "show", "r1", "gemini-cli"], cwd=repo, capture_output=True,
                           text=True, timeout=60)
    assert shown.returncode == 0 and "+other" in shown.stdout
    missing = subprocess.run([LLMMIXER, "agent", "show", "r1", "claude-code"], cwd=repo, capture_output=True,
                             text=True, timeout=60)
    assert missing.returncode == 1 and "not_found" in missing.stderr and "codex" in missing.stderr
    assert prune_branches(repo_root(repo), older_than_s=3600) == []  # both are new
    pruned = subprocess.run([LLMMIXER, "agent", "prune", "r1"], cwd=repo, capture_output=True, text=True,
                            timeout=60)
    assert pruned.returncode == 0 and "pruned 2 branches" in pruned.stdout
    assert kept_branches(repo_root(repo)) == []
    with pytest.raises(NotFoundError):
        leg_diff(repo_root(repo), "r1", "codex")


@pytest.mark.e2e
def test_agent_task_still_starts_a_run(repo: Path) -> None:
    """The subcommands do not take the task's place: an unknown word is the task (here refused: no check)."""
    done = subprocess.run([LLMMIXER, "agent", "fix the bug"], cwd=repo, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--check" in done.stderr
    helped = subprocess.run([LLMMIXER, "agent", "--help"], capture_output=True, text=True, timeout=60)
    assert all(word in helped.stdout for word in ("show", "apply", "prune", "run"))


def test_worktreeinclude_brings_only_the_ignored_files_it_names(repo: Path, tmp_path: Path) -> None:
    from llmmixer.orchestrator.agents.bootstrap import bring_included

    (repo / ".gitignore").write_text(".env\n*.log\nnode_modules/\n")
    (repo / ".worktreeinclude").write_text(".env\nconfig/local.json\n")
    git(repo, "add", ".gitignore", ".worktreeinclude")
    git(repo, "commit", "-qm", "ignore")
    (repo / ".env").write_text("TOKEN=abc\n")
    (repo / "debug.log").write_text("noise\n")  # ignored, but not named: stays behind
    (repo / "notes.txt").write_text("untracked, not ignored\n")  # not ignored: stays behind

    async def go() -> tuple[list[str], Path]:
        found = repo_root(repo)
        tree = await add_worktree(found, tmp_path / "legs" / "codex")
        return await bring_included(found, tree.work), tree.work

    copied, work = anyio.run(go)
    assert copied == [".env"]
    assert (work / ".env").read_text() == "TOKEN=abc\n"
    assert not (work / "debug.log").exists() and not (work / "notes.txt").exists()

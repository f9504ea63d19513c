"""Git worktrees for agent legs: one fresh worktree of HEAD per agent, its diff, and applying a diff.

The user's own tree is never touched except by :func:`apply_diff` (``--apply``). Worktrees are detached (no branch
is created) and removed with ``git worktree remove --force``; a directory git no longer knows is deleted and pruned.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import anyio.to_thread

from ...servers.core.errors import InvalidInputError, LLMMixerError

__all__ = ["repo_root", "add_worktree", "remove_worktree", "worktree_diff", "apply_diff", "git_admin_dir"]

GIT_TIMEOUT_S = 120


def _git(cwd: Path | str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, input=stdin,
                          timeout=GIT_TIMEOUT_S, check=False)


def repo_root(path: Path | str) -> Path:
    """The top of the git repository holding ``path``.

    Raises:
        InvalidInputError: ``path`` is not inside a git repository, or it has no commit yet.
    """
    found = _git(path, "rev-parse", "--show-toplevel")
    if found.returncode != 0:
        raise InvalidInputError(f"{path} is not inside a git repository: run `llmmixer agent` from one")
    root = Path(found.stdout.strip())
    if _git(root, "rev-parse", "--verify", "-q", "HEAD").returncode != 0:
        raise InvalidInputError(f"the repository {root} has no commit yet: agents start from HEAD")
    return root


async def add_worktree(repo: Path, dest: Path) -> None:
    """Raises: LLMMixerError when git refuses."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    done = await anyio.to_thread.run_sync(lambda: _git(repo, "worktree", "add", "--detach", str(dest), "HEAD"))
    if done.returncode != 0:
        raise LLMMixerError(f"git worktree add failed: {done.stderr.strip()[-500:]}")


async def git_admin_dir(work: Path) -> Path:
    """The worktree's own admin directory under the repository's ``.git/worktrees/`` (its index, HEAD, locks)."""
    found = await anyio.to_thread.run_sync(lambda: _git(work, "rev-parse", "--absolute-git-dir"))
    return Path(found.stdout.strip())


async def remove_worktree(repo: Path, dest: Path) -> None:
    """Remove the worktree and its directory; never raises."""
    def remove() -> None:
        _git(repo, "worktree", "remove", "--force", "--force", str(dest))
        if dest.exists():
            shutil.rmtree(dest, ignore_errors=True)
        _git(repo, "worktree", "prune")

    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(remove)


async def worktree_diff(work: Path) -> str:
    """Everything the agent changed against HEAD, new files included, as a binary-safe patch."""
    def diff() -> str:
        _git(work, "add", "-A")
        return _git(work, "diff", "--cached", "--binary", "HEAD").stdout

    return await anyio.to_thread.run_sync(diff)


async def apply_diff(repo: Path, patch: str) -> None:
    """Apply ``patch`` to the user's working tree.

    Raises:
        InvalidInputError: the patch does not apply (the tree changed where the agent worked).
    """
    if not patch.strip():
        return

    def apply() -> subprocess.CompletedProcess[str]:
        checked = _git(repo, "apply", "--check", "--binary", "-", stdin=patch)
        if checked.returncode != 0:
            return checked
        return _git(repo, "apply", "--binary", "-", stdin=patch)

    done = await anyio.to_thread.run_sync(apply)
    if done.returncode != 0:
        raise InvalidInputError(f"the winner's diff does not apply to {repo}: {done.stderr.strip()[-500:]}")

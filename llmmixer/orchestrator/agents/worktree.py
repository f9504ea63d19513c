"""Git worktrees for agent legs: one fresh worktree per agent, its diff, and applying a diff.

Legs start from HEAD, or (``--base worktree``) from :func:`snapshot_commit`: a temporary commit of the user's
uncommitted work on top of HEAD, made with a private index and referenced by no branch, so the user's branch, HEAD
and index never see it (git's gc drops it with the run's unkept legs).

The user's own tree is never touched except by :func:`apply_diff` (``--apply``). Worktrees are detached (no branch
is created); removing one deletes its directory and prunes git's record of it.

An agent controls everything in its worktree, the ``.git`` file included, and its admin directory (index, HEAD).
So every git the orchestrator runs goes through :func:`~llmmixer.servers.core.host_git.host_git` (clean environment,
fixed configuration, no hooks or fsmonitor), and never inside a tree the agent could have rewritten: the diff names
the repository's own git directory and the worktree explicitly, starts from the commit recorded when the worktree
was made, and builds its index in a private file. No ``.git`` file, ``HEAD`` or config the agent wrote is read.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import fcntl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread

from ...servers.core.errors import InvalidInputError, LLMMixerError
from ...servers.core.host_git import host_git

__all__ = ["Repo", "Worktree", "repo_root", "head_commit", "snapshot_commit", "add_worktree", "remove_worktree",
           "worktree_diff", "apply_diff", "readable", "COMMIT_IDENTITY"]

# Who llmmixer's own commits are by: snapshots (--base worktree) and kept legs (candidates.py).
COMMIT_IDENTITY = {"GIT_AUTHOR_NAME": "llmmixer", "GIT_AUTHOR_EMAIL": "llmmixer@localhost",
                     "GIT_COMMITTER_NAME": "llmmixer", "GIT_COMMITTER_EMAIL": "llmmixer@localhost"}


@dataclass(frozen=True, slots=True)
class Repo:
    """The user's repository, found once before any agent starts."""

    top: Path
    git_dir: Path  # the common git directory (objects, refs, config)

    def __str__(self) -> str:
        return str(self.top)


@dataclass(frozen=True, slots=True)
class Worktree:
    """One leg's worktree, as the orchestrator made it (nothing here is read back from the tree)."""

    repo: Repo
    work: Path
    admin: Path  # the worktree's admin directory under the repository's ``worktrees/`` (its index, HEAD, locks)
    base: str  # the commit it started from


def repo_root(path: Path | str) -> Repo:
    """The git repository holding ``path``.

    Raises:
        InvalidInputError: ``path`` is not inside a git repository, or it has no commit yet.
    """
    found = host_git("rev-parse", "--path-format=absolute", "--show-toplevel", "--git-common-dir", git_dir=None,
                     cwd=path)
    lines = found.stdout.splitlines()
    if found.returncode != 0 or len(lines) != 2:
        raise InvalidInputError(f"{path} is not inside a git repository: run `llmmixer agent` from one")
    repo = Repo(top=Path(lines[0]), git_dir=Path(lines[1]))
    if host_git("rev-parse", "--verify", "-q", "HEAD", git_dir=repo.git_dir).returncode != 0:
        raise InvalidInputError(f"the repository {repo.top} has no commit yet: agents start from HEAD")
    return repo


@contextmanager
def _admin_lock(repo: Repo) -> Iterator[None]:
    """Turns for changing the repository's ``worktrees/``, across threads and processes.

    git picks a worktree's admin name (``work``, ``work1``...) and prunes stale ones without a lock of its own: legs
    that add and remove worktrees of one repository at once would read each other's half-made admin directories
    ("failed to read .../commondir"). The lock is an ``flock`` on the git directory itself, so nothing is written.
    """
    fd = os.open(repo.git_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _admin_dir(repo: Repo, work: Path) -> Path:
    """The admin directory git made for ``work``: the one whose ``gitdir`` names ``work/.git``."""
    target = os.path.realpath(work / ".git")
    root = repo.git_dir / "worktrees"
    for entry in sorted(root.iterdir()) if root.is_dir() else []:
        try:
            named = (entry / "gitdir").read_text().strip()
        except OSError:
            continue
        if os.path.realpath(named) == target:
            return entry
    raise LLMMixerError(f"git made no admin directory for the worktree {work}")


def _checked(done: subprocess.CompletedProcess[str], what: str) -> str:
    if done.returncode != 0:
        raise LLMMixerError(f"git {what} failed: {done.stderr.strip()[-500:]}")
    return done.stdout.strip()


def head_commit(repo: Repo) -> str:
    """Raises: LLMMixerError when git cannot read HEAD."""
    return _checked(host_git("rev-parse", "--verify", "HEAD^{commit}", git_dir=repo.git_dir), "rev-parse HEAD")


def snapshot_commit(repo: Repo) -> str:
    """A commit of the user's tree as it is now (tracked changes, and untracked files git does not ignore) whose
    parent is HEAD; HEAD itself when nothing is uncommitted. Nothing of the user's changes: the index is a private
    copy of theirs (its file stats spare git re-reading unchanged files), and no ref points at the commit.

    Raises:
        LLMMixerError: git failed.
    """
    head = head_commit(repo)
    where = host_git("rev-parse", "--path-format=absolute", "--git-path", "index", git_dir=None, cwd=repo.top)
    with tempfile.TemporaryDirectory(prefix="llmmixer-base-") as private:
        index = os.path.join(private, "index")
        theirs = Path(where.stdout.strip()) if where.returncode == 0 else None
        env = {"GIT_INDEX_FILE": index}

        def git(*args: str) -> str:
            return _checked(host_git(*args, git_dir=repo.git_dir, work_tree=repo.top, env=env, cwd=repo.top), args[0])

        if theirs is not None and theirs.is_file():
            shutil.copyfile(theirs, index)
        else:
            git("read-tree", head)
        git("add", "-A", "--", ".")
        tree = git("write-tree")
    if tree == _checked(host_git("rev-parse", f"{head}^{{tree}}", git_dir=repo.git_dir), "rev-parse"):
        return head
    message = "llmmixer: the uncommitted changes the agents started from (--base worktree)"
    return _checked(host_git("commit-tree", tree, "-p", head, "-m", message, git_dir=repo.git_dir,
                             env=COMMIT_IDENTITY), "commit-tree")


async def add_worktree(repo: Repo, dest: Path, base: str | None = None) -> Worktree:
    """A detached worktree of ``base`` (a commit; HEAD when None) at ``dest``.

    Raises: LLMMixerError when git refuses."""
    dest.parent.mkdir(parents=True, exist_ok=True)

    def add() -> Worktree:
        start = base or head_commit(repo)
        with _admin_lock(repo):
            done = host_git("worktree", "add", "--detach", str(dest), start, git_dir=repo.git_dir, cwd=repo.top)
            _checked(done, "worktree add")
            return Worktree(repo=repo, work=dest, admin=_admin_dir(repo, dest), base=start)

    return await anyio.to_thread.run_sync(add)


async def remove_worktree(tree: Worktree) -> None:
    """Remove the worktree's directory and git's record of it; never raises. Nothing in the tree is run or read."""
    def remove() -> None:
        shutil.rmtree(tree.work, ignore_errors=True)
        with _admin_lock(tree.repo):
            shutil.rmtree(tree.admin, ignore_errors=True)
            host_git("worktree", "prune", git_dir=tree.repo.git_dir)

    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(remove)


async def worktree_diff(tree: Worktree) -> str:
    """Everything the agent changed against the commit it started from, new files included, as a binary-safe patch.

    The index is a private file (seeded from the base commit), the git directory is the repository's own; the tree
    is only read as files.
    """
    def diff() -> str:
        with tempfile.TemporaryDirectory(prefix="llmmixer-diff-") as private:
            index = {"GIT_INDEX_FILE": os.path.join(private, "index")}

            def git(*args: str) -> subprocess.CompletedProcess[str]:
                return host_git(*args, git_dir=tree.repo.git_dir, work_tree=tree.work, env=index, cwd=private)

            for args in (("read-tree", tree.base), ("add", "-A", "--", ".")):
                done = git(*args)
                if done.returncode != 0:
                    raise LLMMixerError(f"git {args[0]} failed: {done.stderr.strip()[-500:]}")
            return git("diff", "--cached", "--binary", "--no-ext-diff", "--no-textconv", tree.base).stdout

    return await anyio.to_thread.run_sync(diff)


def readable(patch: str | None) -> str | None:
    """``patch`` as text any JSON carries: a byte that is not UTF-8 (kept by git's output as a lone surrogate, so the
    exact patch still applies) shown as U+FFFD. The exact patch stays in the kept commit and with the leg."""
    if patch is None:
        return None
    return patch.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


async def apply_diff(repo: Repo, patch: str) -> None:
    """Apply ``patch`` to the user's working tree.

    Raises:
        InvalidInputError: the patch does not apply (the tree changed where the agent worked).
    """
    if not patch.strip():
        return

    def apply() -> subprocess.CompletedProcess[str]:
        def git(*args: str) -> subprocess.CompletedProcess[str]:
            return host_git(*args, git_dir=repo.git_dir, work_tree=repo.top, stdin=patch, cwd=repo.top)

        checked = git("apply", "--check", "--binary", "-")
        return checked if checked.returncode != 0 else git("apply", "--binary", "-")

    done = await anyio.to_thread.run_sync(apply)
    if done.returncode != 0:
        raise InvalidInputError(f"the winner's diff does not apply to {repo.top}: {done.stderr.strip()[-500:]}")

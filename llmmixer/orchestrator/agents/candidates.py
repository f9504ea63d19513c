"""Every agent leg kept, comparable after the run: its tree as a commit on the branch ``llmmixer/<run>/<agent>``.

When a leg ends (its check passed or not), :func:`keep_leg` commits what the agent left in its worktree onto the
commit it started from, and points the leg's branch at it; the worktree can then go. The leg's diff, its stat and
the files it touched are read from that commit, so every candidate can be shown (``llmmixer agent show``), applied
(``llmmixer agent apply``) or removed (``llmmixer agent prune``) later, long after its worktree is gone.

Every git here is :func:`~llmmixer.servers.core.host_git.host_git` on the repository's own git directory, with a
private index: nothing the agent wrote in its worktree (its ``.git`` file, hooks, config) is run or trusted; its
files are only read as content.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread

from ...servers.core.errors import ConflictError, LLMMixerError, NotFoundError
from ...servers.core.host_git import host_git
from .sessions import forget_session
from .worktree import COMMIT_IDENTITY, Repo, Worktree

__all__ = ["BRANCH_PREFIX", "Kept", "branch_name", "keep_leg", "kept_branches", "leg_base", "leg_diff", "apply_leg",
           "restore_leg", "forget_leg", "prune_branches"]

BRANCH_PREFIX = "llmmixer"
_BASE_TRAILER = "LLMMixer-Base"
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
# The agent's own commits, if it made any, are squashed into one kept commit (by worktree.COMMIT_IDENTITY).


def branch_name(run_id: str, agent: str) -> str:
    return f"{BRANCH_PREFIX}/{run_id}/{agent}"


@dataclass
class Kept:
    """A kept leg: its branch, commit, the commit it started from, and what it changed."""

    branch: str
    commit: str
    base: str
    files: list[str] = field(default_factory=list)
    insertions: int = 0
    deletions: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"branch": self.branch, "commit": self.commit, "base": self.base, "files_changed": self.files,
                "insertions": self.insertions, "deletions": self.deletions}


def _git(repo: Repo, *args: str, env: dict[str, str] | None = None, work_tree: Any = None, cwd: Any = None,
         stdin: str | None = None) -> str:
    done = host_git(*args, git_dir=repo.git_dir, work_tree=work_tree, env=env, cwd=cwd or repo.git_dir, stdin=stdin)
    if done.returncode != 0:
        raise LLMMixerError(f"git {args[0]} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def _stat(repo: Repo, base: str, commit: str) -> tuple[list[str], int, int]:
    files, added, removed = [], 0, 0
    for line in _git(repo, "diff", "--numstat", "--no-renames", base, commit).splitlines():
        plus, minus, name = line.split("\t", 2)
        files.append(name)
        added += int(plus) if plus.isdigit() else 0  # "-": a binary file
        removed += int(minus) if minus.isdigit() else 0
    return files, added, removed


async def keep_leg(tree: Worktree, run_id: str, agent: str, message: str, *, origin: str | None = None) -> Kept:
    """Commit the worktree's files onto its base and point ``llmmixer/<run>/<agent>`` at it.

    ``origin`` is the commit the leg first started from, when the worktree's base is the leg's own earlier commit
    (a continued leg): the stat is against it, and the commit names it (a ``LLMMixer-Base:`` trailer) so the
    leg's diff is always its whole work.

    Raises:
        LLMMixerError: git failed.
    """
    origin = origin or tree.base
    message = f"{message.rstrip()}\n\n{_BASE_TRAILER}: {origin}"

    def keep() -> Kept:
        repo = tree.repo
        with tempfile.TemporaryDirectory(prefix="llmmixer-keep-") as private:
            env = {"GIT_INDEX_FILE": os.path.join(private, "index"), **COMMIT_IDENTITY}
            _git(repo, "read-tree", tree.base, env=env, cwd=private)
            _git(repo, "add", "-A", "--", ".", env=env, work_tree=tree.work, cwd=private)
            written = _git(repo, "write-tree", env=env, cwd=private).strip()
        commit = _git(repo, "commit-tree", written, "-p", tree.base, "-m", message, env=COMMIT_IDENTITY).strip()
        branch = branch_name(run_id, agent)
        _git(repo, "update-ref", f"refs/heads/{branch}", commit)
        files, added, removed = _stat(repo, origin, commit)
        return Kept(branch=branch, commit=commit, base=origin, files=files, insertions=added, deletions=removed)

    return await anyio.to_thread.run_sync(keep)


def kept_branches(repo: Repo, run_id: str | None = None) -> list[dict[str, str]]:
    """The kept legs, newest first: ``{"branch", "run_id", "agent", "commit", "date"}``."""
    prefix = f"refs/heads/{BRANCH_PREFIX}/" + (f"{run_id}/" if run_id else "")
    out = _git(repo, "for-each-ref", "--sort=-committerdate", "--format=%(refname:short)%09%(objectname)%09"
                                                                 "%(committerdate:unix)", prefix)
    found = []
    for line in out.splitlines():
        branch, commit, date = line.split("\t")
        parts = branch.split("/")
        if len(parts) == 3:
            found.append({"branch": branch, "run_id": parts[1], "agent": parts[2], "commit": commit, "date": date})
    return found


def _resolve(repo: Repo, run_id: str, agent: str) -> str:
    branch = branch_name(run_id, agent)
    done = host_git("rev-parse", "--verify", "-q", f"refs/heads/{branch}^{{commit}}", git_dir=repo.git_dir,
                    cwd=repo.git_dir)
    if done.returncode != 0:
        kept = [b["agent"] for b in kept_branches(repo, run_id)]
        hint = f"; kept for this run: {', '.join(kept)}" if kept else "; none kept for this run (llmmixer agent prune?)"
        raise NotFoundError(f"no kept leg {agent!r} for run {run_id} (branch {branch}){hint}")
    return branch


def leg_base(repo: Repo, run_id: str, agent: str) -> str:
    """The commit the kept leg first started from: its tip's ``LLMMixer-Base:`` trailer, else the tip's parent.

    Raises:
        NotFoundError: no such kept leg.
    """
    branch = _resolve(repo, run_id, agent)
    named = _git(repo, "log", "-1", f"--format=%(trailers:key={_BASE_TRAILER},valueonly,separator=%x20)",
                 f"refs/heads/{branch}").strip()
    if _COMMIT.fullmatch(named):
        return named
    return _git(repo, "rev-parse", "--verify", f"refs/heads/{branch}^").strip()


def leg_diff(repo: Repo, run_id: str, agent: str) -> str:
    """The kept leg's patch against the commit it started from (binary-safe).

    Raises:
        NotFoundError: no such kept leg.
    """
    base = leg_base(repo, run_id, agent)
    return _git(repo, "diff", "--binary", "--no-ext-diff", "--no-textconv", base, branch_name(run_id, agent))


def apply_leg(repo: Repo, run_id: str, agent: str, *, checkout: bool = False) -> dict[str, Any]:
    """Apply a kept leg to the user's tree: its patch with a three-way merge, or (``checkout``) its branch.

    Returns ``{"applied": bool, "branch", "conflicts": [paths]}``; a patch that conflicts leaves the conflicts marked
    in the files (as ``git apply --3way`` does) and names them.

    Raises:
        NotFoundError: no such kept leg.
        ConflictError: the branch cannot be checked out (local changes in the way), or its diff does not apply.
    """
    branch = _resolve(repo, run_id, agent)
    if checkout:
        done = host_git("checkout", branch, git_dir=repo.git_dir, work_tree=repo.top, cwd=repo.top)
        if done.returncode != 0:
            raise ConflictError(f"cannot check out {branch}: {done.stderr.strip()[-500:]}")
        return {"applied": True, "branch": branch, "conflicts": []}
    patch = leg_diff(repo, run_id, agent)
    if not patch.strip():
        return {"applied": True, "branch": branch, "conflicts": []}
    done = host_git("apply", "--3way", "--binary", "-", git_dir=repo.git_dir, work_tree=repo.top, cwd=repo.top,
                    stdin=patch)
    conflicts = [line.removeprefix("U ").strip() for line in (done.stdout + done.stderr).splitlines()
                 if line.startswith("U ")]
    if done.returncode != 0 and not conflicts:
        raise ConflictError(f"the diff of {branch} does not apply to {repo.top}: {done.stderr.strip()[-500:]}")
    return {"applied": done.returncode == 0, "branch": branch, "conflicts": conflicts}


def restore_leg(repo: Repo, run_id: str, agent: str, commit: str) -> str:
    """Point the leg's branch at ``commit`` (the one its run recorded) unless the branch exists; the branch.

    A run that did not keep its legs (``--keep`` off) still wrote each leg's commit: it stays in the repository,
    unreferenced, until git's gc, so the leg can be kept (or applied) after the run.

    Raises:
        NotFoundError: ``commit`` is not in the repository any more (or never was).
    """
    branch = branch_name(run_id, agent)
    if host_git("rev-parse", "--verify", "-q", f"refs/heads/{branch}", git_dir=repo.git_dir,
                cwd=repo.git_dir).returncode == 0:
        return branch
    if host_git("cat-file", "-e", f"{commit}^{{commit}}", git_dir=repo.git_dir, cwd=repo.git_dir).returncode != 0:
        raise NotFoundError(f"leg {agent!r} of run {run_id} is gone: its commit {commit[:12]} is no longer in "
                            f"{repo.top}")
    _git(repo, "update-ref", f"refs/heads/{branch}", commit, "")  # "": only if the branch does not exist
    return branch


def forget_leg(repo: Repo, run_id: str, agent: str) -> None:
    """Delete one kept leg's branch (its commit is left to git's gc) and its kept session."""
    host_git("update-ref", "-d", f"refs/heads/{branch_name(run_id, agent)}", git_dir=repo.git_dir, cwd=repo.git_dir)
    forget_session(run_id, agent)


def prune_branches(repo: Repo, *, run_id: str | None = None, older_than_s: float | None = None,
                   now: float | None = None) -> list[str]:
    """Delete kept legs' branches and their sessions (one run's, or those older than ``older_than_s``, or all);
    the names deleted."""
    import time

    cutoff = None if older_than_s is None else (now if now is not None else time.time()) - older_than_s
    gone = []
    for kept in kept_branches(repo, run_id):
        if cutoff is not None and int(kept["date"]) > cutoff:
            continue
        _git(repo, "update-ref", "-d", f"refs/heads/{kept['branch']}", kept["commit"])
        forget_session(kept["run_id"], kept["agent"])
        gone.append(kept["branch"])
    return gone

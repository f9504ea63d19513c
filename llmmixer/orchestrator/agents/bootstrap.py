"""Worktrees that build: what ``git worktree add`` does not bring, brought before the agent starts.

- ``.worktreeinclude`` at the top of the repository (gitignore syntax) names the git-ignored files each leg's
  worktree gets a copy of: ``.env``, local settings, a prebuilt cache. Only files that git ignores *and* that the
  patterns match are copied; tracked files come with the worktree already, and nothing else of the user's is.
- ``--setup CMD`` runs in the leg's worktree, through the runner and so inside its sandbox (network as the policy
  says), before the agent: ``npm ci``, ``uv sync``... A setup that fails ends the leg with its output.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import anyio.to_thread

from ...servers.core.errors import BadRequestError, LLMMixerError
from ...servers.core.host_git import host_git
from ..pool import ServerPool
from .launch import Redactor, agents_dir
from .leg import AgentLeg, Emit, run_in_worktree
from .worktree import Repo

__all__ = ["INCLUDE_FILE", "included_files", "copy_included", "run_setup", "SetupFailed"]

INCLUDE_FILE = ".worktreeinclude"


class SetupFailed(BadRequestError):
    """The leg's ``--setup`` command did not succeed (its exit code and output are in the leg's ``setup``)."""


def _ignored(repo: Repo, *extra: str) -> set[str]:
    done = host_git("ls-files", "-z", "--others", "--ignored", *extra, git_dir=repo.git_dir, work_tree=repo.top,
                    cwd=repo.top)
    if done.returncode != 0:
        raise LLMMixerError(f"git ls-files failed: {done.stderr.strip()[-500:]}")
    return {name for name in done.stdout.split("\0") if name}


def included_files(repo: Repo) -> list[str]:
    """The git-ignored files that ``.worktreeinclude`` names, relative to the repository's top; [] without one.
    Nothing under the agents' directory (when it lies in the repository): another leg's files are not the user's."""
    patterns = repo.top / INCLUDE_FILE
    if not patterns.is_file():
        return []
    ignored = _ignored(repo, "--exclude-standard")
    matched = _ignored(repo, f"--exclude-from={patterns}")
    legs = agents_dir().resolve()
    return sorted(name for name in ignored & matched if not (repo.top / name).resolve().is_relative_to(legs))


def copy_included(repo: Repo, work: Path, names: list[str]) -> list[str]:
    """Copy ``names`` from the user's tree into ``work`` (links as links); the names copied."""
    copied = []
    for name in names:
        source, target = repo.top / name, work / name
        if not (source.is_file() or source.is_symlink()):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            os.symlink(os.readlink(source), target)
        else:
            shutil.copy2(source, target)
        copied.append(name)
    return copied


async def bring_included(repo: Repo, work: Path) -> list[str]:
    return await anyio.to_thread.run_sync(lambda: copy_included(repo, work, included_files(repo)))


async def run_setup(leg: AgentLeg, pool: ServerPool, command: str, timeout_s: float, emit: Emit,
                    redact: Redactor) -> dict[str, Any]:
    """``command`` in the leg's worktree, through the runner; raises :class:`SetupFailed` when it fails."""
    emit("agent.command", leg.name, {"phase": "setup", "command": command, "status": "started"})
    outcome = leg.setup = await run_in_worktree(leg, pool, command, timeout_s, redact)
    emit("agent.command", leg.name, {"phase": "setup", "status": "done", **outcome})
    if not outcome["passed"]:
        error = outcome.get("error") or {}
        why = error.get("message") or ("timed out" if outcome.get("timed_out") else f"exit code {outcome['exit_code']}")
        raise SetupFailed(f"--setup failed in {leg.name}'s worktree ({why}): {outcome['output_tail'][-300:]}")
    return outcome

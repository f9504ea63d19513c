"""Git run on the host, on behalf of a tree a sandboxed child may have written: nothing of the child's is trusted.

:func:`host_git` runs ``git`` with

- a clean environment: ``PATH`` and a locale only, no ``HOME``, no ``GIT_*`` but the few set here, no key;
- no configuration but the repository's own (``GIT_CONFIG_NOSYSTEM=1``, ``GIT_CONFIG_GLOBAL=/dev/null``), and fixed
  overrides that nothing in it can undo (``-c`` beats every file): no fsmonitor, no hooks, no pager, no credential
  helper, no external diff or text conversion, no protocol but local files;
- no trace2 target (``GIT_TRACE2*`` and ``trace2.*`` set empty);
- an explicit ``--git-dir`` and ``--work-tree`` the caller made itself: git never discovers a repository or follows a
  ``.git`` file the child could rewrite (``git_dir=None`` discovers from ``cwd``: only for the user's own directory,
  and still under the fixed configuration).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["host_git", "clean_git_env", "SAFE_CONFIG", "GIT_TIMEOUT_S"]

GIT_TIMEOUT_S = 120

SAFE_CONFIG: tuple[str, ...] = (
    "core.fsmonitor=false", "core.hooksPath=/dev/null", "core.pager=cat", "core.editor=false",
    "core.sshCommand=false", "core.askPass=", "core.attributesFile=/dev/null", "core.excludesFile=/dev/null",
    "credential.helper=", "diff.external=", "include.path=/dev/null", "protocol.allow=never",
    "protocol.file.allow=always", "trace2.normalTarget=", "trace2.perfTarget=", "trace2.eventTarget=",
    "uploadpack.packObjectsHook=", "safe.directory=*", "gc.auto=0", "maintenance.auto=false",
)


def clean_git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a host-side git: nothing inherited but ``PATH``."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0",
           "GIT_NO_REPLACE_OBJECTS": "1", "GIT_ATTR_NOSYSTEM": "1"}
    env.update(extra or {})
    return env


def host_git(*args: str, git_dir: Path | str | None, work_tree: Path | str | None = None, stdin: str | None = None,
             env: Mapping[str, str] | None = None, cwd: Path | str | None = None,
             timeout: float = GIT_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """``git ARGS`` with the guarantees in the module docstring. Never raises for git's own failures."""
    config: list[str] = []
    for item in SAFE_CONFIG:
        config += ["-c", item]
    where = (["--git-dir", str(git_dir)] if git_dir is not None else []) + \
        (["--work-tree", str(work_tree)] if work_tree is not None else [])
    command: Sequence[str] = ["git", *config, *where, *args]
    # surrogateescape: a patch of non-UTF-8 text comes out and goes back into ``git apply`` byte for byte
    return subprocess.run(command, capture_output=True, encoding="utf-8", errors="surrogateescape", input=stdin,
                          env=clean_git_env(env),
                          cwd=str(cwd or work_tree or git_dir or "/"), timeout=timeout, check=False)

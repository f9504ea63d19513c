"""What a ``git`` command line really runs: its global options skipped and its aliases expanded, as git would.

:func:`effective_git` turns ``git -C . --no-pager -c alias.p=push p origin`` into ``["git", "push", "origin"]``,
so a rule about ``git push`` sees it. It understands every global option git has (``-C``, ``-c``, ``--git-dir``,
``--work-tree``, ``--namespace``, ``--config-env``, ``-p``/``-P``/``--no-pager``, ``--bare``, ``--exec-path``…), the
dashed form (``git-push``), aliases from the command line (``-c alias.X=…``, ``--config-env``, ``GIT_CONFIG_*``) and
from every config file git would read (read as data by :mod:`.git_config`: no git process runs on the host for it),
aliases that carry global options themselves, and plumbing that does a porcelain's work (``send-pack`` is ``push``).
A ``!`` alias runs a shell command: it is returned as such, and each program it runs meets the guards again.

Where the files leave an alias open (an ``includeIf`` git may or may not take), :func:`effective_git` returns every
command it could be, and the caller holds each to the policy.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .git_config import alias_candidates

__all__ = ["GitCommand", "effective_git", "PLUMBING", "MAX_ALIAS_DEPTH"]

VALUE_OPTIONS = frozenset({"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--super-prefix", "--config-env",
                           "--list-cmds", "--attr-source"})
FLAG_OPTIONS = frozenset({"-p", "--paginate", "-P", "--no-pager", "--bare", "--no-replace-objects",
                          "--no-lazy-fetch", "--no-optional-locks", "--no-advice", "--literal-pathspecs",
                          "--glob-pathspecs", "--noglob-pathspecs", "--icase-pathspecs", "--exec-path",
                          "--html-path", "--man-path", "--info-path"})
PLUMBING = {"send-pack": "push", "http-push": "push"}  # plumbing that does the same thing as a porcelain command
MAX_ALIAS_DEPTH = 10
MAX_CANDIDATES = 32


@dataclass(frozen=True, slots=True)
class GitCommand:
    words: tuple[str, ...]  # "git", subcommand, its arguments
    shell_alias: str | None = None  # a `!` alias: the shell command it runs
    unresolved: bool = False  # aliases nested deeper (or branching wider) than are followed: refused


def _split_options(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """(global options, the rest starting at the subcommand)."""
    i, options = 0, list[str]()
    while i < len(args):
        word = args[i]
        name = word.split("=", 1)[0] if word.startswith("--") else word
        if word in VALUE_OPTIONS:
            options += args[i:i + 2]
            i += 2
        elif name in VALUE_OPTIONS or (word.startswith(("-C", "-c")) and len(word) > 2 and not word.startswith("--")):
            options.append(word)  # --git-dir=X, -C<dir>
            i += 1
        elif word in FLAG_OPTIONS or name in FLAG_OPTIONS:
            options.append(word)
            i += 1
        else:
            break
    return options, list(args[i:])


def effective_git(argv: Sequence[str], *, cwd: str, env: Mapping[str, str],
                  host_path: Callable[[str], str] = lambda p: p) -> list[GitCommand]:
    """Every command ``argv`` (a git invocation as exec'd) could run: one, unless an alias is ambiguous."""
    program = os.path.basename(argv[0]) if argv else "git"
    args = list(argv[1:])
    if program.startswith("git-"):
        args = [program[4:], *args]
    found: list[GitCommand] = []
    pending: list[tuple[list[str], list[str], int]] = [(args, [], 0)]
    steps = 0
    while pending and len(found) < MAX_CANDIDATES and steps < MAX_CANDIDATES * 2:
        steps += 1
        args, options, depth = pending.pop()
        more, rest = _split_options(args)
        options = [*options, *more]
        if not rest:
            found.append(GitCommand(("git",)))
            continue
        sub, tail = rest[0], rest[1:]
        values = alias_candidates(sub, options, cwd=cwd, env=env, host_path=host_path)
        if values and depth >= MAX_ALIAS_DEPTH:
            found.append(GitCommand(("git", sub, *tail), unresolved=True))
            continue
        if not values:
            found.append(GitCommand(("git", PLUMBING.get(sub, sub), *tail)))
        for value in values:
            if value.startswith("!"):
                found.append(GitCommand(("git", sub, *tail), shell_alias=value[1:]))
                continue
            try:
                pending.append(([*shlex.split(value), *tail], options, depth + 1))
            except ValueError:
                found.append(GitCommand(("git", sub, *tail)))
    if pending:  # more expansions than are worth reading
        found.append(GitCommand(("git", *pending[0][0]), unresolved=True))
    return found or [GitCommand(("git", *args))]

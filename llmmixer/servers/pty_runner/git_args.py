"""What a ``git`` command line really runs: its global options skipped and its aliases expanded, as git would.

:func:`effective_git` turns ``git -C . --no-pager -c alias.p=push p origin`` into ``["git", "push", "origin"]``,
so a rule about ``git push`` sees it. It understands every global option git has (``-C``, ``-c``, ``--git-dir``,
``--work-tree``, ``--namespace``, ``--config-env``, ``-p``/``-P``/``--no-pager``, ``--bare``, ``--exec-path``…), the
dashed form (``git-push``), aliases from the command line (``-c alias.X=…``, ``--config-env``, ``GIT_CONFIG_*``) and
from every config file git would read (asked of the real git on the host, with the same options and variables),
aliases that carry global options themselves, and plumbing that does a porcelain's work (``send-pack`` is ``push``).
A ``!`` alias runs a shell command: it is returned as such, and each program it runs meets the guards again.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["GitCommand", "effective_git", "PLUMBING"]

VALUE_OPTIONS = frozenset({"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--super-prefix", "--config-env",
                           "--list-cmds", "--attr-source"})
FLAG_OPTIONS = frozenset({"-p", "--paginate", "-P", "--no-pager", "--bare", "--no-replace-objects",
                          "--no-lazy-fetch", "--no-optional-locks", "--no-advice", "--literal-pathspecs",
                          "--glob-pathspecs", "--noglob-pathspecs", "--icase-pathspecs", "--exec-path",
                          "--html-path", "--man-path", "--info-path"})
PLUMBING = {"send-pack": "push", "http-push": "push"}  # plumbing that does the same thing as a porcelain command
MAX_ALIAS_DEPTH = 10
# Variables the real git may need to find the same config files the sandboxed one would.
_CONFIG_ENV = ("HOME", "XDG_CONFIG_HOME", "GIT_DIR", "GIT_WORK_TREE", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM",
               "GIT_CONFIG_NOSYSTEM", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT", "GIT_NAMESPACE",
               "GIT_CEILING_DIRECTORIES", "GIT_DISCOVERY_ACROSS_FILESYSTEM", "GIT_COMMON_DIR")
_PATH_ENV = frozenset({"HOME", "XDG_CONFIG_HOME", "GIT_DIR", "GIT_WORK_TREE", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM",
                       "GIT_COMMON_DIR"})


@dataclass(frozen=True, slots=True)
class GitCommand:
    words: tuple[str, ...]  # "git", subcommand, its arguments
    shell_alias: str | None = None  # a `!` alias: the shell command it runs


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


def effective_git(argv: Sequence[str], *, cwd: str, env: Mapping[str, str], real_git: str | None,
                  host_path: Callable[[str], str] = lambda p: p) -> GitCommand:
    """The subcommand and arguments ``argv`` (a git invocation as exec'd) would run."""
    program = os.path.basename(argv[0]) if argv else "git"
    args = list(argv[1:])
    if program.startswith("git-"):
        args = [program[4:], *args]
    options: list[str] = []
    for _ in range(MAX_ALIAS_DEPTH):
        more, rest = _split_options(args)
        options += more
        if not rest:
            return GitCommand(("git",))
        sub, tail = rest[0], rest[1:]
        value = _alias(sub, options, cwd=cwd, env=env, real_git=real_git, host_path=host_path)
        if value is None:
            return GitCommand(("git", PLUMBING.get(sub, sub), *tail))
        if value.startswith("!"):
            return GitCommand(("git", sub, *tail), shell_alias=value[1:])
        try:
            args = [*shlex.split(value), *tail]
        except ValueError:
            return GitCommand(("git", sub, *tail))
    return GitCommand(("git", *args))


def _mapped_options(options: Sequence[str], host_path: Callable[[str], str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(options):
        word = options[i]
        if word in ("-C", "--git-dir", "--work-tree") and i + 1 < len(options):
            out += [word, host_path(options[i + 1])]
            i += 2
            continue
        if word.startswith(("--git-dir=", "--work-tree=")):
            name, _, value = word.partition("=")
            out.append(f"{name}={host_path(value)}")
        elif word.startswith("-C") and len(word) > 2:
            out += ["-C", host_path(word[2:])]
        elif word in ("-p", "--paginate", "-P", "--no-pager", "--exec-path", "--html-path", "--man-path",
                      "--info-path") or word.startswith("--exec-path="):
            pass  # nothing to do with finding config
        else:
            out.append(word)
        i += 1
    return out


def _alias(name: str, options: Sequence[str], *, cwd: str, env: Mapping[str, str], real_git: str | None,
           host_path: Callable[[str], str]) -> str | None:
    if real_git is None or not name or name.startswith("-"):
        return None
    child_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_TERMINAL_PROMPT": "0"}
    for key in _CONFIG_ENV:
        if key in env:
            child_env[key] = host_path(env[key]) if key in _PATH_ENV else env[key]
    for key, value in env.items():
        if key.startswith(("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_")):
            child_env[key] = value
    for word in options:  # --config-env=name=VARIABLE reads VARIABLE
        if word.startswith("--config-env="):
            variable = word.rsplit("=", 1)[-1]
            if variable in env:
                child_env[variable] = env[variable]
    try:
        done = subprocess.run([real_git, *_mapped_options(options, host_path), "config", "--get", f"alias.{name}"],
                              cwd=host_path(cwd) if os.path.isdir(host_path(cwd)) else "/", env=child_env,
                              capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = done.stdout.rstrip("\n")
    return value if done.returncode == 0 and value else None

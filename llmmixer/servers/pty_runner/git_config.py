"""Git aliases read as data: the config files a sandboxed ``git`` would read, parsed on the host with no git process.

The runner must know what ``git p`` means before it answers an ``ask`` guard, and the files that say so (``$HOME``'s
``.gitconfig``, the repository's ``.git/config``, ``GIT_CONFIG_GLOBAL``, ``include.path``...) are the child's to
write. Running the real git on the host to ask would run it with the child's configuration (``trace2`` targets,
``fsmonitor``, includes): so they are only ever read, through :mod:`dulwich.config`, each file opened without
following it onto a FIFO or a device, and capped in size.

Which files (as git finds them, every path seen from the child through ``host_path``): the system file unless
``GIT_CONFIG_NOSYSTEM``, the global ones (``GIT_CONFIG_GLOBAL``, else ``$XDG_CONFIG_HOME/git/config`` and
``$HOME/.gitconfig``), the repository's ``config`` and ``config.worktree`` (``--git-dir``/``GIT_DIR``, else found by
walking up from the working directory as git does, through a ``.git`` file's ``gitdir:`` and ``commondir``), then
``GIT_CONFIG_PARAMETERS``, ``GIT_CONFIG_COUNT`` pairs, ``--config-env`` and ``-c``. Includes are followed, and
``includeIf`` blocks are all taken as true: every value any of them could give is a candidate, and the caller
checks each (:func:`alias_candidates`). A policy decision over a superset of what git would run can only be
stricter.
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO

from dulwich.config import ConfigFile

__all__ = ["alias_candidates", "config_files", "MAX_CONFIG_BYTES"]

MAX_CONFIG_BYTES = 1 << 20


def _read_regular(path: str) -> bytes:
    """A regular file's bytes (at most :data:`MAX_CONFIG_BYTES`); a FIFO, device or directory reads as empty."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return b""
        return os.read(fd, MAX_CONFIG_BYTES)
    except OSError:
        return b""
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class _View:
    """The child's filesystem seen from the host: every path is the child's, mapped by ``host_path`` to read it."""

    host_path: Callable[[str], str]

    def read(self, path: str) -> bytes:
        return _read_regular(self.host_path(path))

    def isdir(self, path: str) -> bool:
        return os.path.isdir(self.host_path(path))

    def isfile(self, path: str) -> bool:
        try:
            return stat.S_ISREG(os.stat(self.host_path(path)).st_mode)
        except OSError:
            return False

    def gitdir_of(self, dot_git: str) -> str | None:
        """A ``.git`` entry: the directory itself, or where a ``gitdir:`` file points."""
        if self.isdir(dot_git):
            return dot_git
        text = self.read(dot_git).decode(errors="replace").strip()
        if text.startswith("gitdir:"):
            return os.path.normpath(os.path.join(os.path.dirname(dot_git), text[len("gitdir:"):].strip()))
        return None

    def looks_bare(self, path: str) -> bool:
        return self.isfile(os.path.join(path, "HEAD")) and self.isdir(os.path.join(path, "objects"))

    def repo_dirs(self, cwd: str, git_dir: str | None) -> list[str]:
        """The git directory (then its common directory) a git started in ``cwd`` would use."""
        found: str | None = None
        if git_dir:
            found = self.gitdir_of(git_dir)
        else:
            directory = os.path.abspath(cwd)
            while found is None:
                found = self.gitdir_of(os.path.join(directory, ".git"))
                if found is None and self.looks_bare(directory):
                    found = directory
                parent = os.path.dirname(directory)
                if parent == directory:
                    break
                directory = parent
        if found is None:
            return []
        dirs = [found]
        common = self.read(os.path.join(found, "commondir")).decode(errors="replace").strip()
        if common:
            dirs.append(os.path.normpath(os.path.join(found, common)))
        return dirs

    def parse(self, path: str) -> ConfigFile:
        def opener(name: str | os.PathLike[str]) -> IO[bytes]:
            return io.BytesIO(self.read(os.fspath(name)))

        try:
            return ConfigFile.from_file(io.BytesIO(self.read(path)), config_dir=os.path.dirname(path),
                                        file_opener=opener, condition_matchers=_EVERY_CONDITION)
        except (ValueError, UnicodeDecodeError, KeyError):
            return ConfigFile()  # git would refuse it too; nothing in it is taken as an alias


_EVERY_CONDITION: dict[str, Callable[[str], bool]] = {"": lambda _rest: True}  # see the module docstring


def config_files(*, cwd: str, env: Mapping[str, str], git_dir: str | None,
                 host_path: Callable[[str], str] = lambda p: p) -> list[str]:
    """Every config file (as the child names it) a git with ``env``, started in ``cwd``, would read, in git's order."""
    view = _View(host_path)
    files: list[str] = []
    if not env.get("GIT_CONFIG_NOSYSTEM"):
        files.append(env.get("GIT_CONFIG_SYSTEM") or "/etc/gitconfig")
    if env.get("GIT_CONFIG_GLOBAL"):
        files.append(env["GIT_CONFIG_GLOBAL"])
    else:
        home = env.get("HOME")
        xdg = env.get("XDG_CONFIG_HOME") or (os.path.join(home, ".config") if home else None)
        if xdg:
            files.append(os.path.join(xdg, "git", "config"))
        if home:
            files.append(os.path.join(home, ".gitconfig"))
    chosen = git_dir or env.get("GIT_DIR")
    if chosen and not os.path.isabs(chosen):
        chosen = os.path.join(cwd, chosen)
    for directory in reversed(view.repo_dirs(cwd, chosen)):
        files += [os.path.join(directory, "config"), os.path.join(directory, "config.worktree")]
    return files


def _pairs_from_env(env: Mapping[str, str]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    with_params = env.get("GIT_CONFIG_PARAMETERS", "")
    try:
        words = shlex.split(with_params)
    except ValueError:
        words = []
    for word in words:
        key, _, value = word.partition("=")
        pairs.append((key, value))
    try:
        count = int(env.get("GIT_CONFIG_COUNT", "0"))
    except ValueError:
        count = 0
    for i in range(max(0, min(count, 1000))):
        if f"GIT_CONFIG_KEY_{i}" in env:
            pairs.append((env[f"GIT_CONFIG_KEY_{i}"], env.get(f"GIT_CONFIG_VALUE_{i}", "")))
    return pairs


def _pairs_from_options(options: Sequence[str], env: Mapping[str, str]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    i = 0
    while i < len(options):
        word = options[i]
        value: str | None = None
        if word in ("-c", "--config-env") and i + 1 < len(options):
            value, i = options[i + 1], i + 1
            kind = word
        elif word.startswith("-c") and not word.startswith("--") and len(word) > 2:
            value, kind = word[2:], "-c"
        elif word.startswith("--config-env="):
            value, kind = word[len("--config-env="):], "--config-env"
        if value is not None:
            key, _, rest = value.partition("=")
            pairs.append((key, env.get(rest, "") if kind == "--config-env" else rest))
        i += 1
    return pairs


def _option_value(options: Sequence[str], name: str) -> str | None:
    found: str | None = None
    for i, word in enumerate(options):
        if word == name and i + 1 < len(options):
            found = options[i + 1]
        elif word.startswith(name + "="):
            found = word[len(name) + 1:]
    return found


def _working_dir(cwd: str, options: Sequence[str]) -> str:
    for i, word in enumerate(options):
        if word == "-C" and i + 1 < len(options):
            cwd = os.path.join(cwd, options[i + 1])
        elif word.startswith("-C") and len(word) > 2:
            cwd = os.path.join(cwd, word[2:])
    return cwd


def alias_candidates(name: str, options: Sequence[str], *, cwd: str, env: Mapping[str, str],
                     host_path: Callable[[str], str] = lambda p: p) -> list[str]:
    """Every value ``alias.<name>`` could have for a git run with these global ``options``, ``env`` and ``cwd``.

    Empty when no file or option defines it. Last-defined first (git's own choice when no ``includeIf`` is
    involved), without repeats.
    """
    if not name or name.startswith("-"):
        return []
    found: list[str] = []
    wanted = name.lower()
    cwd = _working_dir(cwd, options)
    git_dir = _option_value(options, "--git-dir")
    view = _View(host_path)
    for path in config_files(cwd=cwd, env=env, git_dir=git_dir, host_path=host_path):
        with contextlib.suppress(KeyError):
            found += [v.decode(errors="replace") for v in view.parse(path).get_multivar((b"alias",), name.encode())]
    for key, value in [*_pairs_from_env(env), *_pairs_from_options(options, env)]:
        section, _, sub = key.rpartition(".")
        if section.lower() == "alias" and sub.lower() == wanted:
            found.append(value)
    return list(dict.fromkeys(reversed(found)))

"""Exec-time rules: the guard program bind-mounted over every binary a policy rule names, inside the sandbox.

The guard (``guard.c``) is a small static C program, compiled once with the machine's C compiler (``cc``/``gcc``)
into the user's cache directory and reused while its source is unchanged. It was chosen over a ``#!/bin/sh`` stub
because it needs no interpreter (a rule may deny ``sh`` or ``bash`` themselves, and an interpreter reads
``BASH_ENV``/``ENV`` and friends), loads no shared library (``LD_PRELOAD`` cannot change it) and reads no variable.
One file is written per (mode, program, rule): the compiled guard with its orders appended as a trailer, so each has
an inode of its own, by which the runner knows it (:attr:`Guard.source`). Every file here is exec-only (mode 0111:
nothing in the sandbox can read, copy or trace it, see ``guard.c``) and checked against its SHA-256 before use (a
file that does not match is rebuilt); the directory is outside every path a command may write
(:mod:`.roots`). :func:`exec_only` keeps, the same way, the exec-only copies of approved programs that a guard
executes.

Which files a rule covers (:func:`covered_paths`): for program ``p``, every entry of every ``PATH`` directory and of
the usual aliases (``/bin``, ``/usr/bin``, ``/usr/local/bin``, ``/sbin``, ``/usr/sbin``, ``/usr/local/sbin``, the
runner's own interpreter's ``bin``) named ``p`` or one of its family: ``p`` followed by digits and dots, and up to
two ABI letters (``python`` covers ``python3``, ``python3.11``, ``python3.6m`` and ``python3.13t``; ``perl`` covers
``perl5.36.0``). Also the targets of those entries' symbolic links, every other file in those directories that is the same file (a hard link), and the
program's private exec directory (``/usr/lib/git-core/git`` and its links, and ``git-http-push``, for ``git``). A copy of the program somewhere else on
disk is not found: that is what the README's "what a deny rule cannot promise" says.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from ..core.errors import UnavailableError
from ..core.workspace import guard_cache_dir

__all__ = ["GuardMode", "Guard", "guard_binary", "exec_only", "covered_paths", "search_dirs", "family_pattern",
           "compiler"]

log = logging.getLogger("llmmixer.pty.guards")

GuardMode = Literal["refuse", "ask"]
ALIAS_DIRS = ("/bin", "/usr/bin", "/usr/local/bin", "/sbin", "/usr/sbin", "/usr/local/sbin")
MARKER = b"\nLLMMIXER-GUARD\t"


@dataclass(frozen=True, slots=True)
class Guard:
    """One guard file to bind over ``target`` (a host path, the same path inside the sandbox)."""

    target: str
    source: str
    mode: GuardMode
    program: str
    rule: str


def compiler() -> str | None:
    for name in ("cc", "gcc", "clang"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _cache_dir() -> Path:
    path = guard_cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    return path


_built: dict[str, bytes] = {}  # compiled once per process, whatever the cache directory
EXEC_ONLY = 0o111


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_own(path: Path) -> bytes | None:
    """The bytes of one of our exec-only files (made readable for the moment when we are not root); None if absent."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except PermissionError:
        try:
            os.chmod(path, 0o500, follow_symlinks=False)
            return path.read_bytes()
        except OSError:
            return None
        finally:
            with contextlib.suppress(OSError):
                os.chmod(path, EXEC_ONLY, follow_symlinks=False)


def _install(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, exec-only."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(temporary, EXEC_ONLY)
    os.replace(temporary, path)


def _verified(path: Path, digest: str) -> bool:
    """``path`` is a regular file of ours whose content has this SHA-256 (else it is removed, to be made again)."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        _remove(path)
        return False
    data = _read_own(path)
    if data is None:
        return False
    if _sha256(data) != digest:
        log.warning("guard file %s does not match its hash: replaced", path)
        _remove(path)
        return False
    return True


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _compiled(cache: Path) -> tuple[Path, bytes]:
    """The compiled guard in the cache, checked: (path, bytes)."""
    source = resources.files(__name__.rpartition(".")[0]).joinpath("guard.c").read_bytes()
    digest = _sha256(source)[:16]
    binary = cache / f"guard-{digest}"
    recorded = cache / f"guard-{digest}.sha256"
    if digest not in _built:
        try:
            expected = recorded.read_text().strip()
        except OSError:
            expected = ""
        if expected and _verified(binary, expected):
            data = _read_own(binary)
            if data is not None:
                _built[digest] = data
    if digest not in _built:
        _built[digest] = _compile(source)
    data = _built[digest]
    if not _verified(binary, _sha256(data)):
        _install(binary, data)
        temporary = recorded.with_name(f".{recorded.name}.{os.getpid()}")
        temporary.write_text(_sha256(data) + "\n")
        os.replace(temporary, recorded)
    return binary, data


def _compile(source: bytes) -> bytes:
    cc = compiler()
    if cc is None:
        raise UnavailableError("the sandbox's exec-time guard needs a C compiler to build it once (install gcc, "
                               "Debian/Ubuntu package `gcc`)")
    with tempfile.TemporaryDirectory(prefix="llmmixer-guard-") as work:
        src = os.path.join(work, "guard.c")
        Path(src).write_bytes(source)
        out = os.path.join(work, "guard")
        # Static only: a dynamically linked guard would load what LD_PRELOAD names, inside the one process the
        # runner trusts to ask.
        done = subprocess.run([cc, "-static", "-O2", "-s", "-o", out, src], capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            raise UnavailableError(f"could not build the exec-time guard (static) with {cc}: "
                                   f"{done.stderr.strip()[-500:]} (Debian/Ubuntu package `libc6-dev` has libc.a)")
        return Path(out).read_bytes()


def guard_binary(mode: GuardMode, program: str, rule: str) -> str:
    """The guard file for these orders (built on first use, checked against its hash on every use).

    Raises: UnavailableError when no C compiler can build the guard.
    """
    cache = _cache_dir()
    base, data = _compiled(cache)
    orders = MARKER + "\t".join((mode, program, rule)).replace("\n", " ").encode() + b"\n"
    name_digest = _sha256(base.name.encode() + orders)[:16]
    path = cache / f"{mode}-{re.sub(r'[^A-Za-z0-9_.-]', '_', program)[:40]}-{name_digest}"
    content = data + orders
    if not _verified(path, _sha256(content)):
        _install(path, content)
    return str(path)


def exec_only(real: str) -> str:
    """An exec-only copy of the program at ``real`` (an ELF file), for a guard to execute once it is approved.

    A process started from a file it cannot read is not dumpable: nothing it starts can open its
    ``/proc/<pid>/exe`` and run the real program again with other arguments. A script is returned as it is (its
    interpreter must read it; what it runs meets the guards again).
    """
    try:
        with open(real, "rb") as handle:
            data = handle.read()
    except OSError:
        return real
    if not data.startswith(b"\x7fELF"):
        return real
    digest = _sha256(data)
    path = _cache_dir() / f"exec-{re.sub(r'[^A-Za-z0-9_.-]', '_', os.path.basename(real))[:40]}-{digest[:16]}"
    if not _verified(path, digest):
        _install(path, data)
    return str(path)


def family_pattern(program: str) -> re.Pattern[str]:
    """``python`` matches ``python``, ``python3``, ``python3.11``, ``python3.6m``, ``python3.13t``; ``git`` only ``git``
    and ``git2``: the name, then optionally a version (digits and dots) with ABI letters after it."""
    return re.compile(re.escape(program) + r"(?:[0-9][0-9.]*[a-z]{0,2})?$")


def search_dirs(path_env: str | None) -> list[str]:
    """Every directory a command could find a program in: ``PATH``, the usual aliases, our interpreter's bin."""
    dirs: list[str] = []
    candidates = [*(path_env or "").split(os.pathsep), *ALIAS_DIRS, os.path.dirname(sys.executable),
                  os.path.join(sys.base_prefix, "bin"), os.path.dirname(os.path.realpath(sys.executable))]
    for entry in candidates:
        if entry and os.path.isabs(entry) and os.path.isdir(entry) and entry not in dirs:
            dirs.append(entry)
    return dirs


# Separate binaries in a program's exec directory that do what a subcommand rule is about.
_EXEC_EXTRAS = {"git": frozenset({"git-http-push", "git-send-pack"})}


def _exec_dirs(program: str) -> list[str]:
    return [d for d in (f"/usr/lib/{program}-core", f"/usr/libexec/{program}-core", f"/usr/lib/{program}",
                        f"/usr/libexec/{program}") if os.path.isdir(d)]


def _is_executable_file(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def covered_paths(program: str, dirs: Sequence[str]) -> list[str]:
    """Every host path that runs ``program`` or its family: see the module docstring. Real files only."""
    pattern = family_pattern(program)
    found: dict[str, None] = {}
    identities: set[tuple[int, int]] = set()

    def add(path: str) -> None:
        real = os.path.realpath(path)
        if _is_executable_file(real):
            found.setdefault(real, None)
            with contextlib.suppress(OSError):
                st = os.stat(real)
                identities.add((st.st_dev, st.st_ino))

    listings: dict[str, list[str]] = {}
    for directory in dirs:
        try:
            listings[directory] = os.listdir(directory)
        except OSError:
            continue
        for name in listings[directory]:
            if pattern.match(name):
                add(os.path.join(directory, name))
    for directory in _exec_dirs(program):  # the program itself and its links; not the scripts it sources
        with contextlib.suppress(OSError):
            for name in os.listdir(directory):
                path = os.path.join(directory, name)
                if pattern.match(os.path.basename(os.path.realpath(path))) or name in _EXEC_EXTRAS.get(program, ()):
                    add(path)
    if identities:  # hard links under other names
        for directory, names in listings.items():
            for name in names:
                path = os.path.join(directory, name)
                with contextlib.suppress(OSError):
                    st = os.stat(path)
                    if (st.st_dev, st.st_ino) in identities:
                        add(path)
    return list(found)


def guards_for(rules: Iterable[tuple[GuardMode, str, str]], dirs: Sequence[str]) -> list[Guard]:
    """One :class:`Guard` per covered path; a ``refuse`` order wins over an ``ask`` one for the same program."""
    chosen: dict[str, tuple[GuardMode, str, str]] = {}
    for mode, program, rule in rules:
        current = chosen.get(program)
        if current is None or (current[0] == "ask" and mode == "refuse"):
            chosen[program] = (mode, program, rule)
    guards: dict[str, Guard] = {}
    for mode, program, rule in chosen.values():
        source = guard_binary(mode, program, rule)
        for target in covered_paths(program, dirs):
            existing = guards.get(target)
            if existing is None or (existing.mode == "ask" and mode == "refuse"):
                guards[target] = Guard(target=target, source=source, mode=mode, program=program, rule=rule)
    return list(guards.values())

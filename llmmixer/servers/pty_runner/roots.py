"""Argument containment: the directories a call's ``cwd`` and ``writable`` may name.

A call can widen its sandbox only by naming a directory: ``cwd`` becomes writable, and so does every ``writable``
entry. :class:`Roots` holds which directories may be named (the policy's ``[sandbox] roots``, ``--root`` and
``$LLMMIXER_PTY_ROOTS``, besides the runner's start directory and the agents' directory), and which never may,
whatever the roots say: ``/``, ``$HOME``, and any directory holding the llmmixer configuration, the guard cache or
the runtime directory (where the service's token lives). A path is resolved once (symbolic links followed) and then
checked; everything else is refused with a ``policy`` error naming the rule ``builtin: roots``.

A runner started in ``/`` or ``$HOME`` without ``--cwd`` (as an MCP host may start it) therefore has no default
root: every command is refused until it is given ``--cwd`` or roots. A root named explicitly may hold those
directories (``--root ~``): what is under it is allowed, but never they themselves or their parents. The runner of
the detached resident service (started by the CLI in llmmixer's state directory, reachable only with its token,
which no sandbox can read) takes ``$HOME`` as such a root, so ``llmmixer run`` works from any of the user's
directories.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..core.errors import PolicyError
from ..core.workspace import ROOTS_ENV, agents_dir, guard_cache_dir, llmmixer_dirs, service_dir

__all__ = ["Roots", "ROOTS_ENV", "ROOTS_RULE"]

ROOTS_RULE = "builtin: roots"


def _real(path: str) -> str:
    return os.path.realpath(os.path.expanduser(path))


def _within(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def never_writable(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Directories no ``cwd`` or ``writable`` may equal or hold (see the module docstring)."""
    environ = os.environ if environ is None else environ
    paths = ["/", *([environ["HOME"]] if environ.get("HOME") else []), os.path.expanduser("~"),
             str(guard_cache_dir()), *llmmixer_dirs()]
    return tuple(dict.fromkeys(_real(p) for p in paths))


@dataclass(frozen=True, slots=True)
class Roots:
    roots: tuple[str, ...]
    never: tuple[str, ...]
    start: str

    @classmethod
    def build(cls, start: str, configured: Iterable[str] = (), environ: Mapping[str, str] | None = None) -> Roots:
        """The start directory, the agents' directory and ``configured`` (relative entries are under ``start``)."""
        environ = os.environ if environ is None else environ
        never = never_writable(environ)
        start = _real(start)
        named = [str(agents_dir(environ)), *configured, *filter(None, environ.get(ROOTS_ENV, "").split(os.pathsep))]
        if start == _real(str(service_dir())) and environ.get("HOME"):
            named.append(environ["HOME"])  # the resident service: it acts for its token's holder, wherever they are
        roots = [] if cls._forbidden(start, never) else [start]  # started in / or $HOME: no root of its own
        roots += [r for r in (_real(os.path.join(start, e)) for e in named) if r != "/"]
        return cls(roots=tuple(dict.fromkeys(roots)), never=never, start=start)

    @staticmethod
    def _forbidden(path: str, never: Iterable[str]) -> str | None:
        """The protected directory ``path`` equals or holds, if any."""
        return next((n for n in never if _within(n, path)), None)

    def check(self, path: str, what: str) -> str:
        """``path`` resolved, when a call may name it as ``what`` (``cwd`` or ``writable``).

        Raises: PolicyError (rule ``builtin: roots``) naming the path, why, and the fix.
        """
        real = _real(path)
        clash = self._forbidden(real, self.never)
        if clash is not None:
            reason = (f"{what} {path!r} is {'' if clash == real else 'a parent of '}{clash!r}, which commands may "
                      f"never write")
        elif not any(_within(real, root) for root in self.roots):
            shown = ", ".join(self.roots) or "none: the runner started in a directory that cannot be one"
            reason = f"{what} {path!r} is outside the runner's roots ({shown})"
        else:
            return real
        raise PolicyError(f"refused: {reason}; name a directory inside the roots, or start the runner with "
                          f"--cwd DIR (or --root DIR, or [sandbox] roots in the policy)",
                          details={"rule": ROOTS_RULE, "path": path, "action": "deny"})

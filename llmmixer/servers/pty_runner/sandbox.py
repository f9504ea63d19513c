"""The boundary: every child of the runner runs inside bubblewrap (``bwrap``), one sandbox per command or session.

What a sandboxed child gets (:meth:`Sandbox.jail`):

- its own PID, IPC and UTS namespaces (``/proc`` shows only its own processes, so no ancestor's environment can be
  read), ``--die-with-parent``, and no capabilities (``--cap-drop ALL``: nothing can be unmounted or remounted);
- the host's filesystem read-only, except the working directory, the policy's ``writable`` paths (relative to the
  working directory), the call's extra writable directories, and a private ``/tmp`` (a fresh host directory, removed
  when the child ends);
- with ``network = "deny"``, its own network namespace with only a loopback interface (``--unshare-net``);
- the exec-time guards bound over every binary a rule names (:mod:`.guards`), and the control socket at
  ``/dev/llmmixer/control`` (read-only) through which they report and ask (:mod:`.control`);
- last, the policy file, the llmmixer configuration and any ``--protect`` path bound read-only over themselves, and
  every directory between them and a writable root bound over itself, so they can be neither written, replaced nor
  moved away (renaming a directory that holds a mount point fails with EBUSY).

``mode``: ``auto`` (default) uses the sandbox when :func:`probe` says it works and runs unsandboxed otherwise
(every result says which in ``backend.sandbox``); ``on`` refuses to start without it, naming the missing package;
``off`` is explicit.

Interface for other callers (coding-agent legs run the vendors' CLIs through ``run``/``start``): a call may pass
``writable=[...]`` (absolute host paths, e.g. a fresh ``HOME`` outside the working directory; created if missing),
``env={...}`` (plain variables, set after the allowlist) and ``secrets={...}`` (set like env and redacted from
everything the runner returns). ``127.0.0.1`` is reachable when ``network = "allow"`` (the host's network namespace is
shared). Killing a session ends its PID namespace: no process of it survives.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..core.errors import InvalidInputError, PolicyError, UnavailableError
from ..core.workspace import guard_cache_dir, llmmixer_dirs
from .backend import signal_env
from .guards import Guard

if TYPE_CHECKING:
    from .roots import Roots

__all__ = ["SandboxMode", "SandboxSettings", "Sandbox", "Jail", "probe", "resolve_sandbox", "CONTROL_DIR",
           "SANDBOX_ENV"]

log = logging.getLogger("llmmixer.pty.sandbox")

SandboxMode = Literal["auto", "on", "off"]
SANDBOX_ENV = "LLMMIXER_PTY_SANDBOX"
CONTROL_DIR = "/dev/llmmixer"  # inside the sandbox; the guards' socket is CONTROL_DIR/control
SIGNAL_ENV = "/dev/llmmixer-env"  # inside: the host's env, which puts the keyboard signals back to their defaults
MISSING = ("bubblewrap is not installed: the `bwrap` program (Debian/Ubuntu package `bubblewrap`, Fedora "
           "`bubblewrap`) is needed for --sandbox on")


# Where a host keeps its unix sockets; each gets an empty tmpfs under network = "deny" (/tmp is private anyway).
SOCKET_DIRS = ("/run", "/var/run", "/var/lib/mysql", "/var/spool/postfix/private")


def _hidden(paths: Iterable[str]) -> list[str]:
    args: list[str] = []
    for path in paths:
        real = os.path.realpath(path)
        if os.path.isdir(real) and not any(args[i + 1] == real for i in range(0, len(args), 2)):
            args += ["--tmpfs", real]
    return args


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    mode: SandboxMode = "auto"
    writable: tuple[str, ...] = (".",)
    network: Literal["allow", "deny"] = "allow"
    pass_env: tuple[str, ...] = ()
    roots: tuple[str, ...] = ()  # where cwd and writable may point (:mod:`.roots`); empty: the defaults
    sockets: tuple[str, ...] = ()  # host unix sockets a command may still reach under network = "deny"

    @classmethod
    def from_table(cls, table: object) -> SandboxSettings:
        """The ``[sandbox]`` table of a policy file. Raises: InvalidInputError."""
        if table is None:
            return cls()
        if not isinstance(table, dict):
            raise InvalidInputError("[sandbox] must be a table")
        unknown = set(table) - {"mode", "writable", "network", "pass_env", "roots", "sockets"}
        if unknown:
            raise InvalidInputError(f"unknown [sandbox] keys: {', '.join(sorted(unknown))}")
        mode = table.get("mode", "auto")
        if mode not in ("auto", "on", "off"):
            raise InvalidInputError(f"[sandbox] mode must be auto, on or off (got {mode!r})")
        network = table.get("network", "allow")
        if network not in ("allow", "deny"):
            raise InvalidInputError(f"[sandbox] network must be allow or deny (got {network!r})")
        lists = {}
        for key in ("writable", "pass_env", "roots", "sockets"):
            value = table.get(key, ["."] if key == "writable" else [])
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise InvalidInputError(f"[sandbox] {key} must be a list of strings")
            lists[key] = tuple(value)
        return cls(mode=mode, network=network, writable=lists["writable"], pass_env=lists["pass_env"],
                   roots=lists["roots"], sockets=lists["sockets"])


_probe_cache: dict[str, str | None] = {}


def probe(bwrap: str | None = None) -> str | None:
    """None when bubblewrap works here; otherwise why not (cached per process)."""
    path = bwrap or shutil.which("bwrap")
    if path is None:
        return MISSING
    if path in _probe_cache:
        return _probe_cache[path]
    try:
        done = subprocess.run([path, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-pid",
                               "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--cap-drop", "ALL", "--",
                               "/bin/sh", "-c", "exit 0"], capture_output=True, text=True, timeout=20, check=False)
        reason = None if done.returncode == 0 else f"bwrap cannot create a sandbox here: {done.stderr.strip()}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        reason = f"bwrap cannot create a sandbox here: {exc}"
    _probe_cache[path] = reason
    return reason


def resolve_sandbox(mode: str) -> tuple[bool, str]:
    """(enabled, why) for ``mode``.

    Raises: UnavailableError for ``on`` without a working bubblewrap; InvalidInputError for an unknown mode.
    """
    if mode not in ("auto", "on", "off"):
        raise InvalidInputError(f"unknown sandbox mode {mode!r} (expected auto, on or off)")
    if mode == "off":
        return False, "off (--sandbox off)"
    reason = probe()
    if reason is None:
        return True, "bubblewrap"
    if mode == "on":
        raise UnavailableError(reason)
    return False, f"off: {reason}"


@dataclass(slots=True)
class Jail:
    """One child's sandbox: its private directories on the host and the bwrap command line in front of argv."""

    root: str  # host directory holding tmp/ (the child's /tmp) and ctl/ (its control socket)
    prefix: list[str]
    writable: tuple[str, ...] = ()

    @property
    def tmp(self) -> str:
        return os.path.join(self.root, "tmp")

    @property
    def control_socket(self) -> str:
        return os.path.join(self.root, "ctl", "control")

    def wrap(self, argv: Sequence[str]) -> list[str]:
        reset = [SIGNAL_ENV, "--default-signal=INT,QUIT,PIPE,XFSZ"] if SIGNAL_ENV in self.prefix else []
        return [*self.prefix, "--", *reset, *argv]

    def host_path(self, inside: str) -> str:
        """A path as the child sees it -> the same file on the host (only /tmp differs)."""
        if inside == "/tmp" or inside.startswith("/tmp/"):
            return self.tmp + inside[4:]
        return inside

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass(slots=True)
class Sandbox:
    settings: SandboxSettings = field(default_factory=SandboxSettings)
    protected: tuple[str, ...] = ()  # host paths never writable inside
    guards: list[Guard] = field(default_factory=list)
    bwrap: str = "bwrap"

    def jail(self, cwd: str, extra_writable: Iterable[str] = (), roots: Roots | None = None) -> Jail:
        """A fresh :class:`Jail` for one child working in ``cwd`` (already checked against the roots, as are
        ``extra_writable``'s resolved directories).

        Raises: InvalidInputError for a writable path that cannot be used.
        """
        root = tempfile.mkdtemp(prefix=JAIL_PREFIX)
        try:
            with open(os.path.join(root, OWNER_FILE), "w", encoding="ascii") as handle:
                handle.write(f"{os.getpid()}\n")
            os.mkdir(os.path.join(root, "tmp"), 0o1777)
            os.chmod(os.path.join(root, "tmp"), 0o1777)
            os.mkdir(os.path.join(root, "ctl"), 0o700)
            writable = self._writable(cwd, extra_writable, roots)
            prefix = self._prefix(root, cwd, writable)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return Jail(root=root, prefix=prefix, writable=tuple(writable))

    def _writable(self, cwd: str, extra: Iterable[str], roots: Roots | None) -> list[str]:
        """cwd, the policy's entries that exist now as real directories or files (never through a symbolic link,
        which a command could have planted, and only inside the roots), and the call's extras."""
        paths: list[str] = [cwd]
        for entry in self.settings.writable:
            joined = os.path.normpath(os.path.join(cwd, os.path.expanduser(entry)))
            path = os.path.realpath(joined)
            if path != joined and entry != ".":
                log.warning("writable entry %r is reached through a symbolic link: not made writable", entry)
                continue
            if not (os.path.isdir(path) or os.path.isfile(path)):
                continue
            if roots is not None:
                try:
                    roots.check(path, "writable")
                except PolicyError as refused:
                    log.warning("writable entry %r not made writable: %s", entry, refused.message)
                    continue
            paths.append(path)
        for entry in extra:
            path = os.path.realpath(entry)
            if path in ("/", "/proc", "/dev", "/sys"):
                raise InvalidInputError(f"writable path {entry!r} cannot be made writable")
            paths.append(path)
        return list(dict.fromkeys(paths))

    def _prefix(self, root: str, cwd: str, writable: Sequence[str]) -> list[str]:
        args: list[str] = [self.bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                           "--bind", os.path.join(root, "tmp"), "/tmp",
                           "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent",
                           "--cap-drop", "ALL"]
        if self.settings.network == "deny":
            args.append("--unshare-net")
            args += self._hidden_sockets()
        # The runtime directory (the service's token) and the guard cache (the exec-only copies of approved programs
        # are in it: run by path, they would be the real programs, unguarded) are empty inside.
        args += _hidden([llmmixer_dirs()[1], str(guard_cache_dir())])
        for path in writable:
            args += ["--bind", path, path]
        for guard in self.guards:
            args += ["--ro-bind", guard.source, guard.target]
        if self.guards:  # nothing to report or ask without guards
            args += ["--ro-bind", os.path.join(root, "ctl"), CONTROL_DIR]
        env = signal_env()
        if env is not None:
            args += ["--ro-bind", env, SIGNAL_ENV]
        args += self._protection(writable)
        args += ["--chdir", cwd]
        return args

    def _hidden_sockets(self) -> list[str]:
        """Empty directories over where host unix sockets live (the network namespace already cuts abstract ones),
        then each socket the policy names, bound back."""
        args = _hidden(SOCKET_DIRS)
        for path in self.settings.sockets:
            if os.path.exists(path):
                args += ["--bind", path, path]
            else:
                log.warning("[sandbox] sockets entry %r does not exist: skipped", path)
        return args

    def _protection(self, writable: Sequence[str]) -> list[str]:
        args: list[str] = []
        pinned: set[str] = set()
        for path in dict.fromkeys(os.path.realpath(p) for p in self.protected):
            if not os.path.exists(path):
                continue
            # Every directory between a writable root and the file becomes a mount point: it cannot be renamed.
            for top in writable:
                if path.startswith(top.rstrip("/") + "/"):
                    directory = os.path.dirname(path)
                    while len(directory) > len(top) and directory not in pinned:
                        pinned.add(directory)
                        args += ["--bind", directory, directory]
                        directory = os.path.dirname(directory)
            args += ["--ro-bind", path, path]
        # Pins must come before the read-only binds inside them; bwrap applies them in order (outer first).
        binds = [args[i:i + 3] for i in range(0, len(args), 3)]
        binds.sort(key=lambda b: (b[0] == "--ro-bind", b[1].count("/")))
        return [word for bind in binds for word in bind]

    def describe(self) -> dict[str, Any]:
        return {"network": self.settings.network, "writable": list(self.settings.writable),
                "guards": len(self.guards)}

    def orders_of_process(self, pid: int) -> tuple[str, str, str] | None:
        """(mode, program, rule) of the guard file process ``pid`` runs, or None when it runs no guard."""
        try:
            st = os.stat(f"/proc/{pid}/exe")
        except OSError:
            return None
        for guard in self.guards:
            with contextlib.suppress(OSError):
                source = os.stat(guard.source)
                if (source.st_dev, source.st_ino) == (st.st_dev, st.st_ino):
                    return guard.mode, guard.program, guard.rule
        return None


JAIL_PREFIX = "llmmixer-sbx-"
OWNER_FILE = "runner.pid"


def remove_stale_jails() -> None:
    """Remove the jail directories a runner that is gone (killed with SIGKILL) left in the temp directory (each
    runner does it when it builds its sandbox). A jail whose runner is alive, or that is not ours, is left alone."""
    import psutil  # here: a runner that never sandboxes anything never loads it

    top = tempfile.gettempdir()
    with contextlib.suppress(OSError):
        for name in os.listdir(top):
            path = os.path.join(top, name)
            if not name.startswith(JAIL_PREFIX) or os.path.islink(path) or not os.path.isdir(path):
                continue
            try:
                if os.stat(path).st_uid != os.getuid():
                    continue
                with open(os.path.join(path, OWNER_FILE), encoding="ascii") as handle:
                    pid = int(handle.read().strip() or "0")
            except (OSError, ValueError):
                continue
            if pid > 0 and not psutil.pid_exists(pid):
                shutil.rmtree(path, ignore_errors=True)


def remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)

"""The runtime file: how a CLI process finds the resident service (``llmmixer serve``) for its configuration.

One file per configuration identity, ``<user runtime dir>/llmmixer/serve-<identity>.json``, mode 0600 in a 0700
directory, holding the service's URL, token, pid, the identity, the config file it read and its log. The
identity is a digest of what decides the service's behaviour: which config file (path and content) and the
values of the environment variables that reach its servers (keys, base URLs, shared settings). Values never
appear in the file, only the digest; so two configs, or the same config under another key, get two services.

A file whose pid is dead is stale: :func:`read` ignores it and the next service replaces it. Writing happens under
an exclusive lock next to the file, so two services started at once for one identity cannot both claim it.

Light on imports: the thin client reads this before anything else.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from . import config_paths

__all__ = ["RuntimeInfo", "config_identity", "runtime_dir", "runtime_path", "state_dir", "read", "claim",
           "release", "pid_alive", "lock"]

FILE_MODE = 0o600
DIR_MODE = 0o700


@dataclass(frozen=True, slots=True)
class RuntimeInfo:
    """What a running service publishes about itself."""

    url: str
    token: str
    pid: int
    identity: str
    config_path: str | None
    log: str | None
    started: float

    @property
    def dashboard_url(self) -> str:
        """The dashboard's address with the token: visiting it once sets the cookie."""
        return f"{self.url}/?token={self.token}"


def runtime_dir() -> Path:
    """``$XDG_RUNTIME_DIR/llmmixer`` on Linux (platformdirs), made private."""
    import platformdirs

    path = Path(platformdirs.user_runtime_dir("llmmixer", ensure_exists=False))
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    return path


def state_dir() -> Path:
    """Where a detached service logs: ``$XDG_STATE_HOME/llmmixer`` on Linux."""
    import platformdirs

    path = Path(platformdirs.user_state_dir("llmmixer"))
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    return path


def _environment_names() -> list[str]:
    from ..servers.core.manifest import load_manifests

    names = {name for manifest in load_manifests() for name in manifest.passthrough}
    names.update(config_paths.SHARED_SETTINGS)
    names.update(("LLMMIXER_STORE", "LLMMIXER_CONFIG"))
    return sorted(names)


def config_identity(config_path: str | None, environ: Mapping[str, str] | None = None) -> str:
    """A digest of the config file the service would read (its path and bytes) and the variables its servers get."""
    environ = os.environ if environ is None else environ
    located = config_paths.locate(config_path)
    digest = hashlib.sha256()
    if located is not None:
        digest.update(str(located).encode())
        try:
            digest.update(hashlib.sha256(located.read_bytes()).digest())
        except OSError:
            pass
    else:
        digest.update(b"<built-in servers>")
    for name in _environment_names():
        value = environ.get(name)
        if value:
            digest.update(f"\0{name}\0".encode() + hashlib.sha256(value.encode()).digest())
    return digest.hexdigest()[:24]


def runtime_path(identity: str) -> Path:
    return runtime_dir() / f"serve-{identity}.json"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process holds the pid: not ours, but alive
    try:  # a zombie (exited, not yet reaped by its parent) is as good as dead
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def read(identity: str) -> RuntimeInfo | None:
    """The live service for ``identity``, or ``None`` (no file, an unreadable one, or a dead pid's)."""
    try:
        raw = json.loads(runtime_path(identity).read_text(encoding="utf-8"))
        info = RuntimeInfo(**{key: raw[key] for key in RuntimeInfo.__dataclass_fields__})
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if info.identity == identity and pid_alive(info.pid) else None


@contextlib.contextmanager
def lock(identity: str) -> Iterator[None]:
    """Exclusive across processes, for check-then-claim."""
    import fcntl

    fd = os.open(runtime_dir() / f"serve-{identity}.lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def claim(url: str, token: str, identity: str, config_path: str | None, log: str | None) -> RuntimeInfo | None:
    """Publish this process as the service for ``identity``; ``None`` when another live one already is."""
    with lock(identity):
        if (other := read(identity)) is not None and other.pid != os.getpid():
            return None
        info = RuntimeInfo(url=url, token=token, pid=os.getpid(), identity=identity, config_path=config_path,
                           log=log, started=time.time())
        path = runtime_path(identity)
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(asdict(info), out)
        os.replace(temporary, path)  # readers see the old file or the whole new one
        return info


def release(identity: str) -> None:
    """Remove the runtime file if it is this process's."""
    with lock(identity):
        try:
            raw = json.loads(runtime_path(identity).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if raw.get("pid") == os.getpid():
            with contextlib.suppress(OSError):
                runtime_path(identity).unlink()

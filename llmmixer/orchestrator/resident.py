"""Finding, starting and stopping the resident service from the CLI.

:func:`connect` decides for one command: ``--standalone``, ``settings.resident = false`` (or
``LLMMIXER_RESIDENT=0``) mean no service; otherwise the live service for this config (:mod:`.runtime`), or, for
the commands that may start one, a new service started detached (``llmmixer serve --port 0 --idle-exit``,
logging to ``<user state dir>/llmmixer/serve.log``). When it cannot start, one line on stderr says why and the
command runs standalone.

Light on imports: no pydantic, no MCP, no web stack (the config file is read as JSON for ``settings.resident``
only; the service validates it).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from . import config_paths, runtime
from .runtime import RuntimeInfo

__all__ = ["connect", "start_detached", "stop", "enabled", "ServiceNotStarted", "RESIDENT_ENV", "START_TIMEOUT_S",
           "log_path"]

RESIDENT_ENV = "LLMMIXER_RESIDENT"  # "0": every command in its own process, as settings.resident = false
START_TIMEOUT_S = 60.0  # a service that has not published its URL by then is given up on
STOP_TIMEOUT_S = 30.0
POLL_S = 0.02


class ServiceNotStarted(Exception):
    """The detached service did not come up; the message says why (its log's last line)."""


def enabled(config_path: str | None) -> bool:
    """Whether this config wants the resident service (``settings.resident``, default true)."""
    if os.environ.get(RESIDENT_ENV, "").strip().lower() in ("0", "false", "no", "off"):
        return False
    located = config_paths.locate(config_path)
    if located is None:
        return True
    try:
        settings = json.loads(located.read_text(encoding="utf-8")).get("settings") or {}
    except (OSError, ValueError, AttributeError):
        return True  # the service (or the standalone path) reports the broken file
    return settings.get("resident", True) is not False


def log_path() -> str:
    return str(runtime.state_dir() / "serve.log")


def connect(config_path: str | None, *, start: bool) -> RuntimeInfo | None:
    """The service this command should use, or ``None`` for the in-process path."""
    if not enabled(config_path):
        return None
    identity = runtime.config_identity(config_path)
    info = runtime.read(identity)
    if info is not None or not start:
        return info
    try:
        return start_detached(config_path, identity)
    except ServiceNotStarted as reason:
        sys.stderr.write(f"llmmixer: the resident service did not start ({reason}); running standalone\n")
        return None


def start_detached(config_path: str | None, identity: str) -> RuntimeInfo:
    """Start ``llmmixer serve`` in its own session and wait until it has published itself.

    Raises:
        ServiceNotStarted: it exited, or published nothing within :data:`START_TIMEOUT_S`.
    """
    import subprocess

    located = config_paths.locate(config_path)
    try:
        log = log_path()
        out = open(log, "ab")  # noqa: SIM115 - handed to the child, closed below
        os.chmod(log, runtime.FILE_MODE)
    except OSError as exc:
        raise ServiceNotStarted(f"cannot write its log: {exc.strerror or exc}: {exc.filename}") from exc
    command = [sys.executable, "-m", "llmmixer", "serve", "--port", "0", "--idle-exit", "--log", log]
    if located is not None:
        command += ["--config", str(located)]  # the service must not look in its own working directory
    with out:
        try:
            child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                     cwd=runtime.state_dir(), start_new_session=True, close_fds=True)
        except OSError as exc:
            raise ServiceNotStarted(f"cannot run {command[0]}: {exc.strerror or exc}") from exc
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        info = runtime.read(identity)
        if info is not None:
            return info  # ours, or one that won a race with ours (ours then serves on, unpublished, until idle)
        if child.poll() is not None:
            raise ServiceNotStarted(f"it exited with status {child.returncode}: {_last_line(log)}; see {log}")
        time.sleep(POLL_S)
    child.terminate()
    raise ServiceNotStarted(f"nothing within {START_TIMEOUT_S:.0f} s; see {log}")


def _last_line(log: str) -> str:
    try:
        with open(log, "rb") as inp:
            inp.seek(max(0, os.path.getsize(log) - 4096))
            lines = [line for line in inp.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1].strip() if lines else "no output"


def stop(info: RuntimeInfo) -> bool:
    """SIGTERM the service (its runs in flight end as interrupted and are stored); whether it has exited."""
    try:
        os.kill(info.pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        if not runtime.pid_alive(info.pid):
            return True
        time.sleep(POLL_S * 5)
    return False

"""Where llmmixer keeps its own files on the host: one place for each directory's name.

The runner needs them too: none of them may become writable to a sandboxed command (:mod:`..pty_runner.roots`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import platformdirs

__all__ = ["agents_dir", "guard_cache_dir", "llmmixer_dirs", "service_dir", "ROOTS_ENV"]

APP = "llmmixer"
ROOTS_ENV = "LLMMIXER_PTY_ROOTS"  # more directories the runner's commands may name as cwd or writable


def agents_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where agent legs live: ``$LLMMIXER_AGENTS_DIR``, else the user cache dir (never inside the user's repository)."""
    configured = (os.environ if environ is None else environ).get("LLMMIXER_AGENTS_DIR")
    return Path(configured) if configured else Path(platformdirs.user_cache_dir(APP)) / "agents"


def guard_cache_dir() -> Path:
    """The sandbox's compiled guards (outside every path a command may write)."""
    return Path(platformdirs.user_cache_dir(APP)) / "guards"


def service_dir() -> Path:
    """Where the detached resident service (``llmmixer serve`` started by the CLI) runs: the user state directory."""
    return Path(platformdirs.user_state_dir(APP))


def llmmixer_dirs() -> list[str]:
    """The user config and runtime directories (configuration, the service's runtime file and token)."""
    with warnings.catch_warnings():  # no XDG_RUNTIME_DIR: platformdirs falls back to /tmp/runtime-UID and warns
        warnings.simplefilter("ignore")
        runtime = platformdirs.user_runtime_dir(APP)
    return [platformdirs.user_config_dir(APP), runtime, platformdirs.user_state_dir(APP)]

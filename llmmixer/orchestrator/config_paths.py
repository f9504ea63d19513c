"""Where the configuration file is looked up; light on imports, so the CLI's thin client can find it too.

Lookup order: ``--config PATH`` (or ``$LLMMIXER_CONFIG``), then ``./llmmixer.json`` when this directory is trusted
(:func:`trust_dir`, ``llmmixer config trust``), then ``<user config dir>/llmmixer/config.json`` (platformdirs).

A ``llmmixer.json`` in an untrusted working directory is never read, only warned about: a sandboxed command may have
written it (the runner's working directory is writable), and its ``mcpServers`` would run with the user's keys. The
list of trusted directories lives in the user config directory, which no command may write.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..servers.core.telemetry import OTEL_VARS

__all__ = ["SHARED_SETTINGS", "candidates", "explicit", "locate", "trust_dir", "trusted_dirs", "trusted_dirs_file"]

log = logging.getLogger("llmmixer.config")

# Variables every server receives from the orchestrator's environment, besides its manifest's own.
SHARED_SETTINGS = ("LLMMIXER_MAX_RETRIES", "LLMMIXER_TIMEOUT_S", "LLMMIXER_MAX_PROMPT_BYTES",
                   # how every SDK's HTTP client reaches its vendor: a private CA, a proxy
                   "SSL_CERT_FILE", "SSL_CERT_DIR", "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY",
                   # where its spans and metrics go, so one trace spans the MCP boundary (servers/core/telemetry.py)
                   *OTEL_VARS)


def explicit(path: str | os.PathLike[str] | None) -> bool:
    """Whether a file was named (flag or environment): then a missing file is an error, not the defaults."""
    return path is not None or bool(os.environ.get("LLMMIXER_CONFIG"))


def trusted_dirs_file() -> Path:
    """The directories whose ``llmmixer.json`` is read without ``--config``, one path a line."""
    import platformdirs

    return Path(platformdirs.user_config_dir("llmmixer")) / "trusted_dirs"


def trusted_dirs() -> set[str]:
    try:
        lines = trusted_dirs_file().read_text(encoding="utf-8").splitlines()
    except OSError:
        return set()
    return {os.path.realpath(line.strip()) for line in lines if line.strip()}


def trust_dir(directory: str | os.PathLike[str]) -> Path:
    """Add ``directory`` to :func:`trusted_dirs`; returns the list's file. Raises: NotADirectoryError."""
    real = os.path.realpath(directory)
    if not os.path.isdir(real):
        raise NotADirectoryError(f"{directory} is not a directory")
    path = trusted_dirs_file()
    if real not in trusted_dirs():
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(real + "\n")
    return path


def candidates(path: str | os.PathLike[str] | None) -> list[Path]:
    path = path if path is not None else os.environ.get("LLMMIXER_CONFIG") or None
    if path is not None:
        return [Path(path).expanduser()]
    import platformdirs

    found = [Path(platformdirs.user_config_dir("llmmixer")) / "config.json"]
    local = Path.cwd() / "llmmixer.json"
    if local.is_file():
        if os.path.realpath(Path.cwd()) in trusted_dirs():
            return [local, *found]
        log.warning("ignoring %s: this directory is not trusted; pass --config %s, or run `llmmixer config trust` "
                    "here", local, local)
    return found


def locate(path: str | os.PathLike[str] | None) -> Path | None:
    """The file :func:`~llmmixer.orchestrator.config.load_config` would read, or ``None`` (the built-in servers)."""
    for candidate in candidates(path):
        if candidate.is_file():
            return candidate.resolve()
    return None

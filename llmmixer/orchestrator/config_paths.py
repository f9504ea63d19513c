"""Where the configuration file is looked up; light on imports, so the CLI's thin client can find it too.

Lookup order: ``--config PATH`` (or ``$LLMMIXER_CONFIG``), then ``./llmmixer.json``, then
``<user config dir>/llmmixer/config.json`` (platformdirs).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["SHARED_SETTINGS", "candidates", "explicit", "locate"]

# Variables every server receives from the orchestrator's environment, besides its manifest's own.
SHARED_SETTINGS = ("LLMMIXER_MAX_RETRIES", "LLMMIXER_TIMEOUT_S", "LLMMIXER_MAX_PROMPT_BYTES",
                   # how every SDK's HTTP client reaches its vendor: a private CA, a proxy
                   "SSL_CERT_FILE", "SSL_CERT_DIR", "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")


def explicit(path: str | os.PathLike[str] | None) -> bool:
    """Whether a file was named (flag or environment): then a missing file is an error, not the defaults."""
    return path is not None or bool(os.environ.get("LLMMIXER_CONFIG"))


def candidates(path: str | os.PathLike[str] | None) -> list[Path]:
    path = path if path is not None else os.environ.get("LLMMIXER_CONFIG") or None
    if path is not None:
        return [Path(path).expanduser()]
    import platformdirs

    return [Path.cwd() / "llmmixer.json", Path(platformdirs.user_config_dir("llmmixer")) / "config.json"]


def locate(path: str | os.PathLike[str] | None) -> Path | None:
    """The file :func:`~llmmixer.orchestrator.config.load_config` would read, or ``None`` (the built-in servers)."""
    for candidate in candidates(path):
        if candidate.is_file():
            return candidate.resolve()
    return None

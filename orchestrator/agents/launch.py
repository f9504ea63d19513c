"""Everything one leg needs before its CLI starts: its directory, its fresh HOME, its secrets, its command line.

A leg lives in ``<agents dir>/<run>/<agent>/``: ``work/`` is its git worktree, ``home/`` its HOME. The runner runs
the command with the leg directory as its working directory (the sandbox makes only that writable), and the command
moves into ``work/`` itself.

Secrets (the CLI's API key) never appear on a command line or in an event: they are written to a file in the leg's
HOME readable only by its owner, which the command sources and deletes before it ``exec``\\ s the CLI. Every event
text is redacted of their values (:class:`Redactor`).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from .base import AgentCLI
from .spec import AgentSpec

__all__ = ["LegLayout", "Redactor", "agents_dir", "endpoint_for", "secrets_for", "prepare_home", "shell_command",
           "LEG_MARKER"]

LEG_MARKER = "LLMMIXER_AGENT_LEG"  # set in every leg's environment: finds its processes, wherever they went
ENV_FILE = ".llmmixer-env"


def agents_dir() -> Path:
    """Where legs live: ``$LLMMIXER_AGENTS_DIR``, else the user cache dir (never inside the user's repository)."""
    configured = os.environ.get("LLMMIXER_AGENTS_DIR")
    if configured:
        return Path(configured)
    import platformdirs

    return Path(platformdirs.user_cache_dir("llmmixer")) / "agents"


@dataclass(frozen=True)
class LegLayout:
    root: Path
    leg_id: str

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def home(self) -> Path:
        return self.root / "home"


class Redactor:
    """Replaces every secret value in a text with ``[redacted]``."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self._values = sorted({v for v in secrets.values() if len(v) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, "[redacted]")
        return text


def endpoint_for(adapter: AgentCLI, spec: AgentSpec, environ: dict[str, str] | None = None) -> str | None:
    """The agent's endpoint: its config ``env``, else the orchestrator's own variable, else the vendor default."""
    environ = dict(os.environ) if environ is None else environ
    return spec.env.get(adapter.base_url_var) or environ.get(adapter.base_url_var) or None


def secrets_for(adapter: AgentCLI, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The first of the CLI's key variables that is set, by name."""
    environ = dict(os.environ) if environ is None else environ
    for name in adapter.key_vars:
        if environ.get(name):
            return {name: environ[name]}
    return {}


def prepare_home(adapter: AgentCLI, spec: AgentSpec, layout: LegLayout, *, base_url: str | None,
                 secrets: dict[str, str], binary: str) -> None:
    """Seed the fresh HOME: the CLI's config files, and the environment file the command sources."""
    home = layout.home
    home.mkdir(parents=True, exist_ok=True)
    for relative, content in adapter.home_files(home, base_url=base_url, model=spec.model).items():
        path = home / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "XDG_CACHE_HOME": str(home / ".cache"),
           "XDG_DATA_HOME": str(home / ".local" / "share"), "XDG_STATE_HOME": str(home / ".local" / "state"),
           "TMPDIR": str(layout.root / "tmp"), LEG_MARKER: layout.leg_id,
           "PATH": os.pathsep.join([os.path.dirname(binary), os.environ.get("PATH", "/usr/bin:/bin")]),
           **adapter.environment(home, base_url=base_url), **spec.env, **secrets}
    (layout.root / "tmp").mkdir(parents=True, exist_ok=True)
    target = home / ENV_FILE
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        for name, value in env.items():
            handle.write(f"export {name}={shlex.quote(value)}\n")


def shell_command(adapter: AgentCLI, spec: AgentSpec, layout: LegLayout, *, binary: str, task: str) -> str:
    """The bash command the runner runs: load the environment file, delete it, ``exec`` the CLI in the worktree."""
    env_file = shlex.quote(str(layout.home / ENV_FILE))
    argv = [binary, *adapter.argv(task, model=spec.model, extra=spec.args)]
    return (f"cd {shlex.quote(str(layout.work))} && . {env_file} && rm -f {env_file} && "
            f"exec {shlex.join(argv)}")
